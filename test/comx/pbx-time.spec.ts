import { strict as assert } from 'node:assert';
import { idEpochMs, parseComxTime, ZoneCheck } from '../../src/comx/pbx-time';

describe('comx/pbx-time', () => {
  it('reads the epoch of an Asterisk unique id, with or without a system name', () => {
    assert.equal(idEpochMs('1362123180.67'), 1362123180000);
    assert.equal(idEpochMs('pbx1-1362123180.67'), 1362123180000);
    assert.equal(idEpochMs('abc'), null);
    assert.equal(idEpochMs('1362123180'), null, 'no sequence number');
  });

  it('reads the spec form and rejects impossible dates', () => {
    assert.deepEqual(parseComxTime('2013/03/01/09:33:00'), { year: 2013, month: 3, day: 1, hour: 9, minute: 33, second: 0 });
    for (const bad of ['2013/02/29/09:33:00', '2013/13/01/09:33:00', '2013/03/01/24:00:00', '2013/03/01/09:3x:00']) assert.equal(parseComxTime(bad), null, bad);
  });

  it('names the offset the unique ids point to when most starts are far from them, and stays quiet otherwise', () => {
    // the spec's own example: ids at UTC+2 local, read as if the PBX ran in UTC
    const cdr = (id: number, local: string, startUtc: string) => ({ uniqueId: `${id}.1`, startLocal: local, start: startUtc });
    const wrong = new ZoneCheck('UTC');
    for (let i = 0; i < 4; i++) wrong.observe(cdr(1362123180 + i * 60, `2013/03/01/09:${33 + i}:00`, `2013-03-01T09:${33 + i}:00Z`));
    assert.deepEqual(wrong.verdict(), { zone: 'UTC', offset: 'UTC+02:00', count: 4, total: 4 });
    const right = new ZoneCheck('Africa/Johannesburg');
    for (let i = 0; i < 4; i++) right.observe(cdr(1362123180 + i * 60, `2013/03/01/09:${33 + i}:00`, `2013-03-01T07:${33 + i}:00Z`));
    assert.equal(right.verdict(), null);
    const few = new ZoneCheck('UTC');
    few.observe(cdr(1362123180, '2013/03/01/09:33:00', '2013-03-01T09:33:00Z'));
    assert.equal(few.verdict(), null, 'two or fewer CDRs say nothing');
  });
});

import { strict as assert } from 'node:assert';
import { periodWindow, asLocal, billQueryInput } from '../../src/ccfs/period';
import { planBillQueries } from '../../src/ccfs/client';
import { parseLocal, zonedToUtc } from '../../src/common/time';

const SP = 'America/Sao_Paulo';
const BERLIN = 'Europe/Berlin';
const at = (iso: string) => Date.parse(iso);
/** The UTC instant CC-FS reads a wall-clock text as (the earlier one when the clock went back). */
const utc = (text: string, zone: string) => zonedToUtc(parseLocal(text)!, zone).date.getTime();

describe('ccfs/period', () => {
  describe('yesterday', () => {
    for (const [what, zone, now, day] of [
      ['late evening in São Paulo, already the next day in UTC', SP, '2026-04-14T02:00:00Z', '2026-04-12'],
      ['the first second of a day', SP, '2026-04-14T03:00:00Z', '2026-04-13'],
      ['the last second of a day', SP, '2026-04-14T02:59:59Z', '2026-04-12'],
      ['a zone ahead of UTC, where the local day is a day later', 'Asia/Tokyo', '2026-04-14T20:00:00Z', '2026-04-14'],
      ['across the new year', 'UTC', '2026-01-01T00:30:00Z', '2025-12-31'],
      ['a leap day', 'UTC', '2024-03-01T12:00:00Z', '2024-02-29'],
      ['the day after a night without midnight (São Paulo, 2018-11-04 began at 01:00)', SP, '2018-11-05T12:00:00Z', '2018-11-04'],
    ]) {
      it(`is the previous calendar day of the tenant: ${what}`, () => {
        assert.deepEqual(periodWindow('yesterday', zone, at(now)), { beginTime: `${day} 00:00:00`, endTime: `${day} 23:59:59` });
      });
    }

    it('is 23 hours long after the clock went forward and 25 after it went back', () => {
      const spring = periodWindow('yesterday', BERLIN, at('2026-03-30T08:00:00Z'));
      assert.deepEqual(spring, { beginTime: '2026-03-29 00:00:00', endTime: '2026-03-29 23:59:59' });
      const [s] = planBillQueries({ ...spring, dataType: 'call', callBackURL: 'https://nr.example/cb' }, { timeZone: BERLIN, now: at('2026-03-30T08:00:00Z') });
      assert.deepEqual([s.beginUtc, s.endUtc], ['2026-03-28T23:00:00.000Z', '2026-03-29T21:59:59.000Z']);
      const autumn = periodWindow('yesterday', BERLIN, at('2026-10-26T08:00:00Z'));
      assert.deepEqual(autumn, { beginTime: '2026-10-25 00:00:00', endTime: '2026-10-25 23:59:59' });
      const [a] = planBillQueries({ ...autumn, dataType: 'call', callBackURL: 'https://nr.example/cb' }, { timeZone: BERLIN, now: at('2026-10-26T08:00:00Z') });
      assert.deepEqual([a.beginUtc, a.endUtc], ['2026-10-24T22:00:00.000Z', '2026-10-25T22:59:59.000Z']);
    });
  });

  describe('today', () => {
    it('runs from the tenant’s midnight until now, in whole seconds', () => {
      assert.deepEqual(periodWindow('today', SP, at('2026-04-14T15:04:05.999Z')), { beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 12:04:05' });
      assert.deepEqual(periodWindow('today', 'Asia/Tokyo', at('2026-04-14T20:00:00Z')), { beginTime: '2026-04-15 00:00:00', endTime: '2026-04-15 05:00:00' });
    });

    it('on a day that began at 01:00 still begins at 00:00:00, which CC-FS reads as the start of the day', () => {
      const w = periodWindow('today', SP, at('2018-11-04T12:00:00Z'));
      assert.deepEqual(w, { beginTime: '2018-11-04 00:00:00', endTime: '2018-11-04 10:00:00' });
      assert.equal(utc(w.beginTime, SP), at('2018-11-04T03:00:00Z'));
    });
  });

  describe('the last N hours', () => {
    it('ends now and begins N hours earlier, fractions of an hour included', () => {
      assert.deepEqual(periodWindow('hours', SP, at('2026-04-14T15:00:00Z'), 6), { beginTime: '2026-04-14 06:00:00', endTime: '2026-04-14 12:00:00' });
      assert.deepEqual(periodWindow('hours', SP, at('2026-04-14T15:00:00Z'), 1.5), { beginTime: '2026-04-14 10:30:00', endTime: '2026-04-14 12:00:00' });
      assert.deepEqual(periodWindow('hours', SP, at('2026-04-14T15:00:00Z')), { beginTime: '2026-04-13 12:00:00', endTime: '2026-04-14 12:00:00' }, '24 by default');
    });

    it('over the hour the clock skips, begins at the wall-clock time of the instant N hours ago', () => {
      // 03:30 CEST; two hours earlier it was 00:30 CET (02:00-03:00 never happened)
      const w = periodWindow('hours', BERLIN, at('2026-03-29T01:30:00Z'), 2);
      assert.deepEqual(w, { beginTime: '2026-03-29 00:30:00', endTime: '2026-03-29 03:30:00' });
      assert.equal(utc(w.endTime, BERLIN) - utc(w.beginTime, BERLIN), 2 * 3_600_000);
    });

    it('on the night the clock goes back, never ends before it begins', () => {
      // 02:10 CET, the second time; half an hour earlier it was 02:40 CEST, which reads as later than now
      assert.deepEqual(periodWindow('hours', BERLIN, at('2026-10-25T01:10:00Z'), 0.5), { beginTime: '2026-10-25 01:40:00', endTime: '2026-10-25 02:10:00' });
      assert.deepEqual(periodWindow('hours', BERLIN, at('2026-10-25T01:30:00Z'), 1), { beginTime: '2026-10-25 01:30:00', endTime: '2026-10-25 02:30:00' });
    });

    it('every few minutes across both changes of the year: CC-FS accepts the window and it covers the N hours', () => {
      for (const [from, to] of [['2026-03-28T22:00:00Z', '2026-03-29T04:00:00Z'], ['2026-10-24T22:00:00Z', '2026-10-25T04:00:00Z']]) {
        for (let now = at(from); now <= at(to); now += 5 * 60_000) {
          for (const hours of [0.25, 0.5, 1, 2, 3]) {
            const w = periodWindow('hours', BERLIN, now, hours);
            const where = `${new Date(now).toISOString()}, ${hours} h: ${w.beginTime} - ${w.endTime}`;
            assert.ok(w.beginTime < w.endTime, where);
            assert.ok(utc(w.beginTime, BERLIN) <= now - hours * 3_600_000, `covers the ${hours} h: ${where}`);
            assert.doesNotThrow(() => planBillQueries({ ...w, dataType: 'call', callBackURL: 'https://nr.example/cb' }, { timeZone: BERLIN, now }), where);
          }
        }
      }
    });
  });

  it('refuses an unknown zone and a number of hours that is not above 0', () => {
    for (const p of ['yesterday', 'today', 'hours'] as const) assert.throws(() => periodWindow(p, 'Mars/Olympus_Mons', at('2026-04-14T12:00:00Z')), RangeError, p);
    for (const h of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => periodWindow('hours', SP, at('2026-04-14T12:00:00Z'), h), RangeError, String(h));
  });

  describe('asLocal', () => {
    it('turns a Date, epoch milliseconds and ISO text with a zone into tenant wall-clock text', () => {
      const d = new Date('2026-04-14T15:04:05.678Z');
      assert.equal(asLocal(d, SP), '2026-04-14 12:04:05');
      assert.equal(asLocal(d.getTime(), SP), '2026-04-14 12:04:05');
      assert.equal(asLocal('2026-04-14T15:04:05Z', SP), '2026-04-14 12:04:05');
      assert.equal(asLocal('2026-04-14t15:04:05z', SP), '2026-04-14 12:04:05');
      assert.equal(asLocal('2026-04-14T15:04:05+02:00', SP), '2026-04-14 10:04:05');
      assert.equal(asLocal('2026-04-14T15:04:05.5-0300', SP), '2026-04-14 15:04:05');
      // the hour that happens twice reads the same both times
      assert.equal(asLocal('2026-10-25T00:30:00Z', BERLIN), '2026-10-25 02:30:00');
      assert.equal(asLocal('2026-10-25T01:30:00Z', BERLIN), '2026-10-25 02:30:00');
    });

    it('leaves everything else for the planner to refuse or take as it is', () => {
      for (const v of ['2026-04-14 12:00:00', '2026-04-14T12:00:00', 'yesterday', '2026-13-45T00:00:00Z', '', Number.NaN, Number.POSITIVE_INFINITY, null, undefined, true, { t: 1 }]) {
        assert.deepEqual(asLocal(v, SP), v, String(v));
      }
      const invalid = new Date('not a date');
      assert.equal(asLocal(invalid, SP), invalid);
    });
  });

  describe('billQueryInput', () => {
    const node = { dataType: 'call', callBackURL: 'https://nr.example/cb', beginTime: '2026-04-13 00:00:00', endTime: '2026-04-13 06:00:00', agentId: '', callId: undefined };

    it('takes the node’s fields, then the period, then msg.payload, and converts the times', () => {
      assert.deepEqual(billQueryInput(node, null, null, SP), { dataType: 'call', callBackURL: 'https://nr.example/cb', beginTime: '2026-04-13 00:00:00', endTime: '2026-04-13 06:00:00' });
      const window = { beginTime: '2026-04-12 00:00:00', endTime: '2026-04-12 23:59:59' };
      assert.deepEqual(billQueryInput(node, 'tick', window, SP), { dataType: 'call', callBackURL: 'https://nr.example/cb', ...window });
      const payload = { beginTime: new Date('2026-04-14T03:00:00Z'), agentId: 1001, dataType: '', callerNo: null, other: 'ignored' };
      assert.deepEqual(billQueryInput(node, payload, window, SP), {
        dataType: 'call', callBackURL: 'https://nr.example/cb', beginTime: '2026-04-14 00:00:00', endTime: '2026-04-12 23:59:59', agentId: 1001,
      });
    });

    it('ignores a payload that is not a plain object', () => {
      for (const payload of ['text', 42, [{ dataType: 'record' }], Buffer.from('{"dataType":"record"}'), new Date(), undefined]) {
        assert.equal(billQueryInput(node, payload, null, SP).dataType, 'call', String(payload));
      }
    });
  });
});

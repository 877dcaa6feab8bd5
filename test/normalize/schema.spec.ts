import { strict as assert } from 'node:assert';
import { isoMs } from '../../src/common/time';
import { iso } from '../../src/common/time';
import { cdrId } from '../../src/normalize';

describe('normalize: ISO times and ids', () => {
  it('reads UTC ISO text like Date.parse, and refuses what is not exactly that form', () => {
    for (const s of ['2026-03-29T01:30:00Z', '2024-02-29T23:59:59Z', '2026-09-24T07:49:10.939Z', '2026-09-24T07:49:10.9Z', '1970-01-01T00:00:00Z']) {
      assert.equal(isoMs(s), Date.parse(s), s);
    }
    for (const s of ['2026-04-31T00:00:00Z', '2025-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:60:00Z',
      '2026-01-01 00:00:00Z', '2026-01-01T00:00:00', '2026-01-01T00:00:00+02:00', '2026-01-01T00:00:00.Z', '2026-01-01T00:00:00.1234Z', 'x']) {
      assert.ok(Number.isNaN(isoMs(s)), s);
    }
  });

  it('writes UTC ISO text with Z, milliseconds only when asked and present', () => {
    const t = Date.parse('2026-09-24T07:49:10.939Z');
    assert.equal(iso(t), '2026-09-24T07:49:10Z');
    assert.equal(iso(t, true), '2026-09-24T07:49:10.939Z');
    assert.equal(iso(Date.parse('2026-09-24T07:49:10.007Z'), true), '2026-09-24T07:49:10.007Z');
    assert.equal(iso(Date.parse('2026-09-24T07:49:10Z'), true), '2026-09-24T07:49:10Z');
    assert.equal(iso(Date.parse('1969-12-31T23:59:59Z')), '1969-12-31T23:59:59Z');
  });

  it('the id is sha256 hex of type|instance|record id (value from python hashlib)', () => {
    assert.equal(cdrId('cms', 'cms', '9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef'), '96666d93a8e1f35fe8666e3de63a1c635dc3f300bbea24202dd40e47e6e5ec85');
  });
});

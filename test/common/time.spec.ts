import { strict as assert } from 'node:assert';
import { zonedToUtc, parseLocal, formatLocal, isoUtc, zoneOffsetMs, isValidZone } from '../../src/common/time';

describe('common/time', () => {
  const at = (text: string, zone: string) => zonedToUtc(parseLocal(text)!, zone);

  it('converts ordinary local times with the offset in force that day', () => {
    assert.equal(isoUtc(at('2026-01-15 12:00:00', 'Europe/Berlin').date), '2026-01-15T11:00:00Z');
    assert.equal(isoUtc(at('2026-07-15 12:00:00', 'Europe/Berlin').date), '2026-07-15T10:00:00Z');
    assert.equal(isoUtc(at('20260715120000', 'Africa/Johannesburg').date), '2026-07-15T10:00:00Z');
    assert.equal(isoUtc(at('2026-07-15 12:00:00', 'UTC').date), '2026-07-15T12:00:00Z');
    assert.equal(isoUtc(at('2026-07-15 12:00:00', 'Asia/Kolkata').date), '2026-07-15T06:30:00Z');
  });

  it('flags the fall-back hour as ambiguous and gives both instants', () => {
    // Europe/Berlin leaves summer time on 2026-10-25 at 03:00 CEST → 02:00 CET
    const r = at('2026-10-25 02:30:00', 'Europe/Berlin');
    assert.equal(r.ambiguous, true);
    assert.equal(isoUtc(r.date), '2026-10-25T00:30:00Z');
    assert.equal(isoUtc(r.alternative!), '2026-10-25T01:30:00Z');
    assert.equal(at('2026-10-25 03:30:00', 'Europe/Berlin').ambiguous, false);
  });

  it('flags the spring-forward gap as nonexistent', () => {
    // 2026-03-29 02:00 CET jumps to 03:00 CEST
    const r = at('2026-03-29 02:30:00', 'Europe/Berlin');
    assert.equal(r.nonexistent, true);
    assert.equal(isoUtc(r.date), '2026-03-29T01:30:00Z');
    assert.equal(at('2026-03-29 03:30:00', 'Europe/Berlin').nonexistent, false);
    assert.equal(isoUtc(at('2026-03-29 03:30:00', 'Europe/Berlin').date), '2026-03-29T01:30:00Z');
  });

  it('handles southern-hemisphere DST (America/Sao_Paulo had none in 2026; Australia/Sydney does)', () => {
    // Sydney: AEDT (+11) until 2026-04-05 03:00 → AEST (+10)
    const r = at('2026-04-05 02:30:00', 'Australia/Sydney');
    assert.equal(r.ambiguous, true);
    assert.equal(isoUtc(r.date), '2026-04-04T15:30:00Z');
  });

  it('parses the forms the sources use and refuses impossible dates', () => {
    assert.deepEqual(parseLocal('20260229120000'), null);
    assert.deepEqual(parseLocal('2026-02-28 23:59:59'), { year: 2026, month: 2, day: 28, hour: 23, minute: 59, second: 59 });
    assert.equal(parseLocal('2026-02-28 24:00:00'), null);
    assert.equal(parseLocal('yesterday'), null);
    assert.ok(parseLocal('2026-02-28T10:00:00'));
  });

  it('formats instants as local wall-clock text and round-trips', () => {
    const ms = Date.UTC(2026, 9, 25, 0, 30, 0);
    assert.equal(formatLocal(ms, 'Europe/Berlin', 'sql'), '2026-10-25 02:30:00');
    assert.equal(formatLocal(ms, 'Europe/Berlin', 'compact'), '20261025023000');
    assert.equal(zoneOffsetMs(ms, 'Europe/Berlin'), 2 * 3600_000);
    assert.equal(isValidZone('Mars/Olympus'), false);
    assert.equal(isValidZone('Europe/Berlin'), true);
  });
});

import { strict as assert } from 'node:assert';
import { ReceiverTracker } from '../../src/cms/receiver';
import type { CmsRecord } from '../../src/cms/parse';

const rec = (session: string | null, recordIndex: number | null, extra: Partial<CmsRecord> = {}): CmsRecord => ({
  type: 'callStart', time: 't', recordIndex, correlatorIndex: recordIndex, numPrecedingRecordsMissing: 0,
  session, callBridge: null, objectType: 'call', id: 'c', body: {}, ...extra,
});

describe('cms/receiver', () => {
  it('drops what was delivered, including repeats inside one POST, and keeps what was not', () => {
    const t = new ReceiverTracker();
    const first = t.review([rec('s', 1), rec('s', 2), rec('s', 2)], '10.0.0.1');
    assert.deepEqual(first.fresh.map((r) => r.recordIndex), [1, 2]);
    assert.equal(first.duplicates, 1);
    // not committed yet: a resend before the commit is still fresh (nothing was delivered)
    assert.equal(t.review([rec('s', 1)], '10.0.0.1').fresh.length, 1);
    t.commit(first.fresh, '10.0.0.1');
    const again = t.review([rec('s', 1), rec('s', 2), rec('s', 3)], '10.0.0.1');
    assert.deepEqual(again.fresh.map((r) => r.recordIndex), [3]);
    assert.equal(again.duplicates, 2);
    // the same index in another session is another record
    assert.equal(t.review([rec('other', 1)], '10.0.0.1').fresh.length, 1);
  });

  it('never treats records without session or index as duplicates', () => {
    const t = new ReceiverTracker();
    const r = t.review([rec(null, 1), rec('s', null)], 'x');
    t.commit(r.fresh, 'x');
    assert.equal(t.review([rec(null, 1), rec('s', null)], 'x').fresh.length, 2);
  });

  it('warns about lost records, restarts and gaps, in document order without false gaps inside a POST', () => {
    const t = new ReceiverTracker();
    const a = t.review([rec('s1', 1), rec('s1', 2), rec('s1', 3)], 'cb');
    assert.deepEqual(a.warnings, []);
    t.commit(a.fresh, 'cb');
    const b = t.review([rec('s1', 4, { numPrecedingRecordsMissing: 5 }), rec('s1', 7)], 'cb');
    assert.deepEqual(b.warnings.map((w) => w.kind), ['recordsMissing', 'sequenceGap']);
    t.commit(b.fresh, 'cb');
    const c = t.review([rec('s2', 1)], 'cb');
    assert.deepEqual(c.warnings, [{ kind: 'sessionChanged', previousSession: 's1', session: 's2', sender: 'cb' }]);
  });

  it('keys senders by call bridge when clustered, by address otherwise', () => {
    const t = new ReceiverTracker();
    const x = t.review([rec('s1', 1, { callBridge: 'bridge-a' })], '10.0.0.1');
    t.commit(x.fresh, '10.0.0.1');
    // same bridge, other address (a load balancer in between): still the same sender
    assert.equal(t.review([rec('s2', 1, { callBridge: 'bridge-a' })], '10.0.0.2').warnings[0].kind, 'sessionChanged');
    // another unclustered sender is not a restart of the first
    assert.deepEqual(t.review([rec('s3', 1)], '10.0.0.3').warnings, []);
  });

  it('stays bounded: old sessions and low ranges are forgotten', () => {
    const t = new ReceiverTracker({ maxSessions: 3, maxRangesPerSession: 4 });
    for (const s of ['a', 'b', 'c', 'd']) t.commit(t.review([rec(s, 1)], s).fresh, s);
    assert.equal(t.isDuplicate(rec('a', 1)), false, 'the oldest session was evicted');
    assert.equal(t.isDuplicate(rec('d', 1)), true);
    // every other index: one range each; only the newest four are kept
    for (let i = 10; i <= 30; i += 2) t.commit([rec('d', i)], 'd');
    const ranges = t.snapshot().seen.find(([s]) => s === 'd')![1];
    assert.equal(ranges.length, 4);
    assert.deepEqual(ranges[ranges.length - 1], [30, 30]);
  });

  it('merges ranges so a long session costs one range, and survives a snapshot round trip', () => {
    const t = new ReceiverTracker();
    for (let i = 1; i <= 1000; i++) if (i !== 500) t.commit([rec('s', i)], 'x');
    assert.equal(t.snapshot().seen[0][1].length, 2);
    t.commit([rec('s', 500)], 'x');
    assert.deepEqual(t.snapshot().seen[0][1], [[1, 1000]]);
    const restored = new ReceiverTracker(undefined, JSON.parse(JSON.stringify(t.snapshot())));
    assert.equal(restored.isDuplicate(rec('s', 777)), true);
    assert.equal(restored.isDuplicate(rec('s', 1001)), false);
    assert.equal(restored.review([rec('s', 1003)], 'x').warnings[0].kind, 'sequenceGap');
  });
});

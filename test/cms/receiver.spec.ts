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
    const t = new ReceiverTracker({ maxSessionsPerSender: 3, maxSenders: 8, maxRangesPerSession: 4 });
    for (const s of ['a', 'b', 'c', 'd']) t.commit(t.review([rec(s, 1)], '10.0.0.1').fresh, '10.0.0.1');
    assert.equal(t.isDuplicate(rec('a', 1)), false, 'the oldest session of that sender was evicted');
    assert.equal(t.isDuplicate(rec('d', 1)), true);
    // every other index: one range each; only the newest four are kept
    for (let i = 10; i <= 30; i += 2) t.commit([rec('d', i)], '10.0.0.1');
    const ranges = t.snapshot().owners[0][1].find(([s]) => s === 'd')![1];
    assert.equal(ranges.length, 4);
    assert.deepEqual(ranges[ranges.length - 1], [30, 30]);
  });

  it('a client posting many made-up sessions pushes out only its own, not a call bridge\'s', () => {
    const t = new ReceiverTracker();
    t.commit([rec('real-session', 1, { callBridge: 'cb1' })], '192.0.2.10');
    for (let i = 0; i < 1000; i++) t.commit([rec(`fake-${i}`, 1, { callBridge: `fake-${i}` })], '198.51.100.66');
    assert.equal(t.isDuplicate(rec('real-session', 1)), true, 'the call bridge\'s session is still remembered');
    assert.ok(t.sessionCount <= 16 + 1, `bounded: ${t.sessionCount}`);
    const senders = t.snapshot().senders.length;
    assert.ok(senders <= 1024, `senders bounded: ${senders}`);
  });

  it('merges ranges so a long session costs one range, and survives a snapshot round trip', () => {
    const t = new ReceiverTracker();
    for (let i = 1; i <= 1000; i++) if (i !== 500) t.commit([rec('s', i)], 'x');
    assert.equal(t.snapshot().owners[0][1][0][1].length, 2);
    t.commit([rec('s', 500)], 'x');
    assert.deepEqual(t.snapshot().owners[0][1][0][1], [[1, 1000]]);
    const restored = ReceiverTracker.restore(JSON.parse(JSON.stringify(t.snapshot())));
    assert.equal(restored.isDuplicate(rec('s', 777)), true);
    assert.equal(restored.isDuplicate(rec('s', 1001)), false);
    assert.equal(restored.review([rec('s', 1003)], 'x').warnings[0].kind, 'sequenceGap');
  });

  it('replays the journal entry of a commit after a restart', () => {
    const t = new ReceiverTracker();
    const entry = t.commit([rec('s', 1, { callBridge: 'cb' }), rec('s', 2, { callBridge: 'cb' })], '10.0.0.1');
    const after = ReceiverTracker.restore(undefined);
    after.replay(JSON.parse(JSON.stringify(entry)));
    assert.equal(after.isDuplicate(rec('s', 2)), true);
    assert.equal(after.review([rec('s', 4, { callBridge: 'cb' })], '10.0.0.1').warnings[0].kind, 'sequenceGap');
  });

  it('reads a version 1 state, and refuses shapes it does not know with a clear reason', () => {
    const v1 = { version: 1, seen: [['s', [[1, 5]]]], senders: [['cb', { session: 's', lastIndex: 5 }]] };
    assert.equal(ReceiverTracker.restore(v1).isDuplicate(rec('s', 3)), true);
    const bad: Array<[unknown, RegExp]> = [
      [{ version: 1 }, /senders is not a list/],
      [{ version: 2, owners: [], senders: 'x' }, /senders is not a list/],
      [{ version: 2, owners: [['ip', [['s', [[5, 1]]]]]], senders: [] }, /range/],
      [{ version: 2, owners: [['ip', [['s', [[1, 5], [3, 9]]]]]], senders: [] }, /overlap/],
      [{ version: 2, owners: [['ip', 'x']], senders: [] }, /list of entries/],
      [{ version: 3 }, /version/],
      ['text', /version/],
    ];
    for (const [state, reason] of bad) assert.throws(() => ReceiverTracker.restore(state), reason, JSON.stringify(state));
    assert.throws(() => new ReceiverTracker().replay({ r: 'x', k: [['s', 'one', null]] }), /journal item/);
  });
});

/**
 * What cms-call-message keeps per call until CMS has taken it (src/cms/message-ledger.ts).
 */
import { strict as assert } from 'node:assert';
import { CallMessageLedger, sameMessage, type LedgerChange } from '../../src/cms/message-ledger';
import { StateShapeError } from '../../src/common/persist';
import type { CallMessage } from '../../src/cms/api';

const A = 'ca110000-0000-4000-8000-00000000000a';
const B = 'ca110000-0000-4000-8000-00000000000b';
const NOTICE: CallMessage = { text: 'External Participant(s) in Meeting', position: 'bottom', duration: 'permanent' };
const CLEAR: CallMessage = { text: '', position: 'bottom', duration: 0 };

describe('cms/message-ledger', () => {
  it('keeps a message until the server has it, and backs off between tries', () => {
    const l = new CallMessageLedger({ retryMinMs: 100, retryMaxMs: 350 });
    l.want(A, NOTICE, 0);
    assert.equal(l.size, 1);
    assert.equal(l.nextDue(), null, 'being sent: not due');
    assert.equal(l.failed(A, NOTICE, 'tls', 'TLS verification failed', 10).final, false);
    assert.equal(l.nextDue(), 110);
    assert.deepEqual(l.takeDue(109), []);
    assert.deepEqual(l.takeDue(110), [A]);
    assert.equal(l.nextDue(), null, 'taken off the schedule while it is tried');
    l.failed(A, NOTICE, 'auth', '401', 200);
    assert.equal(l.nextDue(), 400);
    l.failed(A, NOTICE, 'server', '503', 400);
    l.failed(A, NOTICE, 'network', 'reset', 800);
    assert.equal(l.nextDue(), 800 + 350, 'capped');
    assert.equal(l.get(A)!.failures, 4);
    assert.equal(l.lastError(), 'reset');
    const done = l.accepted(A, NOTICE, 900);
    assert.deepEqual(done, { t: 900, c: A, p: null });
    assert.equal(l.size, 0);
    assert.equal(l.nextDue(), null);
  });

  it('lets a newer message replace the one waiting, and an older one taken leaves the newer one due', () => {
    const l = new CallMessageLedger({ retryMinMs: 100 });
    l.want(A, NOTICE, 0);
    l.failed(A, NOTICE, 'auth', '401', 1);
    l.want(A, CLEAR, 2);
    assert.deepEqual(l.get(A)!.desired, CLEAR);
    assert.equal(l.get(A)!.failures, 0);
    // the failure of the older message while the newer one is on its way changes nothing
    assert.deepEqual(l.failed(A, NOTICE, 'auth', '401', 3), { change: null, final: false });
    // the older message was taken after all: the newer one is still wanted, and due at once
    const c = l.accepted(A, NOTICE, 4)!;
    assert.deepEqual(c.p!.accepted, NOTICE);
    assert.deepEqual(l.takeDue(4), [A]);
    assert.equal(l.accepted(A, { text: '', position: 'top' }, 5)!.p, null, 'every clear is the same');
  });

  it('drops a call that ended (404) and a message CMS refuses, but not a newer one for a refusal of an older', () => {
    const l = new CallMessageLedger();
    l.want(A, NOTICE, 0);
    assert.deepEqual(l.failed(A, NOTICE, 'notFound', 'call not found', 1), { change: { t: 1, c: A, p: null }, final: true });
    l.want(B, NOTICE, 0);
    l.want(B, CLEAR, 1);
    assert.deepEqual(l.failed(B, NOTICE, 'badRequest', '400', 2), { change: null, final: true });
    assert.deepEqual(l.get(B)!.desired, CLEAR);
    assert.equal(l.failed(B, CLEAR, 'badRequest', '400', 3).change!.p, null);
    assert.equal(l.size, 0);
  });

  it('comes back from its snapshot and journal with every call due, and refuses what is not its state', () => {
    const l = new CallMessageLedger();
    const journal: LedgerChange[] = [l.want(A, NOTICE, 1), l.failed(A, NOTICE, 'auth', '401', 2).change!, l.want(B, NOTICE, 3)];
    const saved = JSON.parse(JSON.stringify(l.snapshot()));
    journal.push(l.accepted(B, NOTICE, 4)!);
    const back = CallMessageLedger.fromSaved({ retryMinMs: 100 }, saved, JSON.parse(JSON.stringify(journal.slice(3))));
    assert.deepEqual(back.snapshot(), l.snapshot());
    assert.ok(back.nextDue()! <= Date.now() + 100);
    assert.deepEqual(CallMessageLedger.fromSaved({}, undefined, JSON.parse(JSON.stringify(journal))).snapshot().calls.map((e) => [e[0], e[1]]), [[A, l.get(A)]]);
    for (const bad of [{ version: 2, calls: [] }, { version: 1, calls: [[A, { desired: { text: 1 }, accepted: null, failures: 0, error: null }]] }, { version: 1, calls: [['../x', { desired: NOTICE, accepted: null, failures: 0, error: null }]] }]) {
      assert.throws(() => CallMessageLedger.fromSaved({}, bad, []), StateShapeError, JSON.stringify(bad));
    }
    assert.throws(() => CallMessageLedger.fromSaved({}, undefined, [{ c: A, p: null }]), StateShapeError);
  });

  it('stays bounded: a cap on calls and an age limit', () => {
    const l = new CallMessageLedger({ max: 3, maxAgeMs: 1000 });
    for (let i = 0; i < 5; i++) l.want(`ca110000-0000-4000-8000-00000000000${i}`, NOTICE, i);
    assert.equal(l.size, 3);
    assert.deepEqual(l.prune(1003).map((c) => c.c), ['ca110000-0000-4000-8000-000000000002']);
    assert.equal(l.size, 2);
  });

  it('compares messages as the screen shows them', () => {
    assert.ok(sameMessage(NOTICE, { text: NOTICE.text }));
    assert.ok(!sameMessage(NOTICE, { ...NOTICE, position: 'top' }));
    assert.ok(!sameMessage(NOTICE, { ...NOTICE, duration: 30 }));
    assert.ok(sameMessage(CLEAR, { text: '', position: 'middle', duration: 0 }));
    assert.ok(!sameMessage(NOTICE, null));
  });
});

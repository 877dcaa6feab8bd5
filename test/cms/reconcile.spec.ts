/**
 * The tracker's view checked against what the CMS API says (src/cms/reconcile.ts, CallTracker.reconcile):
 * synthetic API views and record sequences (no public capture of a live CMS API answer with legs).
 */
import { strict as assert } from 'node:assert';
import { CallTracker, type TrackerEvent, type SecurityEvent, type SummaryEvent, type TrackerRecord, type SecurityLevel } from '../../src/cms/tracker';
import { planReconcile, levelShown, checkPlan, type ApiCallView, type ApiLegView, type NoticeTexts } from '../../src/cms/reconcile';
import { readRecord } from '../../src/cms/record';
import { StateShapeError } from '../../src/common/persist';

const TEXTS: NoticeTexts = {
  none: '',
  external: 'External Participant(s) in Meeting',
  restricted: 'Restricted Meeting',
  restrictedExternal: 'Restricted Meeting, External Participant(s) in Meeting',
};
const CALL = 'ca110000-0000-4000-8000-000000000001';
const OTHER = 'ca110000-0000-4000-8000-000000000002';

/** A record as cms-cdr-in's typed messages carry it. */
function rec(type: string, id: string, fields: Record<string, unknown> = {}): TrackerRecord {
  const objectType = type.startsWith('callLeg') ? 'callLeg' : 'call';
  const { raw: _raw, ...r } = readRecord({ type, time: '2024-05-01T09:00:00Z', objectType, id, [objectType]: { id, ...fields } })!;
  return r;
}
const leg = (id: string, extra: Partial<ApiLegView> = {}): ApiLegView => ({ id, name: null, remoteParty: null, remoteAddress: null, subType: null, detail: true, ...extra });
const call = (id: string, legs: ApiLegView[], extra: Partial<ApiCallView> = {}): ApiCallView => ({ id, name: 'Team sync', coSpace: null, callCorrelator: null, messageText: '', legs, legsComplete: true, ...extra });
const security = (ev: TrackerEvent[]) => ev.filter((e): e is SecurityEvent => e.kind === 'security').map((e) => [e.call.callId, e.reason, e.previousLevel, e.call.level, e.source]);
const summaries = (ev: TrackerEvent[]) => ev.filter((e): e is SummaryEvent => e.kind === 'summary').map((e) => e.summary);

/** Reads the API "at" startedAt and applies the plan at `now`, as the node does. */
function reconcile(t: CallTracker, calls: ApiCallView[], startedAt: number, now = startedAt + 10, complete = true): TrackerEvent[] {
  return t.reconcile(planReconcile(t.snapshot(), { calls, complete, startedAt }, TEXTS, t), now);
}

describe('cms/reconcile', () => {
  it('rebuilds a call the records never showed and sets the notice its screen misses', () => {
    const t = new CallTracker({ internalDomains: ['corp.example'] });
    const ev = reconcile(t, [call(CALL, [leg('l-host', { remoteParty: 'host@corp.example' }), leg('l-web', { subType: 'webApp', name: 'Visitor' })])], 1000);
    assert.deepEqual(security(ev), [[CALL, 'externalJoined', 'none', 'external', 'api']]);
    const v = t.view(CALL)!;
    assert.equal(v.participants, 2);
    assert.equal(v.externals, 1);
    // the stream goes on from there: the guest leaves, the notice is cleared; the call ends, summarised as partial
    assert.deepEqual(security(t.apply(rec('callLegEnd', 'l-web'), 2000)), [[CALL, 'externalLeft', 'external', 'none', 'cdr']]);
    const [s] = summaries(t.apply(rec('callEnd', CALL), 3000));
    assert.equal(s.partial, true, 'its callStart was never seen');
    assert.equal(s.participants, 2);
  });

  it('clears a notice of its own that no longer fits, sets one where the screen lost it, and leaves other messages alone', () => {
    const t = new CallTracker();
    t.apply(rec('callStart', CALL, { name: 'Weekly' }), 100);
    t.apply(rec('callLegStart', 'l-guest', { guestConnection: true, call: CALL }), 100);
    assert.equal(t.view(CALL)!.level, 'external');
    t.apply(rec('callStart', OTHER, { name: 'Other' }), 100);
    // the guest left while Node-RED was down; the other call shows our notice though nobody external is in it
    const ev = reconcile(t, [call(CALL, [leg('l-host')], { messageText: TEXTS.external }), call(OTHER, [leg('l-o')], { messageText: ` ${TEXTS.external} ` })], 1000);
    assert.deepEqual(security(ev).sort(), [[CALL, 'externalLeft', 'external', 'none', 'api'], [OTHER, 'externalLeft', 'external', 'none', 'api']]);
    // the tracker believed the notice was shown, but the screen shows nothing (a PUT that never arrived): set again
    t.apply(rec('callLegStart', 'l-web', { subType: 'webApp', call: CALL }), 2000);
    assert.equal(t.view(CALL)!.level, 'external');
    const again = reconcile(t, [call(CALL, [leg('l-host'), leg('l-web', { detail: false })], { messageText: '' })], 3000);
    assert.deepEqual(security(again), [[CALL, 'externalJoined', 'none', 'external', 'api']]);
    // someone else's message in a call that needs none: left as it is
    const foreign = reconcile(t, [call(CALL, [leg('l-host')], { messageText: 'Meeting ends in 5 minutes' })], 4000);
    assert.deepEqual(security(foreign), []);
  });

  it('ends the calls the API no longer has, only when every bridge was read, and not those the stream touched meanwhile', () => {
    const t = new CallTracker();
    t.apply(rec('callStart', CALL, { name: 'Gone', callCorrelator: 'corr-1' }), 100);
    t.apply(rec('callStart', OTHER, { name: 'Same meeting, other bridge', callCorrelator: 'corr-1' }), 100);
    t.apply(rec('callLegStart', 'l-g', { guestConnection: true, call: CALL }), 100);
    assert.equal(t.view(OTHER)!.level, 'external', 'the meeting has an external participant');
    // a bridge could not be read: nothing is ended
    assert.deepEqual(reconcile(t, [], 1000, 1010, false), []);
    assert.ok(t.view(CALL));
    // a callStart came while the API was read: that call stays
    const late = 'ca110000-0000-4000-8000-000000000003';
    t.apply(rec('callStart', late, { name: 'Started during the read' }), 2005);
    const ev = reconcile(t, [call(OTHER, [], { callCorrelator: 'corr-1', messageText: TEXTS.external })], 2000);
    assert.deepEqual(summaries(ev).map((s) => [s.callId, s.ending, s.guests]), [[CALL, 'notInApi', 1]]);
    assert.deepEqual(security(ev), [[OTHER, 'externalLeft', 'external', 'none', 'api']], 'the meeting lost its external participant with the call');
    assert.ok(t.view(late));
  });

  it('does not bring back what the stream ended while the API was read, nor overrule its newer news', () => {
    const t = new CallTracker();
    t.apply(rec('callStart', CALL, { name: 'Live' }), 100);
    t.apply(rec('callLegStart', 'l-web', { subType: 'webApp', call: CALL }), 100);
    t.apply(rec('callLegStart', 'l-sip', { remoteParty: 'a@b', call: CALL }), 100);
    // the read began at 1000; the Web App leg ended at 1005 (the list, read at 1001, still has it);
    // the SIP leg was updated at 1006 (into the IVR, no call): its record is newer than the list
    t.apply(rec('callLegEnd', 'l-web'), 1005);
    t.apply(rec('callLegUpdate', 'l-sip', { ivr: null }), 1006);
    const ended = 'ca110000-0000-4000-8000-000000000009';
    t.apply(rec('callEnd', ended), 1007);
    const ev = reconcile(t, [call(CALL, [leg('l-web', { subType: 'webApp' }), leg('l-sip')]), call(ended, [leg('l-x', { subType: 'webApp' })])], 1000);
    assert.deepEqual(security(ev), []);
    assert.equal(t.view(CALL)!.participants, 0);
    assert.equal(t.view(ended), null, 'a call that ended during the read stays ended');
  });

  it('drops legs that left, keeps what the records said of a leg (a guest), and moves a leg the API puts in another call', () => {
    const t = new CallTracker({ webAppExternal: false });
    t.apply(rec('callStart', CALL, { name: 'A' }), 100);
    t.apply(rec('callStart', OTHER, { name: 'B' }), 100);
    t.apply(rec('callLegStart', 'l-guest', { guestConnection: true, call: CALL }), 100);
    t.apply(rec('callLegStart', 'l-left', { call: CALL }), 100);
    t.apply(rec('callLegStart', 'l-moves', { guestConnection: true, call: CALL }), 100);
    const ev = reconcile(t, [
      call(CALL, [leg('l-guest', { detail: false })], { messageText: TEXTS.external }),
      call(OTHER, [leg('l-moves', { detail: false })]),
    ], 1000);
    assert.deepEqual(security(ev), [[OTHER, 'externalJoined', 'none', 'external', 'api']]);
    assert.equal(t.view(CALL)!.participants, 1);
    assert.equal(t.view(CALL)!.guests, 1, 'the API does not say guest: the record did');
    // a leg list read while it moved: a leg missing from it has not necessarily left
    reconcile(t, [call(CALL, [], { messageText: TEXTS.external, legsComplete: false })], 2000);
    assert.equal(t.view(CALL)!.guests, 1);
  });

  it('replays a reconcile from the journal after a restart, and refuses one of the wrong shape', () => {
    const t = new CallTracker();
    const plan = planReconcile(t.snapshot(), { calls: [call(CALL, [leg('l-web', { subType: 'webApp' })])], complete: true, startedAt: 1000 }, TEXTS, t);
    t.reconcile(plan, 1010);
    const journal = [{ t: 1010, r: JSON.parse(JSON.stringify(plan)) }, { t: 2000, a: rec('callLegEnd', 'l-web') }];
    const restored = CallTracker.fromSaved({}, undefined, journal);
    t.apply(rec('callLegEnd', 'l-web'), 2000);
    assert.deepEqual(restored.snapshot(), t.snapshot());
    assert.equal(restored.view(CALL)!.level, 'none');
    assert.throws(() => CallTracker.fromSaved({}, undefined, [{ t: 1, r: { end: [], calls: [{ id: CALL, shown: 'loud', legs: [], drop: [] }] } }]), StateShapeError);
    assert.throws(() => checkPlan({ end: [7], calls: [] }), StateShapeError);
  });

  it('reads which notice a screen shows', () => {
    const cases: Array<[string, SecurityLevel]> = [
      ['', 'none'], ['  ', 'none'], [TEXTS.external, 'external'], [TEXTS.restricted, 'restricted'],
      [TEXTS.restrictedExternal, 'restrictedExternal'], ['Something else', 'none'],
    ];
    for (const [shown, level] of cases) assert.equal(levelShown(shown, TEXTS), level, shown);
  });
});

/**
 * The call tracker from hand-made record sequences (synthetic: no public capture has guestConnection or
 * webApp legs, specs/cms.md §11). Each sequence is written as CMS XML, parsed by the real parser in both
 * value modes and turned into records the way cms-cdr-in's messages carry them.
 */
import { strict as assert } from 'node:assert';
import { parseCdrDocument, type CmsRecord, type ValueMode } from '../../src/cms/parse';
import { readRecord as toTrackerRecord } from '../../src/cms/record';
import { CallTracker, hostOf, restrictedPattern, domainList, type TrackerEvent, type SecurityEvent, type SummaryEvent, type TrackerOptions } from '../../src/cms/tracker';
import { own } from '../helpers/fixtures';

const BRIDGE_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const BRIDGE_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const SESSION_A = '11111111-0000-4000-8000-000000000001';
const SESSION_B = '22222222-0000-4000-8000-000000000002';

type Fields = Record<string, string | null>;
let index = 0;
let clock = 0;

function rec(type: string, id: string, fields: Fields = {}, time = '2024-03-01T10:00:00Z'): string {
  const obj = type.startsWith('callLeg') ? 'callLeg' : type.startsWith('call') ? 'call' : type.startsWith('recording') ? 'recording' : 'streaming';
  const body = Object.entries(fields).map(([k, v]) => (v === null ? `<${k}/>` : `<${k}>${v}</${k}>`)).join('');
  index++;
  return `<record type="${type}" time="${time}" recordIndex="${index}" correlatorIndex="${index + 100}"><${obj} id="${id}">${body}</${obj}></record>`;
}

function post(records: string[], session = SESSION_A, callBridge?: string): string {
  return `<?xml version="1.0"?><records session="${session}"${callBridge ? ` callBridge="${callBridge}"` : ''}>${records.join('')}</records>`;
}

/** What cms-cdr-in puts in msg.payload / msg.cms for one record. */
function asMessage(r: CmsRecord): { payload: unknown; cms: Record<string, unknown> } {
  const cms = { session: r.session, callBridge: r.callBridge, type: r.type, recordIndex: r.recordIndex, correlatorIndex: r.correlatorIndex, objectType: r.objectType, id: r.id };
  const payload = r.xmltodict ?? { type: r.type, time: r.time, recordIndex: r.recordIndex, correlatorIndex: r.correlatorIndex, session: r.session, callBridge: r.callBridge, objectType: r.objectType, id: r.id, ...r.body };
  return { payload, cms };
}

class Run {
  readonly events: TrackerEvent[] = [];
  constructor(public tracker: CallTracker, private readonly mode: ValueMode) {}
  feed(body: string, now = clock): TrackerEvent[] {
    const out: TrackerEvent[] = [];
    for (const r of parseCdrDocument(body, this.mode).records) {
      const { payload, cms } = asMessage(r);
      const tr = toTrackerRecord(payload, cms);
      assert.ok(tr, 'record recognised');
      out.push(...this.tracker.apply(tr, now));
    }
    this.events.push(...out);
    return out;
  }
  security(): SecurityEvent[] {
    return this.events.filter((e): e is SecurityEvent => e.kind === 'security');
  }
  summaries(): SummaryEvent[] {
    return this.events.filter((e): e is SummaryEvent => e.kind === 'summary');
  }
}

const CALL = '6af88404-91a4-441a-b46e-b4c455c9959d';
const CORR = 'c6727635-cba3-4c22-bdfa-52b1c4112db7';

for (const mode of ['typed', 'xmltodict'] as ValueMode[]) {
  describe(`cms/tracker (${mode} records)`, () => {
    const run = (opts: Partial<TrackerOptions> = {}) => new Run(new CallTracker(opts), mode);

    it('announces a guest joining and leaving, and summarises the call', () => {
      const r = run();
      r.feed(post([rec('callStart', CALL, { name: 'Weekly sync', callCorrelator: CORR, callType: 'coSpace' })]));
      assert.equal(r.security().length, 0, 'an ordinary call with no externals changes nothing');
      r.feed(post([rec('callLegStart', 'leg-host', { displayName: 'Host', remoteParty: 'host@corp.example', type: 'sip', direction: 'incoming', call: CALL })]));
      assert.equal(r.security().length, 0);
      const joined = r.feed(post([rec('callLegStart', 'leg-guest', { displayName: 'Visitor', guestConnection: 'true', type: 'acano', call: CALL })]));
      assert.equal(joined.length, 1);
      const ev = joined[0] as SecurityEvent;
      assert.equal(ev.reason, 'externalJoined');
      assert.equal(ev.previousLevel, 'none');
      assert.equal(ev.call.level, 'external');
      assert.equal(ev.call.callId, CALL);
      assert.equal(ev.call.participants, 2);
      assert.equal(ev.call.guests, 1);
      assert.equal(ev.call.externals, 1);
      // updates of the guest's leg change nothing
      assert.deepEqual(r.feed(post([rec('callLegUpdate', 'leg-guest', { state: 'connected', call: CALL, deactivated: 'false' })])), []);
      const left = r.feed(post([rec('callLegEnd', 'leg-guest', { reason: 'remoteTeardown', durationSeconds: '60' }, '2024-03-01T10:01:00Z')]));
      assert.equal(left.length, 1);
      assert.equal((left[0] as SecurityEvent).reason, 'externalLeft');
      assert.equal((left[0] as SecurityEvent).call.level, 'none');
      r.feed(post([
        rec('callLegEnd', 'leg-host', { reason: 'remoteTeardown' }, '2024-03-01T10:02:00Z'),
        rec('callEnd', CALL, { callLegsCompleted: '2', callLegsMaxActive: '2', durationSeconds: '120' }, '2024-03-01T10:02:00Z'),
      ]));
      const [sum] = r.summaries();
      assert.equal(sum.summary.callId, CALL);
      assert.equal(sum.summary.name, 'Weekly sync');
      assert.equal(sum.summary.ending, 'callEnd');
      assert.equal(sum.summary.participants, 2);
      assert.equal(sum.summary.guests, 1);
      assert.equal(sum.summary.externals, 1);
      assert.equal(sum.summary.maxParticipants, 2);
      assert.equal(sum.summary.durationSeconds, 120);
      assert.equal(sum.summary.callLegsCompleted, 2);
      assert.equal(sum.summary.legsOpenAtEnd, 0);
      assert.equal(sum.summary.partial, false);
      assert.equal(r.tracker.counts().calls, 0);
      assert.equal(r.tracker.counts().legs, 0);
    });

    it('counts a Web App leg as external (option on by default) and not when turned off', () => {
      const seq = [
        rec('callStart', CALL, { name: 'Design review' }),
        rec('callLegStart', 'leg-web', { displayName: 'Partner', subType: 'webApp', type: 'acano', call: CALL }),
      ];
      const on = run();
      on.feed(post(seq));
      assert.deepEqual(on.security().map((e) => [e.reason, e.call.level, e.call.webApp]), [['externalJoined', 'external', 1]]);
      const off = run({ webAppExternal: false });
      off.feed(post(seq));
      assert.equal(off.security().length, 0);
      assert.equal(off.tracker.view(CALL)!.webApp, 1);
      assert.equal(off.tracker.view(CALL)!.externals, 0);
    });

    it('announces a restricted call when it starts, and both states together', () => {
      const r = run();
      const started = r.feed(post([rec('callStart', CALL, { name: 'Project RESTRICTED board ' })]));
      assert.deepEqual(started.map((e) => [(e as SecurityEvent).reason, (e as SecurityEvent).call.level]), [['restrictedStart', 'restricted']]);
      const joined = r.feed(post([rec('callLegStart', 'leg-web', { subType: 'webApp', call: CALL })]));
      assert.deepEqual(joined.map((e) => [(e as SecurityEvent).reason, (e as SecurityEvent).call.level]), [['externalJoined', 'restrictedExternal']]);
      const left = r.feed(post([rec('callLegEnd', 'leg-web', { reason: 'remoteTeardown' })]));
      assert.deepEqual(left.map((e) => [(e as SecurityEvent).reason, (e as SecurityEvent).call.level]), [['externalLeft', 'restricted']]);
      const custom = run({ restrictedPattern: restrictedPattern('^secret\\b') });
      assert.equal(custom.feed(post([rec('callStart', 'c2', { name: 'Secret plans' })])).length, 1);
      assert.equal(custom.feed(post([rec('callStart', 'c3', { name: 'Top secret' })])).length, 0);
    });

    it('keeps a leg whose call arrives only in a later callLegUpdate', () => {
      const r = run();
      r.feed(post([rec('callStart', CALL, { name: 'All hands', callCorrelator: CORR })]));
      assert.deepEqual(r.feed(post([rec('callLegStart', 'leg-g', { displayName: 'Guest', guestConnection: 'true', type: 'acano', direction: 'incoming' })])), []);
      assert.equal(r.tracker.counts().pendingLegs, 1);
      r.feed(post([rec('callLegUpdate', 'leg-g', { ivr: null })]));
      assert.equal(r.tracker.counts().pendingLegs, 1, 'still waiting in the IVR');
      const joined = r.feed(post([rec('callLegUpdate', 'leg-g', { state: 'connected', call: CALL })]));
      assert.deepEqual(joined.map((e) => [(e as SecurityEvent).reason, (e as SecurityEvent).call.guests]), [['externalJoined', 1]]);
      assert.equal(r.tracker.counts().pendingLegs, 0);
    });

    it('groups a meeting spread over two clustered bridges by callCorrelator', () => {
      const r = run({ internalDomains: ['corp.example'] });
      const CALL_A = 'aaaa0001-0000-4000-8000-000000000001';
      const CALL_B = 'bbbb0001-0000-4000-8000-000000000001';
      r.feed(post([rec('callStart', CALL_A, { name: 'Cluster meeting', callCorrelator: CORR })], SESSION_A, BRIDGE_A));
      r.feed(post([rec('callLegStart', 'a-alice', { remoteParty: 'alice@corp.example', call: CALL_A })], SESSION_A, BRIDGE_A));
      r.feed(post([rec('callStart', CALL_B, { name: 'Cluster meeting', callCorrelator: CORR })], SESSION_B, BRIDGE_B));
      // the links between the bridges are not participants, whatever their address
      r.feed(post([rec('callLegStart', 'a-link', { remoteParty: 'cb-b.cluster.local', subType: 'distributionLink', call: CALL_A })], SESSION_A, BRIDGE_A));
      r.feed(post([rec('callLegStart', 'b-link', { remoteParty: 'cb-a.cluster.local', subType: 'distributionLink', call: CALL_B })], SESSION_B, BRIDGE_B));
      assert.equal(r.security().length, 0);
      assert.equal(r.tracker.view(CALL_A)!.participants, 1);
      // an outside SIP caller joins on bridge B: both bridges' calls must show the notice
      const joined = r.feed(post([rec('callLegStart', 'b-bob', { remoteParty: 'bob@partner.example', remoteAddress: 'sip:bob@partner.example;transport=tls', type: 'sip', call: CALL_B })], SESSION_B, BRIDGE_B));
      assert.deepEqual(joined.map((e) => [(e as SecurityEvent).call.callId, (e as SecurityEvent).call.callBridge, (e as SecurityEvent).reason]).sort(), [
        [CALL_A, BRIDGE_A, 'externalJoined'],
        [CALL_B, BRIDGE_B, 'externalJoined'],
      ]);
      const view = r.tracker.view(CALL_A)!;
      assert.equal(view.participants, 2);
      assert.equal(view.externals, 1);
      assert.equal(view.callExternals, 0);
      // an internal subdomain user is not external
      assert.deepEqual(r.feed(post([rec('callLegStart', 'b-carol', { remoteParty: 'carol@eu.corp.example', call: CALL_B })], SESSION_B, BRIDGE_B)), []);
      // bridge B's call ends with bob's leg still open: bridge A's call loses its external participant
      const ended = r.feed(post([rec('callEnd', CALL_B, { durationSeconds: '30' })], SESSION_B, BRIDGE_B));
      assert.deepEqual(ended.map((e) => e.kind), ['summary', 'security']);
      assert.equal((ended[0] as SummaryEvent).summary.legsOpenAtEnd, 3);
      assert.equal((ended[1] as SecurityEvent).call.callId, CALL_A);
      assert.equal((ended[1] as SecurityEvent).reason, 'externalLeft');
    });

    it('ends a call whose leg never got its callLegEnd, and expires calls that never end', () => {
      const r = run({ expireAfterMs: 60_000 });
      r.feed(post([rec('callStart', CALL, { name: 'Lost leg' }), rec('callLegStart', 'leg-1', { guestConnection: 'true', call: CALL })]), 0);
      r.feed(post([rec('callEnd', CALL, {}, '2024-03-01T10:05:00Z')]), 1000);
      const [sum] = r.summaries();
      assert.equal(sum.summary.legsOpenAtEnd, 1);
      assert.equal(sum.summary.durationSeconds, 300);
      assert.equal(r.tracker.counts().legs, 0);
      // no security event for a call that is gone: nobody can see the notice any more
      assert.equal(r.security().filter((e) => e.reason === 'externalLeft').length, 0);

      r.feed(post([rec('callStart', 'call-2', { name: 'Never ends' }), rec('callLegStart', 'leg-2', { call: 'call-2' }), rec('callLegStart', 'pending-1', {})]), 10_000);
      assert.deepEqual(r.tracker.expire(60_000), []);
      const expired = r.tracker.expire(70_001);
      assert.deepEqual(expired.map((e) => [e.kind, (e as SummaryEvent).summary.ending, (e as SummaryEvent).summary.callId]), [['summary', 'expired', 'call-2']]);
      assert.deepEqual({ ...r.tracker.counts(), expiredCalls: r.tracker.counts().expiredCalls }, {
        calls: 0, legs: 0, pendingLegs: 0, externalCalls: 0, restrictedCalls: 0, expiredCalls: 1, evictedCalls: 0, droppedPendingLegs: 0, unknownLegEnds: 0,
      });
    });

    it('survives a restart mid-call: the state round-trips through JSON', () => {
      const r = run();
      r.feed(post([rec('callStart', CALL, { name: 'Restricted review', callCorrelator: CORR }), rec('callLegStart', 'leg-web', { subType: 'webApp', call: CALL }), rec('callLegStart', 'leg-p', { guestConnection: 'true' })]));
      assert.deepEqual(r.security().map((e) => e.reason), ['restrictedStart', 'externalJoined']);
      const saved = JSON.parse(JSON.stringify(r.tracker.snapshot()));
      const after = new Run(new CallTracker({}, saved), mode);
      assert.equal(after.tracker.view(CALL)!.level, 'restrictedExternal');
      // the pending guest finds its call after the restart
      after.feed(post([rec('callLegUpdate', 'leg-p', { call: CALL })]));
      assert.equal(after.security().length, 0, 'already announced before the restart');
      assert.equal(after.tracker.view(CALL)!.externals, 2);
      after.feed(post([rec('callLegEnd', 'leg-web', {})]));
      const left = after.feed(post([rec('callLegEnd', 'leg-p', {})]));
      assert.deepEqual(left.map((e) => [(e as SecurityEvent).reason, (e as SecurityEvent).call.level]), [['externalLeft', 'restricted']]);
      after.feed(post([rec('callEnd', CALL, {})]));
      assert.equal(after.summaries()[0].summary.externals, 2);
    });

    it('stays bounded under a flood of SIP-scanner legs', () => {
      const r = run({ maxPendingLegs: 100 });
      r.feed(post([rec('callStart', CALL, { name: 'Real call' })]));
      r.feed(post([rec('callLegStart', 'real-guest-leg', { guestConnection: 'true' })]));
      for (let i = 0; i < 1000; i++) {
        // scanners: a leg that never reaches a call, often without its end
        const body = [rec('callLegStart', `scan-${i}`, { remoteParty: `100@198.51.100.${i % 250}`, type: 'sip', direction: 'incoming' })];
        if (i % 3 === 0) body.push(rec('callLegEnd', `scan-${i}`, { reason: 'unknownDestination' }));
        // a real participant waiting in the IVR keeps being heard from: it must not be the one dropped
        if (i % 50 === 0) body.push(rec('callLegUpdate', 'real-guest-leg', { ivr: null }));
        r.feed(post(body));
      }
      const joined = r.feed(post([rec('callLegUpdate', 'real-guest-leg', { call: CALL })]));
      assert.deepEqual(joined.map((e) => (e as SecurityEvent).reason), ['externalJoined']);
      const c = r.tracker.counts();
      assert.ok(c.pendingLegs <= 100, `pending ${c.pendingLegs}`);
      assert.ok(c.droppedPendingLegs > 0);
      assert.ok(JSON.stringify(r.tracker.snapshot()).length < 100 * 1024);
      assert.equal(r.tracker.counts().calls, 1);
    });
  });
}

describe('cms/tracker details', () => {
  it('reads the seed call from the fixture (xmltodict and typed) with no security event', () => {
    for (const mode of ['typed', 'xmltodict'] as ValueMode[]) {
      const r = new Run(new CallTracker(), mode);
      r.feed(own('cms', 'cdr-receiver-db-call.xml'));
      assert.equal(r.security().length, 0);
      const [s] = r.summaries();
      assert.equal(s.summary.name, 'Scarif Weekly Data Backup Planning Meeting');
      assert.equal(s.summary.participants, 1);
      assert.equal(s.summary.durationSeconds, 4);
      assert.equal(s.summary.callCorrelator, 'c6727635-cba3-4c22-bdfa-52b1c4112db7');
    }
  });

  it('marks the recorder leg of recordingStart as not a participant', () => {
    const r = new Run(new CallTracker({ internalDomains: ['corp.example'] }), 'typed');
    r.feed(post([rec('callStart', CALL, { name: 'Recorded' }), rec('callLegStart', 'rec-leg', { remoteParty: 'recorder@rec.vendor.example', call: CALL })]));
    assert.equal(r.security().length, 1, 'looks external until we know it records');
    const ev = r.feed(post([rec('recordingStart', 'rec-1', { call: CALL, callLeg: 'rec-leg', path: 'spaces/x' })]));
    assert.deepEqual(ev.map((e) => (e as SecurityEvent).reason), ['externalLeft']);
    r.feed(post([rec('recordingEnd', 'rec-1'), rec('callEnd', CALL, {})]));
    assert.equal(r.summaries()[0].summary.recorded, true);
    assert.equal(r.summaries()[0].summary.participants, 1, 'counted before it was known to be the recorder');
  });

  it('ends the calls of a restarted bridge session', () => {
    const r = new Run(new CallTracker(), 'typed');
    r.feed(post([rec('callStart', CALL, { name: 'x' })], SESSION_A, BRIDGE_A));
    const ev = r.tracker.bridgeRestarted(SESSION_A, 0);
    assert.deepEqual(ev.map((e) => (e as SummaryEvent).summary.ending), ['bridgeRestarted']);
  });

  it('caps the number of calls', () => {
    const r = new Run(new CallTracker({ maxCalls: 10 }), 'typed');
    for (let i = 0; i < 25; i++) r.feed(post([rec('callStart', `call-${i}`, { name: 'n' })]), i);
    assert.equal(r.tracker.counts().calls, 10);
    assert.equal(r.summaries().length, 15);
    assert.ok(r.summaries().every((s) => s.summary.ending === 'evicted'));
  });

  it('finds the host of SIP addresses', () => {
    assert.equal(hostOf('jyn@Wobani.org'), 'wobani.org');
    assert.equal(hostOf('sip:bob@partner.example:5061;transport=tls'), 'partner.example');
    assert.equal(hostOf('"Bob" <sip:bob@partner.example>'), 'partner.example');
    assert.equal(hostOf('0386123456@10.83.154.150;user=phone'), '10.83.154.150');
    assert.equal(hostOf('cms.corp.example'), 'cms.corp.example');
    assert.equal(hostOf(''), null);
    assert.deepEqual(domainList(' corp.example, eu.corp.example;10.0.0.1 '), ['corp.example', 'eu.corp.example', '10.0.0.1']);
    assert.equal(restrictedPattern('').test('RESTRICTED'), true);
    assert.equal(restrictedPattern('/^Top/').test('top'), false);
  });

  it('ignores what is not a record', () => {
    assert.equal(toTrackerRecord(null), null);
    assert.equal(toTrackerRecord('text'), null);
    assert.equal(toTrackerRecord({ foo: 1 }), null);
    const t = new CallTracker();
    assert.deepEqual(t.apply({ type: 'somethingNew', time: null, session: null, callBridge: null, objectType: 'thing', id: 'x', fields: {} }, 0), []);
    assert.deepEqual(t.apply({ type: 'callLegEnd', time: null, session: null, callBridge: null, objectType: 'callLeg', id: 'nope', fields: {} }, 0), []);
    assert.equal(t.counts().unknownLegEnds, 1);
  });
});

void clock;

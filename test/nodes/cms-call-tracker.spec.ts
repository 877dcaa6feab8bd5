/**
 * cms-cdr-in → cms-call-tracker in a real Node-RED runtime: records posted over HTTP, security changes on
 * output 1, summaries on output 2, the state kept across a restart of the flows.
 */
import { strict as assert } from 'node:assert';
import supertest from 'supertest';
import cmsCdrIn from '../../src/nodes/cms-cdr-in';
import cmsCallTracker from '../../src/nodes/cms-call-tracker';
import { helper, capture, collect, settle, useTempUserDir } from '../helpers/red';
import { own } from '../helpers/fixtures';

const CALL = '0b6f6d53-5bb3-4b25-9a5c-000000000001';
let idx = 0;
function rec(type: string, id: string, body: string): string {
  idx++;
  const obj = type.startsWith('callLeg') ? 'callLeg' : 'call';
  return `<record type="${type}" time="2024-05-01T09:00:${String(idx % 60).padStart(2, '0')}Z" recordIndex="${idx}" correlatorIndex="${idx}"><${obj} id="${id}">${body}</${obj}></record>`;
}
const post = (...records: string[]) => `<?xml version="1.0"?><records session="5e55e55e-0000-4000-8000-000000000001">${records.join('')}</records>`;

describe('cms-call-tracker node', function () {
  const cdrIn = capture(cmsCdrIn as any);
  const tracker = capture(cmsCallTracker as any);

  const flow = (values: string): any[] => [
    { id: 'tab', type: 'tab', label: 'tracker' },
    { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr-tracker', values, wires: [['tr'], ['tr']] },
    { id: 'tr', z: 'tab', type: 'cms-call-tracker', internalDomains: 'corp.example', restrictedPattern: 'restricted', expireHours: 24, wires: [['sec'], ['sum']] },
    { id: 'sec', z: 'tab', type: 'helper' },
    { id: 'sum', z: 'tab', type: 'helper' },
  ];

  // state files go to a temporary user directory, not ~/.node-red; each test starts without saved state
  const tmp = useTempUserDir('suite', 'cms-tracker-node-');

  for (const values of ['typed', 'xmltodict']) {
    it(`announces externals and restricted calls, and summarises (${values} records)`, async () => {
      await helper.load([cdrIn.module, tracker.module], flow(values));
      const http = supertest(cdrIn.red.RED.httpNode);
      const sec = helper.getNode('sec');
      const sum = helper.getNode('sum');
      const got = collect(sec, 3);
      const ended = collect(sum, 1);
      await http.post('/cdr-tracker').set('content-type', 'text/xml').send(post(
        rec('callStart', CALL, '<name>Restricted: budget</name><callCorrelator>cccccccc-0000-4000-8000-000000000001</callCorrelator>'),
        rec('callLegStart', 'leg-1', '<remoteParty>ann@corp.example</remoteParty><type>sip</type><call>' + CALL + '</call>'),
        rec('callLegStart', 'leg-2', '<remoteParty>zed@elsewhere.example</remoteParty><type>sip</type>'),
      )).expect(200);
      await http.post('/cdr-tracker').set('content-type', 'text/xml').send(post(
        rec('callLegUpdate', 'leg-2', `<state>connected</state><call>${CALL}</call>`),
        rec('callLegEnd', 'leg-2', '<reason>remoteTeardown</reason>'),
        rec('callLegEnd', 'leg-1', '<reason>remoteTeardown</reason>'),
        rec('callEnd', CALL, '<durationSeconds>9</durationSeconds>'),
      )).expect(200);
      const msgs = await got;
      assert.deepEqual(msgs.map((m) => [m.topic, m.payload.event, m.payload.level, m.callId]), [
        ['security', 'restrictedStart', 'restricted', CALL],
        ['security', 'externalJoined', 'restrictedExternal', CALL],
        ['security', 'externalLeft', 'restricted', CALL],
      ]);
      assert.deepEqual(msgs.map((m) => m.message), [
        { text: 'Restricted Meeting', position: 'bottom', duration: 'permanent' },
        { text: 'Restricted Meeting, External Participant(s) in Meeting', position: 'bottom', duration: 'permanent' },
        { text: 'Restricted Meeting', position: 'bottom', duration: 'permanent' },
      ]);
      assert.equal(msgs[0].cms.session, '5e55e55e-0000-4000-8000-000000000001', 'keeps the input message properties');
      const [s] = await ended;
      assert.equal(s.topic, 'callSummary');
      assert.equal(s.payload.name, 'Restricted: budget');
      assert.equal(s.payload.participants, 2);
      assert.equal(s.payload.externals, 1);
      assert.equal(s.payload.durationSeconds, 9);
    });
  }

  it('keeps the call state across a restart of the flows', async () => {
    await helper.load([cdrIn.module, tracker.module], flow('typed'));
    let http = supertest(cdrIn.red.RED.httpNode);
    const first = collect(helper.getNode('sec'), 1);
    await http.post('/cdr-tracker').set('content-type', 'text/xml').send(post(
      rec('callStart', CALL, '<name>Weekly</name>'),
      rec('callLegStart', 'leg-g', `<guestConnection>true</guestConnection><call>${CALL}</call>`),
    )).expect(200);
    assert.equal((await first)[0].payload.event, 'externalJoined');
    await helper.unload(); // close writes the state
    await helper.load([cdrIn.module, tracker.module], flow('typed'));
    http = supertest(cdrIn.red.RED.httpNode);
    const second = collect(helper.getNode('sec'), 1);
    await http.post('/cdr-tracker').set('content-type', 'text/xml').send(post(rec('callLegEnd', 'leg-g', '<reason>remoteTeardown</reason>'))).expect(200);
    const [left] = await second;
    assert.equal(left.payload.event, 'externalLeft');
    assert.deepEqual(left.message, { text: '', position: 'bottom', duration: 0 });
  });

  it('accepts a per-POST array and ignores what is not a record', async () => {
    await helper.load([cdrIn.module, tracker.module], <any[]>[
      { id: 'tab', type: 'tab', label: 'tracker' },
      { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr-tracker-post', values: 'xmltodict', output: 'post', wires: [['tr'], []] },
      { id: 'tr', z: 'tab', type: 'cms-call-tracker', wires: [['sec'], ['sum']] },
      { id: 'sec', z: 'tab', type: 'helper' },
      { id: 'sum', z: 'tab', type: 'helper' },
    ]);
    const sum = collect(helper.getNode('sum'), 1);
    helper.getNode('tr').receive({ payload: 'hello' });
    await supertest(cdrIn.red.RED.httpNode).post('/cdr-tracker-post').set('content-type', 'text/xml').send(own('cms', 'cdr-receiver-db-call.xml')).expect(200);
    const [s] = await sum;
    assert.equal(s.payload.name, 'Scarif Weekly Data Backup Planning Meeting');
    assert.equal(s.payload.participants, 1);
    await settle();
  });
  it('summarises the calls of a call bridge that restarted (cms-cdr-in sessionChanged)', async () => {
    await helper.load([cdrIn.module, tracker.module], flow('typed'));
    const http = supertest(cdrIn.red.RED.httpNode);
    const sum = collect(helper.getNode('sum'), 1);
    await http.post('/cdr-tracker').set('content-type', 'text/xml').send(post(rec('callStart', CALL, '<name>Before the restart</name>'))).expect(200);
    const restarted = `<?xml version="1.0"?><records session="5e55e55e-0000-4000-8000-000000000002">${rec('callStart', 'after-restart', '<name>New</name>')}</records>`;
    await http.post('/cdr-tracker').set('content-type', 'text/xml').send(restarted).expect(200);
    const [s] = await sum;
    assert.equal(s.payload.callId, CALL);
    assert.equal(s.payload.ending, 'bridgeRestarted');
  });

  it('expires a call whose end never comes', async () => {
    await helper.load([tracker.module], [
      { id: 'tab', type: 'tab', label: 'tracker' },
      // 0.0003 h ≈ 1 s; the node looks for stale calls every second
      { id: 'tr', z: 'tab', type: 'cms-call-tracker', expireHours: 0.0003, wires: [['sec'], ['sum']] },
      { id: 'sec', z: 'tab', type: 'helper' },
      { id: 'sum', z: 'tab', type: 'helper' },
    ] as any[]);
    const sum = collect(helper.getNode('sum'), 1, 6000);
    helper.getNode('tr').receive({ topic: 'callStart', payload: { type: 'callStart', time: '2024-05-01T09:00:00Z', objectType: 'call', id: CALL, call: { id: CALL, name: 'Forgotten' } } });
    const [s] = await sum;
    assert.equal(s.payload.ending, 'expired');
    assert.equal(s.payload.name, 'Forgotten');
    assert.equal(s.topic, 'callSummary');
  });

  it('writes nothing for messages that change nothing (warnings, unknown records), and starts from a damaged file', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const stateDir = path.join(tmp.dir(), 'cdrflow-state');
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'cms-call-tracker-tr.json'), '{"version":1,"calls":[{"id":7}],"legs":[],"media":[]}');
    await helper.load([tracker.module], [
      { id: 'tab', type: 'tab', label: 'tracker' },
      { id: 'tr', z: 'tab', type: 'cms-call-tracker', wires: [['sec'], ['sum']] },
      { id: 'sec', z: 'tab', type: 'helper' },
      { id: 'sum', z: 'tab', type: 'helper' },
    ] as any[]);
    const tr = helper.getNode('tr') as any;
    for (let i = 0; i < 100; i++) {
      tr.receive({ topic: 'sequenceGap', payload: { kind: 'sequenceGap', expected: i, received: i + 2 } });
      tr.receive({ topic: 'futureRecord', payload: { type: 'futureRecord', time: '2024-05-01T09:00:00Z', id: 'x', future: { id: 'x' } } });
    }
    await settle(100);
    const warnings = (tr.warn.getCalls() as any[]).map((c) => String(c.args[0]));
    assert.ok(warnings.some((w) => /a call is not a tracked call/.test(w)), warnings.join('\n'));
    const files = fs.readdirSync(stateDir).filter((f) => f.startsWith('cms-call-tracker-tr.json') && !f.includes('unreadable'));
    assert.deepEqual(files, [], 'nothing written for 200 messages that changed nothing');
    tr.receive({ topic: 'callStart', payload: { type: 'callStart', time: '2024-05-01T09:00:00Z', objectType: 'call', id: CALL, call: { id: CALL, name: 'Real' } } });
    await settle(50);
    assert.equal(fs.readFileSync(path.join(stateDir, 'cms-call-tracker-tr.json.log'), 'utf8').trim().split('\n').length, 1, 'one line for the one real change');
  });
});

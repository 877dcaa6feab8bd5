/**
 * cms-cdr-in → cms-call-tracker in a real Node-RED runtime: records posted over HTTP, security changes on
 * output 1, summaries on output 2, the state kept across a restart of the flows.
 */
import { strict as assert } from 'node:assert';
import supertest from 'supertest';
import cmsCdrIn from '../../src/nodes/cms-cdr-in';
import cmsCallTracker from '../../src/nodes/cms-call-tracker';
import cmsServer from '../../src/nodes/cms-server';
import { helper, capture, collect, settle, useTempUserDir } from '../helpers/red';
import { own } from '../helpers/fixtures';
import { CmsApiSimulator } from '../simulators/cms-api';

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
    // the warning comes once the saved state is read; the messages queued behind it are handled right after
    const warnings = () => (tr.warn.getCalls() as any[]).map((c) => String(c.args[0]));
    await until('the warning about the damaged file', () => warnings().some((w) => /a call is not a tracked call/.test(w)));
    await settle(100);
    const files = fs.readdirSync(stateDir).filter((f) => f.startsWith('cms-call-tracker-tr.json') && !f.includes('unreadable'));
    assert.deepEqual(files, [], 'nothing written for 200 messages that changed nothing');
    tr.receive({ topic: 'callStart', payload: { type: 'callStart', time: '2024-05-01T09:00:00Z', objectType: 'call', id: CALL, call: { id: CALL, name: 'Real' } } });
    await settle(50);
    assert.equal(fs.readFileSync(path.join(stateDir, 'cms-call-tracker-tr.json.log'), 'utf8').trim().split('\n').length, 1, 'one line for the one real change');
  });

  it('clears the notice when the guest leaves, after Node-RED was killed right after the guest\'s record was applied', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    await helper.load([cdrIn.module, tracker.module], flow('typed'));
    const joined = collect(helper.getNode('sec'), 1);
    await supertest(cdrIn.red.RED.httpNode).post('/cdr-tracker').set('content-type', 'text/xml').send(post(
      rec('callStart', CALL, '<name>Weekly</name>'),
      rec('callLegStart', 'leg-kill', `<guestConnection>true</guestConnection><call>${CALL}</call>`),
    )).expect(200);
    assert.equal((await joined)[0].payload.event, 'externalJoined');
    // the kill: what is on disk now is all a restart gets (close would write the state; it never runs)
    const copy = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'cms-tracker-killed-'));
    fs.cpSync(path.join(tmp.dir(), 'cdrflow-state'), path.join(copy, 'cdrflow-state'), { recursive: true });
    const settings = (helper as any).settings();
    try {
      await helper.unload();
      settings.userDir = copy;
      await helper.load([cdrIn.module, tracker.module], flow('typed'));
      const left = collect(helper.getNode('sec'), 1);
      await supertest(cdrIn.red.RED.httpNode).post('/cdr-tracker').set('content-type', 'text/xml').send(post(rec('callLegEnd', 'leg-kill', '<reason>remoteTeardown</reason>'))).expect(200);
      const [m] = await left;
      assert.equal(m.payload.event, 'externalLeft');
      assert.deepEqual(m.message, { text: '', position: 'bottom', duration: 0 });
    } finally {
      await helper.unload();
      settings.userDir = tmp.dir();
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  describe('with the CMS API as the source of truth', () => {
    let sim: CmsApiSimulator;
    const server = capture(cmsServer as any);
    const HOST = 'a0000000-0000-4000-8000-00000000000a';
    const WEB = 'b0000000-0000-4000-8000-00000000000b';
    beforeEach(async () => {
      sim = await CmsApiSimulator.start(['cb1', 'cb2']);
    });
    afterEach(async () => {
      await helper.unload();
      await sim.close();
    });

    const apiFlow = (): any[] => [
      { id: 'tab', type: 'tab', label: 'tracker' },
      { id: 'srv', type: 'cms-server', urls: sim.bridges.map((b) => b.url).join('\n'), timeout: 2, retries: 0 },
      { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr-tracker-api', wires: [['tr'], ['tr']] },
      { id: 'tr', z: 'tab', type: 'cms-call-tracker', internalDomains: 'corp.example', server: 'srv', apiRetry: 0.2, wires: [['sec'], ['sum']] },
      { id: 'sec', z: 'tab', type: 'helper' },
      { id: 'sum', z: 'tab', type: 'helper' },
      { id: 'c', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
    const creds = { srv: { user: 'apiuser', password: 'apipass' } };
    const send = (body: string) => supertest(cdrIn.red.RED.httpNode).post('/cdr-tracker-api').set('content-type', 'text/xml').send(body).expect(200);

    it('reads the live calls on start and sets the notice a screen misses; the records keep it current', async () => {
      // Node-RED was down while a Web App participant joined: the tracker has no record of the call
      sim.addCall('cb2', CALL, { name: 'Weekly', callCorrelator: 'cccccccc-0000-4000-8000-000000000001' });
      sim.addLeg('cb2', CALL, HOST, { remoteParty: 'host@corp.example' });
      sim.addLeg('cb2', CALL, WEB, { subType: 'webApp', type: 'acano', name: 'Visitor' });
      const h = await load();
      // the read on start may be done before a listener could be put on the helper node: the send spy has it
      const m = await first(h.getNode('tr'), 0);
      assert.equal(m.callId, CALL);
      assert.equal(m.payload.event, 'externalJoined');
      assert.equal(m.payload.source, 'api');
      assert.equal(m.payload.participants, 2);
      assert.deepEqual(m.message, { text: 'External Participant(s) in Meeting', position: 'bottom', duration: 'permanent' });
      // the records go on from what the API said
      const left = collect(helper.getNode('sec'), 1);
      await send(post(rec('callLegEnd', WEB, '<reason>remoteTeardown</reason>')));
      const [l] = await left;
      assert.deepEqual([l.payload.event, l.payload.source, l.message.text], ['externalLeft', 'cdr', '']);
      assert.ok(sim.log.every((r) => r.method === 'GET'), 'the tracker only reads');
    });

    it('after a gap cms-cdr-in reports: ends the calls the API no longer has and clears a notice that no longer fits', async () => {
      const h = await load();
      await until('the first read', () => sim.log.some((r) => r.path === '/api/v1/calls' && r.bridge === 'cb2' && r.status === 200));
      await settle(100);
      const joined = collect(h.getNode('sec'), 1);
      await send(post(rec('callStart', CALL, '<name>Missed end</name>'), rec('callLegStart', 'leg-g', `<guestConnection>true</guestConnection><call>${CALL}</call>`)));
      assert.equal((await joined)[0].payload.event, 'externalJoined');
      // records were lost (CMS's callEnd among them); another call shows our notice though only staff are in it
      const OTHER = '0b6f6d53-5bb3-4b25-9a5c-000000000002';
      sim.addCall('cb1', OTHER, { name: 'Staff only', messageText: 'External Participant(s) in Meeting' });
      sim.addLeg('cb1', OTHER, HOST, { remoteParty: 'host@corp.example' });
      const sum = collect(h.getNode('sum'), 1);
      const sec = collect(h.getNode('sec'), 1);
      idx += 5; // the recordIndex jumps: cms-cdr-in reports a sequenceGap on its second output
      await send(post(rec('callStart', 'ca11ca11-0000-4000-8000-000000000003', '<name>After the gap</name>')));
      const [s] = await sum;
      assert.deepEqual([s.payload.callId, s.payload.ending, s.payload.guests], [CALL, 'notInApi', 1]);
      const [c] = await sec;
      assert.deepEqual([c.callId, c.payload.event, c.payload.source, c.message.text], [OTHER, 'externalLeft', 'api', '']);
      // msg.topic reconcile reads again: nothing left to change, nothing sent
      const reads = sim.log.filter((r) => r.path === '/api/v1/calls').length;
      h.getNode('tr').receive({ topic: 'reconcile' });
      await until('another read', () => sim.log.filter((r) => r.path === '/api/v1/calls').length === reads + 2);
    });

    it('reports a failed read to Catch and in the status, follows the records meanwhile, and reads again later', async () => {
      sim.setCredentials('apiuser', 'rotated');
      const h = await load();
      const tr = h.getNode('tr') as any;
      await until('the error', () => tr.error.callCount > 0);
      const [text, e] = tr.error.getCall(0).args;
      assert.match(String(text), /could not read the live calls from the CMS API: .*401 Unauthorized.*trying again in 0.2 s/);
      assert.equal(e.topic, 'apiError');
      // a Catch node gets it: the next try fails the same way
      const [again] = await collect(h.getNode('caught'), 1);
      assert.match(again.error.message, /could not read the live calls from the CMS API: .*401 Unauthorized/);
      const statuses = () => ((h.getNode('tr') as any).status.getCalls() as any[]).map((x) => x.args[0]);
      await until('the status', () => statuses().some((st) => st.fill === 'yellow' && st.shape === 'ring' && /API read failed/.test(st.text)));
      // the stream is not held up
      const joined = collect(h.getNode('sec'), 1);
      await send(post(rec('callStart', CALL, '<name>Weekly</name>'), rec('callLegStart', 'leg-g', `<guestConnection>true</guestConnection><call>${CALL}</call>`)));
      assert.deepEqual((await joined).map((m) => [m.payload.event, m.payload.source]), [['externalJoined', 'cdr']]);
      // the password is fixed on CMS: a later try reads the calls (the guest left meanwhile, unseen)
      sim.addCall('cb1', CALL, { name: 'Weekly', messageText: 'External Participant(s) in Meeting' });
      const cleared = collect(h.getNode('sec'), 1, 10_000);
      sim.setCredentials('apiuser', 'apipass');
      const [c] = await cleared;
      assert.deepEqual([c.callId, c.payload.event, c.payload.source, c.message.text], [CALL, 'externalLeft', 'api', '']);
      await until('a status without the failure', () => !/API read failed/.test(statuses().at(-1).text));
    });

    for (const [what, srv, cred, fill, text] of [
      ['not filled in yet (as an imported example)', { urls: '' }, {}, 'yellow', '0 calls · 0 ext · 0 restr · API not configured'],
      ['filled in wrongly', { urls: 'ftp://cms.example' }, { user: 'apiuser', password: 'apipass' }, 'red', '0 calls · 0 ext · 0 restr · API configuration error'],
    ] as const) {
      it(`with a server ${what}: follows the records, says so in the status, and reads nothing`, async () => {
        const flow = apiFlow().map((n) => (n.id === 'srv' ? { ...n, ...srv } : n));
        await helper.load([cdrIn.module, tracker.module, server.module], flow, { srv: cred });
        const tr = helper.getNode('tr') as any;
        const mine = (calls: any[]) => calls.filter((c) => c.thisValue === tr).map((c) => c.args[0]);
        // (a status is shown at most once a second)
        await until('the status', () => JSON.stringify(mine(tr.status.getCalls()).at(-1)) === JSON.stringify({ fill, shape: 'ring', text }), 3000);
        assert.deepEqual(mine(tr.error.getCalls()), [], 'nothing logged as an error at start');
        const joined = collect(helper.getNode('sec'), 1);
        await send(post(rec('callStart', CALL, '<name>Weekly</name>'), rec('callLegStart', 'leg-g', `<guestConnection>true</guestConnection><call>${CALL}</call>`)));
        assert.deepEqual((await joined).map((m) => [m.payload.event, m.payload.source]), [['externalJoined', 'cdr']]);
        const last = () => mine(tr.status.getCalls()).at(-1);
        await until('the status after the records', () => last().fill === fill && /^1 calls? · 1 ext · 0 restr · API /.test(last().text), 3000);
        // asked to read: the reason goes to Catch
        tr.receive({ topic: 'reconcile' });
        const [caught] = await collect(helper.getNode('caught'), 1);
        assert.match(caught.error.message, /CMS API/);
        assert.deepEqual(sim.log, [], 'no request reached CMS');
      });
    }

    async function load(): Promise<typeof helper> {
      await helper.load([cdrIn.module, tracker.module, server.module], apiFlow(), creds);
      return helper;
    }
  });
});

/** The first message a node sent on output `port`, also one sent before anyone listened (the runtime's send spy). */
async function first(node: any, port: number): Promise<any> {
  const sent = () => (node.send.getCalls() as any[]).map((c) => (Array.isArray(c.args[0]) ? c.args[0][port] : port === 0 ? c.args[0] : null)).flat().filter(Boolean);
  await until(`a message on output ${port + 1}`, () => sent().length > 0);
  return sent()[0];
}

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await settle(20);
  }
}

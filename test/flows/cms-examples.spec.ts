/**
 * The two CMS example flows, loaded from examples/ into a real Node-RED runtime (test helper) with the
 * real nodes they use (core http in / function / inject, node-red-node-sqlite, this package's nodes),
 * and driven end to end over HTTP.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import supertest from 'supertest';
import cmsCdrIn from '../../src/nodes/cms-cdr-in';
import cmsCallTracker from '../../src/nodes/cms-call-tracker';
import cmsCallMessage from '../../src/nodes/cms-call-message';
import cmsServer from '../../src/nodes/cms-server';
import { helper, capture, coreNode, collect, useTempUserDir } from '../helpers/red';
import { own, shared } from '../helpers/fixtures';
import { CmsApiSimulator } from '../simulators/cms-api';

const examples = path.resolve(__dirname, '..', '..', 'examples');
const core = coreNode;

function loadExample(name: string): any[] {
  const flow = JSON.parse(fs.readFileSync(path.join(examples, `${name}.json`), 'utf8')) as any[];
  assert.ok(Array.isArray(flow));
  assert.ok(flow.some((n) => n.type === 'comment' && n.info), 'has a comment node explaining the setup');
  // each example brings its own tab (with the environment variables its paths use)
  const tabs = new Set(flow.filter((n) => n.z).map((n) => n.z));
  for (const z of tabs) assert.ok(flow.some((n) => n.id === z && n.type === 'tab'), `${name} has its tab ${z}`);
  return flow;
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('CMS example flows', function () {
  this.timeout(30_000);
  // state files go to a temporary user directory, not ~/.node-red; each test starts without saved state
  const tmp = useTempUserDir('suite', 'cms-examples-');

  describe('CMS CDRs to SQLite with API and admin page', () => {
    // the database goes where CDRFLOW_DATA says (the user directory unless set): a new folder per test
    let data: string;
    let saved: string | undefined;
    beforeEach(() => {
      saved = process.env.CDRFLOW_DATA;
      data = fs.mkdtempSync(path.join(tmp.dir(), 'data-'));
      process.env.CDRFLOW_DATA = data;
    });
    afterEach(() => {
      if (saved === undefined) delete process.env.CDRFLOW_DATA;
      else process.env.CDRFLOW_DATA = saved;
    });

    it('stores posted records and serves the sample app\'s API byte for byte, and the admin page', async () => {
      const sqlite3 = require('sqlite3');
      const flow = loadExample('CMS CDRs to SQLite with API and admin page');
      const dbNode = flow.find((n) => n.type === 'sqlitedb');
      assert.equal(dbNode.db, '${CDR_DB}');
      // the tab's CDR_DB, built from CDRFLOW_DATA, reaches the config node scoped to it
      const dbFile = path.join(data, 'cms-cdr-records.db');
      const cdrIn = capture(cmsCdrIn as any);
      await helper.load([cdrIn.module, require('node-red-node-sqlite/sqlite.js'), core('common/20-inject.js'), core('common/90-comment.js'),
        core('function/10-function.js'), core('function/15-change.js'), core('network/21-httpin.js')], flow);
      const http = supertest(cdrIn.red.RED.httpNode);
      assert.equal((helper.getNode(dbNode.id) as any).dbname, dbFile);

      const db = new sqlite3.Database(dbFile);
      const query = (sql: string): Promise<any[]> => new Promise((resolve, reject) => db.all(sql, (err: Error | null, rows: any[]) => (err ? reject(err) : resolve(rows))));
      try {
        await until('the record table', async () => (await query("SELECT name FROM sqlite_master WHERE type='table' AND name='record'")).length === 1);
        // an empty store answers {"records":0} on page 1 too, as the sample's code does
        assert.equal((await http.get('/api/v1/records/1').expect(200)).text, '{"records":0}\n');

        await http.post('/cdr-db').set('content-type', 'text/xml').send(own('cms', 'cdr-receiver-db-call.xml')).expect(200);
        await until('six stored records', async () => (await query('SELECT COUNT(*) AS n FROM record'))[0].n === 6);
        const page1 = await http.get('/api/v1/records/1').expect(200).expect('content-type', /application\/json/);
        assert.equal(page1.text, shared('cms', 'real_ciscocms-cdr-receiver-db_readme_api_records_page1.json'));
        assert.equal((await http.get('/api/v1/records/').expect(200)).text, page1.text);
        assert.equal((await http.get('/api/v1/records/2').expect(200)).text, shared('cms', 'real_ciscocms-cdr-receiver-db_readme_api_records_page2.json'));
        await http.get('/api/v1/records/abc').expect(404);

        // CMS resends a batch whose 200 got lost: answered 200, stored once
        await http.post('/cdr-db').set('content-type', 'text/xml').send(own('cms', 'cdr-receiver-db-call.xml')).expect(200);
        // a body that is not CDR XML is refused, so CMS keeps it (the sample answered 204 and lost it)
        await http.post('/cdr-db').set('content-type', 'text/xml').send('<records><record type="callStart"').expect(400);

        // 30 more records: pages of 20, newest first
        const recs = Array.from({ length: 30 }, (_, i) => `<record type="callLegStart" time="2019-04-05T17:00:${String(i).padStart(2, '0')}Z" recordIndex="${25 + i}" correlatorIndex="${116 + i}"><callLeg id="0000${String(i).padStart(4, '0')}-0000-4000-8000-000000000000"><displayName>Caller ${i} é &lt;x&gt;</displayName><remoteParty>c${i}@example.org</remoteParty></callLeg></record>`);
        await http.post('/cdr-db').set('content-type', 'text/xml').send(`<?xml version="1.0"?><records session="2f9a7c1e-0b7d-4a58-9b0e-6d1f5c3a8e21">${recs.join('')}</records>`).expect(200);
        await until('36 stored records', async () => (await query('SELECT COUNT(*) AS n FROM record'))[0].n === 36);
        const p1 = JSON.parse((await http.get('/api/v1/records/1').expect(200)).text);
        const p2 = JSON.parse((await http.get('/api/v1/records/2').expect(200)).text);
        assert.equal(p1.records.length, 20);
        assert.equal(p2.records.length, 16);
        assert.deepEqual([...p1.records, ...p2.records].map((r: any) => Number(r['@recordIndex'])), Array.from({ length: 36 }, (_, i) => 54 - i));
        assert.equal(p1.records[0].callLeg.displayName, 'Caller 29 é <x>');
        // non-ASCII escaped as Flask's jsonify did
        assert.match((await http.get('/api/v1/records/1')).text, /"displayName":"Caller 29 \\u00e9 <x>"/);
        assert.equal((await http.get('/api/v1/records/3').expect(200)).text, '{"records":0}\n');

        const admin = await http.get('/admin').expect(200).expect('content-type', /text\/html/);
        assert.match(admin.text, /page 1 of 2 \(36 records\)/);
        assert.match(admin.text, /Caller 29 é &lt;x&gt;/, 'record text is escaped');
        assert.doesNotMatch(admin.text, /<x>/);
        const admin2 = await http.get('/admin?page=2').expect(200);
        assert.match(admin2.text, /page 2 of 2/);
        assert.match(admin2.text, /Scarif Weekly Data Backup Planning Meeting/);
        assert.equal((admin2.text.match(/<tr><td>/g) ?? []).length, 16);

        // values are SQL literals in the example's INSERT: quotes, an attempt to end the literal, and
        // parameter-like text are stored as sent, and the table is still there
        const hostile = ["O'Brien", "x'); DROP TABLE record; --", "$d0 ?1 :a @b ''", '\\\' \u2019'];
        await http.post('/cdr-db').set('content-type', 'text/xml').send(`<records session="2f9a7c1e-0b7d-4a58-9b0e-6d1f5c3a8e22">${hostile.map((name, i) =>
          `<record type="callLegStart" time="2019-04-05T18:00:0${i}Z" recordIndex="${i + 1}" correlatorIndex="${200 + i}"><callLeg id="1111000${i}-0000-4000-8000-000000000000"><displayName>${name.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;')}</displayName></callLeg></record>`).join('')}</records>`).expect(200);
        await until('40 stored records', async () => (await query('SELECT COUNT(*) AS n FROM record'))[0].n === 40);
        const newest = JSON.parse((await http.get('/api/v1/records/1').expect(200)).text).records.slice(0, 4).reverse();
        assert.deepEqual(newest.map((r: any) => r.callLeg.displayName), hostile);
      } finally {
        await new Promise((r) => db.close(r));
      }
    });

    it('does not acknowledge records it could not store: CMS gets 503 and the resend is stored', async () => {
      const sqlite3 = require('sqlite3');
      const dbFile = path.join(data, 'cms-cdr-records.db');
      const flow = loadExample('CMS CDRs to SQLite with API and admin page');
      flow.find((n) => n.type === 'cms-cdr-in').ackTimeout = 0.5; // the example waits 30 s
      const cdrIn = capture(cmsCdrIn as any);
      await helper.load([cdrIn.module, require('node-red-node-sqlite/sqlite.js'), core('common/20-inject.js'), core('common/90-comment.js'),
        core('function/10-function.js'), core('function/15-change.js'), core('network/21-httpin.js')], flow);
      const http = supertest(cdrIn.red.RED.httpNode);
      const db = new sqlite3.Database(dbFile);
      const query = (sql: string): Promise<any[]> => new Promise((resolve, reject) => db.all(sql, (err: Error | null, rows: any[]) => (err ? reject(err) : resolve(rows))));
      try {
        await until('the record table', async () => (await query("SELECT name FROM sqlite_master WHERE type='table' AND name='record'")).length === 1);
        await query('ALTER TABLE record RENAME TO record_away'); // the insert fails now
        await http.post('/cdr-db').set('content-type', 'text/xml').send(own('cms', 'cdr-receiver-db-call.xml')).expect(503);
        await query('ALTER TABLE record_away RENAME TO record');
        // CMS sends the batch again: it was never acknowledged, so it is stored now, not dropped as a duplicate
        await http.post('/cdr-db').set('content-type', 'text/xml').send(own('cms', 'cdr-receiver-db-call.xml')).expect(200);
        assert.equal((await query('SELECT COUNT(*) AS n FROM record'))[0].n, 6);
      } finally {
        await new Promise((r) => db.close(r));
      }
    });
  });

  describe('CMS call security notifications', () => {
    let sim: CmsApiSimulator;
    beforeEach(async () => {
      sim = await CmsApiSimulator.start(['cb1', 'cb2']);
    });
    afterEach(async () => {
      await sim.close();
    });

    /**
     * Loads the example against the simulator. `tune` changes what a test needs faster than a user would
     * (retry waits); the tracker's first read of the live calls is over when this returns.
     */
    async function start(tune: (flow: any[]) => void = () => undefined, password = 'apipass'): Promise<supertest.Agent> {
      const flow = loadExample('CMS call security notifications');
      const server = flow.find((n) => n.type === 'cms-server');
      assert.equal(server.verifyTls, true, 'TLS verification on in the example');
      server.urls = sim.bridges.map((b) => b.url).join('\n');
      tune(flow);
      const cdrIn = capture(cmsCdrIn as any);
      await helper.load([cdrIn.module, capture(cmsCallTracker as any).module, capture(cmsCallMessage as any).module, capture(cmsServer as any).module,
        core('common/90-comment.js'), core('common/21-debug.js'), core('common/25-catch.js')],
      flow, { [server.id]: { user: 'apiuser', password } });
      if (flow.find((n) => n.type === 'cms-call-tracker').server) {
        await until('the tracker\'s first read of the live calls', () => sim.bridges.every((b) => sim.log.some((r) => r.bridge === b.name && r.path === '/api/v1/calls' && r.status !== 0)));
        await new Promise((r) => setTimeout(r, 50));
      }
      return supertest(cdrIn.red.RED.httpNode) as unknown as supertest.Agent;
    }
    const node = (name: string) => {
      const found = loadExample('CMS call security notifications').find((n) => n.name === name);
      assert.ok(found, `the example has a node named ${name}`);
      return helper.getNode(found.id);
    };
    const byType = (type: string) => helper.getNode(loadExample('CMS call security notifications').find((n) => n.type === type).id);

    const counters = new Map<string, number>();
    function post(session: string, bridge: string | null, ...records: Array<[string, string, string]>): string {
      const body = records.map(([type, id, inner]) => {
        const n = (counters.get(session) ?? 0) + 1;
        counters.set(session, n);
        const obj = type.startsWith('callLeg') ? 'callLeg' : 'call';
        return `<record type="${type}" time="2024-06-01T12:00:00Z" recordIndex="${n}" correlatorIndex="${n + 1000}"><${obj} id="${id}">${inner}</${obj}></record>`;
      }).join('');
      return `<?xml version="1.0"?><records session="${session}"${bridge ? ` callBridge="${bridge}"` : ''}>${body}</records>`;
    }
    const send = (http: supertest.Agent, body: string) => http.post('/cdr-security').set('content-type', 'text/xml').send(body).expect(200);
    const puts = () => sim.puts().map((p) => [p.bridge, p.callId, Object.fromEntries(p.form).messageText, Object.fromEntries(p.form).messageDuration]);
    const putLog = () => sim.log.filter((r) => r.method === 'PUT').map((r) => [r.bridge, r.status]);

    it('shows the notice while a guest is in the call and clears it when the guest leaves', async () => {
      const http = await start();
      const CALL = '11111111-aaaa-4bbb-8ccc-000000000001';
      const S = '5e551011-0000-4000-8000-000000000001';
      sim.addCall('cb2', CALL);
      await send(http, post(S, null, ['callStart', CALL, '<name>Team sync</name><callCorrelator>c0000000-0000-4000-8000-000000000001</callCorrelator>'],
        ['callLegStart', 'leg-host', `<remoteParty>host@corp.example</remoteParty><call>${CALL}</call>`]));
      // the guest's leg: its call is only known from the update (Cisco's sample missed these)
      await send(http, post(S, null, ['callLegStart', 'leg-guest', '<displayName>Visitor</displayName><guestConnection>true</guestConnection><type>acano</type>']));
      await send(http, post(S, null, ['callLegUpdate', 'leg-guest', `<state>connected</state><call>${CALL}</call>`]));
      await until('the notice', () => sim.puts().length === 1);
      await send(http, post(S, null, ['callLegEnd', 'leg-guest', '<reason>remoteTeardown</reason>']));
      await until('the clear', () => sim.puts().length === 2);
      await send(http, post(S, null, ['callLegEnd', 'leg-host', '<reason>remoteTeardown</reason>'], ['callEnd', CALL, '<durationSeconds>60</durationSeconds>']));
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(puts(), [
        ['cb2', CALL, 'External Participant(s) in Meeting', 'permanent'],
        ['cb2', CALL, '', '0'],
      ]);
      assert.deepEqual(putLog(), [['cb1', 404], ['cb2', 200], ['cb2', 200]], 'the owning bridge is found once, then remembered');
    });

    it('warns every bridge of a restricted clustered meeting, in order', async () => {
      const http = await start();
      const A = 'aaaaaaaa-1111-4222-8333-000000000001';
      const B = 'bbbbbbbb-1111-4222-8333-000000000002';
      const CORR = 'cccccccc-1111-4222-8333-000000000003';
      const BR1 = '0b1d0b1d-0000-4000-8000-000000000001';
      const BR2 = '0b2d0b2d-0000-4000-8000-000000000002';
      const S1 = '5e551111-0000-4000-8000-000000000001';
      const S2 = '5e552222-0000-4000-8000-000000000002';
      sim.addCall('cb1', A);
      sim.addCall('cb2', B);
      await send(http, post(S1, BR1, ['callStart', A, `<name>RESTRICTED roadmap</name><callCorrelator>${CORR}</callCorrelator>`]));
      await until('A restricted', () => sim.puts().length === 1);
      await send(http, post(S2, BR2, ['callStart', B, `<name>RESTRICTED roadmap</name><callCorrelator>${CORR}</callCorrelator>`],
        ['callLegStart', 'b-link', `<subType>distributionLink</subType><call>${B}</call>`]));
      await until('B restricted', () => sim.puts().length === 2);
      // a Web App participant joins on bridge 2: both bridges' calls get the combined notice
      await send(http, post(S2, BR2, ['callLegStart', 'b-web', `<subType>webApp</subType><type>acano</type><call>${B}</call>`]));
      await until('both warned', () => sim.puts().length === 4);
      await send(http, post(S2, BR2, ['callLegEnd', 'b-web', '<reason>remoteTeardown</reason>']));
      await until('both back to restricted', () => sim.puts().length === 6);
      await send(http, post(S2, BR2, ['callEnd', B, '']));
      await send(http, post(S1, BR1, ['callEnd', A, '']));
      await new Promise((r) => setTimeout(r, 200));
      const all = puts();
      assert.equal(all.length, 6);
      const forCall = (id: string) => all.filter((p) => p[1] === id);
      assert.deepEqual(forCall(A), [
        ['cb1', A, 'Restricted Meeting', 'permanent'],
        ['cb1', A, 'Restricted Meeting, External Participant(s) in Meeting', 'permanent'],
        ['cb1', A, 'Restricted Meeting', 'permanent'],
      ]);
      assert.deepEqual(forCall(B), [
        ['cb2', B, 'Restricted Meeting', 'permanent'],
        ['cb2', B, 'Restricted Meeting, External Participant(s) in Meeting', 'permanent'],
        ['cb2', B, 'Restricted Meeting', 'permanent'],
      ]);
      assert.deepEqual(all.slice(0, 2).map((p) => p[1]), [A, B]);
      assert.ok(putLog().every(([, status]) => status === 200 || status === 404));
    });

    it('wires every output to something a user sees (examples.spec.ts checks that every property is set)', () => {
      const flow = loadExample('CMS call security notifications');
      const types = (ids: string[]) => ids.map((id) => flow.find((x) => x.id === id)?.type);
      const tracker = flow.find((n) => n.type === 'cms-call-tracker');
      assert.deepEqual(types(tracker.wires[0]), ['cms-call-message']);
      assert.deepEqual(types(tracker.wires[1]), ['debug'], 'the call summaries go to a debug node');
      assert.equal(tracker.server, flow.find((n) => n.type === 'cms-server').id, 'the tracker reads the live calls from the same server');
      const catcher = flow.find((n) => n.type === 'catch');
      assert.deepEqual(types(catcher.wires[0]), ['debug']);
      assert.deepEqual(types(flow.find((n) => n.type === 'cms-call-message').wires[0]), ['debug']);
    });

    it('shows each call\'s summary in a debug node', async () => {
      const http = await start();
      const CALL = '11111111-aaaa-4bbb-8ccc-000000000003';
      const summaries = collect(node('call summaries'), 1);
      await send(http, post('5e551013-0000-4000-8000-000000000001', null, ['callStart', CALL, '<name>Short</name>'], ['callEnd', CALL, '<durationSeconds>5</durationSeconds>']));
      const [m] = await summaries;
      assert.deepEqual([m.topic, m.payload.callId, m.payload.name, m.payload.ending], ['callSummary', CALL, 'Short', 'callEnd']);
    });

    it('reports failed API calls through its Catch node, and shows the notice once CMS takes it, with no new record', async () => {
      // the API password was changed on CMS and not yet in Node-RED: every API call fails with 401
      sim.setCredentials('apiuser', 'rotated');
      const http = await start((flow) => {
        flow.find((n) => n.type === 'cms-call-message').retryMin = 0.2;
        flow.find((n) => n.type === 'cms-call-tracker').apiRetry = 60; // only the message node's own retry is at work here
      });
      // the tracker's read on start failed (reported before this test could listen at the debug node)
      const tracker = byType('cms-call-tracker') as any;
      await until('the tracker\'s error', () => tracker.error.callCount > 0);
      const trackerErrors = (tracker.error.getCalls() as any[]).map((c) => String(c.args[0]));
      assert.ok(trackerErrors.some((e: string) => /could not read the live calls from the CMS API: .*401 Unauthorized/.test(e)), trackerErrors.join('\n'));
      const errors = collect(node('CMS API errors'), 1);
      const CALL = '11111111-aaaa-4bbb-8ccc-000000000002';
      const S = '5e551012-0000-4000-8000-000000000001';
      sim.addCall('cb2', CALL);
      await send(http, post(S, null, ['callStart', CALL, '<name>Team sync</name>'], ['callLegStart', 'leg-g1', `<guestConnection>true</guestConnection><call>${CALL}</call>`]));
      const [caught] = await errors;
      assert.match(caught.error.message, /could not set the message of call 11111111-aaaa-4bbb-8ccc-000000000002: .*401 Unauthorized.*it will be sent again/);
      // a second guest joins: the call's level does not change, so the tracker sends nothing
      await send(http, post(S, null, ['callLegStart', 'leg-g2', `<guestConnection>true</guestConnection><call>${CALL}</call>`]));
      const shown = collect(node('messages shown'), 1);
      sim.setCredentials('apiuser', 'apipass'); // fixed on CMS
      const [m] = await shown;
      assert.equal(m.cmsApi.retried, true);
      assert.equal(sim.bridge('cb2').calls.get(CALL)!.messageText, 'External Participant(s) in Meeting');
      assert.deepEqual(puts(), [['cb2', CALL, 'External Participant(s) in Meeting', 'permanent']]);
    });

    it('puts the notice in a call Node-RED missed the start of, read from the CMS API when it starts', async () => {
      const CALL = '11111111-aaaa-4bbb-8ccc-000000000004';
      sim.addCall('cb1', CALL, { name: 'Started while Node-RED was down' });
      sim.addLeg('cb1', CALL, 'a0000000-0000-4000-8000-00000000000a', { remoteParty: 'host@corp.example' });
      sim.addLeg('cb1', CALL, 'b0000000-0000-4000-8000-00000000000b', { type: 'acano', subType: 'webApp', name: 'Visitor' });
      await start();
      await until('the notice', () => sim.puts().length === 1);
      assert.deepEqual(puts(), [['cb1', CALL, 'External Participant(s) in Meeting', 'permanent']]);
      assert.deepEqual(putLog(), [['cb1', 200]], 'the read found the owning bridge');
    });
  });
});

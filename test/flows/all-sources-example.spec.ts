/**
 * Loads examples/All CDR sources into one table, with alerts.json into a real Node-RED runtime with every
 * node it uses (ours, the core nodes and node-red-node-sqlite) and drives it end to end: CMS posts over
 * HTTP, Com.X from its simulator, Webex Calling from its simulator; rows checked in the SQLite file, the
 * alerts checked at a local webhook sink. The CC-FS callback node is loaded as shipped but not driven.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import supertest from 'supertest';
import { helper, translate, settle, coreNode } from '../helpers/red';
import { mividasPosts } from '../helpers/fixtures';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';
import { WebexApiSim, VirtualClock } from '../simulators/webex-api';
import { validateCdr } from '../../src/normalize';
import cmsCdrIn from '../../src/nodes/cms-cdr-in';
import comxPbx from '../../src/nodes/comx-pbx';
import comxFetch from '../../src/nodes/comx-cdr-fetch';
import webexAccount from '../../src/nodes/webex-account';
import webexPull from '../../src/nodes/webex-cdr-pull';
import ccfsAccount from '../../src/nodes/ccfs-account';
import ccfsCallback from '../../src/nodes/ccfs-callback-in';
import cdrNormalize from '../../src/nodes/cdr-normalize';

const example = path.join(__dirname, '..', '..', 'examples', 'All CDR sources into one table, with alerts.json');
// core nodes of the Node-RED under test (NODE_RED_PATH: Node-RED 5 in npm run test:nr5)
const core = coreNode;
/** Our catalogs for our keys; core nodes' own keys echo back. Keeps the RED the nodes saw. */
let RED: any = null;
const tolerant = (mod: any) => (red: any) => {
  red._ = (key: string, vars?: Record<string, unknown>) => {
    try {
      return translate(key, vars);
    } catch {
      return key;
    }
  };
  RED = red;
  return mod(red);
};

describe('example flow: All CDR sources into one table, with alerts', function () {
  this.timeout(30_000);
  const now0 = Date.parse('2026-11-23T12:00:00.000Z');
  let dir: string;
  let comx: ComxSimulator;
  let webex: WebexApiSim;
  let clock: VirtualClock;
  let sink: http.Server;
  let sinkUrl: string;
  const alerts: any[] = [];
  const savedData = process.env.CDRFLOW_DATA;

  before(async () => {
    comx = new ComxSimulator('Africa/Johannesburg');
    await comx.start();
    clock = new VirtualClock(now0);
    webex = await new WebexApiSim({ clock }).start();
    sink = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        alerts.push({ method: req.method, type: req.headers['content-type'], body: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
    sinkUrl = `http://127.0.0.1:${(sink.address() as any).port}/hooks/cdr`;
    process.env.CDR_ALERT_WEBHOOK_URL = sinkUrl;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'all-sources-example-'));
    helper.settings({ userDir: dir, comxPbxRetryBaseMs: 1, cdrflowWebexClock: clock } as any);
    await helper.startServer();
  });
  after(async () => {
    await helper.unload();
    await helper.stopServer();
    helper.settings({});
    delete process.env.CDR_ALERT_WEBHOOK_URL;
    if (savedData === undefined) delete process.env.CDRFLOW_DATA;
    else process.env.CDRFLOW_DATA = savedData;
    await comx.close();
    await webex.stop();
    await new Promise((r) => sink.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is an importable array: comment with the DDL and indexes, upsert on id, every source node, no credentials', () => {
    const text = fs.readFileSync(example, 'utf8');
    const flow = JSON.parse(text);
    assert.ok(Array.isArray(flow));
    const comment = flow.find((n: any) => n.type === 'comment');
    assert.match(comment.info, /CREATE TABLE IF NOT EXISTS cdr \(/);
    for (const col of ['start_time', 'caller_number', 'callee_number', 'direction', 'outcome']) assert.match(comment.info, new RegExp(`CREATE INDEX IF NOT EXISTS cdr_${col} ON cdr \\(${col}\\)`));
    assert.match(flow.find((n: any) => n.name === 'upsert cdr').sql, /ON CONFLICT\(id\) DO UPDATE/);
    for (const t of ['cms-cdr-in', 'comx-cdr-fetch', 'webex-cdr-pull', 'ccfs-callback-in', 'cdr-normalize', 'http request', 'catch']) assert.ok(flow.some((n: any) => n.type === t), t);
    assert.ok(!/"credentials"|"password"|C@11Me/.test(text));
  });

  it('stores CMS, Com.X and Webex records in one table and posts an alert per unanswered inbound call', async () => {
    const calls = generateCalls(Date.now() - 3 * 3600_000, 8, 15 * 60_000);
    Object.assign(calls[3], { disposition: 'CALL_NOANSWER', billsec: 0, recording: null }); // inbound, missed
    comx.calls = calls;
    webex.generate(30, now0 - 47 * 3600_000, now0 - 3 * 60_000);

    const flow = JSON.parse(fs.readFileSync(example, 'utf8'));
    const byId = (id: string) => flow.find((n: any) => n.id === id);
    // the database goes where the tab's CDR_DB says: cdr.db under CDRFLOW_DATA
    assert.equal(byId('allcdr_db').db, '${CDR_DB}');
    process.env.CDRFLOW_DATA = dir;
    const dbFile = path.join(dir, 'cdr.db');
    byId('allcdr_pbx').url = comx.url;
    // the DDL runs after the first Webex and Com.X records arrived: the flow must hold them, not lose them
    byId('allcdr_ddl_inject').onceDelay = '1.5';
    Object.assign(byId('allcdr_wxacct'), { region: 'custom', baseUrl: webex.url(), tokenUrl: webex.tokenUrl, timeout: 1 });

    await helper.load([
      core('common/20-inject.js'), core('common/21-debug.js'), core('common/25-catch.js'), core('common/90-comment.js'),
      core('function/10-function.js'), core('function/15-change.js'), core('network/21-httprequest.js'), require('node-red-node-sqlite/sqlite.js'),
      tolerant(cmsCdrIn), tolerant(comxPbx), tolerant(comxFetch), tolerant(webexAccount), tolerant(webexPull),
      tolerant(ccfsAccount), tolerant(ccfsCallback), tolerant(cdrNormalize),
    ] as any, flow, {
      allcdr_pbx: { user: 'cdr', password: 's3cret' },
      allcdr_wxacct: { clientId: webex.clientId, clientSecret: webex.clientSecret, refreshToken: webex.issueRefreshToken() },
    } as any);
    const caught: any[] = [];
    helper.getNode('allcdr_debug').on('input', (m: any) => caught.push(m));
    assert.equal((helper.getNode('allcdr_db') as any).dbname, dbFile);
    // the hourly Com.X inject does not fire at deploy: the user clicks its button
    helper.getNode('allcdr_comx_tick').receive({});

    const sqlite3 = require('sqlite3');
    const db = new sqlite3.Database(dbFile);
    const query = (sql: string): Promise<any[]> => new Promise((resolve, reject) => db.all(sql, (err: Error | null, rows: any[]) => (err ? reject(err) : resolve(rows))));
    const until = async (what: string, cond: () => Promise<boolean>) => {
      const end = Date.now() + 20_000;
      while (!(await cond())) {
        if (Date.now() > end) {
          const counts = await query('SELECT source_type, COUNT(*) AS n FROM cdr GROUP BY source_type').catch(() => []);
          const warnings = helper.log().args.map((a: any) => a[0]).filter((e: any) => e && e.level <= 30).map((e: any) => `${e.type}: ${e.msg}`);
          throw new Error(`timed out waiting for ${what}; rows: ${JSON.stringify(counts)}; caught: ${JSON.stringify(caught.map((c) => c.error?.message))}; log: ${JSON.stringify(warnings.slice(-8))}`);
        }
        await settle(50);
      }
    };
    try {
      await until('the cdr table', async () => (await query("SELECT name FROM sqlite_master WHERE type='table' AND name='cdr'")).length === 1);
      const indexes = (await query("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='cdr'")).map((r) => r.name).sort();
      assert.deepEqual(indexes.filter((n: string) => n.startsWith('cdr_')), ['cdr_callee_number', 'cdr_caller_number', 'cdr_direction', 'cdr_outcome', 'cdr_start_time']);

      const cms = supertest(RED.httpNode);
      for (const body of mividasPosts().slice(0, 9)) await cms.post('/cdr-all').type('application/xml').send(body).expect(200);

      const count = async (src: string) => (await query(`SELECT COUNT(*) AS n FROM cdr WHERE source_type='${src}'`))[0].n as number;
      await until('all rows', async () => (await count('cms')) === 2 && (await count('comx')) === 8 && (await count('webex')) === 30);
      assert.deepEqual(caught, [], 'nothing unmappable');

      // the rows are the records: valid against the schema when read back
      const rows = await query('SELECT * FROM cdr');
      for (const row of rows) {
        const rec = { ...row, answered: row.answered === 1, recordings: JSON.parse(row.recordings), derived: JSON.parse(row.derived), flags: JSON.parse(row.flags) };
        delete rec.raw;
        assert.deepEqual(validateCdr(rec), [], JSON.stringify(row));
      }
      const cmsRow = (await query("SELECT * FROM cdr WHERE source_record_id='9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef'"))[0];
      assert.equal(cmsRow.start_time, '2017-04-24T12:00:11Z');
      assert.equal(cmsRow.call_name, 'techsupport');
      assert.equal(JSON.parse(cmsRow.raw).callLegEnd.type, 'callLegEnd');
      const missed = (await query(`SELECT * FROM cdr WHERE call_id='${calls[3].uniqueId}'`))[0];
      assert.equal(missed.direction, 'inbound');
      assert.equal(missed.outcome, 'no_answer');
      assert.equal(missed.answered, 0);

      // re-posting a CMS leg's records is an upsert on id, not a second row
      const before = rows.length;
      for (const body of mividasPosts().slice(0, 9)) await cms.post('/cdr-all').type('application/xml').send(body).expect(200);
      await settle(300);
      assert.equal((await query('SELECT COUNT(*) AS n FROM cdr'))[0].n, before);

      // one alert per unanswered inbound row (the re-post adds none: both CMS legs were answered)
      const expected = (await query("SELECT id FROM cdr WHERE direction='inbound' AND answered=0")).map((r) => r.id).sort();
      assert.ok(expected.length >= 1);
      await until('the alerts', async () => alerts.length >= expected.length);
      await settle(200);
      assert.deepEqual(alerts.map((a) => a.body.cdr.id).sort(), expected);
      const comxAlert = alerts.find((a) => a.body.cdr.id === missed.id);
      assert.equal(comxAlert.method, 'POST');
      assert.match(comxAlert.type, /application\/json/);
      assert.match(comxAlert.body.text, new RegExp(`^Missed inbound call from ${calls[3].callerId} to ${calls[3].extension} at `));
    } finally {
      await new Promise((r) => db.close(r));
    }
  });
});

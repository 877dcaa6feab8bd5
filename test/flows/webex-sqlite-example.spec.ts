/**
 * Runs examples/Webex Calling CDRs into SQLite.json against the Webex API simulator in a real
 * Node-RED. node-red-node-sqlite is not installed here, so its `sqlite` nodes are replaced by helper
 * nodes (and the `sqlitedb` config node dropped); the test applies the upsert semantics of the flow's
 * SQL (ON CONFLICT(report_id)) to what reaches them. Everything else (inject, function, catch and our
 * nodes) runs as shipped, with only the account pointed at the simulator.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, capture, settle, coreNodesDir } from '../helpers/red';
import { WebexApiSim, VirtualClock } from '../simulators/webex-api';
import accountMod = require('../../src/nodes/webex-account');
import pullMod = require('../../src/nodes/webex-cdr-pull');

const MIN = 60_000;
const H = 60 * MIN;
const example = path.join(__dirname, '..', '..', 'examples', 'Webex Calling CDRs into SQLite.json');
const core = coreNodesDir();
const injectMod = require(path.join(core, 'core', 'common', '20-inject.js'));
const functionMod = require(path.join(core, 'core', 'function', '10-function.js'));
const commentMod = require(path.join(core, 'core', 'common', '90-comment.js'));

describe('example: Webex Calling CDRs into SQLite', function () {
  this.timeout(20_000);
  const now0 = Date.parse('2026-11-23T12:00:00.000Z');
  let clock: VirtualClock;
  let sim: WebexApiSim;
  let userDir: string;

  beforeEach(async () => {
    clock = new VirtualClock(now0);
    sim = await new WebexApiSim({ clock }).start();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webex-example-'));
    helper.settings({ userDir, cdrflowWebexClock: clock } as any);
    await helper.startServer();
  });
  afterEach(async () => {
    await helper.unload();
    await helper.stopServer();
    helper.settings({});
    await sim.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('is an importable array with a comment holding the DDL, and uses only our nodes and core nodes besides sqlite', () => {
    const flow = JSON.parse(fs.readFileSync(example, 'utf8'));
    assert.ok(Array.isArray(flow));
    const types = new Set(flow.map((n: any) => n.type));
    for (const t of types) assert.ok(['tab', 'comment', 'inject', 'function', 'catch', 'webex-cdr-pull', 'webex-account', 'sqlite', 'sqlitedb'].includes(t as string), String(t));
    const comment = flow.find((n: any) => n.type === 'comment');
    assert.match(comment.info, /CREATE TABLE IF NOT EXISTS cdr_records/);
    assert.match(comment.info, /spark-admin:calling_cdr_read/);
    const acc = flow.find((n: any) => n.type === 'webex-account');
    assert.equal(acc.credentials, undefined, 'no credentials in the example');
  });

  it('pulls every record into the cdr_records upsert, a cdr_sync_state row per run, errors into cdr_sync_errors', async () => {
    sim.generate(800, now0 - 47 * H, now0 - 3 * MIN);
    const flow = JSON.parse(fs.readFileSync(example, 'utf8')).filter((n: any) => n.type !== 'sqlitedb');
    const tab = flow.find((n: any) => n.z)!.z;
    for (const n of flow) {
      if (n.type === 'sqlite') {
        n.type = 'helper';
        delete n.mydb;
      }
      if (n.type === 'webex-account') Object.assign(n, { region: 'custom', baseUrl: sim.url(), tokenUrl: sim.tokenUrl, timeout: 1 });
    }
    assert.ok(flow.some((n: any) => n.id === tab && n.type === 'tab'), 'the example brings its tab');
    const acc = flow.find((n: any) => n.type === 'webex-account');
    await helper.load([injectMod, functionMod, commentMod, capture(accountMod as any).module, capture(pullMod as any).module], flow, {
      [acc.id]: { clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: sim.issueRefreshToken() },
    });
    const byName = (name: string) => { const n = helper.getNode(flow.find((x: any) => x.name === name).id); if (!n) throw new Error(`no node ${name}: ${JSON.stringify(helper.log().args.slice(-5))}`); return n; };
    const table = new Map<string, Record<string, unknown>>();
    const states: any[] = [];
    const errors: any[] = [];
    const ddl: any[] = [];
    byName('upsert cdr_records').on('input', (m: any) => table.set(m.params.$report_id, m.params));
    byName('insert cdr_sync_state').on('input', (m: any) => states.push(m.params));
    byName('insert cdr_sync_errors').on('input', (m: any) => errors.push(m.params));
    byName('DDL').on('input', (m: any) => ddl.push(m));

    // the pull node runs on deploy (interval 5 min, first run 48 h back)
    const wait = async (cond: () => boolean) => {
      const t = Date.now();
      while (!cond()) {
        if (Date.now() - t > 15_000) throw new Error('timed out');
        await settle(10);
      }
    };
    await wait(() => states.length === 1);
    await settle(50);
    assert.equal(ddl.length, 1);
    assert.match(ddl[0].topic, /CREATE TABLE IF NOT EXISTS cdr_sync_errors/);
    assert.equal(states[0].$ok, 1);
    assert.equal(table.size, 800, 'every record, once');
    assert.equal(states[0].$records, 800);
    const row = [...table.values()][0];
    for (const k of ['$report_id', '$start_time', '$duration', '$raw_json', '$org_id', '$source_endpoint']) assert.ok(row[k] !== undefined && row[k] !== null, k);
    assert.equal(typeof row.$duration, 'number');
    assert.ok(row.$answered === 0 || row.$answered === 1);
    assert.equal(String(JSON.parse(row.$raw_json as string)['Report ID']).toLowerCase(), row.$report_id, 'raw_json is the record as received');

    // a failing run lands in cdr_sync_errors (via the Catch node) and in cdr_sync_state with ok = 0
    sim.inject({ status: 403, body: JSON.stringify({ message: 'Forbidden' }) });
    clock.advance(10 * MIN);
    const inject = byName('sync now');
    inject.receive({ payload: '' });
    await wait(() => errors.length === 1);
    await settle(50);
    assert.equal(errors[0].$error_type, 'config');
    assert.match(errors[0].$message, /spark-admin:calling_cdr_read/);
    assert.equal(states[states.length - 1].$ok, 0);
  });
});

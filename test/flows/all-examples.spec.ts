/**
 * From install to first CDR: a real Node-RED (its own launcher, red.js) with the user directory npm start
 * prepares (this package linked, the demo deployed) and the node packages the examples use
 * (node-red-node-sqlite, …), all other examples deployed
 * next to the demo as they are shipped, nothing filled in. Nothing may be red and nothing may be an error;
 * each example keeps its data in the user directory (CDRFLOW_DATA left to its default) and nothing lands
 * in the working directory; then a CDR posted to the demo reaches its debug node.
 * Statuses and debug messages are read as the editor reads them, from the runtime's /comms websocket.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { exampleFiles, loadExampleFile, nodePackages, DEMO } from '../helpers/examples';
import { prepareUserDir, startNodeRed, redJs, type NodeRedProcess } from '../helpers/node-red-process';

const root = path.resolve(__dirname, '..', '..');
const start = require(path.join(root, 'scripts', 'start.js')) as { demoFlows(): any[] };
// the websocket client of the Node-RED under test (the editor's own comms protocol)
const WebSocket = require(require.resolve('ws', { paths: [path.dirname(redJs)] }));

interface Runtime extends NodeRedProcess {
  statuses: Map<string, { fill?: string; shape?: string; text?: string }>;
  statusAt: number;
  debug: any[];
  ws: any;
}

const lines = (rt: Runtime) => rt.lines();

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000, rt?: Runtime): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${rt ? `\n${rt.log.join('').slice(-4000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function api(rt: Runtime, method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${rt.base}${urlPath}`, {
    method,
    headers: { 'Node-RED-API-Version': 'v1', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

describe('all examples imported together next to the demo, in Node-RED started as users start it', function () {
  this.timeout(120_000);
  let tmp: string;
  let userDir: string;
  let cwd: string;
  let rt: Runtime;
  const examples = exampleFiles().filter((f) => f !== `${DEMO}.json`).map((f) => ({ file: f, flow: loadExampleFile(f) }));
  const allNodes = new Map<string, any>([...start.demoFlows(), ...examples.flatMap((e) => e.flow)].map((n) => [n.id, n]));
  const describeNode = (id: string) => (allNodes.has(id) ? `${allNodes.get(id).type} "${allNodes.get(id).name || id}"` : id);

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-all-examples-'));
    userDir = path.join(tmp, 'user');
    cwd = path.join(tmp, 'cwd');
    fs.mkdirSync(cwd, { recursive: true });
    // the node packages the examples use besides this one (node-red-node-sqlite, …), as a user installs them
    const modules = nodePackages().map((dir) => JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name as string);
    prepareUserDir(userDir, modules);
    // as a user's Node-RED: CDRFLOW_DATA not set (startNodeRed leaves out what earlier tests set here)
    const nr = await startNodeRed(userDir, { cwd });
    rt = { ...nr, statuses: new Map(), statusAt: 0, debug: [], ws: null };
    const port = new URL(nr.base).port;

    rt.ws = new WebSocket(`ws://127.0.0.1:${port}/comms`);
    rt.ws.on('message', (data: Buffer | string) => {
      const parsed = JSON.parse(data.toString());
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
        if (typeof m.topic !== 'string') continue;
        if (m.topic.startsWith('status/')) {
          rt.statuses.set(m.topic.slice('status/'.length), m.data ?? {});
          rt.statusAt = Date.now();
        } else if (m.topic === 'debug') rt.debug.push(m.data);
      }
    });
    await new Promise((resolve, reject) => {
      rt.ws.once('open', resolve);
      rt.ws.once('error', reject);
    });
    for (const topic of ['status/#', 'debug']) rt.ws.send(JSON.stringify({ subscribe: topic }));

    // import every example next to the demo and deploy, as the editor does after Import > Examples
    const current = await (await api(rt, 'GET', '/flows')).json();
    assert.ok(current.some((n: any) => n.type === 'cms-cdr-in'), 'npm start deployed the demo');
    const started = lines(rt).filter((l) => l.includes('Started flows')).length;
    const deployed = await api(rt, 'POST', '/flows', [...current, ...examples.flatMap((e) => e.flow)], { 'Node-RED-Deployment-Type': 'full' });
    assert.equal(deployed.status, 204, await deployed.text());
    await until('the flows to restart', () => lines(rt).filter((l) => l.includes('Started flows')).length > started, 30_000, rt);
    // settled: the injects that run at deploy have run, and no status changed for 1.5 s (a status is
    // shown at most once a second)
    await new Promise((r) => setTimeout(r, 1000));
    await until('the statuses to settle', () => Date.now() - rt.statusAt > 1500, 30_000, rt);
  });

  after(async () => {
    rt?.ws?.close();
    await rt?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('logs no error', () => {
    if (process.env.SHOWLOG) console.log(rt.log.join(''), JSON.stringify([...rt.statuses]));
    assert.deepEqual(lines(rt).filter((l) => /\[error\]/.test(l)), []);
  });

  it('shows no red status; a source whose account is not filled in says "not configured" in yellow, and why at info level', () => {
    const red = [...rt.statuses].filter(([, s]) => s.fill === 'red').map(([id, s]) => `${describeNode(id)}: ${s.text}`);
    assert.deepEqual(red, []);
    const notConfigured = [...rt.statuses].filter(([, s]) => s.text === 'not configured').map(([id, s]) => [allNodes.get(id)?.type, s.fill]);
    for (const type of ['comx-cdr-fetch', 'webex-cdr-pull', 'ccfs-bill-request', 'ccfs-callback-in', 'cms-call-message']) {
      assert.ok(notConfigured.some(([t, fill]) => t === type && fill === 'yellow'), `${type} is yellow "not configured": ${JSON.stringify(notConfigured)}`);
    }
    assert.ok(lines(rt).some((l) => /\[info\] \[comx-cdr-fetch:new CDRs \+ recordings\] .*no user/.test(l)), 'the reason is in the log at info level');
  });

  it('has every example on its own tab, next to the demo', async () => {
    const flows = await (await api(rt, 'GET', '/flows')).json();
    const tabs = new Map(flows.filter((n: any) => n.type === 'tab').map((n: any) => [n.id, n.label]));
    assert.equal(tabs.get('cdrflow-demo-tab'), 'CDR demo');
    for (const { file, flow } of examples) {
      const tab = flow.find((n) => n.type === 'tab');
      assert.equal(tabs.get(tab.id), file.replace(/\.json$/, ''), `${file}: its tab`);
      assert.equal(flows.filter((n: any) => n.z === tab.id).length, flow.filter((n) => n.z === tab.id).length, `${file}: every node on its tab`);
    }
  });

  it('keeps the examples\' databases in the user directory (CDRFLOW_DATA by default), nothing in the working directory', () => {
    for (const db of ['cms-cdr-records.db', 'webex_cdr.db', 'cdr.db', 'cdr-dashboard.db']) assert.ok(fs.existsSync(path.join(userDir, db)), `${db} in the user directory: ${fs.readdirSync(userDir).join(', ')}`);
    assert.deepEqual(fs.readdirSync(cwd), [], 'nothing in Node-RED\'s working directory');
  });

  it('takes a CDR posted to the demo\'s /cdr and shows it in the debug sidebar', async () => {
    const xml = fs.readFileSync(path.join(root, 'test', 'fixtures', 'cms', 'cdr-receiver-db-call.xml'));
    const res = await fetch(`${rt.base}/cdr`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: xml });
    assert.equal(res.status, 200, await res.text());
    const demoDebug = start.demoFlows().find((n) => n.type === 'debug' && n.name === 'CDR records').id;
    const shown = await until('six records in the debug sidebar', () => {
      const got = rt.debug.filter((d) => d.id === demoDebug);
      return got.length >= 6 && got;
    }, 15_000, rt);
    assert.deepEqual(shown.map((d: any) => d.topic).slice(0, 2), ['callStart', 'callLegStart']);
    assert.deepEqual(lines(rt).filter((l) => /\[error\]/.test(l)), []);
  });

  it('shows the quick start\'s batch again each time npm run demo:post sends it (a resend of the same file shows nothing)', async () => {
    const demoDebug = start.demoFlows().find((n) => n.type === 'debug' && n.name === 'CDR records').id;
    const shownSoFar = () => rt.debug.filter((d) => d.id === demoDebug).length;
    const before = shownSoFar();
    for (const run of [1, 2]) {
      // the script itself, as README runs it (PORT picks the port)
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [path.join(root, 'scripts', 'demo-post.js')], { env: { ...process.env, PORT: new URL(rt.base).port } }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
      assert.match(out, /HTTP 200/);
      await until(`six more records after demo:post run ${run}`, () => shownSoFar() === before + 6 * run, 15_000, rt);
    }
    // the README's curl line posts the fixture itself: the second time it is a resend, answered 200 and dropped
    const xml = fs.readFileSync(path.join(root, 'test', 'fixtures', 'cms', 'cdr-receiver-db-call.xml'));
    const again = await fetch(`${rt.base}/cdr`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: xml });
    assert.equal(again.status, 200);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(shownSoFar(), before + 12);
  });
});

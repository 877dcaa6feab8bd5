/**
 * Loads examples/Com.X hourly CDRs with recordings.json into a real Node-RED runtime (the core inject,
 * debug, file, comment and catch nodes plus ours) against the Com.X simulator, and lets its inject
 * node drive it end to end: CDRs logged to the file, recordings saved, the cursor stored.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, collect, settle, translate, coreNode } from '../helpers/red';
import pbxNode from '../../src/nodes/comx-pbx';
import fetchNode from '../../src/nodes/comx-cdr-fetch';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';

/** Our catalogs for our keys; core nodes' own keys (inject.repeat, …) are not in them and echo back. */
const tolerant = (mod: (RED: any) => unknown) => (RED: any) => {
  RED._ = (key: string, vars?: Record<string, unknown>) => {
    try {
      return translate(key, vars);
    } catch {
      return key;
    }
  };
  return mod(RED);
};
const core = coreNode;

describe('example flow: Com.X hourly CDRs with recordings', function () {
  this.timeout(20_000);
  const file = path.join(__dirname, '..', '..', 'examples', 'Com.X hourly CDRs with recordings.json');
  const sim = new ComxSimulator('Africa/Johannesburg');
  let dir: string;

  before(async () => {
    await sim.start();
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await sim.close();
    helper.settings({});
  });
  let savedData: string | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comx-example-'));
    helper.settings({ userDir: dir, comxPbxRetryBaseMs: 1 } as any);
    savedData = process.env.CDRFLOW_DATA;
  });
  afterEach(async () => {
    await helper.unload();
    if (savedData === undefined) delete process.env.CDRFLOW_DATA;
    else process.env.CDRFLOW_DATA = savedData;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is an importable array with a comment node, our node types and no credentials', () => {
    const text = fs.readFileSync(file, 'utf8');
    const flow = JSON.parse(text);
    assert.ok(Array.isArray(flow));
    assert.ok(flow.some((n: any) => n.type === 'comment' && /Setup/.test(n.info)));
    assert.ok(flow.some((n: any) => n.type === 'comx-cdr-fetch'));
    assert.ok(flow.some((n: any) => n.type === 'comx-pbx'));
    assert.ok(!/"credentials"|"password"|C@11Me/.test(text));
  });

  it('runs end to end against the simulator', async () => {
    const now = Date.now();
    sim.calls = generateCalls(now - 3 * 3600_000, 8, 15 * 60_000);
    const flow = JSON.parse(fs.readFileSync(file, 'utf8'));
    const byId = (id: string) => flow.find((n: any) => n.id === id);
    byId('comx_example_pbx').url = sim.url;
    // the recordings and the CDR log go where the tab's COMX_RECORDINGS and COMX_CDR_LOG say: under CDRFLOW_DATA
    assert.deepEqual([byId('comx_example_fetch').saveDir, byId('comx_example_file').filename], ['${COMX_RECORDINGS}', '${COMX_CDR_LOG}']);
    process.env.CDRFLOW_DATA = dir;
    byId('comx_example_fetch').wires[0].push('probe');
    flow.push({ id: 'probe', type: 'helper', z: 'comx_example_tab' });

    await helper.load([core('common/20-inject.js'), core('common/21-debug.js'), core('common/90-comment.js'), core('storage/10-file.js'), tolerant(pbxNode as any), tolerant(fetchNode as any)] as any, flow,
      { comx_example_pbx: { user: 'cdr', password: 's3cret' } } as any);
    // the inject does not fire at deploy: the user clicks its button (or waits an hour)
    const got = collect(helper.getNode('probe'), 8, 10_000);
    helper.getNode('comx_example_inject').receive({});
    const msgs = await got;
    assert.equal(msgs[0].topic, 'comx/cdr');
    await settle(300);
    const lines = fs.readFileSync(path.join(dir, 'comx-cdrs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.uniqueId), sim.calls.map((c) => c.uniqueId));
    const saved = fs.readdirSync(path.join(dir, 'comx-recordings')).sort();
    assert.deepEqual(saved, sim.calls.filter((c) => c.recording).map((c) => sim.recordingName(c)).sort());
    // while running, each sent CDR and the window's commit are journal lines; the snapshot comes on close
    assert.ok(fs.existsSync(path.join(dir, 'cdrflow-state', 'comx-cdr-fetch-comx_example_fetch.json.log')));
    assert.equal(sim.requests.length, 1);
    assert.match(sim.requests[0], /^\/commagui\/cdr\?format=ziprec&start=\d{12}&end=\d{12}$/);
  });
});

/** Loads examples/CC-FS daily CDR files.json into a real Node-RED and drives it end to end against the CC-FS simulator. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, collect, coreNode } from '../helpers/red';
import { start, closeServer, AK, SK, type Env } from '../nodes/ccfs-env';

const file = path.join(__dirname, '..', '..', 'examples', 'CC-FS daily CDR files.json');
const core = (f: string) => coreNode(`common/${f}`);

describe('example flow "CC-FS daily CDR files"', () => {
  let env: Env;
  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
  afterEach(async () => env?.stop());

  it('is an importable array with a comment, only this package’s and core nodes, and no credentials', () => {
    const flow = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.ok(Array.isArray(flow));
    assert.ok(flow.some((n: any) => n.type === 'comment' && /Setup/.test(n.info)));
    const ours = ['ccfs-account', 'ccfs-bill-request', 'ccfs-callback-in'];
    for (const n of flow) assert.ok(['tab', 'comment', 'inject', 'debug', 'catch', ...ours].includes(n.type), n.type);
    for (const t of ours) assert.ok(flow.some((n: any) => n.type === t), t);
    assert.ok(!flow.some((n: any) => 'credentials' in n), 'no credentials in the example');
    assert.doesNotMatch(JSON.stringify(flow), /test-sk|secretKey"\s*:\s*"[^"]/);
  });

  it('runs: the daily inject asks for yesterday, CC-FS calls back, the file is downloaded and its rows come out', async () => {
    env = await start({ autoCallback: true });
    const flow = JSON.parse(fs.readFileSync(file, 'utf8'));
    const byType = (t: string) => flow.find((n: any) => n.type === t);
    // the only edits: where CC-FS is, and where it can reach this Node-RED (what the comment tells a user to set)
    byType('ccfs-account').baseUrl = env.sim.url;
    byType('ccfs-bill-request').callBackURL = `${env.base}${byType('ccfs-callback-in').path}`;
    env.modules.push(core('20-inject.js'), core('21-debug.js'), core('90-comment.js'));
    await env.load(flow, { [byType('ccfs-account').id]: { accessKey: AK, secretKey: SK } });
    const debug = (name: string) => helper.getNode(flow.find((n: any) => n.type === 'debug' && n.name === name).id);
    const requested = collect(debug('requested (responseId)'), 1);
    const done = collect(debug('file done (summary)'), 1);
    const rows = collect(debug('calls and recordings'), 3);
    const errors: any[] = [];
    debug('errors').on('input', (m: any) => errors.push(m));

    helper.getNode(byType('inject').id).receive({});
    const [req] = await requested;
    assert.match(req.payload.responseId, /^[0-9a-f]{32}$/);
    assert.match(req.payload.beginTime, /^\d{4}-\d\d-\d\d 00:00:00$/);
    assert.match(req.payload.endTime, /^\d{4}-\d\d-\d\d 23:59:59$/);
    const [summary] = await done;
    assert.equal(summary.payload.responseId, req.payload.responseId);
    assert.equal(summary.ccfs.requestNode, byType('ccfs-bill-request').id);
    assert.deepEqual([summary.payload.summary.calls, summary.payload.summary.records], [2, 1]);
    const r = await rows;
    assert.deepEqual(r.map((m) => m.topic).sort(), ['ccfs/call', 'ccfs/call', 'ccfs/record']);
    await env.sim.idle();
    assert.deepEqual(env.sim.callbacks.map((c) => c.status), [200]);
    assert.equal(errors.length, 0);
  });
});

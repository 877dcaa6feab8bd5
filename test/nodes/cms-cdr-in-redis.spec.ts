/**
 * Two cms-cdr-in receivers sharing one real Redis (each with its own cdrflow-redis node, as two
 * Node-RED instances would have), fed the same records by two CMS receiver slots: every record is
 * sent on exactly once across both; with Redis stopped nothing is acknowledged (503) or sent on, and
 * CMS's resends after the restart are sent on once.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { createClient } from 'redis';
import type { AddressInfo } from 'node:net';
import cmsCdrIn = require('../../src/nodes/cms-cdr-in');
import cdrflowRedis = require('../../src/nodes/cdrflow-redis');
import { helper, capture, settle, useTempUserDir } from '../helpers/red';
import { Claims } from '../../src/ha/claim';
import { useRedisServer, waitFor } from '../helpers/redis-server';
import { CmsSender, syntheticPosts } from '../simulators/cms-sender';

const SESSION = 'c0ffee00-1111-4222-8333-444455556666';

/** What CMS sends a second receiver: the same records, its own recordIndex sequence (spec §1.3). */
const forSecondSlot = (body: string) => body.replace(/recordIndex="(\d+)"/g, (_m, n) => `recordIndex="${Number(n) + 5000}"`);
const correlators = (body: string) => [...body.matchAll(/correlatorIndex="(\d+)"/g)].map((m) => Number(m[1]));

describe('cms-cdr-in with a shared state (two receivers, one real Redis)', function () {
  this.timeout(60_000);
  const { dir } = useTempUserDir('each');
  const { server: redis } = useRedisServer();
  const inMod = capture(cmsCdrIn as any);
  const redisMod = capture(cdrflowRedis as any);
  let web: http.Server | null = null;
  let base = '';

  const flow = (more: Record<string, unknown> = {}) => [
    { id: 'tab', type: 'tab' },
    { id: 'r1', type: 'cdrflow-redis', port: redis().port, prefix: 'ha-test:', timeout: '1' },
    { id: 'r2', type: 'cdrflow-redis', port: redis().port, prefix: 'ha-test:', timeout: '1' },
    { id: 'inA', z: 'tab', type: 'cms-cdr-in', path: '/cdr-a', redis: 'r1', ...more, wires: [['outA'], []] },
    { id: 'inB', z: 'tab', type: 'cms-cdr-in', path: '/cdr-b', redis: 'r2', ...more, wires: [['outB'], []] },
    { id: 'outA', z: 'tab', type: 'helper' },
    { id: 'outB', z: 'tab', type: 'helper' },
  ];
  /** Loads the flow, serves RED.httpNode on a port (as Node-RED would), records who sent on what. */
  const start = async (settings: Record<string, unknown> = {}, more: Record<string, unknown> = {}) => {
    helper.settings({ userDir: dir(), ...settings });
    await helper.stopServer();
    await helper.startServer();
    await helper.load([inMod.module, redisMod.module] as any, flow(more) as any[]);
    web = http.createServer(inMod.red.RED.httpNode).listen(0, '127.0.0.1');
    await new Promise((r) => web!.once('listening', r));
    base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    const sent: Array<{ by: string; correlator: number; recordIndex: number }> = [];
    for (const id of ['outA', 'outB']) {
      helper.getNode(id).on('input', (m: any) => sent.push({ by: id, correlator: m.cms.correlatorIndex ?? -1, recordIndex: m.cms.recordIndex ?? -1 }));
    }
    const shared = (helper.getNode('r1') as any).cdrflow.get();
    await waitFor(() => shared.redis.up, 'redis up');
    await waitFor(() => (helper.getNode('r2') as any).cdrflow.get().redis.up, 'redis up');
    return sent;
  };
  afterEach(async () => {
    await new Promise((r) => (web ? web.close(r) : r(null)));
    web = null;
    if (!redis().running) await redis().start();
    // every test starts from an empty Redis (claims of one test would answer the next one's records)
    const c = createClient({ url: redis().url });
    await c.connect();
    await c.flushAll();
    c.destroy();
  });

  it('both slots get every POST; every record is sent on exactly once across the two', async () => {
    const sent = await start();
    const posts = syntheticPosts(60, SESSION);
    const a = new CmsSender({ url: `${base}/cdr-a`, retryDelayMs: 5 });
    const b = new CmsSender({ url: `${base}/cdr-b`, retryDelayMs: 5 });
    const [ra, rb] = await Promise.all([a.replay(posts), b.replay(posts.map(forSecondSlot))]);
    a.close();
    b.close();
    await settle(100);
    assert.ok([...ra, ...rb].every((r) => r.status === 200), 'every POST acknowledged on both slots');
    const expected = posts.flatMap(correlators);
    const got = sent.map((s) => s.correlator).sort((x, y) => x - y);
    assert.deepEqual(got, expected, 'each record once, none lost');
    // each receiver's own view stays on its own recordIndex
    for (const s of sent) assert.equal(s.by === 'outB' ? s.recordIndex - 5000 : s.recordIndex, s.correlator + 1);
    // resends to either slot later (CMS retrying) send nothing more
    const late = new CmsSender({ url: `${base}/cdr-b`, retryDelayMs: 5 });
    assert.ok((await late.replay(posts.slice(0, 5).map(forSecondSlot))).every((r) => r.status === 200));
    late.close();
    await settle(100);
    assert.equal(sent.length, expected.length);
  });

  it('a record already sent on by the other receiver is answered 200 and sent on by nobody else, per post mode too', async () => {
    const sent = await start({}, { output: 'post' });
    const posts = syntheticPosts(3, SESSION);
    const a = new CmsSender({ url: `${base}/cdr-a`, maxAttempts: 1 });
    const b = new CmsSender({ url: `${base}/cdr-b`, maxAttempts: 1 });
    assert.ok((await a.replay(posts)).every((r) => r.status === 200));
    assert.ok((await b.replay(posts.map(forSecondSlot))).every((r) => r.status === 200));
    a.close();
    b.close();
    await settle(100);
    // output 'post': one message per POST with the records this receiver won
    assert.equal(sent.length, posts.length, 'one message per POST, all from A');
    assert.ok(sent.every((s) => s.by === 'outA'), 'B sent nothing on');
  });

  it('Redis stopped: 503 and nothing sent on, status says so; restarted: CMS\'s resends are sent on once', async () => {
    const sent = await start();
    const posts = syntheticPosts(6, SESSION);
    const first = posts.slice(0, 3);
    const rest = posts.slice(3);
    const a1 = new CmsSender({ url: `${base}/cdr-a`, maxAttempts: 1 });
    assert.ok((await a1.replay(first)).every((r) => r.status === 200));
    a1.close();
    await settle(50);
    const before = sent.length;

    await redis().stop();
    const link = (helper.getNode('r1') as any).cdrflow.get().redis;
    await waitFor(() => !link.up, 'redis down noticed');
    const once = new CmsSender({ url: `${base}/cdr-a`, maxAttempts: 1 });
    const refused = await once.send(rest[0]);
    const refusedB = await new CmsSender({ url: `${base}/cdr-b`, maxAttempts: 1 }).send(forSecondSlot(rest[0]));
    once.close();
    assert.equal(refused.status, 503);
    assert.equal(refusedB.status, 503);
    await settle(50);
    assert.equal(sent.length, before, 'nothing sent on while Redis is away');
    const statuses = (helper.getNode('inA').status as any).getCalls().map((c: any) => String(c.args[0]?.text ?? ''));
    assert.ok(statuses.some((t: string) => /Redis unreachable/.test(t)), `status says so: ${statuses.join(' | ')}`);

    await redis().start();
    await waitFor(() => link.up, 'redis back', 20_000);
    // CMS sends everything not acknowledged again, to both slots
    const a = new CmsSender({ url: `${base}/cdr-a`, retryDelayMs: 5 });
    const b = new CmsSender({ url: `${base}/cdr-b`, retryDelayMs: 5 });
    const [ra, rb] = await Promise.all([a.replay(rest), b.replay(rest.map(forSecondSlot))]);
    a.close();
    b.close();
    await settle(100);
    assert.ok([...ra, ...rb].every((r) => r.status === 200));
    assert.deepEqual(sent.map((s) => s.correlator).sort((x, y) => x - y), posts.flatMap(correlators), 'every record once');
  });

  it('a record another receiver claimed but has not finished is not acknowledged (503) after the wait, and sent on once when that one finishes', async () => {
    const sent = await start({ cmsCdrInClaimWaitMs: 0 });
    const posts = syntheticPosts(1, SESSION);
    // a third party (another instance in the middle of its delivery) holds the claim
    const shared = (helper.getNode('r1') as any).cdrflow.get();
    const other = new Claims(shared.redis, 'other-instance');
    const keys = correlators(posts[0]).map((c) => `cms:${SESSION}:${c}`);
    for (const k of keys) assert.equal(await other.claim(k, 30_000), 'won');
    const a = new CmsSender({ url: `${base}/cdr-a`, maxAttempts: 1 });
    assert.equal((await a.send(posts[0])).status, 503);
    await settle(50);
    assert.equal(sent.length, 0);
    // the other instance fails and gives its claims back: CMS's resend is sent on here
    for (const k of keys) assert.equal(await other.release(k), true);
    assert.equal((await a.send(posts[0])).status, 200);
    a.close();
    await settle(50);
    assert.deepEqual(sent.map((s) => s.correlator), correlators(posts[0]));
  });

  it('a shared state that is not configured properly: 503, never 200, and the reason in the log', async () => {
    helper.settings({ userDir: dir() });
    await helper.load([inMod.module, redisMod.module] as any, [
      { id: 'bad', type: 'cdrflow-redis', url: 'http://not-redis' },
      { id: 'inA', type: 'cms-cdr-in', path: '/cdr-a', redis: 'bad', wires: [[]] },
    ] as any[]);
    web = http.createServer(inMod.red.RED.httpNode).listen(0, '127.0.0.1');
    await new Promise((r) => web!.once('listening', r));
    const url = `http://127.0.0.1:${(web.address() as AddressInfo).port}/cdr-a`;
    const s = new CmsSender({ url, maxAttempts: 1 });
    assert.equal((await s.send(syntheticPosts(1, SESSION)[0])).status, 503);
    s.close();
    const warnings = (helper.getNode('inA').warn as any).getCalls().map((c: any) => String(c.args[0]));
    assert.ok(warnings.some((w: string) => /Redis URL/.test(w)), warnings.join(' | '));
  });
});

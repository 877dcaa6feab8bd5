/**
 * comx-cdr-fetch with a shared state (cdrflow-redis) against a real redis-server and the Com.X
 * simulator, in one runtime. "The other instance" is what a second Node-RED would do, done here with
 * the same real pieces on its own connection: a Lease on the node's lease key and the state backend on
 * its state key. Two real Node-RED processes: test/ha/comx-failover.spec.ts.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, capture, settle, translate, useTempUserDir } from '../helpers/red';
import pbxNode from '../../src/nodes/comx-pbx';
import fetchNode from '../../src/nodes/comx-cdr-fetch';
import cdrflowRedis = require('../../src/nodes/cdrflow-redis');
import { ComxSimulator, generateCalls } from '../simulators/comx-server';
import { ComxSync, DEFAULT_SYNC } from '../../src/comx/sync';
import { rangeStamp } from '../../src/comx/client';
import { SharedRedis } from '../../src/ha/connection';
import { Lease } from '../../src/ha/lease';
import { redisSettings } from '../../src/ha/options';
import { RedisStateBackend } from '../../src/ha/redis-state';
import { useRedisServer, waitFor, withRedis, type RawRedis } from '../helpers/redis-server';

const SA = 'Africa/Johannesburg';
const MIN = 60_000;
const HOUR = 60 * MIN;
const LEASE_MS = 400;
const PREFIX = 'cf:';
const LEASE_KEY = `${PREFIX}lease:comx-cdr-fetch:f`;
const STATE_KEY = `${PREFIX}state:comx-cdr-fetch:f`;
const SYNC = { ...DEFAULT_SYNC, overlapMs: HOUR, safetyMs: 0, firstLookbackMs: 4 * HOUR };

/** A plain client beside the code under test, to look at what it wrote. */

describe('comx-cdr-fetch with a shared state (real redis-server, one runtime)', function () {
  this.timeout(30_000);
  const { dir } = useTempUserDir('each');
  const { server } = useRedisServer();
  const sim = new ComxSimulator(SA, 'cdr', 's3cret', () => Date.now());
  const pbx = capture(pbxNode as any);
  const fetch = capture(fetchNode as any);
  const redisMod = capture(cdrflowRedis as any);
  /** The other instance's connections. */
  const others: SharedRedis[] = [];
  const leases: Lease[] = [];
  let out: any[] = [];
  let caught: any[] = [];

  const raw = <T>(fn: (c: RawRedis) => Promise<T>): Promise<T> => withRedis(server().url, fn);
  const storedSync = async (): Promise<ComxSync> => ComxSync.restore(JSON.parse((await raw((c) => c.hGet(STATE_KEY, 'json')))!), [], SYNC);
  const status = () => (helper.getNode('f') as any).status.lastCall?.args[0] ?? {};
  const incrementalRequests = () => sim.requests.filter((r) => /start=/.test(r));

  const load = async (fetchProps: Record<string, unknown> = {}) => {
    helper.settings({ userDir: dir(), comxPbxRetryBaseMs: 1, cdrflowLeaseMs: LEASE_MS } as any);
    await helper.load([pbx.module, fetch.module, redisMod.module] as any, [
      { id: 'tab', type: 'tab' },
      { id: 'pbx', type: 'comx-pbx', url: sim.url, timezone: SA, timeout: 5, retries: 0 },
      { id: 'r', type: 'cdrflow-redis', port: server().port, prefix: PREFIX, timeout: '1' },
      { id: 'f', type: 'comx-cdr-fetch', z: 'tab', pbx: 'pbx', redis: 'r', mode: 'incremental', firstHours: 4, safetyMin: 0, overlapMin: 60, wires: [['out'], []], ...fetchProps },
      { id: 'out', type: 'helper', z: 'tab' },
      { id: 'c', type: 'catch', z: 'tab', scope: null, wires: [['caught']] },
      { id: 'caught', type: 'helper', z: 'tab' },
    ] as any, { pbx: { user: 'cdr', password: 's3cret' } } as any);
    out = [];
    caught = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    helper.getNode('caught').on('input', (m: any) => caught.push(m));
  };
  /** The other instance: its own connection and a lease on the node's key. */
  const otherInstance = async () => {
    const redis = new SharedRedis(redisSettings({ port: server().port, prefix: PREFIX, timeoutMs: 1000 }));
    others.push(redis);
    await waitFor(() => redis.up, 'redis up');
    const lease = new Lease(redis, 'comx-cdr-fetch:f', { ttlMs: LEASE_MS });
    leases.push(lease);
    return { redis, lease, backend: new RedisStateBackend(redis, 'comx-cdr-fetch:f', { fence: { key: redis.key('lease', 'comx-cdr-fetch:f'), token: lease.token } }) };
  };
  /** One incremental run asked of the node; resolves once its queue took it (the status or output tells the rest). */
  const run = async (msg: Record<string, unknown> = {}) => {
    helper.getNode('f').receive(msg);
    await settle(50);
  };

  before(async () => {
    await sim.start();
  });
  after(async () => {
    await sim.close();
  });
  beforeEach(() => {
    sim.faults = {};
    sim.requests = [];
    // twelve calls over the last three hours, all ended
    sim.calls = generateCalls(Math.floor((Date.now() - 3 * HOUR) / MIN) * MIN, 12, 15 * MIN);
  });
  afterEach(async () => {
    await helper.unload();
    for (const l of leases.splice(0)) await l.stop();
    for (const r of others.splice(0)) await r.close();
    if (!server().running) await server().start();
    await raw((c) => c.flushAll());
  });

  it('the holder fetches and keeps cursor and sent CDRs in Redis (no file)', async () => {
    await load();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease gained');
    assert.ok((await raw((c) => c.get(LEASE_KEY))) !== null);
    await run();
    await waitFor(() => out.length === 12, 'all twelve CDRs');
    await waitFor(async () => (await storedSync()).cursorMs !== null, 'the cursor in Redis');
    const stored = await storedSync();
    assert.equal(stored.seenCount, 12);
    assert.equal(fs.existsSync(path.join(dir(), 'cdrflow-state')), false, 'no state file');
  });

  it('stopped (a redeploy, a SIGTERM): saves its state and releases the lease before the connection closes, so the other instance takes over at once', async () => {
    await load();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease gained');
    await run();
    await waitFor(() => out.length === 12, 'all twelve CDRs');
    // Node-RED stops the config node together with this node: the lease must still be given back
    await helper.unload();
    assert.equal(await raw((c) => c.get(LEASE_KEY)), null, 'the lease was released, not left to run out');
    const other = await otherInstance();
    assert.equal(await other.lease.attempt(), true, 'the other instance gets the lease at its first attempt');
    assert.equal((await storedSync()).seenCount, 12, 'the state saved at close is in Redis');
  });

  it('standby: incremental runs fetch nothing and raise nothing; lookups run; msg.cursor goes to Catch', async () => {
    const other = await otherInstance();
    assert.equal(await other.lease.attempt(), true);
    other.lease.start();
    await load();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.standby'), 'standby');
    await run();
    await run({ mode: 'incremental' });
    await settle(300);
    assert.deepEqual(incrementalRequests(), [], 'nothing asked of the PBX');
    assert.equal(out.length, 0);
    assert.equal(caught.length, 0, 'a standby is not an error');
    assert.equal(status().text, translate('comx-cdr-fetch.status.standby'));

    // a lookup touches no shared state: it runs here
    await run({ mode: 'id', id: sim.calls[3].uniqueId });
    await waitFor(() => out.length === 1, 'the lookup answered');
    assert.equal(out[0].payload.uniqueId, sim.calls[3].uniqueId);

    await run({ cursor: new Date(Date.now() - HOUR) });
    await waitFor(() => caught.length === 1, 'msg.cursor refused');
    assert.equal(caught[0].error.message, `Error: ${translate('comx-cdr-fetch.errors.standby')}`);
    assert.equal(await raw((c) => c.exists(STATE_KEY)), 0, 'the standby wrote nothing');
  });

  it('taking over: the state is read again from Redis (the other instance moved the cursor) before the first fetch', async () => {
    await load();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease gained');
    await run();
    await waitFor(() => out.length === 12, 'first window');
    await waitFor(async () => (await storedSync()).cursorMs !== null, 'cursor stored');

    // the lease is taken from this node (as after a stall): it must notice and stand by
    const other = await otherInstance();
    await raw((c) => c.del(LEASE_KEY));
    assert.equal(await other.lease.attempt(), true);
    other.lease.start();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.standby'), 'standby after the lease was taken');
    // the other instance fetched meanwhile: cursor later, and it sent a call this node never saw
    const later = { uniqueId: `${Math.floor((Date.now() - 20 * MIN) / 1000)}.900`, startMs: Date.now() - 20 * MIN, duration: 30 };
    sim.calls.push(later);
    const theirs = ComxSync.restore(JSON.parse((await raw((c) => c.hGet(STATE_KEY, 'json')))!), [], SYNC);
    theirs.markEmitted([{ uniqueId: later.uniqueId, raw: sim.indexLine(later, false), start: new Date(later.startMs).toISOString() }]);
    const movedTo = Math.floor((Date.now() - 10 * MIN) / MIN) * MIN;
    theirs.setCursor(movedTo);
    await other.backend.write(theirs.snapshot());
    await other.lease.stop(); // released: this node takes over

    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease gained again');
    sim.requests = [];
    out = [];
    await run();
    await waitFor(() => sim.requests.length === 1, 'the next window asked');
    assert.ok(sim.requests[0].includes(`start=${rangeStamp(movedTo - HOUR, SA)}`), `from the other instance's cursor less the overlap: ${sim.requests[0]}`);
    await settle(300);
    assert.ok(!out.some((m) => m.payload.uniqueId === later.uniqueId), 'what the other instance sent is not sent again');
    assert.equal(caught.length, 0);
  });

  it('Redis down: no fetch, the status says so; back: the holder fetches again', async () => {
    // a cursor ten minutes back: a window is due at every run
    const before = ComxSync.restore(undefined, [], SYNC);
    const cursor = Math.floor((Date.now() - 10 * MIN) / MIN) * MIN;
    before.setCursor(cursor);
    await raw((c) => c.hSet(STATE_KEY, { json: JSON.stringify(before.snapshot()), savedAt: String(Date.now()) }));
    await load();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease gained');
    await server().stop();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.redisDown'), 'status: Redis down');
    const fresh = { uniqueId: `${Math.floor((Date.now() - 5 * MIN) / 1000)}.901`, startMs: Date.now() - 5 * MIN, duration: 20 };
    sim.calls.push(fresh);
    await run();
    await run();
    await settle(LEASE_MS * 2);
    await run();
    await settle(100);
    assert.equal(sim.requests.length, 0, 'nothing fetched while the cursor cannot be stored');
    assert.equal(caught.length, 0, 'scheduled runs are not errors');
    await run({ cursor: new Date() });
    await waitFor(() => caught.length === 1, 'an explicit change fails');
    assert.match(caught[0].error.message, /cannot be reached/);

    await server().start();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease held again');
    await run();
    await waitFor(() => out.some((m) => m.payload.uniqueId === fresh.uniqueId), 'the new call');
    assert.equal(sim.requests.length, 1);
    assert.ok(sim.requests[0].includes(`start=${rangeStamp(cursor - HOUR, SA)}`), `from the stored cursor: ${sim.requests[0]}`);
  });

  it('the lease lost during a fetch: the fetch stops at once, nothing more is sent, the cursor stays, Catch says why', async () => {
    await load();
    await waitFor(() => status().text === translate('comx-cdr-fetch.status.active'), 'lease gained');
    sim.faults = { slowMs: 3000 };
    await run();
    await waitFor(() => sim.requests.length === 1, 'the fetch asked the PBX');
    // another instance gets the lease (as if this one had stalled): this one's renewal finds it taken
    await raw((c) => c.set(LEASE_KEY, 'someone-else', { PX: 10_000 }));
    await waitFor(() => caught.length === 1, 'the run failed', 5000);
    assert.equal(caught[0].error.message, `Error: ${translate('comx-cdr-fetch.errors.leaseLost', { why: translate('comx-cdr-fetch.lease.taken') })}`);
    await waitFor(() => sim.aborted === 1, 'the request given up');
    await settle(3000);
    assert.equal(out.length, 0, 'nothing sent on after the loss');
    assert.equal(await raw((c) => c.exists(STATE_KEY)), 0, 'no cursor stored');
  });
});

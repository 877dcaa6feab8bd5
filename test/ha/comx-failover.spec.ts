/**
 * Two real Node-RED processes (red.js, separate user directories), one real redis-server, the same flow
 * in both: an Inject every second → comx-cdr-fetch (shared state: cdrflow-redis) → http request POSTing
 * each CDR to a collector on loopback. Each instance has its own Com.X simulator over the same calls,
 * so every request is known by instance and by time.
 *
 * A holds the lease and is SIGKILLed while its first fetch is in progress; B must take over (lease key
 * B's within 2× the lease time) and fetch, never while A's request was still open; A restarted is a
 * standby that fetches nothing while B goes on with the next window; downstream, every CDR once after
 * natural-key dedup. Timings are printed.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import { prepareUserDir, startNodeRed, userEnv, type NodeRedProcess } from '../helpers/node-red-process';
import { RedisServer, waitFor } from '../helpers/redis-server';
import { ComxSimulator, generateCalls, type SimCall } from '../simulators/comx-server';

const SA = 'Africa/Johannesburg';
const MIN = 60_000;
const HOUR = 60 * MIN;
const LEASE_MS = 3000;
const LEASE_KEY = 'fo:lease:comx-cdr-fetch:fetch1';

/** The flow both instances run; where to fetch from and post to comes from each one's environment. */
function flow(redisPort: number): unknown[] {
  return [
    { id: 'tab1', type: 'tab', label: 'failover' },
    { id: 'redis1', type: 'cdrflow-redis', host: '127.0.0.1', port: String(redisPort), prefix: 'fo:', timeout: '1' },
    { id: 'pbx1', type: 'comx-pbx', url: '${COMX_URL}', timezone: SA, timeout: 5, retries: 0 },
    { id: 'tick1', type: 'inject', z: 'tab1', props: [{ p: 'payload' }], repeat: '1', once: true, onceDelay: '0.5', topic: '', payload: '', payloadType: 'date', wires: [['fetch1']] },
    { id: 'fetch1', type: 'comx-cdr-fetch', z: 'tab1', pbx: 'pbx1', redis: 'redis1', mode: 'incremental', format: 'txt', firstHours: 4, overlapMin: 60, safetyMin: 0, output: 'cdr', wires: [['post1'], []] },
    { id: 'post1', type: 'http request', z: 'tab1', method: 'POST', ret: 'txt', paytoqs: 'ignore', url: '${COLLECT_URL}', tls: '', persist: false, proxy: '', authType: '', senderr: false, headers: [], wires: [[]] },
  ];
}

const settingsJs = `module.exports = {
    flowFile: 'flows.json',
    credentialSecret: false,
    cdrflowLeaseMs: ${LEASE_MS},
    comxPbxRetryBaseMs: 100,
    telemetry: { enabled: false },
    editorTheme: { tours: false },
    logging: { console: { level: 'info', metrics: false, audit: false } }
};
`;

/** A user directory of its own with the flow, plain credentials and the short lease. */
function userDir(base: string, name: string, redisPort: number): string {
  const dir = path.join(base, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'settings.js'), settingsJs);
  fs.writeFileSync(path.join(dir, 'flows.json'), JSON.stringify(flow(redisPort), null, 2));
  fs.writeFileSync(path.join(dir, 'flows_cred.json'), JSON.stringify({ pbx1: { user: 'cdr', password: 's3cret' } }));
  prepareUserDir(dir);
  return dir;
}

const keyOf = (cdr: { uniqueId: string; raw: string }) => `${cdr.uniqueId}|${cdr.raw}`;

describe('comx-cdr-fetch failover: two Node-RED processes, one Redis (SIGKILL of the holder)', function () {
  this.timeout(240_000);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-failover-'));
  const redis = new RedisServer();
  const simA = new ComxSimulator(SA);
  const simB = new ComxSimulator(SA);
  const received: { by: string; cdr: { uniqueId: string; raw: string } }[] = [];
  const runtimes: NodeRedProcess[] = [];
  let collector: http.Server | null = null;
  let collectUrl = '';

  before(async () => {
    await redis.start();
    await simA.start();
    await simB.start();
    collector = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        try {
          received.push({ by: req.url ?? '', cdr: JSON.parse(body) });
        } catch { /* counted as missing below */ }
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => collector!.listen(0, '127.0.0.1', r));
    collectUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const rt of runtimes) {
      if (rt.child.exitCode === null && rt.child.signalCode === null) await rt.stop();
    }
    await new Promise((r) => (collector ? collector.close(r) : r(null)));
    await simA.close();
    await simB.close();
    await redis.dispose();
    fs.rmSync(base, { recursive: true, force: true });
  });

  const start = async (name: 'A' | 'B', sim: ComxSimulator, dir: string) => {
    const rt = await startNodeRed(dir, { env: { ...userEnv(), COMX_URL: sim.url, COLLECT_URL: `${collectUrl}/${name}` } });
    runtimes.push(rt);
    return rt;
  };
  const leaseOwner = async (): Promise<string | null> => {
    const c = createClient({ url: redis.url });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return await c.get(LEASE_KEY);
    } finally {
      c.destroy();
    }
  };

  it('the standby takes over after a SIGKILL, never fetching while the holder did; the restarted one is a standby; every CDR once after dedup', async () => {
    const t0 = Date.now();
    // twenty calls over the last three hours, and three still up that end during the test
    const calls: SimCall[] = [
      ...generateCalls(Math.floor((t0 - 3 * HOUR) / MIN) * MIN, 20, 9 * MIN),
      ...generateCalls(Math.floor((t0 - 2 * MIN) / 1000) * 1000, 3, 1000, { seq: 700, duration: 140 }),
    ];
    const liveEnd = Math.max(...calls.map((c) => c.startMs + c.duration * 1000));
    simA.calls = calls;
    simB.calls = calls; // the same PBX seen by both instances
    // A's first fetch hangs: it is killed while the request is open
    simA.faults = { slowMs: 60_000 };

    const dirA = userDir(base, 'A', redis.port);
    const dirB = userDir(base, 'B', redis.port);
    let a = await start('A', simA, dirA);
    await waitFor(async () => (await leaseOwner()) !== null, 'A holds the lease', 30_000);
    const tokenA = await leaseOwner();
    await start('B', simB, dirB);
    await waitFor(() => simA.spans.length === 1, 'A\'s first fetch under way', 30_000);
    // B runs its injects as standby for a while: nothing may reach its PBX
    await new Promise((r) => setTimeout(r, LEASE_MS));
    assert.equal(simB.spans.length, 0, 'the standby fetched nothing while A held the lease');
    assert.equal(await leaseOwner(), tokenA);

    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    await waitFor(async () => {
      const owner = await leaseOwner();
      return owner !== null && owner !== tokenA;
    }, 'B holds the lease', 30_000);
    const takenAt = Date.now();
    const tokenB = await leaseOwner();
    await waitFor(() => simB.spans.length >= 1 && simB.spans[0].end !== null, 'B\'s first fetch done', 30_000);
    const firstFetchB = simB.spans[0].start;
    console.log(`      lease ${LEASE_MS} ms: taken over ${takenAt - killedAt} ms after the kill, B's first request ${firstFetchB - killedAt} ms after it`);
    // the lease's own bound is its time plus one renewal interval (a third); 2× leaves room for a loaded machine
    assert.ok(takenAt - killedAt <= 2 * LEASE_MS, `taken over within 2× the lease time (${takenAt - killedAt} ms)`);
    // no double pull: B's first request began after A's had ended (A's connection closed at its death)
    assert.ok(simA.spans[0].end !== null && simA.spans[0].end <= firstFetchB, 'B fetched only once A\'s request was over');
    assert.ok(firstFetchB >= killedAt, 'B fetched only after the kill');

    // A again, on the same user directory: a standby
    simA.faults = {};
    const aSpansBefore = simA.spans.length;
    a = await start('A', simA, dirA);
    // B fetches the next window (after the calls still up have ended): A asks the PBX nothing meanwhile
    await waitFor(() => simB.spans.some((s) => s.start > liveEnd && s.end !== null), 'B fetches a window after the last call ended', 150_000);
    await new Promise((r) => setTimeout(r, 1500)); // the posts of that window reach the collector
    assert.equal(simA.spans.length, aSpansBefore, 'the restarted instance fetched nothing');
    assert.equal(await leaseOwner(), tokenB, 'B kept the lease');

    // downstream: every CDR once after dedup on the natural key, none missing, none that is not a call
    const expected = new Set(calls.map((c) => keyOf({ uniqueId: c.uniqueId, raw: simB.indexLine(c, false) })));
    const got = new Set(received.map((r) => keyOf(r.cdr)));
    const missing = [...expected].filter((k) => !got.has(k));
    const unknown = [...got].filter((k) => !expected.has(k));
    console.log(`      ${received.length} posts for ${expected.size} calls (${received.length - got.size} duplicates before dedup); requests: A ${simA.spans.length}, B ${simB.spans.length}`);
    assert.deepEqual(missing, [], 'no CDR missing');
    assert.deepEqual(unknown, [], 'nothing that is not a call');
    // each window once: no two requests for the same window while one was open (all requests in time order)
    const all = [...simA.spans.map((s) => ({ ...s, by: 'A' })), ...simB.spans.map((s) => ({ ...s, by: 'B' }))].sort((x, y) => x.start - y.start);
    for (let i = 1; i < all.length; i++) {
      assert.ok(all[i - 1].end !== null && all[i - 1].end! <= all[i].start, `request ${i} (${all[i].by} ${all[i].path}) began while ${all[i - 1].by}'s was open`);
    }
    const perWindow = new Map<string, number>();
    for (const s of all) perWindow.set(s.path, (perWindow.get(s.path) ?? 0) + 1);
    console.log(`      requests per window: ${[...perWindow.values()].join(', ')} (the first window twice: A died in it)`);
    assert.ok(received.every((r) => r.by === '/B'), 'only B sent CDRs on (A died before its answer, then stood by)');
  });
});

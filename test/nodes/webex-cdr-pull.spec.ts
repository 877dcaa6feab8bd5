import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, capture, settle } from '../helpers/red';
import { WebexApiSim, VirtualClock } from '../simulators/webex-api';
import accountMod = require('../../src/nodes/webex-account');
import pullMod = require('../../src/nodes/webex-cdr-pull');

const MIN = 60_000;
const H = 60 * MIN;

describe('webex-cdr-pull node', function () {
  this.timeout(20_000);
  const now0 = Date.parse('2026-11-23T12:00:00.000Z');
  let clock: VirtualClock;
  let sim: WebexApiSim;
  let userDir: string;
  let refreshToken: string;

  beforeEach(async () => {
    clock = new VirtualClock(now0, 15); // 15 ms of real time per virtual sleep: requests already sent land first, even on a busy machine
    sim = await new WebexApiSim({ clock }).start();
    refreshToken = sim.issueRefreshToken();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webex-pull-'));
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

  function flow(pull: Record<string, unknown> = {}, account: Record<string, unknown> = {}) {
    return [
      { id: 'tab', type: 'tab', label: 'webex' },
      { id: 'acc', type: 'webex-account', region: 'custom', baseUrl: sim.url(), tokenUrl: sim.tokenUrl, timeoutS: 1, ...account },
      { id: 'pull', type: 'webex-cdr-pull', z: 'tab', x: 100, y: 100, account: 'acc', interval: 0, lookbackHours: 6, max: 500, wires: [['out'], ['stats']], ...pull },
      { id: 'out', type: 'helper', z: 'tab', x: 300, y: 100 },
      { id: 'stats', type: 'helper', z: 'tab', x: 300, y: 200 },
      { id: 'catch', type: 'catch', z: 'tab', scope: null, uncaught: false, x: 100, y: 300, wires: [['caught']] },
      { id: 'caught', type: 'helper', z: 'tab', x: 300, y: 300 },
    ];
  }

  const creds = (over: Record<string, unknown> = {}) => ({ acc: { clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken, ...over } });

  interface Rig { records: any[]; stats: any[]; caught: any[]; red: any }
  async function load(f = flow(), c: Record<string, unknown> = creds()): Promise<Rig> {
    const acc = capture(accountMod as any);
    const pull = capture(pullMod as any);
    await helper.load([acc.module, pull.module], f, c);
    const rig: Rig = { records: [], stats: [], caught: [], red: pull.red.RED };
    helper.getNode('out').on('input', (m: any) => rig.records.push(m));
    helper.getNode('stats').on('input', (m: any) => rig.stats.push(m));
    helper.getNode('caught').on('input', (m: any) => rig.caught.push(m));
    return rig;
  }

  async function until(cond: () => boolean, ms = 10_000): Promise<void> {
    const t = Date.now();
    while (!cond()) {
      if (Date.now() - t > ms) throw new Error('timed out waiting');
      await settle(5);
    }
  }

  function expectedIds(from: number): string[] {
    return sim.records.filter((r) => r.reportAt >= from && r.insertedAt + 30_000 <= clock.now() - 3 * MIN).map((r) => r.id.toLowerCase());
  }

  function exactlyOnce(all: any[], ids: string[]): void {
    const counts = new Map<string, number>();
    for (const m of all) counts.set(m.webex.reportId, (counts.get(m.webex.reportId) ?? 0) + 1);
    const missing = ids.filter((id) => !counts.has(id));
    assert.equal(missing.length, 0, `missing ${missing.length}`);
    const dups = [...counts].filter(([, n]) => n > 1);
    assert.equal(dups.length, 0, `duplicates ${dups.length}`);
  }

  it('a message runs an incremental sync: one typed message per record, input properties kept, statistics on output 2', async () => {
    sim.generate(1100, now0 - 5 * H, now0 - 3 * MIN);
    const rig = await load();
    helper.getNode('pull').receive({ payload: 'go', correlation: 'abc' });
    await until(() => rig.stats.length === 1);
    await settle();
    const s = rig.stats[0];
    assert.equal(s.topic, 'cdr_sync_state');
    assert.equal(s.correlation, 'abc');
    assert.equal(s.payload.ok, true);
    assert.equal(s.payload.records, rig.records.length);
    assert.ok(s.payload.apiCalls >= s.payload.pages);
    exactlyOnce(rig.records, expectedIds(now0 - 6 * H));
    const m = rig.records[0];
    assert.equal(m.topic, 'webex-cdr');
    assert.equal(m.correlation, 'abc');
    assert.equal(typeof m.payload['Report ID'], 'string', 'the record as received');
    assert.equal(m.cdr.reportId, m.payload['Report ID']);
    assert.match(m.cdr.startTime, /Z$/);
    assert.equal(typeof m.cdr.duration, 'number');
    assert.equal(typeof m.cdr.answered, 'boolean');
    assert.equal(m.webex.endpoint, 'cdr_stream');
    assert.equal(rig.caught.length, 0);
    assert.equal(sim.rateViolations, 0);
    // the rotated refresh token was kept in the token store and in the credential cache
    const file = path.join(userDir, 'cdrflow-state', 'webex-account-acc.json');
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.notEqual(saved.tokens.refreshToken, refreshToken);
    assert.equal(rig.red.nodes.getCredentials('acc').refreshToken, saved.tokens.refreshToken);
  });

  it('per-page output sends arrays', async () => {
    sim.generate(1100, now0 - 1.5 * H, now0 - 3 * MIN);
    const rig = await load(flow({ output: 'page', lookbackHours: 2 }));
    helper.getNode('pull').receive({ payload: '' });
    await until(() => rig.stats.length === 1);
    await settle();
    assert.ok(rig.records.length >= 3);
    assert.ok(rig.records.every((m) => Array.isArray(m.payload) && m.payload.length === m.cdr.length && m.payload.length <= 500));
    assert.equal(rig.records.reduce((n, m) => n + m.payload.length, 0), rig.stats[0].payload.records);
  });

  it('killed and restarted mid-pagination (close aborts the request in flight): no gap, no duplicate; a restart uses the rotated tokens', async () => {
    sim.generate(2600, now0 - 5 * H, now0 - 3 * MIN);
    sim.inject({ kind: 'page', hang: true, after: 1 });
    let rig = await load(flow({}, { timeoutS: 60 })); // no timeout can end the held request: only the abort on close
    const all: any[] = [];
    helper.getNode('pull').receive({ payload: 'go' });
    await until(() => sim.log.some((l) => l.status === -1));
    all.push(...rig.records);
    assert.ok(rig.records.length > 0 && rig.records.length < 2000, `${rig.records.length} before the kill`);
    await helper.unload();
    await until(() => sim.hungClosed === 1);
    // the original refresh token was revoked by the rotation: a restart must use the stored one
    rig = await load();
    helper.getNode('pull').receive({ payload: 'go' });
    await until(() => rig.stats.length === 1);
    await settle();
    all.push(...rig.records);
    assert.equal(rig.stats[0].payload.ok, true, JSON.stringify(rig.stats[0].payload.error));
    exactlyOnce(all, expectedIds(now0 - 6 * H));
    assert.equal(sim.refreshGrants, 1, 'no second refresh: the stored access token was still valid');
  });

  it('killed and restarted after each window: no gap, no duplicate', async () => {
    sim.generate(1500, now0 - 9 * H, now0 - 3 * MIN);
    const all: any[] = [];
    let restarts = 0;
    for (let i = 0; i < 12; i++) {
      sim.inject({ kind: 'initial', hang: true, after: 1 });
      const rig = await load(flow({ lookbackHours: 10 }));
      helper.getNode('pull').receive({ payload: 'go' });
      await until(() => rig.stats.length === 1 || sim.log.some((l) => l.status === -1));
      await settle();
      all.push(...rig.records);
      sim.log = sim.log.filter((l) => l.status !== -1);
      sim.faults = [];
      await helper.unload();
      if (rig.stats.length === 1) break;
      restarts++;
    }
    assert.ok(restarts >= 3, `restarted ${restarts} times`);
    exactlyOnce(all, expectedIds(now0 - 10 * H));
  });

  it('403 goes to Catch with the scope and role, and the status says so', async () => {
    sim.generate(10, now0 - 2 * H, now0 - 3 * MIN);
    sim.inject({ status: 403, body: JSON.stringify({ message: 'Forbidden' }) });
    const rig = await load();
    const pull = helper.getNode('pull');
    helper.getNode('pull').receive({ payload: 'go', tag: 1 });
    await until(() => rig.caught.length === 1);
    assert.match(rig.caught[0].error.message, /spark-admin:calling_cdr_read/);
    assert.equal(rig.caught[0].tag, 1);
    assert.equal(rig.caught[0].webex.error_type, 'config');
    await settle(20);
    const last = (pull.status as any).lastCall.args[0];
    assert.equal(last.fill, 'red');
    assert.match(last.text, /403/);
    assert.equal(rig.stats[0].payload.ok, false);
  });

  it('a dead refresh token shows re-authorize; on the timer the error reaches Catch as cdr_sync_errors, once', async () => {
    sim.revokeRefreshToken(refreshToken);
    const rig = await load(flow({ interval: 1 }));
    await until(() => rig.caught.length === 1);
    assert.equal(rig.caught[0].topic, 'cdr_sync_errors');
    assert.equal(rig.caught[0].payload.error_type, 'reauthorize');
    assert.match(rig.caught[0].error.message, /authorize the integration again/);
    await settle(30);
    const last = (helper.getNode('pull').status as any).lastCall.args[0];
    assert.match(last.text, /re-authorize/);
    assert.equal(sim.refreshGrants, 1);
  });

  it('runs on its own interval from deploy', async () => {
    sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const rig = await load(flow({ interval: 5, lookbackHours: 3 }));
    await until(() => rig.stats.length === 1);
    await settle();
    assert.equal(rig.stats[0].payload.ok, true);
    exactlyOnce(rig.records, expectedIds(now0 - 3 * H));
  });

  it('re-pulls a range on request without moving the cursor; bad requests go to Catch', async () => {
    sim.generate(600, now0 - 3 * H, now0 - 3 * MIN);
    const rig = await load(flow({ lookbackHours: 4 }));
    const pull = helper.getNode('pull');
    pull.receive({ payload: 'go' });
    await until(() => rig.stats.length === 1);
    const first = rig.records.length;
    pull.receive({ payload: { mode: 'repull', from: new Date(now0 - 3 * H).toISOString(), to: now0 - 2 * H } });
    await until(() => rig.stats.length === 2);
    await settle();
    const again = rig.records.slice(first);
    assert.ok(again.length > 100);
    assert.ok(again.every((m) => m.webex.purpose === 'repull' && m.webex.endpoint === 'cdr_feed'));
    assert.equal(rig.stats[1].payload.streamCursor, rig.stats[0].payload.streamCursor);
    pull.receive({ mode: 'fetch-everything' });
    await until(() => rig.caught.length === 1);
    assert.match(rig.caught[0].error.message, /unknown mode/);
    pull.receive({ mode: 'repull' });
    await until(() => rig.caught.length === 2);
    assert.match(rig.caught[1].error.message, /needs msg.from/);
  });

  it('two pull nodes on one account share one refresh and one rate budget', async () => {
    sim.generate(1200, now0 - 3 * H, now0 - 3 * MIN);
    const f = flow({ lookbackHours: 4 });
    f.push({ id: 'pull2', type: 'webex-cdr-pull', z: 'tab', x: 100, y: 400, account: 'acc', interval: 0, lookbackHours: 4, max: 500, wires: [['out2'], ['stats2']] } as any);
    f.push({ id: 'out2', type: 'helper', z: 'tab', x: 300, y: 400 } as any, { id: 'stats2', type: 'helper', z: 'tab', x: 300, y: 450 } as any);
    const rig = await load(f);
    const second: any[] = [];
    const stats2: any[] = [];
    helper.getNode('out2').on('input', (m: any) => second.push(m));
    helper.getNode('stats2').on('input', (m: any) => stats2.push(m));
    helper.getNode('pull').receive({});
    helper.getNode('pull2').receive({});
    await until(() => rig.stats.length === 1 && stats2.length === 1);
    await settle();
    exactlyOnce(rig.records, expectedIds(now0 - 4 * H));
    exactlyOnce(second, expectedIds(now0 - 4 * H));
    assert.equal(sim.refreshGrants, 1, 'single-flight refresh across nodes');
    assert.equal(sim.rateViolations, 0, 'one limiter per token: ' + JSON.stringify(sim.log.filter((l) => l.kind !== 'token').map((l) => [l.kind[0], Math.round((l.at - now0) / 1000), l.status])));
  });

  it('works with a fixed access token; an incomplete account is reported', async () => {
    sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    let rig = await load(flow({ lookbackHours: 3 }), { acc: { accessToken: sim.issueAccessToken() } });
    helper.getNode('pull').receive({});
    await until(() => rig.stats.length === 1);
    assert.equal(rig.stats[0].payload.records, 20);
    assert.equal(sim.refreshGrants, 0);
    await helper.unload();
    rig = await load(flow(), { acc: { refreshToken: 'RT-x' } });
    await settle(20);
    const first = (helper.getNode('pull').status as any).getCall(0).args[0];
    assert.equal(first.fill, 'red');
    helper.getNode('pull').receive({});
    await until(() => rig.caught.length === 1);
    assert.match(rig.caught[0].error.message, /client id and client secret/);
  });

  it('follows a 451 to the region Webex names and remembers it', async () => {
    await sim.stop();
    sim = await new WebexApiSim({ clock, regions: ['us', 'eu'], orgRegion: 'eu' }).start();
    refreshToken = sim.issueRefreshToken();
    sim.generate(50, now0 - 2 * H, now0 - 3 * MIN);
    const rig = await load(flow({ lookbackHours: 3 }, { baseUrl: sim.url('us'), tokenUrl: sim.tokenUrl }));
    helper.getNode('pull').receive({});
    await until(() => rig.stats.length === 1);
    assert.equal(rig.stats[0].payload.ok, true);
    assert.equal(rig.records.length, 50);
    const saved = JSON.parse(fs.readFileSync(path.join(userDir, 'cdrflow-state', 'webex-account-acc.json'), 'utf8'));
    assert.equal(saved.host.url, sim.url('eu'));
    assert.equal(sim.log.filter((l) => l.status === 451).length, 1);
  });
});

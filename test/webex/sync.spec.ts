import { strict as assert } from 'node:assert';
import { CdrClient, RateLimiter } from '../../src/webex/client';
import { TokenManager } from '../../src/webex/oauth';
import { CdrSync, SyncError, emptyState, type SyncState, type PageBatch, type SyncSettings } from '../../src/webex/sync';
import { recordKey } from '../../src/webex/records';
import { createAgent } from '../../src/common/http';
import { WebexApiSim, VirtualClock } from '../simulators/webex-api';

const MIN = 60_000;
const H = 60 * MIN;

describe('webex/sync', function () {
  this.timeout(30_000);
  let clock: VirtualClock;
  let sim: WebexApiSim;
  let tokens: TokenManager;
  const agent = createAgent({ timeoutMs: 300 });
  const now0 = Date.parse('2026-11-23T12:00:00.000Z');

  beforeEach(async () => {
    clock = new VirtualClock(now0);
    sim = await new WebexApiSim({ clock }).start();
    tokens = new TokenManager({ clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: sim.issueRefreshToken(), tokenUrl: sim.tokenUrl, dispatcher: agent, clock });
  });
  afterEach(() => sim.stop());
  after(() => agent.close());

  /** A sync engine with a store and an emitted-records ledger that outlive it (a node restart). */
  function rig(settings: Partial<SyncSettings> = {}) {
    const limiter = new RateLimiter(clock);
    const ledger = new Map<string, number>();
    let stored: SyncState = emptyState();
    let emitHook: ((b: PageBatch) => void) | null = null;
    let saveHook: ((s: SyncState) => void) | null = null;
    const make = () => {
      const client = new CdrClient({ baseUrl: sim.url(), tokens, limiter, dispatcher: agent, clock, retryBaseMs: 1000, retries: 3 });
      return new CdrSync(client, stored, {
        emit: (b) => {
          emitHook?.(b);
          for (const r of b.items) ledger.set(recordKey(r), (ledger.get(recordKey(r)) ?? 0) + 1);
        },
        save: async (s) => {
          stored = JSON.parse(JSON.stringify(s));
          saveHook?.(stored);
        },
      }, { max: 500, ...settings }, clock);
    };
    return {
      ledger, make,
      get state() { return stored; },
      onEmit(fn: ((b: PageBatch) => void) | null) { emitHook = fn; },
      onSave(fn: ((s: SyncState) => void) | null) { saveHook = fn; },
    };
  }

  /** Every record the API can serve by now (cdr_stream visibility) that was reported after `from`. */
  function expected(from: number, lagMs = 3 * MIN): string[] {
    return sim.records.filter((r) => r.reportAt >= from && r.insertedAt + 30_000 <= clock.now() - lagMs).map((r) => r.id.toLowerCase());
  }

  function assertExactlyOnce(ledger: Map<string, number>, ids: string[]): void {
    const missing = ids.filter((id) => !ledger.has(id));
    assert.equal(missing.length, 0, `missing ${missing.length}, e.g. ${missing.slice(0, 3)}`);
    const twice = [...ledger].filter(([, n]) => n > 1);
    assert.equal(twice.length, 0, `duplicates: ${twice.slice(0, 3)}`);
  }

  function noViolations(): void {
    assert.deepEqual(sim.log.filter((l) => l.status === 400).map((l) => l.query), []);
    assert.equal(sim.rateViolations, 0, 'the limiter kept the API budget');
  }

  it('first run: 48 h back via cdr_feed in 12 h windows, then cdr_stream in 2 h windows, each record once', async () => {
    sim.generate(3000, now0 - 50 * H, now0 - 3 * MIN);
    const r = rig();
    const stats = await r.make().run();
    assert.ok(stats.ok);
    const feed = stats.windows.filter((w) => w.endpoint === 'cdr_feed');
    const stream = stats.windows.filter((w) => w.endpoint === 'cdr_stream');
    assert.ok(feed.length >= 3 && stream.length >= 5, JSON.stringify(stats.windows.map((w) => [w.endpoint, w.start, w.end])));
    for (const w of feed) assert.ok(Date.parse(w.end) - Date.parse(w.start) <= 12 * H);
    for (const w of stream) assert.ok(Date.parse(w.end) - Date.parse(w.start) <= 2 * H);
    assert.equal(Date.parse(feed[0].start), now0 - 48 * H + 0, 'the default lookback is 48 h');
    assert.equal(stats.backfillPending, null);
    assert.ok(stats.pages > stats.windows.length, 'some windows took several pages');
    assertExactlyOnce(r.ledger, expected(now0 - 48 * H));
    assert.ok(!r.ledger.has(sim.records[0].id), 'older than the lookback: not fetched');
    assert.equal(stats.records, r.ledger.size);
    noViolations();
  });

  it('incremental ticks over 10 h pick up late-written records with no gap and no duplicate', async () => {
    sim.generate(400, now0 - 6 * H, now0 - 10 * MIN);
    const r = rig({ lookbackMs: 6 * H });
    const sync = r.make();
    await sync.run();
    for (let tick = 0; tick < 60; tick++) {
      const t = clock.now();
      // calls keep happening; one in five is written up to 3 h late
      sim.generate(40, t, t + 10 * MIN, { late: (i) => (i % 5 === 0 ? (i % 3 + 1) * H : null) });
      clock.advance(10 * MIN);
      await sync.run();
    }
    clock.advance(4 * H); // let the late ones arrive
    await sync.run();
    assertExactlyOnce(r.ledger, expected(now0 - 6 * H));
    assert.ok(sim.records.filter((x) => x.insertedAt - x.reportAt >= H).length > 100, 'there were late records');
    noViolations();
  });

  it('a restart mid-pagination resumes from the saved next link: no gap, no duplicate', async () => {
    sim.generate(2600, now0 - 5 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 5 * H });
    let pages = 0;
    const ac = new AbortController();
    r.onEmit((b) => {
      if (b.page === 2 && ++pages === 1) ac.abort(new Error('node closed'));
    });
    await assert.rejects(r.make().run({ mode: 'incremental' }, ac.signal), SyncError);
    assert.ok(r.state.current?.next, 'the unfinished window and its next link were saved');
    r.onEmit(null);
    const stats = await r.make().run();
    assert.ok(stats.ok);
    assert.equal(sim.log.filter((l) => l.kind === 'page' && l.query.startTimeForNextFetch).length >= 1, true);
    assertExactlyOnce(r.ledger, expected(now0 - 5 * H));
    noViolations();
  });

  it('a restart after every window: no gap, no duplicate', async () => {
    sim.generate(1500, now0 - 8 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 8 * H });
    let restarts = 0;
    for (let i = 0; i < 30; i++) {
      const ac = new AbortController();
      let base = r.state.streamCursor;
      // stop right after a window completed and its cursor was saved
      r.onSave((st) => {
        if (base === null) base = st.streamCursor;
        else if (st.streamCursor !== base && st.current === null) ac.abort(new Error('restart'));
      });
      try {
        await r.make().run({ mode: 'incremental' }, ac.signal);
        break;
      } catch (e) {
        assert.match(String((e as Error).message), /restart/);
        restarts++;
      }
    }
    assert.ok(restarts >= 3, `restarted ${restarts} times`);
    assertExactlyOnce(r.ledger, expected(now0 - 8 * H));
    noViolations();
  });

  it('a 5xx burst fails the window without moving the cursor; the next run fills it', async () => {
    sim.generate(2000, now0 - 4 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 4 * H });
    sim.inject({ status: 503, kind: 'page', times: 5 });
    const err = await r.make().run().then(() => null, (e) => e);
    assert.ok(err instanceof SyncError, String(err));
    assert.equal(err.stats.ok, false);
    assert.match(err.stats.error!, /503/);
    const cursor = r.state.streamCursor;
    assert.ok(Date.parse(cursor!) <= Date.parse(r.state.current!.start) + 2 * MIN, 'cursor not past the failed window');
    assert.match(r.state.lastError!, /503/);
    const stats = await r.make().run();
    assert.ok(stats.ok);
    assert.equal(r.state.lastError, null);
    assertExactlyOnce(r.ledger, expected(now0 - 4 * H));
  });

  it('an outage longer than the stream keeps data is filled from cdr_feed', async () => {
    sim.generate(300, now0 - 3 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 3 * H });
    await r.make().run();
    sim.generate(1500, now0, now0 + 20 * H);
    clock.advance(20 * H + 10 * MIN);
    const stats = await r.make().run();
    assert.ok(stats.warnings.some((w) => /cdr_feed/.test(w)), stats.warnings.join());
    assert.ok(stats.windows.some((w) => w.endpoint === 'cdr_feed' && w.purpose === 'backfill'));
    assertExactlyOnce(r.ledger, expected(now0 - 3 * H));
    noViolations();
  });

  it('re-pull emits a range again from cdr_feed and leaves the cursor alone', async () => {
    sim.generate(700, now0 - 3 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 3 * H });
    await r.make().run();
    const cursor = r.state.streamCursor;
    const batches: PageBatch[] = [];
    r.onEmit((b) => batches.push(b));
    const stats = await r.make().run({ mode: 'repull', from: now0 - 3 * H, to: now0 - 2 * H });
    assert.equal(r.state.streamCursor, cursor);
    const inRange = sim.records.filter((x) => x.reportAt >= now0 - 3 * H && x.reportAt < now0 - 2 * H).length;
    assert.equal(stats.records, inRange);
    assert.ok(batches.every((b) => b.window.endpoint === 'cdr_feed' && b.window.purpose === 'repull'));
  });

  it('backfill on request fetches older history once, then incremental continues', async () => {
    sim.generate(600, now0 - 40 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 2 * H });
    await r.make().run();
    const stats = await r.make().run({ mode: 'backfill', from: now0 - 30 * H });
    assert.ok(stats.ok);
    assertExactlyOnce(r.ledger, expected(now0 - 30 * H).filter((id) => {
      const rec = sim.records.find((x) => x.id.toLowerCase() === id)!;
      return rec.reportAt >= now0 - 30 * H;
    }));
  });

  it('a 400 (server clock ahead) is retried once with an earlier end; nothing is skipped', async () => {
    sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 3 * H });
    // the last window ends 2 min ago; the "server" refuses it once
    sim.inject({ kind: 'initial', status: 400, body: JSON.stringify({ message: 'endTime must be at least 1 minute before the current time' }), after: 1 });
    const stats = await r.make().run();
    assert.ok(stats.ok);
    assert.ok(stats.warnings.some((w) => /retrying once with the end/.test(w)), stats.warnings.join('\n'));
    clock.advance(10 * MIN);
    await r.make().run();
    assertExactlyOnce(r.ledger, expected(now0 - 3 * H));
    sim.inject({ kind: 'initial', status: 400, times: 2, body: JSON.stringify({ message: 'bad window' }) });
    clock.advance(10 * MIN);
    await assert.rejects(r.make().run(), /bad window/);
  });

  it('steps back to 48 h when cdr_feed refuses an older start', async () => {
    await sim.stop();
    sim = await new WebexApiSim({ clock, feedRetentionMs: 48 * H }).start();
    tokens = new TokenManager({ clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: sim.issueRefreshToken(), tokenUrl: sim.tokenUrl, dispatcher: agent, clock });
    sim.generate(500, now0 - 70 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 72 * H });
    const stats = await r.make().run();
    assert.ok(stats.ok);
    assert.ok(stats.warnings.some((w) => /48 h/.test(w)), stats.warnings.join('\n'));
    assertExactlyOnce(r.ledger, expected(now0 - 47 * H));
    assert.equal(sim.log.filter((l) => l.status === 400).length, 1, 'one refusal, then re-planned');
  });

  it('the state is plain JSON and dedup is bounded', async () => {
    sim.generate(1200, now0 - 2 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 2 * H, dedupCapacity: 1000 });
    await r.make().run();
    const s = r.state;
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
    assert.equal(s.seen.length, 1000);
    assert.equal(s.version, 1);
  });
});

import { strict as assert } from 'node:assert';
import { CdrClient, RateLimiter } from '../../src/webex/client';
import { TokenManager } from '../../src/webex/oauth';
import { CdrSync, SyncError, emptyState, restoreState, type SyncState, type SyncChange, type PageBatch, type SyncSettings } from '../../src/webex/sync';
import { recordKey } from '../../src/webex/records';
import { createAgent } from '../../src/common/http';
import { StateShapeError } from '../../src/common/persist';
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

  /**
   * A sync engine with a store and an emitted-records ledger that outlive it (a node restart). The
   * store keeps what a journal would: the saved changes, as JSON, replayed by restoreState.
   */
  function rig(settings: Partial<SyncSettings> = {}, sharedLimiter?: RateLimiter) {
    const ledger = new Map<string, number>();
    const journal: SyncChange[] = [];
    const capacity = settings.dedupCapacity;
    let emitHook: ((b: PageBatch) => unknown) | null = null;
    let saveHook: ((s: SyncState) => void) | null = null;
    let limiter = sharedLimiter ?? new RateLimiter(clock);
    const make = () => {
      const client = new CdrClient({ baseUrl: sim.url(), tokens, limiter, dispatcher: agent, clock, retryBaseMs: 1000, retries: 3 });
      return new CdrSync(client, restoreState(undefined, journal, capacity), {
        emit: async (b) => {
          await emitHook?.(b);
          for (const r of b.items) ledger.set(recordKey(r), (ledger.get(recordKey(r)) ?? 0) + 1);
        },
        save: async (c) => {
          assert.ok(Object.keys(c).length > 0, 'never called with nothing to save');
          journal.push(JSON.parse(JSON.stringify(c)));
          saveHook?.(restoreState(undefined, journal, capacity));
        },
      }, { max: 500, ...settings }, clock);
    };
    return {
      ledger, make, journal,
      get state() { return restoreState(undefined, journal, capacity); },
      /** The account's limiter: engines made from then on use it (a new one is a new process). */
      set limiter(l: RateLimiter) { limiter = l; },
      onEmit(fn: ((b: PageBatch) => unknown) | null) { emitHook = fn; },
      onSave(fn: ((s: SyncState) => void) | null) { saveHook = fn; },
    };
  }

  const iso = (t: number) => new Date(t).toISOString();
  const initials = () => sim.log.filter((l) => l.kind === 'initial');

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

  it('a 504 on a follow-up page is retried on the same link: the run succeeds', async () => {
    sim.generate(2500, now0 - 3 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: 3 * H, max: 1000 });
    sim.inject({ status: 504, kind: 'page', times: 2 });
    const stats = await r.make().run();
    assert.ok(stats.ok, stats.error);
    assert.equal(sim.log.filter((l) => l.status === 504).length, 2);
    assert.equal(sim.unknownLinks, 0);
    assertExactlyOnce(r.ledger, expected(now0 - 3 * H));
    noViolations();
  });

  it('one engine\'s next page does not wait behind another engine\'s new window on the same limiter', async () => {
    sim.generate(2000, now0 - 80 * MIN, now0 - 3 * MIN);
    const limiter = new RateLimiter(clock);
    const a = rig({ lookbackMs: H }, limiter);
    const b = rig({ lookbackMs: H }, limiter);
    let sleepers = 0;
    const sleep = clock.sleep.bind(clock);
    clock.sleep = async (ms, signal) => {
      sleepers++;
      try {
        return await sleep(ms, signal);
      } finally {
        sleepers--;
      }
    };
    // time stands still (up to the clock's bound) until A's first page request reached the server
    clock.settled = () => sim.log.some((l) => l.kind === 'page');
    let bRun: Promise<unknown> | null = null;
    a.onEmit(async (batch) => {
      if (batch.page !== 1 || bRun) return;
      // B wants a new window now: it waits for the initial budget while A goes on paging
      bRun = b.make().run();
      while (sleepers === 0) await new Promise((res) => setTimeout(res, 1));
    });
    const stats = await a.make().run();
    await bRun;
    const pages = sim.log.filter((l) => l.kind === 'page');
    assert.ok(pages.length >= 2, `${pages.length} page requests`);
    assert.equal(pages[0].at, now0, 'A\'s page went out while B waited for its minute');
    assert.deepEqual(initials().map((l) => l.at - now0), [0, 61_000]);
    assert.ok(stats.ok);
    assertExactlyOnce(a.ledger, expected(now0 - H));
    assertExactlyOnce(b.ledger, expected(now0 - H));
    noViolations();
  });

  it('a new window that waited for the limiter ends where the wait ended, not where it began', async () => {
    sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: H });
    const sync = r.make();
    await sync.run();
    assert.equal(initials().length, 1);
    clock.advance(20_000);
    sim.generate(20, now0 - 2 * MIN, now0 + 20_000);
    const stats = await sync.run();
    const [first, second] = initials();
    assert.equal(second.at, first.at + 61_000, 'it waited for the limiter');
    assert.equal(second.query.endTime, iso(second.at - 2 * MIN), 'the end is the latest the time of sending allows');
    assert.equal(stats.streamCursor, second.query.endTime);
    assert.equal(initials().length, 2, 'no chase after now: one window');
    assertExactlyOnce(r.ledger, expected(now0 - H));
    noViolations();
  });

  it('a window whose first request failed is planned again when it is retried: one request, ending as late as then allowed', async () => {
    sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: H });
    sim.inject({ kind: 'initial', status: 503, times: 4 }); // the first try and its 3 retries
    await assert.rejects(r.make().run(), SyncError);
    const failedEnd = r.state.current!.end;
    const stats = await r.make().run();
    assert.ok(stats.ok);
    const sent = initials().filter((l) => l.status === 200);
    assert.equal(sent.length, 1, 'the retried window reaches to now: no second window');
    assert.equal(sent[0].at, now0 + 61_000);
    assert.equal(sent[0].query.endTime, iso(sent[0].at - 2 * MIN));
    assert.ok(sent[0].query.endTime > failedEnd);
    assertExactlyOnce(r.ledger, expected(now0 - H));
  });

  it('the last new-window time is kept with the cursor: after a restart the first new window waits its minute from it', async () => {
    sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const r = rig({ lookbackMs: H });
    await r.make().run();
    const [first] = initials();
    assert.equal(r.state.lastInitial, iso(first.at));
    // restarted 20 s later: a new process, a new limiter, the saved state
    clock.advance(20_000);
    r.limiter = new RateLimiter(clock);
    const stats = await r.make().run();
    assert.ok(stats.ok);
    assert.equal(initials()[1].at, first.at + 61_000);
    assert.equal(r.state.lastInitial, iso(first.at + 61_000));
    noViolations();
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

  describe('state', () => {
    function engine(state: SyncState, save: (c: SyncChange) => Promise<void>, settings: Partial<SyncSettings> = {}) {
      const fixed = new TokenManager({ accessToken: sim.issueAccessToken(), clock });
      const client = new CdrClient({ baseUrl: sim.url(), tokens: fixed, limiter: new RateLimiter(clock), dispatcher: agent, clock, retryBaseMs: 1000, retries: 3 });
      return new CdrSync(client, state, { emit: () => undefined, save }, { max: 500, lookbackMs: 3 * H, ...settings }, clock);
    }

    it('the saved changes, replayed on the state they started from, give the live state (cursor, progress, dedup order)', async () => {
      sim.generate(1600, now0 - 3 * H, now0 - 3 * MIN);
      const journal: SyncChange[] = [];
      const sync = engine(emptyState(), async (c) => { journal.push(JSON.parse(JSON.stringify(c))); }, { dedupCapacity: 1200 });
      await sync.run();
      const middle = sync.snapshot();
      const from = journal.length;
      sim.generate(300, now0, now0 + 20 * MIN);
      clock.advance(30 * MIN);
      await sync.run();
      await sync.run({ mode: 'repull', from: now0 - 3 * H, to: now0 - 2 * H });
      await sync.setCursor(clock.now() - 10 * MIN);
      assert.deepEqual(restoreState(undefined, journal, 1200), sync.snapshot());
      assert.deepEqual(restoreState(JSON.parse(JSON.stringify(middle)), journal.slice(from), 1200), sync.snapshot());
      const s = sync.snapshot();
      assert.equal(s.seen.length, 1200, 'bounded');
      const repulled = sim.records.filter((x) => x.reportAt >= now0 - 3 * H && x.reportAt < now0 - 2 * H).map((x) => x.id.toLowerCase());
      assert.deepEqual(new Set(s.seen.slice(-repulled.length)), new Set(repulled), 're-pulled IDs moved to the newest end');
    });

    it('reads a whole version 1 state as 0.1.0 saved it; a smaller dedup window keeps the newest IDs', () => {
      const old = {
        version: 1, streamCursor: '2026-11-23T10:00:00.000Z', backfill: { from: '2026-11-21T10:00:00.000Z', to: '2026-11-22T23:00:00.000Z' },
        current: { endpoint: 'cdr_feed', start: '2026-11-21T10:00:00.000Z', end: '2026-11-21T22:00:00.000Z', purpose: 'backfill', next: 'http://x/v1/cdr_feed?startTimeForNextFetch=1', pages: 2, records: 1000, duplicates: 3 },
        seen: ['a', 'b', 'c', 'd'], lastSuccess: '2026-11-23T10:01:00.000Z', lastError: null,
      };
      assert.deepEqual(restoreState(old), old);
      assert.deepEqual(restoreState(old, [], 2).seen, ['c', 'd']);
      assert.deepEqual(restoreState(undefined), emptyState(), 'no saved state: a clean first run');
      assert.deepEqual(restoreState(undefined, [{ seen: ['x', 'y'] }, { seen: ['x'], streamCursor: old.streamCursor }]).seen, ['y', 'x']);
    });

    const good = { version: 1, streamCursor: null, backfill: null, current: null, seen: [], lastSuccess: null, lastError: null };
    const window = { endpoint: 'cdr_stream', start: '2026-11-23T10:00:00.000Z', end: '2026-11-23T11:00:00.000Z', purpose: 'incremental', next: null, pages: 0, records: 0, duplicates: 0 };
    const bad: Array<[string, unknown, unknown[], RegExp]> = [
      ['null', null, [], /not an object/],
      ['a list', [], [], /not an object/],
      ['text', '{"version":1}', [], /not an object/],
      ['no version', { ...good, version: undefined }, [], /unknown state version undefined/],
      ['another version', { ...good, version: 2 }, [], /unknown state version 2/],
      ['only a version', { version: 1 }, [], /has no streamCursor/],
      ['a cursor that is a number', { ...good, streamCursor: 42 }, [], /streamCursor 42 is not a time/],
      ['a cursor that is not a date', { ...good, streamCursor: 'yesterday' }, [], /streamCursor "yesterday" is not a time/],
      ['a backfill without times', { ...good, backfill: { from: 1, to: 2 } }, [], /backfill .* is not a \{from, to\} range/],
      ['a window on another endpoint', { ...good, current: { ...window, endpoint: 'cdr_other' } }, [], /current .* is not a window/],
      ['a window with a negative page count', { ...good, current: { ...window, pages: -1 } }, [], /is not a window/],
      ['a window without its next link', { ...good, current: { ...window, next: undefined } }, [], /is not a window/],
      ['seen as text', { ...good, seen: 'abc' }, [], /seen is not a list of Report IDs/],
      ['seen with numbers', { ...good, seen: ['a', 1] }, [], /seen is not a list of Report IDs/],
      ['an error that is not text', { ...good, lastError: { code: 1 } }, [], /lastError .* is not text/],
      ['an unknown field', { ...good, cursor: 'x' }, [], /unknown field "cursor"/],
      ['a journal entry that is not an object', good, [{ seen: ['a'] }, 'x'], /journal entry 2 is not an object/],
      ['a journal entry with a version', good, [{ version: 1 }], /journal entry 1: unknown field "version"/],
      ['a journal entry of the wrong type', good, [{ streamCursor: true }], /journal entry 1: streamCursor true is not a time/],
    ];
    for (const [what, saved, journal, message] of bad) {
      it(`refuses a saved state with ${what} (StateShapeError), instead of starting empty`, () => {
        assert.throws(() => restoreState(saved, journal), (e: unknown) => e instanceof StateShapeError && message.test((e as Error).message));
      });
    }

    it('the engine refuses a state of the wrong shape too', () => {
      assert.throws(() => engine({ ...emptyState(), seen: 'x' } as any, async () => undefined), StateShapeError);
    });

    it('a run with nothing to fetch saves nothing', async () => {
      const saved: SyncChange[] = [];
      const sync = engine({ ...emptyState(), streamCursor: new Date(now0 - 2 * MIN).toISOString() }, async (c) => { saved.push(c); });
      const stats = await sync.run();
      assert.equal(stats.ok, true);
      assert.equal(stats.apiCalls, 0);
      assert.deepEqual(saved, []);
    });

    it('a change whose save failed is offered again with the next one', async () => {
      sim.generate(1200, now0 - 2 * H, now0 - 3 * MIN);
      const journal: SyncChange[] = [];
      let calls = 0;
      const sync = engine(emptyState(), async (c) => {
        if (++calls === 3) throw new Error('disk full');
        journal.push(JSON.parse(JSON.stringify(c)));
      });
      await assert.rejects(sync.run(), /disk full/);
      const stats = await sync.run();
      assert.equal(stats.ok, true);
      assert.deepEqual(restoreState(undefined, journal), sync.snapshot(), 'nothing missing from what was saved');
    });

    it('setCursor saves the new cursor and drops an unfinished stream window', async () => {
      const saved: SyncChange[] = [];
      const sync = engine({ ...emptyState(), streamCursor: '2026-11-23T09:00:00.000Z', current: { ...window } as any }, async (c) => { saved.push(c); });
      await sync.setCursor(now0 - H);
      assert.deepEqual(saved, [{ streamCursor: '2026-11-23T11:00:00.000Z', current: null }]);
      assert.equal(sync.snapshot().current, null);
    });
  });
});

import { strict as assert } from 'node:assert';
import { ComxClient, ComxRequestError } from '../../src/comx/client';
import { runFetch, FetchError, type FetchAsk, type FetchContext, type FetchHooks, type Outgoing } from '../../src/comx/fetch';
import { ComxSync, DEFAULT_SYNC, type SyncEntry } from '../../src/comx/sync';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';

const SA = 'Africa/Johannesburg';
const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 5, 8);

describe('comx/fetch', () => {
  const sim = new ComxSimulator(SA);
  let now = T0 + 3 * HOUR;
  let ctx: FetchContext;
  before(async () => {
    sim.now = () => now;
    const client = new ComxClient({ baseUrl: await sim.start(), user: 'cdr', password: 's3cret', retry: { retries: 0 } });
    ctx = { client, zone: SA, host: 'pbx', settings: { perCdr: true, spool: false, saveDir: null, attachMaxBytes: 0 }, now: () => now };
  });
  after(() => sim.close());
  beforeEach(() => {
    now = T0 + 3 * HOUR;
    sim.faults = {};
    sim.requests = [];
    sim.calls = generateCalls(T0, 12, 10 * MIN);
  });

  const ask = (more: Partial<FetchAsk> = {}): FetchAsk => ({ mode: 'incremental', format: 'txt', extended: false, includePin: false, ...more });

  /** Hooks that keep what the run hands out. */
  function keep(sync = new ComxSync({ ...DEFAULT_SYNC, firstLookbackMs: 4 * HOUR })) {
    const got = { out: [] as Outgoing[], side: [] as Outgoing[], entries: [] as SyncEntry[], warnings: [] as unknown[], sync };
    const hooks: FetchHooks = {
      sync: async () => sync,
      emit: async (o) => void got.out.push(o),
      report: async (o) => void got.side.push(o),
      record: (e) => void got.entries.push(JSON.parse(JSON.stringify(e))),
      progress: () => undefined,
      warn: (w) => void got.warnings.push(w),
    };
    return { got, hooks };
  }

  it('incremental: emits each new CDR, records its key at once and the cursor last, and drops what it sent before', async () => {
    const { got, hooks } = keep();
    const r = await runFetch(ask(), ctx, hooks);
    assert.deepEqual(r, { kind: 'cdrs', incremental: true, sent: 12, total: 12, duplicates: 0, malformed: 0 });
    assert.deepEqual(got.out.map((o) => (o.payload as { uniqueId: string }).uniqueId), sim.calls.map((c) => c.uniqueId));
    assert.deepEqual(got.entries.map((e) => Object.keys(e).join()), [...Array(12).fill('e'), 'c,at']);
    assert.equal(got.out[0].comx.url, `${sim.url}/commagui/cdr?format=txt&start=202601050900&end=202601051258`);
    assert.deepEqual(got.out[0].comx.window, { start: '202601050900', end: '202601051258', from: '2026-01-05T07:00:00Z', to: '2026-01-05T10:58:00Z' });
    now += 10 * MIN;
    const again = keep(got.sync);
    assert.deepEqual(await runFetch(ask(), ctx, again.hooks), { kind: 'cdrs', incremental: true, sent: 0, total: 12, duplicates: 12, malformed: 0 });
    assert.deepEqual(again.got.out, []);
    assert.deepEqual(again.got.entries.map((e) => Object.keys(e).join()), ['c,at']);
  });

  it('waits for the cursor to be stored before it resolves', async () => {
    const { hooks } = keep();
    let store: () => void = () => undefined;
    const stored = new Promise<void>((r) => (store = r));
    hooks.record = (e) => ('c' in e ? stored : undefined);
    let finished = false;
    const run = runFetch(ask(), ctx, hooks).then(() => (finished = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(finished, false, 'the cursor is not stored yet');
    store();
    await run;
    assert.equal(finished, true);
  });

  it('one message per request: keys are recorded only once that message went out', async () => {
    const { got, hooks } = keep();
    const perRequest = { ...ctx, settings: { ...ctx.settings, perCdr: false } };
    hooks.emit = async () => {
      throw new Error('the flow is gone');
    };
    await assert.rejects(runFetch(ask(), perRequest, hooks), /the flow is gone/);
    assert.deepEqual(got.entries, [], 'nothing remembered, nothing committed');
    const ok = keep(got.sync);
    await runFetch(ask(), perRequest, ok.hooks);
    assert.equal((ok.got.out[0].payload as unknown[]).length, 12);
    assert.deepEqual(ok.got.entries.map((e) => Object.keys(e).join()), ['e', 'c,at']);
    assert.equal((ok.got.entries[0] as { e: unknown[] }).e.length, 12);
  });

  it('asks nothing while the incremental state may not be used, and nothing when polled again too soon', async () => {
    const { hooks } = keep();
    hooks.sync = async () => {
      throw new Error('cursor lost');
    };
    await assert.rejects(runFetch(ask(), ctx, hooks), /cursor lost/);
    const fresh = keep();
    await runFetch(ask(), ctx, fresh.hooks);
    assert.deepEqual(await runFetch(ask(), ctx, keep(fresh.got.sync).hooks), { kind: 'upToDate' });
    assert.equal(sim.requests.length, 1);
  });

  const refused: [string, Partial<FetchAsk>, string][] = [
    ['an unknown mode', { mode: 'sideways' }, 'mode'],
    ['an unknown format', { mode: 'range', format: 'zip' }, 'format'],
    ['a recording alone for a range', { mode: 'range', format: 'raw' }, 'rawNeedsOne'],
    ['a recording alone for the incremental window', { format: 'raw' }, 'rawNeedsOne'],
    ['mode id without an id', { mode: 'id' }, 'noId'],
    ['mode id with an empty id', { mode: 'id', id: '' }, 'noId'],
    ['mode start without a start', { mode: 'start' }, 'noStart'],
  ];
  for (const [what, more, code] of refused) {
    it(`refuses ${what} (FetchError ${code}) without a request`, async () => {
      await assert.rejects(runFetch(ask(more), ctx, keep().hooks), (err: Error) => err instanceof FetchError && err.code === code);
      assert.equal(sim.requests.length, 0);
    });
  }

  for (const [what, more] of [['a range bound that is not a time', { mode: 'range', rangeStart: 'soon' }], ['an exact start of 12 digits', { mode: 'start', exactStart: '202601051000' }], ['an id with a query in it', { mode: 'id', id: '1.1&users' }]] as const) {
    it(`refuses ${what} (ComxRequestError) without a request`, async () => {
      await assert.rejects(runFetch(ask(more), ctx, keep().hooks), ComxRequestError);
      assert.equal(sim.requests.length, 0);
    });
  }

  it('a web page instead of CDRs is FetchError html, and nothing is emitted or recorded', async () => {
    sim.faults.htmlPage = true;
    const { got, hooks } = keep();
    await assert.rejects(runFetch(ask(), ctx, hooks), (err: Error) => err instanceof FetchError && err.code === 'html');
    assert.deepEqual([got.out, got.side, got.entries], [[], [], []]);
  });

  it('malformed lines go to report once, and the warnings name them and a PBX zone that looks wrong', async () => {
    sim.faults.extraIndexLines = ['1.1,2026/01/05/10:00:00,CALLTYPE_INBOUND'];
    const { got, hooks } = keep();
    const wrongZone = { ...ctx, zone: 'Europe/London' };
    const r = await runFetch(ask({ mode: 'range', rangeStart: '202601050900', rangeEnd: '202601051300' }), wrongZone, hooks);
    assert.deepEqual(r, { kind: 'cdrs', incremental: false, sent: 12, total: 12, duplicates: 0, malformed: 1 });
    assert.deepEqual(got.side.map((o) => [o.topic, (o.payload as { line: number }).line]), [['comx/malformed', 13]]);
    assert.deepEqual(got.warnings, [{ kind: 'zone', zone: 'Europe/London', offset: 'UTC+02:00', count: 12, total: 12 }, { kind: 'malformed', count: 1, lines: [13] }]);
    assert.deepEqual(got.entries, [], 'a range remembers nothing');
  });
});

import { strict as assert } from 'node:assert';
import { ComxClient } from '../../src/comx/client';
import { parseIndexStream, type ComxCdr } from '../../src/comx/index-file';
import { ComxSync, DEFAULT_SYNC, type SyncState } from '../../src/comx/sync';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('comx/sync', () => {
  const sim = new ComxSimulator('Africa/Johannesburg');
  let client: ComxClient;
  let clock = 0;
  before(async () => {
    sim.now = () => clock;
    client = new ComxClient({ baseUrl: await sim.start(), user: 'cdr', password: 's3cret', retry: { retries: 0 } });
  });
  after(() => sim.close());

  /** One poll as the node does it: fetch the window, emit new lines, then commit. */
  async function poll(sync: ComxSync, zone: string): Promise<ComxCdr[]> {
    const w = sync.window(clock, zone);
    if (!w) return [];
    const res = await client.open({ kind: 'range', format: 'txt', start: w.start, end: w.end });
    const out: ComxCdr[] = [];
    for await (const item of parseIndexStream(res.body, { zone })) {
      if (item.kind === 'cdr' && sync.isNew(item.cdr)) {
        out.push(item.cdr);
        sync.markEmitted(item.cdr);
      }
    }
    sync.commit(w, clock);
    return out;
  }

  it('computes windows: first lookback, overlap before the cursor, safety margin, minute floors, PBX local stamps', () => {
    const sync = new ComxSync({ ...DEFAULT_SYNC, firstLookbackMs: HOUR, overlapMs: 30 * MIN, safetyMs: 2 * MIN });
    const now = Date.UTC(2026, 0, 5, 10, 0, 40);
    const w = sync.window(now, 'Africa/Johannesburg')!;
    assert.equal(new Date(w.toMs).toISOString(), '2026-01-05T09:58:00.000Z');
    assert.equal(w.start, '202601051100');
    assert.equal(w.end, '202601051158');
    sync.commit(w, now);
    assert.equal(sync.window(now + 10_000, 'Africa/Johannesburg'), null, 'too soon: nothing new');
    const w2 = sync.window(now + HOUR, 'Africa/Johannesburg')!;
    assert.equal(w2.start, '202601051128', 'cursor − overlap');
    assert.equal(w2.end, '202601051258');
  });

  it('a call still up at one poll is emitted by the next (overlap), and nothing twice', async () => {
    const t0 = Date.UTC(2026, 0, 5, 8);
    sim.calls = generateCalls(t0, 6, 10 * MIN, { duration: 60, recordings: false });
    // a 50-minute call starting 08:05Z: still up at the first poll (08:45Z)
    sim.calls.push({ uniqueId: `${t0 / 1000 + 299}.999`, startMs: t0 + 5 * MIN, duration: 50 * 60 });
    const sync = new ComxSync({ ...DEFAULT_SYNC, firstLookbackMs: 2 * HOUR });
    clock = t0 + 45 * MIN;
    const first = await poll(sync, sim.zone);
    assert.ok(!first.some((c) => c.uniqueId.endsWith('.999')));
    assert.equal(first.length, 5, 'the calls that had ended (08:00..08:40, 1 min each)');
    clock = t0 + 2 * HOUR;
    const second = await poll(sync, sim.zone);
    assert.deepEqual(second.map((c) => c.uniqueId), [`${t0 / 1000 + 299}.999`, sim.calls[5].uniqueId]);
    clock = t0 + 3 * HOUR;
    assert.deepEqual(await poll(sync, sim.zone), []);
  });

  it('keeps lines that share a unique id but differ (several CDR rows per call)', async () => {
    const t0 = Date.UTC(2026, 0, 6, 8);
    sim.calls = [
      { uniqueId: '1767686400.1', startMs: t0, duration: 10, extension: '200', disposition: 'CALL_NOANSWER' },
      { uniqueId: '1767686400.1', startMs: t0, duration: 10, extension: '201' },
    ];
    const sync = new ComxSync({ ...DEFAULT_SYNC, firstLookbackMs: HOUR });
    clock = t0 + 10 * MIN;
    assert.equal((await poll(sync, sim.zone)).length, 2);
    clock += 10 * MIN;
    assert.equal((await poll(sync, sim.zone)).length, 0);
  });

  it('state survives a round trip through JSON: no gap, no duplicate after a restart', async () => {
    const t0 = Date.UTC(2026, 0, 7, 8);
    sim.calls = generateCalls(t0, 24, 5 * MIN, { duration: 30, recordings: false });
    const opts = { ...DEFAULT_SYNC, firstLookbackMs: HOUR, overlapMs: HOUR };
    let sync = new ComxSync(opts);
    const got: string[] = [];
    for (let k = 1; k <= 3; k++) {
      clock = t0 + k * 40 * MIN;
      got.push(...(await poll(sync, sim.zone)).map((c) => c.uniqueId));
      sync = new ComxSync(opts, JSON.parse(JSON.stringify(sync.snapshot())) as SyncState); // restart
    }
    clock = t0 + 3 * HOUR;
    got.push(...(await poll(sync, sim.zone)).map((c) => c.uniqueId));
    assert.deepEqual(got, sim.calls.map((c) => c.uniqueId));
  });

  for (const [label, startUtc] of [['fall-back (Europe/Berlin 2026-10-25)', Date.UTC(2026, 9, 24, 22)], ['spring-forward (Europe/Berlin 2026-03-29)', Date.UTC(2026, 2, 28, 23)]] as const) {
    it(`polls across the DST ${label}: every call once, with its true UTC start`, async () => {
      const berlin = new ComxSimulator('Europe/Berlin', 'cdr', 's3cret', () => clock);
      const c = new ComxClient({ baseUrl: await berlin.start(), user: 'cdr', password: 's3cret', retry: { retries: 0 } });
      try {
        berlin.calls = generateCalls(startUtc, 40, 7 * MIN, { duration: 20, recordings: false });
        const sync = new ComxSync({ ...DEFAULT_SYNC, firstLookbackMs: HOUR, overlapMs: HOUR });
        const got: ComxCdr[] = [];
        for (clock = startUtc + 20 * MIN; clock < startUtc + 7 * HOUR; clock += 20 * MIN) {
          const w = sync.window(clock, 'Europe/Berlin');
          if (!w) continue;
          const res = await c.open({ kind: 'range', format: 'txt', start: w.start, end: w.end });
          for await (const item of parseIndexStream(res.body, { zone: 'Europe/Berlin' })) {
            if (item.kind === 'cdr' && sync.isNew(item.cdr)) {
              got.push(item.cdr);
              sync.markEmitted(item.cdr);
            }
          }
          sync.commit(w, clock);
        }
        assert.deepEqual(got.map((x) => x.uniqueId).sort(), berlin.calls.map((x) => x.uniqueId).sort(), 'each call exactly once');
        for (const call of berlin.calls) {
          const cdr = got.find((x) => x.uniqueId === call.uniqueId)!;
          assert.equal(cdr.start, new Date(call.startMs).toISOString().replace('.000Z', 'Z'), `${call.uniqueId} ${cdr.startLocal}`);
        }
        if (label.startsWith('fall')) assert.ok(got.some((x) => x.startAmbiguous));
      } finally {
        await berlin.close();
      }
    });
  }

  it('bounds what it remembers', () => {
    const sync = new ComxSync({ ...DEFAULT_SYNC, maxSeen: 100 });
    for (let i = 0; i < 150; i++) sync.markEmitted({ uniqueId: `${i}.1`, raw: `${i}`, start: new Date(i * 1000).toISOString() });
    assert.ok(sync.seenCount <= 100);
    assert.ok(sync.forgotten > 0);
    assert.ok(!sync.isNew({ uniqueId: '149.1', raw: '149' }), 'the newest are kept');
  });
});

import { strict as assert } from 'node:assert';
import { ComxClient } from '../../src/comx/client';
import { parseIndexStream, type ComxCdr } from '../../src/comx/index-file';
import { ComxSync, DEFAULT_SYNC, cdrKey, type SyncEntry } from '../../src/comx/sync';
import { StateShapeError } from '../../src/common/persist';
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
        sync.markEmitted([item.cdr]);
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
      sync = ComxSync.restore(JSON.parse(JSON.stringify(sync.snapshot())), [], opts); // restart
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
              sync.markEmitted([item.cdr]);
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
    for (let i = 0; i < 150; i++) sync.markEmitted([{ uniqueId: `${i}.1`, raw: `${i}`, start: new Date(i * 1000).toISOString() }]);
    assert.ok(sync.seenCount <= 100);
    assert.ok(sync.forgotten > 0);
    assert.ok(!sync.isNew({ uniqueId: '149.1', raw: '149' }), 'the newest are kept');
  });

  it('keys lines by unique id and content: repeated ids with other content stay distinct', () => {
    const a = { uniqueId: '1.1', raw: '1.1,x' };
    assert.equal(cdrKey(a), cdrKey({ ...a }));
    assert.notEqual(cdrKey(a), cdrKey({ uniqueId: '1.1', raw: '1.1,y' }));
    assert.notEqual(cdrKey(a), cdrKey({ uniqueId: '1.2', raw: '1.1,x' }));
  });

  /** A poll that keeps the journal entries it produces, as the node records them. */
  async function journalledPoll(sync: ComxSync, journal: unknown[]): Promise<number> {
    const w = sync.window(clock, sim.zone);
    if (!w) return 0;
    const res = await client.open({ kind: 'range', format: 'txt', start: w.start, end: w.end });
    let n = 0;
    for await (const item of parseIndexStream(res.body, { zone: sim.zone })) {
      if (item.kind === 'malformed' && sync.isNewMalformed(item.malformed.text)) journal.push(JSON.parse(JSON.stringify(sync.markMalformed(item.malformed.text, w.toMs))));
      if (item.kind === 'cdr' && sync.isNew(item.cdr)) {
        journal.push(JSON.parse(JSON.stringify(sync.markEmitted([item.cdr]))));
        n++;
      }
    }
    journal.push(JSON.parse(JSON.stringify(sync.commit(w, clock))));
    return n;
  }

  it('a journal replayed on the last snapshot (or on nothing) gives back the live state: cursor, keys, purge', async () => {
    const t0 = Date.UTC(2026, 0, 8, 8);
    sim.calls = generateCalls(t0, 40, 6 * MIN, { duration: 30, recordings: false });
    sim.faults.extraIndexLines = ['not,a,record'];
    try {
      const opts = { ...DEFAULT_SYNC, firstLookbackMs: HOUR, overlapMs: HOUR };
      const live = new ComxSync(opts);
      const all: unknown[] = [];
      let base: unknown;
      let since: unknown[] = [];
      for (let k = 1; k <= 5; k++) {
        clock = t0 + k * 50 * MIN;
        if (k === 3) {
          base = JSON.parse(JSON.stringify(live.snapshot()));
          since = [];
        }
        const before = all.length;
        await journalledPoll(live, all);
        since.push(...all.slice(before));
      }
      assert.ok(live.seenCount < 40, 'the horizon purge forgot keys no window can fetch again');
      assert.deepEqual(ComxSync.restore(undefined, all, opts).snapshot(), live.snapshot(), 'journal alone');
      assert.deepEqual(ComxSync.restore(base, since, opts).snapshot(), live.snapshot(), 'snapshot + journal after it');
      // and the restored state goes on without a gap or a duplicate
      const restored = ComxSync.restore(base, since, opts);
      clock = t0 + 6 * HOUR;
      assert.equal(await journalledPoll(restored, []), 0, 'nothing emitted twice');
      assert.equal(restored.cursorMs, clock - DEFAULT_SYNC.safetyMs);
    } finally {
      sim.faults.extraIndexLines = undefined;
    }
  });

  it('journals small entries: one key per emitted line, the cursor per window', () => {
    const sync = new ComxSync();
    const line = { uniqueId: '1767600000.1', raw: '1767600000.1,2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,0824440001,CALL_ANSWERED,31,28,51150,g200.gsm', start: '2026-01-05T08:00:00Z' };
    const e = sync.markEmitted([line]);
    assert.deepEqual(e, { e: [[cdrKey(line), Date.parse(line.start)]] });
    assert.ok(JSON.stringify(e).length < 60, JSON.stringify(e));
    const w = sync.window(Date.UTC(2026, 0, 5, 12), 'Africa/Johannesburg')!;
    const c = sync.commit(w, Date.UTC(2026, 0, 5, 12));
    assert.deepEqual(c, { c: w.toMs, at: '2026-01-05T12:00:00.000Z' });
    assert.ok(JSON.stringify(c).length < 60);
  });

  it('setCursor moves the cursor back or forward and keeps the keys; reset forgets both; each replays', () => {
    const sync = new ComxSync({ ...DEFAULT_SYNC, overlapMs: HOUR, safetyMs: 0 });
    const journal: SyncEntry[] = [];
    const t = Date.UTC(2026, 0, 5, 10);
    journal.push(sync.markEmitted([{ uniqueId: '1.1', raw: 'a', start: new Date(t).toISOString() }]));
    journal.push(sync.commit({ fromMs: t - HOUR, toMs: t + HOUR, start: '', end: '' }, t + HOUR));
    journal.push(sync.setCursor(t - 3 * HOUR, t + HOUR));
    assert.equal(sync.cursorMs, t - 3 * HOUR, 'back');
    assert.equal(sync.window(t + HOUR, 'UTC')!.start, '202601050600', 'the next window: the new cursor − overlap');
    assert.ok(!sync.isNew({ uniqueId: '1.1', raw: 'a' }), 'keys kept');
    assert.deepEqual(ComxSync.restore(undefined, JSON.parse(JSON.stringify(journal))).snapshot(), sync.snapshot());
    journal.push(sync.reset());
    assert.equal(sync.cursorMs, null);
    assert.ok(sync.isNew({ uniqueId: '1.1', raw: 'a' }));
    assert.deepEqual(ComxSync.restore(undefined, JSON.parse(JSON.stringify(journal))).snapshot(), { version: 1, cursor: null, seen: [] });
  });

  it('restores the state the previous version wrote, and starts clean from nothing', () => {
    const old = { version: 1, cursor: 1767614280000, seen: [['k1', 1767600000000], ['k2', 1767600060000]], updatedAt: '2026-01-05T12:00:00.000Z' };
    assert.deepEqual(ComxSync.restore(old, []).snapshot(), old);
    for (const nothing of [undefined, null]) assert.deepEqual(ComxSync.restore(nothing, []).snapshot(), { version: 1, cursor: null, seen: [] });
  });

  const badStates: [string, unknown][] = [
    ['no cursor', { version: 1 }],
    ['no seen list', { version: 1, cursor: null }],
    ['another version', { version: 2, cursor: null, seen: [] }],
    ['a cursor that is text', { version: 1, cursor: '2026-01-05', seen: [] }],
    ['a cursor no Date can hold', { version: 1, cursor: 1e300, seen: [] }],
    ['a key that is a number', { version: 1, cursor: null, seen: [[1, 2]] }],
    ['a start that is text', { version: 1, cursor: null, seen: [['k', 'x']] }],
    ['a key without its start', { version: 1, cursor: null, seen: [['k']] }],
    ['seen as an object', { version: 1, cursor: null, seen: { k: 1 } }],
    ['updatedAt as a number', { version: 1, cursor: null, seen: [], updatedAt: 5 }],
    ['a list', []],
    ['a text', 'state'],
    ['a number', 42],
  ];
  for (const [what, saved] of badStates) {
    it(`restore refuses a saved state with ${what} (StateShapeError)`, () => {
      assert.throws(() => ComxSync.restore(saved, []), StateShapeError);
    });
  }

  const badEntries: [string, unknown][] = [
    ['an empty object', {}],
    ['null', null],
    ['a text', 'e'],
    ['a key that is a number', { e: [[1, 2]] }],
    ['a key without its start', { e: [['k']] }],
    ['a key list that is not a list of pairs', { e: ['k'] }],
    ['a cursor that is text', { c: '2026', at: 'x' }],
    ['a set cursor no Date can hold', { s: 9e15, at: 'x' }],
    ['a cursor without its time', { c: 5 }],
    ['a set cursor without its time', { s: 5 }],
    ['a reset with another value', { r: 2 }],
    ['a reset with more in it', { r: 1, c: 'x' }],
  ];
  for (const [what, entry] of badEntries) {
    it(`restore refuses a journal entry that is ${what} (StateShapeError)`, () => {
      assert.throws(() => ComxSync.restore({ version: 1, cursor: null, seen: [] }, [entry]), StateShapeError);
      assert.throws(() => ComxSync.restore(undefined, [{ r: 1 }, entry]), StateShapeError);
    });
  }

  it('a restore keeps the cap: the most recently emitted keys', () => {
    const seen = Array.from({ length: 150 }, (_v, i) => [`k${i}`, i * 1000]);
    const sync = ComxSync.restore({ version: 1, cursor: null, seen }, [], { ...DEFAULT_SYNC, maxSeen: 100 });
    assert.equal(sync.seenCount, 100);
    assert.deepEqual(sync.snapshot().seen[0], ['k50', 50_000]);
  });
});

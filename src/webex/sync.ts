/**
 * Lossless sync over the Webex CDR API (specs/webex.md §5 "Recommended sync algorithm"):
 * - incremental on cdr_stream (insertion time): windows of at most 2 h ending at least `streamLagMs`
 *   ago, starting `overlapMs` before the cursor; the cursor moves only after a window was fully paged
 *   and every page emitted;
 * - backfill (first run deeper than the stream's 12 h, an outage longer than that, or on request) and
 *   re-pull on cdr_feed: windows of at most 12 h ending at least `feedLagMs` ago, at most 30 days back;
 * - Report ID dedup (a BoundedMap, persisted) across overlaps and restarts;
 * - progress inside a window (the next-page URL) is saved after each emitted page, so a restart
 *   resumes where it stopped;
 * - a new window's end is decided when its first request is booked, after any wait for the rate limit
 *   (so the wait does not leave a minute behind), and that time is kept with the cursor: after a
 *   restart the limiter waits its minute from it.
 * What is saved is the change since the last save (a SyncChange: the fields that moved and the Report
 * IDs added), never the whole state, and nothing when nothing changed; the whole state (snapshot()) is
 * plain JSON.
 */
import { CdrClient, WebexApiError, type Endpoint, type Page, type WindowQuery } from './client';
import { systemClock, type Clock } from './clock';
import { recordKey, type RawCdr } from './records';
import { BoundedMap } from '../common/bounded-map';
import { expectShape } from '../common/persist';

const H = 3_600_000;
const MIN = 60_000;

export interface SyncSettings {
  max: number;
  locations?: string;
  /** First run: how far back to start. */
  lookbackMs: number;
  /** Incremental windows start this long before the cursor (late inserts at the edge, clock skew). */
  overlapMs: number;
  /** cdr_stream windows end at least this long ago (API minimum 1 min). */
  streamLagMs: number;
  /** cdr_feed windows end at least this long ago (API minimum 5 min). */
  feedLagMs: number;
  streamWindowMs: number;
  feedWindowMs: number;
  streamRetentionMs: number;
  feedRetentionMs: number;
  /** Distance kept from the retention limits, so a request sent a little later is still valid. */
  retentionMarginMs: number;
  /** After an outage longer than the stream retention the feed backfill starts this much earlier (late records). */
  lateMarginMs: number;
  /** Report IDs remembered for dedup. */
  dedupCapacity: number;
}

export const DEFAULT_SETTINGS: SyncSettings = {
  max: 5000,
  lookbackMs: 48 * H,
  overlapMs: 2 * MIN,
  streamLagMs: 2 * MIN,
  feedLagMs: 6 * MIN,
  streamWindowMs: 2 * H,
  feedWindowMs: 12 * H,
  streamRetentionMs: 12 * H,
  feedRetentionMs: 30 * 24 * H,
  retentionMarginMs: 10 * MIN,
  lateMarginMs: 1 * H,
  dedupCapacity: 20_000,
};

export interface WindowProgress {
  endpoint: Endpoint;
  /** ISO UTC */
  start: string;
  end: string;
  purpose: 'incremental' | 'backfill' | 'repull';
  /** Next-page URL still to fetch; null before the first page. */
  next: string | null;
  pages: number;
  records: number;
  duplicates: number;
}

export interface SyncState {
  version: 1;
  /** cdr_stream watermark (insertion time): every record inserted before it was emitted. */
  streamCursor: string | null;
  /** cdr_feed range still to fetch; `from` moves forward window by window. */
  backfill: { from: string; to: string } | null;
  /** A window paged part-way when the node stopped. */
  current: WindowProgress | null;
  /** Dedup keys (lower-cased Report IDs), oldest first. */
  seen: string[];
  lastSuccess: string | null;
  lastError: string | null;
  /**
   * When the last initial request (a new window) was booked (ISO UTC); the next one waits the API's
   * interval from it, across restarts. Absent until the first request (states saved by 0.1.0 lack it).
   */
  lastInitial?: string | null;
}

/**
 * One saved change (a journal entry): the fields that changed since the last save, and the Report IDs
 * set since then (oldest first). restoreState(snapshot, [change, …]) rebuilds the live state.
 */
export interface SyncChange {
  streamCursor?: string | null;
  backfill?: { from: string; to: string } | null;
  current?: WindowProgress | null;
  seen?: string[];
  lastSuccess?: string | null;
  lastError?: string | null;
  lastInitial?: string | null;
}

type Field = Exclude<keyof SyncChange, 'seen'>;

export function emptyState(): SyncState {
  return { version: 1, streamCursor: null, backfill: null, current: null, seen: [], lastSuccess: null, lastError: null };
}

/**
 * The live state from a saved snapshot (undefined: none, a clean first run) and the changes saved after
 * it. Checks the shape and throws StateShapeError on anything else (an unknown version, a missing or
 * mistyped field, an unknown key), so a damaged state is set aside and reported instead of read as empty.
 */
export function restoreState(saved: unknown, journal: readonly unknown[] = [], capacity = DEFAULT_SETTINGS.dedupCapacity): SyncState {
  const { state, seen } = restoreParts(saved, journal, capacity);
  return { ...state, seen: [...seen.keys()] };
}

function restoreParts(saved: unknown, journal: readonly unknown[], capacity: number): { state: SyncState; seen: BoundedMap<string, true> } {
  const state = emptyState();
  const seen = new BoundedMap<string, true>({ max: capacity });
  if (saved !== undefined) {
    expectShape(isRecord(saved), 'the saved state is not an object');
    expectShape(saved.version === 1, `unknown state version ${JSON.stringify(saved.version)}`);
    for (const k of ['streamCursor', 'backfill', 'current', 'seen']) expectShape(k in saved, `the saved state has no ${k}`);
    apply(state, seen, saved, 'the saved state');
  }
  journal.forEach((entry, i) => {
    expectShape(isRecord(entry), `journal entry ${i + 1} is not an object`);
    apply(state, seen, entry, `journal entry ${i + 1}`);
  });
  return { state, seen };
}

function apply(state: SyncState, seen: BoundedMap<string, true>, v: Record<string, unknown>, where: string): void {
  for (const [k, x] of Object.entries(v)) {
    const bad = `${where}: ${k} ${JSON.stringify(x)?.slice(0, 80)}`;
    switch (k) {
      case 'version':
        expectShape(where === 'the saved state', `${where}: unknown field "version"`);
        break;
      case 'streamCursor':
        expectShape(x === null || isTime(x), `${bad} is not a time`);
        state.streamCursor = x as string | null;
        break;
      case 'backfill':
        expectShape(x === null || (isRecord(x) && isTime(x.from) && isTime(x.to)), `${bad} is not a {from, to} range`);
        state.backfill = x === null ? null : { from: (x as any).from, to: (x as any).to };
        break;
      case 'current':
        expectShape(x === null || isWindow(x), `${bad} is not a window`);
        state.current = x === null ? null : { ...(x as WindowProgress) };
        break;
      case 'seen':
        expectShape(Array.isArray(x) && x.every((s) => typeof s === 'string'), `${where}: seen is not a list of Report IDs`);
        for (const key of x as string[]) seen.set(key, true, 0);
        break;
      case 'lastInitial':
        expectShape(x === null || isTime(x), `${bad} is not a time`);
        state.lastInitial = x as string | null;
        break;
      case 'lastSuccess':
      case 'lastError':
        expectShape(x === null || typeof x === 'string', `${bad} is not text`);
        state[k] = x as string | null;
        break;
      default:
        expectShape(false, `${where}: unknown field ${JSON.stringify(k)}`);
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTime(v: unknown): v is string {
  return typeof v === 'string' && Number.isFinite(Date.parse(v));
}

function isCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function isWindow(v: unknown): v is WindowProgress {
  return isRecord(v)
    && (v.endpoint === 'cdr_stream' || v.endpoint === 'cdr_feed')
    && (v.purpose === 'incremental' || v.purpose === 'backfill' || v.purpose === 'repull')
    && isTime(v.start) && isTime(v.end)
    && (v.next === null || typeof v.next === 'string')
    && isCount(v.pages) && isCount(v.records) && isCount(v.duplicates);
}

export type SyncRequest =
  | { mode: 'incremental' }
  | { mode: 'backfill'; from: number }
  | { mode: 'repull'; from: number; to: number };

export interface PageBatch {
  /** Records not seen before (re-pull: every record), as received. */
  items: RawCdr[];
  window: WindowProgress;
  /** 1-based page number in the window. */
  page: number;
  url: string;
}

export interface WindowStats {
  endpoint: Endpoint;
  purpose: WindowProgress['purpose'];
  start: string;
  end: string;
  records: number;
  duplicates: number;
  pages: number;
}

export interface RunStats {
  mode: SyncRequest['mode'];
  started: string;
  finished: string;
  durationMs: number;
  windows: WindowStats[];
  records: number;
  duplicates: number;
  pages: number;
  apiCalls: number;
  streamCursor: string | null;
  backfillPending: { from: string; to: string } | null;
  lastSuccess: string | null;
  ok: boolean;
  error?: string;
  warnings: string[];
}

export interface SyncHooks {
  /** Emits a page of records; the cursor and dedup state are saved only after it resolves. */
  emit(batch: PageBatch): Promise<void> | void;
  /**
   * Saves one change (awaited after every page and window that changed something; never called with
   * nothing to save). A rejection fails the run, and the change is offered again with the next one.
   */
  save(change: SyncChange): Promise<void>;
  progress?(info: { window: WindowProgress; windowIndex: number; records: number }): void;
  warn?(text: string): void;
}

export class SyncError extends Error {
  constructor(message: string, readonly original: unknown, readonly stats: RunStats) {
    super(message);
    this.name = 'SyncError';
  }
}

export class CdrSync {
  private state: SyncState;
  private seen: BoundedMap<string, true>;
  private readonly clock: Clock;
  readonly settings: SyncSettings;
  /** Fields changed and Report IDs set since the last save. */
  private changed = new Set<Field>();
  private added: string[] = [];
  /** Something was saved during the current run. */
  private progressed = false;

  /** `state` is checked like a saved one (restoreState): a wrong shape throws StateShapeError. */
  constructor(private readonly client: CdrClient, state: SyncState, private readonly hooks: SyncHooks, settings: Partial<SyncSettings> = {}, clock: Clock = systemClock) {
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    ({ state: this.state, seen: this.seen } = restoreParts(state, [], this.settings.dedupCapacity));
    this.clock = clock;
    // the API's minute between initial requests runs on from the one before a restart
    if (this.state.lastInitial) client.restoreInitial(Date.parse(this.state.lastInitial));
  }

  snapshot(): SyncState {
    const s = this.state;
    return { ...s, backfill: s.backfill && { ...s.backfill }, current: s.current && { ...s.current }, seen: [...this.seen.keys()] };
  }

  /** The stream cursor as the user set it (msg.cursor): incremental pulls resume there. Saved before it resolves. */
  async setCursor(ms: number): Promise<void> {
    this.state.streamCursor = new Date(ms).toISOString();
    this.mark('streamCursor');
    if (this.state.current?.purpose === 'incremental') {
      // an unfinished stream window belongs to the old cursor
      this.state.current = null;
      this.mark('current');
    }
    await this.commit();
  }

  private mark(...fields: Field[]): void {
    for (const f of fields) this.changed.add(f);
  }

  /** Saves what changed since the last save, if anything. */
  private async commit(): Promise<void> {
    if (this.changed.size === 0 && this.added.length === 0) return;
    const change: SyncChange = {};
    const s = this.snapshot();
    for (const f of this.changed) (change as Record<string, unknown>)[f] = s[f];
    if (this.added.length > 0) change.seen = this.added;
    const fields = this.changed;
    const added = this.added;
    this.changed = new Set();
    this.added = [];
    try {
      await this.hooks.save(change);
      this.progressed = true;
    } catch (err) {
      // not saved: offered again with the next change
      for (const f of fields) this.changed.add(f);
      this.added = [...added, ...this.added];
      throw err;
    }
  }

  /** Remembers a Report ID as the newest (saved with the next change: at most a page, or a re-pull window). */
  private remember(key: string): void {
    this.seen.set(key, true, 0);
    this.added.push(key);
  }

  /** One sync run. Resolves with statistics; rejects with a SyncError (carrying them) without moving a cursor past unfetched data. */
  async run(req: SyncRequest = { mode: 'incremental' }, signal?: AbortSignal): Promise<RunStats> {
    const t0 = this.clock.now();
    const calls0 = this.client.apiCalls;
    const stats: RunStats = {
      mode: req.mode, started: new Date(t0).toISOString(), finished: '', durationMs: 0, windows: [], records: 0, duplicates: 0,
      pages: 0, apiCalls: 0, streamCursor: null, backfillPending: null, lastSuccess: this.state.lastSuccess, ok: false, warnings: [],
    };
    const finish = (ok: boolean, error?: string) => {
      const t1 = this.clock.now();
      Object.assign(stats, {
        finished: new Date(t1).toISOString(), durationMs: t1 - t0, apiCalls: this.client.apiCalls - calls0,
        streamCursor: this.state.streamCursor, backfillPending: this.state.backfill ? { ...this.state.backfill } : null,
        lastSuccess: this.state.lastSuccess, ok, ...(error ? { error } : {}),
      });
      return stats;
    };
    this.progressed = false;
    try {
      if (req.mode === 'repull') {
        await this.repull(req.from, req.to, stats, signal);
      } else {
        if (req.mode === 'backfill') this.requestBackfill(req.from, stats);
        if (this.state.current && this.stale(this.state.current)) {
          this.warn(stats, `dropped the unfinished ${this.state.current.endpoint} window ${this.state.current.start}…${this.state.current.end}: it is older than the API keeps data (its range is covered again by the gap handling)`);
          this.state.current = null;
          this.mark('current');
        }
        if (this.state.current) await this.runWindow(this.state.current, stats, signal, this.latestEnd(this.state.current));
        await this.incremental(stats, signal);
        await this.backfill(stats, signal);
      }
      // the time of the last success is saved with a run that changed something (or cleared an error),
      // not on its own: a run that found nothing new writes nothing
      this.state.lastSuccess = new Date(this.clock.now()).toISOString();
      if (this.state.lastError !== null) this.mark('lastError');
      this.state.lastError = null;
      if (this.progressed || this.changed.size > 0 || this.added.length > 0) this.mark('lastSuccess');
      await this.commit();
      return finish(true);
    } catch (err) {
      const text = (err as Error)?.message ?? String(err);
      if (this.state.lastError !== text) this.mark('lastError');
      this.state.lastError = text;
      await this.commit().catch(() => undefined);
      throw new SyncError(text, err, finish(false, text));
    }
  }

  private warn(stats: RunStats, text: string): void {
    stats.warnings.push(text);
    this.hooks.warn?.(text);
  }

  private stale(w: WindowProgress): boolean {
    const now = this.clock.now();
    return Date.parse(w.start) < (w.endpoint === 'cdr_stream' ? this.streamEarliest(now) - this.settings.retentionMarginMs / 2 : this.feedEarliest(now) - this.settings.retentionMarginMs / 2);
  }

  private streamEarliest(now: number): number {
    return now - this.settings.streamRetentionMs + this.settings.retentionMarginMs;
  }

  private feedEarliest(now: number): number {
    return now - this.settings.feedRetentionMs + this.settings.retentionMarginMs;
  }

  /** Plans a history fetch from `from` up to where stream coverage begins. */
  private requestBackfill(from: number, stats: RunStats): void {
    const now = this.clock.now();
    if (this.state.streamCursor === null) {
      this.firstRun(now, from);
      return;
    }
    let start = from;
    if (start < this.feedEarliest(now)) {
      this.warn(stats, `backfill start ${new Date(from).toISOString()} is older than the API's 30 days: starting at ${new Date(this.feedEarliest(now)).toISOString()}`);
      start = this.feedEarliest(now);
    }
    const to = Date.parse(this.state.streamCursor);
    if (start >= to) return;
    this.mergeBackfill(start, to);
  }

  private mergeBackfill(from: number, to: number): void {
    const b = this.state.backfill;
    const f = b ? Math.min(Date.parse(b.from), from) : from;
    const t = b ? Math.max(Date.parse(b.to), to) : to;
    this.state.backfill = { from: new Date(f).toISOString(), to: new Date(t).toISOString() };
    this.mark('backfill');
  }

  private firstRun(now: number, from: number): void {
    const seam = now - this.settings.streamRetentionMs + Math.max(H, this.settings.retentionMarginMs);
    this.mark('streamCursor');
    if (from >= seam) {
      this.state.streamCursor = new Date(from).toISOString();
      return;
    }
    this.state.streamCursor = new Date(seam).toISOString();
    this.mergeBackfill(Math.max(from, this.feedEarliest(now)), seam);
  }

  private async incremental(stats: RunStats, signal?: AbortSignal): Promise<void> {
    const s = this.settings;
    if (this.state.streamCursor === null) {
      this.firstRun(this.clock.now(), this.clock.now() - s.lookbackMs);
      await this.commit();
    }
    const until = this.clock.now() - s.streamLagMs;
    for (;;) {
      const now = this.clock.now();
      let cursor = Date.parse(this.state.streamCursor!);
      const earliest = this.streamEarliest(now);
      if (cursor < earliest) {
        // Off for longer than the stream keeps data: fetch the hole from cdr_feed, with a margin for late records.
        this.warn(stats, `cursor ${this.state.streamCursor} is older than cdr_stream keeps data: the gap is fetched from cdr_feed`);
        this.mergeBackfill(Math.max(cursor - s.lateMarginMs, this.feedEarliest(now)), earliest + s.overlapMs);
        cursor = earliest;
        this.state.streamCursor = new Date(cursor).toISOString();
        this.mark('streamCursor');
        await this.commit();
      }
      if (until - cursor < 1000) return;
      const start = Math.max(cursor - s.overlapMs, earliest);
      // `until` (the run's start) only decides whether a window is due; its end is decided when its
      // request goes out, after any wait for the rate limit
      const end = Math.min(start + s.streamWindowMs, until);
      if (end <= cursor) return;
      const w = this.newWindow('cdr_stream', 'incremental', start, end);
      await this.runWindow(w, stats, signal, this.latestEnd(w));
    }
  }

  private async backfill(stats: RunStats, signal?: AbortSignal): Promise<void> {
    const s = this.settings;
    while (this.state.backfill) {
      const now = this.clock.now();
      let from = Date.parse(this.state.backfill.from);
      const to = Date.parse(this.state.backfill.to);
      if (from < this.feedEarliest(now)) {
        this.warn(stats, `backfill from ${this.state.backfill.from} is older than cdr_feed keeps data: records before ${new Date(this.feedEarliest(now)).toISOString()} cannot be fetched`);
        from = this.feedEarliest(now);
      }
      const limit = Math.min(to, now - s.feedLagMs);
      if (from >= to) {
        this.state.backfill = null;
        this.mark('backfill');
        await this.commit();
        return;
      }
      if (limit - from < 1000) return; // the rest is too recent for cdr_feed yet
      const end = Math.min(from + s.feedWindowMs, limit);
      const w = this.newWindow('cdr_feed', 'backfill', from, end);
      if (await this.feedWindowRefused(() => this.runWindow(w, stats, signal, this.latestEnd(w)), from, stats)) continue;
    }
  }

  /**
   * cdr_feed documents 30 days back in one place and 48 h in another (specs/webex.md §2.3). When the
   * server refuses an older start with 400, step back to 48 h for this run and re-plan; true = retry.
   */
  private async feedWindowRefused(run: () => Promise<void>, start: number, stats: RunStats): Promise<boolean> {
    try {
      await run();
      return false;
    } catch (err) {
      const now = this.clock.now();
      const short = 48 * H;
      if (err instanceof WebexApiError && err.status === 400 && this.settings.feedRetentionMs > short && start < now - short + this.settings.retentionMarginMs) {
        this.warn(stats, `cdr_feed refused a start older than 48 h (${err.message}): using 48 h as its limit`);
        this.settings.feedRetentionMs = short;
        this.state.current = null;
        this.mark('current');
        return true;
      }
      throw err;
    }
  }

  private async repull(from: number, to: number, stats: RunStats, signal?: AbortSignal): Promise<void> {
    const s = this.settings;
    if (!(to > from)) throw new Error('re-pull needs from < to');
    const now = this.clock.now();
    let start = from;
    if (start < this.feedEarliest(now)) {
      this.warn(stats, `re-pull start is older than the API's 30 days: starting at ${new Date(this.feedEarliest(now)).toISOString()}`);
      start = this.feedEarliest(now);
    }
    const end = Math.min(to, now - s.feedLagMs);
    if (end < to) this.warn(stats, `re-pull end moved to ${new Date(end).toISOString()}: cdr_feed serves records from ${s.feedLagMs / MIN} min ago`);
    for (let a = start; a < end; a = Math.min(a + s.feedWindowMs, end)) {
      if (await this.feedWindowRefused(() => this.runWindow(this.newWindow('cdr_feed', 'repull', a, Math.min(a + s.feedWindowMs, end)), stats, signal), a, stats)) {
        a = Math.max(a, this.feedEarliest(this.clock.now())) - s.feedWindowMs; // the loop step adds it back
      }
    }
  }

  /**
   * For a window not yet requested: the latest end the API allows at the time `at` its request is
   * booked (stream: the lag; a backfill: also its range). A re-pull keeps the range it was given.
   */
  private latestEnd(w: WindowProgress): ((at: number) => number) | undefined {
    const s = this.settings;
    if (w.purpose === 'incremental') return (at) => at - s.streamLagMs;
    if (w.purpose !== 'backfill') return undefined;
    const to = this.state.backfill ? Date.parse(this.state.backfill.to) : Date.parse(w.end);
    return (at) => Math.min(to, at - s.feedLagMs);
  }

  private newWindow(endpoint: Endpoint, purpose: WindowProgress['purpose'], start: number, end: number): WindowProgress {
    return { endpoint, purpose, start: new Date(start).toISOString(), end: new Date(end).toISOString(), next: null, pages: 0, records: 0, duplicates: 0 };
  }

  /**
   * The first page; on a 400 whose likely cause is an end too close to now (the server's clock ahead of
   * ours), the end is pulled back by another lag and the request sent once more (specs/webex.md §3).
   * The start never moves, so nothing is skipped: the next window covers what the shorter one left.
   */
  private async firstPageClamped(w: WindowProgress, q: WindowQuery, plan: (at: number) => WindowQuery, stats: RunStats, signal?: AbortSignal): Promise<Page> {
    try {
      return await this.client.firstPage(plan, signal);
    } catch (err) {
      if (!(err instanceof WebexApiError) || err.status !== 400) throw err;
      const lag = w.endpoint === 'cdr_stream' ? this.settings.streamLagMs : this.settings.feedLagMs;
      const end = Math.min(q.end, this.clock.now() - 2 * lag);
      if (end >= q.end || end - q.start < 1000) throw err;
      this.warn(stats, `${w.endpoint} refused ${w.start}…${w.end} (${err.message}): retrying once with the end at ${new Date(end).toISOString()}`);
      w.end = new Date(end).toISOString();
      q.end = end;
      return await this.client.firstPage(this.booking(q), signal);
    }
  }

  /** A first-page plan that keeps `q` as it is and notes when its request was booked. */
  private booking(q: WindowQuery): (at: number) => WindowQuery {
    return (at) => {
      this.state.lastInitial = new Date(at).toISOString();
      this.mark('lastInitial');
      return { ...q };
    };
  }

  /**
   * Pages one window to the end; saves progress after every page and the cursor after the last. A new
   * window given `latest` (the latest end the API allows at a time) gets its end when its first request
   * is booked: as far as `latest` then allows, within the window length, never earlier than planned.
   */
  private async runWindow(w: WindowProgress, stats: RunStats, signal?: AbortSignal, latest?: (at: number) => number): Promise<void> {
    const q: WindowQuery = { endpoint: w.endpoint, start: Date.parse(w.start), end: Date.parse(w.end), max: this.settings.max, locations: this.settings.locations };
    const booked = this.booking(q);
    const plan = (at: number): WindowQuery => {
      if (latest) {
        const length = w.endpoint === 'cdr_stream' ? this.settings.streamWindowMs : this.settings.feedWindowMs;
        q.end = Math.max(q.end, Math.min(q.start + length, latest(at)));
        w.end = new Date(q.end).toISOString();
      }
      return booked(at);
    };
    const tracked = w.purpose !== 'repull';
    if (tracked) {
      this.state.current = w;
      this.mark('current');
    }
    const windowIndex = stats.windows.length;
    this.hooks.progress?.({ window: w, windowIndex, records: stats.records });
    let page: Page;
    try {
      page = w.next ? await this.client.nextPage(w.next, signal) : await this.firstPageClamped(w, q, plan, stats, signal);
    } catch (err) {
      // A saved next-page URL the server no longer accepts: start the window again (dedup drops what was sent).
      if (!w.next || !(err instanceof WebexApiError) || (err.kind !== 'request' && err.kind !== 'notFound')) throw err;
      this.warn(stats, `could not resume ${w.endpoint} ${w.start}…${w.end} from its saved page (${err.message}): fetching the window again`);
      w.next = null;
      page = await this.client.firstPage(booked, signal);
    }
    for (;;) {
      const fresh: RawCdr[] = [];
      let dups = 0;
      for (const item of page.items) {
        if (!item || typeof item !== 'object') continue;
        const key = recordKey(item);
        if (tracked && this.seen.has(key)) {
          dups++;
          continue;
        }
        this.remember(key); // re-pull: emitted again, and its place in the window refreshed
        fresh.push(item);
      }
      w.pages++;
      w.records += fresh.length;
      w.duplicates += dups;
      stats.pages++;
      stats.records += fresh.length;
      stats.duplicates += dups;
      if (fresh.length > 0) await this.hooks.emit({ items: fresh, window: w, page: w.pages, url: page.url });
      w.next = page.next;
      if (page.next) {
        if (tracked) {
          this.mark('current');
          await this.commit();
        }
        this.hooks.progress?.({ window: w, windowIndex, records: stats.records });
        page = await this.client.nextPage(page.next, signal);
        continue;
      }
      break;
    }
    // Fully paged and emitted: now the cursor may move.
    if (w.purpose === 'incremental') {
      this.state.streamCursor = w.end;
      this.mark('streamCursor');
    }
    if (w.purpose === 'backfill' && this.state.backfill) {
      const to = Date.parse(this.state.backfill.to);
      this.state.backfill = Date.parse(w.end) >= to ? null : { from: w.end, to: this.state.backfill.to };
      this.mark('backfill');
    }
    if (tracked) {
      this.state.current = null;
      this.mark('current');
    }
    stats.windows.push({ endpoint: w.endpoint, purpose: w.purpose, start: w.start, end: w.end, records: w.records, duplicates: w.duplicates, pages: w.pages });
    await this.commit();
  }
}

/**
 * Lossless sync over the Webex CDR API (specs/webex.md §5 "Recommended sync algorithm"):
 * - incremental on cdr_stream (insertion time): windows of at most 2 h ending at least `streamLagMs`
 *   ago, starting `overlapMs` before the cursor; the cursor moves only after a window was fully paged
 *   and every page emitted;
 * - backfill (first run deeper than the stream's 12 h, an outage longer than that, or on request) and
 *   re-pull on cdr_feed: windows of at most 12 h ending at least `feedLagMs` ago, at most 30 days back;
 * - Report ID dedup (bounded, persisted) across overlaps and restarts;
 * - progress inside a window (the next-page URL) is saved after each emitted page, so a restart
 *   resumes where it stopped; the whole state is plain JSON.
 */
import { CdrClient, WebexApiError, type Endpoint, type Page } from './client';
import { systemClock, type Clock } from './clock';
import { recordKey, type RawCdr } from './records';

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
}

export function emptyState(): SyncState {
  return { version: 1, streamCursor: null, backfill: null, current: null, seen: [], lastSuccess: null, lastError: null };
}

/** Accepts anything a store gave back; unknown shapes start afresh. */
export function restoreState(v: unknown): SyncState {
  const s = v as Partial<SyncState> | null | undefined;
  if (!s || typeof s !== 'object' || s.version !== 1) return emptyState();
  return {
    ...emptyState(),
    ...s,
    seen: Array.isArray(s.seen) ? s.seen.filter((x) => typeof x === 'string') : [],
  };
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
  /** Saves the state (awaited after every page and window). */
  save(state: SyncState): Promise<void>;
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
  private seen: Set<string>;
  private readonly clock: Clock;
  readonly settings: SyncSettings;

  constructor(private readonly client: CdrClient, state: SyncState, private readonly hooks: SyncHooks, settings: Partial<SyncSettings> = {}, clock: Clock = systemClock) {
    this.state = restoreState(state);
    this.seen = new Set(this.state.seen);
    this.clock = clock;
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
  }

  snapshot(): SyncState {
    return { ...this.state, seen: [...this.seen] };
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
    try {
      if (req.mode === 'repull') {
        await this.repull(req.from, req.to, stats, signal);
      } else {
        if (req.mode === 'backfill') this.requestBackfill(req.from, stats);
        if (this.state.current && this.stale(this.state.current)) {
          this.warn(stats, `dropped the unfinished ${this.state.current.endpoint} window ${this.state.current.start}…${this.state.current.end}: it is older than the API keeps data (its range is covered again by the gap handling)`);
          this.state.current = null;
        }
        if (this.state.current) await this.runWindow(this.state.current, stats, signal);
        await this.incremental(stats, signal);
        await this.backfill(stats, signal);
      }
      this.state.lastSuccess = new Date(this.clock.now()).toISOString();
      this.state.lastError = null;
      await this.hooks.save(this.snapshot());
      return finish(true);
    } catch (err) {
      const text = (err as Error)?.message ?? String(err);
      this.state.lastError = text;
      await this.hooks.save(this.snapshot()).catch(() => undefined);
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
  }

  private firstRun(now: number, from: number): void {
    const seam = now - this.settings.streamRetentionMs + Math.max(H, this.settings.retentionMarginMs);
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
      await this.hooks.save(this.snapshot());
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
        await this.hooks.save(this.snapshot());
      }
      if (until - cursor < 1000) return;
      const start = Math.max(cursor - s.overlapMs, earliest);
      const end = Math.min(start + s.streamWindowMs, until);
      if (end <= cursor) return;
      await this.runWindow(this.newWindow('cdr_stream', 'incremental', start, end), stats, signal);
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
        await this.hooks.save(this.snapshot());
        return;
      }
      if (limit - from < 1000) return; // the rest is too recent for cdr_feed yet
      const end = Math.min(from + s.feedWindowMs, limit);
      if (await this.feedWindowRefused(() => this.runWindow(this.newWindow('cdr_feed', 'backfill', from, end), stats, signal), from, stats)) continue;
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

  private newWindow(endpoint: Endpoint, purpose: WindowProgress['purpose'], start: number, end: number): WindowProgress {
    return { endpoint, purpose, start: new Date(start).toISOString(), end: new Date(end).toISOString(), next: null, pages: 0, records: 0, duplicates: 0 };
  }

  /**
   * The first page; on a 400 whose likely cause is an end too close to now (the server's clock ahead of
   * ours), the end is pulled back by another lag and the request sent once more (specs/webex.md §3).
   * The start never moves, so nothing is skipped: the next window covers what the shorter one left.
   */
  private async firstPageClamped(w: WindowProgress, q: { endpoint: Endpoint; start: number; end: number; max: number; locations?: string }, stats: RunStats, signal?: AbortSignal): Promise<Page> {
    try {
      return await this.client.firstPage(q, signal);
    } catch (err) {
      if (!(err instanceof WebexApiError) || err.status !== 400) throw err;
      const lag = w.endpoint === 'cdr_stream' ? this.settings.streamLagMs : this.settings.feedLagMs;
      const end = Math.min(q.end, this.clock.now() - 2 * lag);
      if (end >= q.end || end - q.start < 1000) throw err;
      this.warn(stats, `${w.endpoint} refused ${w.start}…${w.end} (${err.message}): retrying once with the end at ${new Date(end).toISOString()}`);
      w.end = new Date(end).toISOString();
      q.end = end;
      return await this.client.firstPage(q, signal);
    }
  }

  /** Pages one window to the end; saves progress after every page and the cursor after the last. */
  private async runWindow(w: WindowProgress, stats: RunStats, signal?: AbortSignal): Promise<void> {
    const q = { endpoint: w.endpoint, start: Date.parse(w.start), end: Date.parse(w.end), max: this.settings.max, locations: this.settings.locations };
    const tracked = w.purpose !== 'repull';
    if (tracked) this.state.current = w;
    const windowIndex = stats.windows.length;
    this.hooks.progress?.({ window: w, windowIndex, records: stats.records });
    let page: Page;
    try {
      page = w.next ? await this.client.nextPage(w.next, signal) : await this.firstPageClamped(w, q, stats, signal);
    } catch (err) {
      // A saved next-page URL the server no longer accepts: start the window again (dedup drops what was sent).
      if (!w.next || !(err instanceof WebexApiError) || (err.kind !== 'request' && err.kind !== 'notFound')) throw err;
      this.warn(stats, `could not resume ${w.endpoint} ${w.start}…${w.end} from its saved page (${err.message}): fetching the window again`);
      w.next = null;
      page = await this.client.firstPage(q, signal);
    }
    for (;;) {
      const fresh: RawCdr[] = [];
      let dups = 0;
      for (const item of page.items) {
        if (!item || typeof item !== 'object') continue;
        const key = recordKey(item);
        if (this.seen.has(key)) {
          if (tracked) {
            dups++;
            continue;
          }
          this.seen.delete(key); // re-pull: emit again, refresh its place in the window
        }
        this.seen.add(key);
        fresh.push(item);
      }
      if (this.seen.size > this.settings.dedupCapacity) {
        // one iterator for the whole eviction: a fresh one per deletion would rescan the deleted slots
        const it = this.seen.values();
        for (let excess = this.seen.size - this.settings.dedupCapacity; excess > 0; excess--) this.seen.delete(it.next().value as string);
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
        if (tracked) await this.hooks.save(this.snapshot());
        this.hooks.progress?.({ window: w, windowIndex, records: stats.records });
        page = await this.client.nextPage(page.next, signal);
        continue;
      }
      break;
    }
    // Fully paged and emitted: now the cursor may move.
    if (w.purpose === 'incremental') this.state.streamCursor = w.end;
    if (w.purpose === 'backfill' && this.state.backfill) {
      const to = Date.parse(this.state.backfill.to);
      this.state.backfill = Date.parse(w.end) >= to ? null : { from: w.end, to: this.state.backfill.to };
    }
    if (tracked) this.state.current = null;
    stats.windows.push({ endpoint: w.endpoint, purpose: w.purpose, start: w.start, end: w.end, records: w.records, duplicates: w.duplicates, pages: w.pages });
    await this.hooks.save(this.snapshot());
  }
}

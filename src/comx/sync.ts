/**
 * Incremental Com.X fetching (specs/peers.md §0.1, §1.5; design.md §5).
 *
 * The PBX writes a CDR when the call ends but selects it by its start. The vendor's "last end → next
 * start" therefore misses every call that was still up at poll time. Each poll here asks for
 * [cursor − overlap, now − safety) and drops the lines already emitted (key: unique id + the whole
 * line, so a repeated unique id with other content is kept). The cursor moves only after the whole
 * window was emitted; what was emitted is remembered at once, so a failure half-way re-sends nothing.
 * The state is plain JSON (saved by the node across restarts and redeploys).
 */
import { rangeStamp } from './client';
import { cdrKey, type ComxCdr } from './index-file';

export interface SyncState {
  version: 1;
  /** End (exclusive, UTC ms) of the last window that was fully emitted; null before the first. */
  cursor: number | null;
  /** Keys of emitted lines with their start (UTC ms), to drop them when the overlap fetches them again. */
  seen: [string, number][];
  /** When the cursor last moved (ISO). */
  updatedAt?: string;
}

export interface SyncOptions {
  /** How far before the cursor each poll reaches again: at least the longest call. */
  overlapMs: number;
  /** How close to "now" a window may end (records of calls that just ended may not be written yet). */
  safetyMs: number;
  /** Where the very first window starts, before now. */
  firstLookbackMs: number;
  /** Most keys remembered; the oldest are forgotten beyond it. */
  maxSeen: number;
}

export const DEFAULT_SYNC: SyncOptions = {
  overlapMs: 4 * 3600_000,
  safetyMs: 2 * 60_000,
  firstLookbackMs: 24 * 3600_000,
  maxSeen: 200_000,
};

export interface SyncWindow {
  /** UTC ms */
  fromMs: number;
  toMs: number;
  /** The same bounds as the PBX's local `YYYYMMDDhhmm`. */
  start: string;
  end: string;
}

const HOUR = 3600_000;

export class ComxSync {
  private cursor: number | null;
  private seen = new Map<string, number>();
  private updatedAt?: string;
  /** Keys forgotten because of maxSeen (reported by the node). */
  forgotten = 0;

  constructor(readonly opts: SyncOptions = DEFAULT_SYNC, state?: SyncState | null) {
    this.cursor = state && state.version === 1 && typeof state.cursor === 'number' ? state.cursor : null;
    if (state && Array.isArray(state.seen)) for (const [k, t] of state.seen) if (typeof k === 'string' && typeof t === 'number') this.seen.set(k, t);
    this.updatedAt = state?.updatedAt;
  }

  get cursorMs(): number | null {
    return this.cursor;
  }

  get seenCount(): number {
    return this.seen.size;
  }

  /** The next window at `nowMs`, or null when it would be empty (polled again too soon). */
  window(nowMs: number, zone: string): SyncWindow | null {
    const toMs = Math.floor((nowMs - this.opts.safetyMs) / 60_000) * 60_000;
    const fromMs = Math.floor(((this.cursor ?? nowMs - this.opts.firstLookbackMs) - (this.cursor === null ? 0 : this.opts.overlapMs)) / 60_000) * 60_000;
    if (this.cursor !== null ? toMs <= this.cursor : toMs <= fromMs) return null;
    let start = rangeStamp(fromMs, zone);
    const end = rangeStamp(toMs, zone);
    // In a DST fall-back hour local time runs backwards: reach an hour further so the window is not empty.
    if (start >= end) start = rangeStamp(fromMs - HOUR, zone);
    return { fromMs, toMs, start, end };
  }

  isNew(cdr: Pick<ComxCdr, 'uniqueId' | 'raw'>): boolean {
    return !this.seen.has(cdrKey(cdr));
  }

  /** Remembers an emitted line at once (the cursor waits for the whole window). */
  markEmitted(cdr: Pick<ComxCdr, 'uniqueId' | 'raw' | 'start'>): void {
    this.seen.set(cdrKey(cdr), Date.parse(cdr.start));
    if (this.seen.size > this.opts.maxSeen) this.trim();
  }

  /** Whether a malformed line was reported already (it comes back with every overlapping poll). */
  isNewMalformed(raw: string): boolean {
    return !this.seen.has(cdrKey({ uniqueId: '!malformed', raw }));
  }

  markMalformed(raw: string, atMs: number): void {
    this.seen.set(cdrKey({ uniqueId: '!malformed', raw }), atMs);
  }

  /** The window was fully emitted: move the cursor and forget keys no later window can fetch again. */
  commit(w: SyncWindow, nowMs = Date.now()): void {
    this.cursor = Math.max(this.cursor ?? w.toMs, w.toMs);
    this.updatedAt = new Date(nowMs).toISOString();
    // the next window starts at cursor − overlap (an hour earlier in a fall-back); an hour more for ambiguous starts
    const horizon = this.cursor - this.opts.overlapMs - 2 * HOUR;
    for (const [k, t] of this.seen) if (t < horizon) this.seen.delete(k);
  }

  /** Forgets the cursor and keys (msg.reset). */
  reset(): void {
    this.cursor = null;
    this.seen.clear();
    this.updatedAt = undefined;
  }

  private trim(): void {
    const sorted = [...this.seen.entries()].sort((a, b) => a[1] - b[1]);
    const drop = sorted.length - Math.floor(this.opts.maxSeen * 0.9);
    for (let i = 0; i < drop; i++) this.seen.delete(sorted[i][0]);
    this.forgotten += Math.max(0, drop);
  }

  snapshot(): SyncState {
    return { version: 1, cursor: this.cursor, seen: [...this.seen.entries()], ...(this.updatedAt ? { updatedAt: this.updatedAt } : {}) };
  }
}

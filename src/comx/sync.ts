/**
 * Incremental Com.X fetching (specs/peers.md §0.1, §1.5; design.md §5).
 *
 * The PBX writes a CDR when the call ends but selects it by its start. The vendor's "last end → next
 * start" therefore misses every call that was still up at poll time. Each poll here asks for
 * [cursor − overlap, now − safety) and drops the lines already emitted (key: unique id + the whole
 * line, so a repeated unique id with other content is kept). The cursor moves only after the whole
 * window was emitted; what was emitted is remembered at once, so a failure half-way re-sends nothing.
 *
 * Every change returns a small journal entry (`SyncEntry`) for the node to record; `restore` checks a
 * saved snapshot's shape and replays the entries written after it, so a restart, a redeploy or a kill
 * continues exactly where the last recorded change left it.
 */
import { createHash } from 'node:crypto';
import { BoundedMap } from '../common/bounded-map';
import { expectShape } from '../common/persist';
import { rangeStamp } from './client';
import type { ComxCdr } from './index-file';

export interface SyncState {
  version: 1;
  /** End (exclusive, UTC ms) of the last window that was fully emitted; null before the first. */
  cursor: number | null;
  /** Keys of emitted lines with their start (UTC ms), oldest first, to drop them when the overlap fetches them again. */
  seen: [string, number][];
  /** When the cursor last moved (ISO). */
  updatedAt?: string;
}

/**
 * One recorded change:
 * - `e`: lines emitted (or malformed lines reported), as [key, start ms];
 * - `c`: a window was fully emitted, the cursor moves to its end (never back);
 * - `s`: the cursor was set (msg.cursor, or salvaged from a lost state), back or forward;
 * - `r`: everything forgotten (msg.reset).
 */
export type SyncEntry =
  | { e: [string, number][] }
  | { c: number; at: string }
  | { s: number; at: string }
  | { r: 1 };

export interface SyncOptions {
  /** How far before the cursor each poll reaches again: at least the longest call. */
  overlapMs: number;
  /** How close to "now" a window may end (records of calls that just ended may not be written yet). */
  safetyMs: number;
  /** Where the very first window starts, before now. */
  firstLookbackMs: number;
  /** Most keys remembered; the least recently emitted are forgotten beyond it. */
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

/** The dedup key of an index line: the unique id and the full line, so repeated ids with other content stay distinct. */
export function cdrKey(cdr: Pick<ComxCdr, 'uniqueId' | 'raw'>): string {
  return createHash('sha1').update(`${cdr.uniqueId}|${cdr.raw}`).digest('base64').slice(0, 27);
}

/** A number that is a time a Date can hold (UTC ms). */
export const isInstant = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(new Date(v).getTime());

export class ComxSync {
  private cursor: number | null = null;
  private readonly seen: BoundedMap<string, number>;
  private updatedAt?: string;
  /** Keys forgotten because of maxSeen. */
  forgotten = 0;

  constructor(readonly opts: SyncOptions = DEFAULT_SYNC) {
    this.seen = new BoundedMap<string, number>({ max: Math.max(1, opts.maxSeen), onEvict: () => this.forgotten++ });
  }

  /**
   * The state saved by `snapshot()` (undefined: none yet) with the journal entries recorded after it.
   * Throws StateShapeError when either is not what this class wrote.
   */
  static restore(saved: unknown, journal: readonly unknown[], opts: SyncOptions = DEFAULT_SYNC): ComxSync {
    const sync = new ComxSync(opts);
    if (saved !== undefined && saved !== null) {
      const st = saved as Record<string, unknown>;
      expectShape(typeof st === 'object' && !Array.isArray(st) && st.version === 1, 'not a comx-cdr-fetch state (version 1)');
      expectShape(st.cursor === null || isInstant(st.cursor), 'cursor is neither a time (ms) nor null');
      expectShape(st.updatedAt === undefined || typeof st.updatedAt === 'string', 'updatedAt is not a text');
      sync.cursor = st.cursor as number | null;
      sync.updatedAt = st.updatedAt as string | undefined;
      try {
        sync.seen.restore(st.seen, (k, t) => {
          expectShape(typeof k === 'string' && isInstant(t), 'a seen entry is not [key, start ms]');
          return [k, t];
        });
      } catch (err) {
        expectShape(false, `seen: ${(err as Error).message}`);
      }
    }
    for (const entry of journal) sync.replay(entry);
    sync.forgotten = 0;
    return sync;
  }

  /** Applies one recorded change (the journal after a restart). */
  replay(entry: unknown): void {
    const e = entry as Record<string, unknown>;
    expectShape(e !== null && typeof e === 'object', 'a journal entry is not an object');
    if (Array.isArray(e.e)) {
      for (const item of e.e as unknown[]) {
        expectShape(Array.isArray(item) && typeof item[0] === 'string' && isInstant(item[1]), 'a journal key is not [key, start ms]');
        this.seen.set(item[0] as string, item[1] as number);
      }
    } else if (isInstant(e.c) && typeof e.at === 'string') {
      this.moveCursor(e.c, e.at);
    } else if (isInstant(e.s) && typeof e.at === 'string') {
      this.cursor = e.s;
      this.updatedAt = e.at;
    } else {
      expectShape(e.r === 1 && Object.keys(e).length === 1, 'not a comx-cdr-fetch journal entry (e, c, s or r)');
      this.clear();
    }
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

  /** Remembers emitted lines at once (the cursor waits for the whole window). */
  markEmitted(cdrs: readonly Pick<ComxCdr, 'uniqueId' | 'raw' | 'start'>[]): SyncEntry {
    const keys: [string, number][] = cdrs.map((cdr) => [cdrKey(cdr), Date.parse(cdr.start)]);
    for (const [k, t] of keys) this.seen.set(k, t);
    return { e: keys };
  }

  /** Whether a malformed line was reported already (it comes back with every overlapping poll). */
  isNewMalformed(raw: string): boolean {
    return !this.seen.has(cdrKey({ uniqueId: '!malformed', raw }));
  }

  markMalformed(raw: string, atMs: number): SyncEntry {
    const key = cdrKey({ uniqueId: '!malformed', raw });
    this.seen.set(key, atMs);
    return { e: [[key, atMs]] };
  }

  /** The window was fully emitted: move the cursor and forget keys no later window can fetch again. */
  commit(w: SyncWindow, nowMs = Date.now()): SyncEntry {
    const at = new Date(nowMs).toISOString();
    this.moveCursor(w.toMs, at);
    return { c: w.toMs, at };
  }

  /** Sets the cursor where the user says (msg.cursor) or where a lost state showed it; keys stay. */
  setCursor(ms: number, nowMs = Date.now()): SyncEntry {
    const at = new Date(nowMs).toISOString();
    this.cursor = ms;
    this.updatedAt = at;
    return { s: ms, at };
  }

  /** Forgets the cursor and keys (msg.reset). */
  reset(): SyncEntry {
    this.clear();
    return { r: 1 };
  }

  private clear(): void {
    this.cursor = null;
    this.seen.clear();
    this.updatedAt = undefined;
  }

  private moveCursor(toMs: number, at: string): void {
    this.cursor = Math.max(this.cursor ?? toMs, toMs);
    this.updatedAt = at;
    // the next window starts at cursor − overlap (an hour earlier in a fall-back); an hour more for ambiguous starts
    const horizon = this.cursor - this.opts.overlapMs - 2 * HOUR;
    this.seen.deleteWhere((t) => t < horizon);
  }

  snapshot(): SyncState {
    const seen: [string, number][] = [];
    for (const [k, t] of this.seen.entries()) seen.push([k, t]);
    return { version: 1, cursor: this.cursor, seen, ...(this.updatedAt ? { updatedAt: this.updatedAt } : {}) };
  }
}

/**
 * What a CMS receiver must remember between POSTs (specs/cms.md §4 R5–R8):
 * which (session, recordIndex) pairs it already delivered, and each sender's sequence,
 * so resends are dropped, restarts and losses are reported. Pure and serialisable.
 */
import type { CmsRecord } from './parse';

/** Closed ranges [lo, hi] of delivered recordIndex values, sorted, per session. */
type Ranges = Array<[number, number]>;

export interface ReceiverState {
  version: 1;
  /** session → delivered ranges; insertion order = age, the oldest session is evicted first. */
  seen: Array<[string, Ranges]>;
  /** sender key (callBridge, else remote address) → last session and recordIndex. */
  senders: Array<[string, { session: string; lastIndex: number | null }]>;
}

export type ReceiverWarning =
  | { kind: 'recordsMissing'; count: number; session: string | null; recordIndex: number | null; sender: string }
  | { kind: 'sessionChanged'; previousSession: string; session: string; sender: string }
  | { kind: 'sequenceGap'; session: string; expected: number; received: number; sender: string };

export interface Limits {
  /** Sessions remembered for deduplication (a session lasts from one Call Bridge start to the next). */
  maxSessions: number;
  /** Ranges kept per session; a long-running session is one range unless CMS skipped indexes. */
  maxRangesPerSession: number;
}

export const DEFAULT_LIMITS: Limits = { maxSessions: 64, maxRangesPerSession: 256 };

export class ReceiverTracker {
  private seen = new Map<string, Ranges>();
  private senders = new Map<string, { session: string; lastIndex: number | null }>();
  constructor(private readonly limits: Limits = DEFAULT_LIMITS, state?: ReceiverState) {
    if (state && state.version === 1) {
      for (const [s, r] of state.seen) this.seen.set(s, r.map(([a, b]) => [a, b]));
      for (const [k, v] of state.senders) this.senders.set(k, { ...v });
    }
  }

  /** True when this (session, recordIndex) was already delivered. Records without both are never duplicates. */
  isDuplicate(r: Pick<CmsRecord, 'session' | 'recordIndex'>): boolean {
    if (r.session === null || r.recordIndex === null) return false;
    const ranges = this.seen.get(r.session);
    if (!ranges) return false;
    const i = findRange(ranges, r.recordIndex);
    return i >= 0;
  }

  /**
   * Looks at one POST's records in document order before delivery: drops those already delivered (a
   * resend) and says what must be reported (lost records, a Call Bridge restart, a gap in the sequence).
   * Changes nothing: call `commit` with `fresh` once those records were sent on.
   */
  review(records: readonly CmsRecord[], remote: string): { fresh: CmsRecord[]; duplicates: number; warnings: ReceiverWarning[] } {
    const fresh: CmsRecord[] = [];
    const warnings: ReceiverWarning[] = [];
    const view = new Map<string, { session: string; lastIndex: number | null }>();
    const inBatch = new Set<string>();
    let duplicates = 0;
    for (const r of records) {
      if (r.session !== null && r.recordIndex !== null) {
        const key = `${r.session}\u0000${r.recordIndex}`;
        if (this.isDuplicate(r) || inBatch.has(key)) {
          duplicates++;
          continue;
        }
        inBatch.add(key);
      }
      const sender = r.callBridge ?? remote;
      if (r.numPrecedingRecordsMissing > 0) {
        warnings.push({ kind: 'recordsMissing', count: r.numPrecedingRecordsMissing, session: r.session, recordIndex: r.recordIndex, sender });
      }
      fresh.push(r);
      if (r.session === null) continue;
      const last = view.get(sender) ?? this.senders.get(sender);
      if (last && last.session !== r.session) {
        warnings.push({ kind: 'sessionChanged', previousSession: last.session, session: r.session, sender });
      } else if (last && last.lastIndex !== null && r.recordIndex !== null && r.recordIndex > last.lastIndex + 1) {
        warnings.push({ kind: 'sequenceGap', session: r.session, expected: last.lastIndex + 1, received: r.recordIndex, sender });
      }
      view.set(sender, nextSequence(last, r));
    }
    return { fresh, duplicates, warnings };
  }

  /** The records were sent on: from now on they are duplicates, and each sender's sequence moves on. */
  commit(records: readonly CmsRecord[], remote: string): void {
    for (const r of records) this.markDelivered(r, remote);
  }

  private markDelivered(r: CmsRecord, remote: string): void {
    if (r.session === null) return;
    const sender = r.callBridge ?? remote;
    this.senders.set(sender, nextSequence(this.senders.get(sender), r));
    if (r.recordIndex === null) return;
    let ranges = this.seen.get(r.session);
    if (!ranges) {
      ranges = [];
      this.seen.set(r.session, ranges);
      while (this.seen.size > this.limits.maxSessions) this.seen.delete(this.seen.keys().next().value as string);
    } else {
      // refresh the session's age
      this.seen.delete(r.session);
      this.seen.set(r.session, ranges);
    }
    addToRanges(ranges, r.recordIndex);
    // Keep the newest indexes: drop the lowest ranges, which a resend can no longer reach.
    if (ranges.length > this.limits.maxRangesPerSession) ranges.splice(0, ranges.length - this.limits.maxRangesPerSession);
  }

  snapshot(): ReceiverState {
    return {
      version: 1,
      seen: [...this.seen].map(([s, r]) => [s, r.map(([a, b]) => [a, b] as [number, number])]),
      senders: [...this.senders].map(([k, v]) => [k, { ...v }]),
    };
  }
}

function nextSequence(last: { session: string; lastIndex: number | null } | undefined, r: CmsRecord): { session: string; lastIndex: number | null } {
  const session = r.session as string;
  if (!last || last.session !== session) return { session, lastIndex: r.recordIndex };
  if (r.recordIndex !== null && (last.lastIndex === null || r.recordIndex > last.lastIndex)) return { session, lastIndex: r.recordIndex };
  return last;
}

/** Index of the range holding n, or -(insertion point) - 1. */
function findRange(ranges: Ranges, n: number): number {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = ranges[mid];
    if (n < a) hi = mid - 1;
    else if (n > b) lo = mid + 1;
    else return mid;
  }
  return -lo - 1;
}

function addToRanges(ranges: Ranges, n: number): void {
  // Fast path: the next index in sequence extends the last range.
  const last = ranges[ranges.length - 1];
  if (last && n === last[1] + 1) {
    last[1] = n;
    return;
  }
  const i = findRange(ranges, n);
  if (i >= 0) return;
  const at = -i - 1;
  const prev = ranges[at - 1];
  const next = ranges[at];
  const joinsPrev = prev !== undefined && prev[1] + 1 === n;
  const joinsNext = next !== undefined && next[0] - 1 === n;
  if (joinsPrev && joinsNext) {
    prev[1] = next[1];
    ranges.splice(at, 1);
  } else if (joinsPrev) prev[1] = n;
  else if (joinsNext) next[0] = n;
  else ranges.splice(at, 0, [n, n]);
}

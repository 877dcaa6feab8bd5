/**
 * What a CMS receiver must remember between POSTs (specs/cms.md §4 R5–R8):
 * which (session, recordIndex) pairs it already delivered, and each sender's sequence,
 * so resends are dropped, restarts and losses are reported. Pure and serialisable.
 *
 * Everything is bounded (BoundedMap): the sessions remembered are capped per sending address, so a
 * client that posts many made-up sessions only pushes out its own, never a real call bridge's.
 */
import type { CmsRecord } from './parse';
import { BoundedMap, type BoundedEntry } from '../common/bounded-map';
import { expectShape } from '../common/persist';

/** Closed ranges [lo, hi] of delivered recordIndex values, sorted, per session. */
type Ranges = Array<[number, number]>;

type Sequence = { session: string; lastIndex: number | null };

export interface ReceiverState {
  version: 2;
  /** sending address → its sessions (session → delivered ranges), each list least recently used first. */
  owners: BoundedEntry<string, BoundedEntry<string, Ranges>[]>[];
  /** sender key (callBridge, else remote address) → last session and recordIndex. */
  senders: BoundedEntry<string, Sequence>[];
}

/** The records of one acknowledged POST, as written to the journal before the answer. */
export interface CommitEntry {
  /** remote address */
  r: string;
  /** [session, recordIndex, callBridge] per record */
  k: Array<[string | null, number | null, string | null]>;
}

export type ReceiverWarning =
  | { kind: 'recordsMissing'; count: number; session: string | null; recordIndex: number | null; sender: string }
  | { kind: 'sessionChanged'; previousSession: string; session: string; sender: string }
  | { kind: 'sequenceGap'; session: string; expected: number; received: number; sender: string };

export interface Limits {
  /** Sessions remembered per sending address (a session lasts from one Call Bridge start to the next). */
  maxSessionsPerSender: number;
  /** Sending addresses remembered. */
  maxSenders: number;
  /** Ranges kept per session; a long-running session is one range unless CMS skipped indexes. */
  maxRangesPerSession: number;
}

export const DEFAULT_LIMITS: Limits = { maxSessionsPerSender: 16, maxSenders: 256, maxRangesPerSession: 256 };

type CommitItem = Pick<CmsRecord, 'session' | 'recordIndex' | 'callBridge'>;

export class ReceiverTracker {
  /** remote address → (session → ranges) */
  private readonly owners: BoundedMap<string, BoundedMap<string, Ranges>>;
  /** session → the address that owns its entry, for lookups by session */
  private readonly ownerOf = new Map<string, string>();
  private readonly senders: BoundedMap<string, Sequence>;

  constructor(private readonly limits: Limits = DEFAULT_LIMITS) {
    this.owners = new BoundedMap({
      max: limits.maxSenders,
      onEvict: (owner, sessions) => {
        for (const s of sessions.keys()) if (this.ownerOf.get(s) === owner) this.ownerOf.delete(s);
      },
    });
    this.senders = new BoundedMap({ max: limits.maxSenders * 4 });
  }

  /** Checks a saved state (version 1 or 2) and loads it; throws StateShapeError on anything else. */
  static restore(saved: unknown, limits: Limits = DEFAULT_LIMITS): ReceiverTracker {
    const t = new ReceiverTracker(limits);
    if (saved === undefined || saved === null) return t;
    const st = saved as Record<string, unknown>;
    expectShape(typeof st === 'object' && (st.version === 1 || st.version === 2), 'not a cms-cdr-in state (version 1 or 2)');
    expectShape(Array.isArray(st.senders), 'senders is not a list');
    const seq = (v: unknown): Sequence => {
      const q = v as Sequence;
      expectShape(q && typeof q.session === 'string' && (q.lastIndex === null || Number.isInteger(q.lastIndex)), 'a sender entry is not {session, lastIndex}');
      return { session: q.session, lastIndex: q.lastIndex };
    };
    if (st.version === 1) {
      // version 1 kept sessions without their sender: they are kept under one unknown sender
      expectShape(Array.isArray(st.seen), 'seen is not a list');
      for (const e of st.seen as unknown[]) {
        expectShape(Array.isArray(e) && typeof e[0] === 'string', 'a seen entry is not [session, ranges]');
        t.sessionsOf('').set(e[0], checkRanges(e[1]));
        t.ownerOf.set(e[0], '');
      }
      for (const e of st.senders as unknown[]) {
        expectShape(Array.isArray(e) && typeof e[0] === 'string', 'a sender entry is not [key, sequence]');
        t.senders.set(e[0], seq(e[1]));
      }
      return t;
    }
    expectShape(Array.isArray(st.owners), 'owners is not a list');
    t.owners.restore(st.owners, (owner, sessions) => {
      expectShape(typeof owner === 'string', 'an owner is not a text');
      const map = t.newSessions();
      map.restore(sessions, (session, ranges) => {
        expectShape(typeof session === 'string', 'a session is not a text');
        t.ownerOf.set(session, owner);
        return [session, checkRanges(ranges)];
      });
      return [owner, map];
    });
    t.senders.restore(st.senders, (k, v) => {
      expectShape(typeof k === 'string', 'a sender key is not a text');
      return [k, seq(v)];
    });
    return t;
  }

  private newSessions(): BoundedMap<string, Ranges> {
    return new BoundedMap<string, Ranges>({
      max: this.limits.maxSessionsPerSender,
      onEvict: (session) => this.ownerOf.delete(session),
    });
  }

  private sessionsOf(owner: string): BoundedMap<string, Ranges> {
    let map = this.owners.get(owner);
    if (!map) {
      map = this.newSessions();
      this.owners.set(owner, map);
    }
    return map;
  }

  private rangesOf(session: string): Ranges | undefined {
    const owner = this.ownerOf.get(session);
    return owner === undefined ? undefined : this.owners.get(owner)?.get(session);
  }

  /** True when this (session, recordIndex) was already delivered. Records without both are never duplicates. */
  isDuplicate(r: Pick<CmsRecord, 'session' | 'recordIndex'>): boolean {
    if (r.session === null || r.recordIndex === null) return false;
    const ranges = this.rangesOf(r.session);
    return ranges !== undefined && findRange(ranges, r.recordIndex) >= 0;
  }

  /**
   * Looks at one POST's records in document order before delivery: drops those already delivered (a
   * resend) and says what must be reported (lost records, a Call Bridge restart, a gap in the sequence).
   * Changes nothing: call `commit` with `fresh` once those records were sent on.
   */
  review(records: readonly CmsRecord[], remote: string): { fresh: CmsRecord[]; duplicates: number; warnings: ReceiverWarning[] } {
    const fresh: CmsRecord[] = [];
    const warnings: ReceiverWarning[] = [];
    const view = new Map<string, Sequence>();
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

  /**
   * The records were sent on: from now on they are duplicates, and each sender's sequence moves on.
   * Returns the journal entry that replays this commit after a restart.
   */
  commit(records: readonly CommitItem[], remote: string): CommitEntry {
    const k: CommitEntry['k'] = [];
    for (const r of records) {
      this.markDelivered(r, remote);
      k.push([r.session, r.recordIndex, r.callBridge]);
    }
    return { r: remote, k };
  }

  /** Applies a journal entry written by commit (checked: a damaged entry throws StateShapeError). */
  replay(entry: unknown): void {
    const e = entry as CommitEntry;
    expectShape(e && typeof e.r === 'string' && Array.isArray(e.k), 'a journal entry is not {r, k}');
    for (const item of e.k) {
      expectShape(Array.isArray(item) && (item[0] === null || typeof item[0] === 'string') && (item[1] === null || Number.isInteger(item[1])) && (item[2] === null || typeof item[2] === 'string'), 'a journal item is not [session, index, callBridge]');
      this.markDelivered({ session: item[0], recordIndex: item[1], callBridge: item[2] }, e.r);
    }
  }

  private markDelivered(r: CommitItem, remote: string): void {
    if (r.session === null) return;
    const sender = r.callBridge ?? remote;
    this.senders.set(sender, nextSequence(this.senders.get(sender), r));
    if (r.recordIndex === null) return;
    let owner = this.ownerOf.get(r.session);
    if (owner === undefined) {
      owner = remote;
      this.ownerOf.set(r.session, owner);
    }
    const sessions = this.sessionsOf(owner);
    let ranges = sessions.get(r.session);
    if (!ranges) ranges = [];
    sessions.set(r.session, ranges); // newest session of its sender
    this.owners.touch(owner);
    addToRanges(ranges, r.recordIndex);
    // Keep the newest indexes: drop the lowest ranges, which a resend can no longer reach.
    if (ranges.length > this.limits.maxRangesPerSession) ranges.splice(0, ranges.length - this.limits.maxRangesPerSession);
  }

  /** Sessions remembered in all (for status and tests). */
  get sessionCount(): number {
    return this.ownerOf.size;
  }

  snapshot(): ReceiverState {
    return {
      version: 2,
      owners: this.owners.snapshot().map(([o, sessions, t]) => [o, sessions.snapshot((r) => r.map(([a, b]) => [a, b] as [number, number])), t]),
      senders: this.senders.snapshot((v) => ({ ...v })),
    };
  }
}

function checkRanges(v: unknown): Ranges {
  expectShape(Array.isArray(v), 'ranges is not a list');
  const ranges = (v as unknown[]).map((r) => {
    expectShape(Array.isArray(r) && r.length === 2 && Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] <= r[1], 'a range is not [lo, hi]');
    return [r[0], r[1]] as [number, number];
  });
  // the lookups are binary searches: sorted, non-overlapping
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) expectShape(ranges[i][0] > ranges[i - 1][1], 'ranges overlap');
  return ranges;
}

function nextSequence(last: Sequence | undefined, r: CommitItem): Sequence {
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

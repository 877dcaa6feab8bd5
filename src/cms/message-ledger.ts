/**
 * What cms-call-message keeps per call until CMS has taken it (specs/cms.md §6, §7.2): the message that
 * should be shown and the one the server last accepted. A message the server did not take (an untrusted
 * certificate, 401, a bridge that kept failing) stays here and is sent again, with backoff, until the
 * two agree; a newer message for the call replaces the one wanted; a call that ended (404 "call not
 * found") or a refusal that another try cannot change drops it. Cisco's sample PUTs on every change and
 * so recovers by itself; a node that sends only on changes must remember.
 *
 * Pure: no timers, no I/O. Each change gives the journal entry that records it; the state is plain JSON.
 */
import { BoundedMap, type BoundedEntry } from '../common/bounded-map';
import { expectShape } from '../common/persist';
import type { CallMessage, CmsApiErrorCode } from './api';

export interface LedgerEntry {
  /** What should be shown in the call. */
  desired: CallMessage;
  /** What the server last accepted for the call while something else was wanted; null when unknown. */
  accepted: CallMessage | null;
  /** Tries that failed since the message was wanted. */
  failures: number;
  /** The last failure, in words. */
  error: string | null;
}

/** A journal line: the call's entry as it is now, or null when it was dropped. */
export interface LedgerChange {
  t: number;
  c: string;
  p: LedgerEntry | null;
}

export interface LedgerOptions {
  /** Most calls kept; beyond it the call wanted longest ago is dropped. */
  max: number;
  /** A message wanted longer ago than this is dropped (the meeting is over). */
  maxAgeMs: number;
  /** First wait before a failed message is sent again, doubled after each failure... */
  retryMinMs: number;
  /** ...up to this. */
  retryMaxMs: number;
}

export const DEFAULT_LEDGER_OPTIONS: LedgerOptions = { max: 10_000, maxAgeMs: 24 * 3600_000, retryMinMs: 5000, retryMaxMs: 300_000 };

/** Failures that another try cannot change: the call is gone (404), or CMS refuses the request itself. */
const FINAL: ReadonlySet<CmsApiErrorCode | string> = new Set(['notFound', 'badRequest', 'config']);

/** Two messages show the same: every clear is the same, whatever its position. */
export function sameMessage(a: CallMessage | null, b: CallMessage | null): boolean {
  if (!a || !b) return a === b;
  if (a.text === '' || b.text === '') return a.text === b.text;
  return a.text === b.text && (a.position ?? 'bottom') === (b.position ?? 'bottom') && String(a.duration ?? 'permanent') === String(b.duration ?? 'permanent');
}

export class CallMessageLedger {
  readonly opts: LedgerOptions;
  private readonly entries: BoundedMap<string, LedgerEntry>;
  /** When each call is due to be tried again (ms; in memory: after a restart every call is due). */
  private readonly dueAt = new Map<string, number>();

  constructor(opts: Partial<LedgerOptions> = {}) {
    this.opts = { ...DEFAULT_LEDGER_OPTIONS, ...opts };
    this.entries = new BoundedMap<string, LedgerEntry>({ max: this.opts.max, maxAgeMs: this.opts.maxAgeMs, onEvict: (k) => this.dueAt.delete(k) });
  }

  /** A ledger from a saved snapshot and the journal after it, checked (StateShapeError otherwise). */
  static fromSaved(opts: Partial<LedgerOptions>, saved: unknown, journal: unknown[]): CallMessageLedger {
    const l = new CallMessageLedger(opts);
    if (saved !== undefined && saved !== null) {
      const s = saved as { version?: unknown; calls?: unknown };
      expectShape(typeof s === 'object' && s.version === 1, 'not a cms-call-message state (version 1)');
      try {
        l.entries.restore(s.calls, (k, v) => [checkId(k), checkEntry(v)]);
      } catch (err) {
        expectShape(false, `calls: ${(err as Error).message}`);
      }
    }
    for (const e of journal) {
      const j = e as LedgerChange;
      expectShape(j && typeof j === 'object' && typeof j.t === 'number' && typeof j.c === 'string', 'a cms-call-message journal entry has no time or call');
      if (j.p === null) l.entries.delete(j.c);
      else l.entries.set(checkId(j.c), checkEntry(j.p), j.t);
    }
    const now = Date.now();
    for (const id of l.entries.keys()) l.dueAt.set(id, now + l.opts.retryMinMs);
    return l;
  }

  snapshot(): { version: 1; calls: BoundedEntry<string, LedgerEntry>[] } {
    return { version: 1, calls: this.entries.snapshot((e) => ({ ...e })) };
  }

  get(callId: string): LedgerEntry | undefined {
    return this.entries.get(callId);
  }

  /** Calls whose wanted message the server has not taken yet. */
  get size(): number {
    return this.entries.size;
  }

  /** The last failure of any call waiting, for the status. */
  lastError(): string | null {
    let last: string | null = null;
    for (const e of this.entries.values()) if (e.error) last = e.error;
    return last;
  }

  /** A message is wanted for a call (it replaces what was wanted before). */
  want(callId: string, message: CallMessage, now: number): LedgerChange {
    const before = this.entries.get(callId);
    const entry: LedgerEntry = { desired: message, accepted: before?.accepted ?? null, failures: 0, error: null };
    this.entries.set(callId, entry, now);
    this.dueAt.delete(callId); // the message is being sent now
    return { t: now, c: callId, p: { ...entry } };
  }

  /** The server took `message`: done when it is the one wanted. Null when nothing changed. */
  accepted(callId: string, message: CallMessage, now: number): LedgerChange | null {
    const entry = this.entries.get(callId);
    if (!entry) return null;
    this.dueAt.delete(callId);
    if (sameMessage(entry.desired, message)) {
      this.entries.delete(callId);
      return { t: now, c: callId, p: null };
    }
    // an older message went through: the newer one is still to be sent (it is queued, or due soon)
    entry.accepted = message;
    this.dueAt.set(callId, now);
    return { t: now, c: callId, p: { ...entry } };
  }

  /**
   * Sending `message` failed with `code`. `final`: this message is not sent again (the call ended, or
   * another try cannot help); otherwise the call is due again after the backoff.
   */
  failed(callId: string, message: CallMessage, code: string | null, error: string, now: number): { change: LedgerChange | null; final: boolean } {
    const entry = this.entries.get(callId);
    const final = code !== null && FINAL.has(code);
    // a newer message is wanted and on its way: it is what counts now (only a 404 says the call is gone)
    if (!entry || (code !== 'notFound' && !sameMessage(entry.desired, message))) return { change: null, final };
    if (final) {
      this.dueAt.delete(callId);
      this.entries.delete(callId);
      return { change: { t: now, c: callId, p: null }, final };
    }
    entry.failures++;
    entry.error = error;
    this.dueAt.set(callId, now + this.delay(entry.failures));
    return { change: { t: now, c: callId, p: { ...entry } }, final };
  }

  /** The wait after `failures` failures: retryMin doubled each time, capped at retryMax. */
  delay(failures: number): number {
    return Math.min(this.opts.retryMaxMs, this.opts.retryMinMs * 2 ** Math.max(0, failures - 1));
  }

  /** Calls due to be tried again at `now`; each is taken off the schedule until it is tried. */
  takeDue(now: number): string[] {
    const out: string[] = [];
    for (const [id, at] of this.dueAt) {
      if (at <= now && this.entries.has(id)) out.push(id);
      if (!this.entries.has(id)) this.dueAt.delete(id);
    }
    for (const id of out) this.dueAt.delete(id);
    return out;
  }

  /** When the next call is due (ms), or null. */
  nextDue(): number | null {
    let next: number | null = null;
    for (const at of this.dueAt.values()) if (next === null || at < next) next = at;
    return next;
  }

  /** The server answers again: every call waiting is tried at once. */
  retryAllNow(now: number): void {
    for (const id of this.entries.keys()) this.dueAt.set(id, now);
  }

  /** Drops messages wanted longer ago than maxAgeMs; returns the changes. */
  prune(now: number): LedgerChange[] {
    const before = new Set(this.entries.keys());
    this.entries.prune(now);
    const out: LedgerChange[] = [];
    for (const id of before) {
      if (!this.entries.has(id)) {
        this.dueAt.delete(id);
        out.push({ t: now, c: id, p: null });
      }
    }
    return out;
  }
}

const POSITIONS = new Set(['top', 'middle', 'bottom']);

function checkId(v: unknown): string {
  expectShape(typeof v === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(v), 'a call id is not one');
  return v;
}

function checkMessage(v: unknown): CallMessage {
  const m = v as CallMessage;
  expectShape(m && typeof m === 'object' && typeof m.text === 'string', 'a message has no text');
  expectShape(m.position === undefined || POSITIONS.has(m.position), 'a message position is not top, middle or bottom');
  expectShape(m.duration === undefined || m.duration === 'permanent' || (typeof m.duration === 'number' && Number.isInteger(m.duration) && m.duration >= 0), 'a message duration is not permanent or seconds');
  return { text: m.text, position: m.position, duration: m.duration };
}

function checkEntry(v: unknown): LedgerEntry {
  const e = v as LedgerEntry;
  expectShape(e && typeof e === 'object', 'a call entry is not an object');
  expectShape(typeof e.failures === 'number' && Number.isFinite(e.failures) && e.failures >= 0, 'a call entry has no failure count');
  expectShape(e.error === null || typeof e.error === 'string', 'a call entry error is not text');
  return { desired: checkMessage(e.desired), accepted: e.accepted === null ? null : checkMessage(e.accepted), failures: e.failures, error: e.error };
}

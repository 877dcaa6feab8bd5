/** Pieces every mapper shares: empty values, UTC text, durations and their invariants. */
import type { CdrRecord } from './schema';
import { NormalizeError } from './schema';
import { isoMs } from './iso';

export { isoMs };

/** `""`, `"NA"`, `"na"`, null and undefined become null; anything else becomes its text. */
export function text(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') {
    const t = v.trim();
    return t === '' || t === 'NA' || t === 'na' ? null : t;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/** Milliseconds of a UTC ISO time, or null. */
export function ms(iso: string | null): number | null {
  if (iso === null) return null;
  const fast = isoMs(iso);
  if (!Number.isNaN(fast)) return fast;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

const dayPrefix = new Map<number, string>();
/** UTC ISO 8601 with Z; milliseconds kept only when the source had them. The date part is cached per day. */
export function iso(t: number, withMs = false): string {
  const day = Math.floor(t / 86_400_000);
  let prefix = dayPrefix.get(day);
  if (prefix === undefined) {
    if (dayPrefix.size > 20_000) dayPrefix.clear();
    prefix = new Date(day * 86_400_000).toISOString().slice(0, 11); // 2026-01-05T
    dayPrefix.set(day, prefix);
  }
  let rest = t - day * 86_400_000;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  const milli = rest - sec * 1000;
  const base = `${prefix}${h < 10 ? '0' : ''}${h}:${m < 10 ? '0' : ''}${m}:${sec < 10 ? '0' : ''}${sec}`;
  if (!withMs || milli === 0) return `${base}Z`;
  return `${base}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/** A non-negative integer of seconds from a number or digit string, else null. */
export function seconds(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : null;
  if (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.round(Number(v));
  return null;
}

/**
 * Makes durations consistent: integers >= 0, billable <= duration (clamped and flagged), unanswered
 * legs bill 0, ring = answer − start when both are known.
 */
export function settleDurations(r: CdrRecord): void {
  r.duration_s = Math.max(0, Math.round(r.duration_s));
  r.billable_s = r.answered ? Math.max(0, Math.round(r.billable_s)) : 0;
  if (r.billable_s > r.duration_s) {
    r.billable_s = r.duration_s;
    r.flags.push('billable_clamped');
  }
  if (!r.answered) r.answer_time = null;
  const s = ms(r.start_time), e = ms(r.end_time);
  let a = ms(r.answer_time);
  if (a !== null && ((s !== null && a < s) || (e !== null && a > e))) {
    // a source answer time outside its own start..end cannot be placed: dropped, never bent
    r.answer_time = null;
    a = null;
    r.flags.push('answer_time_out_of_range');
  }
  if (r.ring_s === null && s !== null && a !== null) {
    r.ring_s = Math.max(0, Math.round((a - s) / 1000));
    if (!r.derived.includes('ring_s')) r.derived.push('ring_s');
  }
}

export function required(v: string | null, what: string): string {
  if (v === null || v === '') throw new NormalizeError(`${what} is missing`);
  return v;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

import { parseLocal, zonedToUtc, type LocalParts } from '../common/time';

export interface LocalRead {
  ms: number;
  ambiguous: boolean;
  /** For an ambiguous time: the later of the two instants. */
  laterMs?: number;
  nonexistent: boolean;
}

const hourOffsets = new Map<string, number | null>();
const wallMs = (p: LocalParts) => Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);

/**
 * A zone-less local time (`yyyy-MM-dd HH:mm:ss`) in `zone` → UTC ms, saying when DST made it ambiguous
 * (the earlier instant is taken) or impossible. The offset is remembered per zone and local hour when
 * no change falls inside that hour; such hours are converted one by one.
 */
export function readLocal(textIn: string, zone: string): LocalRead | null {
  const p = parseLocal(textIn);
  if (!p) return null;
  const key = `${zone}|${p.year}-${p.month}-${p.day}T${p.hour}`;
  let off = hourOffsets.get(key);
  if (off === undefined) {
    const first = zonedToUtc({ ...p, minute: 0, second: 0 }, zone);
    const last = zonedToUtc({ ...p, minute: 59, second: 59 }, zone);
    const a = wallMs({ ...p, minute: 0, second: 0 }) - first.date.getTime();
    const b = wallMs({ ...p, minute: 59, second: 59 }) - last.date.getTime();
    off = first.ambiguous || first.nonexistent || last.ambiguous || last.nonexistent || a !== b ? null : a;
    if (hourOffsets.size > 50_000) hourOffsets.clear();
    hourOffsets.set(key, off);
  }
  if (off !== null) return { ms: wallMs(p) - off, ambiguous: false, nonexistent: false };
  const z = zonedToUtc(p, zone);
  return { ms: z.date.getTime(), ambiguous: z.ambiguous, laterMs: z.alternative?.getTime(), nonexistent: z.nonexistent };
}

/** Pieces every mapper shares: empty values, durations and their invariants (times: src/common/time.ts). */
import type { CdrRecord } from './schema';
import { NormalizeError } from './schema';
import { ms } from '../common/time';

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

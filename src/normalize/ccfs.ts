/**
 * CC-FS bill-file CDR rows (ccfs-callback-in, src/ccfs/bill-file.ts) → schema 1, one record per row
 * (device leg), keyed by call_id:call_id_num (specs/ccfs.md §6.3–6.5, peers.md §5.3).
 *
 * The rows' times were read in the tenant zone by the callback node. When cdr-normalize is given the
 * zone too, the original cells (row.raw) are read again with it, so a fall-back hour is flagged rather
 * than silently taken; without it the row's UTC values are used as they are.
 */
import { CDR_COLUMNS, type CdrRow } from '../ccfs/bill-file';
import { newRecord, NormalizeError, type CdrRecord, type Direction, type Outcome } from './schema';
import { cdrId } from './id';
import { isObject, settleDurations, text } from './common';
import { iso, ms, readLocal } from '../common/time';
import type { MapOptions } from './options';

/** CDR call_type codes (ccfs.md §6.5; in/out column of the zh table). */
const INBOUND = new Set([0, 1, 5, 13, 14, 46]);
const INTERNAL = new Set([6, 51, 52]);
const OUTBOUND = new Set([7, 8, 9, 10, 11, 12, 15, 16, 40, 41, 42, 43, 44, 45, 60, 61, 62, 63, 64]);

export function ccfsDirection(callType: number | null): Direction {
  if (callType === null) return 'unknown';
  if (INBOUND.has(callType)) return 'inbound';
  if (INTERNAL.has(callType)) return 'internal';
  if (OUTBOUND.has(callType)) return 'outbound';
  return 'unknown';
}

/** leave_reason (ccfs.md §6.5) → outcome of a leg that was not answered. */
const LEAVE: Record<string, Outcome> = {
  '2': 'no_answer', '3': 'failed', '4': 'cancelled', '5': 'no_answer', '20': 'busy', '22': 'failed', '23': 'failed',
  '24': 'failed', '26': 'no_answer', '27': 'rejected', '89': 'cancelled',
};

const TIME_COLS = ['call_begin', 'ack_begin', 'call_end'] as const;
const COL_INDEX: Record<string, number> = Object.fromEntries(CDR_COLUMNS.map((c, i) => [c, i]));

export interface CcfsMeta {
  accountId?: unknown;
  complete?: unknown;
}

export function mapCcfsRow(row: CdrRow, meta: CcfsMeta, opts: MapOptions): CdrRecord {
  if (!isObject(row) || !Array.isArray(row.raw)) throw new NormalizeError('CC-FS row without its cells (not from ccfs-callback-in)');
  const callId = text(row.call_id);
  if (callId === null) throw new NormalizeError('CC-FS row without call_id');
  const num = row.call_id_num;
  if (typeof num !== 'number') throw new NormalizeError(`CC-FS row of call ${callId} without call_id_num`);
  const instance = text(row.account_id) ?? text(meta.accountId) ?? opts.instance ?? null;
  if (instance === null) throw new NormalizeError(`CC-FS row of call ${callId} without account_id`);
  const recordId = `${callId}:${num}`;
  const r = newRecord('ccfs', instance, recordId, cdrId('ccfs', instance, recordId), opts.observedAt);
  r.call_id = callId;
  r.correlation_id = callId;
  const times: Record<string, string | null> = { call_begin: row.call_begin, ack_begin: row.ack_begin, call_end: row.call_end };
  if (opts.zone) {
    r.source_timezone = opts.zone;
    let beginMs: number | null = null;
    for (const col of TIME_COLS) {
      const cell = text(row.raw[COL_INDEX[col]]);
      if (cell === null) { times[col] = null; continue; }
      const got = readLocal(cell, opts.zone);
      if (!got) { times[col] = row[col]; continue; }
      // an ambiguous later time that would fall before the start can only be the second of the two
      const t: number = got.ambiguous && got.laterMs !== undefined && beginMs !== null && got.ms < beginMs ? got.laterMs : got.ms;
      if (col === 'call_begin') beginMs = t;
      times[col] = iso(t);
      const field = col === 'call_begin' ? 'start_time' : col === 'call_end' ? 'end_time' : 'answer_time';
      if (got.ambiguous) r.flags.push(`${field}_ambiguous`);
      if (got.nonexistent) r.flags.push(`${field}_nonexistent`);
      if (col === 'call_begin') r.source_local_start = cell;
    }
  } else {
    r.source_local_start = text(row.raw[COL_INDEX.call_begin]);
  }
  r.start_time = times.call_begin;
  r.end_time = times.call_end;
  if (r.start_time === null && r.end_time === null) throw new NormalizeError(`CC-FS row ${recordId} has neither call_begin nor call_end`);
  r.direction = ccfsDirection(row.call_type);
  r.direction_raw = row.call_type === null ? null : String(row.call_type);
  r.caller_number = text(row.caller_no);
  r.callee_number = text(row.callee_no);
  r.agent_id = text(row.agent_id);
  r.queue = text(row.current_skill_id) ?? text(row.skill_id);
  // an agent leg (device_type 2) with an acknowledgement phase was answered (ccfs.md §6.3, inferred)
  r.answered = row.device_type === 2 && (row.ack_begin !== null || row.ack_end !== null);
  const leave = text(row.leave_reason);
  r.outcome = r.answered ? 'answered' : (leave !== null ? LEAVE[leave] : undefined) ?? 'unknown';
  r.outcome_raw = [leave !== null ? `leave_reason=${leave}` : null, row.release_cause !== null && num === -1 ? `release_cause=${row.release_cause}` : null].filter(Boolean).join(';') || null;
  const s = ms(r.start_time), e = ms(r.end_time);
  if (s !== null && e !== null && e >= s) {
    r.duration_s = Math.round((e - s) / 1000);
    r.derived.push('duration_s');
  }
  if (r.answered) {
    r.answer_time = times.ack_begin;
    const a = ms(r.answer_time);
    if (a !== null && e !== null && (s === null || a >= s) && a <= e) {
      r.billable_s = Math.round((e - a) / 1000);
    } else {
      r.answer_time = null;
      r.billable_s = r.duration_s;
    }
    r.derived.push('answer_time', 'billable_s');
  }
  if (meta.complete === false) r.flags.push('call_incomplete');
  settleDurations(r);
  if (opts.keepRaw) r.raw = row.raw;
  return r;
}

/**
 * The common CDR record (design.md §4, specs/peers.md §5.2), schema_version "1": one record per call
 * leg as the source reports it, snake_case so a row maps straight onto a SQL table.
 */

import { isoMs } from '../common/time';

export const SCHEMA_VERSION = '1' as const;

export const SOURCE_TYPES = ['cms', 'comx', 'webex', 'ccfs'] as const;
export type SourceType = (typeof SOURCE_TYPES)[number];

export const DIRECTIONS = ['inbound', 'outbound', 'internal', 'unknown'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const OUTCOMES = ['answered', 'no_answer', 'busy', 'failed', 'cancelled', 'rejected', 'unknown'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface RecordingRef {
  ref: string;
  size_bytes: number | null;
  format: string | null;
  url: string | null;
}

/**
 * Flags say what a reader must know about a value:
 * - `start_time_ambiguous` (and `answer_/end_time_…`): the local time happened twice (DST fall-back);
 *   Com.X settles it by the epoch in its unique id when it can, else the earlier instant; CC-FS takes the earlier.
 * - `start_time_nonexistent`: the local time fell in a spring-forward gap; read with the offset before it.
 * - `leg_start_missing` (CMS): the leg's callLegStart was never seen; start derived from end − duration.
 * - `leg_end_missing` (CMS): emitted when the state limit pushed an unfinished leg out.
 * - `billable_clamped`: the source's billable seconds exceeded its duration; billable_s was cut to duration_s.
 * - `answer_time_out_of_range`: the source's answer time lay outside its start..end; answer_time set to null.
 * - `call_incomplete` (CC-FS): the call's last (-1) row had not arrived when the group was emitted.
 */
export type Flag = string;

export interface CdrRecord {
  schema_version: typeof SCHEMA_VERSION;
  id: string;
  source_type: SourceType;
  source_instance: string;
  source_record_id: string;
  record_type: 'leg';
  call_id: string | null;
  correlation_id: string | null;
  /** CMS: the call (coSpace) name from callStart. */
  call_name: string | null;
  start_time: string | null;
  answer_time: string | null;
  end_time: string | null;
  duration_s: number;
  billable_s: number;
  ring_s: number | null;
  direction: Direction;
  direction_raw: string | null;
  caller_number: string | null;
  caller_name: string | null;
  callee_number: string | null;
  extension: string | null;
  user_id: string | null;
  user_name: string | null;
  agent_id: string | null;
  queue: string | null;
  answered: boolean;
  outcome: Outcome;
  outcome_raw: string | null;
  account_code: string | null;
  trunk: string | null;
  channel: string | null;
  dst_channel: string | null;
  recordings: RecordingRef[];
  source_timezone: string | null;
  /** The start exactly as the source printed it, when that was a local wall-clock time. */
  source_local_start: string | null;
  /** Names of fields this mapping computed rather than read (e.g. end_time = start + duration). */
  derived: string[];
  flags: Flag[];
  observed_at: string;
  raw?: unknown;
}

/** Column order for tables and CSV: every field but `raw`. */
export const CDR_FIELDS: ReadonlyArray<keyof CdrRecord> = [
  'schema_version', 'id', 'source_type', 'source_instance', 'source_record_id', 'record_type', 'call_id',
  'correlation_id', 'call_name', 'start_time', 'answer_time', 'end_time', 'duration_s', 'billable_s', 'ring_s',
  'direction', 'direction_raw', 'caller_number', 'caller_name', 'callee_number', 'extension', 'user_id',
  'user_name', 'agent_id', 'queue', 'answered', 'outcome', 'outcome_raw', 'account_code', 'trunk', 'channel',
  'dst_channel', 'recordings', 'source_timezone', 'source_local_start', 'derived', 'flags', 'observed_at',
];

/** A record with its identity set and every other field empty; mappers fill in what the source has. */
export function newRecord(source_type: SourceType, source_instance: string, source_record_id: string, id: string, observed_at: string): CdrRecord {
  return {
    schema_version: SCHEMA_VERSION, id, source_type, source_instance, source_record_id, record_type: 'leg',
    call_id: null, correlation_id: null, call_name: null, start_time: null, answer_time: null, end_time: null,
    duration_s: 0, billable_s: 0, ring_s: null, direction: 'unknown', direction_raw: null, caller_number: null,
    caller_name: null, callee_number: null, extension: null, user_id: null, user_name: null, agent_id: null,
    queue: null, answered: false, outcome: 'unknown', outcome_raw: null, account_code: null, trunk: null,
    channel: null, dst_channel: null, recordings: [], source_timezone: null, source_local_start: null,
    derived: [], flags: [], observed_at,
  };
}

/** A message the normalizer cannot turn into a complete record. */
export class NormalizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NormalizeError';
  }
}

const DIRECTION_SET = new Set<string>(DIRECTIONS);
const OUTCOME_SET = new Set<string>(OUTCOMES);
const SOURCE_SET = new Set<string>(SOURCE_TYPES);
const STRING_OR_NULL: Array<keyof CdrRecord> = [
  'call_id', 'correlation_id', 'call_name', 'direction_raw', 'caller_number', 'caller_name', 'callee_number',
  'extension', 'user_id', 'user_name', 'agent_id', 'queue', 'outcome_raw', 'account_code', 'trunk', 'channel',
  'dst_channel', 'source_timezone', 'source_local_start',
];

const timeMs = (s: string | null) => (s === null ? null : isoMs(s));
function isHex64(s: string): boolean {
  if (s.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Every invariant of schema 1. Returns the list of broken ones (empty = valid). */
export function validateCdr(r: CdrRecord): string[] {
  const bad: string[] = [];
  if (r.schema_version !== SCHEMA_VERSION) bad.push('schema_version must be "1"');
  if (r.record_type !== 'leg') bad.push('record_type must be "leg"');
  if (!SOURCE_SET.has(r.source_type)) bad.push(`source_type ${String(r.source_type)} not in enum`);
  for (const k of ['id', 'source_instance', 'source_record_id'] as const) {
    if (typeof r[k] !== 'string' || r[k] === '') bad.push(`${k} must be a non-empty string`);
  }
  if (typeof r.id === 'string' && !isHex64(r.id)) bad.push('id must be 64 hex characters (sha256)');
  for (const k of STRING_OR_NULL) {
    const v = r[k];
    if (v !== null && (typeof v !== 'string' || v === '')) bad.push(`${k} must be a non-empty string or null`);
  }
  for (const k of ['start_time', 'answer_time', 'end_time'] as const) {
    const v = r[k];
    if (v !== null && (typeof v !== 'string' || Number.isNaN(isoMs(v)))) bad.push(`${k} must be ISO 8601 UTC with Z or null`);
  }
  if (typeof r.observed_at !== 'string' || Number.isNaN(isoMs(r.observed_at))) bad.push('observed_at must be ISO 8601 UTC with Z');
  if (r.start_time === null && r.end_time === null) bad.push('start_time or end_time must be known');
  for (const k of ['duration_s', 'billable_s'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 0) bad.push(`${k} must be an integer >= 0`);
  }
  if (r.ring_s !== null && (!Number.isInteger(r.ring_s) || r.ring_s < 0)) bad.push('ring_s must be an integer >= 0 or null');
  if (r.billable_s > r.duration_s) bad.push('billable_s must be <= duration_s');
  if (!DIRECTION_SET.has(r.direction)) bad.push(`direction ${String(r.direction)} not in enum`);
  if (!OUTCOME_SET.has(r.outcome)) bad.push(`outcome ${String(r.outcome)} not in enum`);
  if (typeof r.answered !== 'boolean') bad.push('answered must be boolean');
  if (r.answered !== (r.outcome === 'answered')) bad.push('answered must be true exactly when outcome is "answered"');
  if (!r.answered && r.billable_s !== 0) bad.push('an unanswered leg has billable_s 0');
  if (!r.answered && r.answer_time !== null) bad.push('an unanswered leg has no answer_time');
  const s = timeMs(r.start_time), a = timeMs(r.answer_time), e = timeMs(r.end_time);
  if (s !== null && e !== null && e < s) bad.push('end_time before start_time');
  if (s !== null && a !== null && a < s) bad.push('answer_time before start_time');
  if (a !== null && e !== null && e < a) bad.push('end_time before answer_time');
  if (!Array.isArray(r.recordings)) bad.push('recordings must be an array');
  else for (const rec of r.recordings) {
    if (!rec || typeof rec.ref !== 'string' || rec.ref === '') bad.push('recording.ref must be a non-empty string');
    if (rec && rec.size_bytes !== null && (!Number.isInteger(rec.size_bytes) || rec.size_bytes < 0)) bad.push('recording.size_bytes must be an integer >= 0 or null');
  }
  if (!Array.isArray(r.derived) || r.derived.some((d) => typeof d !== 'string')) bad.push('derived must be an array of field names');
  if (!Array.isArray(r.flags) || r.flags.some((d) => typeof d !== 'string')) bad.push('flags must be an array of strings');
  return bad;
}

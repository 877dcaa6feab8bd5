/**
 * Com.X index rows (comx-cdr-fetch, src/comx/index-file.ts) → schema 1 (specs/peers.md §5.3).
 * The typed row already carries its start in UTC (converted with the PBX zone, DST ambiguity
 * reported), so that is used as is and the local text kept in source_local_start.
 */
import type { ComxCdr } from '../comx/index-file';
import { newRecord, NormalizeError, type CdrRecord, type Direction, type RecordingRef } from './schema';
import { cdrId, hexDigest } from './id';
import { required, settleDurations, text, isObject } from './common';
import { iso, ms } from '../common/time';
import type { MapOptions } from './options';

const DIRECTION: Record<string, Direction> = {
  CALLTYPE_INBOUND: 'inbound', CALLTYPE_OUTBOUND: 'outbound', CALLTYPE_INTERNAL: 'internal',
  CALLTYPE_UNKNOWN: 'unknown', CALLTYPE_OTHER: 'unknown',
};

/**
 * The per-row key: the unique id plus a hash of the eleven base columns (not the `&extended` ones),
 * so one call fetched as txt, zip or extended gets the same id, while Asterisk rows that share a
 * unique id but differ (ring groups, transfers; peers.md §0.3) stay apart.
 */
export function comxRecordId(c: ComxCdr): string {
  const base = [c.uniqueId, c.startLocal, c.callType, c.extension ?? '', c.dialledNumber ?? '', c.externalCallerId ?? '',
    c.disposition, c.duration, c.billableSeconds, c.recordingSize, c.recordingFile ?? ''].join(',');
  return `${c.uniqueId}#${hexDigest('sha1', base).slice(0, 12)}`;
}

export interface ComxMeta {
  pbx?: unknown;
  timezone?: unknown;
}

export function mapComx(c: ComxCdr, meta: ComxMeta, recording: unknown, opts: MapOptions): CdrRecord {
  if (!isObject(c) || typeof c.uniqueId !== 'string' || typeof c.start !== 'string') throw new NormalizeError('Com.X row without uniqueId or start');
  const instance = required(text(meta.pbx) ?? opts.instance ?? null, 'Com.X PBX host (msg.comx.pbx)');
  const recordId = comxRecordId(c);
  const startMs = ms(c.start);
  if (startMs === null) throw new NormalizeError(`Com.X start "${String(c.start)}" is not a UTC time`);
  const duration = Number.isInteger(c.duration) && c.duration >= 0 ? c.duration : null;
  const billable = Number.isInteger(c.billableSeconds) && c.billableSeconds >= 0 ? c.billableSeconds : null;
  if (duration === null || billable === null) throw new NormalizeError(`Com.X row ${c.uniqueId}: duration or billable seconds missing`);
  const r = newRecord('comx', instance, recordId, cdrId('comx', instance, recordId), opts.observedAt);
  r.call_id = c.uniqueId;
  r.start_time = iso(startMs);
  r.source_local_start = text(c.startLocal);
  r.source_timezone = text(c.timezone) ?? text(meta.timezone);
  if (c.startAmbiguous) r.flags.push('start_time_ambiguous');
  if (c.startNonexistent) r.flags.push('start_time_nonexistent');
  r.direction = DIRECTION[c.callType] ?? 'unknown';
  r.direction_raw = text(c.callType);
  const ext = text(c.extension);
  r.extension = ext;
  r.user_name = text(c.friendlyName);
  if (r.direction === 'inbound') {
    r.caller_number = text(c.externalCallerId);
    r.callee_number = ext;
  } else {
    r.caller_number = ext;
    r.callee_number = text(c.dialledNumber);
    r.caller_name = r.user_name;
  }
  r.answered = c.disposition === 'CALL_ANSWERED';
  r.outcome = r.answered ? 'answered' : c.disposition === 'CALL_NOANSWER' ? 'no_answer' : 'unknown';
  r.outcome_raw = text(c.disposition);
  r.duration_s = duration;
  r.billable_s = billable;
  // Asterisk: duration = dial → hang-up, billsec = answer → hang-up
  const endMs = startMs + duration * 1000;
  r.end_time = iso(endMs);
  r.derived.push('end_time');
  if (r.answered) {
    r.answer_time = iso(endMs - Math.min(billable, duration) * 1000);
    r.derived.push('answer_time');
  }
  r.account_code = text(c.accountCode);
  r.channel = text(c.channel);
  r.dst_channel = text(c.destinationChannel);
  const file = text(c.recordingFile);
  if (file && c.recordingSize > 0) {
    const ref: RecordingRef = { ref: file, size_bytes: c.recordingSize, format: extension(file), url: null };
    if (isObject(recording) && typeof recording.path === 'string') ref.url = `file://${recording.path}`;
    r.recordings.push(ref);
  }
  settleDurations(r);
  if (opts.keepRaw) r.raw = c.raw;
  return r;
}

function extension(file: string): string | null {
  const m = /\.([A-Za-z0-9]{1,5})$/.exec(file);
  return m ? m[1].toLowerCase() : null;
}

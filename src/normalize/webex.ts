/**
 * Webex Calling detailed call history records (webex-cdr-pull, src/webex/records.ts) → schema 1
 * (specs/webex.md §7, peers.md §5.3). Times are UTC already; milliseconds are kept.
 */
import { typedRecord, recordKey, type RawCdr, type TypedCdr } from '../webex/records';
import { newRecord, NormalizeError, type CdrRecord, type Direction, type Outcome } from './schema';
import { cdrId } from './id';
import { isObject, settleDurations, text } from './common';
import { ms } from '../common/time';
import type { MapOptions } from './options';

/** Call types that reach outside the organisation (the PSTN or a meeting). */
const EXTERNAL_OUT = new Set(['SIP_NATIONAL', 'SIP_INTERNATIONAL', 'SIP_MOBILE', 'SIP_TOLLFREE', 'SIP_PREMIUM', 'SIP_EMERGENCY', 'SIP_SHORTCODE', 'SIP_OPERATOR']);

/**
 * The record is one party's leg (ORIGINATING / TERMINATING); the organisation's view comes from the
 * call type: SIP_ENTERPRISE is internal, SIP_INBOUND came from outside, the PSTN call types went out.
 */
export function webexDirection(dir: string | null, callType: string | null): Direction {
  if (callType === 'SIP_ENTERPRISE') return 'internal';
  if (callType === 'SIP_INBOUND') return 'inbound';
  if (callType !== null && EXTERNAL_OUT.has(callType)) return dir === 'TERMINATING' ? 'inbound' : 'outbound';
  return 'unknown';
}

const BUSY = new Set(['userbusy', 'busy']);
const NO_ANSWER = new Set(['noanswer', 'sip408']);
const REJECTED = new Set(['callrejected', 'usercallblock', 'admincallblock', 'declined']);

export function webexOutcome(answered: boolean, outcome: string | null, reason: string | null): Outcome {
  if (answered) return 'answered';
  const r = (reason ?? '').toLowerCase();
  if (BUSY.has(r)) return 'busy';
  if (NO_ANSWER.has(r)) return 'no_answer';
  if (REJECTED.has(r)) return 'rejected';
  if (outcome === 'Refusal') return 'rejected';
  if (outcome === 'Failure') return 'failed';
  if (outcome === 'Success') return 'no_answer';
  return 'unknown';
}

/** One record: `raw` as received, `typed` as webex-cdr-pull gives it in msg.cdr (computed when absent). */
export function mapWebex(raw: RawCdr, typed: TypedCdr | undefined, opts: MapOptions): CdrRecord {
  if (!isObject(raw)) throw new NormalizeError('Webex record is not an object');
  const t = isObject(typed) ? typed : typedRecord(raw);
  const startIso = typeof t.startTime === 'string' ? t.startTime : null;
  const releaseIso = typeof t.releaseTime === 'string' ? t.releaseTime : null;
  if (startIso === null) throw new NormalizeError('Webex record without a readable Start time');
  const instance = text(t.orgUuid) ?? opts.instance ?? null;
  if (instance === null) throw new NormalizeError('Webex record without Org UUID (set a source instance in cdr-normalize)');
  const recordId = recordKey(raw);
  const r = newRecord('webex', instance, recordId, cdrId('webex', instance, recordId), opts.observedAt);
  r.call_id = text(t.callId);
  r.correlation_id = text(t.correlationId);
  r.start_time = startIso;
  r.answer_time = typeof t.answerTime === 'string' ? t.answerTime : null;
  r.end_time = releaseIso;
  const callType = text(t.callType);
  const dir = text(t.direction);
  r.direction = webexDirection(dir, callType);
  r.direction_raw = dir || callType ? `${dir ?? ''}/${callType ?? ''}` : null;
  r.caller_number = text(t.callingNumber);
  r.callee_number = text(t.calledNumber);
  r.caller_name = text(t.callingLineId);
  r.user_id = text(t.userUuid);
  r.user_name = text(t.user);
  r.answered = t.answered === true || (t.answered === null && r.answer_time !== null);
  const outcome = text(t.callOutcome), reason = text(t.callOutcomeReason);
  r.outcome = webexOutcome(r.answered, outcome, reason);
  r.outcome_raw = outcome || reason ? [outcome, reason].filter(Boolean).join('/') : null;
  r.account_code = text(t.authorizationCode);
  r.trunk = text(t.inboundTrunk) ?? text(t.outboundTrunk);
  // Duration is the talk time (answer → release); the leg's span is release − start
  const billable = typeof t.duration === 'number' && t.duration >= 0 ? t.duration : 0;
  const s = ms(startIso), e = ms(releaseIso);
  const span = s !== null && e !== null && e >= s ? Math.round((e - s) / 1000) : null;
  r.billable_s = billable;
  if (span !== null) {
    r.duration_s = Math.max(span, r.answered ? billable : 0);
    r.derived.push('duration_s');
  } else {
    r.duration_s = billable;
  }
  if (typeof t.ringDuration === 'number' && t.ringDuration >= 0) r.ring_s = t.ringDuration;
  settleDurations(r);
  if (opts.keepRaw) r.raw = raw;
  return r;
}

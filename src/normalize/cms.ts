/**
 * Cisco Meeting Server records (cms-cdr-in, src/cms/parse.ts) → schema 1: one record per call leg,
 * joining callLegStart / callLegUpdate / callLegEnd with the call's name and correlator from callStart
 * (specs/cms.md §3), emitted when the leg ends.
 *
 * The join state is a plain JSON object (snapshot / restore), bounded in legs and calls: when full,
 * the oldest unfinished leg is emitted as it is (flag `leg_end_missing`), the oldest call forgotten.
 * A leg whose start was never seen (receiver started mid-call) is still emitted at its end, its start
 * derived from end − durationSeconds (flag `leg_start_missing`).
 */
import { newRecord, NormalizeError, type CdrRecord, type Outcome, type RecordingRef } from './schema';
import { cdrId } from './id';
import { iso, isObject, ms, settleDurations } from './common';
import type { MapOptions } from './options';

export interface CmsLimits {
  maxLegs: number;
  maxCalls: number;
}
export const CMS_LIMITS: CmsLimits = { maxLegs: 20_000, maxCalls: 10_000 };

interface LegState {
  callBridge: string | null;
  startTime: string | null;
  remoteParty: string | null;
  remoteAddress: string | null;
  displayName: string | null;
  localAddress: string | null;
  direction: string | null;
  legType: string | null;
  subType: string | null;
  call: string | null;
  connectedAt: string | null;
  raw?: { callLegStart?: unknown; callLegUpdate?: unknown[] };
}

interface CallState {
  name: string | null;
  correlator: string | null;
  recordings: RecordingRef[];
}

export interface CmsJoinState {
  v: 1;
  legs: Array<[string, LegState]>;
  calls: Array<[string, CallState]>;
}

/** A finished (or pushed-out) leg, ready for mapCmsLeg. */
export interface JoinedLeg {
  legId: string;
  leg: LegState;
  startSeen: boolean;
  end: {
    time: string | null;
    reason: string | null;
    durationSeconds: number | null;
    activatedDuration: number | null;
    confirmationStatus: string | null;
    callBridge: string | null;
    raw?: unknown;
  } | null;
  call: CallState | null;
}

/** One CMS record as cms-cdr-in emits it, in either value mode (typed or xmltodict). */
export interface CmsInput {
  type: string | null;
  time: string | null;
  id: string | null;
  callBridge: string | null;
  fields: Record<string, unknown>;
  raw: unknown;
}

const str = (v: unknown): string | null => {
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
};
const num = (v: unknown): number | null => {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  return null;
};

const OBJECT_TYPES = ['callLeg', 'call', 'recording', 'streaming'];

/**
 * Reads one record of msg.payload (typed: `{type,time,…,callLeg:{…}}`; xmltodict: `{'@type','@time',
 * callLeg:{'@id',…}}`) with msg.cms for the envelope. Throws when it is not a CMS record.
 */
export function readCmsRecord(payload: unknown, cms: Record<string, unknown> | null): CmsInput {
  if (!isObject(payload)) throw new NormalizeError('CMS record is not an object');
  const type = str(payload.type) ?? str(payload['@type']) ?? (cms ? str(cms.type) : null);
  const time = str(payload.time) ?? str(payload['@time']);
  const objectType = str(payload.objectType) ?? OBJECT_TYPES.find((k) => isObject(payload[k])) ?? null;
  const body = objectType && isObject(payload[objectType]) ? (payload[objectType] as Record<string, unknown>) : {};
  const id = str(payload.id) ?? str(body['@id']) ?? str(body.id);
  if (type === null) throw new NormalizeError('CMS record without a type');
  return { type, time, id, callBridge: str(payload.callBridge) ?? (cms ? str(cms.callBridge) : null), fields: body, raw: payload };
}

export class CmsLegJoiner {
  private legs = new Map<string, LegState>();
  private calls = new Map<string, CallState>();

  constructor(private readonly limits: CmsLimits = CMS_LIMITS, state?: CmsJoinState | null, private readonly keepRaw = true) {
    if (state && state.v === 1 && Array.isArray(state.legs) && Array.isArray(state.calls)) {
      this.legs = new Map(state.legs);
      this.calls = new Map(state.calls);
    }
  }

  get openLegs(): number {
    return this.legs.size;
  }

  snapshot(): CmsJoinState {
    return { v: 1, legs: [...this.legs.entries()], calls: [...this.calls.entries()] };
  }

  /** Folds one record in; returns the legs it finished (usually none or one). */
  push(rec: CmsInput): JoinedLeg[] {
    const f = rec.fields;
    const out: JoinedLeg[] = [];
    switch (rec.type) {
      case 'callStart': {
        if (!rec.id) return out;
        const prev = this.calls.get(rec.id);
        this.calls.delete(rec.id);
        this.calls.set(rec.id, { name: str(f.name) ?? prev?.name ?? null, correlator: str(f.callCorrelator) ?? prev?.correlator ?? null, recordings: prev?.recordings ?? [] });
        this.trimCalls();
        return out;
      }
      case 'recordingStart': {
        const call = str(f.call);
        const path = str(f.path);
        if (!call || !path) return out;
        const c = this.callFor(call);
        if (!c.recordings.some((r) => r.ref === path)) c.recordings.push({ ref: path, size_bytes: null, format: null, url: str(f.recorderUrl) });
        return out;
      }
      case 'callLegStart':
      case 'callLegUpdate': {
        if (!rec.id) throw new NormalizeError(`CMS ${rec.type} without a leg id`);
        let leg = this.legs.get(rec.id);
        if (!leg) {
          leg = { callBridge: rec.callBridge, startTime: null, remoteParty: null, remoteAddress: null, displayName: null, localAddress: null, direction: null, legType: null, subType: null, call: null, connectedAt: null };
          this.legs.set(rec.id, leg);
          out.push(...this.trimLegs());
        }
        if (rec.type === 'callLegStart') {
          leg.startTime = rec.time;
          leg.direction = str(f.direction) ?? leg.direction;
          leg.legType = str(f.type) ?? leg.legType;
          leg.subType = str(f.subType) ?? leg.subType;
          leg.localAddress = str(f.localAddress) ?? leg.localAddress;
          leg.remoteParty = str(f.remoteParty) ?? leg.remoteParty;
          if (this.keepRaw) (leg.raw ??= {}).callLegStart = rec.raw;
        } else if (this.keepRaw) {
          const ups = ((leg.raw ??= {}).callLegUpdate ??= []);
          if (ups.length < 8) ups.push(rec.raw);
        }
        leg.displayName = str(f.displayName) ?? leg.displayName;
        leg.remoteAddress = str(f.remoteAddress) ?? leg.remoteAddress;
        leg.call = str(f.call) ?? leg.call;
        if (leg.callBridge === null) leg.callBridge = rec.callBridge;
        if (str(f.state) === 'connected' && leg.connectedAt === null) leg.connectedAt = rec.time;
        return out;
      }
      case 'callLegEnd': {
        if (!rec.id) throw new NormalizeError('CMS callLegEnd without a leg id');
        const leg = this.legs.get(rec.id);
        this.legs.delete(rec.id);
        const state: LegState = leg ?? { callBridge: rec.callBridge, startTime: null, remoteParty: null, remoteAddress: null, displayName: null, localAddress: null, direction: null, legType: null, subType: null, call: null, connectedAt: null };
        state.remoteAddress = str(f.remoteAddress) ?? state.remoteAddress;
        out.push({
          legId: rec.id,
          leg: state,
          startSeen: state.startTime !== null,
          end: {
            time: rec.time,
            reason: str(f.reason),
            durationSeconds: num(f.durationSeconds),
            activatedDuration: num(f.activatedDuration),
            confirmationStatus: str(f.confirmationStatus),
            callBridge: rec.callBridge,
            ...(this.keepRaw ? { raw: rec.raw } : {}),
          },
          call: state.call ? this.calls.get(state.call) ?? null : null,
        });
        return out;
      }
      default:
        return out; // callEnd, recordingEnd, streaming*: nothing per leg
    }
  }

  private callFor(id: string): CallState {
    let c = this.calls.get(id);
    if (!c) {
      c = { name: null, correlator: null, recordings: [] };
      this.calls.set(id, c);
      this.trimCalls();
    }
    return c;
  }

  private trimCalls(): void {
    while (this.calls.size > this.limits.maxCalls) this.calls.delete(this.calls.keys().next().value as string);
  }

  private trimLegs(): JoinedLeg[] {
    const out: JoinedLeg[] = [];
    while (this.legs.size > this.limits.maxLegs) {
      const [id, leg] = this.legs.entries().next().value as [string, LegState];
      this.legs.delete(id);
      if (leg.startTime !== null) out.push({ legId: id, leg, startSeen: true, end: null, call: leg.call ? this.calls.get(leg.call) ?? null : null });
    }
    return out;
  }
}

const FAILED = new Set(['dnsFailure', 'encryptionRequired', 'error', 'incorrectPasscode', 'ivrTimeout', 'ivrUnknownCall', 'participantLimitReached', 'tenantParticipantLimitReached', 'unknownDestination']);
const NO_ANSWER = new Set(['ringingTimeout', 'timeout', 'confirmationTimeOut']);

export function cmsOutcome(reason: string | null, confirmation: string | null, connected: boolean): Outcome {
  if (confirmation === 'rejected' || reason === 'remoteRejected') return 'rejected';
  if (reason === 'remoteBusy') return 'busy';
  if (reason !== null && NO_ANSWER.has(reason)) return 'no_answer';
  if (reason !== null && FAILED.has(reason)) return 'failed';
  if (connected) return 'answered';
  return reason === null ? 'unknown' : 'cancelled';
}

export function mapCmsLeg(j: JoinedLeg, opts: MapOptions): CdrRecord {
  const leg = j.leg;
  const instance = j.end?.callBridge ?? leg.callBridge ?? opts.instance ?? 'cms';
  const r = newRecord('cms', instance, j.legId, cdrId('cms', instance, j.legId), opts.observedAt);
  r.call_id = leg.call;
  r.correlation_id = j.call?.correlator ?? null;
  r.call_name = j.call?.name ?? null;
  r.direction = leg.direction === 'incoming' ? 'inbound' : leg.direction === 'outgoing' ? 'outbound' : 'unknown';
  r.direction_raw = leg.direction;
  const remote = leg.remoteParty ?? leg.remoteAddress;
  if (leg.direction === 'outgoing') {
    r.caller_number = leg.localAddress;
    r.callee_number = remote;
  } else {
    r.caller_number = remote;
    r.callee_number = leg.localAddress;
    r.caller_name = leg.displayName;
  }
  r.user_name = leg.displayName;
  r.trunk = leg.subType ? `${leg.legType ?? ''}/${leg.subType}` : leg.legType;
  r.recordings = j.call ? j.call.recordings.map((x) => ({ ...x })) : [];
  const endMs = ms(j.end?.time ?? null);
  let startMs = ms(leg.startTime);
  const dur = j.end?.durationSeconds ?? null;
  if (startMs === null) {
    r.flags.push('leg_start_missing');
    if (endMs !== null && dur !== null) {
      startMs = endMs - Math.round(dur) * 1000;
      // durationSeconds is whole seconds: never let the derived start fall after a connection seen
      const connectedMs = ms(leg.connectedAt);
      if (connectedMs !== null && connectedMs < startMs) startMs = connectedMs;
      r.derived.push('start_time');
    }
  }
  if (j.end === null) r.flags.push('leg_end_missing');
  if (startMs === null && endMs === null) throw new NormalizeError(`CMS leg ${j.legId}: no start or end time`);
  r.start_time = startMs === null ? null : iso(startMs);
  r.end_time = endMs === null ? null : iso(endMs);
  if (dur !== null) r.duration_s = Math.round(dur);
  else if (startMs !== null && endMs !== null) {
    r.duration_s = Math.max(0, Math.round((endMs - startMs) / 1000));
    r.derived.push('duration_s');
  }
  const activated = j.end?.activatedDuration ?? null;
  const connected = leg.connectedAt !== null || (activated ?? 0) > 0 || (j.end !== null && !j.startSeen && activated === null && (dur ?? 0) > 0);
  r.outcome = j.end === null ? 'unknown' : cmsOutcome(j.end.reason, j.end.confirmationStatus, connected);
  r.answered = r.outcome === 'answered';
  r.outcome_raw = j.end ? [j.end.reason, j.end.confirmationStatus ? `confirmationStatus=${j.end.confirmationStatus}` : null].filter(Boolean).join(';') || null : null;
  if (r.answered) {
    r.billable_s = Math.round(activated ?? dur ?? 0);
    if (leg.connectedAt !== null) r.answer_time = iso(ms(leg.connectedAt) as number);
    else if (endMs !== null) {
      r.answer_time = iso(endMs - Math.min(r.billable_s, r.duration_s) * 1000);
      r.derived.push('answer_time');
    }
    if (activated === null) r.derived.push('billable_s');
  }
  settleDurations(r);
  if (opts.keepRaw) r.raw = { callLegStart: leg.raw?.callLegStart ?? null, callLegUpdate: leg.raw?.callLegUpdate ?? [], callLegEnd: j.end?.raw ?? null };
  return r;
}

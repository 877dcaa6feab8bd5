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
import { isObject, settleDurations } from './common';
import { iso, ms } from '../common/time';
import type { MapOptions } from './options';
import { readRecord, type CmsRecordView } from '../cms/record';
import { BoundedMap, type BoundedEntry } from '../common/bounded-map';
import { expectShape } from '../common/persist';

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
  /** [id, leg, time set] (older versions wrote [id, leg]) */
  legs: BoundedEntry<string, LegState>[];
  calls: BoundedEntry<string, CallState>[];
}

const LEG_TEXT = ['callBridge', 'startTime', 'remoteParty', 'remoteAddress', 'displayName', 'localAddress', 'direction', 'legType', 'subType', 'call', 'connectedAt'] as const;

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

/** One CMS record as cms-cdr-in emits it (src/cms/record.ts reads both value modes). */
export type CmsInput = CmsRecordView;

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

/** Reads one record of msg.payload with msg.cms for the envelope. Throws when it is not a CMS record. */
export function readCmsRecord(payload: unknown, cms: Record<string, unknown> | null): CmsInput {
  if (!isObject(payload)) throw new NormalizeError('CMS record is not an object');
  const rec = readRecord(payload, cms);
  if (rec === null) throw new NormalizeError('CMS record without a type');
  return rec;
}

const JOINED = new Set(['callStart', 'recordingStart', 'callLegStart', 'callLegUpdate', 'callLegEnd']);

export class CmsLegJoiner {
  /** Open legs, oldest first; beyond the cap the oldest is pushed out (emitted as it is, if it started). */
  private readonly legs: BoundedMap<string, LegState>;
  private readonly calls: BoundedMap<string, CallState>;
  /** Legs the cap pushed out during the current push(). */
  private pushedOut: JoinedLeg[] = [];

  constructor(private readonly limits: CmsLimits = CMS_LIMITS, private readonly keepRaw = true) {
    this.legs = new BoundedMap<string, LegState>({
      max: limits.maxLegs,
      onEvict: (id, leg) => {
        if (leg.startTime !== null) this.pushedOut.push({ legId: id, leg, startSeen: true, end: null, call: leg.call ? this.calls.get(leg.call) ?? null : null });
      },
    });
    this.calls = new BoundedMap<string, CallState>({ max: limits.maxCalls });
  }

  /** A joiner from a saved state (shape checked: StateShapeError) and the journal after it. */
  static fromSaved(limits: CmsLimits, saved: unknown, journal: unknown[], keepRaw = true): CmsLegJoiner {
    const j = new CmsLegJoiner(limits, keepRaw);
    if (saved !== undefined && saved !== null) {
      const st = saved as CmsJoinState;
      expectShape(typeof st === 'object' && st.v === 1, 'not a cdr-normalize state (v 1)');
      j.legs.restore(st.legs, (id, leg) => {
        const l = leg as LegState;
        expectShape(typeof id === 'string' && l && typeof l === 'object', 'a leg entry is not [id, leg]');
        for (const k of LEG_TEXT) expectShape(l[k] === null || typeof l[k] === 'string', `leg ${k} is not text`);
        return [id, l];
      });
      j.calls.restore(st.calls, (id, call) => {
        const c = call as CallState;
        expectShape(typeof id === 'string' && c && typeof c === 'object' && Array.isArray(c.recordings), 'a call entry is not [id, call]');
        return [id, c];
      });
    }
    for (const e of journal) {
      const rec = e as CmsInput;
      expectShape(rec && typeof rec === 'object' && typeof rec.type === 'string' && rec.fields && typeof rec.fields === 'object', 'a journal entry is not a CMS record');
      j.push(rec);
    }
    return j;
  }

  /** Whether pushing this record changes the join state (worth journaling). */
  affects(rec: CmsInput): boolean {
    return JOINED.has(rec.type);
  }

  get openLegs(): number {
    return this.legs.size;
  }

  snapshot(): CmsJoinState {
    return { v: 1, legs: this.legs.snapshot(), calls: this.calls.snapshot() };
  }

  /** Folds one record in; returns the legs it finished (usually none or one). */
  push(rec: CmsInput): JoinedLeg[] {
    const f = rec.fields;
    const out: JoinedLeg[] = [];
    this.pushedOut = out;
    switch (rec.type) {
      case 'callStart': {
        if (!rec.id) return out;
        const prev = this.calls.get(rec.id);
        this.calls.set(rec.id, { name: str(f.name) ?? prev?.name ?? null, correlator: str(f.callCorrelator) ?? prev?.correlator ?? null, recordings: prev?.recordings ?? [] });
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
          this.legs.set(rec.id, leg); // may push the oldest open leg out (into `out`)
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
    }
    return c;
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

/**
 * Live call state folded from the CMS CDR record stream (specs/cms.md §5, §7.2, §9): calls and their
 * legs, guest / Web App / external participants, restricted calls, and one event each time a call's
 * security state changes, plus a summary when a call ends. What the CMS API says about the live calls
 * (a ReconcilePlan, src/cms/reconcile.ts) is folded in the same way. Pure: records in, events out; the
 * state is plain JSON (snapshot / restore) so a node can keep it across restarts.
 */
import { text, type CmsRecordView } from './record';
import { expectShape } from '../common/persist';
import { BoundedMap } from '../common/bounded-map';
import { checkPlan, type ReconcilePlan } from './reconcile';


export type SecurityLevel = 'none' | 'restricted' | 'external' | 'restrictedExternal';

export interface TrackerOptions {
  /** Internal domains (and hosts). A participant whose remote party / address is in none of them is external. Empty: no domain rule. */
  internalDomains: string[];
  /** Count guest logins (`guestConnection` true) as external. */
  guestsExternal: boolean;
  /** Count every Web App leg (`subType` webApp) as external, as Cisco's sample does. */
  webAppExternal: boolean;
  /** Matched against the call name; default case-insensitive `restricted`. */
  restrictedPattern: RegExp;
  /** A call (or a pending leg) with no record for this long is dropped and summarised as expired. */
  expireAfterMs: number;
  /** At most this many legs whose call is not known yet; beyond it the oldest pending leg is dropped. */
  maxPendingLegs: number;
  /** At most this many calls; beyond it the call seen longest ago is dropped and summarised as evicted. */
  maxCalls: number;
}

export const DEFAULT_TRACKER_OPTIONS: TrackerOptions = {
  internalDomains: [],
  guestsExternal: true,
  webAppExternal: true,
  restrictedPattern: /restricted/i,
  expireAfterMs: 24 * 3600_000,
  maxPendingLegs: 5000,
  maxCalls: 5000,
};

/** One record as the tracker reads it (src/cms/record.ts). */
export type TrackerRecord = Omit<CmsRecordView, 'raw'>;

/** A journal entry: a record applied at `t`, a bridge restart, an expiry sweep, or what the API said. */
export type TrackerEntry = { t: number; a: TrackerRecord } | { t: number; b: string } | { t: number; x: true } | { t: number; r: ReconcilePlan };

const HANDLED = new Set(['callStart', 'callEnd', 'callLegStart', 'callLegUpdate', 'callLegEnd', 'recordingStart', 'streamingStart', 'recordingEnd', 'streamingEnd']);

interface LegState {
  id: string;
  call: string | null;
  displayName: string | null;
  remoteParty: string | null;
  remoteAddress: string | null;
  subType: string | null;
  guest: boolean;
  webApp: boolean;
  /** distributionLink, recorder or streamer: not a participant. */
  notParticipant: boolean;
  external: boolean;
  /** The call in whose totals this leg is already counted, and as what. */
  countedIn: string | null;
  countedGuest: boolean;
  countedExternal: boolean;
  startTime: string | null;
  seen: number;
}

interface CallState {
  id: string;
  name: string | null;
  callCorrelator: string | null;
  callBridge: string | null;
  session: string | null;
  callType: string | null;
  coSpace: string | null;
  restricted: boolean;
  /** Known only from a leg's `call` so far (the callStart was not seen). */
  placeholder: boolean;
  startTime: string | null;
  seen: number;
  /** The level last announced for this call. */
  notified: SecurityLevel;
  participantsTotal: number;
  guestsTotal: number;
  externalsTotal: number;
  participantsMax: number;
  recordings: number;
  streamings: number;
}

export interface TrackerState {
  version: 1;
  calls: CallState[];
  legs: LegState[];
  /** recording / streaming id → call id, so the End record finds its call. */
  media: Array<[string, string]>;
  stats: TrackerStats;
}

export interface TrackerStats {
  expiredCalls: number;
  evictedCalls: number;
  droppedPendingLegs: number;
  unknownLegEnds: number;
}

/** What a node shows about one call. */
export interface CallView {
  callId: string;
  callBridge: string | null;
  session: string | null;
  callCorrelator: string | null;
  name: string | null;
  restricted: boolean;
  /** The meeting (all calls sharing the callCorrelator) has at least one external participant. */
  external: boolean;
  level: SecurityLevel;
  /** Counts across the whole meeting (every bridge of a cluster). */
  participants: number;
  guests: number;
  webApp: number;
  externals: number;
  /** The same counts for this call only (this bridge). */
  callParticipants: number;
  callExternals: number;
}

export type SecurityReason = 'restrictedStart' | 'externalJoined' | 'externalLeft' | 'restrictedEnd';

export interface SecurityEvent {
  kind: 'security';
  reason: SecurityReason;
  /** For `api`, what the call showed when the API was read. */
  previousLevel: SecurityLevel;
  time: string | null;
  call: CallView;
  /** What made the change: a CDR record, or the CMS API's view of the live calls. */
  source: 'cdr' | 'api';
}

export interface CallSummary {
  callId: string;
  callBridge: string | null;
  session: string | null;
  callCorrelator: string | null;
  name: string | null;
  callType: string | null;
  coSpace: string | null;
  restricted: boolean;
  startTime: string | null;
  endTime: string | null;
  durationSeconds: number | null;
  /**
   * How the call ended for the tracker: its callEnd, no record for too long, the call cap, its bridge
   * restarted, or the CMS API no longer had it.
   */
  ending: 'callEnd' | 'expired' | 'evicted' | 'bridgeRestarted' | 'notInApi';
  /** The callStart was never seen (the tracker started mid-call). */
  partial: boolean;
  participants: number;
  guests: number;
  externals: number;
  maxParticipants: number;
  /** Legs still open when the call ended (their callLegEnd never came). */
  legsOpenAtEnd: number;
  recorded: boolean;
  streamed: boolean;
  /** From the callEnd record when it has them. */
  callLegsCompleted: number | null;
  callLegsMaxActive: number | null;
}

export interface SummaryEvent {
  kind: 'summary';
  summary: CallSummary;
}

export type TrackerEvent = SecurityEvent | SummaryEvent;

export class CallTracker {
  private readonly opts: TrackerOptions;
  private readonly calls = new Map<string, CallState>();
  /** Legs whose call is known. */
  private readonly legs = new Map<string, LegState>();
  /** Legs whose call is not known yet, oldest first (Map insertion order). */
  private readonly pending = new Map<string, LegState>();
  private readonly callLegs = new Map<string, Set<string>>();
  private readonly byCorrelator = new Map<string, Set<string>>();
  private readonly media = new Map<string, string>();
  /**
   * When the stream last ended a leg (`l:<id>`) or call (`c:<id>`), so an API read that began before
   * does not bring it back. In memory only: after a restart every read begins later.
   */
  private readonly ended = new BoundedMap<string, number>({ max: 20_000, maxAgeMs: 3600_000 });
  private stats: TrackerStats = { expiredCalls: 0, evictedCalls: 0, droppedPendingLegs: 0, unknownLegEnds: 0 };

  constructor(opts: Partial<TrackerOptions> = {}, state?: TrackerState) {
    this.opts = { ...DEFAULT_TRACKER_OPTIONS, ...opts };
    this.opts.internalDomains = this.opts.internalDomains.map((d) => d.trim().toLowerCase().replace(/^\*?\./, '')).filter(Boolean);
    if (state) this.restore(checkState(state));
  }

  /** Builds a tracker from a saved state (its shape checked; StateShapeError otherwise) and the journal after it. */
  static fromSaved(opts: Partial<TrackerOptions>, saved: unknown, journal: unknown[]): CallTracker {
    const t = new CallTracker(opts);
    if (saved !== undefined && saved !== null) t.restore(checkState(saved));
    for (const e of journal) t.replay(e);
    return t;
  }

  /** Whether applying this record changes anything (unknown types and records without an id do not). */
  affects(rec: TrackerRecord): boolean {
    return rec.id !== null && HANDLED.has(rec.type);
  }

  /** Applies a journal entry again (after a restart); its events were sent before. */
  replay(entry: unknown): void {
    const e = entry as Record<string, unknown>;
    expectShape(e && typeof e === 'object' && typeof e.t === 'number', 'a tracker journal entry has no time');
    if (e.a !== undefined) {
      const r = e.a as TrackerRecord;
      expectShape(r && typeof r.type === 'string' && (r.id === null || typeof r.id === 'string') && r.fields && typeof r.fields === 'object', 'a tracker journal record is not a record');
      this.apply(r, e.t as number);
    } else if (typeof e.b === 'string') {
      this.bridgeRestarted(e.b, e.t as number);
    } else if (e.x === true) {
      this.expire(e.t as number);
    } else if (e.r !== undefined) {
      this.reconcile(checkPlan(e.r), e.t as number);
    } else {
      expectShape(false, 'unknown tracker journal entry');
    }
  }

  /** How many calls and pending legs are kept (an expiry sweep changed something when this moves). */
  get size(): number {
    return this.calls.size + this.pending.size;
  }

  /** Folds one record in; `now` is the wall clock in ms (for expiry), not the record time. */
  apply(rec: TrackerRecord, now: number): TrackerEvent[] {
    const events: TrackerEvent[] = [];
    const touched = new Set<string>(); // meeting keys whose level may have changed
    const f = rec.fields;
    switch (rec.type) {
      case 'callStart': {
        if (!rec.id) break;
        const call = this.ensureCall(rec.id, now, events);
        call.placeholder = false;
        call.callType = text(f.callType) ?? call.callType;
        call.callBridge = rec.callBridge ?? call.callBridge;
        call.session = rec.session ?? call.session;
        call.startTime = rec.time ?? call.startTime;
        this.describeCall(call, { name: text(f.name), callCorrelator: text(f.callCorrelator), coSpace: text(f.coSpace) }, now);
        touched.add(this.meetingKey(call));
        break;
      }
      case 'callEnd': {
        if (!rec.id) break;
        this.ended.set(`c:${rec.id}`, now, now);
        const call = this.calls.get(rec.id);
        const summary = this.endCall(call ?? this.blankCall(rec.id, rec, now), 'callEnd', rec.time, touched);
        summary.durationSeconds = num(f.durationSeconds) ?? summary.durationSeconds;
        summary.callLegsCompleted = num(f.callLegsCompleted);
        summary.callLegsMaxActive = num(f.callLegsMaxActive);
        if (!call) summary.partial = true;
        events.push({ kind: 'summary', summary });
        break;
      }
      case 'callLegStart':
      case 'callLegUpdate': {
        if (!rec.id) break;
        const leg = this.legs.get(rec.id) ?? this.pending.get(rec.id) ?? blankLeg(rec.id, rec.type === 'callLegStart' ? rec.time : null, now);
        leg.seen = now;
        leg.displayName = text(f.displayName) ?? leg.displayName;
        leg.remoteParty = text(f.remoteParty) ?? leg.remoteParty;
        leg.remoteAddress = text(f.remoteAddress) ?? leg.remoteAddress;
        leg.subType = text(f.subType) ?? leg.subType;
        if ('guestConnection' in f) leg.guest = bool(f.guestConnection);
        leg.webApp = leg.subType === 'webApp';
        if (leg.subType === 'distributionLink' || bool(f.recording) || bool(f.streaming)) leg.notParticipant = true;
        leg.external = this.isExternal(leg);
        const callId = text(f.call);
        // `<ivr/>` without `<call>`: the leg is (back) in the IVR, in no call
        const target = callId ?? ('ivr' in f ? null : leg.call);
        this.placeLeg(leg, target, now, events, touched);
        break;
      }
      case 'callLegEnd': {
        if (!rec.id) break;
        this.ended.set(`l:${rec.id}`, now, now);
        const leg = this.legs.get(rec.id) ?? this.pending.get(rec.id);
        if (!leg) {
          this.stats.unknownLegEnds++;
          break;
        }
        this.removeLeg(leg, touched);
        const call = leg.call ? this.calls.get(leg.call) : undefined;
        if (call) call.seen = now;
        break;
      }
      case 'recordingStart':
      case 'streamingStart': {
        const callId = text(f.call);
        if (!rec.id || !callId) break;
        const call = this.ensureCall(callId, now, events);
        call.seen = now;
        if (rec.type === 'recordingStart') call.recordings++;
        else call.streamings++;
        this.media.set(rec.id, callId);
        // the recorder / streamer joins the call as a leg of its own: never a participant
        const legId = text(f.callLeg);
        const leg = legId ? this.legs.get(legId) ?? this.pending.get(legId) : undefined;
        if (leg && !leg.notParticipant) {
          leg.notParticipant = true;
          leg.external = false;
          if (leg.call) touched.add(this.meetingKey(this.calls.get(leg.call)!));
        }
        break;
      }
      case 'recordingEnd':
      case 'streamingEnd':
        if (rec.id) this.media.delete(rec.id);
        break;
      default:
        break; // unknown record types pass by
    }
    this.announce(touched, rec.time, events);
    return events;
  }

  /** A call bridge restarted (cms-cdr-in's `sessionChanged`): its calls of the old session are over. */
  bridgeRestarted(previousSession: string, now: number): TrackerEvent[] {
    const events: TrackerEvent[] = [];
    const touched = new Set<string>();
    for (const call of [...this.calls.values()]) {
      if (call.session === previousSession) events.push({ kind: 'summary', summary: this.endCall(call, 'bridgeRestarted', null, touched) });
    }
    this.announce(touched, null, events);
    void now;
    return events;
  }

  /** Drops calls and pending legs with no record for `expireAfterMs`. Call it now and then. */
  expire(now: number): TrackerEvent[] {
    const events: TrackerEvent[] = [];
    const touched = new Set<string>();
    const limit = now - this.opts.expireAfterMs;
    this.ended.prune(now);
    for (const call of [...this.calls.values()]) {
      if (call.seen <= limit) {
        this.stats.expiredCalls++;
        events.push({ kind: 'summary', summary: this.endCall(call, 'expired', null, touched) });
      }
    }
    for (const leg of [...this.pending.values()]) {
      if (leg.seen <= limit) this.pending.delete(leg.id);
    }
    this.announce(touched, null, events);
    return events;
  }

  /**
   * Folds in what the CMS API says about the live calls (a plan from planReconcile): ends the calls it
   * no longer has, rebuilds the calls it has with their legs, and takes the message each call shows as
   * what was announced, so the events bring every screen to the level the call is at.
   */
  reconcile(plan: ReconcilePlan, now: number): TrackerEvent[] {
    const events: TrackerEvent[] = [];
    const touched = new Set<string>();
    for (const id of plan.end) {
      const call = this.calls.get(id);
      if (call) events.push({ kind: 'summary', summary: this.endCall(call, 'notInApi', null, touched) });
    }
    for (const p of plan.calls) {
      const call = this.ensureCall(p.id, now, events);
      this.describeCall(call, p, now);
      for (const id of p.drop) {
        const leg = this.legs.get(id);
        if (leg && leg.call === p.id) this.removeLeg(leg, touched);
      }
      for (const l of p.legs) {
        const leg = this.legs.get(l.id) ?? this.pending.get(l.id) ?? blankLeg(l.id, null, now);
        leg.seen = now;
        leg.displayName = l.name ?? leg.displayName;
        leg.remoteParty = l.remoteParty ?? leg.remoteParty;
        leg.remoteAddress = l.remoteAddress ?? leg.remoteAddress;
        if (l.subType !== undefined) leg.subType = l.subType;
        leg.webApp = leg.subType === 'webApp';
        if (leg.subType === 'distributionLink') leg.notParticipant = true;
        leg.external = this.isExternal(leg);
        this.placeLeg(leg, p.id, now, events, touched);
      }
      call.notified = p.shown;
      touched.add(this.meetingKey(call));
    }
    this.announce(touched, null, events, 'api');
    return events;
  }

  /** Whether the stream ended this leg (`l:<id>`) or call (`c:<id>`) at or after `since` (ms). */
  endedSince(key: string, since: number): boolean {
    const t = this.ended.get(key);
    return t !== undefined && t >= since;
  }

  /** Whether the tracker knows this leg from a record or an earlier API read (its subType is known then). */
  knowsLeg(id: string): boolean {
    return this.legs.has(id) || this.pending.has(id);
  }

  /** The current view of one call, or null. */
  view(callId: string): CallView | null {
    const call = this.calls.get(callId);
    return call ? this.viewOf(call) : null;
  }

  /** Every tracked call. */
  views(): CallView[] {
    return [...this.calls.values()].map((c) => this.viewOf(c));
  }

  counts(): { calls: number; legs: number; pendingLegs: number; externalCalls: number; restrictedCalls: number } & TrackerStats {
    let externalCalls = 0;
    let restrictedCalls = 0;
    for (const c of this.calls.values()) {
      if (c.notified === 'external' || c.notified === 'restrictedExternal') externalCalls++;
      if (c.restricted) restrictedCalls++;
    }
    return { calls: this.calls.size, legs: this.legs.size, pendingLegs: this.pending.size, externalCalls, restrictedCalls, ...this.stats };
  }

  snapshot(): TrackerState {
    return {
      version: 1,
      calls: [...this.calls.values()].map((c) => ({ ...c })),
      legs: [...this.pending.values(), ...this.legs.values()].map((l) => ({ ...l })),
      media: [...this.media.entries()],
      stats: { ...this.stats },
    };
  }

  // ---------------------------------------------------------------------------------------------

  private restore(state: TrackerState): void {
    for (const c of state.calls ?? []) {
      this.calls.set(c.id, { ...c });
      this.indexCorrelator(this.calls.get(c.id)!);
    }
    for (const l of state.legs ?? []) {
      if (l.call && this.calls.has(l.call)) {
        this.legs.set(l.id, { ...l });
        this.legSet(l.call).add(l.id);
      } else {
        this.pending.set(l.id, { ...l, call: null });
      }
    }
    for (const [k, v] of state.media ?? []) this.media.set(k, v);
    this.stats = { ...this.stats, ...(state.stats ?? {}) };
  }

  private isExternal(leg: LegState): boolean {
    if (leg.notParticipant) return false;
    if (leg.guest && this.opts.guestsExternal) return true;
    if (leg.webApp && this.opts.webAppExternal) return true;
    const domains = this.opts.internalDomains;
    if (domains.length === 0) return false;
    const hosts = [leg.remoteParty, leg.remoteAddress].map(hostOf).filter((h): h is string => h !== null);
    if (hosts.length === 0) return false; // nothing to judge by
    return !hosts.some((h) => domains.some((d) => h === d || h.endsWith(`.${d}`)));
  }

  /** Takes what is given of a call's name, correlator and space; its restriction follows from the name. */
  private describeCall(call: CallState, d: { name: string | null; callCorrelator: string | null; coSpace: string | null }, now: number): void {
    this.unindexCorrelator(call);
    call.name = d.name ?? call.name;
    call.callCorrelator = d.callCorrelator ?? call.callCorrelator;
    call.coSpace = d.coSpace ?? call.coSpace;
    call.restricted = call.name !== null && this.opts.restrictedPattern.test(call.name);
    call.seen = now;
    this.indexCorrelator(call);
  }

  private ensureCall(id: string, now: number, events: TrackerEvent[]): CallState {
    let call = this.calls.get(id);
    if (call) return call;
    if (this.calls.size >= this.opts.maxCalls) this.evictOldestCall(events);
    call = this.blankCall(id, null, now);
    this.calls.set(id, call);
    this.indexCorrelator(call);
    return call;
  }

  private blankCall(id: string, rec: TrackerRecord | null, now: number): CallState {
    return {
      id, name: null, callCorrelator: null, callBridge: rec?.callBridge ?? null, session: rec?.session ?? null,
      callType: null, coSpace: null, restricted: false, placeholder: true, startTime: null, seen: now, notified: 'none',
      participantsTotal: 0, guestsTotal: 0, externalsTotal: 0, participantsMax: 0, recordings: 0, streamings: 0,
    };
  }

  private evictOldestCall(events: TrackerEvent[]): void {
    let oldest: CallState | null = null;
    for (const c of this.calls.values()) if (!oldest || c.seen < oldest.seen) oldest = c;
    if (!oldest) return;
    this.stats.evictedCalls++;
    const touched = new Set<string>();
    events.push({ kind: 'summary', summary: this.endCall(oldest, 'evicted', null, touched) });
    this.announce(touched, null, events);
  }

  /** Moves a leg into `callId` (or into the pending map when null) and counts it. */
  private placeLeg(leg: LegState, callId: string | null, now: number, events: TrackerEvent[], touched: Set<string>): void {
    const before = leg.call;
    if (before && before !== callId) {
      this.callLegs.get(before)?.delete(leg.id);
      const old = this.calls.get(before);
      if (old) touched.add(this.meetingKey(old));
    }
    if (callId === null) {
      this.legs.delete(leg.id);
      leg.call = null;
      if (this.pending.has(leg.id)) {
        // seen again: move it to the young end, so the cap drops the legs nobody hears from
        this.pending.delete(leg.id);
        this.pending.set(leg.id, leg);
      } else {
        if (this.pending.size >= this.opts.maxPendingLegs) {
          const oldest = this.pending.keys().next().value as string;
          this.pending.delete(oldest);
          this.stats.droppedPendingLegs++;
        }
        this.pending.set(leg.id, leg);
      }
      return;
    }
    this.pending.delete(leg.id);
    const call = this.ensureCall(callId, now, events);
    call.seen = now;
    leg.call = callId;
    this.legs.set(leg.id, leg);
    this.legSet(callId).add(leg.id);
    if (!leg.notParticipant) {
      if (leg.countedIn !== callId) {
        leg.countedIn = callId;
        leg.countedGuest = false;
        leg.countedExternal = false;
        call.participantsTotal++;
      }
      if (leg.guest && !leg.countedGuest) {
        leg.countedGuest = true;
        call.guestsTotal++;
      }
      if (leg.external && !leg.countedExternal) {
        leg.countedExternal = true;
        call.externalsTotal++;
      }
      call.participantsMax = Math.max(call.participantsMax, this.callCounts(callId).participants);
    }
    touched.add(this.meetingKey(call));
  }

  private removeLeg(leg: LegState, touched: Set<string>): void {
    this.pending.delete(leg.id);
    this.legs.delete(leg.id);
    if (leg.call) {
      this.callLegs.get(leg.call)?.delete(leg.id);
      const call = this.calls.get(leg.call);
      if (call) touched.add(this.meetingKey(call));
    }
  }

  private endCall(call: CallState, ending: CallSummary['ending'], time: string | null, touched: Set<string>): CallSummary {
    const legIds = this.callLegs.get(call.id) ?? new Set<string>();
    const summary: CallSummary = {
      callId: call.id,
      callBridge: call.callBridge,
      session: call.session,
      callCorrelator: call.callCorrelator,
      name: call.name,
      callType: call.callType,
      coSpace: call.coSpace,
      restricted: call.restricted,
      startTime: call.startTime,
      endTime: time,
      durationSeconds: call.startTime && time ? Math.max(0, Math.round((Date.parse(time) - Date.parse(call.startTime)) / 1000)) : null,
      ending,
      partial: call.placeholder,
      participants: call.participantsTotal,
      guests: call.guestsTotal,
      externals: call.externalsTotal,
      maxParticipants: call.participantsMax,
      legsOpenAtEnd: legIds.size,
      recorded: call.recordings > 0,
      streamed: call.streamings > 0,
      callLegsCompleted: null,
      callLegsMaxActive: null,
    };
    for (const id of legIds) this.legs.delete(id);
    this.callLegs.delete(call.id);
    this.unindexCorrelator(call);
    this.calls.delete(call.id);
    for (const [k, v] of this.media) if (v === call.id) this.media.delete(k);
    // the other calls of the meeting may have lost their external participants
    if (call.callCorrelator) touched.add(`c:${call.callCorrelator}`);
    touched.delete(`i:${call.id}`);
    return summary;
  }

  private meetingKey(call: CallState): string {
    return call.callCorrelator ? `c:${call.callCorrelator}` : `i:${call.id}`;
  }

  private meetingCalls(key: string): CallState[] {
    if (key.startsWith('i:')) {
      const c = this.calls.get(key.slice(2));
      return c ? [c] : [];
    }
    const ids = this.byCorrelator.get(key.slice(2));
    return ids ? [...ids].map((id) => this.calls.get(id)!).filter(Boolean) : [];
  }

  private indexCorrelator(call: CallState): void {
    if (!call.callCorrelator) return;
    let set = this.byCorrelator.get(call.callCorrelator);
    if (!set) this.byCorrelator.set(call.callCorrelator, (set = new Set()));
    set.add(call.id);
  }

  private unindexCorrelator(call: CallState): void {
    if (!call.callCorrelator) return;
    const set = this.byCorrelator.get(call.callCorrelator);
    set?.delete(call.id);
    if (set && set.size === 0) this.byCorrelator.delete(call.callCorrelator);
  }

  private legSet(callId: string): Set<string> {
    let set = this.callLegs.get(callId);
    if (!set) this.callLegs.set(callId, (set = new Set()));
    return set;
  }

  private callCounts(callId: string): { participants: number; guests: number; webApp: number; externals: number } {
    const out = { participants: 0, guests: 0, webApp: 0, externals: 0 };
    for (const id of this.callLegs.get(callId) ?? []) {
      const leg = this.legs.get(id);
      if (!leg || leg.notParticipant) continue;
      out.participants++;
      if (leg.guest) out.guests++;
      if (leg.webApp) out.webApp++;
      if (leg.external) out.externals++;
    }
    return out;
  }

  private viewOf(call: CallState, meeting = this.meetingCalls(this.meetingKey(call))): CallView {
    const total = { participants: 0, guests: 0, webApp: 0, externals: 0 };
    let restricted = false;
    let own = { participants: 0, externals: 0 };
    for (const c of meeting) {
      const n = this.callCounts(c.id);
      total.participants += n.participants;
      total.guests += n.guests;
      total.webApp += n.webApp;
      total.externals += n.externals;
      restricted ||= c.restricted;
      if (c.id === call.id) own = n;
    }
    const external = total.externals > 0;
    return {
      callId: call.id,
      callBridge: call.callBridge,
      session: call.session,
      callCorrelator: call.callCorrelator,
      name: call.name ?? meeting.find((c) => c.name !== null)?.name ?? null,
      restricted,
      external,
      level: levelOf(restricted, external),
      ...total,
      callParticipants: own.participants,
      callExternals: own.externals,
    };
  }

  /** For every call of every touched meeting whose level differs from what was last announced: one event. */
  private announce(touched: Set<string>, time: string | null, events: TrackerEvent[], source: SecurityEvent['source'] = 'cdr'): void {
    for (const key of touched) {
      const meeting = this.meetingCalls(key);
      for (const call of meeting) {
        const view = this.viewOf(call, meeting);
        if (view.level === call.notified) continue;
        const previousLevel = call.notified;
        call.notified = view.level;
        events.push({ kind: 'security', reason: reasonFor(previousLevel, view.level), previousLevel, time, call: view, source });
      }
    }
  }
}

function blankLeg(id: string, startTime: string | null, now: number): LegState {
  return {
    id, call: null, displayName: null, remoteParty: null, remoteAddress: null, subType: null,
    guest: false, webApp: false, notParticipant: false, external: false,
    countedIn: null, countedGuest: false, countedExternal: false, startTime, seen: now,
  };
}

export const LEVELS: ReadonlySet<string> = new Set(['none', 'restricted', 'external', 'restrictedExternal']);
const isStr = (v: unknown) => typeof v === 'string';
const isStrOrNull = (v: unknown) => v === null || typeof v === 'string';
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

/** A saved tracker state, checked field by field (StateShapeError on anything unexpected). */
function checkState(v: unknown): TrackerState {
  const s = v as TrackerState;
  expectShape(s && typeof s === 'object' && s.version === 1, 'not a cms-call-tracker state (version 1)');
  expectShape(Array.isArray(s.calls) && Array.isArray(s.legs) && Array.isArray(s.media), 'calls, legs and media must be lists');
  for (const c of s.calls) {
    expectShape(c && isStr(c.id) && isStrOrNull(c.name) && isStrOrNull(c.session) && isNum(c.seen) && LEVELS.has(c.notified)
      && isNum(c.participantsTotal) && isNum(c.guestsTotal) && isNum(c.externalsTotal) && typeof c.restricted === 'boolean', 'a call is not a tracked call');
  }
  for (const l of s.legs) {
    expectShape(l && isStr(l.id) && isStrOrNull(l.call) && isStrOrNull(l.countedIn) && isNum(l.seen) && typeof l.external === 'boolean', 'a leg is not a tracked leg');
  }
  for (const m of s.media) expectShape(Array.isArray(m) && isStr(m[0]) && isStr(m[1]), 'a media entry is not [id, call]');
  expectShape(s.stats === undefined || (typeof s.stats === 'object' && s.stats !== null), 'stats is not an object');
  return s;
}

export function levelOf(restricted: boolean, external: boolean): SecurityLevel {
  if (restricted) return external ? 'restrictedExternal' : 'restricted';
  return external ? 'external' : 'none';
}

function reasonFor(before: SecurityLevel, after: SecurityLevel): SecurityReason {
  const wasExt = before === 'external' || before === 'restrictedExternal';
  const isExt = after === 'external' || after === 'restrictedExternal';
  const wasRes = before === 'restricted' || before === 'restrictedExternal';
  const isRes = after === 'restricted' || after === 'restrictedExternal';
  if (isRes && !wasRes) return 'restrictedStart';
  if (isExt && !wasExt) return 'externalJoined';
  if (wasExt && !isExt) return 'externalLeft';
  return 'restrictedEnd';
}

/** The host of a SIP URI or address: `sip:Jyn Erso <jyn@Wobani.org:5061;transport=tls>` → `wobani.org`. */
export function hostOf(address: string | null): string | null {
  if (!address) return null;
  let a = address.trim();
  const angle = /<([^>]*)>/.exec(a);
  if (angle) a = angle[1];
  a = a.replace(/^(sips?|tel|h323):/i, '');
  const at = a.lastIndexOf('@');
  if (at >= 0) a = a.slice(at + 1);
  a = a.split(/[;?>\s]/)[0];
  // strip a port, but leave a bare IPv6 address alone
  if (a.startsWith('[')) a = a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined);
  else if ((a.match(/:/g) ?? []).length === 1) a = a.split(':')[0];
  a = a.toLowerCase().replace(/\.$/, '');
  return a === '' ? null : a;
}

function bool(v: unknown): boolean {
  return v === true || (typeof v === 'string' && v.trim().toLowerCase() === 'true');
}

function num(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  const t = text(v);
  if (t === null) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** The restricted pattern from a node setting: a /regex/flags literal, or a case-insensitive regular expression. */
export function restrictedPattern(source: string | undefined | null): RegExp {
  const s = (source ?? '').trim();
  if (s === '') return DEFAULT_TRACKER_OPTIONS.restrictedPattern;
  const lit = /^\/(.*)\/([gimsuy]*)$/.exec(s);
  if (lit) return new RegExp(lit[1], lit[2].replace(/[gy]/g, ''));
  return new RegExp(s, 'i');
}

/** "example.com, corp.example.org; 10.1.2.3" → list. */
export function domainList(source: string | undefined | null): string[] {
  return (source ?? '').split(/[\s,;]+/).map((d) => d.trim()).filter(Boolean);
}

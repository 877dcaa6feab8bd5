/**
 * Checking cms-call-tracker's view against the CMS API (specs/cms.md §5, §6, §9.5, §9.8): the API is
 * the source of truth for which calls and legs are live and which message each call shows; the CDR
 * stream keeps the view current between two reads. Pure: given what the API answered and the tracker's
 * state, which changes (a ReconcilePlan, applied by CallTracker.reconcile, which gives the events).
 *
 * A read takes time while records keep coming, so what the stream changed since the read began wins:
 * a call or leg with a record since then is left as the stream has it, one the stream ended since then
 * is not brought back, and nothing is ended unless every bridge was read through (`complete`).
 */
import { expectShape } from '../common/persist';
import type { SecurityLevel, TrackerState } from './tracker';

/** A live call as the API shows it (src/cms/api.ts ActiveCall has this shape). */
export interface ApiCallView {
  id: string;
  name: string | null;
  coSpace: string | null;
  callCorrelator: string | null;
  /** The message on screen, '' for none. */
  messageText: string;
  legs: ApiLegView[];
  /** The leg list was read through: a leg not in it has left. */
  legsComplete: boolean;
}

export interface ApiLegView {
  id: string;
  name: string | null;
  remoteParty: string | null;
  remoteAddress: string | null;
  subType: string | null;
  /** subType was read (false: the tracker knew the leg, and keeps what it knows). */
  detail: boolean;
}

export interface ReconcileInput {
  calls: ApiCallView[];
  /** Every bridge answered, and no list moved while it was paged. */
  complete: boolean;
  /** When the read began (ms). */
  startedAt: number;
}

/** The notice text for each level (the tracker node's settings); '' for none. */
export type NoticeTexts = Record<SecurityLevel, string>;

export interface PlannedLeg {
  id: string;
  name: string | null;
  remoteParty: string | null;
  remoteAddress: string | null;
  /** undefined: keep what the tracker knows. */
  subType?: string | null;
}

export interface PlannedCall {
  id: string;
  name: string | null;
  callCorrelator: string | null;
  coSpace: string | null;
  /** The level the message on screen stands for: what counts as announced from now on. */
  shown: SecurityLevel;
  /** Legs to add, move here or update. */
  legs: PlannedLeg[];
  /** Legs the tracker has in this call that the API does not list: they left. */
  drop: string[];
}

export interface ReconcilePlan {
  /** Calls the tracker has and the API does not: they ended. */
  end: string[];
  calls: PlannedCall[];
}

/** What the tracker tells the planner about the stream since the read began. */
export interface StreamSince {
  /** The stream ended this leg (`l:<id>`) or call (`c:<id>`) at or after `since`. */
  endedSince(key: string, since: number): boolean;
}

/**
 * The level a message on screen stands for: one of the node's notice texts, or none. A text that is
 * none of them was put there by someone else: it counts as none, so it is replaced only when the call
 * needs a notice, and never cleared.
 */
export function levelShown(messageText: string, texts: NoticeTexts): SecurityLevel {
  const shown = messageText.trim();
  if (shown === '') return 'none';
  for (const level of ['restrictedExternal', 'external', 'restricted'] as const) {
    if (texts[level].trim() === shown) return level;
  }
  return 'none';
}

export function planReconcile(state: TrackerState, input: ReconcileInput, texts: NoticeTexts, stream: StreamSince): ReconcilePlan {
  const since = input.startedAt;
  const fresh = (seen: number) => seen >= since;
  const legs = new Map(state.legs.map((l) => [l.id, l]));
  const live = new Set(input.calls.map((c) => c.id));
  // a leg listed in another call has moved there (placed there below), not left
  const listed = new Set(input.calls.flatMap((c) => c.legs.map((l) => l.id)));
  const plan: ReconcilePlan = { end: [], calls: [] };

  if (input.complete) {
    for (const c of state.calls) if (!live.has(c.id) && !fresh(c.seen)) plan.end.push(c.id);
  }
  for (const api of input.calls) {
    if (stream.endedSince(`c:${api.id}`, since)) continue; // its callEnd came while the API was read
    const planned: PlannedCall = {
      id: api.id,
      name: api.name,
      callCorrelator: api.callCorrelator,
      coSpace: api.coSpace,
      shown: levelShown(api.messageText, texts),
      legs: [],
      drop: [],
    };
    for (const l of api.legs) {
      if (stream.endedSince(`l:${l.id}`, since)) continue;
      const known = legs.get(l.id);
      if (known && fresh(known.seen)) continue; // the stream has news of it: its view is newer
      const leg: PlannedLeg = { id: l.id, name: l.name, remoteParty: l.remoteParty, remoteAddress: l.remoteAddress };
      if (l.detail) leg.subType = l.subType;
      planned.legs.push(leg);
    }
    if (api.legsComplete) {
      for (const l of state.legs) {
        if (l.call === api.id && !listed.has(l.id) && !fresh(l.seen)) planned.drop.push(l.id);
      }
    }
    plan.calls.push(planned);
  }
  return plan;
}

const LEVEL_NAMES = new Set(['none', 'restricted', 'external', 'restrictedExternal']);
const strOrNull = (v: unknown) => v === null || typeof v === 'string';

/** A plan read back from the journal, checked (StateShapeError otherwise). */
export function checkPlan(v: unknown): ReconcilePlan {
  const p = v as ReconcilePlan;
  expectShape(p && typeof p === 'object' && Array.isArray(p.end) && Array.isArray(p.calls), 'a reconcile entry has no end and calls lists');
  expectShape(p.end.every((id) => typeof id === 'string'), 'a reconcile entry ends something that is not a call id');
  for (const c of p.calls) {
    expectShape(c && typeof c.id === 'string' && strOrNull(c.name) && strOrNull(c.callCorrelator) && strOrNull(c.coSpace)
      && LEVEL_NAMES.has(c.shown) && Array.isArray(c.legs) && Array.isArray(c.drop), 'a reconcile entry has a call that is not one');
    for (const l of c.legs) {
      expectShape(l && typeof l.id === 'string' && strOrNull(l.name) && strOrNull(l.remoteParty) && strOrNull(l.remoteAddress)
        && (l.subType === undefined || strOrNull(l.subType)), 'a reconcile entry has a leg that is not one');
    }
    expectShape(c.drop.every((id) => typeof id === 'string'), 'a reconcile entry drops something that is not a leg id');
  }
  return p;
}

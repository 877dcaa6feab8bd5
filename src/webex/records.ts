/**
 * Webex Calling CDR records (specs/webex.md §6): the record stays exactly as received; typed fields
 * are derived beside it. Keys are matched case-insensitively with whitespace collapsed, because their
 * capitalisation drifts between the docs and real data ("PSTN Legal Entity" / "PSTN legal entity").
 */

export type RawCdr = Record<string, unknown>;

/** Typed view of one record: camelCase names, times as UTC ISO, durations as integers, booleans. */
export type TypedCdr = Record<string, string | number | boolean | null>;

const normCache = new Map<string, string>();

/** Normalised lookup key: lower case, runs of whitespace collapsed, trimmed. */
export function normKey(key: string): string {
  let n = normCache.get(key);
  if (n === undefined) {
    n = key.trim().replace(/\s+/g, ' ').toLowerCase();
    if (normCache.size < 10_000) normCache.set(key, n);
  }
  return n;
}

type Kind = 'time' | 'int' | 'number' | 'bool' | 'string';

/** Known keys (normalised) → [camelCase name, kind]. Unknown keys get a generic camelCase string field. */
const FIELDS: Record<string, [string, Kind]> = {};
function def(kind: Kind, entries: Array<[string, string]>): void {
  for (const [key, name] of entries) FIELDS[normKey(key)] = [name, kind];
}
def('time', [
  ['Report time', 'reportTime'], ['Start time', 'startTime'], ['Answer time', 'answerTime'],
  ['Release time', 'releaseTime'], ['Call transfer time', 'callTransferTime'],
]);
def('int', [
  ['Duration', 'duration'], ['Ring duration', 'ringDuration'], ['Hold duration', 'holdDuration'],
  ['Site timezone', 'siteTimezone'], ['Route list calls overage', 'routeListCallsOverage'],
]);
def('number', [['Caller Reputation Score', 'callerReputationScore']]);
def('bool', [['Answered', 'answered']]);
def('string', [
  ['Report ID', 'reportId'], ['Call ID', 'callId'], ['Correlation ID', 'correlationId'],
  ['Local call ID', 'localCallId'], ['Remote call ID', 'remoteCallId'], ['Network call ID', 'networkCallId'],
  ['Related call ID', 'relatedCallId'], ['Transfer related call ID', 'transferRelatedCallId'],
  ['Interaction ID', 'interactionId'], ['Local SessionID', 'localSessionId'], ['Remote SessionID', 'remoteSessionId'],
  ['Final local SessionID', 'finalLocalSessionId'], ['Final remote SessionID', 'finalRemoteSessionId'],
  ['Direction', 'direction'], ['Answer indicator', 'answerIndicator'], ['Answered elsewhere', 'answeredElsewhere'],
  ['Answer reason', 'answerReason'], ['Call type', 'callType'], ['Call outcome', 'callOutcome'],
  ['Call outcome reason', 'callOutcomeReason'], ['Releasing party', 'releasingParty'],
  ['Calling number', 'callingNumber'], ['Called number', 'calledNumber'], ['Calling line ID', 'callingLineId'],
  ['Called line ID', 'calledLineId'], ['Dialed digits', 'dialedDigits'], ['Caller ID number', 'callerIdNumber'],
  ['External caller ID number', 'externalCallerIdNumber'], ['Redirecting number', 'redirectingNumber'],
  ['Redirecting party UUID', 'redirectingPartyUuid'], ['Original called party UUID', 'originalCalledPartyUuid'],
  ['Redirect reason', 'redirectReason'], ['Original reason', 'originalReason'], ['Related reason', 'relatedReason'],
  ['User', 'user'], ['User UUID', 'userUuid'], ['User number', 'userNumber'], ['User type', 'userType'],
  ['Device owner UUID', 'deviceOwnerUuid'], ['Department ID', 'departmentId'], ['Location', 'location'],
  ['Site UUID', 'siteUuid'], ['Site main number', 'siteMainNumber'], ['Org UUID', 'orgUuid'],
  ['External customer ID', 'externalCustomerId'], ['Client type', 'clientType'], ['Sub client type', 'subClientType'],
  ['Client version', 'clientVersion'], ['OS type', 'osType'], ['Model', 'model'], ['Device MAC', 'deviceMac'],
  ['Inbound trunk', 'inboundTrunk'], ['Outbound trunk', 'outboundTrunk'], ['Route group', 'routeGroup'],
  ['Authorization code', 'authorizationCode'], ['International country', 'internationalCountry'],
  ['Public Calling IP Address', 'publicCallingIpAddress'], ['Public Called IP Address', 'publicCalledIpAddress'],
  ['PSTN vendor name', 'pstnVendorName'], ['PSTN legal entity', 'pstnLegalEntity'],
  ['PSTN vendor org ID', 'pstnVendorOrgId'], ['PSTN provider ID', 'pstnProviderId'],
  ['Call Recording Platform Name', 'callRecordingPlatformName'], ['Call Recording Result', 'callRecordingResult'],
  ['Call Recording Trigger', 'callRecordingTrigger'], ['Recall type', 'recallType'],
  ['Auto Attendant Key Pressed', 'autoAttendantKeyPressed'], ['Queue type', 'queueType'],
  ['Caller Reputation Service Result', 'callerReputationServiceResult'],
  ['Caller Reputation Score Reason', 'callerReputationScoreReason'], ['WxCC consult merge status', 'wxccConsultMergeStatus'],
  ['ELIN', 'elin'], ['Emergency number source', 'emergencyNumberSource'], ['Transfer type', 'transferType'],
  ['Transfer type context', 'transferTypeContext'],
]);

/** "Some new Key ID" → "someNewKeyId", for keys added after this list was written. */
export function camelKey(key: string): string {
  const words = normKey(key).split(/[^a-z0-9]+/).filter(Boolean);
  return words.map((w, i) => (i === 0 ? w : w[0].toUpperCase() + w.slice(1))).join('');
}

function blank(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (typeof v !== 'string') return false;
  if (v === '' || v === 'NA' || v === 'na') return true;
  if (v.length > 4) return false;
  const t = v.trim().toUpperCase();
  return t === '' || t === 'NA';
}

const CANONICAL = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;

/**
 * A Webex time as UTC ISO: `2026-09-24T07:49:10.939Z`, and the zone-less doc form
 * `2023-10-12 21:22:32.621` (taken as UTC). Null when empty or unreadable.
 */
export function toIsoUtc(v: unknown): string | null {
  if (blank(v) || typeof v !== 'string') return null;
  const s = v.trim();
  // the common case, already canonical: 2026-09-24T07:49:10.939Z
  if (s.length === 24 && s[10] === 'T' && s[23] === 'Z' && CANONICAL.test(s)) return s;
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?$/i.exec(s);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[3] ? m[3].toUpperCase() : 'Z'}`);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

function toInt(v: unknown): number | null {
  if (blank(v)) return null;
  const n = typeof v === 'number' ? v : Number(String(v).trim());
  return Number.isFinite(n) ? Math.trunc(n) : null;
}

function toNumber(v: unknown): number | null {
  if (blank(v)) return null;
  const n = typeof v === 'number' ? v : Number(String(v).trim());
  return Number.isFinite(n) ? n : null;
}

function toBool(v: unknown): boolean | null {
  if (typeof v === 'boolean') return v;
  if (blank(v)) return null;
  const s = String(v).trim().toLowerCase();
  if (s === 'true' || s === 'yes' || s === '1') return true;
  if (s === 'false' || s === 'no' || s === '0') return false;
  return null;
}

const resolved = new Map<string, [string, Kind]>();
function resolve(key: string): [string, Kind] {
  let r = resolved.get(key);
  if (!r) {
    r = FIELDS[normKey(key)] ?? [camelKey(key), 'string'];
    if (resolved.size < 10_000) resolved.set(key, r);
  }
  return r;
}

function toStr(v: unknown): string | number | boolean | null {
  return blank(v) ? null : typeof v === 'object' ? JSON.stringify(v) : (v as string | number | boolean);
}

type Conv = (v: unknown) => string | number | boolean | null;
const KINDS: Kind[] = ['time', 'int', 'number', 'bool', 'string'];
const CONVERT: Conv[] = [toIsoUtc, toInt, toNumber, toBool, toStr];

/**
 * Records of one response share their key order. For each key order seen, a builder that creates the
 * typed object in one literal is compiled once (the keys are embedded as JSON string literals, the
 * names are [A-Za-z0-9] only), which is several times faster than adding 87 properties one by one.
 */
interface Shape {
  keys: string[];
  build: (raw: RawCdr) => TypedCdr;
}
const shapes: Shape[] = [];
const MAX_SHAPES = 16;

function compile(keys: string[]): Shape {
  const parts: string[] = [];
  for (const key of keys) {
    const [name, kind] = resolve(key);
    if (!name) continue;
    parts.push(`${JSON.stringify(name)}: c${KINDS.indexOf(kind)}(r[${JSON.stringify(key)}])`);
  }
  // eslint-disable-next-line no-new-func
  const fn = new Function('r', 'c0', 'c1', 'c2', 'c3', 'c4', `return {${parts.join(', ')}};`) as (r: RawCdr, ...c: Conv[]) => TypedCdr;
  const [c0, c1, c2, c3, c4] = CONVERT;
  return { keys, build: (r) => fn(r, c0, c1, c2, c3, c4) };
}

function shapeOf(raw: RawCdr): Shape | null {
  const keys = Object.keys(raw);
  for (let i = 0; i < shapes.length; i++) {
    const s = shapes[i];
    if (s.keys.length !== keys.length) continue;
    let same = true;
    for (let j = 0; j < keys.length; j++) {
      if (s.keys[j] !== keys[j]) {
        same = false;
        break;
      }
    }
    if (same) {
      if (i > 0) {
        shapes.splice(i, 1);
        shapes.unshift(s);
      }
      return s;
    }
  }
  if (keys.length > 200) return null;
  const s = compile(keys);
  shapes.unshift(s);
  if (shapes.length > MAX_SHAPES) shapes.pop();
  return s;
}

/** Typed fields of a record. `""` and `"NA"` become null; the raw record is not touched. */
export function typedRecord(raw: RawCdr): TypedCdr {
  const shape = shapeOf(raw);
  if (shape) return shape.build(raw);
  const out: TypedCdr = {};
  for (const key of Object.keys(raw)) {
    const [name, kind] = resolve(key);
    if (name) out[name] = CONVERT[KINDS.indexOf(kind)](raw[key]);
  }
  return out;
}

/** Case-insensitive read of one key: `field(r, 'report id')`. */
export function field(raw: RawCdr, key: string): unknown {
  if (Object.prototype.hasOwnProperty.call(raw, key)) return raw[key];
  const want = normKey(key);
  for (const k of Object.keys(raw)) if (normKey(k) === want) return raw[k];
  return undefined;
}

/**
 * The dedup key: `Report ID` (lower-cased), or when a record has none, a stable composite of the
 * fields that identify a leg (specs/webex.md §5).
 */
export function recordKey(raw: RawCdr): string {
  const id = field(raw, 'Report ID');
  if (typeof id === 'string' && id.trim() !== '') return id.trim().toLowerCase();
  const parts = ['Correlation ID', 'Local call ID', 'Call ID', 'User UUID', 'Direction', 'Start time'].map((k) => String(field(raw, k) ?? ''));
  return `composite:${parts.join('|').toLowerCase()}`;
}

/**
 * Cisco Meeting Server CDR documents: `<records session callBridge><record …><call|callLeg|…/></record>…</records>`.
 * Pure: XML text in, records out. Knows nothing of HTTP or Node-RED (specs/cms.md §1–§3).
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** `typed`: trimmed text, booleans and documented numbers. `xmltodict`: the exact shape Cisco's cdr-receiver-db stores. */
export type ValueMode = 'typed' | 'xmltodict';

export type CdrParseErrorCode = 'empty' | 'dtd' | 'malformed' | 'root';

export class CdrParseError extends Error {
  readonly code: CdrParseErrorCode;
  constructor(code: CdrParseErrorCode, message: string) {
    super(message);
    this.name = 'CdrParseError';
    this.code = code;
  }
}

/** One `<record>`. `body` is the record's child element(s) keyed by element name (`call`, `callLeg`, …). */
export interface CmsRecord {
  type: string | null;
  time: string | null;
  recordIndex: number | null;
  correlatorIndex: number | null;
  /** Cisco spells the attribute `numPreceedingRecordsMissing`; 0 when absent. */
  numPrecedingRecordsMissing: number;
  session: string | null;
  callBridge: string | null;
  /** Name of the first child element: call, callLeg, recording, streaming, or whatever a newer CMS sends. */
  objectType: string | null;
  /** The `id` attribute of that child element. */
  id: string | null;
  /** Typed mode: `{ [objectType]: {...fields} }` plus any unknown record attributes under `attributes`. */
  body: Record<string, unknown>;
  /** The record exactly as xmltodict would give it (only filled in xmltodict mode). */
  xmltodict?: Record<string, unknown>;
}

export interface CmsDocument {
  session: string | null;
  callBridge: string | null;
  records: CmsRecord[];
}

// Fields whose text is a number in every CMS release seen (specs/cms.md §3). Anything else stays text,
// so an all-digit remoteParty or displayName is never turned into a number.
const NUMERIC_FIELDS = new Set([
  'durationSeconds', 'activatedDuration', 'callLegsCompleted', 'callLegsMaxActive',
  'maxSizeWidth', 'maxSizeHeight', 'durationPercentage', 'duration', 'density',
  'mainVideoViewer', 'mainVideoContributor', 'presentationViewer', 'presentationContributor',
  'multiStreamVideo',
]);
// Free text that must stay text even when it reads "true" or "false".
const TEXT_FIELDS = new Set([
  'name', 'ownerName', 'displayName', 'remoteParty', 'remoteAddress', 'localAddress', 'cdrTag',
  'sipCallId', 'replacesSipCallId', 'ownerId', 'path', 'recorderUrl', 'streamUrl', 'streamerUrl',
]);
// Elements that repeat; typed mode always gives an array for them.
const REPEATED_FIELDS = new Set(['alarm']);
const RECORD_ATTRS = new Set(['@type', '@time', '@recordIndex', '@correlatorIndex', '@numPreceedingRecordsMissing']);

const DTD = /<!DOCTYPE|<!ENTITY/i;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  // Entities are decoded by `decode` below in one pass (the five XML ones and character references);
  // documents with a DTD are refused before parsing, so no declared entity can ever be expanded. The
  // parser's own entity handling runs a replace per known entity over every value, which cost more than
  // the parse itself.
  processEntities: false,
  // No path strings: nothing here asks for them, and fast-xml-parser would build one for every element.
  jPath: false,
  // The parser's ordered tree, turned into objects by `toObjects` below (fast-xml-parser's own object
  // step tracks a path matcher and copies every attribute map: a sixth of the parse).
  preserveOrder: true,
});

/**
 * Parses one POST body. Throws CdrParseError for anything that is not a well-formed `<records>` document,
 * so the receiver can answer 400 and CMS keeps the records.
 */
export function parseCdrDocument(body: string | Buffer, mode: ValueMode = 'typed'): CmsDocument {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim() === '') throw new CdrParseError('empty', 'empty body');
  if (DTD.test(text)) throw new CdrParseError('dtd', 'DTD or entity declarations are not accepted');
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new CdrParseError('malformed', `malformed XML: ${valid.err.msg} (line ${valid.err.line})`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = xmlObjects(text);
  } catch (err) {
    // the validator lets a few broken constructs through that the parser then trips on
    throw new CdrParseError('malformed', `malformed XML: ${(err as Error).message}`);
  }
  const rootNames = Object.keys(doc);
  if (rootNames.length !== 1 || rootNames[0] !== 'records') {
    throw new CdrParseError('root', `root element is <${rootNames[0] ?? '?'}>, expected <records>`);
  }
  const root = doc.records;
  const envelope = isObject(root) ? root : {};
  const session = str(envelope['@session']);
  const callBridge = str(envelope['@callBridge']);
  const items = Array.isArray(envelope.record) ? envelope.record : [];
  const records = new Array<CmsRecord>(items.length);
  for (let i = 0; i < items.length; i++) {
    const raw = isObject(items[i]) ? (items[i] as Record<string, unknown>) : {};
    records[i] = toRecord(raw, session, callBridge, mode);
  }
  return { session, callBridge, records };
}

function toRecord(raw: Record<string, unknown>, session: string | null, callBridge: string | null, mode: ValueMode): CmsRecord {
  let objectType: string | null = null;
  let id: string | null = null;
  const body: Record<string, unknown> = {};
  let attributes: Record<string, unknown> | undefined;
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (key.charCodeAt(0) === 64 /* @ */) {
      if (!RECORD_ATTRS.has(key)) (attributes ??= {})[key.slice(1)] = value;
      continue;
    }
    if (key === '#text') continue; // stray text between elements carries nothing
    if (objectType === null) {
      objectType = key;
      const first = Array.isArray(value) ? value[0] : value;
      if (isObject(first)) id = str(first['@id']);
    }
    if (mode === 'typed') body[key] = typed(key, value);
  }
  if (attributes && mode === 'typed') body.attributes = attributes;
  const record: CmsRecord = {
    type: str(raw['@type']),
    time: str(raw['@time']),
    recordIndex: int(raw['@recordIndex']),
    correlatorIndex: int(raw['@correlatorIndex']),
    numPrecedingRecordsMissing: int(raw['@numPreceedingRecordsMissing']) ?? 0,
    session,
    callBridge,
    objectType,
    id,
    body,
  };
  if (mode === 'xmltodict') record.xmltodict = xmltodict(raw) as Record<string, unknown>;
  return record;
}

/** A document as fast-xml-parser's objects (no validation: see parseCdrDocument). Exported for its test. */
export function xmlObjects(text: string): Record<string, unknown> {
  return toObjects(parser.parse(text) as OrderedNode[], 0);
}

/** One entry of fast-xml-parser's ordered output: `{ [name]: children }` (attributes under `:@`) or `{ '#text': text }`. */
type OrderedNode = Record<string, unknown>;
const hasOwn = Object.prototype.hasOwnProperty;

/**
 * The object form fast-xml-parser gives without `preserveOrder`, for the options above: the same keys in
 * the same order (children, text, then attributes), an element with only text as its string, an empty one
 * as '', repeated names as a list, and `record` directly under the root always a list. A test checks it
 * against fast-xml-parser's own output on every fixture and thousands of mutated documents.
 */
function toObjects(nodes: OrderedNode[], depth: number): Record<string, unknown> {
  let text: string | undefined;
  const out: Record<string, unknown> = {};
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i];
    let name: string | undefined;
    for (const k in node) {
      if (k !== ':@') {
        name = k;
        break;
      }
    }
    if (name === '#text') {
      text = text === undefined ? String(node[name]) : text + String(node[name]);
      continue;
    }
    if (name === undefined || !node[name]) continue;
    let value: unknown = toObjects(node[name] as OrderedNode[], depth + 1);
    const attrs = node[':@'] as Record<string, unknown> | undefined;
    if (attrs) {
      for (const a in attrs) (value as Record<string, unknown>)[a] = attrs[a];
    } else {
      let count = 0;
      let only: string | undefined;
      for (const k in value as Record<string, unknown>) {
        only = k;
        if (++count > 1) break;
      }
      if (count === 0) value = '';
      else if (count === 1 && only === '#text') value = (value as Record<string, unknown>)['#text'];
    }
    const seen = out[name];
    if (seen !== undefined && hasOwn.call(out, name)) {
      if (Array.isArray(seen)) seen.push(value);
      else out[name] = [seen, value];
    } else {
      out[name] = depth === 1 && name === 'record' ? [value] : value;
    }
  }
  if (text !== undefined && text.length > 0) out['#text'] = text;
  return out;
}

const ENTITY = /&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|(amp|lt|gt|quot|apos));/g;
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML's predefined entities and character references, decoded in a single pass. */
export function decode(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(ENTITY, (m, dec: string | undefined, hex: string | undefined, name: string | undefined) => {
    if (name) return NAMED[name];
    const code = dec !== undefined ? Number(dec) : parseInt(hex as string, 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : m;
  });
}

/**
 * xmltodict's conventions: empty element → null, everything else as fast-xml-parser gave it (strings),
 * decoded. Done in place: the parser's objects are fresh for every document and used only here.
 */
function xmltodict(value: unknown): unknown {
  if (value === '') return null;
  if (typeof value === 'string') return decode(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = xmltodict(value[i]);
    return value;
  }
  if (isObject(value)) {
    for (const key of Object.keys(value)) value[key] = xmltodict(value[key]);
    return value;
  }
  return value;
}

function typed(key: string, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => typedScalarOrObject(key, v));
  const one = typedScalarOrObject(key, value);
  return REPEATED_FIELDS.has(key) ? [one] : one;
}

function typedScalarOrObject(key: string, value: unknown): unknown {
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const v = value[k];
      if (k === '#text') out.text = v;
      else if (k.charCodeAt(0) === 64) out[k.slice(1)] = typedScalar(k.slice(1), v);
      else out[k] = typed(k, v);
    }
    return out;
  }
  return typedScalar(key, value);
}

function typedScalar(key: string, raw: unknown): unknown {
  if (typeof raw !== 'string') return raw;
  if (raw === '') return null;
  const value = decode(raw);
  if (TEXT_FIELDS.has(key)) return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (NUMERIC_FIELDS.has(key)) {
    const n = Number(value);
    return Number.isFinite(n) ? n : value;
  }
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? decode(v) : null;
}

function int(v: unknown): number | null {
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) return null;
  return Number(v);
}

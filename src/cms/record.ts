/**
 * The one reader of CMS records as cms-cdr-in emits them, for every consumer (cms-call-tracker,
 * cdr-normalize): typed (`payload.type`, `payload.callLeg.id`) or xmltodict (`payload['@type']`,
 * `payload.callLeg['@id']`), with msg.cms for what the payload leaves out.
 */

/** One record, whatever shape cms-cdr-in gave it. */
export interface CmsRecordView {
  type: string;
  time: string | null;
  session: string | null;
  callBridge: string | null;
  objectType: string | null;
  id: string | null;
  /** The record's child element (`call`, `callLeg`, …): values may be typed or xmltodict strings. */
  fields: Record<string, unknown>;
  /** The payload as received. */
  raw: unknown;
}

/** The text of a field in typed or xmltodict form (trimmed; empty → null). */
export function text(v: unknown): string | null {
  if (Array.isArray(v)) return text(v[0]);
  if (typeof v === 'string') {
    const t = v.trim();
    return t === '' ? null : t;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('#text' in o) return text(o['#text']);
    if ('text' in o) return text(o.text);
  }
  return null;
}

const CHILDREN = ['call', 'callLeg', 'recording', 'streaming'];

/**
 * Reads what cms-cdr-in sends (msg.payload, msg.cms), in either value mode: a typed record
 * (`payload.type`, `payload.callLeg.id`) or an xmltodict one (`payload['@type']`, `payload.callLeg['@id']`).
 * Null when it is not a record.
 */
export function readRecord(payload: unknown, cms?: Record<string, unknown> | null): CmsRecordView | null {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return null;
  const p = payload as Record<string, unknown>;
  const meta = cms ?? {};
  const type = text(p['@type']) ?? text(p.type) ?? text(meta.type);
  if (!type) return null;
  let objectType = text(p.objectType) ?? (text(meta.type) === type ? text(meta.objectType) : null);
  if (!objectType || !(objectType in p)) objectType = CHILDREN.find((k) => k in p) ?? Object.keys(p).find((k) => !k.startsWith('@') && isObj(p[k])) ?? null;
  let child = objectType ? p[objectType] : null;
  if (Array.isArray(child)) child = child[0];
  const fields = isObj(child) ? child : {};
  const id = text(fields['@id']) ?? text(fields.id) ?? text(p.id) ?? (text(meta.type) === type ? text(meta.id) : null);
  return {
    type,
    time: text(p['@time']) ?? text(p.time),
    session: text(p.session) ?? text(meta.session),
    callBridge: text(p.callBridge) ?? text(meta.callBridge),
    objectType,
    id,
    fields,
    raw: payload,
  };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

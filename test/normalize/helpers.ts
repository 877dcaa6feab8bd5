/** Feeds source data through the real source modules into the normalizer, the way the nodes do. */
import { parseCdrDocument, type CmsRecord } from '../../src/cms/parse';
import { CmsLegJoiner, normalizeMessage, type CdrRecord, type MapOptions } from '../../src/normalize';

export const OBSERVED = '2026-11-23T12:00:00Z';
export const opts = (o: Partial<MapOptions> = {}): MapOptions => ({ observedAt: OBSERVED, keepRaw: false, ...o });

/** The message cms-cdr-in sends for one record (typed mode). */
export function cmsMessage(r: CmsRecord): Record<string, unknown> {
  const payload = r.xmltodict ?? {
    type: r.type, time: r.time, recordIndex: r.recordIndex, correlatorIndex: r.correlatorIndex,
    numPrecedingRecordsMissing: r.numPrecedingRecordsMissing, session: r.session, callBridge: r.callBridge,
    objectType: r.objectType, id: r.id, ...r.body,
  };
  return { topic: r.type, payload, cms: { session: r.session, callBridge: r.callBridge, type: r.type, recordIndex: r.recordIndex, objectType: r.objectType, id: r.id } };
}

export function runCms(bodies: string[], joiner = new CmsLegJoiner(), o: Partial<MapOptions> = {}, mode: 'typed' | 'xmltodict' = 'typed'): CdrRecord[] {
  const out: CdrRecord[] = [];
  for (const body of bodies) {
    for (const r of parseCdrDocument(body, mode).records) out.push(...normalizeMessage(cmsMessage(r), joiner, opts(o)).records);
  }
  return out;
}

/**
 * cdr-normalize's pure core: recognises which source node a message came from by the metadata that
 * node sets (msg.cms, msg.comx, msg.webex, msg.ccfs), maps it with that source's mapper and checks
 * every output against the schema. A message it cannot map throws NormalizeError; it never returns a
 * half-filled record.
 */
import type { ComxCdr } from '../comx/index-file';
import type { CdrRow } from '../ccfs/bill-file';
import type { RawCdr, TypedCdr } from '../webex/records';
import { NormalizeError, validateCdr, type CdrRecord, type SourceType } from './schema';
import { CmsLegJoiner, mapCmsLeg, readCmsRecord, type CmsInput } from './cms';
import { mapComx } from './comx';
import { mapWebex } from './webex';
import { mapCcfsRow } from './ccfs';
import { isObject } from './common';
import type { MapOptions } from './options';

export * from './schema';
export { cdrId } from './id';
export { CmsLegJoiner, CMS_LIMITS, type CmsJoinState, type CmsInput } from './cms';
export type { MapOptions } from './options';

export interface NormalizeResult {
  source: SourceType;
  records: CdrRecord[];
  /** The message was recognised but holds nothing to emit yet (CMS callStart, a leg's start or update; CC-FS recording-index rows). */
  consumed: boolean;
  /** The CMS records that changed the leg join state, for the node's journal (replayed with CmsLegJoiner.fromSaved). */
  joined: CmsInput[];
}

/** Which source node sent this message, from the metadata object it sets; null when none. */
export function detectSource(msg: Record<string, unknown>): SourceType | null {
  const found: SourceType[] = [];
  if (isObject(msg.cms)) found.push('cms');
  if (isObject(msg.comx)) found.push('comx');
  if (isObject(msg.webex)) found.push('webex');
  if (isObject(msg.ccfs)) found.push('ccfs');
  if (found.length > 1) throw new NormalizeError(`message carries the metadata of several sources (${found.join(', ')})`);
  return found[0] ?? null;
}

/** Maps one message. `joiner` holds the CMS leg state (one per node). */
export function normalizeMessage(msg: Record<string, unknown>, joiner: CmsLegJoiner, opts: MapOptions): NormalizeResult {
  const source = detectSource(msg);
  if (source === null) {
    throw new NormalizeError('not a message from a cdrflow source node (no msg.cms, msg.comx, msg.webex or msg.ccfs)');
  }
  const records: CdrRecord[] = [];
  const joined: CmsInput[] = [];
  let consumed = false;
  const topic = typeof msg.topic === 'string' ? msg.topic : '';
  switch (source) {
    case 'cms': {
      const cms = msg.cms as Record<string, unknown>;
      const items = topic === 'records' && Array.isArray(msg.payload) ? msg.payload : [msg.payload];
      // read them all first: a bad record fails the message before any state changes
      const inputs = items.map((p) => readCmsRecord(p, cms));
      for (const input of inputs) {
        if (joiner.affects(input)) joined.push(input);
        const done = joiner.push(input);
        for (const j of done) records.push(mapCmsLeg(j, opts));
      }
      consumed = records.length === 0;
      break;
    }
    case 'comx': {
      const meta = msg.comx as Record<string, unknown>;
      if (topic === 'comx/cdr') {
        records.push(mapComx(msg.payload as ComxCdr, meta, msg.recording, opts));
      } else if (topic === 'comx/cdrs' && Array.isArray(msg.payload)) {
        const recs = Array.isArray(msg.recordings) ? msg.recordings : [];
        msg.payload.forEach((c, i) => records.push(mapComx(c as ComxCdr, meta, recs[i], opts)));
      } else {
        throw new NormalizeError(`Com.X message "${topic}" is not a CDR (only comx/cdr and comx/cdrs are)`);
      }
      break;
    }
    case 'webex': {
      if (Array.isArray(msg.payload)) {
        const typed = Array.isArray(msg.cdr) ? (msg.cdr as TypedCdr[]) : [];
        msg.payload.forEach((raw, i) => records.push(mapWebex(raw as RawCdr, typed[i], opts)));
      } else if (isObject(msg.payload)) {
        records.push(mapWebex(msg.payload, isObject(msg.cdr) ? (msg.cdr as TypedCdr) : undefined, opts));
      } else {
        throw new NormalizeError(`Webex message "${topic}" holds no record`);
      }
      break;
    }
    case 'ccfs': {
      const meta = msg.ccfs as Record<string, unknown>;
      if (topic === 'ccfs/call' && Array.isArray(msg.payload)) {
        for (const row of msg.payload) records.push(mapCcfsRow(row as CdrRow, meta, opts));
      } else if (topic === 'ccfs/record') {
        consumed = true; // a recording-index row: not a call leg
      } else {
        throw new NormalizeError(`CC-FS message "${topic}" is not a CDR (only ccfs/call is)`);
      }
      break;
    }
  }
  for (const r of records) {
    const bad = validateCdr(r);
    if (bad.length > 0) throw new NormalizeError(`${r.source_type} record ${r.source_record_id}: ${bad.join('; ')}`);
  }
  return { source, records, consumed, joined };
}

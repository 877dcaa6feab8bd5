/**
 * The record id: sha256 hex of `source_type|source_instance|source_record_id` (specs/peers.md §5.2).
 * The same source record gives the same id on every run and machine, so a database upsert on `id`
 * makes at-least-once delivery effectively-once.
 */
import * as crypto from 'node:crypto';
import type { SourceType } from './schema';

/** crypto.hash (Node >= 20.12) is a one-shot digest, several times cheaper than createHash for short input. */
const oneShot = (crypto as unknown as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

export function hexDigest(alg: 'sha256' | 'sha1', data: string): string {
  return oneShot ? oneShot(alg, data, 'hex') : crypto.createHash(alg).update(data).digest('hex');
}

export function cdrId(sourceType: SourceType, sourceInstance: string, sourceRecordId: string): string {
  return hexDigest('sha256', `${sourceType}|${sourceInstance}|${sourceRecordId}`);
}

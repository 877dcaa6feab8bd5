/**
 * The record id: sha256 hex of `source_type|source_instance|source_record_id` (specs/peers.md §5.2).
 * The same source record gives the same id on every run and machine, so a database upsert on `id`
 * makes at-least-once delivery effectively-once.
 */
import { createHash } from 'node:crypto';
import type { SourceType } from './schema';

export function cdrId(sourceType: SourceType, sourceInstance: string, sourceRecordId: string): string {
  return createHash('sha256').update(`${sourceType}|${sourceInstance}|${sourceRecordId}`).digest('hex');
}

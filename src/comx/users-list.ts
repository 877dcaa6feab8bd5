/**
 * The Com.X extension list (`GET /commagui/cdr?users`, spec v1.6 §2.3): CSV rows of extension,
 * friendly name and voicemail PIN. The PIN is a secret: dropped unless asked for (peers.md §1.5).
 */
import { parse as parseSync } from 'csv-parse/sync';
import type { MalformedLine } from './index-file';

export interface ComxUser {
  extension: string;
  name: string | null;
  /** Only when asked for: the voicemail PIN is a secret. */
  pin?: string | null;
  line: number;
}

const nullable = (s: string | undefined): string | null => (s === undefined || s === '' ? null : s);

/**
 * The `?users` CSV: extension, friendly name, voicemail PIN (spec §2.3). A header row, if any, is
 * skipped. The PIN is dropped unless `includePin`.
 */
export async function parseUsers(text: string | Buffer, includePin = false): Promise<{ users: ComxUser[]; malformed: MalformedLine[] }> {
  const users: ComxUser[] = [];
  const malformed: MalformedLine[] = [];
  let rows: { record: string[]; info: { lines: number } }[];
  try {
    rows = parseSync(text, { relax_column_count: true, skip_empty_lines: true, bom: true, info: true, relax_quotes: true }) as any;
  } catch (err) {
    return { users, malformed: [{ line: (err as { lines?: number }).lines ?? 0, reason: (err as Error).message, text: '' }] };
  }
  rows.forEach((r, i) => {
    const f = r.record.map((s) => s.trim());
    if (i === 0 && /^(ext|extension|user)/i.test(f[0] ?? '')) return; // header
    if (f.length < 2 || f[0] === '') {
      malformed.push({ line: r.info.lines, reason: `expected extension, name[, pin], got ${f.length} column(s)`, text: includePin ? f.join(',') : f.slice(0, 2).join(',') });
      return;
    }
    const u: ComxUser = { extension: f[0], name: nullable(f[1]), line: r.info.lines };
    if (includePin) u.pin = nullable(f[2]);
    users.push(u);
  });
  return { users, malformed };
}

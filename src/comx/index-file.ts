/**
 * The Com.X `index.txt` (spec v1.6 §2.2.2; specs/peers.md §1.4–1.5): one CDR per line, comma
 * separated, 11 columns, 12/13 with account code / friendly name, 15 with `&extended`.
 *
 * csv-parse splits the lines (streamed, so a 1,000,000-line index is never held whole). Lines are
 * independent: the wire form shows no quoting, so the stream is split without quote handling (one
 * stray quote can never swallow the rest of the file) and only a line that holds a `"` is read again
 * as RFC 4180, which handles a properly quoted comma and reports a broken one. Every line that is not
 * a well-formed record is reported with its line number, never dropped silently.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { zonedToUtc, isoUtc, parseLocal, type LocalParts } from '../common/time';

export type Direction = 'inbound' | 'outbound' | 'internal' | 'unknown';

export interface ComxCdr {
  uniqueId: string;
  /** Call start in UTC, ISO 8601 with Z. */
  start: string;
  /** The start exactly as the PBX printed it (local wall clock). */
  startLocal: string;
  /** The PBX zone used to convert it. */
  timezone: string;
  /** The local time happened twice (DST fall-back); `start` is the instant chosen, `startAlternative` the other. */
  startAmbiguous: boolean;
  startAlternative?: string;
  /** How the ambiguity was settled: by the epoch in the unique id, or the earlier instant. */
  startResolvedBy?: 'uniqueId' | 'earlier';
  /** The local time does not exist (DST spring-forward gap); read with the offset before the change. */
  startNonexistent: boolean;
  callType: string;
  direction: Direction;
  extension: string | null;
  dialledNumber: string | null;
  externalCallerId: string | null;
  disposition: string;
  answered: boolean;
  /** Seconds from dial to hang-up. */
  duration: number;
  /** Seconds from answer to hang-up ("estimated" by the PBX). */
  billableSeconds: number;
  /** Bytes; 0 when there is no recording. */
  recordingSize: number;
  recordingFile: string | null;
  friendlyName?: string | null;
  accountCode?: string | null;
  channel?: string | null;
  destinationChannel?: string | null;
  /** Columns the line had (11, 12, 13, 15 or more when a friendly name held unquoted commas). */
  columns: number;
  /** Set when the record was read with a repair, e.g. unquoted commas joined into the friendly name. */
  repaired?: string;
  /** 1-based line in the index. */
  line: number;
  /** The line as received (no line end). */
  raw: string;
}

export interface MalformedLine {
  line: number;
  reason: string;
  text: string;
}

export type IndexItem = { kind: 'cdr'; cdr: ComxCdr } | { kind: 'malformed'; malformed: MalformedLine };

export interface IndexOptions {
  /** The PBX's IANA time zone. */
  zone: string;
  /** `&extended` was asked for: more than 15 columns are read as a friendly name holding commas. */
  extended?: boolean;
  /** Longest line accepted, in bytes. */
  maxLineBytes?: number;
}

const DIRECTIONS: Record<string, Direction> = {
  CALLTYPE_INBOUND: 'inbound',
  CALLTYPE_OUTBOUND: 'outbound',
  CALLTYPE_INTERNAL: 'internal',
};

const SLASH_TIME = /^(\d{4})\/(\d{2})\/(\d{2})\/(\d{2}):(\d{2}):(\d{2})$/;
const ID_RE = /^[\w.-]+$/;
const INT_RE = /^\d+$/;

/** The record's local start: the spec's `YYYY/MM/DD/hh:mm:ss`, or `YYYY-MM-DD hh:mm:ss` / 14 digits. */
export function parseComxTime(text: string): LocalParts | null {
  const m = SLASH_TIME.exec(text);
  if (m) return parseLocal(`${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}`);
  return parseLocal(text);
}

/** The epoch seconds in an Asterisk-style unique id (`1362123180.67`), if it has that shape. */
export function idEpochMs(id: string): number | null {
  const m = /^(?:.*-)?(\d{9,11})\.\d+$/.exec(id);
  return m ? Number(m[1]) * 1000 : null;
}

/** The dedup key of an index line: the unique id and the full line, so repeated ids with other content stay distinct. */
export function cdrKey(cdr: Pick<ComxCdr, 'uniqueId' | 'raw'>): string {
  return createHash('sha1').update(`${cdr.uniqueId}|${cdr.raw}`).digest('base64').slice(0, 27);
}

const nullable = (s: string | undefined): string | null => (s === undefined || s === '' ? null : s);

/** Maps one line's fields to a CDR, or says why it is malformed. */
export function toCdr(fieldsIn: string[], raw: string, line: number, opts: IndexOptions): IndexItem {
  const bad = (reason: string): IndexItem => ({ kind: 'malformed', malformed: { line, reason, text: raw } });
  const f = fieldsIn.map((s) => s.trim());
  const n = f.length;
  let extra: { friendlyName?: string | null; accountCode?: string | null; channel?: string | null; destinationChannel?: string | null } = {};
  let repaired: string | undefined;
  if (n < 11) return bad(`expected at least 11 columns, got ${n}`);
  if (n === 12) extra = { accountCode: nullable(f[11]) };
  else if (n === 13) extra = { friendlyName: nullable(f[11]), accountCode: nullable(f[12]) };
  else if (n === 15) extra = { friendlyName: nullable(f[11]), accountCode: nullable(f[12]), channel: nullable(f[13]), destinationChannel: nullable(f[14]) };
  else if (n > 15 && opts.extended) {
    // channel names hold no commas: the surplus belongs to the friendly name (peers.md §1.5)
    extra = { friendlyName: nullable(fieldsIn.slice(11, n - 3).join(',').trim()), accountCode: nullable(f[n - 3]), channel: nullable(f[n - 2]), destinationChannel: nullable(f[n - 1]) };
    repaired = 'friendly name held unquoted commas';
  } else if (n !== 11) return bad(`expected 11, 12, 13 or 15 columns, got ${n}`);

  const [uniqueId, when, callType, extension, dialled, callerId, disposition, duration, billsec, size, file] = f;
  if (!ID_RE.test(uniqueId)) return bad(`unique id ${JSON.stringify(uniqueId)} is not valid`);
  const parts = parseComxTime(when);
  if (!parts) return bad(`start ${JSON.stringify(when)} is not a date YYYY/MM/DD/hh:mm:ss`);
  if (!INT_RE.test(duration)) return bad(`duration ${JSON.stringify(duration)} is not a whole number`);
  if (!INT_RE.test(billsec)) return bad(`billable seconds ${JSON.stringify(billsec)} is not a whole number`);
  if (!INT_RE.test(size)) return bad(`recording size ${JSON.stringify(size)} is not a whole number`);
  if (callType === '') return bad('call type is empty');
  if (disposition === '') return bad('disposition is empty');

  const z = zonedToUtc(parts, opts.zone);
  let startMs = z.date.getTime();
  let alternative: number | undefined;
  let resolvedBy: ComxCdr['startResolvedBy'];
  if (z.ambiguous && z.alternative) {
    alternative = z.alternative.getTime();
    resolvedBy = 'earlier';
    // the id's epoch is the channel's creation, seconds before the start: it tells the two hours apart
    const epoch = idEpochMs(uniqueId);
    if (epoch !== null && Math.abs(alternative - epoch) < Math.abs(startMs - epoch) && Math.abs(alternative - epoch) < 1_800_000) {
      [startMs, alternative] = [alternative, startMs];
      resolvedBy = 'uniqueId';
    } else if (epoch !== null && Math.abs(startMs - epoch) < 1_800_000) {
      resolvedBy = 'uniqueId';
    }
  }
  const cdr: ComxCdr = {
    uniqueId,
    start: isoUtc(startMs),
    startLocal: when,
    timezone: opts.zone,
    startAmbiguous: z.ambiguous,
    ...(alternative !== undefined ? { startAlternative: isoUtc(alternative), startResolvedBy: resolvedBy } : {}),
    startNonexistent: z.nonexistent,
    callType,
    direction: DIRECTIONS[callType] ?? 'unknown',
    extension: nullable(extension),
    dialledNumber: nullable(dialled),
    externalCallerId: nullable(callerId),
    disposition,
    answered: disposition === 'CALL_ANSWERED',
    duration: Number(duration),
    billableSeconds: Number(billsec),
    recordingSize: Number(size),
    recordingFile: nullable(file),
    ...extra,
    columns: n,
    ...(repaired ? { repaired } : {}),
    line,
    raw,
  };
  return { kind: 'cdr', cdr };
}

function quotedLine(raw: string, line: number, opts: IndexOptions): IndexItem {
  let rows: string[][];
  try {
    rows = parseSync(raw, { relax_column_count: true }) as string[][];
  } catch (err) {
    return { kind: 'malformed', malformed: { line, reason: `bad quoting: ${(err as Error).message.replace(/ at line \d+.*$/, '')}`, text: raw } };
  }
  if (rows.length !== 1) return { kind: 'malformed', malformed: { line, reason: 'bad quoting', text: raw } };
  return toCdr(rows[0], raw, line, opts);
}

/**
 * Reads an index from a stream (an HTTP body, a zip entry) and yields CDRs and malformed lines in
 * line order. The consumer's pace drives the reading (async iteration keeps the stream paused).
 */
export async function* parseIndexStream(source: NodeJS.ReadableStream | AsyncIterable<Buffer | string>, opts: IndexOptions): AsyncGenerator<IndexItem> {
  const skipped: IndexItem[] = [];
  const reported = new Set<number>();
  const parser = parse({
    quote: false,
    relax_column_count: true,
    skip_empty_lines: true,
    bom: true,
    info: true,
    raw: true,
    max_record_size: opts.maxLineBytes ?? 1024 * 1024,
    skip_records_with_error: true,
    on_skip: (err, raw) => {
      const line = (err as { lines?: number } | undefined)?.lines ?? 0;
      if (reported.has(line)) return undefined;
      reported.add(line);
      skipped.push({ kind: 'malformed', malformed: { line, reason: err?.message ?? 'unreadable line', text: (raw ?? '').slice(0, 200) } });
      return undefined;
    },
  });
  const input = typeof (source as NodeJS.ReadableStream).pipe === 'function' ? (source as NodeJS.ReadableStream) : Readable.from(source as AsyncIterable<Buffer | string>);
  input.on('error', (err: Error) => parser.destroy(err));
  input.pipe(parser);
  for await (const r of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
    while (skipped.length) yield skipped.shift()!;
    const raw = r.raw.replace(/^[\r\n]+|[\r\n]+$/g, '');
    const line = r.info.lines;
    if (r.record.length === 1 && r.record[0].trim() === '') continue; // a blank line
    yield raw.includes('"') ? quotedLine(raw, line, opts) : toCdr(r.record, raw, line, opts);
  }
  while (skipped.length) yield skipped.shift()!;
}

/** The whole index at once (small answers, tests). */
export async function parseIndexText(text: string | Buffer, opts: IndexOptions): Promise<{ cdrs: ComxCdr[]; malformed: MalformedLine[] }> {
  const cdrs: ComxCdr[] = [];
  const malformed: MalformedLine[] = [];
  for await (const item of parseIndexStream(Readable.from([typeof text === 'string' ? Buffer.from(text) : text]), opts)) {
    if (item.kind === 'cdr') cdrs.push(item.cdr);
    else malformed.push(item.malformed);
  }
  return { cdrs, malformed };
}

export interface ComxUser {
  extension: string;
  name: string | null;
  /** Only when asked for: the voicemail PIN is a secret. */
  pin?: string | null;
  line: number;
}

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

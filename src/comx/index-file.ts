/**
 * The Com.X `index.txt` (spec v1.6 §2.2.2; specs/peers.md §1.4–1.5): one CDR per line, comma
 * separated, 11 columns, 12/13 with account code / friendly name, 15 with `&extended`.
 *
 * csv-parse splits the lines (streamed, so a 1,000,000-line index is never held whole). Lines are
 * independent: the wire form shows no quoting, so the stream is split without quote handling (one
 * stray quote can never swallow the rest of the file) and only a line that holds a `"` is read again
 * as RFC 4180, which handles a properly quoted comma and reports a broken one. Every line that is not
 * a well-formed record is reported with its line number, never dropped silently. Times are read and
 * converted in pbx-time.ts; the extension list (`?users`) is users-list.ts.
 */
import { isUtf8 } from 'node:buffer';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { parseComxTime, convertLocal, idEpochMs, isoSeconds } from './pbx-time';

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

const ID_RE = /^[\w.-]+$/;
const INT_RE = /^\d+$/;

const trimmed = (s: string) => (s.length > 0 && (s.charCodeAt(0) <= 32 || s.charCodeAt(s.length - 1) <= 32) ? s.trim() : s);
const nullable = (s: string | undefined): string | null => (s === undefined || s === '' ? null : s);

/** Maps one line's fields to a CDR, or says why it is malformed. */
export function toCdr(fieldsIn: string[], raw: string, line: number, opts: IndexOptions): IndexItem {
  const bad = (reason: string): IndexItem => ({ kind: 'malformed', malformed: { line, reason, text: raw } });
  const f = fieldsIn.map(trimmed);
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

  const z = convertLocal(parts, opts.zone);
  let startMs = z.ms;
  let alternative: number | undefined;
  let resolvedBy: ComxCdr['startResolvedBy'];
  if (z.ambiguous && z.alternativeMs !== undefined) {
    alternative = z.alternativeMs;
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
  // built without object spread: this runs once per index line
  const cdr: ComxCdr = {
    uniqueId,
    start: isoSeconds(startMs),
    startLocal: when,
    timezone: opts.zone,
    startAmbiguous: z.ambiguous,
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
    columns: n,
    line,
    raw,
  };
  if (alternative !== undefined) {
    cdr.startAlternative = isoSeconds(alternative);
    cdr.startResolvedBy = resolvedBy;
  }
  if (n > 11) Object.assign(cdr, extra);
  if (repaired) cdr.repaired = repaired;
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
  for await (const batch of parseIndexBatches(source, opts)) yield* batch;
}

const TOO_LONG = '\u0000<line too long>';

/**
 * Keeps memory bounded whatever arrives (a binary file without line breaks, say): a line longer than
 * `max` bytes is cut, marked, and the rest of it dropped up to the next line break, so csv-parse never
 * buffers more than that and the line count stays exact.
 */
class LineGuard extends Transform {
  private run = 0;
  private dropping = false;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(input: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const chunk = typeof input === 'string' ? Buffer.from(input) : input;
    if (!this.dropping) {
      // the usual case: every line within the limit, the chunk passes as it is
      let run = this.run;
      let at = 0;
      let fits = true;
      for (;;) {
        const nl = chunk.indexOf(0x0a, at);
        const end = nl === -1 ? chunk.length : nl;
        if (run + (end - at) > this.max) {
          fits = false;
          break;
        }
        if (nl === -1) {
          run += end - at;
          break;
        }
        run = 0;
        at = nl + 1;
      }
      if (fits) {
        this.run = run;
        cb(null, chunk);
        return;
      }
    }
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      const nl = chunk.indexOf(0x0a, i);
      const end = nl === -1 ? chunk.length : nl;
      if (this.dropping) {
        if (nl === -1) break;
        this.dropping = false;
        this.run = 0;
        out.push(chunk.subarray(nl, nl + 1));
        i = nl + 1;
        continue;
      }
      if (this.run + (end - i) > this.max) {
        const keep = Math.max(0, this.max - this.run);
        out.push(chunk.subarray(i, i + keep), Buffer.from(TOO_LONG));
        this.dropping = true;
        continue; // drop up to the next line break
      }
      out.push(chunk.subarray(i, nl === -1 ? end : nl + 1));
      this.run = nl === -1 ? this.run + (end - i) : 0;
      i = nl === -1 ? end : nl + 1;
    }
    cb(null, out.length === 1 ? out[0] : Buffer.concat(out));
  }
}

/**
 * Lines that are not valid UTF-8 are read as Latin-1 (peers.md §1.5: real Asterisk CDRs carry raw
 * 0xA5 bytes), instead of turning their bytes into U+FFFD. Valid chunks pass untouched; otherwise the
 * incomplete last line waits for the next chunk (its length is already bounded by LineGuard).
 */
class Latin1Fallback extends Transform {
  private carry: Buffer | null = null;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.carry && isUtf8(chunk)) return cb(null, chunk);
    const data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    const cut = data.lastIndexOf(0x0a);
    if (cut === -1) {
      this.carry = data;
      return cb();
    }
    this.carry = cut + 1 < data.length ? Buffer.from(data.subarray(cut + 1)) : null;
    cb(null, fixLines(data.subarray(0, cut + 1)));
  }
  override _flush(cb: TransformCallback): void {
    cb(null, this.carry ? fixLines(this.carry) : null);
  }
}

function fixLines(block: Buffer): Buffer {
  if (isUtf8(block)) return block;
  const out: Buffer[] = [];
  let i = 0;
  while (i < block.length) {
    const nl = block.indexOf(0x0a, i);
    const end = nl === -1 ? block.length : nl + 1;
    const lineBytes = block.subarray(i, end);
    out.push(isUtf8(lineBytes) ? lineBytes : Buffer.from(lineBytes.toString('latin1'), 'utf8'));
    i = end;
  }
  return Buffer.concat(out);
}

/**
 * The same as parseIndexStream, a chunk of lines at a time (fewer promise hops for large indexes).
 * Without quote handling csv-parse gives exactly one record per line, so line numbers are counted
 * here and the raw line is the fields joined again (csv-parse's `info`/`raw` cost a third of its speed).
 */
export async function* parseIndexBatches(source: NodeJS.ReadableStream | AsyncIterable<Buffer | string>, opts: IndexOptions): AsyncGenerator<IndexItem[]> {
  let line = 0;
  let batch: IndexItem[] = [];
  let lastSkipped = -1;
  const maxLine = opts.maxLineBytes ?? 64 * 1024;
  const parser = parse({
    quote: false,
    relax_column_count: true,
    bom: true,
    // nothing else should fail without quote handling; if it does, report it rather than stop
    skip_records_with_error: true,
    on_skip: (err, raw) => {
      const at = (err as { lines?: number } | undefined)?.lines ?? line + 1;
      if (at === lastSkipped) return undefined;
      lastSkipped = at;
      batch.push({ kind: 'malformed', malformed: { line: at, reason: err?.message ?? 'unreadable line', text: (raw ?? '').slice(0, 200) } });
      return undefined;
    },
  });
  const input = typeof (source as NodeJS.ReadableStream).pipe === 'function' ? (source as NodeJS.ReadableStream) : Readable.from(source as AsyncIterable<Buffer | string>);
  const guard = new LineGuard(maxLine);
  input.on('error', (err: Error) => parser.destroy(err));
  guard.on('error', (err: Error) => parser.destroy(err));
  const latin1 = new Latin1Fallback();
  latin1.on('error', (err: Error) => parser.destroy(err));
  input.pipe(guard).pipe(latin1).pipe(parser);
  const push = (record: string[]) => {
    line++;
    if (record.length === 1 && record[0].trim() === '') return; // a blank line
    const raw = record.join(',');
    if (raw.endsWith(TOO_LONG)) {
      batch.push({ kind: 'malformed', malformed: { line, reason: `line longer than ${maxLine} bytes`, text: raw.slice(0, 200) } });
      return;
    }
    batch.push(raw.includes('"') ? quotedLine(raw, line, opts) : toCdr(record, raw, line, opts));
  };
  for (;;) {
    let record: string[] | null;
    while ((record = parser.read() as string[] | null) !== null) {
      push(record);
      if (batch.length >= 512) {
        const out = batch;
        batch = [];
        yield out;
      }
    }
    if (batch.length) {
      const out = batch;
      batch = [];
      yield out;
    }
    if (parser.readableEnded || parser.destroyed) break;
    const failed = await new Promise<Error | null>((resolve) => {
      const done = (err: Error | null) => {
        parser.off('readable', onReadable);
        parser.off('end', onEnd);
        parser.off('error', onError);
        resolve(err);
      };
      const onReadable = () => done(null);
      const onEnd = () => done(null);
      const onError = (err: Error) => done(err);
      parser.once('readable', onReadable);
      parser.once('end', onEnd);
      parser.once('error', onError);
    });
    if (failed) throw failed;
    if (parser.readableEnded) {
      while ((record = parser.read() as string[] | null) !== null) push(record);
      if (batch.length) yield batch;
      break;
    }
  }
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

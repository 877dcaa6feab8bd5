/**
 * Reads a CC-FS bill file (specs/ccfs.md §6): a zip holding `…_call_<seq>.csv` (CDR rows, 29 columns) and/or
 * `…_record_<seq>.csv` (recording-index rows, 18 columns). The zip is read entry by entry (common/zip.ts) and
 * each CSV is streamed through csv-parse, so neither the zip nor a CSV is held in memory. CDR rows that
 * share a call_id are kept together and handed out as one call (call_id_num 1, 2, … and -1 last).
 * Local times are read in the tenant's time zone and given as UTC ISO 8601.
 */
import { Transform, type Readable } from 'node:stream';
import { ZipReader, unsafeZipName, type ZipEntry } from '../common/zip';
import { parse } from 'csv-parse';
import { parseLocal, zonedToUtc, isValidZone, type LocalParts } from '../common/time';

export const CDR_COLUMNS = [
  'developer', 'account_id', 'cc_id', 'agent_id', 'call_id', 'caller_no', 'callee_no',
  'wait_begin', 'wait_end', 'ack_begin', 'ack_end', 'call_begin', 'call_end',
  'device_type', 'device_no', 'call_type', 'release_cause', 'call_id_num',
  'vdn_id', 'pre_device_type', 'pre_device_no', 'skill_id', 'current_skill_id',
  'device_in', 'pre_device_in', 'service_no', 'leave_reason', 'media_type', 'sub_media_type',
] as const;

export const RECORD_COLUMNS = [
  'developer', 'account_id', 'cc_id', 'agent_id', 'call_id', 'caller_no', 'callee_no',
  'call_begin', 'call_end', 'file_name', 'task_status', 'task_result', 'original_file_name',
  'vdn_id', 'call_type', 'media_type', 'user_wanted_skill_id', 'current_skill_id',
] as const;

const CDR_TIMES = new Set(['wait_begin', 'wait_end', 'ack_begin', 'ack_end', 'call_begin', 'call_end']);
const CDR_INTS = new Set(['device_type', 'device_no', 'call_type', 'release_cause', 'call_id_num']);
const RECORD_TIMES = new Set(['call_begin', 'call_end']);
const RECORD_INTS = new Set(['task_status', 'call_type']);

type Col<T extends readonly string[]> = T[number];
type Typed<C extends string, Times extends string, Ints extends string> =
  { [K in C]: K extends Times ? string | null : K extends Ints ? number | null : string | null };

/** One CDR row: times as UTC ISO 8601 (null when empty), integer columns as numbers, the rest as text. */
export type CdrRow = Typed<Col<typeof CDR_COLUMNS>, 'wait_begin' | 'wait_end' | 'ack_begin' | 'ack_end' | 'call_begin' | 'call_end', 'device_type' | 'device_no' | 'call_type' | 'release_cause' | 'call_id_num'> & {
  /** Cells beyond the 29 known columns (newer platforms). */
  extra?: string[];
  /** The cells as they were in the file. */
  raw: string[];
};

/** One recording-index row. */
export type RecordRow = Typed<Col<typeof RECORD_COLUMNS>, 'call_begin' | 'call_end', 'task_status' | 'call_type'> & {
  extra?: string[];
  raw: string[];
};

export interface CallGroup {
  call_id: string | null;
  /** Ordered by call_id_num, the -1 row last. */
  rows: CdrRow[];
  /** False when the -1 row never came (end of file, or too many open calls). */
  complete: boolean;
}

export type BillItem =
  | { kind: 'call'; call: CallGroup; file: string }
  | { kind: 'record'; row: RecordRow; file: string };

export interface BillProblem {
  file: string;
  line: number;
  message: string;
}

export interface BillFileSummary {
  files: Array<{ name: string; kind: 'call' | 'record'; rows: number }>;
  /** Zip entries that are neither call nor record CSVs. */
  skipped: string[];
  calls: number;
  callRows: number;
  incompleteCalls: number;
  records: number;
  headerRows: number;
  problems: BillProblem[];
  problemCount: number;
}

export interface BillFileOptions {
  /** IANA zone of the times in the file (the tenant's). */
  timeZone: string;
  /** Charset of the CSVs; utf8 by default (e.g. gbk for older Chinese installations). */
  encoding?: string;
  /** Calls whose -1 row has not come yet, at most; beyond it the oldest is handed out incomplete. */
  maxOpenCalls?: number;
  maxProblems?: number;
}

export class BillFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BillFileError';
  }
}

export const CALL_FILE_RE = /_call(?:_\d+)?\.csv$/i;
export const RECORD_FILE_RE = /_record(?:_\d+)?\.csv$/i;

/** The zip, or BillFileError. */
async function openBillZip(file: string): Promise<ZipReader> {
  try {
    return await ZipReader.open(file);
  } catch (err) {
    throw new BillFileError(`not a readable zip: ${(err as Error)?.message ?? 'unknown error'}`);
  }
}

/** The next entry, or null at the end; a damaged directory or an entry name that is not a safe path is a BillFileError. */
async function nextEntry(entries: AsyncGenerator<ZipEntry>): Promise<ZipEntry | null> {
  let r: IteratorResult<ZipEntry>;
  try {
    r = await entries.next();
  } catch (err) {
    throw new BillFileError(`damaged zip: ${(err as Error).message}`);
  }
  if (r.done) return null;
  const unsafe = unsafeZipName(r.value.name);
  if (unsafe) throw new BillFileError(`damaged zip: ${unsafe}`);
  return r.value;
}

async function openEntry(zip: ZipReader, entry: ZipEntry): Promise<Readable> {
  try {
    return await zip.openStream(entry);
  } catch (err) {
    throw new BillFileError(`cannot read ${entry.name}: ${(err as Error)?.message}`);
  }
}

function decoder(encoding: string): Transform {
  const td = new TextDecoder(encoding);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, td.decode(chunk, { stream: true }));
    },
    flush(cb) {
      cb(null, td.decode());
    },
  });
}

/**
 * Hands out the calls and recording-index rows of a bill file in file order (the rows of a call
 * together, emitted when its -1 row arrives). `summary` is filled in as it goes and complete at the end.
 */
export async function* readBillFile(zipPath: string, opts: BillFileOptions, summary: BillFileSummary = emptySummary()): AsyncGenerator<BillItem, BillFileSummary> {
  if (!isValidZone(opts.timeZone)) throw new BillFileError(`"${opts.timeZone}" is not an IANA time zone`);
  const encoding = (opts.encoding ?? 'utf8').toLowerCase().replace(/^utf-8$/, 'utf8');
  if (encoding !== 'utf8') {
    try {
      new TextDecoder(encoding);
    } catch {
      throw new BillFileError(`unknown encoding "${opts.encoding}"`);
    }
  }
  const maxOpen = opts.maxOpenCalls ?? 100_000;
  const maxProblems = opts.maxProblems ?? 100;
  const problem = (file: string, line: number, message: string) => {
    summary.problemCount++;
    if (summary.problems.length < maxProblems) summary.problems.push({ file, line, message });
  };
  const open = new Map<string, { rows: CdrRow[]; file: string }>();
  const toUtc = new LocalToUtc(opts.timeZone);
  const finish = (callId: string | null, rows: CdrRow[], complete: boolean, file: string): BillItem => {
    rows.sort((a, b) => order(a.call_id_num) - order(b.call_id_num));
    summary.calls++;
    if (!complete) summary.incompleteCalls++;
    return { kind: 'call', call: { call_id: callId, rows, complete }, file };
  };

  const zip = await openBillZip(zipPath);
  const entries = zip.entries();
  try {
    for (let entry = await nextEntry(entries); entry; entry = await nextEntry(entries)) {
      const name = entry.name;
      const base = name.split('/').pop() ?? name;
      const kind = CALL_FILE_RE.test(base) ? 'call' : RECORD_FILE_RE.test(base) ? 'record' : null;
      if (!kind) {
        if (!name.endsWith('/')) summary.skipped.push(name);
        continue;
      }
      const fileInfo = { name, kind, rows: 0 } as BillFileSummary['files'][number];
      summary.files.push(fileInfo);
      const raw = await openEntry(zip, entry);
      const parser = parse({ bom: true, relax_column_count: true, relax_quotes: true, skip_empty_lines: true, info: true, trim: false });
      raw.on('error', (err) => parser.destroy(err));
      if (encoding === 'utf8') raw.pipe(parser);
      else raw.pipe(decoder(encoding)).pipe(parser);
      let first = true;
      try {
        for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
          const cells = item.record;
          const line = item.info.lines;
          if (first) {
            first = false;
            if ((cells[0] ?? '').trim().toLowerCase() === 'developer') {
              summary.headerRows++;
              continue;
            }
          }
          if (cells.length === 1 && cells[0].trim() === '') continue;
          if (kind === 'call') {
            const row = typedRow(CDR_COLUMNS, CDR_TIMES, CDR_INTS, cells, toUtc, (m) => problem(name, line, m)) as CdrRow;
            if (cells.length < 18) problem(name, line, `${cells.length} columns, a CDR row has at least 18 (29 since AICC 23.100)`);
            fileInfo.rows++;
            summary.callRows++;
            const id = row.call_id;
            if (!id) {
              yield finish(null, [row], row.call_id_num === -1, name);
              continue;
            }
            let pending = open.get(id);
            if (!pending) {
              pending = { rows: [], file: name };
              open.set(id, pending);
            }
            pending.rows.push(row);
            if (row.call_id_num === -1) {
              open.delete(id);
              yield finish(id, pending.rows, true, pending.file);
            } else if (open.size > maxOpen) {
              const [oldId, oldest] = open.entries().next().value as [string, { rows: CdrRow[]; file: string }];
              open.delete(oldId);
              problem(name, line, `more than ${maxOpen} calls without their -1 row: call ${oldId} handed out incomplete`);
              yield finish(oldId, oldest.rows, false, oldest.file);
            }
          } else {
            const row = typedRow(RECORD_COLUMNS, RECORD_TIMES, RECORD_INTS, cells, toUtc, (m) => problem(name, line, m)) as RecordRow;
            if (cells.length < 13) problem(name, line, `${cells.length} columns, a recording-index row has at least 13 (18 since AICC 22.100)`);
            fileInfo.rows++;
            summary.records++;
            yield { kind: 'record', row, file: name };
          }
        }
      } catch (err) {
        raw.destroy();
        if (err instanceof BillFileError) throw err;
        throw new BillFileError(`${name}: ${(err as Error).message}`);
      }
    }
    for (const [id, pending] of open) {
      problem(pending.file, 0, `call ${id} has no row with call_id_num -1`);
      yield finish(id, pending.rows, false, pending.file);
    }
    open.clear();
  } finally {
    await zip.close();
  }
  return summary;
}

export function emptySummary(): BillFileSummary {
  return { files: [], skipped: [], calls: 0, callRows: 0, incompleteCalls: 0, records: 0, headerRows: 0, problems: [], problemCount: 0 };
}

/** -1 (the last row of a call) sorts after every positive number, unknown ones before it. */
function order(n: number | null): number {
  if (n === -1) return Number.MAX_SAFE_INTEGER;
  return n ?? Number.MAX_SAFE_INTEGER - 1;
}

function typedRow(columns: readonly string[], times: Set<string>, ints: Set<string>, cells: string[], toUtc: LocalToUtc, problem: (m: string) => void): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  columns.forEach((col, i) => {
    const cell = cells[i];
    const v = cell === undefined ? '' : cell.trim();
    if (v === '') {
      row[col] = null;
    } else if (times.has(col)) {
      const parts = parseLocal(v);
      if (!parts) {
        problem(`${col} "${v}" is not a yyyy-MM-dd HH:mm:ss time`);
        row[col] = null;
      } else {
        row[col] = toUtc.convert(parts);
      }
    } else if (ints.has(col)) {
      if (/^-?\d+$/.test(v)) row[col] = Number(v);
      else {
        problem(`${col} "${v}" is not an integer`);
        row[col] = null;
      }
    } else {
      row[col] = v;
    }
  });
  if (cells.length > columns.length) row.extra = cells.slice(columns.length);
  row.raw = cells;
  return row;
}

const wall = (p: LocalParts) => Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);

/**
 * Local wall-clock time -> UTC ISO text, with the zone's offset remembered per local hour: a bill file
 * has millions of time cells and Intl is slow. An hour in which the offset changes (or that DST makes
 * ambiguous or skips) is not cached; those cells go through zonedToUtc one by one.
 */
export class LocalToUtc {
  private readonly offsets = new Map<string, number | null>();
  constructor(private readonly zone: string) {}

  convert(p: LocalParts): string {
    const key = `${p.year}-${p.month}-${p.day}T${p.hour}`;
    let off = this.offsets.get(key);
    if (off === undefined) {
      const first = zonedToUtc({ ...p, minute: 0, second: 0 }, this.zone);
      const last = zonedToUtc({ ...p, minute: 59, second: 59 }, this.zone);
      const a = wall({ ...p, minute: 0, second: 0 }) - first.date.getTime();
      const b = wall({ ...p, minute: 59, second: 59 }) - last.date.getTime();
      off = first.ambiguous || first.nonexistent || last.ambiguous || last.nonexistent || a !== b ? null : a;
      if (this.offsets.size > 50_000) this.offsets.clear();
      this.offsets.set(key, off);
    }
    const ms = off === null ? zonedToUtc(p, this.zone).date.getTime() : wall(p) - off;
    return new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
  }
}

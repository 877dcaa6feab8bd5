/**
 * CC-FS REST client (specs/ccfs.md §3, §5): signed queryBillData with validation and window splitting
 * before anything is sent, and downloadBillFile that tells a JSON error from a zip. 401 and 403 are never
 * retried: repeated bad signatures make CC-FS lock the caller's IP. An account puts a SigningGate in front
 * of every request (src/ccfs/lockout.ts), so that after one refusal nothing more is signed.
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import { request, type Dispatcher } from 'undici';
import { sign, authTimestamp } from './auth';
import { resultCodeInfo, isSuccess } from './codes';
import { createAgent, withRetry, isTransientNetworkError, HttpStatusError, bodyText } from '../common/http';
import { parseLocal, zonedToUtc, formatLocal, isValidZone, type LocalParts } from '../common/time';

export const QUERY_BILL_DATA = '/CCFS/resource/ccfs/queryBillData';
export const DOWNLOAD_BILL_FILE = '/CCFS/resource/ccfs/downloadBillFile';
export const CONTENT_TYPE = 'application/json;charset=UTF-8';

export type SignedHeaderSet = 'standard' | 'host';

export interface CcfsClientOptions {
  /** https://host:port (a path prefix is kept). */
  baseUrl: string;
  accessKey: string;
  secretKey: string;
  /** 'standard': content-length;content-type;host as in every doc example; 'host': host only, as Huawei's demo. */
  signedHeaders?: SignedHeaderSet;
  /** The Host header to send and sign; default host[:port] of baseUrl. */
  hostHeader?: string;
  timeoutMs?: number;
  ca?: string;
  rejectUnauthorized?: boolean;
  /** Further attempts for transient failures (never for 401/403). */
  retries?: number;
  retryBaseMs?: number;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  now?: () => number;
  dispatcher?: Dispatcher;
  /** Asked before each request is signed; told of every 401/403 before the next one may be signed. */
  gate?: SigningGate;
}

/** What stands in front of every signed request of an account (src/ccfs/lockout.ts SigningLock). */
export interface SigningGate {
  /**
   * Resolves when this request may be signed and sent, with the function that ends its turn (called
   * once the answer's status is known); rejects when the account signs nothing more.
   */
  enter(operation: string): Promise<() => void>;
  /** CC-FS answered 401 or 403: called before the turn ends. */
  refused(err: CcfsAuthError): Promise<void> | void;
}

// ---------------------------------------------------------------------------------------------- errors

export class CcfsValidationError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'CcfsValidationError';
  }
}

/** A business failure: HTTP 200 with resultCode other than "0". */
export class CcfsResultError extends Error {
  readonly meaning: string;
  readonly retryable: boolean;
  constructor(readonly operation: string, readonly code: string, readonly description: string) {
    const info = resultCodeInfo(code);
    super(`${operation}: CC-FS result ${code} (${info.meaning})${description ? `: ${description}` : ''}`);
    this.name = 'CcfsResultError';
    this.meaning = info.meaning;
    this.retryable = info.retryable;
  }
}

/** HTTP 401 (signature refused) or 403 (IP locked after too many bad signatures). Never retried. */
export class CcfsAuthError extends HttpStatusError {
  constructor(readonly operation: string, status: number, body: string) {
    super(status, status === 403
      ? `${operation}: HTTP 403, CC-FS has locked this IP address after too many bad signatures; an operator must unlock it (or wait). Check AK, SK, the clock and the Host header before trying again`
      : `${operation}: HTTP 401, CC-FS refused the signature (wrong AK/SK, clock, Host header or signed header set). Not retried: repeated bad signatures lock this IP`, {}, body);
    this.name = 'CcfsAuthError';
  }
}

export class CcfsProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CcfsProtocolError';
  }
}

// ------------------------------------------------------------------------------------------ validation

export const DATA_TYPES = ['call', 'record', 'call_record'] as const;
export type DataType = (typeof DATA_TYPES)[number];

export interface BillQuery {
  beginTime: string;
  endTime: string;
  dataType: DataType;
  callBackURL: string;
  accountId?: string;
  agentId?: string;
  callId?: string;
  callerNo?: string;
  calleeNo?: string;
  calleeNo2?: string;
}

const MAX_LEN: Record<string, number> = { accountId: 20, agentId: 20, callId: 25, callerNo: 25, calleeNo: 25, calleeNo2: 25 };
export const OPTIONAL_FIELDS = Object.keys(MAX_LEN) as Array<keyof typeof MAX_LEN>;

export interface PlanOptions {
  timeZone: string;
  now?: number;
  /** Longest window per request, days (CC-FS default 3). */
  maxDays?: number;
}

export interface PlannedQuery {
  msgBody: BillQuery;
  /** UTC instants of the window. */
  beginUtc: string;
  endUtc: string;
}

const wallMs = (p: LocalParts) => Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
/** Wall-clock milliseconds (a local time read as if it were UTC) as `yyyy-MM-dd HH:mm:ss`. */
export const wallText = (ms: number): string => formatLocal(ms, 'UTC', 'sql');
const SQL_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

/**
 * Checks a queryBillData request the way CC-FS would (lengths, formats, order, not in the future) and
 * splits a window longer than `maxDays` into consecutive windows that do not overlap (each next one
 * starts one second after the previous end, as times are whole seconds).
 */
export function planBillQueries(input: Partial<Record<keyof BillQuery, unknown>>, opts: PlanOptions): PlannedQuery[] {
  if (!isValidZone(opts.timeZone)) throw new CcfsValidationError('timeZone', `"${opts.timeZone}" is not an IANA time zone`);
  const now = opts.now ?? Date.now();
  const maxDays = opts.maxDays ?? 3;
  const text = (field: string): string | undefined => {
    const v = input[field as keyof BillQuery];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string' && typeof v !== 'number') throw new CcfsValidationError(field, 'must be text');
    return String(v).trim() || undefined;
  };
  const dataType = text('dataType');
  if (!dataType) throw new CcfsValidationError('dataType', 'is required (call, record or call_record)');
  if (!(DATA_TYPES as readonly string[]).includes(dataType)) throw new CcfsValidationError('dataType', `"${dataType}" is not call, record or call_record`);
  const callBackURL = text('callBackURL');
  if (!callBackURL) throw new CcfsValidationError('callBackURL', 'is required: the URL of a ccfs-callback-in node that CC-FS can reach');
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(callBackURL);
  } catch {
    throw new CcfsValidationError('callBackURL', `"${callBackURL}" is not a URL`);
  }
  if (parsedUrl.protocol !== 'https:' && parsedUrl.protocol !== 'http:') throw new CcfsValidationError('callBackURL', 'must be an https:// (or http://) URL');
  const optional: Partial<BillQuery> = {};
  for (const f of OPTIONAL_FIELDS) {
    const v = text(f);
    if (v === undefined) continue;
    if (v.length > MAX_LEN[f]) throw new CcfsValidationError(f, `is ${v.length} characters, at most ${MAX_LEN[f]} allowed`);
    (optional as Record<string, string>)[f] = v;
  }
  const times: Record<'beginTime' | 'endTime', LocalParts> = {} as any;
  for (const f of ['beginTime', 'endTime'] as const) {
    const v = text(f);
    if (!v) throw new CcfsValidationError(f, 'is required (yyyy-MM-dd HH:mm:ss, tenant time)');
    const parts = SQL_RE.test(v) ? parseLocal(v) : null;
    if (!parts) throw new CcfsValidationError(f, `"${v}" is not a valid yyyy-MM-dd HH:mm:ss time`);
    if (zonedToUtc(parts, opts.timeZone).date.getTime() > now) {
      throw new CcfsValidationError(f, `${v} (${opts.timeZone}) is in the future`);
    }
    times[f] = parts;
  }
  const begin = wallMs(times.beginTime);
  const end = wallMs(times.endTime);
  if (begin > end) throw new CcfsValidationError('beginTime', `${wallText(begin)} is after endTime ${wallText(end)}`);
  const span = maxDays * 86_400_000;
  const out: PlannedQuery[] = [];
  for (let b = begin; b <= end; ) {
    const e = Math.min(b + span, end);
    const beginTime = wallText(b);
    const endTime = wallText(e);
    out.push({
      msgBody: { beginTime, endTime, ...optional, dataType: dataType as DataType, callBackURL },
      beginUtc: new Date(zonedToUtc(parseLocal(beginTime)!, opts.timeZone).date).toISOString(),
      endUtc: new Date(zonedToUtc(parseLocal(endTime)!, opts.timeZone).date).toISOString(),
    });
    if (e === end) break;
    b = e + 1000;
  }
  return out;
}

/** The file name CC-FS will announce: yyyyMMdd (the day of the request, tenant time) + "_" + responseId without dashes. */
export function expectedBillFileName(responseId: string, requestedAt: number, timeZone: string): string {
  return `${formatLocal(requestedAt, timeZone, 'compact').slice(0, 8)}_${responseId.replace(/-/g, '')}.zip`;
}

export const BILL_FILE_NAME_RE = /^[A-Za-z0-9._-]{1,49}$/;

// -------------------------------------------------------------------------------------------- client

export interface QueryResult {
  responseId: string;
  resultDesc: string;
  /** The whole JSON answer. */
  response: unknown;
}

export interface DownloadResult {
  file: string;
  bytes: number;
  contentType: string;
}

function isZipMagic(b: Buffer): boolean {
  // local file header, or the end record of an empty archive
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && ((b[2] === 3 && b[3] === 4) || (b[2] === 5 && b[3] === 6));
}

export class CcfsClient {
  private readonly base: URL;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(private readonly opts: CcfsClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseUrl);
    } catch {
      throw new CcfsValidationError('baseUrl', `"${opts.baseUrl}" is not a URL`);
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new CcfsValidationError('baseUrl', 'must be https://host:port');
    if (!opts.accessKey) throw new CcfsValidationError('accessKey', 'is required');
    if (!opts.secretKey) throw new CcfsValidationError('secretKey', 'is required');
    this.base = base;
    this.ownsDispatcher = !opts.dispatcher;
    this.dispatcher = opts.dispatcher ?? createAgent({ timeoutMs: opts.timeoutMs, ca: opts.ca, rejectUnauthorized: opts.rejectUnauthorized });
  }

  get hostHeader(): string {
    return this.opts.hostHeader?.trim() || this.base.host;
  }

  /** The headers to send with `body` on `path`, Authorization included. */
  signedHeaders(path: string, body: string, at = (this.opts.now ?? Date.now)()): Record<string, string> {
    const toSign: Record<string, string> = { host: this.hostHeader };
    if ((this.opts.signedHeaders ?? 'standard') === 'standard') {
      toSign['content-type'] = CONTENT_TYPE;
      toSign['content-length'] = String(Buffer.byteLength(body, 'utf8'));
    }
    const s = sign({ accessKey: this.opts.accessKey, secretKey: this.opts.secretKey, timestamp: authTimestamp(at), method: 'POST', uri: path, headers: toSign, body });
    return {
      host: this.hostHeader,
      'content-type': CONTENT_TYPE,
      'content-length': String(Buffer.byteLength(body, 'utf8')),
      accept: '*/*',
      authorization: s.authorization,
    };
  }

  private path(endpoint: string): string {
    return `${this.base.pathname.replace(/\/+$/, '')}${endpoint}`;
  }

  private async post(operation: string, endpoint: string, msgBody: Record<string, unknown>, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    const path = this.path(endpoint);
    // serialised once: these exact bytes are signed and sent (specs/ccfs.md §2.5)
    const body = JSON.stringify({ request: { version: '2.0' }, msgBody });
    const gate = this.opts.gate;
    const leave = gate ? await gate.enter(operation) : () => undefined;
    let res: Dispatcher.ResponseData;
    try {
      // signed once the turn has come: the timestamp is the time of sending
      const headers = this.signedHeaders(path, body);
      res = await request(new URL(path, this.base.origin), { method: 'POST', headers, body, dispatcher: this.dispatcher, signal });
      if (res.statusCode === 401 || res.statusCode === 403) {
        const text = await bodyText(res, 64 * 1024).catch(() => '');
        const err = new CcfsAuthError(operation, res.statusCode, text);
        await gate?.refused(err);
        throw err;
      }
    } finally {
      leave();
    }
    if (res.statusCode !== 200) {
      const text = await bodyText(res, 64 * 1024).catch(() => '');
      throw new HttpStatusError(res.statusCode, `${operation}: HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`, res.headers, text);
    }
    return res;
  }

  private retry<T>(fn: () => Promise<T>, retryable: (err: unknown) => boolean, signal?: AbortSignal): Promise<T> {
    const base = this.opts.retryBaseMs ?? 1000;
    return withRetry(fn, { retries: this.opts.retries ?? 2, baseDelayMs: base, maxDelayMs: base * 30, retryable, onRetry: this.opts.onRetry }, signal);
  }

  /**
   * Asks CC-FS to generate a CDR / recording-index file. A failed connection and flow control (0300009)
   * are retried; anything that may have reached the server's business logic is not, so one call never
   * creates two files.
   */
  queryBillData(msgBody: BillQuery, signal?: AbortSignal): Promise<QueryResult> {
    const op = 'queryBillData';
    return this.retry(async () => {
      const res = await this.post(op, QUERY_BILL_DATA, { ...msgBody }, signal);
      const json = parseJson(op, await bodyText(res));
      if (!isSuccess(json.resultCode)) throw new CcfsResultError(op, String(json.resultCode ?? '(none)'), String(json.resultDesc ?? ''));
      const responseId = (json.resultData as Record<string, unknown> | undefined)?.responseId;
      if (typeof responseId !== 'string' || responseId === '') throw new CcfsProtocolError(`${op}: success without resultData.responseId`);
      return { responseId, resultDesc: String(json.resultDesc ?? ''), response: json };
    }, (err) => (err instanceof CcfsResultError && err.code === '0300009') || isConnectError(err), signal);
  }

  /**
   * Downloads a bill file to `dest`. The answer is a zip when the content type is not JSON and the body
   * starts with the zip magic bytes; a JSON body is a CC-FS error. Streams to disk, never holds the zip
   * in memory; refuses more than `maxBytes`.
   */
  downloadBillFile(billFileName: string, dest: string, opts: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<DownloadResult> {
    const op = 'downloadBillFile';
    if (!BILL_FILE_NAME_RE.test(billFileName)) throw new CcfsValidationError('billFileName', `"${billFileName}" must be 1-49 letters, digits, ".", "-" or "_"`);
    const maxBytes = opts.maxBytes ?? 2 * 1024 ** 3;
    return this.retry(async () => {
      const res = await this.post(op, DOWNLOAD_BILL_FILE, { billFileName }, opts.signal);
      const contentType = String(res.headers['content-type'] ?? '');
      const out = createWriteStream(dest);
      let head = Buffer.alloc(0);
      let bytes = 0;
      let kind: 'zip' | 'other' | null = null;
      const other: Buffer[] = [];
      try {
        for await (const c of res.body) {
          const chunk = c as Buffer;
          bytes += chunk.length;
          if (kind === null) {
            head = Buffer.concat([head, chunk]);
            if (head.length < 4 && !/json/i.test(contentType)) continue;
            kind = !/json/i.test(contentType) && isZipMagic(head) ? 'zip' : 'other';
            if (kind === 'zip') await write(out, head);
            else other.push(head);
            continue;
          }
          if (kind === 'zip') {
            if (bytes > maxBytes) throw new CcfsProtocolError(`${op}: ${billFileName} is larger than ${maxBytes} bytes`);
            await write(out, chunk);
          } else {
            if (bytes > 1024 * 1024) throw new CcfsProtocolError(`${op}: answer is neither a zip nor a JSON error (content type "${contentType}")`);
            other.push(chunk);
          }
        }
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      } catch (err) {
        res.body.destroy();
        out.destroy();
        await fsp.rm(dest, { force: true });
        throw err;
      }
      if (kind === 'zip') return { file: dest, bytes, contentType };
      await fsp.rm(dest, { force: true });
      const text = Buffer.concat(other.length ? other : [head]).toString('utf8');
      let json: Record<string, unknown> | null = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      if (json && typeof json === 'object' && json.resultCode !== undefined) {
        throw new CcfsResultError(op, String(json.resultCode), String(json.resultDesc ?? ''));
      }
      throw new CcfsProtocolError(`${op}: answer is neither a zip nor a CC-FS JSON error (content type "${contentType}", ${bytes} bytes)`);
    }, (err) => (err instanceof CcfsResultError && err.code === '0300008') || isTransientNetworkError(err)
      || (err instanceof HttpStatusError && !(err instanceof CcfsAuthError) && err.status >= 500), opts.signal);
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close().catch(() => undefined);
  }
}

function write(out: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

function parseJson(op: string, text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object') return v;
  } catch {
    // fall through
  }
  throw new CcfsProtocolError(`${op}: answer is not JSON: ${text.slice(0, 200)}`);
}

/** Failures where the request certainly never reached the server. */
function isConnectError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code ?? (err as { cause?: { code?: string } } | null)?.cause?.code;
  return code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

/**
 * Com.X HTTP CDR interface (seeds/002, spec v1.6; specs/peers.md §1): request URLs for every mode and
 * one GET with Basic auth, timeouts and bounded backoff through src/common/http.ts.
 *
 * Times on the wire are PBX local wall clock without an offset. Range bounds are sent as 12 digits
 * (`YYYYMMDDhhmm`) or 8 (`YYYYMMDD`); 14 digits means "the call that started at exactly this second"
 * and is only ever sent for the single-call mode (peers.md §1.5).
 */
import type { Dispatcher } from 'undici';
import { request } from 'undici';
import { HttpStatusError, isTransientNetworkError, withRetry, bodyText, type RetryPolicy } from '../common/http';
import { formatLocal } from '../common/time';

export type ComxFormat = 'txt' | 'ziprec';

export type ComxRequest =
  /** Batch: every CDR whose start is in [start, end) (PBX local); open ends mean "beginning of time" / "now". */
  | { kind: 'range'; format: ComxFormat; start?: string; end?: string; extended?: boolean }
  /** One call by its unique id; `raw` (no format parameter) returns the recording itself. */
  | { kind: 'id'; id: string; format: ComxFormat | 'raw'; extended?: boolean }
  /** One call by its exact start second (`YYYYMMDDhhmmss`, PBX local). */
  | { kind: 'start'; start: string; format: ComxFormat | 'raw'; extended?: boolean }
  /** The extension list (`?users`). */
  | { kind: 'users' };

/** Thrown for 401/403: the credentials are wrong; never retried. */
export class ComxAuthError extends Error {
  constructor(readonly status: number) {
    super(`the PBX refused the credentials (HTTP ${status}): check the user and password of the comx-pbx node`);
    this.name = 'ComxAuthError';
  }
}

/** A request that cannot be built (bad id, bad date form). */
export class ComxRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComxRequestError';
  }
}

const RANGE_RE = /^\d{8}(\d{4})?$/;
const EXACT_RE = /^\d{14}$/;
const ID_RE = /^[\w.-]+$/;

/** Checks that an 8/12/14-digit stamp names a real date and time. */
function validStamp(s: string): boolean {
  const y = Number(s.slice(0, 4)), mo = Number(s.slice(4, 6)), d = Number(s.slice(6, 8));
  const h = s.length >= 12 ? Number(s.slice(8, 10)) : 0;
  const mi = s.length >= 12 ? Number(s.slice(10, 12)) : 0;
  const se = s.length >= 14 ? Number(s.slice(12, 14)) : 0;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return false;
  const check = new Date(Date.UTC(y, mo - 1, d));
  return check.getUTCMonth() === mo - 1 && check.getUTCDate() === d;
}

/** A UTC instant as the PBX's local `YYYYMMDDhhmm`, floored to the minute (ranges have no seconds). */
export function rangeStamp(ms: number, zone: string): string {
  return formatLocal(ms, zone, 'compact').slice(0, 12);
}

/** A UTC instant as the PBX's local `YYYYMMDDhhmmss` (the single-call form). */
export function exactStamp(ms: number, zone: string): string {
  return formatLocal(ms, zone, 'compact');
}

/**
 * Reads a user-given range bound: `YYYYMMDD`, `YYYYMMDDhhmm` (PBX local, sent as given),
 * `YYYY-MM-DD[ hh:mm]` / `YYYY/MM/DD[/hh:mm]` (PBX local), an ISO time with `Z` or an offset, a
 * Date or epoch milliseconds (converted to PBX local). Seconds are dropped: ranges are per minute.
 */
export function toRangeStamp(value: unknown, zone: string): string {
  if (value instanceof Date || typeof value === 'number') {
    const ms = value instanceof Date ? value.getTime() : value;
    if (!Number.isFinite(ms)) throw new ComxRequestError(`not a time: ${String(value)}`);
    return rangeStamp(ms, zone);
  }
  if (typeof value !== 'string') throw new ComxRequestError(`not a time: ${String(value)}`);
  const v = value.trim();
  if (RANGE_RE.test(v)) {
    if (!validStamp(v)) throw new ComxRequestError(`not a date: ${v}`);
    return v;
  }
  if (EXACT_RE.test(v)) throw new ComxRequestError(`${v}: 14 digits select one call, a range bound is YYYYMMDD or YYYYMMDDhhmm`);
  const local = /^(\d{4})[-/](\d{2})[-/](\d{2})(?:[ T/](\d{2}):?(\d{2})(?::?(\d{2}))?)?$/.exec(v);
  if (local) {
    const stamp = `${local[1]}${local[2]}${local[3]}${local[4] !== undefined ? local[4] + local[5] : ''}`;
    if (!validStamp(stamp)) throw new ComxRequestError(`not a date: ${v}`);
    return stamp;
  }
  if (/(Z|[+-]\d{2}:?\d{2})$/i.test(v)) {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) return rangeStamp(ms, zone);
  }
  throw new ComxRequestError(`not a time: ${v} (use YYYYMMDD, YYYYMMDDhhmm or an ISO time with Z)`);
}

/** Reads a user-given exact start: 14 digits or `YYYY/MM/DD/hh:mm:ss` style (PBX local), or an ISO instant. */
export function toExactStamp(value: unknown, zone: string): string {
  if (value instanceof Date || typeof value === 'number') {
    const ms = value instanceof Date ? value.getTime() : value;
    if (!Number.isFinite(ms)) throw new ComxRequestError(`not a time: ${String(value)}`);
    return exactStamp(ms, zone);
  }
  if (typeof value !== 'string') throw new ComxRequestError(`not a time: ${String(value)}`);
  const v = value.trim();
  if (EXACT_RE.test(v)) {
    if (!validStamp(v)) throw new ComxRequestError(`not a date: ${v}`);
    return v;
  }
  const local = /^(\d{4})[-/](\d{2})[-/](\d{2})[ T/](\d{2}):(\d{2}):(\d{2})$/.exec(v);
  if (local) {
    const stamp = local.slice(1).join('');
    if (!validStamp(stamp)) throw new ComxRequestError(`not a date: ${v}`);
    return stamp;
  }
  if (/(Z|[+-]\d{2}:?\d{2})$/i.test(v)) {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) return exactStamp(ms, zone);
  }
  throw new ComxRequestError(`not an exact start time: ${v} (use YYYYMMDDhhmmss)`);
}

/** The CDR endpoint under a base URL: `http://pbx` → `http://pbx/commagui/cdr`; a full path is kept. */
export function endpointUrl(baseUrl: string): URL {
  let u: URL;
  try {
    u = new URL(baseUrl.trim());
  } catch {
    throw new ComxRequestError(`not a URL: ${baseUrl}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ComxRequestError(`only http and https are supported: ${baseUrl}`);
  if (u.username || u.password) throw new ComxRequestError('put the user and password in the credentials, not in the URL');
  if (!/\/commagui\/cdr\/?$/.test(u.pathname)) u.pathname = `${u.pathname.replace(/\/+$/, '')}/commagui/cdr`;
  u.search = '';
  u.hash = '';
  return u;
}

/** The full request URL (no credentials in it). Parameter order follows the spec's examples. */
export function buildUrl(baseUrl: string, req: ComxRequest): string {
  const u = endpointUrl(baseUrl);
  const parts: string[] = [];
  switch (req.kind) {
    case 'users':
      return `${u.toString()}?users`;
    case 'range':
      parts.push(`format=${req.format}`);
      if (req.start !== undefined) {
        if (!RANGE_RE.test(req.start) || !validStamp(req.start)) throw new ComxRequestError(`range start must be YYYYMMDD or YYYYMMDDhhmm: ${req.start}`);
        parts.push(`start=${req.start}`);
      }
      if (req.end !== undefined) {
        if (!RANGE_RE.test(req.end) || !validStamp(req.end)) throw new ComxRequestError(`range end must be YYYYMMDD or YYYYMMDDhhmm: ${req.end}`);
        parts.push(`end=${req.end}`);
      }
      break;
    case 'id':
      if (!ID_RE.test(req.id)) throw new ComxRequestError(`not a Com.X unique id: ${req.id}`);
      if (req.format !== 'raw') parts.push(`format=${req.format}`);
      parts.push(`id=${req.id}`);
      break;
    case 'start':
      if (!EXACT_RE.test(req.start) || !validStamp(req.start)) throw new ComxRequestError(`exact start must be YYYYMMDDhhmmss: ${req.start}`);
      if (req.format !== 'raw') parts.push(`format=${req.format}`);
      parts.push(`start=${req.start}`);
      break;
  }
  if (req.extended) parts.push('extended');
  return `${u.toString()}?${parts.join('&')}`;
}

export interface ComxClientOptions {
  baseUrl: string;
  user?: string;
  password?: string;
  /** The config node's agent (timeouts, TLS). */
  dispatcher?: Dispatcher;
  retry?: Partial<Pick<RetryPolicy, 'retries' | 'baseDelayMs' | 'maxDelayMs' | 'random'>>;
}

export interface ComxResponse {
  url: string;
  status: number;
  contentType: string | null;
  contentLength: number | null;
  contentDisposition: string | null;
  body: Dispatcher.ResponseData['body'];
}

/** 5xx, 408, 429 and network failures are worth another try; 401/403 and other 4xx are not. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ComxAuthError) return false;
  if (err instanceof HttpStatusError) return err.status >= 500 || err.status === 408 || err.status === 429;
  return isTransientNetworkError(err);
}

export class ComxClient {
  private readonly auth: string | null;

  constructor(private readonly opts: ComxClientOptions) {
    if (opts.user === undefined || opts.user === '') this.auth = null;
    else this.auth = `Basic ${Buffer.from(`${opts.user}:${opts.password ?? ''}`, 'utf8').toString('base64')}`;
  }

  url(req: ComxRequest): string {
    return buildUrl(this.opts.baseUrl, req);
  }

  /**
   * Sends the GET and returns once a 2xx answer's headers are in; the caller consumes (or destroys)
   * the body. Retries (bounded, with backoff) only until the headers: a failure inside the body is the
   * caller's to report.
   */
  async open(req: ComxRequest, hooks: { signal?: AbortSignal; onRetry?: RetryPolicy['onRetry'] } = {}): Promise<ComxResponse> {
    const url = this.url(req);
    const headers: Record<string, string> = { accept: '*/*' };
    if (this.auth) headers.authorization = this.auth;
    const r = this.opts.retry ?? {};
    let attempts = 0;
    return withRetry(async () => {
      attempts++;
      const res = await request(url, { method: 'GET', headers, dispatcher: this.opts.dispatcher, signal: hooks.signal });
      if (res.statusCode === 401 || res.statusCode === 403) {
        res.body.resume();
        throw new ComxAuthError(res.statusCode);
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        let text = '';
        try {
          text = (await bodyText(res, 4096)).trim();
        } catch {
          res.body.on('error', () => undefined);
          res.body.destroy();
        }
        throw new HttpStatusError(res.statusCode, `the PBX answered HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`, res.headers, text);
      }
      const h = (name: string) => {
        const v = res.headers[name];
        return Array.isArray(v) ? v[0] ?? null : v ?? null;
      };
      const len = h('content-length');
      return {
        url,
        status: res.statusCode,
        contentType: h('content-type'),
        contentLength: len !== null && /^\d+$/.test(len) ? Number(len) : null,
        contentDisposition: h('content-disposition'),
        body: res.body,
      };
    }, {
      retries: r.retries ?? 3,
      baseDelayMs: r.baseDelayMs ?? 1000,
      maxDelayMs: r.maxDelayMs ?? 30_000,
      random: r.random,
      retryable: isRetryable,
      onRetry: hooks.onRetry,
    }, hooks.signal).catch((err: unknown) => {
      // how many times the PBX was asked: a 404 once, a reset connection after every retry
      if (err && typeof err === 'object') (err as { attempts?: number }).attempts = attempts;
      throw err;
    });
  }
}

/** A file name from `Content-Disposition` (filename= or filename*=UTF-8''), if any. */
export function dispositionFileName(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* fall through */
    }
  }
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/.exec(header);
  return plain ? (plain[1] ?? plain[2]) : null;
}

/** File extension for a recording's content type (the spec names GSM and WAV). */
export function extensionFor(contentType: string | null): string {
  const t = (contentType ?? '').toLowerCase();
  if (t.includes('wav')) return 'wav';
  if (t.includes('gsm')) return 'gsm';
  if (t.includes('mpeg') || t.includes('mp3')) return 'mp3';
  if (t.includes('ogg')) return 'ogg';
  return 'bin';
}

/** What a comx-pbx config node shares with the comx-cdr-fetch nodes that use it. */
export interface ComxPbx {
  client: ComxClient;
  /** The PBX's IANA zone. */
  zone: string;
  /** host[:port], for msg.comx.pbx. */
  host: string;
  baseUrl: string;
}

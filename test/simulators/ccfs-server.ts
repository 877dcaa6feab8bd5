/**
 * A fake Huawei AICC CC-FS (specs/ccfs.md §2–§6) on 127.0.0.1, port 0:
 * - verifies every request's auth-v2 signature with its own, independent implementation of §2
 *   (wrong SK, wrong header set, tampered body -> 401); after `lockAfter` (5) refused signatures in a
 *   row from one address, that address is locked: 403 to everything it sends, until unlock() (§0.5, §9);
 * - answers queryBillData with business codes (its own window checks, or a forced code), and
 *   downloadBillFile with a zip (built with yazl) or a JSON error; downloads can be held (a large file);
 * - signs its callbacks and POSTs them to callBackURL the way CC-FS does (§4.3): an attempt that gets no
 *   answer within the callback timeout, or no success (HTTP 200 with a body saying resultCode "0"), is
 *   tried again every 10 minutes (short timing for tests) until the retry limit; it can also send
 *   duplicates, stale and tampered ones.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { createHmac, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import yazl from 'yazl';

export interface SimOptions {
  accessKey: string;
  secretKey: string;
  /** Refused signatures in a row from one address before it is locked (403); default 5. */
  lockAfter?: number;
  /** Names that must be among the signed headers. */
  requiredSignedHeaders?: string[];
  /** The tenant's zone, for the "in the future" and file-date checks. */
  timeZone?: string;
  maxDays?: number;
  /** Builds the zip a query produces; default: a small file with one call and one recording. */
  fileFor?: (msgBody: Record<string, string>, responseId: string) => Buffer;
  /** POST the callback by itself after a query (default true), `copies` times. */
  autoCallback?: boolean;
  callbackCopies?: number;
  callbackDelayMs?: number;
  /**
   * A callback attempt not answered within this time is abandoned (the connection closed) and counts
   * as failed. CC-FS's value is not documented; default 30 s.
   */
  callbackTimeoutMs?: number;
  /** Time between a failed callback attempt and the next (CC-FS: 10 minutes, the default). */
  callbackRetryMs?: number;
  /** Attempts after the first failed one; CC-FS's limit is not documented; default 5. */
  callbackRetries?: number;
  /** Host header of callbacks: 'bare' (no port, as in Huawei's example) or 'withPort'. */
  callbackHost?: 'bare' | 'withPort';
  now?: () => number;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
}

export interface SeenRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  status: number;
  outcome: string;
}

export interface CallbackOptions {
  /** Timestamp text to sign with (default now, seconds). */
  timestamp?: string;
  secretKey?: string;
  accessKey?: string;
  /** Change the body after signing. */
  tamper?: boolean;
  /** Sign `host` only. */
  hostOnly?: boolean;
  /** Host header value; default from callbackHost. */
  host?: string;
  /** Leave the Authorization header out. */
  unsigned?: boolean;
  /** Re-use a previously sent request byte for byte (a replay). */
  replay?: { headers: Record<string, string>; body: string };
}

export interface CallbackResult {
  /** 0 when no answer came (timed out, or the connection failed). */
  status: number;
  body: string;
  sent: { headers: Record<string, string>; body: string };
  /** No answer within the callback timeout: the connection was closed. */
  timedOut?: boolean;
  /** The connection failed (refused, reset). */
  error?: string;
}

/** What CC-FS counts as a successful callback: HTTP 200 with a body, and here a body saying resultCode "0". */
export function callbackSucceeded(r: CallbackResult): boolean {
  if (r.status !== 200 || r.body === '') return false;
  try {
    return String(JSON.parse(r.body)?.resultCode) === '0';
  } catch {
    return false;
  }
}

export interface RetryTiming {
  timeoutMs?: number;
  retryMs?: number;
  retries?: number;
}

// --- an independent auth-v2 (deliberately not importing src/ccfs/auth.ts) -----------------------------

function pct(text: string | Buffer): string {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return [...bytes].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0'))).join('');
}

export function simSign(ak: string, sk: string, ts: string, method: string, path: string, headers: Record<string, string>, body: string | Buffer, query?: URLSearchParams): string {
  const names = Object.keys(headers).map((h) => h.toLowerCase()).sort();
  const lines = [method, path];
  const pairs = query ? [...query.entries()].map(([k, v]) => `${pct(k)}=${pct(v)}`).sort() : [];
  if (pairs.length) lines.push(pairs.join('&'));
  lines.push(names.join(';'));
  lines.push(Object.entries(headers).map(([k, v]) => `${pct(k.toLowerCase())}:${pct(String(v).trim())}`).sort().join('\n'));
  let canonical = lines.join('\n') + '\n';
  if (body.length) canonical += pct(body);
  const prefix = `auth-v2/${ak}/${ts}/${names.join(';')}`;
  const key = createHmac('sha256', sk).update(prefix).digest('hex');
  return `${prefix}/${createHmac('sha256', key).update(canonical).digest('hex')}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

function localParts(ms: number, zone: string) {
  const f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const o: Record<string, string> = {};
  for (const p of f.formatToParts(new Date(ms))) o[p.type] = p.value;
  return o;
}

// --- zips ---------------------------------------------------------------------------------------------

export function cdrRow(o: Partial<Record<string, string>> = {}): string[] {
  const d: Record<string, string> = {
    developer: 'globalaktest', account_id: 'tenant01', cc_id: '1', agent_id: '1001', call_id: '1776135340-404299',
    caller_no: '5511999990000', callee_no: '4000', wait_begin: '2026-04-14 09:15:40', wait_end: '2026-04-14 09:15:48',
    ack_begin: '2026-04-14 09:15:48', ack_end: '2026-04-14 09:15:52', call_begin: '2026-04-14 09:15:40', call_end: '2026-04-14 09:20:01',
    device_type: '2', device_no: '1001', call_type: '0', release_cause: '0', call_id_num: '-1', vdn_id: '1',
    pre_device_type: '1', pre_device_no: '7', skill_id: '7', current_skill_id: '7', device_in: 'DEVICE_AGENT',
    pre_device_in: 'DEVICE_QUEUE', service_no: '', leave_reason: '88', media_type: '5', sub_media_type: '',
  };
  const cols = ['developer', 'account_id', 'cc_id', 'agent_id', 'call_id', 'caller_no', 'callee_no', 'wait_begin', 'wait_end', 'ack_begin', 'ack_end', 'call_begin', 'call_end', 'device_type', 'device_no', 'call_type', 'release_cause', 'call_id_num', 'vdn_id', 'pre_device_type', 'pre_device_no', 'skill_id', 'current_skill_id', 'device_in', 'pre_device_in', 'service_no', 'leave_reason', 'media_type', 'sub_media_type'];
  return cols.map((c) => o[c] ?? d[c]);
}

export function recordRow(o: Partial<Record<string, string>> = {}): string[] {
  const d: Record<string, string> = {
    developer: 'globalaktest', account_id: 'tenant01', cc_id: '1', agent_id: '1001', call_id: '1776135340-404299',
    caller_no: '5511999990000', callee_no: '4000', call_begin: '2026-04-14 09:15:48', call_end: '2026-04-14 09:20:01',
    file_name: '/10/1/record/100/13533/0903379.wav', task_status: '0', task_result: '', original_file_name: 'X:\\17\\0\\20260414\\1001\\2043295.V3',
    vdn_id: '1', call_type: '0', media_type: '5', user_wanted_skill_id: '7', current_skill_id: '7',
  };
  const cols = ['developer', 'account_id', 'cc_id', 'agent_id', 'call_id', 'caller_no', 'callee_no', 'call_begin', 'call_end', 'file_name', 'task_status', 'task_result', 'original_file_name', 'vdn_id', 'call_type', 'media_type', 'user_wanted_skill_id', 'current_skill_id'];
  return cols.map((c) => o[c] ?? d[c]);
}

export function csv(rows: string[][], header?: string[]): string {
  const q = (c: string) => (/[",\r\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c);
  return [...(header ? [header] : []), ...rows].map((r) => r.map(q).join(',')).join('\r\n') + '\r\n';
}

/** A zip of named text/bytes entries, built with yazl. */
export function buildZip(entries: Array<[string, string | Buffer]>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile();
    for (const [name, data] of entries) zip.addBuffer(typeof data === 'string' ? Buffer.from(data, 'utf8') : data, name);
    zip.end();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
  });
}

/** Synchronous variant is not offered by yazl: files are built ahead with buildZip. */
let defaultZip: Buffer | null = null;
export async function defaultBillZip(): Promise<Buffer> {
  if (!defaultZip) {
    defaultZip = await buildZip([
      ['20260414091612123456_call_1.csv', csv([
        cdrRow({ call_id_num: '1', device_type: '1', device_no: '7', agent_id: '', device_in: 'DEVICE_QUEUE', call_end: '2026-04-14 09:15:48', ack_begin: '', ack_end: '' }),
        cdrRow({ call_id: '1776135400-404300', call_id_num: '-1', release_cause: '518' }),
        cdrRow({ call_id_num: '-1' }),
      ])],
      ['20260414091612123456_record_1.csv', csv([recordRow()])],
    ]);
  }
  return defaultZip;
}

// --- TLS ---------------------------------------------------------------------------------------------

/** A throwaway self-signed certificate for 127.0.0.1 (PEM) to serve with `tls`, or null when openssl is not there. */
export function selfSignedCert(): { key: string; cert: string } | null {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfs-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    return { key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8') };
  } catch {
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// --- the server ---------------------------------------------------------------------------------------

export class CcfsSimulator {
  readonly requests: SeenRequest[] = [];
  readonly callbacks: CallbackResult[] = [];
  readonly files = new Map<string, Buffer>();
  /** Forced answers for the next queryBillData calls (resultCode, resultDesc). */
  readonly queryQueue: Array<{ code: string; desc?: string } | { http: number }> = [];
  readonly downloadQueue: Array<{ code: string; desc?: string } | { http: number }> = [];
  private readonly bad = new Map<string, number>();
  private readonly locked = new Set<string>();
  private server: http.Server | null = null;
  private pending: Promise<unknown>[] = [];
  /** Waits between callback attempts, cut short by stop(). */
  private readonly waits = new Set<() => void>();
  private held: Promise<void> | null = null;
  private releaseHeld: (() => void) | null = null;
  private stopped = false;
  url = '';
  port = 0;
  private counter = 0;

  constructor(readonly opts: SimOptions) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  start(): Promise<this> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    this.server = this.opts.tls ? https.createServer({ key: this.opts.tls.key, cert: this.opts.tls.cert }, handler) : http.createServer(handler);
    return new Promise((resolve) => this.server!.listen(0, '127.0.0.1', () => {
      this.port = (this.server!.address() as AddressInfo).port;
      this.url = `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
      resolve(this);
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.release();
    for (const wake of [...this.waits]) wake();
    await this.idle();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections?.();
      this.server.close(() => resolve());
    });
  }

  /** Waits for callbacks still being sent. */
  async idle(): Promise<void> {
    while (this.pending.length) {
      const p = this.pending;
      this.pending = [];
      await Promise.allSettled(p);
    }
  }

  unlock(): void {
    this.locked.clear();
    this.bad.clear();
  }

  /** Whether an address is locked (403 to everything). */
  isLocked(address = '127.0.0.1'): boolean {
    return this.locked.has(address);
  }

  /** Holds every download's answer until release() (a file so large it takes long to send). */
  holdDownloads(): void {
    if (this.held) return;
    this.held = new Promise((r) => { this.releaseHeld = r; });
  }

  release(): void {
    this.releaseHeld?.();
    this.held = null;
    this.releaseHeld = null;
  }

  /** Waits `ms`, or less when the simulator stops. */
  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.waits.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.waits.add(wake);
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://x');
      const seen: SeenRequest = { path: url.pathname, headers: req.headers, body: raw.toString('utf8'), status: 0, outcome: '' };
      this.requests.push(seen);
      const answer = (status: number, body: string | Buffer, type = 'application/json;charset=UTF-8', outcome = '') => {
        seen.status = status;
        seen.outcome = outcome;
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      const springError = (status: number, error: string) =>
        JSON.stringify({ timestamp: this.now(), status, error, message: 'Nomessageavailable', path: url.pathname });
      const who = req.socket.remoteAddress ?? '?';
      if (this.locked.has(who)) return answer(403, springError(403, 'Forbidden'), undefined, 'locked');
      const authFailure = this.checkAuth(req, url, raw);
      if (authFailure) {
        const n = (this.bad.get(who) ?? 0) + 1;
        this.bad.set(who, n);
        if (n >= (this.opts.lockAfter ?? 5)) this.locked.add(who);
        return answer(401, springError(401, 'Unauthorized'), undefined, authFailure);
      }
      // the count is of refusals in a row: a good signature starts it again
      this.bad.delete(who);
      let body: any;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return answer(200, JSON.stringify({ resultCode: '0300007', resultDesc: 'request body parameters missing' }));
      }
      if (body?.request?.version !== '2.0') return answer(200, JSON.stringify({ resultCode: '0300006', resultDesc: 'version error, server version is 2.0' }));
      const msgBody = body.msgBody ?? {};
      if (url.pathname === '/CCFS/resource/ccfs/queryBillData') {
        const forced = this.queryQueue.shift();
        if (forced && 'http' in forced) return answer(forced.http, springError(forced.http, 'Error'));
        if (forced) return answer(200, JSON.stringify({ resultCode: forced.code, resultDesc: forced.desc ?? `forced ${forced.code}`, resultData: '' }));
        const code = this.checkQuery(msgBody);
        if (code) return answer(200, JSON.stringify({ resultCode: code[0], resultDesc: code[1], resultData: '' }));
        const responseId = randomBytes(16).toString('hex');
        const p = localParts(this.now(), this.opts.timeZone ?? 'UTC');
        const billFileName = `${p.year}${p.month}${p.day}_${responseId}.zip`;
        answer(200, JSON.stringify({ resultData: { responseId }, resultCode: '0', resultDesc: 'success', response: { version: '2.0', resultCode: '0', resultMsg: 'success' } }));
        const job = (async () => {
          const zip = this.opts.fileFor ? this.opts.fileFor(msgBody, responseId) : await defaultBillZip();
          this.files.set(billFileName, zip);
          if (this.opts.autoCallback === false) return;
          await new Promise((r) => setTimeout(r, this.opts.callbackDelayMs ?? 10));
          const cbBody = { request: { version: '2.0' }, msgBody: { responseId, billFileName, accountId: msgBody.accountId ?? '' } };
          for (let i = 0; i < (this.opts.callbackCopies ?? 1); i++) {
            // each copy is signed anew, as a retry 10 minutes later would be
            const ts = new Date(this.now() + i * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
            await this.callBack(msgBody.callBackURL, cbBody, { timestamp: ts });
          }
        })();
        this.pending.push(job);
        return;
      }
      if (url.pathname === '/CCFS/resource/ccfs/downloadBillFile') {
        const forced = this.downloadQueue.shift();
        if (forced && 'http' in forced) return answer(forced.http, springError(forced.http, 'Error'));
        if (forced) return answer(200, JSON.stringify({ resultCode: forced.code, resultDesc: forced.desc ?? `forced ${forced.code}`, resultData: '', response: { version: '2.0', resultCode: forced.code, resultMsg: 'fail' } }));
        const name = msgBody.billFileName;
        if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,49}$/.test(name)) return answer(200, JSON.stringify({ resultCode: '0300022', resultDesc: 'billFileName has illegal characters' }));
        const file = this.files.get(name);
        if (!file) return answer(200, JSON.stringify({ resultCode: '0300011', resultDesc: 'file does not exist', resultData: '' }));
        if (this.held) {
          seen.outcome = 'held';
          this.held.then(() => (res.destroyed ? undefined : answer(200, file, 'Application/Octet-stream;charset=UTF-8')));
          return;
        }
        return answer(200, file, 'Application/Octet-stream;charset=UTF-8');
      }
      answer(404, springError(404, 'Not Found'));
    });
  }

  /** Null when the signature is right; otherwise why not. */
  private checkAuth(req: http.IncomingMessage, url: URL, raw: Buffer): string | null {
    const auth = req.headers.authorization;
    if (!auth) return 'missing';
    const parts = auth.split('/');
    if (parts.length !== 5 || parts[0] !== 'auth-v2') return 'malformed';
    const [, ak, ts, names] = parts;
    if (ak !== this.opts.accessKey) return 'unknown AK';
    const list = names.split(';');
    for (const need of this.opts.requiredSignedHeaders ?? ['host']) if (!list.includes(need)) return `header set lacks ${need}`;
    const headers: Record<string, string> = {};
    for (const n of list) {
      const v = req.headers[n];
      if (typeof v !== 'string') return `signed header ${n} not sent`;
      headers[n] = v;
    }
    const expected = simSign(ak, this.opts.secretKey, ts, req.method ?? 'POST', url.pathname, headers, raw, url.searchParams);
    return expected === auth ? null : 'signature mismatch';
  }

  private checkQuery(b: Record<string, string>): [string, string] | null {
    for (const f of ['beginTime', 'endTime', 'dataType', 'callBackURL']) if (!b[f]) return ['0300001', `${f} is null`];
    const re = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
    if (!re.test(b.beginTime) || !re.test(b.endTime)) return ['0300004', 'time format error'];
    if (!['call', 'record', 'call_record'].includes(b.dataType)) return ['0300004', 'dataType format error'];
    const asUtc = (t: string) => Date.parse(t.replace(' ', 'T') + 'Z');
    const begin = asUtc(b.beginTime);
    const end = asUtc(b.endTime);
    if (begin > end) return ['0300013', 'beginTime is later than endTime'];
    if (end - begin > (this.opts.maxDays ?? 3) * 86_400_000) return ['0300014', `the interval cannot exceed ${this.opts.maxDays ?? 3} days`];
    const p = localParts(this.now(), this.opts.timeZone ?? 'UTC');
    const nowLocal = Date.parse(`${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}Z`);
    if (end > nowLocal) return ['0300016', 'endTime is later than the current time'];
    for (const [f, n] of [['accountId', 20], ['agentId', 20], ['callId', 25], ['callerNo', 25], ['calleeNo', 25], ['calleeNo2', 25]] as const) {
      if (b[f] !== undefined && String(b[f]).length > n) return ['0300003', `${f} is too long`];
    }
    return null;
  }

  /**
   * Calls back as CC-FS does: one attempt (signed anew each time), and after a failure (no answer within
   * the timeout, an error, or no success) another one `retryMs` later, up to `retries` more. Resolves
   * with every attempt, last one last.
   */
  callBack(target: string, body: unknown, o: CallbackOptions & RetryTiming = {}): Promise<CallbackResult[]> {
    const retries = o.retries ?? this.opts.callbackRetries ?? 5;
    const retryMs = o.retryMs ?? this.opts.callbackRetryMs ?? 600_000;
    const run = (async () => {
      const attempts: CallbackResult[] = [];
      for (let i = 0; i <= retries && !this.stopped; i++) {
        if (i > 0) await this.wait(retryMs);
        if (this.stopped) break;
        // each attempt is signed anew: a retry at its own (later) time, a second further per attempt
        // when the test's timing is shorter than the timestamps' resolution
        const at = new Date(this.now() + i * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        const r = await this.sendCallback(target, body, { ...o, timestamp: i === 0 && o.timestamp ? o.timestamp : at });
        attempts.push(r);
        if (callbackSucceeded(r)) break;
      }
      return attempts;
    })();
    this.pending.push(run);
    return run;
  }

  /** Signs and POSTs one callback to `target` the way CC-FS does; no answer within the timeout gives status 0, timedOut. */
  sendCallback(target: string, body: unknown, o: CallbackOptions & Pick<RetryTiming, 'timeoutMs'> = {}): Promise<CallbackResult> {
    const url = new URL(target);
    let text: string;
    let headers: Record<string, string>;
    if (o.replay) {
      text = o.replay.body;
      headers = { ...o.replay.headers };
    } else {
      text = typeof body === 'string' ? body : JSON.stringify(body);
      const host = o.host ?? ((this.opts.callbackHost ?? 'bare') === 'bare' ? url.hostname : url.host);
      const toSign: Record<string, string> = o.hostOnly
        ? { host }
        : { 'content-length': String(Buffer.byteLength(text)), 'content-type': 'application/json;charset=UTF-8', host };
      const d = new Date(this.now());
      const ts = o.timestamp ?? `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
      headers = { accept: '*/*', 'content-type': 'application/json;charset=UTF-8', host };
      if (!o.unsigned) headers.authorization = simSign(o.accessKey ?? this.opts.accessKey, o.secretKey ?? this.opts.secretKey, ts, 'POST', url.pathname, toSign, text, url.searchParams);
      if (o.tamper) text = text.replace(/"responseId":"/, '"responseId":"x');
    }
    headers['content-length'] = String(Buffer.byteLength(text));
    const sent = { headers: { ...headers }, body: text };
    const timeoutMs = o.timeoutMs ?? this.opts.callbackTimeoutMs ?? 30_000;
    return new Promise<CallbackResult>((resolve) => {
      let settled = false;
      const settle = (result: CallbackResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.callbacks.push(result);
        resolve(result);
      };
      const r = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', headers, setHost: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => settle({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sent }));
        res.on('error', (err) => settle({ status: 0, body: '', sent, error: err.message }));
      });
      // CC-FS gives up on an attempt that is not answered in time, and tries again later
      const timer = setTimeout(() => {
        settle({ status: 0, body: '', sent, timedOut: true });
        r.destroy();
      }, timeoutMs);
      r.on('error', (err: NodeJS.ErrnoException) => settle({ status: 0, body: '', sent, error: err.code ?? err.message }));
      r.end(text);
    });
  }

  nextId(): string {
    return `sim${++this.counter}`;
  }
}

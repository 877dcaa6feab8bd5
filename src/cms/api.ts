/**
 * Cisco Meeting Server REST API client (specs/cms.md §6), HTTP Basic auth on the Web Admin port:
 * - on-screen call messages: `PUT /api/v1/calls/<call id>` with form fields messageText,
 *   messagePosition, messageDuration. A call id belongs to one call bridge: in a cluster the client
 *   asks each bridge in turn (the others answer 404) and remembers the owner;
 * - the live calls of every bridge, for cms-call-tracker to check its view against: `GET /api/v1/calls`,
 *   `GET /api/v1/calls/<id>` (the message on screen), `GET /api/v1/calls/<id>/callLegs` (both lists
 *   paged with `offset` and `limit`) and `GET /api/v1/callLegs/<id>` (a leg's `subType`).
 */
import { request, type Dispatcher } from 'undici';
import { createAgent, withRetry, bodyText, isTransientNetworkError, HttpStatusError, type HttpClientOptions } from '../common/http';
import { parseCallList, parseCall, parseLegList, parseLeg, ApiAnswerError, type ApiPage } from './api-views';

export type MessagePosition = 'top' | 'middle' | 'bottom';

export interface CallMessage {
  /** Empty text clears the message. */
  text: string;
  position?: MessagePosition;
  /** `permanent` or a number of seconds. */
  duration?: 'permanent' | number;
}

export interface CmsApiOptions extends HttpClientOptions {
  /** Web Admin base URLs, e.g. `https://cms1.example.com:8443` (one per call bridge of a cluster). */
  baseUrls: string[];
  user: string;
  password: string;
  /** Further attempts on a bridge after 5xx, timeouts and connection failures. */
  retries?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How many call → bridge owners to remember. */
  ownerCacheSize?: number;
  /** Use this dispatcher instead of creating one (tests). */
  dispatcher?: Dispatcher;
  onRetry?: (err: unknown, attempt: number, delayMs: number, baseUrl: string) => void;
}

/**
 * auth 401, forbidden 403, notFound 404 on every bridge, badRequest other 4xx, server 5xx,
 * network (reset, refused, timeout: retried), tls (certificate not trusted: not retried), config,
 * badAnswer (a 200 whose body is not the XML CMS sends).
 */
export type CmsApiErrorCode = 'auth' | 'forbidden' | 'notFound' | 'badRequest' | 'server' | 'network' | 'tls' | 'config' | 'badAnswer';

export class CmsApiError extends HttpStatusError {
  constructor(
    readonly code: CmsApiErrorCode,
    message: string,
    /** HTTP status, 0 when there was no answer. */
    status = 0,
    /** CMS's `<failureDetails>` child name, when it sent one. */
    readonly failure: string | null = null,
    readonly baseUrl: string | null = null,
    headers: Record<string, string | string[] | undefined> = {},
  ) {
    super(status, message, headers);
    this.name = 'CmsApiError';
  }
}

export interface PutResult {
  baseUrl: string;
  status: number;
  /** Requests sent in all (404s from other bridges and retries included). */
  attempts: number;
}

/** A leg of a live call, as the API shows it. */
export interface ActiveLeg {
  id: string;
  name: string | null;
  remoteParty: string | null;
  remoteAddress: string | null;
  type: string | null;
  subType: string | null;
  /** `type` and `subType` were read (`GET /api/v1/callLegs/<id>`); false for legs the caller said it knows. */
  detail: boolean;
}

/** A live call on one bridge, with its legs and the message on screen. */
export interface ActiveCall {
  id: string;
  /** The bridge (Web Admin base URL) the call lives on. */
  baseUrl: string;
  name: string | null;
  coSpace: string | null;
  callCorrelator: string | null;
  /** The message shown in the call now ('' for none). */
  messageText: string;
  legs: ActiveLeg[];
  /** The leg list did not change while it was paged: a leg not in it has left. */
  legsComplete: boolean;
}

export interface ActiveCalls {
  calls: ActiveCall[];
  /**
   * Every bridge was read through and no call list changed while it was paged: a call that is not
   * here has ended. False when a bridge failed (see failures) or a list moved under the paging.
   */
  complete: boolean;
  /** One error per bridge that could not be read. */
  failures: CmsApiError[];
}

export interface ReadActiveOptions {
  /** Whether to read a leg's details (its subType); default: every leg. */
  needLegDetail?: (legId: string) => boolean;
  signal?: AbortSignal;
  /** Items asked for per page (`limit`); default 20. CMS may send fewer: the `total` decides. */
  pageSize?: number;
  /** Calls read at the same time per bridge; default 4. */
  concurrency?: number;
}

const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);
const ID = /^[A-Za-z0-9-]{1,64}$/;
/** A list longer than this many pages is not believed. */
const MAX_PAGES = 2000;

export class CmsApiClient {
  readonly baseUrls: string[];
  private readonly dispatcher: Dispatcher;
  private readonly ownAgent: boolean;
  private readonly auth: string;
  private readonly owners = new Map<string, string>();
  private readonly opts: CmsApiOptions;

  constructor(opts: CmsApiOptions) {
    this.opts = opts;
    this.baseUrls = opts.baseUrls.map(normaliseBaseUrl);
    if (this.baseUrls.length === 0) throw new CmsApiError('config', 'no CMS Web Admin URL configured');
    this.auth = `Basic ${Buffer.from(`${opts.user}:${opts.password}`).toString('base64')}`;
    this.ownAgent = !opts.dispatcher;
    this.dispatcher = opts.dispatcher ?? createAgent(opts);
  }

  /** The bridge remembered as owner of `callId`, if any. */
  ownerOf(callId: string): string | null {
    return this.owners.get(callId) ?? null;
  }

  /** Sets (or, with empty text, clears) the on-screen message of a call. */
  setCallMessage(callId: string, message: CallMessage, signal?: AbortSignal): Promise<PutResult> {
    const clear = message.text === '';
    const form = new URLSearchParams();
    form.set('messageText', message.text);
    form.set('messagePosition', message.position ?? 'bottom');
    form.set('messageDuration', clear ? '0' : String(message.duration ?? 'permanent'));
    return this.putCall(callId, form, signal);
  }

  clearCallMessage(callId: string, signal?: AbortSignal): Promise<PutResult> {
    return this.setCallMessage(callId, { text: '' }, signal);
  }

  /** `PUT /api/v1/calls/<id>` on the bridge that owns the call. */
  async putCall(callId: string, form: URLSearchParams, signal?: AbortSignal): Promise<PutResult> {
    if (!ID.test(callId)) throw new CmsApiError('config', `not a call id: ${JSON.stringify(callId).slice(0, 80)}`);
    const known = this.owners.get(callId);
    const order = known ? [known, ...this.baseUrls.filter((b) => b !== known)] : this.baseUrls;
    const failures: CmsApiError[] = [];
    let attempts = 0;
    for (const base of order) {
      try {
        const { status } = await this.withRetries(base, () => {
          attempts++;
          return this.requestOnce(base, 'PUT', `/api/v1/calls/${encodeURIComponent(callId)}`, `call ${callId}`, form, signal);
        }, signal);
        this.remember(callId, base);
        return { baseUrl: base, status, attempts };
      } catch (err) {
        if (!(err instanceof CmsApiError)) throw err;
        if (known === base) this.owners.delete(callId);
        if (err.code === 'badRequest' || signal?.aborted) throw err;
        failures.push(err);
      }
    }
    // Nobody took it: say the most useful thing. A wrong password matters more than a 404 elsewhere.
    for (const code of ['auth', 'forbidden', 'tls', 'server', 'network'] as CmsApiErrorCode[]) {
      const f = failures.find((e) => e.code === code);
      if (f) throw f;
    }
    throw new CmsApiError('notFound', `call ${callId} not found on ${order.length === 1 ? order[0] : `any of ${order.length} call bridges`}`, 404);
  }

  /** The live calls of every bridge, their legs and the message each shows (see ActiveCalls). */
  async readActiveCalls(opts: ReadActiveOptions = {}): Promise<ActiveCalls> {
    const read = await Promise.all(this.baseUrls.map((base) => this.readBridge(base, opts).then(
      (r) => ({ ...r, error: null }),
      (err: unknown) => {
        if (!(err instanceof CmsApiError) || opts.signal?.aborted) throw err;
        return { calls: [] as ActiveCall[], steady: false, error: err };
      },
    )));
    return {
      calls: read.flatMap((r) => r.calls),
      complete: read.every((r) => r.steady),
      failures: read.flatMap((r) => (r.error ? [r.error] : [])),
    };
  }

  /** One bridge, all or nothing: any failure but a 404 for something that ended meanwhile rejects. */
  private async readBridge(base: string, opts: ReadActiveOptions): Promise<{ calls: ActiveCall[]; steady: boolean }> {
    const { signal } = opts;
    const need = opts.needLegDetail ?? (() => true);
    const list = await this.readList(base, '/api/v1/calls', 'the call list', parseCallList, opts);
    const gone = (err: unknown) => err instanceof CmsApiError && err.code === 'notFound';
    const calls = await mapLimit(list.items, opts.concurrency ?? 4, async (item): Promise<ActiveCall | null> => {
      const path = `/api/v1/calls/${encodeURIComponent(item.id)}`;
      try {
        const detail = this.parsed(base, `call ${item.id}`, parseCall, await this.get(base, path, `call ${item.id}`, signal));
        const legList = await this.readList(base, `${path}/callLegs`, `the legs of call ${item.id}`, parseLegList, opts);
        const legs: ActiveLeg[] = [];
        for (const l of legList.items) {
          const leg: ActiveLeg = { id: l.id, name: l.name, remoteParty: l.remoteParty, remoteAddress: null, type: null, subType: null, detail: false };
          if (need(l.id)) {
            try {
              const d = this.parsed(base, `call leg ${l.id}`, parseLeg, await this.get(base, `/api/v1/callLegs/${encodeURIComponent(l.id)}`, `call leg ${l.id}`, signal));
              Object.assign(leg, { remoteParty: d.remoteParty ?? leg.remoteParty, remoteAddress: d.remoteAddress, type: d.type, subType: d.subType, detail: true });
            } catch (err) {
              if (!gone(err)) throw err;
              continue; // the leg left between the list and now
            }
          }
          legs.push(leg);
        }
        this.remember(item.id, base);
        return {
          id: item.id, baseUrl: base, name: detail.name ?? item.name, coSpace: detail.coSpace ?? item.coSpace,
          callCorrelator: detail.callCorrelator ?? item.callCorrelator, messageText: detail.messageText, legs, legsComplete: legList.steady,
        };
      } catch (err) {
        if (gone(err)) return null; // the call ended between the list and now
        throw err;
      }
    });
    return { calls: calls.filter((c): c is ActiveCall => c !== null), steady: list.steady };
  }

  /**
   * Every page of a list (`offset`, `limit`), until `total` items came. `steady` is false when the
   * total changed between pages or the list ran short: items may have moved past the paging.
   */
  private async readList<T extends { id: string }>(base: string, path: string, what: string, parse: (xml: string) => ApiPage<T>, opts: ReadActiveOptions): Promise<{ items: T[]; steady: boolean }> {
    const limit = Math.max(1, opts.pageSize ?? 20);
    const items = new Map<string, T>();
    let total: number | null = null;
    let steady = true;
    let offset = 0;
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const page = this.parsed(base, what, parse, await this.get(base, `${path}?offset=${offset}&limit=${limit}`, what, opts.signal));
      if (total !== null && page.total !== total) steady = false;
      total = page.total;
      for (const item of page.items) {
        if (!ID.test(item.id)) throw new CmsApiError('badAnswer', `${base}: ${what}: not an id: ${JSON.stringify(item.id).slice(0, 80)}`, 200, null, base);
        items.set(item.id, item);
      }
      offset += page.items.length;
      if (page.items.length === 0 || offset >= page.total) return { items: [...items.values()], steady: steady && offset >= page.total };
    }
    throw new CmsApiError('badAnswer', `${base}: ${what}: more than ${MAX_PAGES} pages`, 200, null, base);
  }

  private parsed<T>(base: string, what: string, parse: (xml: string) => T, body: string): T {
    try {
      return parse(body);
    } catch (err) {
      if (!(err instanceof ApiAnswerError)) throw err;
      throw new CmsApiError('badAnswer', `${base}: ${what}: ${err.message}`, 200, null, base);
    }
  }

  /** A GET on one bridge, retried like a PUT; the body of the 2xx answer. */
  private async get(base: string, path: string, what: string, signal?: AbortSignal): Promise<string> {
    return (await this.withRetries(base, () => this.requestOnce(base, 'GET', path, what, null, signal), signal)).body;
  }

  /** 5xx, timeouts and dropped connections are tried again, the rest is not. */
  private withRetries<T>(base: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(fn, {
      retries: this.opts.retries ?? 2,
      baseDelayMs: this.opts.retryBaseMs ?? 500,
      maxDelayMs: this.opts.retryMaxMs ?? 5000,
      retryable: (err) => err instanceof CmsApiError && (err.code === 'server' || err.code === 'network'),
      onRetry: (err, attempt, delay) => this.opts.onRetry?.(err, attempt, delay, base),
    }, signal);
  }

  /** One request; a 2xx answer's status and body, or a CmsApiError that says what went wrong. */
  private async requestOnce(base: string, method: 'GET' | 'PUT', path: string, what: string, form: URLSearchParams | null, signal?: AbortSignal): Promise<{ status: number; body: string }> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${base}${path}`, {
        method,
        dispatcher: this.dispatcher,
        headers: {
          authorization: this.auth,
          accept: 'text/xml, application/xml',
          ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        body: form ? form.toString() : undefined,
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = e.code ?? e.cause?.code ?? '';
      if (isTransientNetworkError(err)) throw new CmsApiError('network', `${base}: ${code || e.message}`, 0, null, base);
      if (/CERT|SELF_SIGNED|SSL|TLS|UNABLE_TO/i.test(code)) {
        throw new CmsApiError('tls', `${base}: TLS verification failed (${code}): add the CMS certificate's CA in the server config`, 0, null, base);
      }
      throw new CmsApiError('network', `${base}: ${e.cause?.message ?? e.message}`, 0, null, base);
    }
    let body = '';
    let complete = true;
    try {
      body = await bodyText(res, 4 * 1024 * 1024);
    } catch (err) {
      complete = false; // the status is what counts for an error; a 2xx needs its body
      if (res.statusCode >= 200 && res.statusCode < 300 && method === 'GET') {
        throw new CmsApiError('network', `${base}: ${what}: the answer broke off (${(err as Error).message})`, 0, null, base);
      }
    }
    const status = res.statusCode;
    if (status >= 200 && status < 300) return { status, body: complete ? body : '' };
    const failure = failureDetail(body);
    const detail = failure ? ` (${failure})` : '';
    const headers = res.headers as Record<string, string | string[] | undefined>;
    if (status === 401) throw new CmsApiError('auth', `${base}: 401 Unauthorized: check the API user and password`, status, failure, base);
    if (status === 403) throw new CmsApiError('forbidden', `${base}: 403 Forbidden: the API user may not ${method === 'GET' ? 'read' : 'change'} calls${detail}`, status, failure, base);
    if (status === 404) throw new CmsApiError('notFound', `${base}: ${what} not found${detail}`, status, failure, base);
    // withRetry honours Retry-After (CMS answers 503 when busy)
    if (RETRYABLE_STATUS.has(status)) throw new CmsApiError('server', `${base}: ${status} from the call bridge${detail}`, status, failure, base, headers);
    throw new CmsApiError('badRequest', `${base}: ${status} refused${detail}`, status, failure, base);
  }

  private remember(callId: string, base: string): void {
    this.owners.delete(callId);
    this.owners.set(callId, base);
    const max = this.opts.ownerCacheSize ?? 10_000;
    while (this.owners.size > max) this.owners.delete(this.owners.keys().next().value as string);
  }

  /** Forgets the owner of a call that ended. */
  forget(callId: string): void {
    this.owners.delete(callId);
  }

  async close(): Promise<void> {
    if (this.ownAgent) await (this.dispatcher as Dispatcher & { close(): Promise<void> }).close();
  }
}

/** `https://cms1:8443/` and `https://cms1:8443/api/v1` → `https://cms1:8443`. */
export function normaliseBaseUrl(u: string): string {
  const url = new URL(u.trim());
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new CmsApiError('config', `not an http(s) URL: ${u}`);
  if (url.username || url.password) throw new CmsApiError('config', 'put the API user and password in the credentials, not in the URL');
  const path = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

/** "https://a:8443, https://b:8443" (commas, spaces or new lines) → list. */
export function baseUrlList(source: string | string[] | undefined | null): string[] {
  const items = Array.isArray(source) ? source : (source ?? '').split(/[\s,;]+/);
  return items.map((s) => s.trim()).filter(Boolean);
}

/** `<failureDetails><callDoesNotExist/></failureDetails>` → `callDoesNotExist`. */
export function failureDetail(body: string): string | null {
  const m = /<failureDetails>\s*<([A-Za-z][\w-]*)/.exec(body);
  return m ? m[1] : null;
}

/** `fn` over `items`, at most `limit` at a time, results in order; the first rejection rejects. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}

/**
 * Cisco Meeting Server REST API client for on-screen call messages (specs/cms.md §6):
 * `PUT /api/v1/calls/<call id>` with form fields messageText, messagePosition, messageDuration,
 * HTTP Basic auth on the Web Admin port. A call id belongs to one call bridge: in a cluster the
 * client asks each bridge in turn (the others answer 404) and remembers the owner.
 */
import { request, type Dispatcher } from 'undici';
import { createAgent, withRetry, bodyText, isTransientNetworkError, HttpStatusError, type HttpClientOptions } from '../common/http';

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
 * network (reset, refused, timeout: retried), tls (certificate not trusted: not retried), config.
 */
export type CmsApiErrorCode = 'auth' | 'forbidden' | 'notFound' | 'badRequest' | 'server' | 'network' | 'tls' | 'config';

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

const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);

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
    if (!/^[A-Za-z0-9-]{1,64}$/.test(callId)) throw new CmsApiError('config', `not a call id: ${JSON.stringify(callId).slice(0, 80)}`);
    const known = this.owners.get(callId);
    const order = known ? [known, ...this.baseUrls.filter((b) => b !== known)] : this.baseUrls;
    const failures: CmsApiError[] = [];
    let attempts = 0;
    for (const base of order) {
      try {
        const status = await withRetry(async () => {
          attempts++;
          return this.putOnce(base, callId, form, signal);
        }, {
          retries: this.opts.retries ?? 2,
          baseDelayMs: this.opts.retryBaseMs ?? 500,
          maxDelayMs: this.opts.retryMaxMs ?? 5000,
          retryable: (err) => err instanceof CmsApiError && (err.code === 'server' || err.code === 'network'),
          onRetry: (err, attempt, delay) => this.opts.onRetry?.(err, attempt, delay, base),
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

  private async putOnce(base: string, callId: string, form: URLSearchParams, signal?: AbortSignal): Promise<number> {
    const url = `${base}/api/v1/calls/${encodeURIComponent(callId)}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'PUT',
        dispatcher: this.dispatcher,
        headers: { authorization: this.auth, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/xml, application/xml' },
        body: form.toString(),
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
    try {
      body = await bodyText(res, 64 * 1024);
    } catch {
      /* the status is what counts */
    }
    const status = res.statusCode;
    if (status >= 200 && status < 300) return status;
    const failure = failureDetail(body);
    const detail = failure ? ` (${failure})` : '';
    const headers = res.headers as Record<string, string | string[] | undefined>;
    if (status === 401) throw new CmsApiError('auth', `${base}: 401 Unauthorized: check the API user and password`, status, failure, base);
    if (status === 403) throw new CmsApiError('forbidden', `${base}: 403 Forbidden: the API user may not change calls${detail}`, status, failure, base);
    if (status === 404) throw new CmsApiError('notFound', `${base}: call ${callId} not found${detail}`, status, failure, base);
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

/**
 * Webex Calling detailed call history client (specs/webex.md §1–§3): region hosts, one page per call,
 * Link rel="next" followed verbatim, a per-token rate limiter, and the documented error handling.
 */
import { request, type Dispatcher } from 'undici';
import { backoffDelay, bodyText, isTransientNetworkError, parseRetryAfter } from '../common/http';
import { systemClock, type Clock } from './clock';
import type { RawCdr } from './records';

export type Region = 'auto' | 'us' | 'eu' | 'in' | 'au' | 'gov' | 'custom';
export type Endpoint = 'cdr_stream' | 'cdr_feed';

export const REGION_HOSTS: Record<Exclude<Region, 'custom' | 'auto'>, string> = {
  us: 'https://analytics-calling.webexapis.com',
  eu: 'https://analytics-calling-eu.webexapis.com',
  in: 'https://analytics-calling-in.webexapis.com',
  au: 'https://analytics-calling-au.webexapis.com',
  gov: 'https://analytics-calling-gov.webexapis.com',
};

export const MAX_MIN = 500;
export const MAX_MAX = 5000;
export const NO_CDRS = /no cdrs/i;
export const SCOPE = 'spark-admin:calling_cdr_read';
export const ADMIN_ROLE = 'Webex Calling Detailed Call History API access';

/** The base URL for a region; `custom` takes the given URL (trailing slashes removed). */
export function baseUrlFor(region: string | undefined, custom?: string): string {
  if (region === 'custom') {
    const u = (custom ?? '').trim().replace(/\/+$/, '');
    if (!/^https?:\/\/[^/\s]+/i.test(u)) throw new Error(`custom base URL "${custom ?? ''}" is not an http(s) URL`);
    return u;
  }
  return REGION_HOSTS[(region && region in REGION_HOSTS ? region : 'us') as keyof typeof REGION_HOSTS];
}

export function clampMax(max: unknown): number {
  const n = Math.trunc(Number(max));
  if (!Number.isFinite(n) || n <= 0) return MAX_MAX;
  return Math.min(MAX_MAX, Math.max(MAX_MIN, n));
}

/**
 * The rel="next" target of a Link header, parsed leniently: RFC 8288 `<u>; rel="next"`, several
 * comma-separated links, unquoted rel, and the doc's doubled brackets `<<u>;rel="next">`.
 */
export function parseNextLink(header: string | string[] | undefined | null): string | null {
  if (!header) return null;
  const text = Array.isArray(header) ? header.join(', ') : header;
  const re = /<+\s*([^<>\s]+)\s*>+\s*((?:;\s*[A-Za-z*-]+\s*=\s*(?:"[^"]*"|[^;,>\s]*)\s*)*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,>\s]*))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) return m[1];
  }
  return null;
}

/** Webex time parameter format: `YYYY-MM-DDTHH:MM:SS.mmmZ`. */
export function fmtTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** The first URL in a 451 body that is a Webex analytics host (or, for a custom base, on the same host name). */
export function regionFromBody(body: string, currentBase: string, trustHostname?: string): string | null {
  let text = body;
  try {
    const j = JSON.parse(body) as { message?: unknown; errors?: Array<{ description?: unknown }> };
    text = [j.message, ...(j.errors ?? []).map((e) => e.description), body].filter((x) => typeof x === 'string').join(' ');
  } catch { /* plain text body */ }
  const urls = text.match(/https?:\/\/[^"'\s,}\\<>]+/g) ?? [];
  for (const raw of urls) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      continue;
    }
    const origin = `${u.protocol}//${u.host}`;
    if (origin === currentBase) continue;
    const webex = u.protocol === 'https:' && /^analytics(-calling)?(-[a-z]+)?\.webexapis\.com$/i.test(u.hostname);
    if (webex || (trustHostname && u.hostname === trustHostname)) return origin;
  }
  return null;
}

/** Rate budget per token (specs/webex.md §2.5): one initial request per minute, ten page requests per rolling minute. */
export interface RateLimits {
  initialIntervalMs: number;
  pagesPerWindow: number;
  pageWindowMs: number;
}
export const DEFAULT_LIMITS: RateLimits = { initialIntervalMs: 61_000, pagesPerWindow: 10, pageWindowMs: 61_000 };

export type RequestKind = 'initial' | 'page';

/** How long initial requests wait at most for a state still being restored (a store that never answers). */
const RESTORE_WAIT_MS = 10_000;

/**
 * The two budgets of one token, kept apart: initial requests (one per `initialIntervalMs`) and page
 * requests (`pagesPerWindow` per rolling `pageWindowMs`). Each budget serves its callers in order, and
 * neither waits for the other: a page whose budget is free goes out while a new window waits for its
 * minute. Retry-After (pause) holds both.
 */
export class RateLimiter {
  private lastInitial = -Infinity;
  private pages: number[] = [];
  private pausedUntil = 0;
  private readonly queues: Record<RequestKind, Promise<unknown>> = { initial: Promise.resolve(), page: Promise.resolve() };
  private readonly restoring = new Set<Promise<void>>();
  /** Requests booked so far (tests match it against what reached the server). */
  booked = 0;

  constructor(private readonly clock: Clock = systemClock, private readonly limits: RateLimits = DEFAULT_LIMITS) {}

  /**
   * Waits until a request of this kind fits its budget, then books it; resolves with the time it was
   * booked at. Callers of one kind are served in order.
   */
  take(kind: RequestKind, signal?: AbortSignal): Promise<number> {
    const turn = this.queues[kind].then(() => this.wait(kind, signal));
    this.queues[kind] = turn.catch(() => undefined);
    return turn;
  }

  /** The server asked us to hold off (429/423 Retry-After): nobody on this token sends before then. */
  pause(untilMs: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, untilMs);
  }

  /**
   * An initial request sent at `at` before a restart (kept in a pull node's saved state): the next one
   * waits its interval from there. Of several restored times (nodes sharing the token) the latest counts;
   * one in the future (a clock set back) counts as now.
   */
  restoreInitial(at: number): void {
    if (Number.isFinite(at)) this.lastInitial = Math.max(this.lastInitial, Math.min(at, this.clock.now()));
  }

  /**
   * A state that may hold such a time is still being read: initial requests wait until it settled
   * (at most RESTORE_WAIT_MS), so no node's first request beats a sibling's restored time.
   */
  whileRestoring(done: Promise<unknown>): void {
    const p: Promise<void> = done.then(() => undefined, () => undefined).then(() => {
      this.restoring.delete(p);
    });
    this.restoring.add(p);
  }

  private async restored(): Promise<void> {
    if (this.restoring.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((r) => {
      timer = setTimeout(r, RESTORE_WAIT_MS);
      timer.unref?.();
    });
    await Promise.race([Promise.all([...this.restoring]), bound]);
    clearTimeout(timer);
  }

  private async wait(kind: RequestKind, signal?: AbortSignal): Promise<number> {
    if (kind === 'initial') await this.restored();
    for (;;) {
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      const now = this.clock.now();
      let ready = this.pausedUntil;
      if (kind === 'initial') ready = Math.max(ready, this.lastInitial + this.limits.initialIntervalMs);
      else {
        this.pages = this.pages.filter((t) => t > now - this.limits.pageWindowMs);
        if (this.pages.length >= this.limits.pagesPerWindow) ready = Math.max(ready, this.pages[0] + this.limits.pageWindowMs);
      }
      if (ready <= now) {
        if (kind === 'initial') this.lastInitial = now;
        else this.pages.push(now);
        this.booked++;
        return now;
      }
      await this.clock.sleep(ready - now, signal);
    }
  }
}

export type WebexErrorKind = 'config' | 'auth' | 'request' | 'server' | 'notFound' | 'region';

export class WebexApiError extends Error {
  constructor(readonly kind: WebexErrorKind, message: string, readonly status?: number, readonly trackingId?: string) {
    super(message);
    this.name = 'WebexApiError';
  }
  /** Errors a retry of the same request cannot fix: stop scheduling until the user changes something. */
  get fatal(): boolean {
    return this.kind === 'config' || this.kind === 'auth' || this.kind === 'region';
  }
}

export interface TokenSource {
  getToken(signal?: AbortSignal): Promise<string>;
  onUnauthorized(rejected: string, signal?: AbortSignal): Promise<string>;
}

export interface ClientOptions {
  baseUrl: string;
  /** With a custom base URL, 451 may point to another URL on this host name (test rigs, proxies). */
  trustHostname?: string;
  /** false: a fixed region; a 451 is then an error naming the right host. */
  followRegion?: boolean;
  tokens: TokenSource;
  limiter: RateLimiter;
  dispatcher?: Dispatcher;
  clock?: Clock;
  /** Tries after the first for 5xx, timeouts and network errors. */
  retries?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Consecutive 429/423 answers obeyed before giving up on a request. */
  maxRateWaits?: number;
  /** Default wait for a 429/423 without Retry-After. */
  defaultRetryAfterMs?: number;
  /** The base URL changed after a 451 (persist it). */
  onRegionChange?: (baseUrl: string) => void;
  onRetry?: (info: { status?: number; attempt: number; delayMs: number; reason: string }) => void;
  random?: () => number;
}

export interface Page {
  items: RawCdr[];
  /** The URL that produced this page. */
  url: string;
  /** The rel="next" URL, or null when the window is complete. */
  next: string | null;
  /** HTTP requests this page took (retries included). */
  apiCalls: number;
  /** True when the window was empty (404 "No CDRs…"). */
  empty: boolean;
  trackingId?: string;
}

export interface WindowQuery {
  endpoint: Endpoint;
  start: number;
  end: number;
  max: number;
  locations?: string;
}

export class CdrClient {
  private base: string;
  private readonly clock: Clock;
  private switchedRegion = false;
  /** Requests sent, for statistics. */
  apiCalls = 0;

  constructor(private readonly opts: ClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
    this.clock = opts.clock ?? systemClock;
  }

  get baseUrl(): string {
    return this.base;
  }

  firstUrl(q: WindowQuery): string {
    const p = new URLSearchParams({ startTime: fmtTime(q.start), endTime: fmtTime(q.end), max: String(clampMax(q.max)) });
    if (q.locations && q.locations.trim()) p.set('locations', q.locations.trim());
    return `${this.base}/v1/${q.endpoint}?${p.toString()}`;
  }

  /**
   * The first page of a window. `q` may be a plan, called once with the time the initial request was
   * booked (after any wait for the rate limit), so the window can end as late as that time allows;
   * repeats of the request (429, 5xx…) send what the plan gave.
   */
  firstPage(q: WindowQuery | ((bookedAt: number) => WindowQuery), signal?: AbortSignal): Promise<Page> {
    return this.fetchPage(typeof q === 'function' ? (at: number) => this.firstUrl(q(at)) : this.firstUrl(q), 'initial', signal);
  }

  /** An initial request made before a restart (saved state): the shared limiter waits its interval from it. */
  restoreInitial(at: number): void {
    this.opts.limiter.restoreInitial(at);
  }

  /** A following page: the Link URL exactly as the server gave it. */
  nextPage(url: string, signal?: AbortSignal): Promise<Page> {
    return this.fetchPage(url, 'page', signal);
  }

  /** Every page of one window, in order. */
  async *pages(q: WindowQuery, signal?: AbortSignal, resumeUrl?: string | null): AsyncGenerator<Page> {
    let page = resumeUrl ? await this.nextPage(resumeUrl, signal) : await this.firstPage(q, signal);
    yield page;
    while (page.next) {
      page = await this.nextPage(page.next, signal);
      yield page;
    }
  }

  /**
   * One page, retried as documented. A page link (`kind` page) is sent exactly as the server gave it, on
   * every try: the server refuses a cursor it did not issue (400). Only a first request may be rebuilt
   * (a smaller `max` after a 504).
   */
  private async fetchPage(start: string | ((bookedAt: number) => string), kind: RequestKind, signal?: AbortSignal): Promise<Page> {
    let url = typeof start === 'string' ? start : '';
    let token = await this.opts.tokens.getToken(signal);
    let calls = 0;
    let failures = 0;
    let rateWaits = 0;
    let refreshed = false;
    let regionTried = false;
    let booked = false;
    for (;;) {
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      // An initial request that is repeated (after a 429, 5xx…) is still the same query; only the
      // first send books the initial slot, repeats use the page budget so they cannot starve it.
      const at = await this.opts.limiter.take(kind === 'initial' && !booked ? 'initial' : 'page', signal);
      if (!booked && typeof start === 'function') url = start(at);
      booked = true;
      calls++;
      this.apiCalls++;
      let status: number;
      let headers: Record<string, string | string[] | undefined>;
      let text: string;
      try {
        const res = await request(url, {
          method: 'GET',
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
          dispatcher: this.opts.dispatcher,
          signal,
        });
        status = res.statusCode;
        headers = res.headers;
        // success pages are large (up to 5000 records, ~12 MB): undici's own decoder; error bodies are capped
        text = res.statusCode === 200 ? await res.body.text() : await bodyText(res);
      } catch (err) {
        if (signal?.aborted) throw err;
        if (!isTransientNetworkError(err) || failures >= (this.opts.retries ?? 4)) {
          throw new WebexApiError('server', `request to ${redact(url)} failed: ${(err as Error).message}`);
        }
        await this.backoff(++failures, undefined, (err as Error).message, signal);
        continue;
      }
      const trackingId = first(headers.trackingid);
      if (status === 200) {
        let body: { items?: unknown };
        try {
          body = JSON.parse(text) as { items?: unknown };
        } catch {
          throw new WebexApiError('server', `${redact(url)} answered 200 with a body that is not JSON`, 200, trackingId);
        }
        const items = Array.isArray(body?.items) ? (body.items as RawCdr[]) : [];
        return { items, url, next: parseNextLink(headers.link), apiCalls: calls, empty: items.length === 0, trackingId };
      }
      const message = errorMessage(text);
      if (status === 404 && NO_CDRS.test(message || text)) {
        return { items: [], url, next: null, apiCalls: calls, empty: true, trackingId };
      }
      if (status === 429 || status === 423) {
        if (++rateWaits > (this.opts.maxRateWaits ?? 20)) throw new WebexApiError('server', `still rate limited (${status}) after ${rateWaits - 1} waits`, status, trackingId);
        const wait = parseRetryAfter(first(headers['retry-after']), this.clock.now()) ?? this.opts.defaultRetryAfterMs ?? 60_000;
        this.opts.limiter.pause(this.clock.now() + wait);
        this.opts.onRetry?.({ status, attempt: rateWaits, delayMs: wait, reason: message || 'rate limited' });
        continue; // not a failure: the limiter waits out the pause
      }
      if (status === 401) {
        if (refreshed) throw new WebexApiError('auth', `the refreshed access token was rejected too (401): ${message || 'unauthorized'}`, 401, trackingId);
        refreshed = true;
        token = await this.opts.tokens.onUnauthorized(token, signal);
        continue;
      }
      if (status === 403) {
        throw new WebexApiError('config', `forbidden (403${message ? `: ${message}` : ''}): the token needs the scope ${SCOPE} and its user the admin role "${ADMIN_ROLE}"`, 403, trackingId);
      }
      if (status === 451) {
        const target = regionFromBody(text, this.base, this.opts.trustHostname);
        if (!target) throw new WebexApiError('region', `wrong region (451) and no Webex host in the answer: ${message || text.slice(0, 200)}`, 451, trackingId);
        if (this.opts.followRegion === false) {
          throw new WebexApiError('region', `the organisation's data lives at ${target} (451): choose that region`, 451, trackingId);
        }
        if (regionTried) throw new WebexApiError('region', `still 451 after switching to ${this.base}: ${message || 'wrong region'}`, 451, trackingId);
        regionTried = true;
        this.switchRegion(target);
        url = target + url.slice(new URL(url).origin.length);
        continue;
      }
      if (status === 504 || status >= 500 || status === 408) {
        if (failures >= (this.opts.retries ?? 4)) throw new WebexApiError('server', `${status} from ${redact(url)} after ${failures + 1} tries${message ? `: ${message}` : ''}`, status, trackingId);
        // a 504 on a first request: ask for fewer records; a page link is repeated as it was given
        if (status === 504 && kind === 'initial') url = smallerMax(url);
        await this.backoff(++failures, status, message, signal);
        continue;
      }
      if (status === 404) throw new WebexApiError('notFound', `404 from ${redact(url)}${message ? `: ${message}` : ''}`, 404, trackingId);
      throw new WebexApiError('request', `${status} from ${redact(url)}${message ? `: ${message}` : ''}`, status, trackingId);
    }
  }

  private switchRegion(target: string): void {
    this.base = target;
    this.switchedRegion = true;
    this.opts.onRegionChange?.(target);
  }

  private async backoff(attempt: number, status: number | undefined, reason: string, signal?: AbortSignal): Promise<void> {
    const delay = backoffDelay(attempt - 1, { baseDelayMs: this.opts.retryBaseMs ?? 2000, maxDelayMs: this.opts.retryMaxMs ?? 60_000, random: this.opts.random });
    this.opts.onRetry?.({ status, attempt, delayMs: delay, reason });
    await this.clock.sleep(delay, signal);
  }
}

/** 504 on a first request: the docs suggest asking for fewer records; halves `max` (never below 500). Never for a page link. */
export function smallerMax(url: string): string {
  const u = new URL(url);
  const cur = Number(u.searchParams.get('max') ?? MAX_MAX);
  const next = Math.max(MAX_MIN, Math.floor((Number.isFinite(cur) ? cur : MAX_MAX) / 2));
  if (next === cur && u.searchParams.has('max')) return url;
  u.searchParams.set('max', String(next));
  return u.toString();
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: unknown; errors?: Array<{ description?: unknown }> };
    const parts = [j.message, ...(j.errors ?? []).map((e) => e?.description)].filter((x): x is string => typeof x === 'string' && x !== '');
    return [...new Set(parts)].join('; ').slice(0, 300);
  } catch {
    return text.trim().slice(0, 300);
  }
}

/** URLs in messages without the org id. */
function redact(url: string): string {
  return url.replace(/([?&]orgId=)[^&]*/i, '$1…');
}

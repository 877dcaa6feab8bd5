/**
 * The one HTTP setup every client of this package uses (design.md §2): an undici Agent with TLS
 * verification on (an optional CA added, never "trust all" unless the user turns it off), timeouts,
 * bounded exponential backoff with jitter, and Retry-After.
 */
import { Agent, type Dispatcher } from 'undici';

export interface HttpClientOptions {
  /** Milliseconds for the response headers and for each gap in the body. */
  timeoutMs?: number;
  /** PEM text of extra CA certificates to trust (added to Node's defaults). */
  ca?: string;
  /** Only for test servers with self-signed certificates; off is never the default. */
  rejectUnauthorized?: boolean;
  connections?: number;
}

export function createAgent(opts: HttpClientOptions = {}): Agent {
  const timeout = opts.timeoutMs ?? 30_000;
  return new Agent({
    headersTimeout: timeout,
    bodyTimeout: timeout,
    connectTimeout: Math.min(timeout, 30_000),
    connections: opts.connections ?? 8,
    connect: {
      rejectUnauthorized: opts.rejectUnauthorized ?? true,
      ...(opts.ca ? { ca: [...require('node:tls').rootCertificates, opts.ca] } : {}),
    },
  });
}

/** An HTTP answer that was not what the caller wanted. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string | string[] | undefined> = {},
    readonly body: string = '',
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
  /** Milliseconds the server asked us to wait, from Retry-After, if any. */
  retryAfterMs(now = Date.now()): number | null {
    const h = this.headers['retry-after'];
    return parseRetryAfter(Array.isArray(h) ? h[0] : h, now);
  }
}

/** Retry-After as seconds or as an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (value === undefined || value.trim() === '') return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Network-level failures worth another try: resets, refused connections, timeouts. */
export function isTransientNetworkError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code ?? (err as { cause?: { code?: string } } | null)?.cause?.code;
  return typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|UND_ERR_(SOCKET|CONNECT_TIMEOUT|HEADERS_TIMEOUT|BODY_TIMEOUT|CLOSED))$/.test(code);
}

export interface RetryPolicy {
  /** Further attempts after the first. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Decides whether an error is worth another attempt. */
  retryable: (err: unknown) => boolean;
  /** Called before each wait, e.g. to show "retrying" in the status. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  random?: () => number;
}

/** Full-jitter exponential backoff: a random wait up to base·2^attempt, capped. */
export function backoffDelay(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(cap / 2 + (policy.random ?? Math.random)() * (cap / 2));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, the error is not retryable, or the retries are spent. A server's
 * Retry-After (HttpStatusError) replaces the computed delay when it is longer.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy, signal?: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.retries || !policy.retryable(err) || signal?.aborted) throw err;
      let delay = backoffDelay(attempt, policy);
      if (err instanceof HttpStatusError) delay = Math.max(delay, err.retryAfterMs() ?? 0);
      policy.onRetry?.(err, attempt + 1, delay);
      await sleep(delay, signal);
    }
  }
}

/** Reads a whole (small) response body as text, so the connection can be reused. */
export async function bodyText(res: Dispatcher.ResponseData, maxBytes = 1024 * 1024): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > maxBytes) {
      res.body.destroy();
      throw new Error(`response body over ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

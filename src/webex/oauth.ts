/**
 * OAuth token manager for a Webex integration (specs/webex.md §4): refreshes before expiry and once
 * on 401, single-flight (parallel requests share one refresh), keeps the rotated refresh token, the
 * access token and its expiry through a persistence callback (awaited before the new token is used),
 * and turns a dead refresh token into a "re-authorize" state instead of a retry loop.
 */
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { bodyText, isTransientNetworkError, withRetry, HttpStatusError } from '../common/http';
import { systemClock, type Clock } from './clock';

export const DEFAULT_TOKEN_URL = 'https://webexapis.com/v1/access_token';
/** Refresh when less than this much access-token life remains. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

export interface TokenSet {
  accessToken: string;
  /** ms since epoch; 0 = unknown (a pasted access token) */
  expiresAt: number;
  refreshToken?: string;
  refreshExpiresAt?: number;
}

/** What the account keeps across restarts: the newest tokens and which credential they descend from. */
export interface StoredTokens extends TokenSet {
  /** Hashes of refresh tokens this manager has seen (the configured one and each rotation). */
  lineage: string[];
  updatedAt: string;
}

export interface TokenManagerOptions {
  clientId?: string;
  clientSecret?: string;
  /** The refresh token from the node's credentials. */
  refreshToken?: string;
  /** A fixed access token (testing): used as is, never refreshed. */
  accessToken?: string;
  tokenUrl?: string;
  dispatcher?: Dispatcher;
  clock?: Clock;
  /** Tokens saved by an earlier run. Used instead of the credentials when they descend from them. */
  stored?: StoredTokens;
  /** Called with every new token set before it is used; awaited. */
  persist?: (tokens: StoredTokens) => Promise<void>;
  /** Transient failures of the token endpoint (5xx, network) are retried this many times. */
  retries?: number;
  retryBaseMs?: number;
  onRefresh?: (tokens: TokenSet) => void;
}

export type TokenErrorCode = 'reauthorize' | 'noCredentials' | 'badClient' | 'accessTokenRejected' | 'tokenEndpoint';

export class TokenError extends Error {
  constructor(readonly code: TokenErrorCode, message: string, readonly status?: number) {
    super(message);
    this.name = 'TokenError';
  }
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 32);
}

export class TokenManager {
  private tokens: TokenSet | null = null;
  private lineage: string[] = [];
  private inflight: Promise<TokenSet> | null = null;
  private dead: TokenError | null = null;
  private readonly clock: Clock;
  private readonly tokenUrl: string;
  /** Number of refresh grants sent (for status and tests). */
  refreshCount = 0;

  constructor(private readonly opts: TokenManagerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.tokenUrl = opts.tokenUrl || DEFAULT_TOKEN_URL;
    const rt = opts.refreshToken?.trim();
    if (rt) {
      const h = tokenHash(rt);
      const stored = opts.stored;
      if (stored && stored.refreshToken && Array.isArray(stored.lineage) && stored.lineage.includes(h)) {
        // The configured token is one we already used (or rotated away from): the stored set is newer.
        this.tokens = { accessToken: stored.accessToken, expiresAt: stored.expiresAt, refreshToken: stored.refreshToken, refreshExpiresAt: stored.refreshExpiresAt };
        this.lineage = stored.lineage.slice(-20);
      } else {
        // A new refresh token was pasted (or first start): start from it.
        this.tokens = { accessToken: '', expiresAt: 0, refreshToken: rt };
        this.lineage = [h];
      }
    } else if (opts.accessToken?.trim()) {
      this.tokens = { accessToken: opts.accessToken.trim(), expiresAt: 0 };
    }
  }

  get mode(): 'refresh' | 'static' | 'none' {
    if (this.tokens?.refreshToken) return 'refresh';
    return this.tokens?.accessToken ? 'static' : 'none';
  }

  /** The re-authorize error once the refresh token was refused; null while tokens work. */
  get failure(): TokenError | null {
    return this.dead;
  }

  get current(): TokenSet | null {
    return this.tokens ? { ...this.tokens } : null;
  }

  /** A usable access token, refreshed first when it expires within the margin. */
  async getToken(signal?: AbortSignal): Promise<string> {
    if (this.dead) throw this.dead;
    const t = this.tokens;
    if (!t) throw new TokenError('noCredentials', 'no refresh token or access token configured');
    if (!t.refreshToken) return t.accessToken;
    if (t.accessToken && t.expiresAt - this.clock.now() > REFRESH_MARGIN_MS) return t.accessToken;
    return (await this.refresh(signal)).accessToken;
  }

  /**
   * The API answered 401 for `rejected`. Refreshes once (shared with any concurrent caller) unless the
   * token was already replaced since; returns the token to retry with.
   */
  async onUnauthorized(rejected: string, signal?: AbortSignal): Promise<string> {
    if (this.dead) throw this.dead;
    const t = this.tokens;
    if (!t) throw new TokenError('noCredentials', 'no refresh token or access token configured');
    if (!t.refreshToken) throw new TokenError('accessTokenRejected', 'the access token was rejected (401): it expired or is invalid; paste a new one or configure a refresh token', 401);
    if (t.accessToken && t.accessToken !== rejected && t.expiresAt - this.clock.now() > REFRESH_MARGIN_MS) return t.accessToken;
    return (await this.refresh(signal)).accessToken;
  }

  /** Resolves once no refresh is in flight (its new tokens were persisted, or it failed). */
  idle(): Promise<void> {
    return this.inflight ? this.inflight.then(() => undefined, () => undefined) : Promise.resolve();
  }

  /** One refresh at a time: concurrent callers await the same grant. */
  refresh(signal?: AbortSignal): Promise<TokenSet> {
    if (this.dead) return Promise.reject(this.dead);
    if (!this.inflight) {
      // Shared by every caller, so not tied to one caller's abort signal (one node closing must not
      // fail another's refresh); the agent's timeouts bound it.
      this.inflight = this.doRefresh().finally(() => {
        this.inflight = null;
      });
    }
    return abortable(this.inflight, signal);
  }

  private async doRefresh(): Promise<TokenSet> {
    const current = this.tokens;
    if (!current?.refreshToken) throw new TokenError('noCredentials', 'no refresh token configured');
    if (!this.opts.clientId || !this.opts.clientSecret) throw new TokenError('noCredentials', 'client id and client secret are needed to refresh tokens');
    const form = {
      grant_type: 'refresh_token',
      client_id: this.opts.clientId,
      client_secret: this.opts.clientSecret,
      refresh_token: current.refreshToken,
    };
    const body = await withRetry(async () => {
      this.refreshCount++;
      return postTokenForm(this.tokenUrl, form, this.opts.dispatcher);
    }, {
      retries: this.opts.retries ?? 3,
      baseDelayMs: this.opts.retryBaseMs ?? 2000,
      maxDelayMs: 30_000,
      retryable: (e) => isTransientNetworkError(e) || (e instanceof HttpStatusError && (e.status >= 500 || e.status === 429)),
    }).catch((err: unknown) => {
      if (err instanceof HttpStatusError && err.status === 401 && /invalid_client/i.test(err.body)) {
        throw new TokenError('badClient', `the token endpoint refused the client id or client secret (401${describeTokenError(err.body) ? `: ${describeTokenError(err.body)}` : ''}): check the integration's credentials`, 401);
      }
      if (err instanceof HttpStatusError && (err.status === 400 || err.status === 401)) {
        // invalid_grant / expired or revoked refresh token: only a human can fix this.
        const detail = describeTokenError(err.body);
        this.dead = new TokenError('reauthorize', `the refresh token was refused (${err.status}${detail ? `: ${detail}` : ''}): authorize the integration again and paste the new refresh token`, err.status);
        throw this.dead;
      }
      if (err instanceof HttpStatusError) throw new TokenError('tokenEndpoint', `token refresh failed: ${err.message}${describeTokenError(err.body) ? ` (${describeTokenError(err.body)})` : ''}`, err.status);
      throw err;
    });
    const next = parseTokenResponse(body, this.clock.now(), current).tokens;
    const h = tokenHash(next.refreshToken!);
    if (!this.lineage.includes(h)) this.lineage = [...this.lineage, h].slice(-20);
    // Saved before use: if the old refresh token is invalidated by the rotation, a restart must find the new one.
    if (this.opts.persist) await this.opts.persist(this.snapshot(next));
    this.tokens = next;
    this.opts.onRefresh?.(next);
    return next;
  }

  /**
   * Tokens from a new authorization (the authorization-code grant) replace whatever this manager had,
   * including a refused refresh token: saved through `persist` first (after any refresh in flight),
   * then used. The lineage keeps the hashes seen so far, so the configured refresh token still leads
   * to the saved set after a restart.
   */
  async adopt(granted: TokenSet): Promise<void> {
    if (!granted.refreshToken) throw new TokenError('tokenEndpoint', 'the authorization gave no refresh token');
    await this.idle();
    const h = tokenHash(granted.refreshToken);
    const lineage = [...this.lineage.filter((x) => x !== h), h].slice(-20);
    const next: TokenSet = { ...granted };
    if (this.opts.persist) await this.opts.persist({ ...next, lineage: [...lineage], updatedAt: new Date(this.clock.now()).toISOString() });
    this.lineage = lineage;
    this.tokens = next;
    this.dead = null;
    this.opts.onRefresh?.(next);
  }

  private snapshot(t: TokenSet): StoredTokens {
    return { ...t, lineage: [...this.lineage], updatedAt: new Date(this.clock.now()).toISOString() };
  }
}

function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

/** POSTs a form to the token endpoint: the body of a 200, else an HttpStatusError carrying the answer. */
export async function postTokenForm(tokenUrl: string, form: Record<string, string>, dispatcher?: Dispatcher): Promise<string> {
  const res = await request(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
    dispatcher,
  });
  const text = await bodyText(res);
  if (res.statusCode === 200) return text;
  throw new HttpStatusError(res.statusCode, `token endpoint answered ${res.statusCode}`, res.headers as Record<string, string>, text);
}

/**
 * A 200 answer of the token endpoint (either grant) as a token set, expiries made absolute from
 * `now`; a refresh token or its expiry missing from the answer is taken from `previous`.
 */
export function parseTokenResponse(body: string, now: number, previous: Partial<TokenSet> = {}): { tokens: TokenSet; scope: string[] } {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(body) as Record<string, unknown>;
  } catch {
    throw new TokenError('tokenEndpoint', 'token endpoint answered 200 with a body that is not JSON');
  }
  if (typeof parsed.access_token !== 'string' || parsed.access_token === '') throw new TokenError('tokenEndpoint', 'token endpoint answered without access_token');
  return {
    tokens: {
      accessToken: parsed.access_token,
      expiresAt: now + Math.max(0, Number(parsed.expires_in) || 0) * 1000,
      refreshToken: typeof parsed.refresh_token === 'string' && parsed.refresh_token ? parsed.refresh_token : previous.refreshToken,
      refreshExpiresAt: Number(parsed.refresh_token_expires_in) > 0 ? now + Number(parsed.refresh_token_expires_in) * 1000 : previous.refreshExpiresAt,
    },
    scope: typeof parsed.scope === 'string' ? parsed.scope.split(/\s+/).filter(Boolean) : [],
  };
}

/** The error text of a token endpoint answer (OAuth error_description, Webex message), at most 200 characters. */
export function describeTokenError(body: string): string {
  try {
    const j = JSON.parse(body) as Record<string, unknown>;
    return String(j.error_description ?? j.message ?? j.error ?? '').slice(0, 200);
  } catch {
    return body.slice(0, 200);
  }
}

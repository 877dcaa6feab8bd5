/**
 * Authorizing a Webex integration from the Node-RED editor (the OAuth authorization-code grant,
 * specs/webex.md §4): the consent URL, the single-use `state` that ties Webex's redirect back to the
 * editor that asked for it (and to one webex-account node), the code exchange, the identity the
 * token belongs to, and the page the browser lands on. No node-red import: the routes that use these
 * are in src/nodes/webex-account.ts.
 */
import { randomBytes } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { BoundedMap } from '../common/bounded-map';
import { bodyText, HttpStatusError } from '../common/http';
import { DEFAULT_TOKEN_URL, describeTokenError, parseTokenResponse, postTokenForm, TokenError, type TokenSet } from './oauth';

/** Read CDRs (specs/webex.md §4.1). */
export const CDR_SCOPE = 'spark-admin:calling_cdr_read';
/** GET /v1/people/me: who authorized, shown in the dialog (the user must hold the CDR admin role). */
export const IDENTITY_SCOPE = 'spark:people_read';
export const AUTH_SCOPES: readonly string[] = [CDR_SCOPE, IDENTITY_SCOPE];
/** The admin routes, under httpAdminRoot. */
export const AUTH_ROUTE = '/cdrflow/webex/auth';
export const CALLBACK_PATH = `${AUTH_ROUTE}/callback`;
/** How long a state waits for Webex's redirect, and a finished authorization for the editor. */
export const STATE_TTL_MS = 10 * 60_000;
/** Message type the callback page posts to the editor (window.opener and a BroadcastChannel of this name). */
export const AUTH_MESSAGE = 'cdrflow-webex-auth';

export interface OAuthEndpoints {
  authorize: string;
  token: string;
  /** GET: the person the access token belongs to. */
  me: string;
}

/**
 * Webex's OAuth endpoints sit beside the token endpoint (`https://webexapis.com/v1/access_token`,
 * `…/v1/authorize`, `…/v1/people/me`), so a custom token URL (a proxy, a test server) moves all three.
 */
export function oauthEndpoints(tokenUrl: string = DEFAULT_TOKEN_URL): OAuthEndpoints {
  const u = new URL(tokenUrl || DEFAULT_TOKEN_URL);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError(`not an http(s) URL: ${tokenUrl}`);
  const base = /\/access_token\/?$/.test(u.pathname) ? u.pathname.replace(/\/access_token\/?$/, '') : '/v1';
  const at = (p: string) => `${u.origin}${base}/${p}`;
  return { authorize: at('authorize'), token: u.href, me: at('people/me') };
}

/** The consent page URL: client_id, response_type=code, redirect_uri, scope (space separated), state. */
export function authorizeUrl(p: { endpoint: string; clientId: string; redirectUri: string; scopes?: readonly string[]; state: string }): string {
  const q = [
    ['client_id', p.clientId],
    ['response_type', 'code'],
    ['redirect_uri', p.redirectUri],
    ['scope', (p.scopes ?? AUTH_SCOPES).join(' ')],
    ['state', p.state],
  ].map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  return `${p.endpoint}${p.endpoint.includes('?') ? '&' : '?'}${q}`;
}

/** A redirect URI the editor may ask for: http(s), ending in the callback route, no query or fragment. */
export function isCallbackUri(uri: unknown): uri is string {
  if (typeof uri !== 'string' || uri.length > 2000) return false;
  try {
    const u = new URL(uri);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.pathname.endsWith(CALLBACK_PATH) && u.search === '' && u.hash === '' && !u.username && !u.password;
  } catch {
    return false;
  }
}

export function newState(): string {
  return randomBytes(32).toString('base64url');
}

/** What newState() makes (43 base64url characters); anything else is not looked up or echoed. */
export function isStateShaped(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9_-]{43}$/.test(s);
}

export type Refusal = 'unknown' | 'expired' | 'used' | 'replaced';

interface Slot<P, R> {
  nodeId: string;
  createdAt: number;
  /** Waiting for Webex's redirect; dropped when the callback takes it (it holds the client secret). */
  pending: P | null;
  /** The callback took it and is exchanging the code. */
  taken: boolean;
  result: R | null;
  finishedAt: number;
  collected: boolean;
  replaced: boolean;
}

/**
 * The authorizations in progress, in memory only (the client secret a dialog sent stays here, never in
 * a URL, a page or a log). A state is random, bound to one config node id, lives STATE_TTL_MS, and is
 * taken once by the callback; its result is handed to the editor once, for the same node id only. A
 * newer authorization for the same node replaces an older one still waiting. Bounded: the oldest
 * entries go first.
 */
export class AuthStates<P, R> {
  private readonly slots: BoundedMap<string, Slot<P, R>>;
  private readonly ttlMs: number;

  constructor(private readonly now: () => number, opts: { ttlMs?: number; max?: number } = {}) {
    this.ttlMs = opts.ttlMs ?? STATE_TTL_MS;
    this.slots = new BoundedMap({ max: opts.max ?? 200, maxAgeMs: 2 * this.ttlMs });
  }

  get size(): number {
    return this.slots.size;
  }

  /** A new state for `nodeId`, holding `pending` until the callback takes it. */
  begin(nodeId: string, pending: P): string {
    const now = this.now();
    this.slots.prune(now);
    for (const slot of this.slots.values()) {
      if (slot.nodeId === nodeId && slot.pending) {
        slot.pending = null;
        slot.replaced = true;
      }
    }
    const state = newState();
    this.slots.set(state, { nodeId, createdAt: now, pending, taken: false, result: null, finishedAt: 0, collected: false, replaced: false }, now);
    return state;
  }

  /** The callback: what `begin` kept, once, while the state is young enough. */
  take(state: unknown): { ok: true; nodeId: string; pending: P } | { ok: false; why: Refusal } {
    const slot = isStateShaped(state) ? this.slots.get(state) : undefined;
    if (!slot) return { ok: false, why: 'unknown' };
    if (slot.replaced) return { ok: false, why: 'replaced' };
    if (slot.taken) return { ok: false, why: 'used' };
    if (this.now() - slot.createdAt > this.ttlMs) {
      slot.pending = null;
      return { ok: false, why: 'expired' };
    }
    const pending = slot.pending;
    if (!pending) return { ok: false, why: 'used' };
    slot.pending = null;
    slot.taken = true;
    return { ok: true, nodeId: slot.nodeId, pending };
  }

  /** The callback is done with a taken state: the editor may collect `result`. */
  finish(state: string, result: R): void {
    const slot = this.slots.get(state);
    if (!slot || !slot.taken) return;
    slot.result = result;
    slot.finishedAt = this.now();
  }

  /**
   * The editor asks: still waiting (for the user at Webex, or the exchange), the result (once), or
   * nothing for a state that is unknown, bound to another node, expired or already collected.
   */
  collect(state: unknown, nodeId: unknown): { status: 'pending' } | { status: 'done'; result: R } | { status: Refusal } {
    const slot = isStateShaped(state) ? this.slots.get(state) : undefined;
    if (!slot || slot.nodeId !== nodeId) return { status: 'unknown' };
    if (slot.replaced) return { status: 'replaced' };
    if (slot.collected) return { status: 'used' };
    const now = this.now();
    if (slot.result) {
      if (now - slot.finishedAt > this.ttlMs) {
        slot.result = null;
        slot.collected = true;
        return { status: 'expired' };
      }
      const result = slot.result;
      slot.result = null;
      slot.collected = true;
      return { status: 'done', result };
    }
    if (slot.taken) return { status: 'pending' };
    return now - slot.createdAt > this.ttlMs ? { status: 'expired' } : { status: 'pending' };
  }
}

export type ExchangeFailure = 'badClient' | 'badCode' | 'tokenEndpoint' | 'network';

export class AuthorizeError extends Error {
  constructor(readonly code: ExchangeFailure, readonly detail: string, readonly status?: number) {
    super(`${code}${status ? ` (${status})` : ''}: ${detail}`);
    this.name = 'AuthorizeError';
  }
}

export interface Granted {
  tokens: TokenSet;
  scope: string[];
}

/**
 * The authorization-code grant: one POST (a code is single use, so nothing is retried), with the
 * same redirect_uri the consent page was opened with. Throws AuthorizeError.
 */
export async function exchangeCode(p: { tokenUrl: string; clientId: string; clientSecret: string; code: string; redirectUri: string; now: () => number; dispatcher?: Dispatcher }): Promise<Granted> {
  let body: string;
  try {
    body = await postTokenForm(p.tokenUrl, {
      grant_type: 'authorization_code', client_id: p.clientId, client_secret: p.clientSecret, code: p.code, redirect_uri: p.redirectUri,
    }, p.dispatcher);
  } catch (err) {
    if (err instanceof HttpStatusError) {
      const detail = describeTokenError(err.body) || err.message;
      if (err.status === 401 || /invalid_client/i.test(err.body)) throw new AuthorizeError('badClient', detail, err.status);
      if (err.status === 400) throw new AuthorizeError('badCode', detail, err.status);
      throw new AuthorizeError('tokenEndpoint', detail, err.status);
    }
    throw new AuthorizeError('network', (err as Error)?.message ?? String(err));
  }
  try {
    const granted = parseTokenResponse(body, p.now());
    if (!granted.tokens.refreshToken) throw new TokenError('tokenEndpoint', 'token endpoint answered without refresh_token');
    return granted;
  } catch (err) {
    throw new AuthorizeError('tokenEndpoint', (err as Error).message);
  }
}

export interface Identity {
  displayName?: string;
  email?: string;
  /** The organisation's REST id (base64). */
  orgId?: string;
}

/** GET /v1/people/me (needs spark:people_read); throws HttpStatusError on anything but 200. */
export async function whoAmI(meUrl: string, accessToken: string, dispatcher?: Dispatcher): Promise<Identity> {
  const res = await request(meUrl, { method: 'GET', headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' }, dispatcher });
  const text = await bodyText(res, 256 * 1024);
  if (res.statusCode !== 200) throw new HttpStatusError(res.statusCode, `${meUrl} answered ${res.statusCode}`, res.headers as Record<string, string>, text);
  const j = JSON.parse(text) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, 200) : undefined);
  return {
    displayName: str(j.displayName),
    email: Array.isArray(j.emails) ? str(j.emails[0]) : undefined,
    orgId: str(j.orgId),
  };
}

/** "Ada Admin (ada@example.com)", or whichever part is known. */
export function describeIdentity(who: Identity): string {
  if (who.displayName && who.email) return `${who.displayName} (${who.email})`;
  return who.displayName ?? who.email ?? who.orgId ?? '';
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/**
 * The page the browser lands on after Webex: says what happened, tells the editor (window.opener, and
 * a BroadcastChannel for when Webex's pages cut the opener link) which state finished, and closes
 * itself after a success. Carries no token. Its headers: no caching, no referrer (the URL held the
 * code), no script but its own.
 */
export function callbackResponse(p: { ok: boolean; title: string; lines: string[]; state: string | null; lang?: string }): { headers: Record<string, string>; body: string } {
  const nonce = randomBytes(16).toString('base64');
  const message = JSON.stringify({ type: AUTH_MESSAGE, state: isStateShaped(p.state) ? p.state : null, ok: p.ok }).replace(/</g, '\\u003c');
  const body = `<!DOCTYPE html>
<html lang="${escapeHtml(p.lang ?? 'en')}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(p.title)}</title>
<style>body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#333}h1{font-size:1.4em;color:${p.ok ? '#2e7d32' : '#c62828'}}p{line-height:1.5}</style>
</head><body>
<h1 id="title">${escapeHtml(p.title)}</h1>
${p.lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('\n')}
<script nonce="${nonce}">(function () {
  var m = ${message};
  try { if (window.opener) window.opener.postMessage(m, location.origin); } catch (e) {}
  try { var c = new BroadcastChannel(m.type); c.postMessage(m); c.close(); } catch (e) {}
  if (m.ok) setTimeout(function () { window.close(); }, 1500);
})();</script>
</body></html>
`;
  return {
    body,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'`,
    },
  };
}

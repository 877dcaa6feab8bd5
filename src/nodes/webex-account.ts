/**
 * webex-account: the Webex Calling connection shared by webex-cdr-pull nodes: region, OAuth
 * integration (client id, client secret, refresh token) or a fixed access token for testing. Offers
 * (lib/config.ts) the token manager (single-flight refresh), the per-token rate limiter and the agent.
 *
 * Where things are kept (specs/nodered.md §0.9):
 * - the tokens (access, refresh, expiry) only in the owner-only secret file
 *   `cdrflow-state/webex-account-<id>-tokens.json`, encrypted with a key from credentialSecret, never
 *   in a context store; each rotation is written there before the new token is used, and handed to
 *   RED.nodes.addCredentials (flows_cred.json gets it only at the next deploy);
 * - the host a 451 named, in the store the user chose (key `cdrflow-state`, or
 *   `cdrflow-state/webex-account-<id>.json`): where versions before the kit also kept the tokens. Tokens
 *   found there are moved into the secret file at start and removed from the store.
 *
 * The dialog's "Authorize with Webex" button (src/webex/authorize.ts) goes through three admin routes
 * under `<httpAdminRoot>/cdrflow/webex/auth/`:
 * - POST start (editor permission webex-account.write): the dialog's client id and secret (or, for a
 *   deployed account, its stored secret) are kept in memory with a new single-use state bound to the
 *   node id; answers the consent URL;
 * - GET callback (where Webex sends the browser; no editor session there, so the state is the check):
 *   trades the code for tokens, reads who authorized, hands the tokens to the running account when it
 *   runs with that client, and keeps the result for the editor; the page tells the editor and closes;
 * - GET result (webex-account.write): the result, once, for the same node id: the refresh token goes
 *   into the dialog's field, so the deploy saves it.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { createAgent, HttpStatusError } from '../common/http';
import { TokenManager, DEFAULT_TOKEN_URL, type StoredTokens, type TokenSet } from '../webex/oauth';
import {
  AUTH_ROUTE, AUTH_SCOPES, AuthStates, AuthorizeError, authorizeUrl, callbackResponse, describeIdentity, exchangeCode,
  isCallbackUri, oauthEndpoints, whoAmI,
} from '../webex/authorize';
import { RateLimiter, baseUrlFor, type Region } from '../webex/client';
import { systemClock, type Clock } from '../webex/clock';
import { restoreTokens, restoreHost, hostSnapshot, type TokenState, type HostState } from '../webex/account-state';
import { nodeState } from './lib/state';
import { properties, type PropertyReader } from './lib/props';
import { offerConfig } from './lib/config';
import { packageSetup } from './lib/setup';
import type { AdoptOutcome, WebexAccount, WebexAccountNode, WebexCredentials } from './webex-account-types';

const REGIONS: readonly Region[] = ['auto', 'us', 'eu', 'in', 'au', 'gov', 'custom'];
const TYPE = 'webex-account';

export = function register(RED: NodeAPI): void {
  packageSetup(RED);
  serveAuthorization(RED);

  function WebexAccountConfig(this: WebexAccountNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const creds: WebexCredentials = node.credentials ?? {};
    const region = prop.choice('region', REGIONS, 'auto');
    const ca = prop.pem('ca');
    let baseUrl = '';
    let found: { text: string; unset: boolean } | null = null;
    try {
      baseUrl = baseUrlFor(region, prop.text('baseUrl'));
    } catch {
      found = { text: RED._(`${TYPE}.errors.baseUrl`, { url: prop.text('baseUrl') }), unset: prop.text('baseUrl') === '' };
    }
    const tokenUrl = prop.text('tokenUrl') || DEFAULT_TOKEN_URL;
    found = found ?? problemOf(creds, tokenUrl, ca.problem);
    const problem = found?.text ?? null;
    let shared: Opened | null = null;
    node.cdrflow = offerConfig<WebexAccount>(problem, () => {
      shared = open(node, prop, creds, { region, baseUrl, tokenUrl, ca: ca.pem });
      return shared.account;
    }, { unset: found?.unset });

    let closed = false;
    node.cdrflowAuth = {
      tokenUrl,
      async adopt(client, tokens) {
        if (closed || problem !== null || client.clientId !== creds.clientId || client.clientSecret !== creds.clientSecret || client.tokenUrl !== tokenUrl) return 'afterDeploy';
        const account = node.cdrflow!.get();
        await account.ready;
        // saved to the token file and the credentials (persist) before it is used
        await account.tokens.adopt(tokens);
        node.log(RED._(`${TYPE}.log.authorized`));
        return 'applied';
      },
    };

    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      const s = shared;
      shared = null;
      (s ? s.close(removed) : Promise.resolve()).catch(() => undefined).then(() => done());
    });
  }

  /**
   * What keeps the configuration from working, in words (what is missing), or null; `unset` when a
   * credential was simply not entered yet, not when something entered is wrong.
   */
  function problemOf(creds: WebexCredentials, tokenUrl: string, caProblem: string | undefined): { text: string; unset: boolean } | null {
    const has = (v: string | undefined) => typeof v === 'string' && v.trim() !== '';
    const missing = (key: string) => ({ text: RED._(`${TYPE}.errors.${key}`), unset: true });
    if (!has(creds.refreshToken) && !has(creds.accessToken)) return missing('noToken');
    if (has(creds.refreshToken)) {
      if (!has(creds.clientId) && !has(creds.clientSecret)) return missing('noClient');
      if (!has(creds.clientId)) return missing('noClientId');
      if (!has(creds.clientSecret)) return missing('noClientSecret');
    }
    if (!/^https?:\/\/[^/\s]+/i.test(tokenUrl)) return { text: RED._(`${TYPE}.errors.tokenUrl`, { url: tokenUrl }), unset: false };
    if (caProblem) return { text: RED._(`${TYPE}.errors.ca`, { error: caProblem }), unset: false };
    return null;
  }

  interface Opened {
    account: WebexAccount;
    close(removed: boolean): Promise<void>;
  }

  /** Built at the first get(): the agent, the limiter, both states and the token manager. */
  function open(node: WebexAccountNode, prop: PropertyReader, creds: WebexCredentials, cfg: { region: Region; baseUrl: string; tokenUrl: string; ca?: string }): Opened {
    const clock = ((RED.settings as any).cdrflowWebexClock as Clock | undefined) ?? systemClock;
    const dispatcher = createAgent({ timeoutMs: prop.seconds(['timeout', 'timeoutS'], 60, { positive: true }), ca: cfg.ca });
    const followRegion = cfg.region === 'auto' || cfg.region === 'custom';
    let saved: TokenState = { version: 1, tokens: null };
    let kept: HostState = { host: null, legacyTokens: null };
    const tokenState = nodeState<TokenState>(RED, node, {
      type: TYPE, secret: true, part: 'tokens',
      restore: (v) => (saved = restoreTokens(v)),
      snapshot: () => saved,
    });
    const hostState = nodeState<HostState>(RED, node, {
      type: TYPE, store: prop.text('stateStore'),
      restore: (v) => (kept = restoreHost(v)),
      snapshot: () => hostSnapshot(kept),
    });
    const manager = (stored?: StoredTokens) => new TokenManager({
      clientId: creds.clientId, clientSecret: creds.clientSecret, refreshToken: creds.refreshToken, accessToken: creds.accessToken,
      tokenUrl: cfg.tokenUrl, dispatcher, clock, stored,
      persist: async (tokens) => {
        saved = { version: 1, tokens };
        tokenState.changed();
        // on disk before the new token is used; a failure was reported (state.saveFailed) and the
        // token is used anyway: the credential cache below still has it until a restart
        await tokenState.flush().catch(() => undefined);
        if (tokens.refreshToken && tokens.refreshToken !== (node.credentials as WebexCredentials | undefined)?.refreshToken) {
          // written to flows_cred.json at the next deploy only
          const next = { ...(node.credentials ?? {}), refreshToken: tokens.refreshToken };
          try {
            await (RED.nodes as any).addCredentials(node.id, next);
            node.credentials = next;
          } catch { /* the secret file has it */ }
        }
      },
    });
    const account: WebexAccount = {
      ready: Promise.resolve(),
      tokens: manager(),
      limiter: new RateLimiter(clock),
      dispatcher,
      clock,
      followRegion,
      trustHostname: cfg.region === 'custom' ? new URL(cfg.baseUrl).hostname : undefined,
      currentBaseUrl: () => (followRegion && kept.host && kept.host.for === cfg.baseUrl ? kept.host.url : cfg.baseUrl),
      learnBaseUrl: (url) => {
        kept = { ...kept, host: { for: cfg.baseUrl, url } };
        node.log(RED._(`${TYPE}.log.region`, { url }));
        hostState.changed();
      },
    };
    /**
     * Tokens an older version kept in the chosen store (or in the old file) go into the secret file
     * and out of the store, in that order; the store is written twice, so that the file store's
     * previous copy (`.prev`) does not keep them either. When the secret file already has tokens, the
     * old copy is only dropped. A failed write leaves them where they were (the kit warned).
     */
    const moveLegacyTokens = async (): Promise<void> => {
      const legacy = kept.legacyTokens;
      if (!legacy) return;
      if (!saved.tokens) {
        saved = { version: 1, tokens: legacy };
        tokenState.changed();
        await tokenState.flush();
        node.warn(RED._(`${TYPE}.state.migrated`, { from: hostState.where, to: tokenState.where }));
      }
      kept = { ...kept, legacyTokens: null };
      for (let i = 0; i < 2; i++) {
        hostState.changed();
        await hostState.flush();
      }
    };
    account.ready = Promise.all([tokenState.ready, hostState.ready])
      .then(moveLegacyTokens)
      .catch(() => undefined)
      .then(() => {
        if (saved.tokens) account.tokens = manager(saved.tokens);
      });
    return {
      account,
      async close(removed) {
        // a refresh still in flight saves its rotated token before the states close (or the next
        // start would hold only the token it replaced), within Node-RED's 15 s close limit
        await Promise.race([account.tokens.idle(), new Promise((r) => setTimeout(r, 8000).unref())]);
        await Promise.all([tokenState.close(removed), hostState.close(removed)]).catch(() => undefined);
        await Promise.race([dispatcher.close(), new Promise((r) => setTimeout(r, 5000).unref())]).catch(() => undefined);
        await dispatcher.destroy().catch(() => undefined);
      },
    };
  }

  RED.nodes.registerType(TYPE, WebexAccountConfig as any, {
    credentials: {
      clientId: { type: 'text' },
      clientSecret: { type: 'password' },
      refreshToken: { type: 'password' },
      accessToken: { type: 'password' },
    },
  });
};

interface PendingAuth {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  tokenUrl: string;
  ca?: string;
  timeoutMs: number;
}

type AuthResult =
  | { ok: true; refreshToken: string; who: string | null; whoError: string | null; outcome: AdoptOutcome | 'notDeployed' }
  | { ok: false; error: string };

/** The runtime the routes answer for: the RED of the latest register() (they are mounted once). */
let current: NodeAPI;
const served = new WeakSet<object>();

/** The authorization routes (see the top of this file), once per admin app. */
function serveAuthorization(RED: NodeAPI): void {
  current = RED;
  const app = RED.httpAdmin as unknown as object | undefined;
  if (!app || served.has(app)) return;
  served.add(app);
  const states = new AuthStates<PendingAuth, AuthResult>(() => clockOf(current).now());
  const canWrite = (RED as any).auth?.needsPermission?.(`${TYPE}.write`) ?? ((_q: unknown, _s: unknown, next: () => void) => next());
  RED.httpAdmin.post(`${AUTH_ROUTE}/start`, canWrite, (req: any, res: any) => startAuthorization(current, states, req, res));
  RED.httpAdmin.get(`${AUTH_ROUTE}/callback`, (req: any, res: any) => {
    finishAuthorization(current, states, req.query ?? {}, res).catch((err: Error) => {
      current.log.warn(current._(`${TYPE}.authorize.log.failed`, { error: err.message }));
      if (!res.headersSent) res.status(500).type('text/plain').send(current._(`${TYPE}.authorize.page.failedTitle`));
    });
  });
  RED.httpAdmin.get(`${AUTH_ROUTE}/result`, canWrite, (req: any, res: any) => {
    const r = states.collect(req.query?.state, req.query?.id);
    res.set('cache-control', 'no-store');
    if (r.status === 'pending') return res.status(202).json({ status: 'pending' });
    if (r.status === 'done') {
      const x = r.result;
      return res.json(x.ok ? { status: 'done', refreshToken: x.refreshToken, who: x.who, whoError: x.whoError, outcome: x.outcome } : { status: 'failed', error: x.error });
    }
    return res.status(404).json({ status: r.status, error: current._(`${TYPE}.authorize.page.${r.status}`) });
  });
}

function clockOf(RED: NodeAPI): Clock {
  return ((RED.settings as any).cdrflowWebexClock as Clock | undefined) ?? systemClock;
}

function accountNode(RED: NodeAPI, id: string): WebexAccountNode | null {
  const n = RED.nodes.getNode(id) as WebexAccountNode | null;
  return n && n.type === TYPE ? n : null;
}

/**
 * POST start: {id, clientId, clientSecret, tokenUrl, ca, timeout, redirectUri} from the dialog.
 * A secret shown as the editor's placeholder is the deployed account's, used only with the token
 * URL that account was deployed with.
 */
function startAuthorization(RED: NodeAPI, states: AuthStates<PendingAuth, AuthResult>, req: any, res: any): void {
  const b = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
  const fail = (key: string, vars?: Record<string, string | number>) => res.status(400).json({ error: RED._(`${TYPE}.authorize.errors.${key}`, vars) });
  const id = typeof b.id === 'string' ? b.id : '';
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(id)) return fail('badRequest');
  if (!isCallbackUri(b.redirectUri)) return fail('redirectUri');
  const deployed = accountNode(RED, id);
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const stored = str(b.clientSecret) === '__PWRD__';
  const prop = properties(RED, deployed ?? ({ id } as Node), {
    clientId: str(b.clientId), clientSecret: stored ? '' : str(b.clientSecret), tokenUrl: str(b.tokenUrl), ca: str(b.ca), timeout: str(b.timeout),
  });
  const clientId = prop.text('clientId');
  if (!clientId) return fail('noClientId');
  const tokenUrl = prop.text('tokenUrl') || DEFAULT_TOKEN_URL;
  let authorizeAt: string;
  try {
    authorizeAt = oauthEndpoints(tokenUrl).authorize;
  } catch {
    return fail('tokenUrl', { url: tokenUrl });
  }
  let clientSecret = prop.text('clientSecret');
  if (stored && deployed) {
    if (deployed.cdrflowAuth?.tokenUrl !== tokenUrl) return fail('secretElsewhere');
    clientSecret = (deployed.credentials as WebexCredentials | undefined)?.clientSecret?.trim() ?? '';
  }
  if (!clientSecret) return fail('noClientSecret');
  const ca = prop.pem('ca');
  if (ca.problem) return fail('ca', { error: ca.problem });
  const redirectUri = b.redirectUri;
  const state = states.begin(id, { clientId, clientSecret, redirectUri, tokenUrl, ca: ca.pem, timeoutMs: prop.seconds('timeout', 60, { positive: true }) });
  res.set('cache-control', 'no-store').json({ url: authorizeUrl({ endpoint: authorizeAt, clientId, redirectUri, state }), state, scopes: AUTH_SCOPES });
}

/** GET callback?code&state (or ?error&error_description&state): the page the browser lands on. */
async function finishAuthorization(RED: NodeAPI, states: AuthStates<PendingAuth, AuthResult>, q: Record<string, unknown>, res: any): Promise<void> {
  const t = (key: string, vars?: Record<string, string | number>) => RED._(`${TYPE}.authorize.${key}`, vars);
  const state = typeof q.state === 'string' ? q.state : '';
  const page = (status: number, ok: boolean, title: string, lines: string[]) => {
    const { headers, body } = callbackResponse({ ok, title, lines, state });
    res.status(status).set(headers).send(body);
  };
  const taken = states.take(state);
  if (!taken.ok) return page(400, false, t('page.refusedTitle'), [t(`page.${taken.why}`)]);
  const { nodeId, pending } = taken;
  const failed = (status: number, error: string) => {
    states.finish(state, { ok: false, error });
    page(status, false, t('page.failedTitle'), [error, t('page.again')]);
  };
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 300) : '');
  if (text(q.error)) {
    const key = q.error === 'access_denied' || q.error === 'invalid_scope' ? q.error : 'other';
    return failed(400, t(`webex.${key}`, { error: text(q.error), detail: text(q.error_description) || '-', scopes: AUTH_SCOPES.join(', ') }));
  }
  const code = text(q.code);
  if (!code) return failed(400, t('webex.noCode'));
  const dispatcher = createAgent({ timeoutMs: pending.timeoutMs, ca: pending.ca });
  try {
    let tokens: TokenSet;
    try {
      tokens = (await exchangeCode({ ...pending, code, now: () => clockOf(RED).now(), dispatcher })).tokens;
    } catch (err) {
      const e = err instanceof AuthorizeError ? err : new AuthorizeError('network', String(err));
      return failed(e.code === 'badClient' || e.code === 'badCode' ? 400 : 502, t(`exchange.${e.code}`, { detail: e.detail || '-', status: e.status ?? '' }));
    }
    let who: string | null = null;
    let whoError: string | null = null;
    try {
      who = describeIdentity(await whoAmI(oauthEndpoints(pending.tokenUrl).me, tokens.accessToken, dispatcher)) || null;
    } catch (err) {
      whoError = err instanceof HttpStatusError ? `${err.status}${err.body ? `: ${err.body.slice(0, 200)}` : ''}` : (err as Error).message;
    }
    const target = accountNode(RED, nodeId)?.cdrflowAuth;
    let outcome: AdoptOutcome | 'notDeployed' = 'notDeployed';
    if (target) {
      outcome = await target.adopt({ clientId: pending.clientId, clientSecret: pending.clientSecret, tokenUrl: pending.tokenUrl }, tokens).catch((err: Error) => {
        RED.log.warn(t('log.notAdopted', { id: nodeId, error: err.message }));
        return 'afterDeploy' as const;
      });
    }
    states.finish(state, { ok: true, refreshToken: tokens.refreshToken!, who, whoError, outcome });
    RED.log.info(t('log.done', { id: nodeId, who: who ?? '?' }));
    page(200, true, t('page.doneTitle'), [who ? t('page.doneAs', { who }) : t('page.done'), t('page.close')]);
  } finally {
    dispatcher.close().catch(() => undefined);
  }
}


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
 */
import type { NodeAPI, NodeDef } from 'node-red';
import { createAgent } from '../common/http';
import { TokenManager, DEFAULT_TOKEN_URL, type StoredTokens } from '../webex/oauth';
import { RateLimiter, baseUrlFor, type Region } from '../webex/client';
import { systemClock, type Clock } from '../webex/clock';
import { restoreTokens, restoreHost, hostSnapshot, type TokenState, type HostState } from '../webex/account-state';
import { nodeState } from './lib/state';
import { properties, type PropertyReader } from './lib/props';
import { offerConfig } from './lib/config';
import type { WebexAccount, WebexAccountNode, WebexCredentials } from './webex-account-types';

const REGIONS: readonly Region[] = ['auto', 'us', 'eu', 'in', 'au', 'gov', 'custom'];
const TYPE = 'webex-account';

export = function register(RED: NodeAPI): void {
  function WebexAccountConfig(this: WebexAccountNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const creds: WebexCredentials = node.credentials ?? {};
    const region = prop.choice('region', REGIONS, 'auto');
    const ca = prop.pem('ca');
    let baseUrl = '';
    let problem: string | null = null;
    try {
      baseUrl = baseUrlFor(region, prop.text('baseUrl'));
    } catch {
      problem = RED._(`${TYPE}.errors.baseUrl`, { url: prop.text('baseUrl') });
    }
    const tokenUrl = prop.text('tokenUrl') || DEFAULT_TOKEN_URL;
    problem = problem ?? problemOf(creds, tokenUrl, ca.problem);
    let shared: Opened | null = null;
    node.cdrflow = offerConfig<WebexAccount>(problem, () => {
      shared = open(node, prop, creds, { region, baseUrl, tokenUrl, ca: ca.pem });
      return shared.account;
    });

    node.on('close', (removed: boolean, done: () => void) => {
      const s = shared;
      shared = null;
      (s ? s.close(removed) : Promise.resolve()).catch(() => undefined).then(() => done());
    });
  }

  /** What keeps the configuration from working, in words (what is missing), or null. */
  function problemOf(creds: WebexCredentials, tokenUrl: string, caProblem: string | undefined): string | null {
    const has = (v: string | undefined) => typeof v === 'string' && v.trim() !== '';
    if (!has(creds.refreshToken) && !has(creds.accessToken)) return RED._(`${TYPE}.errors.noToken`);
    if (has(creds.refreshToken)) {
      if (!has(creds.clientId) && !has(creds.clientSecret)) return RED._(`${TYPE}.errors.noClient`);
      if (!has(creds.clientId)) return RED._(`${TYPE}.errors.noClientId`);
      if (!has(creds.clientSecret)) return RED._(`${TYPE}.errors.noClientSecret`);
    }
    if (!/^https?:\/\/[^/\s]+/i.test(tokenUrl)) return RED._(`${TYPE}.errors.tokenUrl`, { url: tokenUrl });
    if (caProblem) return RED._(`${TYPE}.errors.ca`, { error: caProblem });
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

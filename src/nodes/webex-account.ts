/**
 * webex-account: the Webex Calling connection shared by webex-cdr-pull nodes: region, OAuth
 * integration (client id, client secret, refresh token) or a fixed access token for testing.
 * It owns the token manager (single-flight refresh), the per-token rate limiter and the HTTP agent.
 *
 * Rotated tokens (specs/nodered.md §0.9): every refresh is saved in the account's state store (a
 * persistent context store the user picked, or an atomic file in the userDir) before the new access
 * token is used, and handed to RED.nodes.addCredentials, which reaches flows_cred.json only at the
 * next deploy. On start the stored set wins when the configured refresh token is one of its
 * ancestors; a newly pasted refresh token wins over the stored set.
 */
import type { NodeAPI, NodeDef } from 'node-red';
import { createAgent } from '../common/http';
import { TokenManager, DEFAULT_TOKEN_URL, type StoredTokens } from '../webex/oauth';
import { RateLimiter, baseUrlFor, type Region } from '../webex/client';
import { systemClock, type Clock } from '../webex/clock';
import { openStateStore } from './lib/state';
import type { WebexAccountNode, WebexCredentials as Credentials } from './webex-account-types';

interface AccountDef extends NodeDef {
  region?: Region;
  baseUrl?: string;
  tokenUrl?: string;
  timeoutS?: number | string;
  stateStore?: string;
}

interface AccountState {
  tokens?: StoredTokens;
  /** A host learnt from a 451, valid while the configured base URL is `for`. */
  host?: { for: string; url: string };
}

export = function register(RED: NodeAPI): void {
  function WebexAccount(this: WebexAccountNode, def: AccountDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const creds = node.credentials ?? {};
    node.clock = ((RED.settings as any).cdrflowWebexClock as Clock | undefined) ?? systemClock;
    node.region = (['auto', 'us', 'eu', 'in', 'au', 'gov', 'custom'].includes(def.region ?? '') ? def.region : 'auto') as Region;
    node.configError = null;
    try {
      node.baseUrl = baseUrlFor(node.region, def.baseUrl);
    } catch (err) {
      node.baseUrl = '';
      node.configError = RED._('webex-account.errors.baseUrl', { url: def.baseUrl ?? '' });
    }
    node.followRegion = node.region === 'auto' || node.region === 'custom';
    if (node.region === 'custom' && node.baseUrl) node.trustHostname = new URL(node.baseUrl).hostname;
    const timeout = Number(def.timeoutS);
    node.dispatcher = createAgent({ timeoutMs: (Number.isFinite(timeout) && timeout > 0 ? timeout : 60) * 1000 });
    node.limiter = new RateLimiter(node.clock);
    if (!creds.refreshToken && !creds.accessToken) node.configError = node.configError ?? RED._('webex-account.errors.noToken');
    else if (creds.refreshToken && (!creds.clientId || !creds.clientSecret)) node.configError = node.configError ?? RED._('webex-account.errors.noClient');

    const opened = openStateStore<AccountState>(RED, node, 'webex-account', def.stateStore);
    const where = opened.where;
    // Saves one at a time (a token rotation and a learnt host may be saved together).
    let saving: Promise<void> = Promise.resolve();
    const store = {
      load: () => opened.store.load(),
      clear: () => (saving = saving.then(() => opened.store.clear())),
      save: (v: AccountState) => {
        const next = saving.then(() => opened.store.save(v));
        saving = next.catch(() => undefined);
        return next;
      },
    };
    const tokenUrl = (def.tokenUrl ?? '').trim() || DEFAULT_TOKEN_URL;
    const build = (stored?: StoredTokens) => new TokenManager({
      clientId: creds.clientId, clientSecret: creds.clientSecret, refreshToken: creds.refreshToken, accessToken: creds.accessToken,
      tokenUrl, dispatcher: node.dispatcher, clock: node.clock, stored,
      persist: async (tokens) => {
        try {
          state = { ...state, tokens };
          await store.save(state);
        } catch (err) {
          node.warn(RED._('webex-account.errors.stateSave', { where, error: (err as Error).message }));
        }
        if (tokens.refreshToken && tokens.refreshToken !== (node.credentials as Credentials | undefined)?.refreshToken) {
          // Kept in Node-RED's credential cache too; written to flows_cred.json at the next deploy only.
          const next = { ...(node.credentials ?? {}), refreshToken: tokens.refreshToken };
          try {
            await (RED.nodes as any).addCredentials(node.id, next);
            node.credentials = next;
          } catch { /* the state store has it */ }
        }
      },
    });
    let state: AccountState = {};
    node.tokens = build();
    node.currentBaseUrl = () => (state.host && state.host.for === node.baseUrl && node.followRegion ? state.host.url : node.baseUrl);
    node.learnBaseUrl = (url: string) => {
      state = { ...state, host: { for: node.baseUrl, url } };
      node.log(RED._('webex-account.log.region', { url }));
      store.save(state).catch((err: Error) => node.warn(RED._('webex-account.errors.stateSave', { where, error: err.message })));
    };
    node.ready = store.load().then(
      (loaded) => {
        state = loaded && typeof loaded === 'object' ? loaded : {};
        if (state.tokens) node.tokens = build(state.tokens);
      },
      (err: Error) => node.warn(RED._('webex-account.errors.stateLoad', { where, error: err.message })),
    );

    node.on('close', (removed: boolean, done: () => void) => {
      // A rotated refresh token still being saved must reach the store before the next instance (a
      // redeploy) reads it, so wait for the saves first; then close the sockets (destroy after 5 s,
      // within Node-RED's 15 s close limit).
      const saved = saving.then(() => undefined, () => undefined);
      const finish = saved.then(() => (removed ? store.clear().catch(() => undefined) : undefined));
      finish
        .then(() => Promise.race([node.dispatcher.close(), new Promise((r) => setTimeout(r, 5000).unref())]))
        .then(() => node.dispatcher.destroy())
        .catch(() => undefined)
        .then(() => done());
    });
  }

  RED.nodes.registerType('webex-account', WebexAccount as any, {
    credentials: {
      clientId: { type: 'text' },
      clientSecret: { type: 'password' },
      refreshToken: { type: 'password' },
      accessToken: { type: 'password' },
    },
  });
};

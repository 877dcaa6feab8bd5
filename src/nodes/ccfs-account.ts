/**
 * ccfs-account: a Huawei AICC CC-FS endpoint and its developer AK/SK (config node). Offers the shared
 * CcfsAccount (client with TLS verification on and an optional extra CA, the tenant's time zone) at
 * `node.cdrflow`, and keeps the registry of the requests ccfs-bill-request made across restarts (one
 * journal entry per request, before the request's message goes on), so ccfs-callback-in can name them.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import { CcfsAccount, accountProblem, type CcfsAccountConfig } from '../ccfs/account';
import { RequestRegistry } from '../ccfs/callback';
import { nodeState, serveStoreList } from './lib/state';
import { properties } from './lib/props';
import { offerConfig, type ConfigNode } from './lib/config';

interface AccountDef extends NodeDef {
  baseUrl?: string;
  timeZone?: string;
  signedHeaders?: 'standard' | 'host';
  hostHeader?: string;
  timeout?: number | string;
  verifyTls?: boolean | string;
  /** The name before verifyTls; still read from older flows. */
  tlsVerify?: boolean | string;
  ca?: string;
  stateStore?: string;
}
interface Credentials {
  accessKey?: string;
  secretKey?: string;
}

export = function register(RED: NodeAPI): void {
  serveStoreList(RED);

  function CcfsAccountConfig(this: ConfigNode<CcfsAccount> & Node<Credentials>, def: AccountDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const creds = node.credentials ?? {};
    const verifyTls = prop.flag(['verifyTls', 'tlsVerify'], true);
    const ca = prop.pem('ca');
    const config: CcfsAccountConfig = {
      baseUrl: prop.text('baseUrl'),
      accessKey: (creds.accessKey ?? '').trim(),
      secretKey: creds.secretKey ?? '',
      timeZone: prop.text('timeZone', 'UTC'),
      signedHeaders: prop.choice('signedHeaders', ['standard', 'host'], 'standard'),
      hostHeader: prop.text('hostHeader') || undefined,
      timeoutMs: prop.seconds('timeout', 30, { positive: true }),
      ca: ca.pem,
      rejectUnauthorized: verifyTls,
    };
    const found = accountProblem(config);
    const problem = found ? RED._(`ccfs-account.problems.${found.code}`, found)
      : ca.problem !== undefined ? RED._('ccfs-account.problems.caFile', { error: ca.problem }) : null;
    if (!verifyTls) node.warn(RED._('ccfs-account.errors.tlsOff'));

    // the registry the keeper restored (snapshot and journal replayed) is the live one
    let registry = new RequestRegistry();
    const state = nodeState<RequestRegistry>(RED, node, {
      type: 'ccfs-account',
      store: prop.text('stateStore'),
      restore: (saved, journal) => (registry = RequestRegistry.restore(saved, journal)),
      snapshot: () => registry.snapshot(),
    });
    let account: CcfsAccount | null = null;
    node.cdrflow = offerConfig(problem, () => (account = new CcfsAccount(config, state)));

    node.on('close', (removed: boolean, done: () => void) => {
      Promise.allSettled([account?.close(), state.close(removed)]).then(() => done());
    });
  }

  RED.nodes.registerType('ccfs-account', CcfsAccountConfig as any, {
    credentials: { accessKey: { type: 'password' }, secretKey: { type: 'password' } },
  });
};

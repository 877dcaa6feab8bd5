/**
 * ccfs-account: a Huawei AICC CC-FS endpoint and its developer AK/SK (config node). Offers the shared
 * CcfsAccount (client with TLS verification on and an optional extra CA, the tenant's time zone) at
 * `node.cdrflow`, and keeps across restarts the registry of the requests ccfs-bill-request made (one
 * journal entry per request, before the request's message goes on), so ccfs-callback-in can name them,
 * and the signing lock-out: after a 401 or 403 from CC-FS the account signs nothing more, says once
 * what to check, and stays so (also after a restart) until it is deployed with another configuration.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import { CcfsAccount, accountProblem, restoreAccountState, accountSnapshot, type CcfsAccountConfig, type AccountState } from '../ccfs/account';
import { RequestRegistry } from '../ccfs/callback';
import type { Lockout } from '../ccfs/lockout';
import { nodeState } from './lib/state';
import { properties } from './lib/props';
import { offerConfig, type ConfigNode } from './lib/config';
import { packageSetup } from './lib/setup';

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
  packageSetup(RED);

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
    // nothing entered yet (no base URL, AK or SK), not something entered wrong
    const unset = found !== null && ['baseUrlMissing', 'accessKeyMissing', 'secretKeyMissing'].includes(found.code);
    if (!verifyTls) node.warn(RED._('ccfs-account.errors.tlsOff'));

    // the state the keeper restored (snapshot and journal replayed) is the live one
    let live: AccountState = { registry: new RequestRegistry(), lockout: null };
    const state = nodeState<AccountState>(RED, node, {
      type: 'ccfs-account',
      store: prop.text('stateStore'),
      restore: (saved, journal) => (live = restoreAccountState(saved, journal)),
      snapshot: () => accountSnapshot(live),
    });
    // the words every node using the account shows for a request it did not sign
    const vars = (l: Lockout) => ({ operation: l.operation, at: l.at, headers: config.signedHeaders === 'host' ? 'host' : 'content-length;content-type;host', host: config.hostHeader ?? RED._('ccfs-account.lockout.defaultHost') });
    const describe = (l: Lockout) => RED._(`ccfs-account.lockout.refused${l.status}`, vars(l));
    let account: CcfsAccount | null = null;
    node.cdrflow = offerConfig(problem, () => (account = new CcfsAccount(config, state, { describe })), { unset });
    if (problem === null) {
      // built now, so a lock-out kept from an earlier run is reported at start, once
      const lock = node.cdrflow.get().lock;
      lock.ready.then((l) => l && node.error(RED._('ccfs-account.lockout.atStart', { reason: describe(l) })));
      lock.onChange((l, saveError) => {
        if (!l) return;
        node.error(describe(l));
        if (saveError) node.warn(RED._('ccfs-account.lockout.notSaved', { where: state.where, error: saveError.message }));
      });
    }

    node.on('close', (removed: boolean, done: () => void) => {
      Promise.allSettled([account?.close(), state.close(removed)]).then(() => done());
    });
  }

  RED.nodes.registerType('ccfs-account', CcfsAccountConfig as any, {
    credentials: { accessKey: { type: 'password' }, secretKey: { type: 'password' } },
  });
};

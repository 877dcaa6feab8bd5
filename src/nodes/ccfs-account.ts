/**
 * ccfs-account: a Huawei AICC CC-FS endpoint and its developer AK/SK (config node). Owns the shared
 * client (TLS verification on, optional extra CA), the tenant's time zone, and the registry of the
 * requests ccfs-bill-request made, kept across restarts so ccfs-callback-in can name them.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import { CcfsAccount } from '../ccfs/account';
import type { RequestRecord } from '../ccfs/callback';
import { openStateStore } from './lib/state';

interface AccountDef extends NodeDef {
  baseUrl?: string;
  timeZone?: string;
  signedHeaders?: 'standard' | 'host';
  hostHeader?: string;
  timeout?: number | string;
  tlsVerify?: boolean | string;
  ca?: string;
  stateStore?: string;
}
interface Credentials {
  accessKey?: string;
  secretKey?: string;
}

interface CcfsAccountNode extends Node<Credentials> {
  ccfs: CcfsAccount;
}

export = function register(RED: NodeAPI): void {
  function CcfsAccountConfig(this: CcfsAccountNode, def: AccountDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const creds = node.credentials ?? {};
    const timeout = Number(def.timeout);
    const tlsVerify = !(def.tlsVerify === false || def.tlsVerify === 'false');
    const { store, where } = openStateStore<RequestRecord[]>(RED, node, 'ccfs-account', def.stateStore);
    node.ccfs = new CcfsAccount({
      baseUrl: (def.baseUrl ?? '').trim(),
      accessKey: (creds.accessKey ?? '').trim(),
      secretKey: creds.secretKey ?? '',
      timeZone: (def.timeZone ?? '').trim() || 'UTC',
      signedHeaders: def.signedHeaders === 'host' ? 'host' : 'standard',
      hostHeader: (def.hostHeader ?? '').trim() || undefined,
      timeoutMs: Math.round((Number.isFinite(timeout) && timeout > 0 ? timeout : 30) * 1000),
      ca: (def.ca ?? '').trim() || undefined,
      rejectUnauthorized: tlsVerify,
    }, store, (err, phase) => node.warn(RED._(`ccfs-account.errors.${phase === 'load' ? 'stateLoad' : 'stateSave'}`, { where, error: err.message })));
    if (!tlsVerify) node.warn(RED._('ccfs-account.errors.tlsOff'));

    node.on('close', (removed: boolean, done: () => void) => {
      node.ccfs.close(removed).catch(() => undefined).then(() => done());
    });
  }

  RED.nodes.registerType('ccfs-account', CcfsAccountConfig as any, {
    credentials: { accessKey: { type: 'password' }, secretKey: { type: 'password' } },
  });
};

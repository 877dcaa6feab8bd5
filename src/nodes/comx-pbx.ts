/**
 * comx-pbx: one Com.X PBX (config node). Offers the comx-cdr-fetch nodes (node.cdrflow, config.ts) a
 * client with the base URL and Basic credentials, the PBX's IANA time zone (its CDRs and
 * `start`/`end` are local wall clock) and one undici agent (timeouts, TLS verification on unless
 * turned off, an optional extra CA as PEM text or file), built at the first use and released on close.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import type { Agent } from 'undici';
import { createAgent } from '../common/http';
import { ComxClient, endpointUrl, type ComxPbx } from '../comx/client';
import { offerConfig, type ConfigNode } from './lib/config';
import { properties, settingMs } from './lib/props';
import { packageSetup } from './lib/setup';

interface ComxPbxDef extends NodeDef {
  url?: string;
  timezone?: string;
  timeout?: number | string;
  retries?: number | string;
  verifyTls?: boolean | string;
  ca?: string;
}
interface Credentials {
  user?: string;
  password?: string;
}

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function ComxPbxNode(this: ConfigNode<ComxPbx> & Node<Credentials>, def: ComxPbxDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const creds = node.credentials ?? {};
    const baseUrl = prop.text('url');
    const zone = prop.zone('timezone', '');
    const ca = prop.pem('ca');
    let host = '';
    let problem: string | null = null;
    // not configured yet (no URL, no user) is told apart from a value entered wrong
    let unset = false;
    try {
      host = endpointUrl(baseUrl).host;
    } catch (err) {
      problem = RED._('comx-pbx.errors.url', { error: (err as Error).message });
      unset = baseUrl === '';
    }
    if (!problem && zone === null) problem = RED._('comx-pbx.errors.zone', { zone: prop.text('timezone') });
    if (!problem && !creds.user) {
      problem = RED._('comx-pbx.errors.noUser');
      unset = true;
    }
    if (!problem && ca.problem) problem = RED._('comx-pbx.errors.ca', { error: ca.problem });

    let agent: Agent | null = null;
    node.cdrflow = offerConfig<ComxPbx>(problem, () => {
      agent = createAgent({
        timeoutMs: prop.seconds('timeout', 60, { positive: true, min: 1 }),
        rejectUnauthorized: prop.flag('verifyTls', true),
        ca: ca.pem,
        connections: 4,
      });
      const client = new ComxClient({
        baseUrl,
        user: creds.user,
        password: creds.password ?? '',
        dispatcher: agent,
        retry: {
          retries: prop.number('retries', 3, { min: 0, max: 10, integer: true }),
          baseDelayMs: retryBaseMs(),
          maxDelayMs: 30_000,
        },
      });
      return { client, zone: zone ?? '', host, baseUrl };
    }, { unset });

    /** settings.js `comxPbxRetryBaseMs`: the first pause before a retry (tests make it short). */
    function retryBaseMs(): number {
      return settingMs(RED, 'comxPbxRetryBaseMs', 1000);
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      const a = agent;
      agent = null;
      if (!a) return done();
      // a graceful close waits for requests in flight; the fetch nodes abort theirs, so this is short
      const timer = setTimeout(() => void a.destroy().catch(() => undefined), 2000);
      a.close().catch(() => undefined).then(() => {
        clearTimeout(timer);
        done();
      });
    });
  }

  RED.nodes.registerType('comx-pbx', ComxPbxNode as any, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};

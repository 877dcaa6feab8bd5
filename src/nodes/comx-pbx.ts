/**
 * comx-pbx: one Com.X PBX (config node). Holds the base URL, the Basic credentials, the PBX's IANA
 * time zone (its CDRs and `start`/`end` are local wall clock) and one undici agent (timeouts, TLS
 * verification on unless turned off, an optional extra CA) shared by every comx-cdr-fetch using it,
 * released on close.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import type { Agent } from 'undici';
import { createAgent } from '../common/http';
import { isValidZone } from '../common/time';
import { ComxClient, endpointUrl, type ComxPbxConfig } from '../comx/client';

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

const DEFAULT_TIMEOUT_S = 60;

function num(v: unknown, fallback: number, min: number): number {
  const n = Number(v);
  return Number.isFinite(n) && n >= min && String(v).trim() !== '' ? n : fallback;
}

export = function register(RED: NodeAPI): void {
  function ComxPbx(this: Node<Credentials> & { comx?: ComxPbxConfig }, def: ComxPbxDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const creds = node.credentials ?? {};
    const zone = (def.timezone ?? '').trim();
    const baseUrl = (def.url ?? '').trim();
    let agent: Agent | null = null;
    let problem: string | null = null;
    let host = '';
    try {
      host = endpointUrl(baseUrl).host;
    } catch (err) {
      problem = RED._('comx-pbx.errors.url', { error: (err as Error).message });
    }
    if (!problem && !isValidZone(zone)) problem = RED._('comx-pbx.errors.zone', { zone });
    if (!problem && !creds.user) problem = RED._('comx-pbx.errors.noUser');
    let client: ComxClient | null = null;
    if (!problem) {
      agent = createAgent({
        timeoutMs: num(def.timeout, DEFAULT_TIMEOUT_S, 1) * 1000,
        rejectUnauthorized: !(def.verifyTls === false || def.verifyTls === 'false'),
        ca: def.ca && def.ca.trim() ? def.ca : undefined,
        connections: 4,
      });
      client = new ComxClient({
        baseUrl,
        user: creds.user,
        password: creds.password ?? '',
        dispatcher: agent,
        retry: {
          retries: Math.floor(num(def.retries, 3, 0)),
          baseDelayMs: num((RED.settings as any).comxPbxRetryBaseMs, 1000, 0),
          maxDelayMs: 30_000,
        },
      });
    } else {
      node.warn(problem);
    }
    node.comx = { client, zone, baseUrl, host, problem };

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

  RED.nodes.registerType('comx-pbx', ComxPbx as any, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};

/**
 * cms-server: the Cisco Meeting Server Web Admin / REST API endpoint(s) of a cluster, with the API
 * user and password in Node-RED's credential store. Owns one CmsApiClient (and its undici agent)
 * shared by every node that uses this config, released on close.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import * as fs from 'node:fs';
import { CmsApiClient, baseUrlList, normaliseBaseUrl } from '../cms/api';

interface CmsServerDef extends NodeDef {
  urls?: string;
  verifyTls?: boolean | string;
  ca?: string;
  timeout?: number | string;
  retries?: number | string;
}
interface Credentials {
  user?: string;
  password?: string;
}

interface CmsServerNode extends Node<Credentials> {
  /** The shared client; throws an Error with a readable message when the config is incomplete. */
  client(): CmsApiClient;
  urls: string[];
}

const DEFAULT_TIMEOUT_S = 10;

export = function register(RED: NodeAPI): void {
  function CmsServer(this: CmsServerNode, def: CmsServerDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    node.urls = baseUrlList(def.urls);
    const timeoutS = Number(def.timeout);
    const retries = Number(def.retries);
    let client: CmsApiClient | null = null;

    node.client = () => {
      if (client) return client;
      const creds = node.credentials ?? {};
      if (node.urls.length === 0) throw new Error(RED._('cms-server.errors.noUrl'));
      for (const u of node.urls) {
        try {
          normaliseBaseUrl(u);
        } catch (err) {
          throw new Error(RED._('cms-server.errors.badUrl', { url: u, error: (err as Error).message }));
        }
      }
      if (!creds.user || !creds.password) throw new Error(RED._('cms-server.errors.noCredentials'));
      client = new CmsApiClient({
        baseUrls: node.urls,
        user: creds.user,
        password: creds.password,
        timeoutMs: (Number.isFinite(timeoutS) && timeoutS > 0 ? timeoutS : DEFAULT_TIMEOUT_S) * 1000,
        retries: Number.isInteger(retries) && retries >= 0 ? retries : 2,
        rejectUnauthorized: def.verifyTls !== false && def.verifyTls !== 'false',
        ca: readCa(def.ca),
      });
      return client;
    };

    node.on('close', (_removed: boolean, done: () => void) => {
      const c = client;
      client = null;
      (c ? c.close() : Promise.resolve()).catch(() => undefined).then(() => done());
    });
  }

  /** PEM text pasted in the dialog, or a path to a PEM file. */
  function readCa(ca: string | undefined): string | undefined {
    const v = (ca ?? '').trim();
    if (v === '') return undefined;
    if (v.includes('-----BEGIN')) return v;
    return fs.readFileSync(v, 'utf8');
  }

  RED.nodes.registerType('cms-server', CmsServer as any, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};

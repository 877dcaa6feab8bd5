/**
 * cms-server: the Cisco Meeting Server Web Admin / REST API endpoint(s) of a cluster, with the API
 * user and password in Node-RED's credential store. Owns one CmsApiClient (and its undici agent)
 * shared by every node that uses this config, released on close.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import { CmsApiClient, baseUrlList, normaliseBaseUrl } from '../cms/api';
import { properties } from './lib/props';
import { offerConfig, type ConfigHandle } from './lib/config';
import { packageSetup } from './lib/setup';

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

type CmsServerNode = Node<Credentials> & { cdrflow: ConfigHandle<CmsApiClient> };

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CmsServer(this: CmsServerNode, def: CmsServerDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const creds = node.credentials ?? {};
    const urls = baseUrlList(prop.text('urls'));
    const ca = prop.pem('ca');
    let client: CmsApiClient | null = null;

    const problem = problemOf(urls, creds, ca.problem);
    node.cdrflow = offerConfig(problem?.text ?? null, () => {
      client = new CmsApiClient({
        baseUrls: urls,
        user: creds.user!,
        password: creds.password!,
        timeoutMs: prop.seconds('timeout', 10, { positive: true }),
        retries: prop.number('retries', 2, { min: 0, max: 10, integer: true }),
        rejectUnauthorized: prop.flag('verifyTls', true),
        ca: ca.pem,
      });
      return client;
    }, { unset: problem?.unset });

    node.on('close', (_removed: boolean, done: () => void) => {
      const c = client;
      client = null;
      (c ? c.close() : Promise.resolve()).catch(() => undefined).then(() => done());
    });
  }

  /**
   * What keeps the configuration from working, in words, or null; `unset` when it is only that nothing
   * was entered yet (no URL, no user or password), not that something entered is wrong.
   */
  function problemOf(urls: string[], creds: Credentials, caProblem: string | undefined): { text: string; unset: boolean } | null {
    if (urls.length === 0) return { text: RED._('cms-server.errors.noUrl'), unset: true };
    for (const u of urls) {
      try {
        normaliseBaseUrl(u);
      } catch (err) {
        return { text: RED._('cms-server.errors.badUrl', { url: u, error: (err as Error).message }), unset: false };
      }
    }
    if (!creds.user || !creds.password) return { text: RED._('cms-server.errors.noCredentials'), unset: true };
    if (caProblem) return { text: RED._('cms-server.errors.ca', { error: caProblem }), unset: false };
    return null;
  }

  RED.nodes.registerType('cms-server', CmsServer as any, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};

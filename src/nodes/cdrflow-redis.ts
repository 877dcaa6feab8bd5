/**
 * cdrflow-redis: the Redis two (or more) Node-RED instances share, so they act as one (issue 16).
 * Offers the nodes that choose it as their "shared state" (node.cdrflow, config.ts) one connection
 * (src/ha/connection.ts), claims for receivers and how long a delivered record is remembered. The
 * connection is made at the first use, kept up by the client's own reconnects, closed on close.
 */
import type { NodeAPI, Node, NodeDef } from 'node-red';
import { SharedRedis } from '../ha/connection';
import { Claims } from '../ha/claim';
import type { SharedState } from '../ha/shared';
import { redisSettings, RedisConfigError, type CheckedSettings } from '../ha/options';
import { offerConfig, type ConfigNode } from './lib/config';
import { properties } from './lib/props';
import { packageSetup } from './lib/setup';

interface CdrflowRedisDef extends NodeDef {
  url?: string;
  host?: string;
  port?: number | string;
  database?: number | string;
  tls?: boolean | string;
  verifyTls?: boolean | string;
  ca?: string;
  prefix?: string;
  /** Hours a delivered record's claim is kept, so a resend within them is recognised. */
  dedupHours?: number | string;
  timeout?: number | string;
}
interface Credentials {
  username?: string;
  password?: string;
}


export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CdrflowRedisNode(this: ConfigNode<SharedState> & Node<Credentials>, def: CdrflowRedisDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const creds = node.credentials ?? {};
    const ca = prop.pem('ca');
    let checked: CheckedSettings | null = null;
    let problem: string | null = null;
    const port = prop.raw('port') === undefined ? 6379 : Number(prop.text('port'));
    const database = prop.raw('database') === undefined ? 0 : Number(prop.text('database'));
    try {
      checked = redisSettings({
        url: prop.text('url'),
        host: prop.text('host', '127.0.0.1'),
        port,
        database,
        tls: prop.flag('tls', false),
        verifyTls: prop.flag('verifyTls', true),
        ca: ca.pem,
        username: creds.username,
        password: creds.password,
        // the prefix '' is a choice (a Redis of its own), so it is read raw, not defaulted when empty
        prefix: typeof def.prefix === 'string' ? def.prefix.trim() : undefined,
        timeoutMs: prop.seconds('timeout', 5, { positive: true, min: 0.1 }),
      });
    } catch (err) {
      if (!(err instanceof RedisConfigError)) throw err;
      problem = RED._(`cdrflow-redis.errors.${err.code}`, { error: err.message });
    }
    if (!problem && ca.problem) problem = RED._('cdrflow-redis.errors.ca', { error: ca.problem });

    let redis: SharedRedis | null = null;
    node.cdrflow = offerConfig<SharedState>(problem, () => {
      redis = new SharedRedis(checked!);
      const r = redis;
      // one line per change in the log: the user nodes show it in their status
      r.onChange((state, error) => {
        if (state === 'up') node.log(RED._('cdrflow-redis.log.up', { where: r.where }));
        else if (state === 'down') node.warn(RED._('cdrflow-redis.log.down', { where: r.where, error: error ?? '' }));
      });
      const hold = () => {
        holders++;
        let held = true;
        return () => {
          if (!held) return;
          held = false;
          holders--;
          if (holders === 0) lastLetGo?.();
        };
      };
      return { redis: r, claims: new Claims(r), dedupMs: Math.round(prop.number('dedupHours', 24, { positive: true, max: 24 * 90 }) * 3_600_000), hold };
    });
    let holders = 0;
    let lastLetGo: (() => void) | null = null;

    node.on('close', (_removed: boolean, done: () => void) => {
      const r = redis;
      redis = null;
      if (!r) return done();
      // the users' last writes (state, lease release) go out before the connection closes; 5 s at most
      const letGo = holders === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
        lastLetGo = resolve;
        setTimeout(resolve, 5000).unref?.();
      });
      letGo.then(() => r.close()).catch(() => undefined).then(() => done());
    });
  }

  RED.nodes.registerType('cdrflow-redis', CdrflowRedisNode as any, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });
};

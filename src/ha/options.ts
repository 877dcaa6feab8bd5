/**
 * What a `cdrflow-redis` configuration says, checked and turned into node-redis client options. Pure:
 * no connection is made here, so every bad input is a typed error the config node can report at
 * deploy instead of a socket error later.
 */
import type { RedisClientOptions } from 'redis';

export class RedisConfigError extends Error {
  constructor(readonly code: 'url' | 'host' | 'port' | 'database' | 'prefix', message: string) {
    super(message);
    this.name = 'RedisConfigError';
  }
}

export interface RedisSettings {
  /** redis:// or rediss:// URL; when set it wins over host/port/tls/database (credentials may be in it). */
  url?: string;
  host?: string;
  port?: number;
  /** TLS to Redis (implied by rediss://). */
  tls?: boolean;
  /** Extra CA (PEM) trusted for the server's certificate. */
  ca?: string;
  /** Check the server's certificate (on unless turned off). */
  verifyTls?: boolean;
  username?: string;
  password?: string;
  /** Database number 0–15 (Redis' default count; a server with more accepts higher). */
  database?: number;
  /** Put in front of every key, so several installations can share one Redis. */
  prefix?: string;
  /** Connect timeout and per-command timeout, ms. */
  timeoutMs?: number;
}

export interface CheckedSettings {
  client: RedisClientOptions;
  prefix: string;
  /** host:port for status and logs (never credentials). */
  where: string;
}

const DEFAULT_PREFIX = 'cdrflow:';

/** Checks `s` and builds the client options; throws RedisConfigError naming the bad input. */
export function redisSettings(s: RedisSettings): CheckedSettings {
  const prefix = s.prefix ?? DEFAULT_PREFIX;
  // a prefix is a plain key part: whitespace or glob characters would make keys nobody can SCAN for
  if (!/^[A-Za-z0-9_.:\-{}]{0,64}$/.test(prefix)) throw new RedisConfigError('prefix', `key prefix "${prefix}" may hold only letters, digits and _ . : - { } (at most 64)`);
  const timeout = s.timeoutMs && s.timeoutMs > 0 ? s.timeoutMs : 5000;
  let host = s.host?.trim() || '127.0.0.1';
  let port = s.port ?? 6379;
  let tls = s.tls === true;
  let database = s.database ?? 0;
  let username = s.username || undefined;
  let password = s.password || undefined;
  if (s.url && s.url.trim() !== '') {
    let u: URL;
    try {
      u = new URL(s.url.trim());
    } catch {
      throw new RedisConfigError('url', `"${s.url}" is not a URL`);
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RedisConfigError('url', `URL must start with redis:// or rediss:// (got ${u.protocol}//)`);
    if (!u.hostname) throw new RedisConfigError('url', 'URL has no host');
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = u.port ? Number(u.port) : 6379;
    tls = u.protocol === 'rediss:';
    const path = u.pathname.replace(/^\//, '');
    if (path !== '') {
      if (!/^\d+$/.test(path)) throw new RedisConfigError('database', `URL path "/${path}" is not a database number`);
      database = Number(path);
    }
    // credentials in the URL count only when the credential fields are empty
    if (!username && u.username) username = decodeURIComponent(u.username);
    if (!password && u.password) password = decodeURIComponent(u.password);
  }
  if (!/^[A-Za-z0-9.\-:_]+$/.test(host)) throw new RedisConfigError('host', `host "${host}" is not a host name or address`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RedisConfigError('port', `port ${port} is not 1–65535`);
  if (!Number.isInteger(database) || database < 0 || database > 1000) throw new RedisConfigError('database', `database ${database} is not a whole number from 0`);
  if (password !== undefined && username === undefined) username = 'default';

  const socket: Record<string, unknown> = {
    host,
    port,
    connectTimeout: timeout,
    // keep retrying with a capped pause: Redis coming back must be noticed without a redeploy
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), 2000),
  };
  if (tls) {
    socket.tls = true;
    socket.servername = /^[\d.:]+$/.test(host) ? undefined : host;
    socket.rejectUnauthorized = s.verifyTls !== false;
    if (s.ca) socket.ca = s.ca;
  }
  const client: RedisClientOptions = {
    socket: socket as RedisClientOptions['socket'],
    username,
    password,
    database,
    // fail at once while Redis is away: a receiver must answer 503 now, not hold the POST in a queue
    disableOfflineQueue: true,
    commandOptions: { timeout, rejectInFlight: true } as RedisClientOptions['commandOptions'],
  };
  return { client, prefix, where: `${host}:${port}${database ? `/${database}` : ''}` };
}

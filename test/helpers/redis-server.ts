/**
 * A real Redis for tests: Debian's redis-server on a free 127.0.0.1 port in its own temp directory.
 * `stop()` and `start()` let a test take Redis away mid-run and bring it back on the same port; the
 * append-only file is on so a restart keeps what was written (a claim must survive a Redis restart).
 * REDIS_SERVER points at another binary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createClient } from 'redis';
import { freePort } from './free-port';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisServerOptions {
  /** Extra `--name value` arguments (e.g. requirepass, TLS). */
  args?: string[];
}

export class RedisServer {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-redis-'));
  port = 0;
  private child: ChildProcess | null = null;
  private log = '';

  constructor(private readonly opts: RedisServerOptions = {}) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts it (on the same port as before after a stop; a free one the first time). */
  async start(): Promise<void> {
    if (this.child) return;
    // a port picked free can be taken before redis binds it: try a few
    for (let attempt = 0; ; attempt++) {
      const fresh = this.port === 0;
      if (fresh) this.port = await freePort();
      try {
        await this.spawnOnce();
        return;
      } catch (err) {
        if (!fresh || attempt >= 4) throw err;
        this.port = 0;
      }
    }
  }

  /** Stops it (SIGTERM: redis flushes the append-only file first) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  /** Stops it and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private spawnOnce(): Promise<void> {
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
      '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'notice',
      ...(this.opts.args ?? []),
    ];
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.log = '';
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString('utf8');
        if (!settled && /Ready to accept connections/.test(this.log)) {
          settled = true;
          this.child = child;
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', (err) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      child.once('exit', (code) => {
        if (this.child === child) this.child = null;
        if (!settled) {
          settled = true;
          reject(new Error(`redis-server exited (${code}) before it was ready:\n${this.log.slice(-2000)}`));
        }
      });
    });
  }
}

/** Starts a server for a describe block; stopped and removed after it. */
export function useRedisServer(opts: RedisServerOptions = {}): { server(): RedisServer } {
  let server: RedisServer | null = null;
  before(async function () {
    this.timeout(30_000);
    server = new RedisServer(opts);
    await server.start();
  });
  after(async () => {
    await server?.dispose();
    server = null;
  });
  return {
    server: () => {
      if (!server) throw new Error('redis-server not started');
      return server;
    },
  };
}

/** Resolves when `check` holds, polling every 20 ms; rejects after `ms` with `what`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A plain node-redis client, for looking at or changing keys behind the code under test. */
const rawClient = (url: string) => createClient({ url });
export type RawRedis = ReturnType<typeof rawClient>;

/** Runs `fn` with a plain client connected to `url`, closed afterwards. */
export async function withRedis<T>(url: string, fn: (c: RawRedis) => Promise<T>): Promise<T> {
  const c = rawClient(url);
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    c.destroy();
  }
}

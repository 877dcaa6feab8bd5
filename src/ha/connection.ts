/**
 * One Redis connection shared by the nodes of one `cdrflow-redis` configuration: connects in the
 * background, keeps reconnecting, and says whether Redis is reachable now (`up`) so nodes can refuse
 * what they cannot record instead of pretending. Knows nothing of Node-RED.
 */
import { createClient, ErrorReply } from 'redis';
import type { CheckedSettings } from './options';

export type LinkState = 'connecting' | 'up' | 'down' | 'closed';

/** Thrown by every command while Redis cannot be reached (or the connection was closed). */
export class RedisUnavailableError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'RedisUnavailableError';
  }
}

export type Client = ReturnType<typeof createClient>;

/**
 * Redis answered with an error about the command or the key (WRONGTYPE, a script error): not an outage.
 * node-redis throws subclasses of ErrorReply (SimpleError, BlobError), so the class is tested, not its name.
 */
export function isAnswer(err: unknown): boolean {
  return err instanceof ErrorReply && !/^(LOADING|BUSY|MASTERDOWN|READONLY|NOAUTH|WRONGPASS)/.test(err.message);
}

export class SharedRedis {
  readonly prefix: string;
  readonly where: string;
  private readonly client: Client;
  private current: LinkState = 'connecting';
  private lastError: string | null = null;
  private readonly listeners = new Set<(state: LinkState, error: string | null) => void>();

  constructor(settings: CheckedSettings) {
    this.prefix = settings.prefix;
    this.where = settings.where;
    this.client = createClient(settings.client);
    this.client.on('ready', () => this.set('up', null));
    // node-redis throws an unhandled 'error' event at the process: always listen
    this.client.on('error', (err: Error) => this.set(this.current === 'closed' ? 'closed' : 'down', err.message || String(err)));
    this.client.on('reconnecting', () => {
      if (this.current === 'up') this.set('down', this.lastError);
    });
    this.client.on('end', () => {
      if (this.current !== 'closed') this.set('down', this.lastError);
    });
    // connect() rejects when the first attempt fails, but the client keeps retrying on its own
    this.client.connect().catch((err: Error) => this.set(this.current === 'closed' ? 'closed' : 'down', err.message));
  }

  get state(): LinkState {
    return this.current;
  }

  get up(): boolean {
    return this.current === 'up';
  }

  /** Why the last attempt failed (no credentials in it: node-redis does not echo them). */
  get error(): string | null {
    return this.lastError;
  }

  /** The full key for `parts` (prefix + parts joined by ':'). */
  key(...parts: Array<string | number>): string {
    return this.prefix + parts.join(':');
  }

  /** Calls `fn` on every change of state; returns the function that stops it. */
  onChange(fn: (state: LinkState, error: string | null) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Runs one command; any failure to reach Redis becomes RedisUnavailableError. */
  async run<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    if (this.current === 'closed') throw new RedisUnavailableError('Redis connection closed');
    try {
      return await fn(this.client);
    } catch (err) {
      // a script error or a wrong type is a bug or a foreign key under our prefix, not an outage
      if (isAnswer(err)) throw err;
      throw new RedisUnavailableError(`Redis ${this.where} unavailable: ${(err as Error)?.message ?? err}`, err);
    }
  }

  /** Closes the connection (pending commands fail); safe to call twice. */
  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.set('closed', null);
    this.listeners.clear();
    try {
      this.client.destroy();
    } catch {
      // already closed by the client itself
    }
  }

  private set(state: LinkState, error: string | null): void {
    if (this.current === 'closed' && state !== 'closed') return;
    if (error !== null) this.lastError = error;
    if (state === 'up') this.lastError = null;
    if (state === this.current) return;
    this.current = state;
    for (const fn of [...this.listeners]) fn(state, this.lastError);
  }
}

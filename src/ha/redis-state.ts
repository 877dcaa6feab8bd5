/**
 * A node's state in Redis (issue 16), for the state kit (src/common/persist.ts): what a pull node's
 * two instances share, so the one that takes over resumes where the other stopped.
 *
 * - the snapshot is one hash (`json`: the state as JSON text, `savedAt`: ms); the one it replaced is
 *   kept in `<key>:prev`, the last good copy the kit falls back to;
 * - there is no journal (Redis cannot be written synchronously): every recorded change writes the
 *   whole snapshot, and StateKeeper.record's promise resolves once Redis has it;
 * - an optional fence (a lease key and this holder's token) makes every change conditional on the
 *   lease still being ours, checked inside Redis in the same script: a holder whose lease ran out can
 *   never write over what the next holder stored;
 * - Redis unreachable is not "unreadable state": `isOutage` tells the kit to set nothing aside and to
 *   start nothing clean, and writes reject with RedisUnavailableError (the change was not stored).
 */
import type { Codec, StateBackend, Stored } from '../common/persist';
import { RedisUnavailableError, isAnswer, type SharedRedis } from './connection';

/** A change was refused because the lease it was fenced with is not (any longer) this holder's. */
export class StateFencedError extends Error {
  constructor(where: string) {
    super(`${where}: not written, this instance no longer holds the lease`);
    this.name = 'StateFencedError';
  }
}

/** The lease every change is conditional on: its full key and the token of this holder. */
export interface Fence {
  key: string;
  token: string;
}

export interface RedisStateOptions {
  /** Encrypts the JSON text (tokens). */
  codec?: Codec;
  fence?: Fence;
  /**
   * How long the state of a node removed from this instance's flow is kept (ms, default 7 days): the
   * other instance may still run the node; its next write keeps the state for good again.
   */
  removedTtlMs?: number;
}

// KEYS: state, prev[, fence]; ARGV: json, savedAt[, token]. 0: fenced.
const WRITE = `
if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[3] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[2]) redis.call('PERSIST', KEYS[2]) end
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'savedAt', ARGV[2])
return 1`;
// KEYS: state, aside[, fence]; ARGV: [token]. 1 moved, 0 nothing there, -1 fenced.
const MOVE_ASIDE = `
if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1`;

const DAY = 86_400_000;

/** An error that came wrapped as an outage but was Redis answering (kept for errors from older wrappers). */
function answered(err: RedisUnavailableError): boolean {
  return isAnswer(err.cause);
}

export class RedisStateBackend implements StateBackend {
  /** The snapshot's key (with the configuration's prefix). */
  readonly key: string;
  private readonly codec: Codec | null;

  /** `name`: what identifies the state under the prefix, e.g. `comx-cdr-fetch:<node id>`. */
  constructor(private readonly redis: SharedRedis, name: string, private readonly opts: RedisStateOptions = {}) {
    if (name === '') throw new RangeError('state name is empty');
    this.key = redis.key('state', name);
    this.codec = opts.codec ?? null;
  }

  get where(): string {
    return `Redis ${this.redis.where}, key "${this.key}"`;
  }

  private get prevKey(): string {
    return `${this.key}:prev`;
  }

  isOutage(err: unknown): boolean {
    return err instanceof RedisUnavailableError && !answered(err);
  }

  async read(): Promise<Stored> {
    await this.connected();
    const main = await this.readSnapshot(this.key);
    if (main) return { ...main, journal: [] };
    const prev = await this.readSnapshot(this.prevKey);
    if (prev && !prev.error) return { ...prev, journal: [], fromPrevious: true };
    return { value: undefined, journal: [] };
  }

  async readPrevious(): Promise<Stored | null> {
    const prev = await this.readSnapshot(this.prevKey);
    return prev && !prev.error ? { ...prev, journal: [] } : null;
  }

  /**
   * At a deploy the first read comes before the connection is made: wait for its first outcome (up, or
   * down after the connect timeout) instead of reading "unreachable" from a connection not tried yet.
   */
  private async connected(): Promise<void> {
    if (this.redis.state !== 'connecting') return;
    await new Promise<void>((resolve) => {
      const off = this.redis.onChange(() => {
        off();
        resolve();
      });
    });
  }

  /** null when the key does not exist; outages throw, anything else unreadable is an `error`. */
  private async readSnapshot(key: string): Promise<Omit<Stored, 'journal'> | null> {
    let fields: Record<string, string>;
    try {
      fields = await this.redis.run((c) => c.hGetAll(key)) as Record<string, string>;
    } catch (err) {
      if (this.isOutage(err)) throw err;
      if (err instanceof RedisUnavailableError && err.cause instanceof Error) err = err.cause;
      // WRONGTYPE: something else lives under our key; it is set aside like a damaged file
      return { value: undefined, error: err as Error };
    }
    if (Object.keys(fields).length === 0) return null;
    const savedAt = Number(fields.savedAt);
    const at = Number.isFinite(savedAt) && savedAt > 0 ? savedAt : undefined;
    const text = fields.json;
    if (typeof text !== 'string') return { value: undefined, error: new Error('no "json" field'), savedAt: at };
    try {
      return { value: JSON.parse(this.codec ? this.codec.decode(text) : text), savedAt: at };
    } catch (err) {
      return { value: undefined, error: err as Error, text, savedAt: at };
    }
  }

  async write(snapshot: unknown): Promise<void> {
    const json = JSON.stringify(snapshot);
    const text = this.codec ? this.codec.encode(json) : json;
    const { keys, args } = this.fenced([this.key, this.prevKey], [text, String(Date.now())]);
    const ok = Number(await this.redis.run((c) => c.eval(WRITE, { keys, arguments: args })));
    if (ok !== 1) throw new StateFencedError(this.where);
  }

  append(): null {
    return null; // no journal: each recorded change writes the whole snapshot (awaited by the caller)
  }

  async moveAside(): Promise<string | null> {
    const aside = `${this.key}:unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const { keys, args } = this.fenced([this.key, aside], []);
    const moved = Number(await this.redis.run((c) => c.eval(MOVE_ASIDE, { keys, arguments: args })));
    if (moved === -1) throw new StateFencedError(this.where);
    return moved === 1 ? `Redis ${this.redis.where}, key "${aside}"` : null;
  }

  /** Not deleted: the other instance may still run the node (see removedTtlMs). */
  async clear(): Promise<void> {
    const ttl = String(Math.max(1, Math.round(this.opts.removedTtlMs ?? 7 * DAY)));
    await this.redis.run(async (c) => {
      await c.pExpire(this.key, Number(ttl));
      await c.pExpire(this.prevKey, Number(ttl));
    });
  }

  private fenced(keys: string[], args: string[]): { keys: string[]; args: string[] } {
    const f = this.opts.fence;
    return f ? { keys: [...keys, f.key], args: [...args, f.token] } : { keys, args };
  }
}

/**
 * Claims across instances: the first instance to claim a key (SET NX PX) handles the item; the
 * others see who has it. A claim is `pending` while its holder delivers and `done` once it confirmed
 * delivery (then kept for the dedup window, so a resend is recognised). A holder that fails releases
 * its claim; one that dies leaves it to expire after `ttlMs`. Every write checks the owner token, so a
 * holder whose claim expired and was taken over can never release or confirm someone else's.
 */
import { randomBytes } from 'node:crypto';
import type { SharedRedis } from './connection';

export type ClaimResult = 'won' | 'pending' | 'done';

const PENDING = 'p:';
const DONE = 'd:';

// SET NX PX, answering what was there when it was taken: one round trip, and unlike SET NX GET it
// works on Redis before 7.0
const CLAIM = `local v = redis.call('GET', KEYS[1]) if v then return v end redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return false`;
// compare-and-delete: only a pending claim of ours goes
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
// compare-and-mark-done with the dedup window as new expiry
const CONFIRM = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end`;

export class Claims {
  /** Identifies this holder in claim values (random per process and config, not secret). */
  readonly owner: string;

  constructor(private readonly redis: SharedRedis, owner?: string) {
    this.owner = owner ?? randomBytes(9).toString('base64url');
  }

  /** Claims `key` for `ttlMs`: `won` (ours now), or whether another holder still delivers or is done. */
  async claim(key: string, ttlMs: number): Promise<ClaimResult> {
    checkTtl(ttlMs);
    const k = this.redis.key(key);
    return this.redis.run(async (c) => {
      const prev = await c.eval(CLAIM, { keys: [k], arguments: [PENDING + this.owner, String(Math.round(ttlMs))] });
      if (prev === null) return 'won';
      if (typeof prev !== 'string') throw new Error(`claim ${k}: unexpected reply ${JSON.stringify(prev)}`);
      if (prev === PENDING + this.owner) return 'pending'; // claimed twice by us: still in delivery
      return prev.startsWith(DONE) ? 'done' : 'pending';
    });
  }

  /** Gives a pending claim of ours back (delivery failed); false when it was not ours any more. */
  async release(key: string): Promise<boolean> {
    const k = this.redis.key(key);
    return this.redis.run(async (c) => Number(await c.eval(RELEASE, { keys: [k], arguments: [PENDING + this.owner] })) === 1);
  }

  /**
   * Marks a pending claim of ours delivered and keeps it `windowMs` (resends within it are `done`);
   * false when it was no longer ours (it expired: another holder may deliver the item again).
   */
  async confirm(key: string, windowMs: number): Promise<boolean> {
    checkTtl(windowMs);
    const k = this.redis.key(key);
    return this.redis.run(async (c) => Number(await c.eval(CONFIRM, { keys: [k], arguments: [PENDING + this.owner, DONE + this.owner, String(Math.round(windowMs))] })) === 1);
  }
}

function checkTtl(ms: number): void {
  if (!Number.isFinite(ms) || ms < 1) throw new RangeError(`expiry must be a positive number of milliseconds (got ${ms})`);
}

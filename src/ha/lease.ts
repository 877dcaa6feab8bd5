/**
 * A lease: at most one holder at a time does something (pull, send API calls). Acquired with SET NX
 * PX and a random owner token, renewed while held (compare-and-pexpire), released compare-and-del, so
 * a holder whose lease ran out can never extend or drop the next holder's. A holder that cannot renew
 * before its lease would run out counts itself as having lost it: it stops before the other takes over.
 */
import { randomBytes } from 'node:crypto';
import { RedisUnavailableError, type SharedRedis } from './connection';

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export interface LeaseOptions {
  /** How long the lease lasts without a renewal: the longest a dead holder blocks the others. */
  ttlMs: number;
  /** How often the holder renews and a waiter tries to take it; default ttl/3. */
  intervalMs?: number;
  onGained?: () => void;
  /** `why`: 'expired' (not renewed in time: Redis away or the process stalled), 'taken', 'released'. */
  onLost?: (why: 'expired' | 'taken' | 'released') => void;
  /** A renewal or attempt failed (Redis away); the lease goes on trying. */
  onError?: (err: Error) => void;
  /** The clock (tests never need another; kept injectable for a virtual clock later). */
  now?: () => number;
}

export class Lease {
  readonly token = randomBytes(12).toString('base64url');
  private readonly key: string;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** When the lease runs out as far as this holder can know (start of the last successful set). */
  private validUntil = 0;
  private busy: Promise<void> | null = null;

  constructor(private readonly redis: SharedRedis, name: string, private readonly opts: LeaseOptions) {
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs < 10) throw new RangeError(`lease time must be at least 10 ms (got ${opts.ttlMs})`);
    const interval = opts.intervalMs ?? Math.floor(opts.ttlMs / 3);
    if (!Number.isFinite(interval) || interval < 1 || interval >= opts.ttlMs) throw new RangeError(`lease interval must be between 1 ms and the lease time (got ${interval})`);
    if (name === '') throw new RangeError('lease name is empty');
    this.key = redis.key('lease', name);
    this.intervalMs = interval;
    this.now = opts.now ?? Date.now;
  }

  /** True while this holder has the lease and it has not run out. */
  get held(): boolean {
    return this.validUntil > 0 && this.now() < this.validUntil;
  }

  /** Starts trying to get the lease (at once, then every interval) and renewing it once held. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  /** Stops, and releases the lease if held (so the other takes over without waiting for expiry). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.busy;
    const had = this.validUntil > 0;
    this.validUntil = 0;
    if (!had) return;
    try {
      await this.redis.run((c) => c.eval(RELEASE, { keys: [this.key], arguments: [this.token] }));
    } catch {
      // Redis away: the lease runs out by itself
    }
    this.opts.onLost?.('released');
  }

  /** One attempt now (tests and callers that must know before going on); the result of `held`. */
  async attempt(): Promise<boolean> {
    if (this.busy) await this.busy;
    const run = this.step();
    this.busy = run;
    try {
      await run;
    } finally {
      if (this.busy === run) this.busy = null;
    }
    return this.held;
  }

  private tick(): void {
    if (!this.running) return;
    void this.attempt().catch((err: Error) => this.opts.onError?.(err)).finally(() => {
      if (!this.running) return;
      this.timer = setTimeout(() => this.tick(), this.nextDelay());
      this.timer.unref?.();
    });
  }

  /** Renew well before the lease runs out; and notice it running out at the moment it does. */
  private nextDelay(): number {
    if (this.validUntil === 0) return this.intervalMs;
    return Math.max(1, Math.min(this.intervalMs, this.validUntil - this.now()));
  }

  private async step(): Promise<void> {
    const started = this.now();
    const wasHeld = this.validUntil > 0;
    if (wasHeld && started >= this.validUntil) {
      // not renewed in time: someone else may hold it already; stop acting before anything else
      this.validUntil = 0;
      this.opts.onLost?.('expired');
      return this.step();
    }
    try {
      if (wasHeld) {
        const ok = Number(await this.redis.run((c) => c.eval(RENEW, { keys: [this.key], arguments: [this.token, String(this.opts.ttlMs)] }))) === 1;
        if (!this.running && !ok) return;
        if (ok) {
          this.validUntil = started + this.opts.ttlMs;
        } else {
          this.validUntil = 0;
          this.opts.onLost?.('taken');
        }
      } else {
        const set = await this.redis.run((c) => c.set(this.key, this.token, { condition: 'NX', expiration: { type: 'PX', value: this.opts.ttlMs } } as any));
        if (set === 'OK') {
          // counted from before the request: the holder's view of the lease ends no later than Redis'
          this.validUntil = started + this.opts.ttlMs;
          this.opts.onGained?.();
        }
      }
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
      this.opts.onError?.(err);
      // `held` keeps answering from validUntil: the holder acts on only until its lease would run out
    }
  }
}

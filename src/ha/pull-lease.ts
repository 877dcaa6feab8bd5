/**
 * The lease of one pull node (issue 16): of the instances running the same node, only the one that
 * holds it pulls. Over Lease (src/ha/lease.ts) it adds what a puller needs:
 * - `canPull`: held *and* Redis reachable now: an instance that cannot store its cursor does not pull,
 *   so the two never pull the same window;
 * - `term`: counts the times the lease was gained, so the node re-reads its state from Redis before
 *   the first pull of each term (the other instance moved the cursor meanwhile);
 * - `runSignal()`: aborted the moment the lease is lost, so a pull in progress stops before the other
 *   instance may start (the lease runs out here no later than in Redis);
 * - `fence`: for the state backend, so a holder whose lease ran out cannot write over the next one's.
 * Knows nothing of Node-RED; the node words the roles.
 */
import type { SharedRedis } from './connection';
import { Lease } from './lease';
import type { Fence } from './redis-state';

export type PullRole = 'waiting' | 'active' | 'standby' | 'down';

/** A pull was stopped because the lease was lost while it ran. */
export class LeaseLostError extends Error {
  constructor(readonly why: string) {
    super(`lease lost (${why})`);
    this.name = 'LeaseLostError';
  }
}

export interface PullLeaseOptions {
  ttlMs: number;
  /** Every change of role; `why` says why a held lease was lost. */
  onRole(role: PullRole, why?: 'expired' | 'taken' | 'released'): void;
}

export class PullLease {
  readonly fence: Fence;
  private readonly lease: Lease;
  private readonly runs = new Set<AbortController>();
  private gained = 0;
  private current: PullRole = 'waiting';
  private readonly unsubscribe: () => void;

  /** `name`: `<type>:<node id>`. */
  constructor(private readonly redis: SharedRedis, name: string, private readonly opts: PullLeaseOptions) {
    this.lease = new Lease(redis, name, {
      ttlMs: opts.ttlMs,
      onGained: () => {
        this.gained++;
        this.update();
      },
      onLost: (why) => {
        for (const run of this.runs) run.abort(new LeaseLostError(why));
        this.update(why);
      },
      // a failed attempt or renewal: the connection's own state says whether Redis is down
      onError: () => this.update(),
    });
    this.fence = { key: redis.key('lease', name), token: this.lease.token };
    this.unsubscribe = redis.onChange(() => this.update());
  }

  get role(): PullRole {
    return this.current;
  }

  /** This instance may pull now. */
  get canPull(): boolean {
    return this.lease.held && this.redis.up;
  }

  /** How many times the lease was gained: a new term means the state must be read again. */
  get term(): number {
    return this.gained;
  }

  start(): void {
    this.lease.start();
  }

  /** A signal for one pull, aborted (with LeaseLostError) if the lease is lost before `done`. */
  runSignal(): { signal: AbortSignal; done(): void } {
    const ctl = new AbortController();
    if (!this.lease.held) ctl.abort(new LeaseLostError('expired'));
    this.runs.add(ctl);
    return { signal: ctl.signal, done: () => this.runs.delete(ctl) };
  }

  /** Stops trying, and releases the lease if held (the other instance takes over at once). */
  async stop(): Promise<void> {
    this.unsubscribe();
    await this.lease.stop();
  }

  private update(why?: 'expired' | 'taken' | 'released'): void {
    // a connection still being made (at deploy) is not an outage yet
    const role: PullRole = this.redis.state === 'connecting' ? 'waiting' : !this.redis.up ? 'down' : this.lease.held ? 'active' : 'standby';
    if (role === this.current && !why) return;
    this.current = role;
    this.opts.onRole(role, why);
  }
}

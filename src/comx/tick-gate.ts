/**
 * Backpressure set by the flow (msg.tick): the run waits for a tick before each message after the
 * first. A tick that arrives while the run is busy elsewhere is kept for the next wait; ticks never
 * start anything by themselves. A wait gives up after `timeoutMs` (the rest of the result is not sent).
 */
export class TickGate {
  private banked = 0;
  private active = false;
  private waiter: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;

  constructor(private readonly timeoutMs: number, private readonly timeoutError: () => Error) {}

  /** A run starts (ticks sent before it are not kept) or ends. */
  running(active: boolean): void {
    this.active = active;
    this.banked = 0;
  }

  /** Resolves at the next tick (at once for one kept from before). */
  wait(): Promise<void> {
    if (this.banked > 0) {
      this.banked--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(this.timeoutError());
      }, this.timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** A msg.tick arrived. */
  tick(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) {
      clearTimeout(w.timer);
      w.resolve();
    } else if (this.active) this.banked++;
  }

  /** The node closes: a waiting run fails with `err`. */
  close(err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

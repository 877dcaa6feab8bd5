/**
 * Node status without flooding the editor: at most one update per interval, the last one always shown.
 */
import type { Node, NodeStatus } from 'node-red';

export class ThrottledStatus {
  private pending: NodeStatus | (() => NodeStatus) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  constructor(private readonly node: Node, private readonly intervalMs = 1000) {}

  /** `status` may be a function, so a hot path builds the text only when it will be shown. */
  set(status: NodeStatus | (() => NodeStatus), immediate = false): void {
    const now = Date.now();
    if (immediate || now - this.last >= this.intervalMs) {
      this.last = now;
      this.pending = null;
      this.node.status(typeof status === 'function' ? status() : status);
      return;
    }
    this.pending = status;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.pending) this.set(this.pending, true);
      }, this.intervalMs - (now - this.last));
      this.timer.unref?.();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
  }
}

/** 1204 → "1,204" regardless of the server's locale. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * A pull node's cursor that could not be restored (comx-cdr-fetch, webex-cdr-pull). Never skipped
 * past in silence: if the lost state still shows the cursor (the moved file, or the last good copy
 * the kit already fell back to), the node resumes there and says so; otherwise every incremental run
 * fails (red status with the time the state was last saved, an error for Catch) until the user sets
 * where to resume with `msg.cursor`.
 * Each pull node's catalog provides `<type>.cursor.salvaged|lost|needed` and `<type>.status.cursorLost`.
 */
import type { NodeAPI, Node, NodeMessage } from 'node-red';
import type { StateLoss } from '../../common/persist';
import type { ThrottledStatus } from './status';

export class CursorLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CursorLostError';
  }
}

/** A time a user can give: Date, epoch ms, or ISO text; null when it is none of these. */
export function timeOf(v: unknown): number | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.getTime();
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

/** The value of `"<name>": <number or "text">` in what is left of a damaged file. */
export function salvageField(loss: StateLoss, name: string): unknown {
  const value = loss.lostValue as Record<string, unknown> | undefined;
  if (value && typeof value === 'object' && value[name] !== undefined && value[name] !== null) return value[name];
  const m = new RegExp(`"${name}"\\s*:\\s*("(?:[^"\\\\]|\\\\.)*"|-?\\d+(?:\\.\\d+)?)`).exec(loss.lostText ?? '');
  if (!m) return undefined;
  try {
    return JSON.parse(m[1]);
  } catch {
    return undefined;
  }
}

export class CursorGuard {
  private lost: { error: string; movedTo: string; lastSaved: string } | null = null;

  constructor(private readonly RED: NodeAPI, private readonly node: Node, private readonly type: string, private readonly status: ThrottledStatus) {}

  /**
   * After the state was restored: `loss` from the kit (null: nothing lost), `salvaged` the cursor
   * found in the lost state (ms), which the node has already applied. Returns true when the cursor is
   * lost for good and runs must wait for msg.cursor.
   */
  settle(loss: StateLoss | null, salvaged: number | null): boolean {
    if (!loss || loss.recoveredFrom) return false; // the kit's warning said it; the last good copy has a cursor
    const movedTo = loss.movedTo ?? '';
    if (salvaged !== null) {
      this.node.warn(this.RED._(`${this.type}.cursor.salvaged`, { time: new Date(salvaged).toISOString(), movedTo }));
      return false;
    }
    const lastSaved = loss.savedAt ? new Date(loss.savedAt).toISOString() : '?';
    this.lost = { error: loss.error, movedTo, lastSaved };
    const text = this.RED._(`${this.type}.cursor.lost`, { error: loss.error, movedTo, time: lastSaved });
    this.node.error(text, { topic: 'error', payload: null, error: { message: text } } as NodeMessage);
    this.show();
    return true;
  }

  get isLost(): boolean {
    return this.lost !== null;
  }

  private show(): void {
    if (!this.lost) return;
    this.status.set({ fill: 'red', shape: 'ring', text: this.RED._(`${this.type}.status.cursorLost`, { time: this.lost.lastSaved.slice(0, 16).replace('T', ' ') }) }, true);
  }

  /** Before an incremental run: throws (for done/Catch) while the cursor is lost. */
  check(): void {
    if (!this.lost) return;
    this.show();
    throw new CursorLostError(this.RED._(`${this.type}.cursor.needed`, { time: this.lost.lastSaved, movedTo: this.lost.movedTo }));
  }

  /** The user set where to resume. */
  resolved(): void {
    this.lost = null;
  }
}

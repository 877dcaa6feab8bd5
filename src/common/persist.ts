/**
 * State that must survive a redeploy or a restart when the user has no persistent context store:
 * a JSON file written atomically (temp file, fsync, rename), so a crash leaves the old or the new
 * version, never half of one (design.md §3).
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface StateStore<T> {
  load(): Promise<T | undefined>;
  save(value: T): Promise<void>;
  /** Removes the stored state (the node was deleted). */
  clear(): Promise<void>;
}

export class JsonFileStore<T> implements StateStore<T> {
  // saves run one after another: two at once could rename an older snapshot over a newer one
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  async load(): Promise<T | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.file, 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      // A damaged file must not stop the node: keep it aside for a human and start afresh.
      if (err instanceof SyntaxError) {
        await fsp.rename(this.file, `${this.file}.corrupt-${Date.now()}`).catch(() => undefined);
        return undefined;
      }
      throw err;
    }
  }

  /** Synchronous read, for constructors that must know their state before they accept input. */
  loadSync(): T | undefined {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as T;
    } catch {
      return undefined;
    }
  }

  save(value: T): Promise<void> {
    const text = JSON.stringify(value); // the value as it is now, not when the previous save ends
    const run = this.chain.then(() => this.write(text));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async write(text: string): Promise<void> {
    // state can hold tokens: readable by the Node-RED user only
    await fsp.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await fsp.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fsp.rename(tmp, this.file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
  }

  clear(): Promise<void> {
    const run = this.chain.then(() => fsp.rm(this.file, { force: true }));
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/**
 * Coalesces frequent changes into at most one write per `delayMs`, never two writes at once,
 * and `flush()` writes what is pending (on close).
 */
export class DebouncedSaver<T> {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(
    private readonly store: StateStore<T>,
    private readonly snapshot: () => T,
    private readonly delayMs: number,
    private readonly onError: (err: Error) => void,
  ) {}

  changed(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.delayMs);
    this.timer.unref?.();
  }

  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.writing = this.writing.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await this.store.save(this.snapshot());
      } catch (err) {
        this.dirty = true;
        this.onError(err as Error);
      }
    });
    return this.writing;
  }
}

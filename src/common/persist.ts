/**
 * State that must survive a redeploy, a restart or a kill (design.md §3), in one place for every node:
 *
 * - a backend holds a snapshot and, after it, a journal of small entries. The file backend writes the
 *   snapshot atomically (temporary file, fsync, rename), keeps the previous good snapshot beside it
 *   (`.prev`) and appends journal entries synchronously (`.log`), so what a receiver answered 200 for is
 *   in the file before the answer goes out;
 * - a StateKeeper restores through the node's own checked `restore`, sets an unreadable or wrongly shaped
 *   snapshot aside and says where, falls back to the last good copy, and writes only what changed: a
 *   journal entry per change, and a new snapshot once the journal outweighs the last one (or after a
 *   coalescing delay for changes made without an entry).
 *
 * Nothing here knows Node-RED; src/nodes/lib/state.ts picks the backend and words the warnings.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes, createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';

/** Thrown by a node's `restore` when saved state does not have the shape it expects. */
export class StateShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateShapeError';
  }
}

/** Throws StateShapeError with `what` unless `ok`. For restore functions. */
export function expectShape(ok: unknown, what: string): asserts ok {
  if (!ok) throw new StateShapeError(what);
}

export interface Stored {
  /** The parsed snapshot; undefined when there is none. */
  value: unknown;
  /** Journal entries written after that snapshot, oldest first. */
  journal: unknown[];
  /** Set when the snapshot exists but cannot be read or decoded. */
  error?: Error;
  /** The unreadable snapshot's text, for salvaging what can be recognised in it. */
  text?: string;
  /** The snapshot was missing and the previous copy was read instead (a crash between two renames). */
  fromPrevious?: boolean;
  /** When the snapshot was last written (ms), if the backend knows. */
  savedAt?: number;
}

export interface StateBackend {
  /** Where the state lives, for messages (a file path, or a context store and key). */
  readonly where: string;
  read(): Promise<Stored>;
  /** The last good snapshot kept beside the current one, if the backend keeps one. */
  readPrevious(): Promise<Stored | null>;
  /**
   * Writes a full snapshot, which must contain every journal entry appended before this call: the
   * journal is rotated synchronously, before the first await.
   */
  write(snapshot: unknown): Promise<void>;
  /** Appends one entry durably before returning its size in bytes, or returns null when the backend has no journal. */
  append(entry: unknown): number | null;
  /** Moves the current (unreadable) snapshot aside; returns where it went, or null. */
  moveAside(): Promise<string | null>;
  /** Removes everything stored (the node was deleted). */
  clear(): Promise<void>;
  /**
   * True when `err` means the store cannot be reached now (a Redis outage), not that the state is bad:
   * the keeper then sets nothing aside and starts nothing clean, and `ready` rejects with it.
   */
  isOutage?(err: unknown): boolean;
}

/** Encrypts what a backend writes (used for tokens). */
export interface Codec {
  encode(text: string): string;
  decode(text: string): string;
}

/** AES-256-GCM with a key derived (HKDF-SHA256) from `secret`. The output is a small JSON envelope. */
export function secretCodec(secret: string): Codec {
  const key = Buffer.from(hkdfSync('sha256', secret, 'cdrflow-state', 'cdrflow state encryption v1', 32));
  return {
    encode(text) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const data = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
      return JSON.stringify({ cdrflowEncrypted: 1, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') });
    },
    decode(text) {
      const env = JSON.parse(text);
      if (!env || env.cdrflowEncrypted !== 1) throw new Error('the file is not encrypted with this key');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(env.iv, 'base64'));
      decipher.setAuthTag(Buffer.from(env.tag, 'base64'));
      try {
        return Buffer.concat([decipher.update(Buffer.from(env.data, 'base64')), decipher.final()]).toString('utf8');
      } catch {
        throw new Error('cannot be decrypted with the current credentialSecret');
      }
    },
  };
}

const plain: Codec = { encode: (t) => t, decode: (t) => t };

/**
 * `<file>` the snapshot, `<file>.prev` the previous one, `<file>.log` the journal (JSON lines),
 * `<file>.log.old` a journal being folded into a snapshot. Everything owner-only (state can hold tokens).
 */
export class FileBackend implements StateBackend {
  private fd: number | null = null;
  private readonly codec: Codec;
  // writes run one after another: two at once could rename an older snapshot over a newer one
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly file: string, opts: { codec?: Codec } = {}) {
    this.codec = opts.codec ?? plain;
  }

  get where(): string {
    return this.file;
  }

  private get prev(): string {
    return `${this.file}.prev`;
  }

  private get log(): string {
    return `${this.file}.log`;
  }

  private get oldLog(): string {
    return `${this.file}.log.old`;
  }

  async read(): Promise<Stored> {
    const journal = [...(await readJournal(this.oldLog)), ...(await readJournal(this.log))];
    const main = await this.readSnapshot(this.file);
    if (main) return { ...main, journal };
    const prev = await this.readSnapshot(this.prev);
    if (prev && !prev.error) return { ...prev, journal, fromPrevious: true };
    return { value: undefined, journal };
  }

  async readPrevious(): Promise<Stored | null> {
    const prev = await this.readSnapshot(this.prev);
    if (!prev || prev.error) return null;
    return { ...prev, journal: [...(await readJournal(this.oldLog)), ...(await readJournal(this.log))] };
  }

  /** null when the file does not exist. */
  private async readSnapshot(file: string): Promise<Omit<Stored, 'journal'> | null> {
    let text: string;
    let savedAt: number | undefined;
    try {
      text = await fsp.readFile(file, 'utf8');
      savedAt = (await fsp.stat(file)).mtimeMs;
    } catch (err) {
      if (missing(err)) return null;
      return { value: undefined, error: err as Error };
    }
    try {
      return { value: JSON.parse(this.codec.decode(text)), savedAt };
    } catch (err) {
      return { value: undefined, error: err as Error, text, savedAt };
    }
  }

  write(snapshot: unknown): Promise<void> {
    const text = this.codec.encode(JSON.stringify(snapshot));
    this.rotateJournal();
    const run = this.chain.then(() => this.writeSnapshot(text));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Synchronously moves the journal to `.log.old`, so entries appended from now on go to a new one. */
  private rotateJournal(): void {
    this.closeFd();
    try {
      if (fs.existsSync(this.oldLog)) {
        // an earlier snapshot failed: keep its entries until one succeeds
        fs.appendFileSync(this.oldLog, fs.readFileSync(this.log));
        fs.rmSync(this.log);
      } else {
        fs.renameSync(this.log, this.oldLog);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private async writeSnapshot(text: string): Promise<void> {
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
      await fsp.rename(this.file, this.prev).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await fsp.rename(tmp, this.file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fsp.rm(this.oldLog, { force: true });
  }

  append(entry: unknown): number | null {
    // an encrypted state has no journal: its lines would be clear text; each change writes the whole file
    if (this.codec !== plain) return null;
    const line = `${JSON.stringify(entry)}\n`;
    if (this.fd === null) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      this.fd = fs.openSync(this.log, 'a', 0o600);
    }
    // a write(2) to the file before returning: a kill of Node-RED right after the answer loses nothing
    return fs.writeSync(this.fd, line);
  }

  async moveAside(): Promise<string | null> {
    const aside = `${this.file}.unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      await fsp.rename(this.file, aside);
      return aside;
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
  }

  /** Sets the journal aside too (its entries did not fit the state either). */
  async moveJournalAside(): Promise<void> {
    this.closeFd();
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    for (const f of [this.oldLog, this.log]) await fsp.rename(f, `${f}.unreadable-${stamp}`).catch(() => undefined);
  }

  clear(): Promise<void> {
    this.closeFd();
    const run = this.chain.then(async () => {
      for (const f of [this.file, this.prev, this.log, this.oldLog]) await fsp.rm(f, { force: true });
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Waits for pending writes and releases the journal's file descriptor. */
  async close(): Promise<void> {
    await this.chain;
    this.closeFd();
  }

  private closeFd(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch { /* already closed */ }
      this.fd = null;
    }
  }
}

/** ENOENT, or ENOTDIR when a folder on the way is missing or a file. */
function missing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function readJournal(file: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (missing(err)) return [];
    throw err;
  }
  const out: unknown[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a line cut short by a kill mid-write: it was never acknowledged
    }
  }
  return out;
}

/** What went wrong with the saved state at start, for the node to report. */
export interface StateLoss {
  /** Why the saved state could not be used. */
  error: string;
  /** Where the unreadable state was moved (null when it could not be moved, or for a context store). */
  movedTo: string | null;
  /** The unreadable state as far as it could be read: the parsed value, or the raw text. */
  lostValue?: unknown;
  lostText?: string;
  /** When the lost state was last written (ms), if known. */
  savedAt?: number;
  /** Set when the last good copy was used instead. */
  recoveredFrom?: string;
}

export interface KeeperOptions<S> {
  backend: StateBackend;
  /**
   * Builds the node's live state from a saved snapshot (undefined: none) and the journal entries after
   * it. Checks the shape and throws (StateShapeError) on anything unexpected; must not throw for
   * `(undefined, [])`.
   */
  restore(saved: unknown, journal: unknown[]): S;
  /** The live state (as restore built it) as plain JSON. */
  snapshot(live: S): unknown;
  /** Coalescing delay for changes made without a journal entry (changed()). */
  delayMs?: number;
  /** A snapshot is written once the journal holds this many bytes or more than the last snapshot. */
  minJournalBytes?: number;
  onError(err: Error): void;
}

/**
 * Loads, checks and keeps one node's state. `ready` resolves with the live state (an unusable save
 * starts clean, and `loss` says what happened); it rejects only when the backend says the store could
 * not be reached (`isOutage`), and then nothing is written and `record` throws that error.
 */
export class StateKeeper<S> {
  readonly ready: Promise<S>;
  loss: StateLoss | null = null;
  /** Snapshots written (tests count them). */
  writes = 0;
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;
  private closed = false;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  /** The live state: what restore built (snapshots are taken of it, whatever the node does with ready). */
  private live: S | undefined;
  /** The store could not be reached while loading: nothing is known, nothing may be written. */
  private unreachable: Error | null = null;

  constructor(private readonly opts: KeeperOptions<S>) {
    this.ready = this.load().then((s) => {
      this.live = s;
      return s;
    }, (err: Error) => {
      this.unreachable = err;
      throw err;
    });
    // the node sees the rejection through ready; the keeper's own copy must not count as unhandled
    this.ready.catch(() => undefined);
  }

  private async load(): Promise<S> {
    const { backend, restore } = this.opts;
    let stored: Stored;
    const outage = (err: unknown): boolean => backend.isOutage?.(err) === true;
    try {
      stored = await backend.read();
    } catch (err) {
      // an unreachable store says nothing about the state: starting clean would repeat or skip what it holds
      if (outage(err)) throw err;
      stored = { value: undefined, journal: [], error: err as Error };
    }
    if (stored.fromPrevious) this.dirty = true;
    if (!stored.error) {
      try {
        return restore(stored.value, stored.journal);
      } catch (err) {
        stored = { ...stored, error: err as Error };
      }
    }
    // unreadable or of the wrong shape: set it aside for a human, then the last good copy, then clean
    const loss: StateLoss = { error: stored.error!.message, movedTo: null, lostValue: stored.value, lostText: stored.text, savedAt: stored.savedAt };
    this.loss = loss;
    this.dirty = true;
    try {
      loss.movedTo = await backend.moveAside();
    } catch (err) {
      if (outage(err)) throw err;
      this.opts.onError(err as Error);
    }
    const prev = await backend.readPrevious().catch((err: unknown) => {
      if (outage(err)) throw err;
      return null;
    });
    if (prev) {
      for (const journal of [prev.journal, []]) {
        try {
          const s = restore(prev.value, journal);
          loss.recoveredFrom = `${backend.where}.prev`;
          return s;
        } catch { /* try without the journal, then give up on the copy */ }
      }
    }
    if (stored.journal.length > 0) {
      try {
        return restore(undefined, stored.journal);
      } catch { /* the journal does not fit either */ }
    }
    if (backend instanceof FileBackend) await backend.moveJournalAside();
    return restore(undefined, []);
  }

  /**
   * Records one change durably (file: written before this returns; context store: awaited). Throws once
   * closed: nothing may be acknowledged that is no longer kept.
   */
  record(entry: unknown): Promise<void> | void {
    if (this.closed) throw new Error('the state is closed (the node is stopping)');
    if (this.unreachable) throw this.unreachable;
    const bytes = this.opts.backend.append(entry);
    if (bytes !== null) {
      this.journalBytes += bytes;
      // fold the journal into a snapshot once it outweighs the last one: writes stay proportional to changes
      if (this.journalBytes >= Math.max(this.opts.minJournalBytes ?? 64 * 1024, this.snapshotBytes)) this.flushQuietly();
      return;
    }
    this.dirty = true;
    return this.flush();
  }

  /** Something changed that has no journal entry: a snapshot follows within delayMs. */
  changed(): void {
    if (this.closed) return;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flushQuietly();
    }, this.opts.delayMs ?? 500);
    this.timer.unref?.();
  }

  /** Resolves when no snapshot is being written. */
  settled(): Promise<void> {
    return this.writing;
  }

  /** A flush whose failure was already reported through onError. */
  private flushQuietly(): void {
    this.flush().catch(() => undefined);
  }

  /** Writes a snapshot now if anything changed since the last one; resolves when it is on disk. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.writing = this.writing.then(async () => {
      if (!this.dirty && this.journalBytes === 0) return;
      this.dirty = false;
      if (this.live === undefined) return; // not loaded yet: nothing of ours to write
      const value = this.opts.snapshot(this.live);
      this.journalBytes = 0;
      try {
        const write = this.opts.backend.write(value);
        this.writes++;
        await write;
        this.snapshotBytes = JSON.stringify(value).length;
      } catch (err) {
        this.dirty = true;
        this.opts.onError(err as Error);
        throw err;
      }
    });
    const result = this.writing;
    this.writing = result.catch(() => undefined);
    return result;
  }

  /** Flushes, then stops; a removed node's state is deleted. Later changes are ignored. */
  async close(removed: boolean): Promise<void> {
    try {
      await this.ready;
    } catch {
      this.closed = true; // never loaded: nothing of ours to write or remove
      return;
    }
    if (removed) {
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      await this.writing;
      await this.opts.backend.clear();
      return;
    }
    await this.flush().catch(() => undefined);
    this.closed = true;
    if (this.opts.backend instanceof FileBackend) await this.opts.backend.close();
  }
}

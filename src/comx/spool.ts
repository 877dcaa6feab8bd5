/**
 * Answer bodies to disk: a zip must be on disk before it can be read (its directory is at the end), and
 * an index read at the flow's pace (msg.tick) is kept in a temporary file rather than holding the PBX
 * connection open until it times out. Chunks are gathered and written about 1 MiB at a time.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';

const BIG = 1 << 20;

const STAGING = '.comx-partial-';

/**
 * A staging name in the recordings folder: `.comx-partial-<tag>-<random>`, the tag naming the node that
 * downloads, so at its next start it can remove what a kill left behind without touching another node's.
 */
export function stagingPath(dir: string, tag: string | undefined, random: string): string {
  return path.join(dir, `${STAGING}${tag ? `${tag.replace(/[^A-Za-z0-9_]/g, '_')}-` : ''}${random}`);
}

/**
 * Removes, in `dir`, the staging files and folders of `tag` (its node is starting: none is in use) and
 * untagged ones of earlier versions older than an hour. Returns how many were removed.
 */
export async function removeStaleStaging(dir: string, tag: string, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return 0; // no folder yet: nothing left behind
  }
  const mine = `${STAGING}${tag.replace(/[^A-Za-z0-9_]/g, '_')}-`;
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(STAGING)) continue;
    const untagged = /^\.comx-partial-[0-9a-f]{12}$/.test(name);
    if (!name.startsWith(mine) && !untagged) continue;
    const full = path.join(dir, name);
    if (untagged) {
      const st = await fsp.stat(full).catch(() => null);
      if (!st || now - st.mtimeMs < 3_600_000) continue;
    }
    await fsp.rm(full, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Streams a body into a new file (`wx`), counting bytes; resolves with the size. */
export async function writeBodyToFile(body: Readable | NodeJS.ReadableStream, file: string, onBytes: (n: number) => void = () => undefined): Promise<number> {
  const fh = await fsp.open(file, 'wx');
  let bytes = 0;
  try {
    let pending: Buffer[] = [];
    let pendingLen = 0;
    // one write in flight while the next megabyte arrives
    let writing: Promise<Error | null> = Promise.resolve(null);
    const settle = async () => {
      const err = await writing;
      if (err) throw err;
    };
    for await (const c of body as AsyncIterable<Buffer | string>) {
      const chunk = typeof c === 'string' ? Buffer.from(c) : c;
      bytes += chunk.length;
      pending.push(chunk);
      pendingLen += chunk.length;
      onBytes(bytes);
      if (pendingLen >= BIG) {
        await settle();
        writing = writeAll(fh, pending).then(() => null, (err: Error) => err);
        pending = [];
        pendingLen = 0;
      }
    }
    await settle();
    if (pendingLen) await writeAll(fh, pending);
  } finally {
    await fh.close();
  }
  return bytes;
}

async function writeAll(fh: FileHandle, chunks: Buffer[]): Promise<void> {
  let { bytesWritten } = await fh.writev(chunks);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  // writev may write less than asked: finish the rest
  while (bytesWritten < total) {
    const rest = Buffer.concat(chunks).subarray(bytesWritten);
    bytesWritten += (await fh.write(rest)).bytesWritten;
  }
}

/** Streams a body to a temporary file; `cleanup()` removes it. */
export async function spoolToTemp(body: Readable | NodeJS.ReadableStream, onBytes?: (n: number) => void): Promise<{ path: string; size: number; cleanup: () => Promise<void> }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'comx-'));
  const cleanup = () => fsp.rm(dir, { recursive: true, force: true });
  try {
    const file = path.join(dir, 'index.txt');
    const size = await writeBodyToFile(body, file, onBytes);
    return { path: file, size, cleanup };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

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

/**
 * A recording fetched alone (no `format`: spec v1.6 §2.1.2): saved atomically into the user's folder,
 * or read into memory up to a limit.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { insideFolder, safeFileName } from './safe-name';
import { stagingPath, writeBodyToFile } from './spool';

/** The recording is larger than it may be in memory. */
export class RecordingTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the recording is larger than the ${limit}-byte attach limit: set a folder to save it`);
    this.name = 'RecordingTooLargeError';
  }
}

/** Saves a raw recording body atomically under a safe name: temp name, then rename. */
export async function saveRecording(body: Readable | NodeJS.ReadableStream, dir: string, name: string, onBytes?: (n: number) => void, stagingTag?: string): Promise<{ path: string; size: number }> {
  const target = insideFolder(path.resolve(dir), safeFileName(name));
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = stagingPath(path.dirname(target), stagingTag, randomBytes(6).toString('hex'));
  try {
    const size = await writeBodyToFile(body, tmp, onBytes);
    await fsp.rename(tmp, target);
    return { path: target, size };
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Reads a raw recording body into memory, refusing more than `maxBytes`. */
export async function readLimited(body: Readable | NodeJS.ReadableStream, maxBytes: number, onBytes?: (n: number) => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      (body as Readable).destroy?.();
      throw new RecordingTooLargeError(maxBytes);
    }
    chunks.push(chunk);
    onBytes?.(size);
  }
  return Buffer.concat(chunks);
}

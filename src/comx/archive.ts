/**
 * The `format=ziprec` answer (spec §2.2.1): a flat zip with `index.txt` and the recordings.
 *
 * A zip keeps its directory at the end, so the body is streamed to a temporary file first (never held
 * in memory), then read with yauzl entry by entry. Recordings are extracted into a hidden staging
 * folder next to the target and renamed into place only after every wanted entry was read and
 * checked (size and CRC-32): a truncated or corrupt zip leaves nothing behind, and a partial file is
 * never visible under its final name. Entry names are reduced to a safe base name; one that tries to
 * leave the folder (`..`, absolute, drive letter) is not extracted at all.
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { randomBytes } from 'node:crypto';
import * as yauzl from 'yauzl';
import { parseIndexBatches, type ComxCdr, type IndexItem } from './index-file';

export class ArchiveError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'ArchiveError';
  }
}

export interface ArchiveProgress {
  phase: 'download' | 'extract';
  /** Bytes downloaded (download) or written (extract) so far. */
  bytes: number;
  /** Total bytes if known. */
  totalBytes: number | null;
  entries: number;
  totalEntries: number;
}

export interface RecordingRef {
  /** The recording's name as the index gives it. */
  name: string;
  /** The safe file name it was saved under. */
  file: string;
  size: number;
  /** Where it is on disk: in the save folder, or (attach only) in a temporary folder removed by cleanup(). */
  path?: string;
  saved: boolean;
  /** Why there is no file: not in the zip, unsafe name, over the attach limit, or neither saved nor attached. */
  missing?: 'notInZip' | 'unsafeName' | 'tooLarge' | 'notKept';
}

export interface ArchiveOptions {
  zone: string;
  extended?: boolean;
  /** Folder to save recordings into; null: do not keep them. */
  saveDir?: string | null;
  /** Also keep recordings up to this size available for attaching (0: none). */
  attachMaxBytes?: number;
  /** Which CDRs need their recording (e.g. those not emitted before). Default: all. */
  want?: (cdr: ComxCdr) => boolean;
  onProgress?: (p: ArchiveProgress) => void;
  /** Expected body size (Content-Length), for progress. */
  totalBytes?: number | null;
}

export interface ArchiveResult {
  /** Index lines in order: CDRs and malformed lines. */
  items: IndexItem[];
  /** Recording per CDR (by line number), for CDRs that name one and were wanted. */
  recordings: Map<number, RecordingRef>;
  /** Entries that were neither the index nor a recording of a wanted CDR, and unsafe names. */
  warnings: string[];
  entries: number;
  bytes: number;
  /** Removes temporary files (attach-only recordings); call after the recordings were read. */
  cleanup(): Promise<void>;
}

/** Read and write size for zip data: large slices keep extraction near `unzip` speed. */
const BIG = 1 << 20;

const UNSAFE = /(^|[\\/])\.\.([\\/]|$)|^[\\/]|^[a-zA-Z]:/;

/**
 * A file name that cannot leave its folder and is safe on every file system: the last path segment,
 * control characters removed, anything but letters, digits and `._-+@=()` replaced by `_`, no leading
 * dot, at most 200 characters.
 */
export function safeFileName(name: string, fallback = 'recording'): string {
  const base = name.split(/[\\/]/).filter(Boolean).pop() ?? '';
  let s = base.normalize('NFC').replace(/[\u0000-\u001f\u007f]/g, '').replace(/[^\w.\-+@=()]/g, '_').replace(/^[.\s]+/, '').replace(/[.\s]+$/, '').slice(0, 200);
  if (!s) s = fallback;
  if (/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i.test(s)) s = `_${s}`;
  return s;
}

/** Whether a zip entry name tries to leave the folder it is extracted into. */
export function isUnsafeEntryName(name: string): boolean {
  return UNSAFE.test(name) || name.includes('\u0000');
}

function inside(dir: string, file: string): string {
  const full = path.resolve(dir, file);
  if (path.dirname(full) !== path.resolve(dir)) throw new ArchiveError(`refusing to write outside ${dir}: ${file}`);
  return full;
}

/** Streams a body to a file, counting bytes; chunks are gathered and written about 1 MiB at a time. */
async function download(body: Readable | NodeJS.ReadableStream, file: string, onBytes: (n: number) => void): Promise<number> {
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

async function writeFully(fh: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) written += (await fh.write(data, written, data.length - written)).bytesWritten;
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

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true }, (err, zip) => (err ? reject(err) : resolve(zip)));
  });
}

function readEntries(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: yauzl.Entry[] = [];
    zip.on('entry', (e: yauzl.Entry) => {
      entries.push(e);
      zip.readEntry();
    });
    zip.once('end', () => resolve(entries));
    zip.once('error', reject);
    zip.readEntry();
  });
}

function entryName(e: yauzl.Entry): string {
  const raw = (e.fileNameRaw ?? e.fileName) as unknown as Buffer;
  const low = (yauzl as unknown as { getFileNameLowLevel?: (f: number, b: Buffer, x: unknown, s: boolean) => string }).getFileNameLowLevel;
  if (low) return low(e.generalPurposeBitFlag, raw, e.extraFields, false);
  return Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw);
}

function openEntry(zip: yauzl.ZipFile, e: yauzl.Entry): Promise<Readable> {
  return new Promise((resolve, reject) => zip.openReadStream(e, (err, s) => (err ? reject(err) : resolve(s))));
}

function dataStart(zip: yauzl.ZipFile, e: yauzl.Entry): Promise<number> {
  return new Promise((resolve, reject) => zip.readLocalFileHeader(e, { minimal: true }, (err, h) => (err ? reject(err) : resolve(h.fileDataStart))));
}


/**
 * Extracts one entry to `file`, checking size and CRC-32 (yauzl checks sizes only). yauzl locates the
 * entry's data; it is then read in large slices straight from the zip file and, when deflated,
 * inflated, which is what keeps extraction close to `unzip` speed. An entry that inflates beyond its
 * declared size is stopped there (no zip bomb).
 */
async function extract(zip: yauzl.ZipFile, zipPath: string, zipFh: FileHandle, bufs: [Buffer, Buffer], e: yauzl.Entry, file: string, onBytes: (n: number) => void): Promise<void> {
  if (e.isEncrypted()) throw new ArchiveError(`${path.basename(file)}: encrypted entries are not supported`);
  if (e.compressionMethod !== 0 && e.compressionMethod !== 8) throw new ArchiveError(`${path.basename(file)}: compression method ${e.compressionMethod} is not supported`);
  const start = await dataStart(zip, e);
  let crc = 0;
  let size = 0;
  if (e.compressionMethod === 0) {
    // stored (recordings usually are): slices read and written directly, no stream machinery
    if (e.compressedSize !== e.uncompressedSize) throw new ArchiveError(`${path.basename(file)}: stored entry with two different sizes`);
    const out = await fsp.open(file, 'wx');
    // two buffers: the next slice is read while the previous one is written
    let writing: Promise<Error | null> = Promise.resolve(null);
    const settle = async () => {
      const err = await writing;
      if (err) throw err;
    };
    try {
      let pos = start;
      let left = e.compressedSize;
      let which = 0;
      while (left > 0) {
        const b = bufs[which];
        which ^= 1;
        const { bytesRead } = await zipFh.read(b, 0, Math.min(left, b.length), pos);
        if (bytesRead === 0) throw new ArchiveError(`${path.basename(file)}: the zip ends inside this entry`);
        const slice = b.subarray(0, bytesRead);
        crc = zlib.crc32(slice, crc);
        await settle();
        writing = writeFully(out, slice).then(() => null, (err: Error) => err);
        pos += bytesRead;
        left -= bytesRead;
        size += bytesRead;
        onBytes(bytesRead);
      }
      await settle();
    } finally {
      await writing;
      await out.close();
    }
    if ((crc >>> 0) !== (e.crc32 >>> 0)) throw new ArchiveError(`${path.basename(file)}: CRC-32 mismatch, the zip is corrupt`);
    return;
  }
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > e.uncompressedSize) return cb(new ArchiveError(`${path.basename(file)}: more data than the ${e.uncompressedSize} bytes declared`));
      crc = zlib.crc32(chunk, crc);
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  const out = createWriteStream(file, { flags: 'wx', highWaterMark: BIG });
  if (e.compressedSize === 0) {
    await pipeline(Readable.from([]), check, out);
  } else {
    const raw = createReadStream(zipPath, { start, end: start + e.compressedSize - 1, highWaterMark: BIG });
    if (e.compressionMethod === 8) await pipeline(raw, zlib.createInflateRaw({ chunkSize: 256 * 1024 }), check, out);
    else await pipeline(raw, check, out);
  }
  if (size !== e.uncompressedSize) throw new ArchiveError(`${path.basename(file)}: ${size} bytes instead of ${e.uncompressedSize}`);
  if ((crc >>> 0) !== (e.crc32 >>> 0)) throw new ArchiveError(`${path.basename(file)}: CRC-32 mismatch, the zip is corrupt`);
}

/**
 * Reads a ziprec answer: the index (typed CDRs + malformed lines) and the wanted recordings, saved
 * under `saveDir` and/or kept for attaching. Throws ArchiveError (nothing saved) when the zip is
 * truncated or corrupt or has no index.
 */
export async function readZipArchive(body: Readable | NodeJS.ReadableStream, opts: ArchiveOptions): Promise<ArchiveResult> {
  const saveDir = opts.saveDir ? path.resolve(opts.saveDir) : null;
  const attachMax = Math.max(0, opts.attachMaxBytes ?? 0);
  if (saveDir) await fsp.mkdir(saveDir, { recursive: true });
  // staging beside the target, so the final rename stays on one file system
  const staging = saveDir
    ? path.join(saveDir, `.comx-partial-${randomBytes(6).toString('hex')}`)
    : await fsp.mkdtemp(path.join(os.tmpdir(), 'comx-'));
  await fsp.mkdir(staging, { recursive: true });
  const zipFile = path.join(staging, 'answer.zip');
  const progress: ArchiveProgress = { phase: 'download', bytes: 0, totalBytes: opts.totalBytes ?? null, entries: 0, totalEntries: 0 };
  const report = () => opts.onProgress?.({ ...progress });
  let zip: yauzl.ZipFile | null = null;
  let zipFh: FileHandle | null = null;
  let attachDir: string | null = null;
  try {
    let downloaded: number;
    try {
      downloaded = await download(body, zipFile, (n) => {
        progress.bytes = n;
        report();
      });
    } catch (err) {
      throw new ArchiveError(`the zip download broke off: ${(err as Error).message}`, err);
    }
    try {
      zip = await openZip(zipFile);
    } catch (err) {
      throw new ArchiveError(`not a readable zip (truncated or corrupt): ${(err as Error).message}`, err);
    }
    const entries = await readEntries(zip).catch((err: Error) => {
      throw new ArchiveError(`the zip directory is corrupt: ${err.message}`, err);
    });
    Object.assign(progress, { phase: 'extract', bytes: 0, totalBytes: entries.reduce((s, e) => s + e.uncompressedSize, 0), entries: 0, totalEntries: entries.length });
    report();

    const warnings: string[] = [];
    const byName = new Map<string, yauzl.Entry>();
    let index: yauzl.Entry | null = null;
    for (const e of entries) {
      const name = entryName(e);
      if (name.endsWith('/')) continue; // a folder
      if (isUnsafeEntryName(name)) {
        warnings.push(`unsafe entry name not extracted: ${JSON.stringify(name.slice(0, 200))}`);
        continue;
      }
      const safe = safeFileName(name);
      if (safe.toLowerCase() === 'index.txt') {
        if (!index) index = e;
        continue;
      }
      if (byName.has(safe)) warnings.push(`duplicate entry ${safe}: the first one is used`);
      else byName.set(safe, e);
    }
    if (!index) throw new ArchiveError('the zip has no index.txt');

    const items: IndexItem[] = [];
    try {
      for await (const batch of parseIndexBatches(await openEntry(zip, index), { zone: opts.zone, extended: opts.extended })) for (const item of batch) items.push(item);
    } catch (err) {
      throw new ArchiveError(`index.txt could not be read: ${(err as Error).message}`, err);
    }
    progress.entries++;
    report();

    const recordings = new Map<number, RecordingRef>();
    const bufs: [Buffer, Buffer] = [Buffer.allocUnsafe(BIG), Buffer.allocUnsafe(BIG)];
    const staged: { from: string; ref: RecordingRef }[] = [];
    const used = new Set<string>();
    for (const item of items) {
      if (item.kind !== 'cdr') continue;
      const cdr = item.cdr;
      const recName = cdr.recordingFile;
      if (!recName || (opts.want && !opts.want(cdr))) continue;
      const safe = safeFileName(recName);
      const ref: RecordingRef = { name: recName, file: safe, size: 0, saved: false };
      recordings.set(cdr.line, ref);
      const e = byName.get(safe);
      if (!e) {
        ref.missing = isUnsafeEntryName(recName) ? 'unsafeName' : 'notInZip';
        continue;
      }
      ref.size = e.uncompressedSize;
      if (!saveDir && e.uncompressedSize > attachMax) {
        ref.missing = attachMax > 0 ? 'tooLarge' : 'notKept';
        continue;
      }
      if (used.has(safe)) {
        // two CDR lines naming one recording (repeated unique id): extract once
        const first = staged.find((s) => s.ref.file === safe);
        if (first) staged.push({ from: first.from, ref });
        continue;
      }
      used.add(safe);
      const from = inside(staging, `r-${staged.length}-${safe}`);
      zipFh ??= await fsp.open(zipFile, 'r');
      try {
        await extract(zip, zipFile, zipFh, bufs, e, from, (n) => {
          progress.bytes += n;
          report();
        });
      } catch (err) {
        if (err instanceof ArchiveError) throw err;
        throw new ArchiveError(`${safe} could not be extracted, the zip is corrupt: ${(err as Error).message}`, err);
      }
      progress.entries++;
      report();
      staged.push({ from, ref });
    }
    for (const [name] of byName) if (!used.has(name)) warnings.push(`recording ${name} is not named by any wanted CDR`);
    zip.close();
    zip = null;
    if (zipFh) await zipFh.close();
    zipFh = null;

    // everything read and checked: now make it visible
    if (saveDir) {
      const moved = new Map<string, string>();
      const dir = saveDir;
      for (const s of staged) {
        const target = inside(dir, s.ref.file);
        if (!moved.has(s.from)) {
          await fsp.rename(s.from, target);
          moved.set(s.from, target);
        }
        s.ref.path = target;
        s.ref.saved = true;
      }
      await fsp.rm(staging, { recursive: true, force: true });
    } else {
      await fsp.rm(zipFile, { force: true });
      attachDir = staging;
      for (const s of staged) s.ref.path = s.from;
    }
    const cleanupDir = attachDir;
    return {
      items,
      recordings,
      warnings,
      entries: entries.length,
      bytes: downloaded,
      cleanup: async () => {
        if (cleanupDir) await fsp.rm(cleanupDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (zip) zip.close();
    if (zipFh) await zipFh.close().catch(() => undefined);
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Streams a body to a temporary file (so a slow consumer never holds the PBX connection open until it
 * times out); `cleanup()` removes it.
 */
export async function spoolToTemp(body: Readable | NodeJS.ReadableStream, onBytes?: (n: number) => void): Promise<{ path: string; size: number; cleanup: () => Promise<void> }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'comx-'));
  const cleanup = () => fsp.rm(dir, { recursive: true, force: true });
  try {
    const file = path.join(dir, 'index.txt');
    const size = await download(body, file, onBytes ?? (() => undefined));
    return { path: file, size, cleanup };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

/** Saves a raw recording body (no `format`) atomically: temp name, then rename. */
export async function saveRecording(body: Readable | NodeJS.ReadableStream, dir: string, name: string, onBytes?: (n: number) => void): Promise<{ path: string; size: number }> {
  const target = inside(path.resolve(dir), safeFileName(name));
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.comx-partial-${randomBytes(6).toString('hex')}`);
  try {
    const size = await download(body, tmp, onBytes ?? (() => undefined));
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
      throw new ArchiveError(`the recording is larger than the ${maxBytes}-byte attach limit: set a folder to save it`);
    }
    chunks.push(chunk);
    onBytes?.(size);
  }
  return Buffer.concat(chunks);
}

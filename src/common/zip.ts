/**
 * Reading zip files, the one place the package uses yauzl (Com.X `ziprec` answers, CC-FS bill files).
 *
 * The file is opened with names undecoded, so a hostile name (`../x`, `/etc/x`) does not abort the
 * whole zip inside yauzl: each caller decides, with `unsafeZipName`, whether such an entry is refused
 * or reported and skipped. Entries are walked lazily (one directory record at a time), read as a
 * stream, or extracted to a file with their size and CRC-32 checked, in large slices read straight
 * from the zip (what keeps extraction close to `unzip` speed).
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import * as yauzl from 'yauzl';

/** An entry whose data cannot be used: encrypted, an unknown compression, sizes or CRC-32 that do not match. */
export class ZipDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZipDataError';
  }
}

export interface ZipEntry {
  /** The name as stored (UTF-8 or CP437 as its flags say; backslashes turned into slashes). */
  name: string;
  size: number;
  compressedSize: number;
  /** yauzl's entry, for openStream and extract. */
  raw: yauzl.Entry;
}

/** Why a stored name must not be used as a path (absolute, a `..` segment, a drive letter), or null: yauzl's own rule. */
export function unsafeZipName(name: string): string | null {
  return yauzl.validateFileName(name);
}

/** Read and write size for extraction: large slices keep it near `unzip` speed. */
const SLICE = 1 << 20;

export class ZipReader {
  private fh: FileHandle | null = null;
  private bufs: [Buffer, Buffer] | null = null;
  private closed = false;

  private constructor(readonly file: string, private readonly zip: yauzl.ZipFile) {}

  /** Opens `file`; rejects when it is not a readable zip (truncated, corrupt, not a zip at all). */
  static async open(file: string): Promise<ZipReader> {
    const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
      yauzl.open(file, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true }, (err, z) => (err || !z ? reject(err ?? new Error('no zip')) : resolve(z)));
    });
    return new ZipReader(file, zip);
  }

  get entryCount(): number {
    return this.zip.entryCount;
  }

  /** The entries in directory order, read one at a time; rejects on a corrupt directory. */
  async *entries(): AsyncGenerator<ZipEntry> {
    for (;;) {
      const e = await this.next();
      if (!e) return;
      yield e;
    }
  }

  private next(): Promise<ZipEntry | null> {
    const zip = this.zip;
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        zip.removeListener('entry', onEntry);
        zip.removeListener('end', onEnd);
        zip.removeListener('error', onError);
      };
      const onEntry = (e: yauzl.Entry) => {
        cleanup();
        resolve({ name: entryName(e), size: e.uncompressedSize, compressedSize: e.compressedSize, raw: e });
      };
      const onEnd = () => {
        cleanup();
        resolve(null);
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      zip.once('entry', onEntry);
      zip.once('end', onEnd);
      zip.once('error', onError);
      zip.readEntry();
    });
  }

  /** The entry's data, inflated (yauzl checks the size). */
  openStream(e: ZipEntry): Promise<Readable> {
    return new Promise((resolve, reject) => this.zip.openReadStream(e.raw, (err, s) => (err || !s ? reject(err ?? new Error('no stream')) : resolve(s))));
  }

  /**
   * Writes the entry to `target` (which must not exist), checking its size and CRC-32 (yauzl checks
   * sizes only). The data is read in large slices straight from the zip file and, when deflated,
   * inflated; an entry that inflates beyond its declared size is stopped there (no zip bomb).
   * Throws ZipDataError when the entry's data cannot be trusted.
   */
  async extract(e: ZipEntry, target: string, onBytes: (n: number) => void = () => undefined): Promise<void> {
    const entry = e.raw;
    if (entry.isEncrypted()) throw new ZipDataError(`${e.name}: encrypted entries are not supported`);
    if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) throw new ZipDataError(`${e.name}: compression method ${entry.compressionMethod} is not supported`);
    const start = await new Promise<number>((resolve, reject) => this.zip.readLocalFileHeader(entry, { minimal: true }, (err, h) => (err ? reject(err) : resolve(h.fileDataStart))));
    const crc = entry.compressionMethod === 0 ? await this.copyStored(e, start, target, onBytes) : await this.inflate(e, start, target, onBytes);
    if ((crc >>> 0) !== (entry.crc32 >>> 0)) throw new ZipDataError(`${e.name}: CRC-32 mismatch, the zip is corrupt`);
  }

  /** A stored entry (recordings usually are): slices read and written directly, one read ahead of the write. */
  private async copyStored(e: ZipEntry, start: number, target: string, onBytes: (n: number) => void): Promise<number> {
    if (e.compressedSize !== e.size) throw new ZipDataError(`${e.name}: stored entry with two different sizes`);
    this.fh ??= await fsp.open(this.file, 'r');
    this.bufs ??= [Buffer.allocUnsafe(SLICE), Buffer.allocUnsafe(SLICE)];
    const out = await fsp.open(target, 'wx');
    let crc = 0;
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
        const b = this.bufs[which];
        which ^= 1;
        const { bytesRead } = await this.fh.read(b, 0, Math.min(left, b.length), pos);
        if (bytesRead === 0) throw new ZipDataError(`${e.name}: the zip ends inside this entry`);
        const slice = b.subarray(0, bytesRead);
        crc = zlib.crc32(slice, crc);
        await settle();
        writing = writeFully(out, slice).then(() => null, (err: Error) => err);
        pos += bytesRead;
        left -= bytesRead;
        onBytes(bytesRead);
      }
      await settle();
    } finally {
      await writing;
      await out.close();
    }
    return crc;
  }

  private async inflate(e: ZipEntry, start: number, target: string, onBytes: (n: number) => void): Promise<number> {
    let crc = 0;
    let size = 0;
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > e.size) return cb(new ZipDataError(`${e.name}: more data than the ${e.size} bytes declared`));
        crc = zlib.crc32(chunk, crc);
        onBytes(chunk.length);
        cb(null, chunk);
      },
    });
    const out = createWriteStream(target, { flags: 'wx', highWaterMark: SLICE });
    if (e.compressedSize === 0) {
      await pipeline(Readable.from([]), check, out);
    } else {
      const raw = createReadStream(this.file, { start, end: start + e.compressedSize - 1, highWaterMark: SLICE });
      await pipeline(raw, zlib.createInflateRaw({ chunkSize: 256 * 1024 }), check, out);
    }
    if (size !== e.size) throw new ZipDataError(`${e.name}: ${size} bytes instead of ${e.size}`);
    return crc;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.zip.close();
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close().catch(() => undefined);
  }
}

function entryName(e: yauzl.Entry): string {
  return yauzl.getFileNameLowLevel(e.generalPurposeBitFlag, e.fileNameRaw, e.extraFields, false);
}

async function writeFully(fh: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) written += (await fh.write(data, written, data.length - written)).bytesWritten;
}

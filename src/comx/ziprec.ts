/**
 * The `format=ziprec` answer (spec §2.2.1): a flat zip with `index.txt` and the recordings.
 *
 * A zip keeps its directory at the end, so the body is streamed to a temporary file first (never held
 * in memory), then read entry by entry (common/zip.ts). Recordings are extracted into a hidden staging
 * folder next to the target and renamed into place only after every wanted entry was read and
 * checked (size and CRC-32): a truncated or corrupt zip leaves nothing behind, and a partial file is
 * never visible under its final name. Entry names are reduced to a safe base name; one that tries to
 * leave the folder (`..`, absolute, drive letter) is not extracted at all.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { ZipReader, ZipDataError, type ZipEntry } from '../common/zip';
import { parseIndexBatches, type ComxCdr, type IndexItem } from './index-file';
import { insideFolder, isUnsafeEntryName, safeFileName } from './safe-name';
import { stagingPath, writeBodyToFile } from './spool';

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
  /** Names the staging folder in saveDir after the node (see spool.ts stagingPath). */
  stagingTag?: string;
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
    ? stagingPath(saveDir, opts.stagingTag, randomBytes(6).toString('hex'))
    : await fsp.mkdtemp(path.join(os.tmpdir(), 'comx-'));
  await fsp.mkdir(staging, { recursive: true });
  const zipFile = path.join(staging, 'answer.zip');
  const progress: ArchiveProgress = { phase: 'download', bytes: 0, totalBytes: opts.totalBytes ?? null, entries: 0, totalEntries: 0 };
  const report = () => opts.onProgress?.({ ...progress });
  let zip: ZipReader | null = null;
  try {
    let downloaded: number;
    try {
      downloaded = await writeBodyToFile(body, zipFile, (n) => {
        progress.bytes = n;
        report();
      });
    } catch (err) {
      throw new ArchiveError(`the zip download broke off: ${(err as Error).message}`, err);
    }
    try {
      zip = await ZipReader.open(zipFile);
    } catch (err) {
      throw new ArchiveError(`not a readable zip (truncated or corrupt): ${(err as Error).message}`, err);
    }
    const entries: ZipEntry[] = [];
    try {
      for await (const e of zip.entries()) entries.push(e);
    } catch (err) {
      throw new ArchiveError(`the zip directory is corrupt: ${(err as Error).message}`, err);
    }
    Object.assign(progress, { phase: 'extract', bytes: 0, totalBytes: entries.reduce((s, e) => s + e.size, 0), entries: 0, totalEntries: entries.length });
    report();

    const warnings: string[] = [];
    const byName = new Map<string, ZipEntry>();
    let index: ZipEntry | null = null;
    for (const e of entries) {
      const name = e.name;
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
      for await (const batch of parseIndexBatches(await zip.openStream(index), { zone: opts.zone, extended: opts.extended })) for (const item of batch) items.push(item);
    } catch (err) {
      throw new ArchiveError(`index.txt could not be read: ${(err as Error).message}`, err);
    }
    progress.entries++;
    report();

    const recordings = new Map<number, RecordingRef>();
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
      ref.size = e.size;
      if (!saveDir && e.size > attachMax) {
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
      const from = insideFolder(staging, `r-${staged.length}-${safe}`);
      try {
        await zip.extract(e, from, (n) => {
          progress.bytes += n;
          report();
        });
      } catch (err) {
        if (err instanceof ZipDataError) throw new ArchiveError(err.message, err);
        throw new ArchiveError(`${safe} could not be extracted, the zip is corrupt: ${(err as Error).message}`, err);
      }
      progress.entries++;
      report();
      staged.push({ from, ref });
    }
    for (const [name] of byName) if (!used.has(name)) warnings.push(`recording ${name} is not named by any wanted CDR`);
    await zip.close();
    zip = null;

    // everything read and checked: now make it visible
    let attachDir: string | null = null;
    if (saveDir) {
      const moved = new Map<string, string>();
      for (const s of staged) {
        const target = insideFolder(saveDir, s.ref.file);
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
    return {
      items,
      recordings,
      warnings,
      entries: entries.length,
      bytes: downloaded,
      cleanup: async () => {
        if (attachDir) await fsp.rm(attachDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (zip) await zip.close();
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

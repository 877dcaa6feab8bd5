/**
 * One comx-cdr-fetch run (seeds/002; specs/peers.md §1): turn what was asked into a request (the next
 * incremental window, a range, one call, the extension list), send it, read the answer (index text,
 * a ziprec zip, a raw recording, the users CSV), drop what an incremental run sent before, check the
 * PBX zone against the unique ids, and hand every result to the caller's hooks: `emit` (output 1),
 * `report` (output 2: malformed lines, zip warnings), `record` (state changes, journalled by the node),
 * `progress` and `warn`. Nothing here knows Node-RED.
 *
 * Delivery (design.md §5): each emitted line is remembered at once (one small journal entry); the
 * cursor moves only after the whole window was emitted, and the run waits for that entry to be stored.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { bodyText, isTransientNetworkError } from '../common/http';
import { isoUtc } from '../common/time';
import { dispositionFileName, extensionFor, toExactStamp, toRangeStamp, type ComxClient, type ComxFormat, type ComxRequest, type ComxResponse } from './client';
import { parseIndexBatches, type ComxCdr, type IndexItem, type MalformedLine } from './index-file';
import { ZoneCheck, type ZoneMismatch } from './pbx-time';
import { readLimited, saveRecording } from './recording';
import { safeFileName } from './safe-name';
import { spoolToTemp } from './spool';
import type { ComxSync, SyncEntry, SyncWindow } from './sync';
import { parseUsers } from './users-list';
import { readZipArchive, type ArchiveProgress, type RecordingRef } from './ziprec';

export type FetchMode = 'incremental' | 'range' | 'id' | 'start' | 'users';
export type FetchFormat = ComxFormat | 'raw';
export const FETCH_MODES: readonly FetchMode[] = ['incremental', 'range', 'id', 'start', 'users'];
export const FETCH_FORMATS: readonly FetchFormat[] = ['txt', 'ziprec', 'raw'];

/** Raw recordings without a folder are returned in memory up to this size when no attach limit is set. */
export const RAW_DEFAULT_MAX = 20 * 1024 * 1024;

/** Something the run cannot do; `code` names the reason (the node words it), `vars` fill it in. */
export class FetchError extends Error {
  constructor(readonly code: 'mode' | 'format' | 'rawNeedsOne' | 'noId' | 'noStart' | 'html' | 'broken', readonly vars: Record<string, string> = {}) {
    super(`${code}${Object.keys(vars).length ? ` ${JSON.stringify(vars)}` : ''}`);
    this.name = 'FetchError';
  }
}

/** What was asked: the message's values over the node's settings (undefined: not given). */
export interface FetchAsk {
  mode: unknown;
  format: unknown;
  extended: boolean;
  /** Range bounds (mode range). */
  rangeStart?: unknown;
  rangeEnd?: unknown;
  /** One call (modes id and start). */
  id?: unknown;
  exactStart?: unknown;
  /** Keep the voicemail PIN in the extension list. */
  includePin: boolean;
}

export interface FetchSettings {
  /** One output per CDR (else one per request). */
  perCdr: boolean;
  /** Keep the index in a temporary file while the flow sets the pace. */
  spool: boolean;
  /** Folder for recordings; '' or null: do not save. */
  saveDir: string | null;
  /** Attach recordings up to this size (0: never). */
  attachMaxBytes: number;
  /** Names staging files in saveDir after the node, so it can clean up after a kill. */
  stagingTag?: string;
}

export interface FetchContext {
  client: ComxClient;
  zone: string;
  host: string;
  settings: FetchSettings;
  signal?: AbortSignal;
  now?: () => number;
}

/** A message to send: topic, payload and the rest, which the node puts on a copy of the input message. */
export interface Outgoing {
  topic: string;
  payload: unknown;
  comx: Record<string, unknown>;
  [more: string]: unknown;
}

export type FetchProgress =
  | { phase: 'requesting' }
  | { phase: 'retrying'; attempt: number }
  | { phase: 'download'; bytes: number; totalBytes: number | null }
  | { phase: 'extract'; bytes: number; entries: number; totalEntries: number }
  | { phase: 'sending'; count: number };

export type FetchWarning = ({ kind: 'zone' } & ZoneMismatch) | { kind: 'malformed'; count: number; lines: number[] };

export interface FetchHooks {
  /** The incremental state, once it may be used (rejects while the cursor is lost). */
  sync(): Promise<ComxSync>;
  /** Output 1. Resolves when the next message may follow. */
  emit(out: Outgoing): Promise<void>;
  /** Output 2: malformed lines and zip warnings. */
  report(out: Outgoing): Promise<void>;
  /** Stores one state change; the run awaits it only for the cursor. */
  record(entry: SyncEntry): Promise<void> | void;
  progress(p: FetchProgress): void;
  warn(w: FetchWarning): void;
}

export type FetchResult =
  | { kind: 'upToDate' }
  | { kind: 'cdrs'; incremental: boolean; sent: number; total: number; duplicates: number; malformed: number }
  | { kind: 'users'; count: number }
  | { kind: 'recording'; size: number };

const given = (v: unknown): boolean => v !== undefined && v !== null && v !== '';

/** The node's settings a message can override. */
export interface FetchDefaults {
  mode: FetchMode;
  format: FetchFormat;
  extended: boolean;
  includePin: boolean;
  rangeStart: string;
  rangeEnd: string;
  uniqueId: string;
  exactStart: string;
}

/** What a message asks: msg.mode, format, start, end, id, extended and includePin over the node's settings. */
export function askOf(msg: Record<string, unknown>, d: FetchDefaults): FetchAsk {
  const pick = (m: unknown, setting: string) => (given(m) ? m : setting || undefined);
  return {
    mode: msg.mode ?? d.mode,
    format: msg.format ?? d.format,
    extended: msg.extended !== undefined ? msg.extended === true || msg.extended === 'true' : d.extended,
    rangeStart: pick(msg.start, d.rangeStart),
    rangeEnd: pick(msg.end, d.rangeEnd),
    id: pick(msg.id, d.uniqueId),
    exactStart: pick(msg.start, d.exactStart),
    includePin: d.includePin || msg.includePin === true,
  };
}

/** Runs one fetch. Rejects with FetchError, ComxRequestError, the client's errors or ArchiveError. */
export async function runFetch(ask: FetchAsk, ctx: FetchContext, hooks: FetchHooks): Promise<FetchResult> {
  const { client, zone, settings } = ctx;
  const now = ctx.now ?? Date.now;
  const mode = ask.mode as FetchMode;
  if (!FETCH_MODES.includes(mode)) throw new FetchError('mode', { mode: String(ask.mode) });
  const format = (mode === 'users' ? 'txt' : ask.format) as FetchFormat;
  if (!FETCH_FORMATS.includes(format)) throw new FetchError('format', { format: String(ask.format) });
  if ((mode === 'incremental' || mode === 'range') && format === 'raw') throw new FetchError('rawNeedsOne');

  let sync: ComxSync | null = null;
  let window: SyncWindow | null = null;
  let req: ComxRequest;
  if (mode === 'incremental') {
    sync = await hooks.sync();
    window = sync.window(now(), zone);
    if (!window) return { kind: 'upToDate' };
    req = { kind: 'range', format: format as ComxFormat, start: window.start, end: window.end, extended: ask.extended };
  } else if (mode === 'range') {
    req = { kind: 'range', format: format as ComxFormat, start: given(ask.rangeStart) ? toRangeStamp(ask.rangeStart, zone) : undefined, end: given(ask.rangeEnd) ? toRangeStamp(ask.rangeEnd, zone) : undefined, extended: ask.extended };
  } else if (mode === 'id') {
    if (!given(ask.id)) throw new FetchError('noId');
    req = { kind: 'id', id: String(ask.id).trim(), format, extended: ask.extended };
  } else if (mode === 'start') {
    if (!given(ask.exactStart)) throw new FetchError('noStart');
    req = { kind: 'start', start: toExactStamp(ask.exactStart, zone), format, extended: ask.extended };
  } else {
    req = { kind: 'users' };
  }

  const meta: Record<string, unknown> = { mode, format: req.kind === 'users' ? 'users' : format, url: client.url(req), pbx: ctx.host, timezone: zone };
  if (window) meta.window = { start: window.start, end: window.end, from: isoUtc(window.fromMs), to: isoUtc(window.toMs) };

  hooks.progress({ phase: 'requesting' });
  const res = await client.open(req, { signal: ctx.signal, onRetry: (_err, attempt) => hooks.progress({ phase: 'retrying', attempt }) });
  if (format !== 'raw' && /text\/html/i.test(res.contentType ?? '')) {
    // a web page where CDRs were expected: the GUI's login or error page, or the feature is off
    res.body.on('error', () => undefined);
    res.body.destroy();
    throw new FetchError('html');
  }
  if (req.kind === 'users') return users(res, ask.includePin, settings.perCdr, meta, hooks);
  if (format === 'raw') return rawRecording(res, req, settings, meta, hooks);
  const run = new IndexRun(ctx, hooks, meta, sync, window, format as ComxFormat, ask.extended);
  try {
    return await run.run(res);
  } catch (err) {
    // the answer had begun: the connection broke while it was read, not before the PBX was reached
    if (isTransientNetworkError(err) || /terminated|socket|aborted/i.test((err as Error)?.message ?? '')) {
      if (ctx.signal?.aborted) throw err;
      throw new FetchError('broken', { sent: String(run.sent), error: (err as Error).message });
    }
    throw err;
  }
}

async function users(res: ComxResponse, includePin: boolean, perCdr: boolean, meta: Record<string, unknown>, hooks: FetchHooks): Promise<FetchResult> {
  const { users: list, malformed } = await parseUsers(await bodyText({ body: res.body } as never, 16 * 1024 * 1024), includePin);
  for (const m of malformed) await hooks.report({ topic: 'comx/malformed', payload: m, comx: meta });
  if (perCdr) {
    for (const u of list) await hooks.emit({ topic: 'comx/user', payload: u, comx: meta });
  } else {
    await hooks.emit({ topic: 'comx/users', payload: list, comx: { ...meta, count: list.length } });
  }
  if (malformed.length > 0) hooks.warn({ kind: 'malformed', count: malformed.length, lines: malformed.map((m) => m.line) });
  return { kind: 'users', count: list.length };
}

async function rawRecording(res: ComxResponse, req: ComxRequest, settings: FetchSettings, meta: Record<string, unknown>, hooks: FetchHooks): Promise<FetchResult> {
  const id = req.kind === 'id' ? req.id : req.kind === 'start' ? req.start : 'recording';
  const name = safeFileName(dispositionFileName(res.contentDisposition) ?? `${id}.${extensionFor(res.contentType)}`);
  const onBytes = (bytes: number) => hooks.progress({ phase: 'download', bytes, totalBytes: res.contentLength });
  const attachMax = settings.attachMaxBytes;
  const out: Outgoing = { topic: 'comx/recording', payload: null, contentType: res.contentType, filename: name, comx: meta };
  let size: number;
  if (settings.saveDir) {
    const saved = await saveRecording(res.body, settings.saveDir, name, onBytes, settings.stagingTag);
    size = saved.size;
    out.filename = saved.path;
    out.payload = attachMax > 0 && saved.size <= attachMax ? await fsp.readFile(saved.path) : saved.path;
    out.recording = { name, file: path.basename(saved.path), path: saved.path, size, saved: true };
  } else {
    const buf = await readLimited(res.body, attachMax > 0 ? attachMax : RAW_DEFAULT_MAX, onBytes);
    size = buf.length;
    out.payload = buf;
    out.recording = { name, file: name, size, saved: false };
  }
  await hooks.emit(out);
  return { kind: 'recording', size };
}

/** Reading an index (txt, or the index of a zip) and emitting what it holds. */
class IndexRun {
  private readonly incremental: boolean;
  private readonly cdrs: ComxCdr[] = [];
  private readonly recordings: (Record<string, unknown> | null)[] = [];
  private readonly malformed: MalformedLine[] = [];
  private readonly zoneCheck: ZoneCheck;
  /** CDRs sent on so far (said when the connection breaks part-way). */
  sent = 0;
  private total = 0;
  private duplicates = 0;

  constructor(
    private readonly ctx: FetchContext,
    private readonly hooks: FetchHooks,
    private readonly meta: Record<string, unknown>,
    private readonly sync: ComxSync | null,
    private readonly window: SyncWindow | null,
    private readonly format: ComxFormat,
    private readonly extended: boolean,
  ) {
    this.incremental = sync !== null;
    this.zoneCheck = new ZoneCheck(ctx.zone);
  }

  async run(res: ComxResponse): Promise<FetchResult> {
    const { settings, zone } = this.ctx;
    const opts = { zone, extended: this.extended };
    if (this.format === 'txt') {
      const onBytes = (bytes: number) => this.hooks.progress({ phase: 'download', bytes, totalBytes: res.contentLength });
      if (settings.spool && settings.perCdr) {
        // the flow sets the pace: keep the index on disk rather than the PBX connection open
        const spooled = await spoolToTemp(res.body, onBytes);
        try {
          for await (const batch of parseIndexBatches(createReadStream(spooled.path), opts)) for (const item of batch) await this.handle(item);
        } finally {
          await spooled.cleanup();
        }
      } else {
        let bytes = 0;
        res.body.on('data', (c: Buffer) => onBytes((bytes += c.length)));
        for await (const batch of parseIndexBatches(res.body, opts)) for (const item of batch) await this.handle(item);
      }
    } else {
      const sync = this.sync;
      const archive = await readZipArchive(res.body, {
        ...opts,
        saveDir: settings.saveDir || null,
        attachMaxBytes: settings.attachMaxBytes,
        totalBytes: res.contentLength,
        stagingTag: settings.stagingTag,
        want: sync ? (c) => sync.isNew(c) : undefined,
        onProgress: (p: ArchiveProgress) => this.hooks.progress(p.phase === 'download' ? { phase: 'download', bytes: p.bytes, totalBytes: p.totalBytes } : { phase: 'extract', bytes: p.bytes, entries: p.entries, totalEntries: p.totalEntries }),
      });
      try {
        for (const w of archive.warnings) await this.hooks.report({ topic: 'comx/warning', payload: { warning: w }, comx: this.meta });
        for (const item of archive.items) await this.handle(item, item.kind === 'cdr' ? archive.recordings.get(item.cdr.line) : undefined);
      } finally {
        await archive.cleanup();
      }
    }
    return this.finish();
  }

  private async handle(item: IndexItem, ref?: RecordingRef): Promise<void> {
    const { sync, hooks } = this;
    if (item.kind === 'malformed') {
      if (sync && !sync.isNewMalformed(item.malformed.text)) return;
      this.malformed.push(item.malformed);
      await hooks.report({ topic: 'comx/malformed', payload: item.malformed, comx: this.meta });
      if (sync) this.remember(sync.markMalformed(item.malformed.text, this.window!.toMs));
      return;
    }
    this.total++;
    const cdr = item.cdr;
    this.zoneCheck.observe(cdr);
    if (sync && !sync.isNew(cdr)) {
      this.duplicates++;
      return;
    }
    const recording = ref ? await this.recordingInfo(ref) : null;
    if (this.ctx.settings.perCdr) {
      await hooks.emit({ topic: 'comx/cdr', payload: cdr, ...(recording ? { recording } : {}), comx: { ...this.meta, line: cdr.line } });
      // remembered at once: a failure later in the window never sends it again
      if (sync) this.remember(sync.markEmitted([cdr]));
    } else {
      // one message per request: a CDR counts as sent only once that message went out (finish), so a
      // failure before then leaves it to be fetched and sent again
      this.cdrs.push(cdr);
      this.recordings.push(recording);
    }
    this.sent++;
    if (this.sent % 100 === 0) hooks.progress({ phase: 'sending', count: this.sent });
  }

  /** Records a change without waiting for a store that writes asynchronously (a failure is reported by the store). */
  private remember(entry: SyncEntry): void {
    const saved = this.hooks.record(entry);
    if (saved) saved.catch(() => undefined);
  }

  private async recordingInfo(ref: RecordingRef): Promise<Record<string, unknown>> {
    const attachMax = this.ctx.settings.attachMaxBytes;
    const info: Record<string, unknown> = { name: ref.name, file: ref.file, size: ref.size, saved: ref.saved };
    if (ref.saved) info.path = ref.path;
    if (ref.missing) info.missing = ref.missing;
    if (ref.path && attachMax > 0) {
      if (ref.size <= attachMax) info.buffer = await fsp.readFile(ref.path);
      else info.attached = false;
    }
    return info;
  }

  private async finish(): Promise<FetchResult> {
    const { sync, hooks } = this;
    const zone = this.zoneCheck.verdict();
    if (zone) hooks.warn({ kind: 'zone', ...zone });
    if (!this.ctx.settings.perCdr) {
      const { cdrs } = this;
      await hooks.emit({ topic: 'comx/cdrs', payload: cdrs, recordings: this.recordings, comx: { ...this.meta, count: cdrs.length, duplicates: this.duplicates, malformed: this.malformed.length } });
      if (sync && cdrs.length > 0) this.remember(sync.markEmitted(cdrs));
    }
    if (this.malformed.length > 0) hooks.warn({ kind: 'malformed', count: this.malformed.length, lines: this.malformed.map((m) => m.line) });
    // the whole window was emitted: the cursor moves, and the run waits until that is stored
    if (sync && this.window) await hooks.record(sync.commit(this.window, (this.ctx.now ?? Date.now)()));
    return { kind: 'cdrs', incremental: this.incremental, sent: this.sent, total: this.total, duplicates: this.duplicates, malformed: this.malformed.length };
  }
}

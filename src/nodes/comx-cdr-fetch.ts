/**
 * comx-cdr-fetch: GETs `/commagui/cdr` from a Com.X PBX (seeds/002; specs/peers.md §1) when a message
 * arrives. Modes: incremental (stored cursor + overlap + dedup), range, one call by unique id or by
 * exact start, the extension list. Output 1: one message per CDR (or one per request); output 2:
 * malformed index lines and warnings. Errors go to done(err), so Catch nodes see them; an
 * incremental cursor moves only after its whole window was sent.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { HttpStatusError, isTransientNetworkError, bodyText } from '../common/http';
import { isoUtc } from '../common/time';
import { ComxAuthError, ComxRequestError, dispositionFileName, extensionFor, toExactStamp, toRangeStamp, type ComxClient, type ComxFormat, type ComxRequest, type ComxResponse, type ComxPbxConfig } from '../comx/client';
import { parseIndexBatches, parseUsers, parseComxTime, idEpochMs, type ComxCdr, type IndexItem, type MalformedLine } from '../comx/index-file';
import { readZipArchive, saveRecording, readLimited, safeFileName, spoolToTemp, ArchiveError, type RecordingRef, type ArchiveProgress } from '../comx/archive';
import { ComxSync, DEFAULT_SYNC, type SyncState, type SyncWindow } from '../comx/sync';
import { nodeState, stateFileDir } from './lib/state';
import { ThrottledStatus, count } from './lib/status';

type Mode = 'incremental' | 'range' | 'id' | 'start' | 'users';
type Format = ComxFormat | 'raw';
const MODES: Mode[] = ['incremental', 'range', 'id', 'start', 'users'];
const FORMATS: Format[] = ['txt', 'ziprec', 'raw'];

interface ComxCdrFetchDef extends NodeDef {
  pbx?: string;
  mode?: Mode;
  format?: Format;
  extended?: boolean | string;
  rangeStart?: string;
  rangeEnd?: string;
  uniqueId?: string;
  exactStart?: string;
  overlapMin?: number | string;
  safetyMin?: number | string;
  firstHours?: number | string;
  output?: 'cdr' | 'request';
  saveDir?: string;
  attachKb?: number | string;
  tick?: boolean | string;
  includePin?: boolean | string;
  stateStore?: string;
}

/** Raw recordings without a folder are returned in msg.payload up to this size when no attach limit is set. */
const RAW_DEFAULT_MAX = 20 * 1024 * 1024;
/** How long to wait for a msg.tick before giving up on the rest of a result. */
const TICK_TIMEOUT_MS = 10 * 60_000;
const SAVE_DELAY_MS = 500;

const truthy = (v: unknown) => v === true || v === 'true';
function num(v: unknown, fallback: number, min = 0): number {
  const n = Number(v);
  return v !== undefined && v !== null && String(v).trim() !== '' && Number.isFinite(n) && n >= min ? n : fallback;
}
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

export = function register(RED: NodeAPI): void {
  function ComxCdrFetch(this: Node, def: ComxCdrFetchDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const perCdr = def.output !== 'request';
    const useTick = truthy(def.tick);
    const attachMax = Math.round(num(def.attachKb, 0) * 1024);
    // a relative folder is taken from the Node-RED user directory, not from wherever the process started
    const saveDirText = (def.saveDir ?? '').trim();
    const saveDir = saveDirText && !path.isAbsolute(saveDirText) ? path.join(path.dirname(stateFileDir(RED)), saveDirText) : saveDirText;
    const syncOpts = {
      ...DEFAULT_SYNC,
      overlapMs: num(def.overlapMin, 240, 0) * 60_000,
      safetyMs: num(def.safetyMin, 2, 0) * 60_000,
      firstLookbackMs: num(def.firstHours, 24, 0) * 3_600_000,
    };

    let sync = new ComxSync(syncOpts);
    const state = nodeState<SyncState>(RED, node, 'comx-cdr-fetch', def.stateStore, () => sync.snapshot(), SAVE_DELAY_MS);
    const ready = state.ready.then((saved) => {
      if (saved) sync = new ComxSync(syncOpts, saved);
    });

    let closing = false;
    const abort = new AbortController();
    let queue: Promise<void> = Promise.resolve();
    let ticks = 0;
    let tickWaiter: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;

    const waitTick = (): Promise<void> => {
      if (ticks > 0) {
        ticks--;
        return Promise.resolve();
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          tickWaiter = null;
          reject(new Error(RED._('comx-cdr-fetch.errors.noTick', { seconds: TICK_TIMEOUT_MS / 1000 })));
        }, TICK_TIMEOUT_MS);
        tickWaiter = { resolve, reject, timer };
      });
    };
    const tick = () => {
      if (tickWaiter) {
        const w = tickWaiter;
        tickWaiter = null;
        clearTimeout(w.timer);
        w.resolve();
      } else if (queueBusy) ticks++;
    };
    let queueBusy = false;

    status.set({ fill: 'grey', shape: 'ring', text: RED._('comx-cdr-fetch.status.idle') }, true);

    node.on('input', (msg: NodeMessage & Record<string, any>, send: (m: any) => void, done: (err?: Error) => void) => {
      if (msg.tick) {
        tick();
        done();
        return;
      }
      if (msg.reset) {
        queue = queue.then(async () => {
          await ready;
          sync.reset();
          state.changed();
          await state.flush();
          status.set({ fill: 'grey', shape: 'ring', text: RED._('comx-cdr-fetch.status.reset') }, true);
        }).then(() => done(), (err: Error) => done(err));
        return;
      }
      queue = queue.then(async () => {
        queueBusy = true;
        ticks = 0;
        try {
          await run(msg, send);
          done();
        } catch (err) {
          const e = explain(err);
          status.set({ fill: 'red', shape: 'ring', text: e.message.slice(0, 32) }, true);
          done(e);
        } finally {
          queueBusy = false;
        }
      });
    });

    /** Turns low-level failures into the messages a user can act on. */
    function explain(err: unknown): Error {
      if (closing) return new Error(RED._('comx-cdr-fetch.errors.closed'));
      if (err instanceof ComxAuthError) return new Error(RED._('comx-cdr-fetch.errors.auth', { status: err.status }));
      if (err instanceof HttpStatusError) return new Error(RED._('comx-cdr-fetch.errors.http', { status: err.status, detail: err.body.slice(0, 200) }));
      if (err instanceof ArchiveError) return new Error(RED._('comx-cdr-fetch.errors.zip', { error: err.message }));
      if (err instanceof ComxRequestError) return new Error(RED._('comx-cdr-fetch.errors.request', { error: err.message }));
      if (isTransientNetworkError(err) || /timeout|terminated|socket/i.test((err as Error)?.message ?? '')) {
        return new Error(RED._('comx-cdr-fetch.errors.network', { error: (err as Error).message }));
      }
      return err instanceof Error ? err : new Error(String(err));
    }

    function pbxConfig(): ComxPbxConfig & { client: ComxClient } {
      const pbx = def.pbx ? (RED.nodes.getNode(def.pbx) as unknown as { comx?: ComxPbxConfig } | null) : null;
      if (!pbx || !pbx.comx) throw new Error(RED._('comx-cdr-fetch.errors.noPbx'));
      if (!pbx.comx.client) throw new Error(RED._('comx-cdr-fetch.errors.badPbx', { problem: pbx.comx.problem ?? '' }));
      return pbx.comx as ComxPbxConfig & { client: ComxClient };
    }

    async function run(msg: NodeMessage & Record<string, any>, send: (m: any) => void): Promise<void> {
      const pbx = pbxConfig();
      const zone = pbx.zone;
      const mode = (msg.mode ?? def.mode ?? 'incremental') as Mode;
      if (!MODES.includes(mode)) throw new ComxRequestError(RED._('comx-cdr-fetch.errors.mode', { mode: String(mode) }));
      let format = (msg.format ?? def.format ?? 'txt') as Format;
      if (!FORMATS.includes(format)) throw new ComxRequestError(RED._('comx-cdr-fetch.errors.format', { format: String(format) }));
      if ((mode === 'incremental' || mode === 'range') && format === 'raw') throw new ComxRequestError(RED._('comx-cdr-fetch.errors.rawNeedsOne'));
      const extended = msg.extended !== undefined ? truthy(msg.extended) : truthy(def.extended);
      const pick = (m: unknown, d: string | undefined) => (m !== undefined && m !== null && m !== '' ? m : d && d.trim() ? d.trim() : undefined);

      let req: ComxRequest;
      let window: SyncWindow | null = null;
      if (mode === 'incremental') {
        await ready;
        window = sync.window(Date.now(), zone);
        if (!window) {
          status.set({ fill: 'green', shape: 'ring', text: RED._('comx-cdr-fetch.status.upToDate') }, true);
          return;
        }
        req = { kind: 'range', format: format as ComxFormat, start: window.start, end: window.end, extended };
      } else if (mode === 'range') {
        const s = pick(msg.start, def.rangeStart);
        const e = pick(msg.end, def.rangeEnd);
        req = { kind: 'range', format: format as ComxFormat, start: s === undefined ? undefined : toRangeStamp(s, zone), end: e === undefined ? undefined : toRangeStamp(e, zone), extended };
      } else if (mode === 'id') {
        const id = pick(msg.id, def.uniqueId);
        if (id === undefined) throw new ComxRequestError(RED._('comx-cdr-fetch.errors.noId'));
        req = { kind: 'id', id: String(id).trim(), format, extended };
      } else if (mode === 'start') {
        const s = pick(msg.start, def.exactStart);
        if (s === undefined) throw new ComxRequestError(RED._('comx-cdr-fetch.errors.noStart'));
        req = { kind: 'start', start: toExactStamp(s, zone), format, extended };
      } else {
        req = { kind: 'users' };
        format = 'txt';
      }

      const meta: Record<string, unknown> = { mode, format: req.kind === 'users' ? 'users' : format, url: pbx.client.url(req), pbx: pbx.host, timezone: zone };
      if (window) meta.window = { start: window.start, end: window.end, from: isoUtc(window.fromMs), to: isoUtc(window.toMs) };

      status.set({ fill: 'blue', shape: 'dot', text: RED._('comx-cdr-fetch.status.requesting') }, true);
      const res = await pbx.client.open(req, {
        signal: abort.signal,
        onRetry: (_err, attempt) => status.set({ fill: 'yellow', shape: 'ring', text: RED._('comx-cdr-fetch.status.retrying', { attempt }) }, true),
      });

      if (format !== 'raw' && /text\/html/i.test(res.contentType ?? '')) {
        // a web page where CDRs were expected: the GUI's login or error page, or the feature is off
        res.body.on('error', () => undefined);
        res.body.destroy();
        throw new Error(RED._('comx-cdr-fetch.errors.html'));
      }

      const base = (): NodeMessage & Record<string, any> => {
        const m = RED.util.cloneMessage(msg) as NodeMessage & Record<string, any>;
        delete m.payload;
        return m;
      };
      let sent = 0;
      const emitter = makeEmitter(send);

      if (req.kind === 'users') {
        const { users, malformed } = await parseUsers(await bodyText({ body: res.body } as any, 16 * 1024 * 1024), truthy(def.includePin) || msg.includePin === true);
        for (const m of malformed) await emitter.second({ ...base(), topic: 'comx/malformed', payload: m, comx: meta });
        if (perCdr) {
          for (const u of users) await emitter.first({ ...base(), topic: 'comx/user', payload: u, comx: meta });
        } else {
          await emitter.first({ ...base(), topic: 'comx/users', payload: users, comx: { ...meta, count: users.length } });
        }
        reportMalformed(malformed);
        status.set({ fill: 'green', shape: 'dot', text: RED._('comx-cdr-fetch.status.users', { count: count(users.length) }) }, true);
        return;
      }

      if (format === 'raw') {
        await rawRecording(res, req, base, meta, emitter);
        return;
      }

      const incremental = mode === 'incremental';
      const cdrs: ComxCdr[] = [];
      const recs: (Record<string, unknown> | null)[] = [];
      const malformedAll: MalformedLine[] = [];
      let total = 0;
      let duplicates = 0;

      // peers.md §1.2: an Asterisk unique id starts with the epoch of the call's channel, seconds before
      // the printed local start, so the ids tell whether the configured zone matches the PBX clock
      const zoneStats = { checked: 0, off: 0, offsets: new Map<number, number>() };
      const zoneCheck = (cdr: ComxCdr) => {
        const epoch = idEpochMs(cdr.uniqueId);
        const parts = parseComxTime(cdr.startLocal);
        if (epoch === null || !parts) return;
        zoneStats.checked++;
        if (Math.abs(Date.parse(cdr.start) - epoch) <= 15 * 60_000) return;
        zoneStats.off++;
        const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
        const offset = Math.round((wall - epoch) / 900_000) * 15;
        zoneStats.offsets.set(offset, (zoneStats.offsets.get(offset) ?? 0) + 1);
      };
      const reportZone = (z: string) => {
        if (zoneStats.checked < 3 || zoneStats.off * 2 <= zoneStats.checked) return;
        const [minutes] = [...zoneStats.offsets.entries()].sort((a, b) => b[1] - a[1])[0];
        const sign = minutes < 0 ? '-' : '+';
        const abs = Math.abs(minutes);
        const utc = `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
        node.warn(RED._('comx-cdr-fetch.warnings.zone', { zone: z, offset: utc, count: zoneStats.off, total: zoneStats.checked }));
      };

      const handle = async (item: IndexItem, ref?: RecordingRef) => {
        if (item.kind === 'malformed') {
          if (incremental && !sync.isNewMalformed(item.malformed.text)) return;
          malformedAll.push(item.malformed);
          await emitter.second({ ...base(), topic: 'comx/malformed', payload: item.malformed, comx: meta });
          if (incremental) sync.markMalformed(item.malformed.text, window!.toMs);
          return;
        }
        total++;
        const cdr = item.cdr;
        zoneCheck(cdr);
        if (incremental && !sync.isNew(cdr)) {
          duplicates++;
          return;
        }
        const recording = ref ? await recordingInfo(ref) : null;
        if (perCdr) {
          await emitter.first({ ...base(), topic: 'comx/cdr', payload: cdr, ...(recording ? { recording } : {}), comx: { ...meta, line: cdr.line } });
        } else {
          cdrs.push(cdr);
          recs.push(recording);
        }
        sent++;
        // one message per request: a CDR counts as sent only once that message went out (below), so a
        // failure before then leaves it to be fetched and sent again
        if (incremental && perCdr) {
          sync.markEmitted(cdr);
          state.changed();
        }
        if (sent % 100 === 0) status.set({ fill: 'blue', shape: 'dot', text: RED._('comx-cdr-fetch.status.sending', { count: count(sent) }) });
      };

      if (format === 'txt') {
        const onBytes = (n: number) => status.set({ fill: 'blue', shape: 'dot', text: RED._('comx-cdr-fetch.status.downloading', { size: mb(n) }) });
        if (useTick && perCdr) {
          // the flow sets the pace: keep the index on disk rather than the PBX connection open
          const spooled = await spoolToTemp(res.body, onBytes);
          try {
            for await (const batch of parseIndexBatches(createReadStream(spooled.path), { zone, extended })) for (const item of batch) await handle(item);
          } finally {
            await spooled.cleanup();
          }
        } else {
          let bytes = 0;
          res.body.on('data', (c: Buffer) => onBytes((bytes += c.length)));
          for await (const batch of parseIndexBatches(res.body, { zone, extended })) for (const item of batch) await handle(item);
        }
      } else {
        const archive = await readZipArchive(res.body, {
          zone,
          extended,
          saveDir: saveDir || null,
          attachMaxBytes: attachMax,
          totalBytes: res.contentLength,
          want: incremental ? (c) => sync.isNew(c) : undefined,
          onProgress: (p: ArchiveProgress) => status.set({ fill: 'blue', shape: 'dot', text: progressText(p) }),
        });
        try {
          for (const w of archive.warnings) await emitter.second({ ...base(), topic: 'comx/warning', payload: { warning: w }, comx: meta });
          for (const item of archive.items) await handle(item, item.kind === 'cdr' ? archive.recordings.get(item.cdr.line) : undefined);
        } finally {
          await archive.cleanup();
        }
      }

      reportZone(zone);
      if (!perCdr) {
        await emitter.first({ ...base(), topic: 'comx/cdrs', payload: cdrs, recordings: recs, comx: { ...meta, count: cdrs.length, duplicates, malformed: malformedAll.length } });
        if (incremental) {
          for (const cdr of cdrs) sync.markEmitted(cdr);
          state.changed();
        }
      }
      reportMalformed(malformedAll);
      if (incremental && window) {
        sync.commit(window);
        state.changed();
        await state.flush();
      }
      const text = RED._(incremental ? 'comx-cdr-fetch.status.doneIncremental' : 'comx-cdr-fetch.status.done', { count: count(sent), total: count(total), time: new Date().toTimeString().slice(0, 5) });
      status.set({ fill: malformedAll.length ? 'yellow' : 'green', shape: 'dot', text: malformedAll.length ? `${text} · ${RED._('comx-cdr-fetch.status.malformed', { count: malformedAll.length })}` : text }, true);
    }

    function progressText(p: ArchiveProgress): string {
      if (p.phase === 'download') {
        return RED._('comx-cdr-fetch.status.downloading', { size: p.totalBytes ? `${mb(p.bytes)}/${mb(p.totalBytes)}` : mb(p.bytes) });
      }
      return RED._('comx-cdr-fetch.status.extracting', { entries: p.entries, total: p.totalEntries, size: mb(p.bytes) });
    }

    async function recordingInfo(ref: RecordingRef): Promise<Record<string, unknown>> {
      const info: Record<string, unknown> = { name: ref.name, file: ref.file, size: ref.size, saved: ref.saved };
      if (ref.saved) info.path = ref.path;
      if (ref.missing) info.missing = ref.missing;
      if (ref.path && attachMax > 0) {
        if (ref.size <= attachMax) info.buffer = await fsp.readFile(ref.path);
        else info.attached = false;
      }
      return info;
    }

    async function rawRecording(res: ComxResponse, req: ComxRequest, base: () => NodeMessage & Record<string, any>, meta: Record<string, unknown>, emitter: Emitter): Promise<void> {
      const id = req.kind === 'id' ? req.id : req.kind === 'start' ? req.start : 'recording';
      const name = safeFileName(dispositionFileName(res.contentDisposition) ?? `${id}.${extensionFor(res.contentType)}`);
      const onBytes = (n: number) => status.set({ fill: 'blue', shape: 'dot', text: RED._('comx-cdr-fetch.status.downloading', { size: mb(n) }) });
      const out: Record<string, unknown> = { ...base(), topic: 'comx/recording', contentType: res.contentType, filename: name, comx: meta };
      if (saveDir) {
        const saved = await saveRecording(res.body, saveDir, name, onBytes);
        out.filename = saved.path;
        out.payload = attachMax > 0 && saved.size <= attachMax ? await fsp.readFile(saved.path) : saved.path;
        out.recording = { name, file: path.basename(saved.path), path: saved.path, size: saved.size, saved: true };
      } else {
        const buf = await readLimited(res.body, attachMax > 0 ? attachMax : RAW_DEFAULT_MAX, onBytes);
        out.payload = buf;
        out.recording = { name, file: name, size: buf.length, saved: false };
      }
      await emitter.first(out as NodeMessage);
      status.set({ fill: 'green', shape: 'dot', text: RED._('comx-cdr-fetch.status.recording', { size: mb((out.recording as { size: number }).size) }) }, true);
    }

    function reportMalformed(lines: MalformedLine[]): void {
      if (lines.length === 0) return;
      const list = lines.slice(0, 10).map((l) => l.line).join(', ') + (lines.length > 10 ? ', …' : '');
      node.warn(RED._('comx-cdr-fetch.warnings.malformed', { count: lines.length, lines: list }));
    }

    interface Emitter {
      first(m: NodeMessage): Promise<void>;
      second(m: NodeMessage): Promise<void>;
    }

    /** Sends on output 1 (with msg.tick backpressure if enabled) or 2, yielding to the event loop now and then. */
    function makeEmitter(send: (m: any) => void): Emitter {
      let firstSent = 0;
      let n = 0;
      const breathe = async () => {
        if (++n % 200 === 0) await new Promise((r) => setImmediate(r));
        if (closing) throw new Error(RED._('comx-cdr-fetch.errors.closed'));
      };
      return {
        async first(m) {
          if (useTick && perCdr && firstSent > 0) await waitTick();
          firstSent++;
          send([m, null]);
          await breathe();
        },
        async second(m) {
          send([null, m]);
          await breathe();
        },
      };
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      abort.abort(new Error('node closed'));
      if (tickWaiter) {
        clearTimeout(tickWaiter.timer);
        tickWaiter.reject(new Error(RED._('comx-cdr-fetch.errors.closed')));
        tickWaiter = null;
      }
      status.stop();
      const settle = Promise.race([queue.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
      settle
        .then(() => state.close(removed))
        .catch(() => undefined)
        .then(() => {
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('comx-cdr-fetch', ComxCdrFetch as any);
};

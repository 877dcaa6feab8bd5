/**
 * A Com.X PBX's `/commagui/cdr` (seeds/002, spec v1.6) as a real HTTP server on 127.0.0.1, port 0.
 *
 * Semantics: times are PBX local wall clock in `zone`; a CDR exists only once the call has ended
 * (Asterisk writes at hang-up) but is selected by its start; ranges are [start, end) with 8- or
 * 12-digit bounds, a 14-digit `start` selects one call; `format=txt` answers the index, `ziprec` a flat
 * zip with index.txt and the recordings, no format the raw recording; `?users` the extension list;
 * HTTP Basic auth. Faults: slow answers, 500s, a connection reset in the middle of a zip, a truncated
 * or corrupt zip, extra (hostile) zip entries.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { ZipFile } from 'yazl';
import { formatLocal } from '../../src/common/time';

export interface SimCall {
  uniqueId: string;
  /** Start instant (UTC ms). */
  startMs: number;
  callType?: string;
  extension?: string;
  dialled?: string;
  callerId?: string;
  disposition?: string;
  duration: number;
  billsec?: number;
  /** Recording bytes; none when null/undefined. */
  recording?: Buffer | null;
  recordingName?: string;
  friendlyName?: string;
  accountCode?: string;
  channel?: string;
  dstChannel?: string;
}

export interface SimUser {
  extension: string;
  name: string;
  pin: string;
}

export interface SimFaults {
  /** Answer the next n requests with 500. */
  fail500?: number;
  /** Wait this long before answering. */
  slowMs?: number;
  /** For the next n zip answers: send part of the zip, then reset the connection. */
  resetMidZip?: number;
  /** For the next n txt answers: send part of the index, then reset the connection. */
  resetMidTxt?: number;
  /** For the next n zip answers: a complete HTTP answer whose body is only the first 60% of the zip. */
  truncateZip?: number;
  /** For the next n zip answers: flip bytes inside the first recording's data. */
  corruptZip?: number;
  /** Extra entries added to every zip, e.g. hostile names. */
  extraEntries?: { name: string; data: Buffer }[];
  /** Answer every request with a 200 HTML page (a GUI page where CDRs were expected). */
  htmlPage?: boolean;
  /** Lines added to every index (malformed ones, say). */
  extraIndexLines?: string[];
}

const pad = (n: number) => String(n).padStart(2, '0');

export class ComxSimulator {
  calls: SimCall[] = [];
  users: SimUser[] = [
    { extension: '200', name: 'Reception', pin: '1234' },
    { extension: '201', name: 'Smith, J', pin: '9876' },
  ];
  faults: SimFaults = {};
  /** Store recordings in the zip without compression (as GSM/WAV often are) instead of deflating them. */
  storeRecordings = false;
  /** Every request's path and query, in order. */
  requests: string[] = [];
  /** Requests the client gave up on before the answer was complete. */
  aborted = 0;
  /** When each request arrived and when its connection was done with it (ms), to see two clients fetching at once. */
  spans: { path: string; start: number; end: number | null }[] = [];
  url = '';
  private server: http.Server | null = null;
  private sockets = new Set<import('node:net').Socket>();

  constructor(
    readonly zone: string,
    readonly user = 'cdr',
    readonly password = 's3cret',
    /** The PBX clock (UTC ms). */
    public now: () => number = () => Date.now(),
  ) {}

  localText(ms: number): string {
    const c = formatLocal(ms, this.zone, 'compact');
    return `${c.slice(0, 4)}/${c.slice(4, 6)}/${c.slice(6, 8)}/${c.slice(8, 10)}:${c.slice(10, 12)}:${c.slice(12, 14)}`;
  }

  recordingName(c: SimCall): string {
    if (c.recordingName) return c.recordingName;
    const l = formatLocal(c.startMs, this.zone, 'compact');
    const prefix = c.callType === 'CALLTYPE_OUTBOUND' ? 'OUT' : 'g';
    return `${prefix}${c.extension ?? '200'}-${l.slice(0, 8)}-${l.slice(8)}-${c.uniqueId}.gsm`;
  }

  indexLine(c: SimCall, extended: boolean): string {
    const f = [
      c.uniqueId, this.localText(c.startMs), c.callType ?? 'CALLTYPE_INBOUND', c.extension ?? '200', c.dialled ?? '', c.callerId ?? '',
      c.disposition ?? 'CALL_ANSWERED', String(c.duration), String(c.billsec ?? Math.max(0, c.duration - 5)),
      String(c.recording ? c.recording.length : 0), c.recording ? this.recordingName(c) : '',
    ];
    if (extended) f.push(c.friendlyName ?? '', c.accountCode ?? '', c.channel ?? `SIP/${c.extension ?? '200'}-0000`, c.dstChannel ?? '');
    return f.join(',');
  }

  /** Calls whose CDR exists now: ended before the PBX clock. */
  private finished(): SimCall[] {
    const now = this.now();
    return this.calls.filter((c) => c.startMs + c.duration * 1000 <= now).sort((a, b) => a.startMs - b.startMs);
  }

  private select(q: URLSearchParams): SimCall[] | 'bad' {
    const calls = this.finished();
    const id = q.get('id');
    if (id !== null) return calls.filter((c) => c.uniqueId === id);
    const start = q.get('start');
    const end = q.get('end');
    for (const b of [start, end]) if (b !== null && !/^(\d{8}|\d{12}|\d{14})$/.test(b)) return 'bad';
    if (start !== null && start.length === 14) {
      if (end !== null) return 'bad';
      return calls.filter((c) => formatLocal(c.startMs, this.zone, 'compact') === start);
    }
    if (end !== null && end.length === 14) return 'bad';
    const from = start === null ? null : start.padEnd(14, '0');
    const to = end === null ? null : end.padEnd(14, '0');
    // wall-clock comparison, as the PBX does it
    return calls.filter((c) => {
      const l = formatLocal(c.startMs, this.zone, 'compact');
      return (from === null || l >= from) && (to === null || l < to);
    });
  }

  private zip(calls: SimCall[], extended: boolean): Promise<Buffer> {
    const z = new ZipFile();
    const lines = calls.map((c) => this.indexLine(c, extended)).concat(this.faults.extraIndexLines ?? []);
    z.addBuffer(Buffer.from(lines.map((l) => `${l}\n`).join('')), 'index.txt');
    const added = new Set<string>();
    for (const c of calls) {
      if (!c.recording) continue;
      const name = this.recordingName(c);
      if (added.has(name)) continue;
      added.add(name);
      z.addBuffer(c.recording, name, { compress: !this.storeRecordings });
    }
    // yazl refuses hostile names: add them under a placeholder of the same length, then patch the bytes
    const patches: [Buffer, Buffer][] = [];
    (this.faults.extraEntries ?? []).forEach((e, i) => {
      const name = Buffer.from(e.name);
      const placeholder = Buffer.from(`X${i}Y`.padEnd(name.length, 'q'));
      patches.push([placeholder, name]);
      z.addBuffer(e.data, placeholder.toString());
    });
    z.end();
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      z.outputStream.on('data', (c: Buffer) => chunks.push(c));
      z.outputStream.on('end', () => {
        const out = Buffer.concat(chunks);
        for (const [from, to] of patches) {
          for (let at = out.indexOf(from); at >= 0; at = out.indexOf(from, at + 1)) to.copy(out, at);
        }
        resolve(out);
      });
      z.outputStream.on('error', reject);
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${u.pathname}${u.search}`);
    const span = { path: `${u.pathname}${u.search}`, start: Date.now(), end: null as number | null };
    this.spans.push(span);
    res.on('close', () => {
      span.end = Date.now();
      if (!res.writableFinished) this.aborted++;
    });
    if (this.faults.slowMs) {
      // a client that goes away (or dies) ends the wait: no timer outlives the request
      const ms = this.faults.slowMs;
      await new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        res.once('close', () => {
          clearTimeout(t);
          r();
        });
      });
      if (res.destroyed) return;
    }
    const expected = `Basic ${Buffer.from(`${this.user}:${this.password}`).toString('base64')}`;
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="cdr"', 'content-type': 'text/plain' }).end('Unauthorized\n');
      return;
    }
    if (u.pathname !== '/commagui/cdr') {
      res.writeHead(404).end();
      return;
    }
    if (this.faults.htmlPage) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html><body>Com.X login</body></html>');
      return;
    }
    if (this.faults.fail500) {
      this.faults.fail500--;
      res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error\n');
      return;
    }
    const q = u.searchParams;
    if (q.has('users')) {
      res.writeHead(200, { 'content-type': 'text/csv' }).end(this.users.map((x) => `${x.extension},${x.name.includes(',') ? `"${x.name}"` : x.name},${x.pin}\n`).join(''));
      return;
    }
    const selected = this.select(q);
    if (selected === 'bad') {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad date\n');
      return;
    }
    const extended = q.has('extended');
    const format = q.get('format');
    if (format === 'txt') {
      const lines = selected.map((c) => this.indexLine(c, extended)).concat(this.faults.extraIndexLines ?? []);
      const text = lines.map((l) => `${l}\n`).join('');
      if (this.faults.resetMidTxt) {
        this.faults.resetMidTxt--;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(text)) });
        res.write(text.slice(0, Math.floor(text.length / 2)), () => setTimeout(() => req.socket.destroy(), 20));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
      return;
    }
    if (format === 'ziprec') {
      let body = await this.zip(selected, extended);
      if (this.faults.resetMidZip) {
        this.faults.resetMidZip--;
        res.writeHead(200, { 'content-type': 'application/zip', 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => req.socket.destroy(), 20));
        return;
      }
      if (this.faults.truncateZip) {
        this.faults.truncateZip--;
        body = body.subarray(0, Math.floor(body.length * 0.6));
      } else if (this.faults.corruptZip) {
        this.faults.corruptZip--;
        body = Buffer.from(body);
        // the first recording's data starts after index.txt's local header and data; flip bytes in the middle of the file
        const at = Math.floor(body.length / 2);
        for (let i = 0; i < 16; i++) body[at + i] ^= 0xa5;
      }
      res.writeHead(200, { 'content-type': 'application/zip', 'content-length': String(body.length) }).end(body);
      return;
    }
    if (format === null && (q.has('id') || q.has('start'))) {
      const c = selected[0];
      if (!c || !c.recording) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no recording\n');
        return;
      }
      const name = this.recordingName(c);
      res.writeHead(200, {
        'content-type': name.endsWith('.wav') ? 'audio/x-wav' : 'audio/x-gsm',
        'content-disposition': `attachment; filename="${name}"`,
        'content-length': String(c.recording.length),
      }).end(c.recording);
      return;
    }
    res.writeHead(400, { 'content-type': 'text/plain' }).end('unknown format\n');
  }

  /** Listens on 127.0.0.1, port 0; with `tls` (PEM key and certificate) over https. */
  async start(tls?: { key: string; cert: string }): Promise<string> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((err) => {
        res.writeHead(500).end(String(err));
      });
    };
    this.server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    this.server.on(tls ? 'secureConnection' : 'connection', (s: import('node:net').Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** A GSM-like recording: `seconds` × 1650 bytes, deterministic per seed. */
export function fakeRecording(seconds: number, seed = 1): Buffer {
  const b = Buffer.alloc(Math.max(1, Math.round(seconds * 1650)));
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < b.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 16) & 0xff;
  }
  return b;
}

/** `count` calls from `fromMs`, one every `everyMs`, each `duration` s, with recordings; ids follow Asterisk (epoch.seq). */
export function generateCalls(fromMs: number, count: number, everyMs: number, opts: { duration?: number; recordings?: boolean; seq?: number } = {}): SimCall[] {
  const out: SimCall[] = [];
  for (let i = 0; i < count; i++) {
    const startMs = fromMs + i * everyMs;
    const duration = opts.duration ?? 30 + (i % 7);
    const outbound = i % 3 === 1;
    out.push({
      uniqueId: `${Math.floor(startMs / 1000) - 1}.${(opts.seq ?? 100) + i}`,
      startMs,
      callType: outbound ? 'CALLTYPE_OUTBOUND' : 'CALLTYPE_INBOUND',
      extension: String(200 + (i % 5)),
      dialled: outbound ? `021555${pad(i % 100)}` : '',
      callerId: outbound ? '' : `082444${pad(i % 100)}`,
      disposition: i % 5 === 4 ? 'CALL_NOANSWER' : 'CALL_ANSWERED',
      duration,
      billsec: i % 5 === 4 ? 0 : duration - 3,
      recording: opts.recordings === false || i % 5 === 4 ? null : fakeRecording(duration / 10, i + 1),
    });
  }
  return out;
}

/**
 * ccfs-callback-in: the callBackURL CC-FS POSTs to when a bill file is ready (specs/ccfs.md §4, §2.9).
 * Verifies the auth-v2 signature over the raw body and the Host header as received, with a clock-skew
 * window and a replay cache; optionally downloads and parses the file. Answers 200
 * {"resultCode":"0","resultDesc":"success"} only after the message(s) were sent on; a callback for a file
 * already delivered is answered 200 and not sent on again (remembered across restarts).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import type { CcfsAccount } from '../ccfs/account';
import { CallbackGuard, parseCallbackBody, CallbackBodyError, type CallbackState, type CallbackBody } from '../ccfs/callback';
import { readBillFile, emptySummary } from '../ccfs/bill-file';
import { CcfsResultError, CcfsAuthError } from '../ccfs/client';
import { plainAddress } from '../common/http-auth';
import { normalisePath, effectivePath, readBody, BodyTooLargeError, type Handler } from './lib/http-endpoint';
import { httpNodesDisabled, mountReceiver, limitedWarn } from './lib/receiver';
import { captureRawBodies, capturedBody } from './lib/raw-capture';
import { nodeState } from './lib/state';
import { ThrottledStatus, count } from './lib/status';

interface CallbackDef extends NodeDef {
  account?: string;
  path?: string;
  verify?: 'verify' | 'log' | 'off';
  skewMinutes?: number | string;
  checkAccessKey?: boolean | string;
  signedHost?: string;
  download?: boolean | string;
  encoding?: string;
  maxBodyKb?: number | string;
  stateStore?: string;
}

const SUCCESS = JSON.stringify({ resultCode: '0', resultDesc: 'success' });
const SAVE_DELAY_MS = 500;

export = function register(RED: NodeAPI): void {
  function CcfsCallbackIn(this: Node, def: CallbackDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const route = normalisePath(def.path, '/ccfs/callback');
    const url = effectivePath(RED.settings as any, route);
    const mode = def.verify === 'log' || def.verify === 'off' ? def.verify : 'verify';
    const skew = Number(def.skewMinutes);
    const maxSkewMs = (Number.isFinite(skew) && skew > 0 ? skew : 15) * 60_000;
    const checkAk = !(def.checkAccessKey === false || def.checkAccessKey === 'false');
    const signedHost = (def.signedHost ?? '').trim() || undefined;
    const download = def.download === true || def.download === 'true';
    const encoding = (def.encoding ?? '').trim() || 'utf8';
    const kb = Number(def.maxBodyKb);
    const limit = Math.round((Number.isFinite(kb) && kb > 0 ? kb : 64) * 1024);
    const accountNode = def.account ? (RED.nodes.getNode(def.account) as (Node & { ccfs?: CcfsAccount }) | null) : null;
    const account = accountNode?.ccfs ?? null;
    let delivered = 0;
    let duplicates = 0;

    if (!account) {
      node.error(RED._('ccfs-callback-in.errors.noAccount'), { topic: 'error', payload: null } as NodeMessage);
      status.set({ fill: 'red', shape: 'ring', text: RED._('ccfs-callback-in.status.noAccount') }, true);
      return;
    }
    if (httpNodesDisabled(RED, node, 'ccfs-callback-in', status)) return;
    if (mode !== 'verify') node.warn(RED._(`ccfs-callback-in.errors.mode_${mode}`));

    let guard = new CallbackGuard({ maxSkewMs });
    const state = nodeState<CallbackState>(RED, node, 'ccfs-callback-in', def.stateStore, () => guard.snapshot(), SAVE_DELAY_MS);
    const ready = state.ready.then((saved) => {
      if (saved) guard = new CallbackGuard({ maxSkewMs }, saved);
    });
    const inFlight = new Map<string, Promise<boolean>>();
    const controller = new AbortController();

    const warnOnce = limitedWarn(node);

    const answer = (res: any, code: number, body: string) => {
      if (res.headersSent) return;
      res.status(code).set('Content-Type', 'application/json;charset=UTF-8').send(body);
    };

    /** Sends the messages for one callback; resolves when they are all sent. */
    async function deliver(cb: CallbackBody, meta: Record<string, unknown>): Promise<void> {
      const request = await account!.find(cb.responseId, cb.billFileName);
      const ccfs = { ...meta, responseId: cb.responseId, billFileName: cb.billFileName, accountId: cb.accountId, request, requestNode: request?.node ?? null };
      const notice = { responseId: cb.responseId, billFileName: cb.billFileName, accountId: cb.accountId, version: cb.version };
      if (!download) {
        node.send([{ topic: 'ccfs/callback', payload: notice, ccfs } as NodeMessage, null]);
        return;
      }
      status.set({ fill: 'blue', shape: 'dot', text: RED._('ccfs-callback-in.status.downloading') }, true);
      const file = path.join(os.tmpdir(), `cdrflow-ccfs-${node.id.replace(/[^A-Za-z0-9_-]/g, '_')}-${randomBytes(6).toString('hex')}.zip`);
      try {
        const got = await account!.client().downloadBillFile(cb.billFileName, file, { signal: controller.signal });
        const summary = emptySummary();
        let rows = 0;
        for await (const item of readBillFile(file, { timeZone: account!.config.timeZone, encoding }, summary)) {
          const base = { ...ccfs, file: item.file };
          if (item.kind === 'call') {
            rows += item.call.rows.length;
            node.send([null, { topic: 'ccfs/call', payload: item.call.rows, ccfs: { ...base, call_id: item.call.call_id, complete: item.call.complete } } as NodeMessage]);
          } else {
            rows++;
            node.send([null, { topic: 'ccfs/record', payload: item.row, ccfs: { ...base, call_id: item.row.call_id } } as NodeMessage]);
          }
          if (rows % 1000 === 0) status.set({ fill: 'blue', shape: 'dot', text: RED._('ccfs-callback-in.status.rows', { count: count(rows) }) });
        }
        if (summary.problemCount > 0) node.warn(RED._('ccfs-callback-in.errors.fileProblems', { file: cb.billFileName, count: summary.problemCount, first: `${summary.problems[0].file}:${summary.problems[0].line}: ${summary.problems[0].message}` }));
        node.send([{ topic: 'ccfs/file', payload: { ...notice, bytes: got.bytes, summary }, ccfs } as NodeMessage, null]);
      } finally {
        await fsp.rm(file, { force: true }).catch(() => undefined);
      }
    }

    const post: Handler = (req, res) => {
      const remote = plainAddress(req.ip ?? req.socket.remoteAddress);
      const original = String(req.originalUrl ?? req.url ?? '/');
      const q = original.indexOf('?');
      const uri = q >= 0 ? original.slice(0, q) : original;
      const query: Record<string, string[]> = {};
      if (q >= 0) for (const [k, v] of new URLSearchParams(original.slice(q + 1))) (query[k] ??= []).push(v);
      const meta: Record<string, unknown> = { receiver: node.id, path: url, remoteAddress: remote };
      let signature: string | null = null;
      // The exact bytes: read here, or by the capture in front of the editor's body parsers. If some
      // other parser consumed the stream anyway, the parsed JSON is re-serialised (compact, like CC-FS
      // sends it) and the message says so.
      const captured = capturedBody(req);
      let reserialised = false;
      const raw: Promise<Buffer> = captured instanceof Error ? Promise.reject(captured)
        : captured ? Promise.resolve(captured)
          : req._body ? Promise.resolve(reserialise(req.body)).then((b) => { reserialised = true; return b; })
            : readBody(req, limit);
      raw
        .then(async (body) => {
          if (reserialised) meta.bodyReserialised = true;
          await ready;
          if (mode !== 'off') {
            const check = guard.check({ method: req.method ?? 'POST', uri, query, headers: req.headers as Record<string, string>, body },
              { secretKey: account!.config.secretKey, accessKey: checkAk ? account!.config.accessKey : undefined, hostOverride: signedHost });
            if (!check.ok) {
              const reason = RED._(`ccfs-callback-in.refusal.${check.reason}`);
              if (mode === 'verify') {
                answer(res, 401, JSON.stringify({ resultCode: '401', resultDesc: 'unauthorized' }));
                warnOnce(check.reason, RED._('ccfs-callback-in.errors.refused', { remote, reason, detail: check.detail })
                  + (reserialised ? ` ${RED._('ccfs-callback-in.errors.reserialised')}` : ''));
                status.set({ fill: 'yellow', shape: 'ring', text: `401: ${reason}`.slice(0, 40) }, true);
                return;
              }
              warnOnce(check.reason, RED._('ccfs-callback-in.errors.acceptedUnverified', { remote, reason, detail: check.detail }));
              meta.verified = false;
            } else {
              meta.verified = true;
              // the AK is a credential: only its last four characters, enough to tell two keys apart
              meta.signedBy = `…${check.verified.accessKey.slice(-4)}`;
              meta.signedAt = check.verified.timestamp;
              signature = check.verified.signature;
              state.changed();
            }
          } else {
            meta.verified = false;
          }
          let cb: CallbackBody;
          try {
            cb = parseCallbackBody(body);
          } catch (err) {
            if (!(err instanceof CallbackBodyError)) throw err;
            answer(res, 400, JSON.stringify({ resultCode: '400', resultDesc: err.message }));
            node.error(RED._('ccfs-callback-in.errors.badBody', { error: err.message }), { topic: 'error', payload: body.subarray(0, 2048).toString('utf8'), ccfs: meta } as NodeMessage);
            status.set({ fill: 'red', shape: 'ring', text: RED._('ccfs-callback-in.status.badBody') }, true);
            return;
          }
          const name = cb.billFileName;
          const running = inFlight.get(name);
          if (running) {
            // the same file is being delivered right now: answer as that delivery ends
            const ok = await running;
            duplicates++;
            if (ok) answer(res, 200, SUCCESS);
            else answer(res, 503, JSON.stringify({ resultCode: '503', resultDesc: 'not delivered, try again' }));
            return;
          }
          if (guard.isDelivered(name)) {
            duplicates++;
            answer(res, 200, SUCCESS);
            status.set({ fill: 'green', shape: 'dot', text: RED._('ccfs-callback-in.status.count', { url, count: count(delivered), dup: count(duplicates) }) });
            return;
          }
          const job = deliver(cb, meta).then(() => true, (err: Error) => {
            const text = err instanceof CcfsResultError ? `${err.code}: ${err.meaning}`
              : err instanceof CcfsAuthError ? RED._(err.status === 403 ? 'ccfs-callback-in.status.locked' : 'ccfs-callback-in.status.unauthorized') : err.message;
            // 503: CC-FS calls back again later (every 10 minutes), when the file may be ready
            answer(res, 503, JSON.stringify({ resultCode: '503', resultDesc: 'not delivered, try again' }));
            node.error(RED._('ccfs-callback-in.errors.notDelivered', { file: name, error: err.message }), { topic: 'error', payload: { billFileName: name, responseId: cb.responseId, accountId: cb.accountId }, ccfs: meta, error: err } as unknown as NodeMessage);
            status.set({ fill: 'red', shape: 'ring', text: text.slice(0, 40) }, true);
            return false;
          });
          inFlight.set(name, job);
          const ok = await job;
          inFlight.delete(name);
          if (!ok) {
            if (signature) guard.release(signature);
            return;
          }
          guard.markDelivered(name);
          state.changed();
          delivered++;
          answer(res, 200, SUCCESS);
          status.set({ fill: 'green', shape: 'dot', text: RED._('ccfs-callback-in.status.count', { url, count: count(delivered), dup: count(duplicates) }) });
        })
        .catch((err: Error) => {
          if (err instanceof BodyTooLargeError) {
            res.setHeader('Connection', 'close');
            answer(res, 413, JSON.stringify({ resultCode: '413', resultDesc: 'body too large' }));
            node.error(RED._('ccfs-callback-in.errors.tooLarge', { limit: count(limit) }), { topic: 'error', payload: null, ccfs: meta } as NodeMessage);
          } else {
            answer(res, 503, JSON.stringify({ resultCode: '503', resultDesc: 'not delivered, try again' }));
            node.error(RED._('ccfs-callback-in.errors.internal', { error: err.message }), { topic: 'error', payload: null, ccfs: meta } as NodeMessage);
          }
          status.set({ fill: 'red', shape: 'ring', text: err.message.slice(0, 40) }, true);
        });
    };
    const endpoint = mountReceiver(RED, node, 'ccfs-callback-in', url, [route], post, status);
    let rawCapture: { close(): void } | null = null;
    if (endpoint) {
      rawCapture = captureRawBodies((RED as any).server, RED.settings as any, [route], limit);
      const problem = account.problem();
      if (problem) status.set({ fill: 'red', shape: 'ring', text: RED._('ccfs-callback-in.status.badAccount') }, true);
      else status.set({ fill: 'green', shape: 'ring', text: url }, true);
    }

    node.on('close', (removed: boolean, done: () => void) => {
      endpoint?.close();
      rawCapture?.close();
      controller.abort(new Error('node closed'));
      status.stop();
      Promise.allSettled([...inFlight.values()])
        .then(() => state.close(removed))
        .catch(() => undefined)
        .then(() => {
          node.status({});
          done();
        });
    });
  }

  function reserialise(parsed: unknown): Buffer {
    if (Buffer.isBuffer(parsed)) return parsed;
    if (typeof parsed === 'string') return Buffer.from(parsed, 'utf8');
    if (parsed && typeof parsed === 'object' && Object.keys(parsed).length > 0) return Buffer.from(JSON.stringify(parsed), 'utf8');
    return Buffer.alloc(0);
  }

  RED.nodes.registerType('ccfs-callback-in', CcfsCallbackIn as any);
};

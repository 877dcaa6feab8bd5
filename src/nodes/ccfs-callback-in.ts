/**
 * ccfs-callback-in: the callBackURL CC-FS POSTs to when a bill file is ready (specs/ccfs.md §4, §2.9).
 * Verifies the auth-v2 signature over the raw body and the Host header as received, with a clock-skew
 * window and a replay cache; optionally downloads and parses the file. Answers 200
 * {"resultCode":"0","resultDesc":"success"} only after the message(s) were sent on and what the answer
 * stands for (the delivered file, the accepted signature) was journaled; a callback for a file already
 * delivered is answered 200 and not sent on again, also after a restart or a kill right after the answer.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import type { CcfsAccount } from '../ccfs/account';
import { CallbackGuard, parseCallbackBody, CallbackBodyError, type CallbackBody } from '../ccfs/callback';
import { readBillFile, emptySummary } from '../ccfs/bill-file';
import { CcfsResultError, CcfsAuthError } from '../ccfs/client';
import { plainAddress } from '../common/http-auth';
import { normalisePath, effectivePath, readBody, BodyTooLargeError, type Handler } from './lib/http-endpoint';
import { httpNodesDisabled, mountReceiver, limitedWarn } from './lib/receiver';
import { captureRawBodies, capturedBody } from './lib/raw-capture';
import { nodeState, serveStoreList } from './lib/state';
import { properties } from './lib/props';
import { useConfig, ConfigProblem } from './lib/config';
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
const RETRY = JSON.stringify({ resultCode: '503', resultDesc: 'not delivered, try again' });

export = function register(RED: NodeAPI): void {
  serveStoreList(RED);

  function CcfsCallbackIn(this: Node, def: CallbackDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const status = new ThrottledStatus(node);
    const route = normalisePath(prop.text('path'), '/ccfs/callback');
    const url = effectivePath(RED.settings as any, route);
    // without signature verification anyone who reaches the port can post: the status says so
    const where = prop.choice('verify', ['verify', 'log', 'off'], 'verify') === 'verify' ? url : RED._('ccfs-callback-in.status.open', { url });
    const mode = prop.choice('verify', ['verify', 'log', 'off'], 'verify');
    const maxSkewMs = prop.number('skewMinutes', 15, { positive: true }) * 60_000;
    const checkAk = prop.flag('checkAccessKey', true);
    const signedHost = prop.text('signedHost') || undefined;
    const download = prop.flag('download', false);
    const encoding = prop.text('encoding', 'utf8');
    const limit = Math.round(prop.number('maxBodyKb', 64, { positive: true }) * 1024);
    // a missing or unusable account is reported now, and again with every callback (answered 503)
    const config = useConfig<CcfsAccount>(RED, node, 'ccfs-callback-in', def.account, status);
    let delivered = 0;
    let duplicates = 0;

    if (httpNodesDisabled(RED, node, 'ccfs-callback-in', status)) return;
    if (mode !== 'verify') node.warn(RED._(`ccfs-callback-in.errors.mode_${mode}`));

    // the guard the keeper restored (snapshot and journal replayed) is the live one
    let guard = new CallbackGuard({ maxSkewMs });
    const state = nodeState<CallbackGuard>(RED, node, {
      type: 'ccfs-callback-in',
      store: prop.text('stateStore'),
      restore: (saved, journal) => (guard = CallbackGuard.restore(saved, journal, { maxSkewMs })),
      snapshot: () => guard.snapshot(),
    });
    /** Journals what a 200 answer stands for; resolves once it is durable. */
    const remember = async (what: { billFileName?: string; signature?: string | null }): Promise<void> => {
      const entry = guard.commit(what);
      if (entry) await state.record(entry);
    };
    const inFlight = new Map<string, Promise<boolean>>();
    const controller = new AbortController();
    // set on close: a callback still being read is answered 503, as the state is being closed
    let closing = false;

    const warnOnce = limitedWarn(node);

    const answer = (res: any, code: number, body: string) => {
      if (res.headersSent) return;
      res.status(code).set('Content-Type', 'application/json;charset=UTF-8').send(body);
    };

    /** Sends the messages for one callback; resolves when they are all sent. */
    async function deliver(account: CcfsAccount, cb: CallbackBody, meta: Record<string, unknown>): Promise<void> {
      const request = await account.find(cb.responseId, cb.billFileName);
      const ccfs = { ...meta, responseId: cb.responseId, billFileName: cb.billFileName, accountId: cb.accountId, request, requestNode: request?.node ?? null };
      const notice = { responseId: cb.responseId, billFileName: cb.billFileName, accountId: cb.accountId, version: cb.version };
      if (!download) {
        node.send([{ topic: 'ccfs/callback', payload: notice, ccfs } as NodeMessage, null]);
        return;
      }
      status.set({ fill: 'blue', shape: 'dot', text: RED._('ccfs-callback-in.status.downloading') }, true);
      const file = path.join(os.tmpdir(), `cdrflow-ccfs-${node.id.replace(/[^A-Za-z0-9_-]/g, '_')}-${randomBytes(6).toString('hex')}.zip`);
      try {
        const got = await account.client().downloadBillFile(cb.billFileName, file, { signal: controller.signal });
        const summary = emptySummary();
        let rows = 0;
        for await (const item of readBillFile(file, { timeZone: account.config.timeZone, encoding }, summary)) {
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
          await state.ready;
          if (closing) {
            answer(res, 503, RETRY);
            return;
          }
          const account = config.get();
          if (mode !== 'off') {
            const check = guard.check({ method: req.method ?? 'POST', uri, query, headers: req.headers as Record<string, string>, body },
              { secretKey: account.config.secretKey, accessKey: checkAk ? account.config.accessKey : undefined, hostOverride: signedHost });
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
            if (!ok) {
              if (signature) guard.release(signature);
              answer(res, 503, RETRY);
              return;
            }
            await remember({ signature });
            answer(res, 200, SUCCESS);
            return;
          }
          if (guard.isDelivered(name)) {
            duplicates++;
            await remember({ signature });
            answer(res, 200, SUCCESS);
            status.set({ fill: 'green', shape: 'dot', text: RED._('ccfs-callback-in.status.count', { url: where, count: count(delivered), dup: count(duplicates) }) });
            return;
          }
          const job = deliver(account, cb, meta).then(() => true, (err: Error) => {
            const text = err instanceof CcfsResultError ? `${err.code}: ${err.meaning}`
              : err instanceof CcfsAuthError ? RED._(err.status === 403 ? 'ccfs-callback-in.status.locked' : 'ccfs-callback-in.status.unauthorized') : err.message;
            // 503: CC-FS calls back again later (every 10 minutes), when the file may be ready
            answer(res, 503, RETRY);
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
          // on disk (the file store) before the answer: a resend after a kill is still a duplicate
          await remember({ billFileName: name, signature });
          delivered++;
          answer(res, 200, SUCCESS);
          status.set({ fill: 'green', shape: 'dot', text: RED._('ccfs-callback-in.status.count', { url: where, count: count(delivered), dup: count(duplicates) }) });
        })
        .catch((err: Error) => {
          let text = err.message;
          if (err instanceof BodyTooLargeError) {
            res.setHeader('Connection', 'close');
            answer(res, 413, JSON.stringify({ resultCode: '413', resultDesc: 'body too large' }));
            node.error(RED._('ccfs-callback-in.errors.tooLarge', { limit: count(limit) }), { topic: 'error', payload: null, ccfs: meta } as NodeMessage);
          } else if (err instanceof ConfigProblem) {
            // the account cannot be used: CC-FS calls back again later, when it may be fixed
            answer(res, 503, RETRY);
            node.error(err.message, { topic: 'error', payload: null, ccfs: meta } as NodeMessage);
            text = RED._('ccfs-callback-in.status.badConfig');
          } else {
            answer(res, 503, RETRY);
            node.error(RED._('ccfs-callback-in.errors.internal', { error: err.message }), { topic: 'error', payload: null, ccfs: meta } as NodeMessage);
          }
          status.set({ fill: 'red', shape: 'ring', text: text.slice(0, 40) }, true);
        });
    };
    const endpoint = mountReceiver(RED, node, 'ccfs-callback-in', url, [route], post, status);
    let rawCapture: { close(): void } | null = null;
    if (endpoint) {
      rawCapture = captureRawBodies((RED as any).server, RED.settings as any, [route], limit);
      if (config.problem === null) status.set({ fill: where === url ? 'green' : 'yellow', shape: 'ring', text: where }, true);
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
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

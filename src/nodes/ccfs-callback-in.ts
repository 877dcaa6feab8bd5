/**
 * ccfs-callback-in: the callBackURL CC-FS POSTs to when a bill file is ready (specs/ccfs.md §4, §2.9).
 * Verifies the auth-v2 signature over the raw body and the Host header as received, with a clock-skew
 * window and a replay cache. Without download it sends the callback on, journals it, then answers 200
 * {"resultCode":"0","resultDesc":"success"}. With download it journals a job and answers 200 at once
 * (CC-FS calls again when an answer is late), then downloads, parses and sends the file's rows in the
 * background with its own retries (src/ccfs/jobs.ts); a job survives a restart and is done once per
 * file. A callback for a file already delivered or accepted is answered 200 and not handled again,
 * also after a restart or a kill right after the answer.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { NodeAPI, Node, NodeDef, NodeMessage, NodeStatus } from 'node-red';
import type { CcfsAccount } from '../ccfs/account';
import { CallbackGuard, parseCallbackBody, CallbackBodyError, type CallbackBody, type BillJob } from '../ccfs/callback';
import { readBillFile, emptySummary } from '../ccfs/bill-file';
import { CcfsResultError } from '../ccfs/client';
import { JobRunner, jobVerdict, type JobEvent } from '../ccfs/jobs';
import type { Lockout } from '../ccfs/lockout';
import { plainAddress } from '../common/http-auth';
import { normalisePath, effectivePath, readBody, BodyTooLargeError, type Handler } from './lib/http-endpoint';
import { httpNodesDisabled, mountReceiver, limitedWarn } from './lib/receiver';
import { captureRawBodies, capturedBody } from './lib/raw-capture';
import { nodeState } from './lib/state';
import { properties } from './lib/props';
import { useConfig, configStatus, ConfigProblem } from './lib/config';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

interface CallbackDef extends NodeDef {
  account?: string;
  path?: string;
  verify?: 'verify' | 'log' | 'off';
  skewMinutes?: number | string;
  checkAccessKey?: boolean | string;
  signedHost?: string;
  download?: boolean | string;
  encoding?: string;
  retries?: number | string;
  retryDelay?: number | string;
  maxBodyKb?: number | string;
  stateStore?: string;
}

const SUCCESS = JSON.stringify({ resultCode: '0', resultDesc: 'success' });
const RETRY = JSON.stringify({ resultCode: '503', resultDesc: 'not delivered, try again' });

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CcfsCallbackIn(this: Node, def: CallbackDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const status = new ThrottledStatus(node);
    const route = normalisePath(prop.text('path'), '/ccfs/callback');
    const url = effectivePath(RED.settings as any, route);
    const mode = prop.choice('verify', ['verify', 'log', 'off'], 'verify');
    // without signature verification anyone who reaches the port can post: the status says so
    const where = mode === 'verify' ? url : RED._('ccfs-callback-in.status.open', { url });
    const maxSkewMs = prop.number('skewMinutes', 15, { positive: true }) * 60_000;
    const checkAk = prop.flag('checkAccessKey', true);
    const signedHost = prop.text('signedHost') || undefined;
    const download = prop.flag('download', false);
    const encoding = prop.text('encoding', 'utf8');
    const retries = prop.number('retries', 5, { min: 0, max: 100, integer: true });
    const retryDelayMs = prop.seconds('retryDelay', 30, { positive: true });
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
    /** Journals what a 200 answer (or a job's progress) stands for; resolves once it is durable. */
    const remember = async (what: { billFileName?: string; signature?: string | null; job?: BillJob }): Promise<void> => {
      const entry = guard.commit(what);
      if (entry) await state.record(entry);
    };
    // set on close: a callback still being read is answered 503, as the state is being closed
    let closing = false;
    const warnOnce = limitedWarn(node);
    const tmpPrefix = `cdrflow-ccfs-${node.id.replace(/[^A-Za-z0-9_-]/g, '_')}-`;

    // ---- status: what the node is doing, the account's lock-out first
    let lockout: Lockout | null = null;
    let rows = 0;
    let failure: string | null = null;
    // a fault that lasts until the next deploy (no usable account, the path taken) stays shown
    let standing: NodeStatus | null = config.problem === null ? null : configStatus(RED, 'ccfs-callback-in', config);
    const showStatus = (immediate = false) => status.set(() => {
      if (standing) return standing;
      if (lockout) return { fill: 'red', shape: 'ring', text: RED._('ccfs-callback-in.status.lockedOut', { status: lockout.status }) };
      const c = runner.counts;
      if (c.running) {
        const what = rows > 0 ? RED._('ccfs-callback-in.status.rows', { count: count(rows) }) : RED._('ccfs-callback-in.status.downloading');
        return { fill: 'blue', shape: 'dot', text: c.pending > 0 ? RED._('ccfs-callback-in.status.andPending', { what, pending: c.pending }) : what };
      }
      if (c.pending > 0) return { fill: 'yellow', shape: 'ring', text: RED._('ccfs-callback-in.status.pending', { pending: c.pending }) };
      if (failure) return { fill: 'red', shape: 'ring', text: failure.slice(0, 40) };
      return { fill: 'green', shape: 'dot', text: RED._('ccfs-callback-in.status.count', { url: where, count: count(delivered), dup: count(duplicates) }) };
    }, immediate);
    const unwatch = config.problem !== null ? () => undefined : config.get().lock.watch((l) => {
      lockout = l;
      showStatus(true);
    });

    const answer = (res: any, code: number, body: string) => {
      if (res.headersSent) return;
      res.status(code).set('Content-Type', 'application/json;charset=UTF-8').send(body);
    };

    /** What every message about a callback carries. */
    async function describe(account: CcfsAccount, cb: Pick<CallbackBody, 'responseId' | 'billFileName' | 'accountId' | 'version'>, meta: Record<string, unknown>) {
      const request = await account.find(cb.responseId, cb.billFileName);
      const ccfs = { ...meta, responseId: cb.responseId, billFileName: cb.billFileName, accountId: cb.accountId, request, requestNode: request?.node ?? null };
      const notice = { responseId: cb.responseId, billFileName: cb.billFileName, accountId: cb.accountId, version: cb.version };
      return { ccfs, notice };
    }

    // ---- the background jobs (download mode)
    const resumed = new Set<string>();
    /** Downloads one job's file, sends its rows on (output 2), then its summary (output 1). */
    async function work(job: BillJob, signal: AbortSignal): Promise<void> {
      const account = config.get();
      const { ccfs, notice } = await describe(account, { responseId: job.responseId, billFileName: job.file, accountId: job.accountId, version: job.version }, job.meta);
      // rows of an attempt after one cut off in the middle may have been sent before
      Object.assign(ccfs, { attempt: job.attempts + 1, resumed: resumed.has(job.file) });
      rows = 0;
      showStatus(true);
      const file = path.join(os.tmpdir(), `${tmpPrefix}${randomBytes(6).toString('hex')}.zip`);
      try {
        const got = await account.client().downloadBillFile(job.file, file, { signal });
        const summary = emptySummary();
        for await (const item of readBillFile(file, { timeZone: account.config.timeZone, encoding }, summary)) {
          if (signal.aborted) throw signal.reason;
          const base = { ...ccfs, file: item.file };
          if (item.kind === 'call') {
            rows += item.call.rows.length;
            node.send([null, { topic: 'ccfs/call', payload: item.call.rows, ccfs: { ...base, call_id: item.call.call_id, complete: item.call.complete } } as NodeMessage]);
          } else {
            rows++;
            node.send([null, { topic: 'ccfs/record', payload: item.row, ccfs: { ...base, call_id: item.row.call_id } } as NodeMessage]);
          }
          showStatus();
        }
        if (summary.problemCount > 0) node.warn(RED._('ccfs-callback-in.errors.fileProblems', { file: job.file, count: summary.problemCount, first: `${summary.problems[0].file}:${summary.problems[0].line}: ${summary.problems[0].message}` }));
        node.send([{ topic: 'ccfs/file', payload: { ...notice, bytes: got.bytes, summary }, ccfs } as NodeMessage, null]);
      } finally {
        await fsp.rm(file, { force: true }).catch(() => undefined);
      }
    }
    const jobError = (key: string, job: BillJob, error: unknown, vars: Record<string, unknown> = {}) => {
      const err = error as Error;
      const reason = err instanceof CcfsResultError ? `${err.code}: ${err.meaning}` : err?.message ?? String(error);
      node.error(RED._(`ccfs-callback-in.errors.${key}`, { file: job.file, error: err?.message ?? String(error), ...vars }), {
        topic: 'error', payload: { billFileName: job.file, responseId: job.responseId, accountId: job.accountId, state: job.state, attempts: job.attempts, error: reason },
        ccfs: { ...job.meta, billFileName: job.file }, error: err,
      } as unknown as NodeMessage);
      return reason;
    };
    const onEvent = (e: JobEvent) => {
      if (e.type === 'done') {
        delivered++;
        failure = null;
      } else if (e.type === 'retry') {
        warnOnce('retry', RED._('ccfs-callback-in.errors.retrying', { file: e.job.file, attempt: e.job.attempts, error: (e.error as Error)?.message, seconds: Math.round((e.delayMs ?? 0) / 1000) }));
      } else if (e.type === 'held') {
        // the account signs nothing (or cannot be used): the job waits for the account to be deployed again
        jobError('held', e.job, e.error);
      } else if (e.type === 'failed') {
        failure = RED._('ccfs-callback-in.status.failed', { reason: jobError('failed', e.job, e.error, { attempts: e.job.attempts }) });
      } else if (e.type === 'saveFailed') {
        node.warn(RED._('ccfs-callback-in.errors.jobNotSaved', { file: e.job.file, error: (e.error as Error)?.message }));
      }
      showStatus(e.type !== 'start');
    };
    const runner = new JobRunner({
      retries, baseDelayMs: retryDelayMs, maxDelayMs: Math.max(retryDelayMs, 3_600_000),
      work, onEvent,
      verdict: (err) => (err instanceof ConfigProblem ? 'hold' : jobVerdict(err)),
      save: (change) => remember('done' in change ? { billFileName: change.done } : { job: change.job }),
    });
    // jobs accepted before a restart (or a kill) are resumed; temporary files a kill left are removed
    state.ready.then((g) => {
      if (closing) return;
      for (const job of g.pendingJobs()) {
        resumed.add(job.file);
        runner.add(job);
      }
      showStatus(true);
    });
    fsp.readdir(os.tmpdir()).then((names) => Promise.all(names.filter((n) => n.startsWith(tmpPrefix)).map((n) => fsp.rm(path.join(os.tmpdir(), n), { force: true })))).catch(() => undefined);

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
          const described = download ? null : await describe(account, cb, meta);
          // from here to the journal entry nothing is awaited: a second callback for the same file sees this one
          if (guard.known(name)) {
            duplicates++;
            await remember({ signature });
          } else if (described) {
            node.send([{ topic: 'ccfs/callback', payload: described.notice, ccfs: described.ccfs } as NodeMessage, null]);
            // on disk (the file store) before the answer: a resend after a kill is still a duplicate
            await remember({ billFileName: name, signature });
            delivered++;
          } else {
            const job: BillJob = { file: name, responseId: cb.responseId, accountId: cb.accountId, version: cb.version, state: 'pending', attempts: 0, since: Date.now(), meta: { ...meta } };
            // the job is on disk before the answer: it is done even if Node-RED stops right after it
            await remember({ job, signature });
            runner.add(job);
          }
          answer(res, 200, SUCCESS);
          showStatus(true);
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
            // not accepted (the state could not be written, say): CC-FS calls back again later
            if (signature) guard.release(signature);
            answer(res, 503, RETRY);
            node.error(RED._('ccfs-callback-in.errors.internal', { error: err.message }), { topic: 'error', payload: null, ccfs: meta } as NodeMessage);
          }
          status.set({ fill: 'red', shape: 'ring', text: text.slice(0, 40) }, true);
        });
    };
    const endpoint = mountReceiver(RED, node, 'ccfs-callback-in', url, [route], post, status);
    if (!endpoint) standing = { fill: 'red', shape: 'ring', text: RED._('ccfs-callback-in.status.pathInUse') };
    let rawCapture: { close(): void } | null = null;
    if (endpoint) {
      rawCapture = captureRawBodies((RED as any).server, RED.settings as any, [route], limit);
      if (config.problem === null) status.set({ fill: where === url ? 'green' : 'yellow', shape: 'ring', text: where }, true);
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      unwatch();
      endpoint?.close();
      rawCapture?.close();
      status.stop();
      // a running job is aborted and stays pending: it is resumed at the next start
      runner.close()
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

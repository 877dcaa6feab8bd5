/**
 * webex-cdr-pull: Webex Calling detailed call history, incremental and lossless (specs/webex.md).
 * Runs on its own interval and/or when a message arrives; emits one message per record (or per page)
 * on output 1 and the sync statistics (like the seed's cdr_sync_state) on output 2. The cursor moves
 * only after a window was fully paged and emitted; progress, cursor and the Report ID dedup window
 * are saved after every page in the chosen state store.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { CdrClient, WebexApiError } from '../webex/client';
import { CdrSync, SyncError, emptyState, restoreState, type PageBatch, type RunStats, type SyncRequest, type SyncState, type WindowProgress } from '../webex/sync';
import { TokenError } from '../webex/oauth';
import { typedRecord, recordKey } from '../webex/records';
import { openStateStore } from './lib/state';
import { ThrottledStatus, count } from './lib/status';
import type { WebexAccountNode } from './webex-account-types';

interface PullDef extends NodeDef {
  account?: string;
  interval?: number | string;
  lookbackHours?: number | string;
  max?: number | string;
  locations?: string;
  output?: 'record' | 'page';
  overlapMin?: number | string;
  dedup?: number | string;
  stateStore?: string;
}

const H = 3_600_000;
const MIN = 60_000;

function num(v: unknown, dflt: number, min: number, max: number): number {
  const n = Number(v);
  if (v === '' || v === undefined || v === null || !Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}

/** A time from a message: Date, epoch ms, or ISO text. */
function toMs(v: unknown): number | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.getTime();
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

export = function register(RED: NodeAPI): void {
  function WebexCdrPull(this: Node, def: PullDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const account = RED.nodes.getNode(def.account ?? '') as WebexAccountNode | null;
    const intervalMs = num(def.interval, 5, 0, 24 * 60) * MIN;
    const perPage = def.output === 'page';
    const settings = {
      max: num(def.max, 5000, 500, 5000),
      locations: (def.locations ?? '').trim() || undefined,
      lookbackMs: num(def.lookbackHours, 48, 0.1, 30 * 24) * H,
      overlapMs: num(def.overlapMin, 2, 0, 30) * MIN,
      dedupCapacity: num(def.dedup, 20_000, 1000, 1_000_000),
    };
    const { store, where } = openStateStore<SyncState>(RED, node, 'webex-cdr-pull', def.stateStore);
    const abort = new AbortController();
    let timer: NodeJS.Timeout | null = null;
    let running: Promise<void> = Promise.resolve();
    let busy = false;
    let stopped = false;
    let halted: string | null = null;
    let sync: CdrSync | null = null;

    if (!account) {
      status.set({ fill: 'red', shape: 'ring', text: RED._('webex-cdr-pull.status.noAccount') }, true);
    } else if (account.configError) {
      status.set({ fill: 'red', shape: 'ring', text: RED._('webex-cdr-pull.status.badConfig') }, true);
    } else {
      status.set({ fill: 'grey', shape: 'ring', text: RED._('webex-cdr-pull.status.waiting') }, true);
    }

    const ready: Promise<void> = (async () => {
      if (!account || account.configError) return;
      await account.ready;
      let state: SyncState = emptyState();
      try {
        state = restoreState(await store.load());
      } catch (err) {
        node.warn(RED._('webex-cdr-pull.errors.stateLoad', { where, error: (err as Error).message }));
      }
      const client = new CdrClient({
        baseUrl: account.currentBaseUrl(),
        trustHostname: account.trustHostname,
        followRegion: account.followRegion,
        tokens: account.tokens,
        limiter: account.limiter,
        dispatcher: account.dispatcher,
        clock: account.clock,
        onRegionChange: (url) => account.learnBaseUrl(url),
        onRetry: (info) => {
          const wait = Math.ceil(info.delayMs / 1000);
          status.set({ fill: 'yellow', shape: 'ring', text: info.status === 429 || info.status === 423
            ? RED._('webex-cdr-pull.status.rateLimited', { s: wait })
            : RED._('webex-cdr-pull.status.retrying', { status: info.status ?? 'network', s: wait }) });
        },
      });
      sync = new CdrSync(client, state, {
        emit: (batch) => emitBatch(batch),
        save: (s) => store.save(s),
        progress: ({ window, windowIndex, records }) => {
          status.set({ fill: 'blue', shape: 'dot', text: RED._('webex-cdr-pull.status.fetching', { window: windowIndex + 1, endpoint: window.endpoint.replace('cdr_', ''), records: count(records) }) });
        },
        warn: (text) => node.warn(text),
      }, settings, account.clock);
    })();

    /** Where the current run sends its output (the input's `send`, or node.send on the timer). */
    let out: { send: (m: any) => void; msg: NodeMessage | null } = { send: (m) => node.send(m), msg: null };

    const base = (): Record<string, unknown> => {
      if (!out.msg) return {};
      const { _msgid, ...rest } = out.msg as NodeMessage & Record<string, unknown>;
      return { ...rest, _msgid };
    };

    function meta(batch: PageBatch, w: WindowProgress) {
      return { endpoint: w.endpoint, purpose: w.purpose, window: { start: w.start, end: w.end }, page: batch.page };
    }

    function emitBatch(batch: PageBatch): void {
      const w = batch.window;
      if (perPage) {
        out.send([{ ...base(), topic: 'webex-cdr', payload: batch.items, cdr: batch.items.map(typedRecord), webex: { ...meta(batch, w), count: batch.items.length } }, null]);
        return;
      }
      const msgs = batch.items.map((r) => ({ ...base(), topic: 'webex-cdr', payload: r, cdr: typedRecord(r), webex: { ...meta(batch, w), reportId: recordKey(r) } }));
      out.send([msgs, null]);
    }

    function errorType(err: unknown): string {
      const e = err instanceof SyncError ? err.original : err;
      if (e instanceof TokenError) return e.code;
      if (e instanceof WebexApiError) return e.kind;
      return 'error';
    }

    function fatal(err: unknown): boolean {
      const e = err instanceof SyncError ? err.original : err;
      if (e instanceof TokenError) return e.code !== 'tokenEndpoint';
      return e instanceof WebexApiError && e.fatal;
    }

    function showDone(stats: RunStats): void {
      const at = stats.lastSuccess ? stats.lastSuccess.slice(11, 16) : '';
      const pending = stats.backfillPending ? ` · ${RED._('webex-cdr-pull.status.backfill')}` : '';
      status.set({ fill: 'green', shape: 'dot', text: RED._('webex-cdr-pull.status.done', { records: count(stats.records), at }) + pending }, true);
    }

    function showError(err: unknown): void {
      const type = errorType(err);
      const text = type === 'reauthorize' ? RED._('webex-cdr-pull.status.reauthorize')
        : type === 'config' ? RED._('webex-cdr-pull.status.forbidden')
          : type === 'noCredentials' || type === 'accessTokenRejected' || type === 'badClient' ? RED._('webex-cdr-pull.status.badToken')
            : RED._('webex-cdr-pull.status.error', { error: ((err as Error)?.message ?? String(err)).slice(0, 40) });
      status.set({ fill: 'red', shape: 'ring', text }, true);
    }

    /** One run; serialised with any other. Rejects with the error to report. */
    function runOnce(req: SyncRequest, send: (m: any) => void, msg: NodeMessage | null): Promise<RunStats> {
      const result = running.then(async () => {
        await ready;
        if (!account) throw new Error(RED._('webex-cdr-pull.errors.noAccount'));
        if (account.configError) throw new Error(account.configError);
        if (!sync) throw new Error(RED._('webex-cdr-pull.errors.notReady'));
        if (stopped) throw new Error(RED._('webex-cdr-pull.errors.closed'));
        busy = true;
        out = { send, msg };
        try {
          const stats = await sync.run(req, abort.signal);
          send([null, { ...(msg ? base() : {}), topic: 'cdr_sync_state', payload: stats }]);
          showDone(stats);
          return stats;
        } catch (err) {
          if (stopped) throw err;
          const stats = err instanceof SyncError ? err.stats : null;
          if (stats) send([null, { ...(msg ? base() : {}), topic: 'cdr_sync_state', payload: stats }]);
          showError(err);
          if (fatal(err)) {
            halted = (err as Error).message;
            stopTimer();
          }
          throw err;
        } finally {
          busy = false;
          out = { send: (m) => node.send(m), msg: null };
        }
      });
      running = result.then(() => undefined, () => undefined);
      return result;
    }

    function describe(err: unknown): string {
      return RED._('webex-cdr-pull.errors.sync', { error: (err as Error)?.message ?? String(err) });
    }

    function tick(): void {
      if (busy || stopped || halted) return;
      runOnce({ mode: 'incremental' }, (m) => node.send(m), null).catch((err) => {
        if (stopped) return;
        const stats = err instanceof SyncError ? err.stats : null;
        node.error(describe(err), { topic: 'cdr_sync_errors', payload: { error_type: errorType(err), error_message: (err as Error)?.message ?? String(err), at: new Date(account?.clock.now() ?? Date.now()).toISOString(), stats } } as NodeMessage);
      });
    }

    function stopTimer(): void {
      if (timer) clearInterval(timer);
      timer = null;
    }

    node.on('input', (msg: NodeMessageInFlow, send: (m: any) => void, done: (err?: Error) => void) => {
      let req: SyncRequest;
      try {
        req = parseRequest(msg as unknown as Record<string, unknown>);
      } catch (err) {
        done(err as Error);
        return;
      }
      runOnce(req, send, msg).then(
        () => done(),
        (err) => {
          if (stopped) return done();
          (msg as any).webex = { error_type: errorType(err), stats: err instanceof SyncError ? err.stats : null };
          done(new Error(describe(err)));
        },
      );
    });

    function parseRequest(msg: Record<string, unknown>): SyncRequest {
      const p = msg.payload;
      const src = p && typeof p === 'object' && !Array.isArray(p) && !(p instanceof Date) && 'mode' in (p as object) ? (p as Record<string, unknown>) : msg;
      const mode = String(src.mode ?? 'incremental');
      const clockNow = account?.clock.now() ?? Date.now();
      const hours = Number(src.hours);
      const from = toMs(src.from) ?? (Number.isFinite(hours) && hours > 0 ? clockNow - hours * H : null);
      if (mode === 'incremental' || mode === 'sync' || mode === '') return { mode: 'incremental' };
      if (mode === 'backfill') {
        if (from === null) throw new Error(RED._('webex-cdr-pull.errors.needFrom', { mode }));
        return { mode: 'backfill', from };
      }
      if (mode === 'repull') {
        const to = toMs(src.to) ?? clockNow;
        if (from === null) throw new Error(RED._('webex-cdr-pull.errors.needFrom', { mode }));
        if (!(to > from)) throw new Error(RED._('webex-cdr-pull.errors.range'));
        return { mode: 'repull', from, to };
      }
      throw new Error(RED._('webex-cdr-pull.errors.mode', { mode }));
    }

    if (intervalMs > 0 && account && !account.configError) {
      ready.then(() => {
        if (stopped) return;
        tick();
        timer = setInterval(tick, intervalMs);
      }, () => undefined);
    }

    node.on('close', (removed: boolean, done: () => void) => {
      stopped = true;
      stopTimer();
      abort.abort(new Error('node closed'));
      status.stop();
      const guard = new Promise<void>((r) => setTimeout(r, 10_000).unref());
      Promise.race([running, guard])
        .then(() => (removed ? store.clear() : sync ? store.save(sync.snapshot()) : undefined))
        .catch(() => undefined)
        .then(() => {
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('webex-cdr-pull', WebexCdrPull as any);
};

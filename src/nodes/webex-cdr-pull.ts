/**
 * webex-cdr-pull: Webex Calling detailed call history, incremental and lossless (specs/webex.md).
 * Runs on its own interval and/or when a message arrives; emits one message per record (or per page)
 * on output 1 and the sync statistics (like the seed's cdr_sync_state) on output 2. The cursor moves
 * only after a window was fully paged and emitted. What changed (progress, cursor, new Report IDs) is
 * journalled after every page through nodeState; a lost cursor is never skipped past (CursorGuard).
 * The time of the last new-window request is kept in that state too: after a restart the account's
 * rate limiter (shared by every pull node on it) waits its minute from the latest one its nodes saved.
 * A failed run's reason stays on the status (with the time of the next scheduled run) until a run
 * succeeds.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { CdrClient, WebexApiError } from '../webex/client';
import { CdrSync, SyncError, emptyState, restoreState, type PageBatch, type RunStats, type SyncRequest, type SyncState, type WindowProgress } from '../webex/sync';
import { TokenError } from '../webex/oauth';
import { systemClock } from '../webex/clock';
import { typedRecord, recordKey } from '../webex/records';
import { nodeState } from './lib/state';
import type { StateLoss } from '../common/persist';
import { properties } from './lib/props';
import { useConfig, ConfigProblem } from './lib/config';
import { CursorGuard, CursorLostError, salvageField, timeOf } from './lib/cursor';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';
import type { WebexAccount } from './webex-account-types';

interface PullDef extends NodeDef {
  account?: string;
}

const TYPE = 'webex-cdr-pull';
const H = 3_600_000;
const MIN = 60_000;
/** A cursor recovered from a damaged state is believed only within this distance before now. */
const SALVAGE_MAX_AGE_MS = 366 * 24 * H;

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function WebexCdrPull(this: Node, def: PullDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const status = new ThrottledStatus(node);
    const config = useConfig<WebexAccount>(RED, node, TYPE, def.account, status);
    const intervalMs = prop.number('interval', 5, { min: 0, max: 24 * 60 }) * MIN;
    const perPage = prop.choice('output', ['record', 'page'], 'record') === 'page';
    const settings = {
      max: prop.number('max', 5000, { min: 500, max: 5000, integer: true }),
      locations: prop.text('locations') || undefined,
      lookbackMs: prop.number('lookbackHours', 48, { min: 0.1, max: 30 * 24 }) * H,
      overlapMs: prop.number('overlapMin', 2, { min: 0, max: 30 }) * MIN,
      dedupCapacity: prop.number('dedup', 20_000, { min: 1000, max: 1_000_000, integer: true }),
    };
    const guard = new CursorGuard(RED, node, TYPE, status);
    let restored: SyncState = emptyState();
    let sync: CdrSync | null = null;
    // not even read while the account is unusable: a state that cannot be used must be dealt with (the
    // cursor guard) by a node that can run, not set aside by one that cannot
    const state = config.problem === null ? nodeState<SyncState>(RED, node, {
      type: TYPE,
      store: prop.text('stateStore'),
      restore: (saved, journal) => (restored = restoreState(saved, journal, settings.dedupCapacity)),
      snapshot: () => (sync ? sync.snapshot() : restored),
    }) : null;
    const abort = new AbortController();
    let timer: NodeJS.Timeout | null = null;
    let running: Promise<void> = Promise.resolve();
    let busy = false;
    let stopped = false;
    let halted: string | null = null;
    let startError: Error | null = null;
    /** The last run failed (its error is on the status until a run succeeds). */
    let failed = false;
    /** When the timer last fired (or started), to tell the time of the next scheduled run. */
    let lastTickAt = 0;
    const now = () => (config.problem === null ? config.get().clock : systemClock).now();

    if (config.problem === null) status.set({ fill: 'grey', shape: 'ring', text: RED._(`${TYPE}.status.waiting`) }, true);

    const ready: Promise<void> = (async () => {
      if (!state) return;
      await state.ready;
      const account = config.get();
      await account.ready;
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
            ? RED._(`${TYPE}.status.rateLimited`, { s: wait })
            : RED._(`${TYPE}.status.retrying`, { status: info.status ?? 'network', s: wait }) });
        },
      });
      sync = new CdrSync(client, restored, {
        emit: (batch) => emitBatch(batch),
        save: async (change) => {
          await state.record(change);
        },
        progress: ({ window, windowIndex, records }) => {
          if (failed) return; // the last run's error stays on show until this one succeeds
          status.set({ fill: 'blue', shape: 'dot', text: RED._(`${TYPE}.status.fetching`, { window: windowIndex + 1, endpoint: window.endpoint.replace('cdr_', ''), records: count(records) }) });
        },
        warn: (text) => node.warn(text),
      }, settings, account.clock);
      await settleCursor(sync, state.loss());
    })().catch((err: Error) => {
      startError = err;
      node.error(RED._(`${TYPE}.errors.notReady`, { error: err.message }), { topic: 'error', payload: null, error: { message: err.message } } as NodeMessage);
    });
    // the account's limiter holds every initial request (of any node on it) until this state was read:
    // none may go out before the time of the last one before a restart is known
    if (state) config.get().limiter.whileRestoring(ready);

    /**
     * After a state that could not be used: resume from the cursor the journal or the damaged state
     * still shows (with a warning), else block incremental runs until msg.cursor (CursorGuard).
     */
    async function settleCursor(s: CdrSync, loss: StateLoss | null): Promise<void> {
      let salvaged: number | null = null;
      if (loss && !loss.recoveredFrom) {
        const t0 = now();
        for (const candidate of [restored.streamCursor, salvageField(loss, 'streamCursor')]) {
          const t = timeOf(candidate);
          if (t !== null && t <= t0 && t >= t0 - SALVAGE_MAX_AGE_MS) {
            salvaged = t;
            break;
          }
        }
        // set in memory even if the save fails (reported by the kit); it is saved with the next change
        if (salvaged !== null) await s.setCursor(salvaged).catch(() => undefined);
      }
      guard.settle(loss, salvaged);
    }

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
      if (e instanceof ConfigProblem) return 'config';
      if (e instanceof CursorLostError) return 'cursorLost';
      return 'error';
    }

    function fatal(err: unknown): boolean {
      const e = err instanceof SyncError ? err.original : err;
      if (e instanceof TokenError) return e.code !== 'tokenEndpoint';
      return e instanceof WebexApiError && e.fatal;
    }

    /** An error in a few words for the status: its message without URLs (they carry the query and the org id). */
    function reasonOf(err: unknown): string {
      const text = ((err as Error)?.message ?? String(err)).replace(/\s*\b(?:from|to)\s+https?:\/\/\S+/g, '').replace(/https?:\/\/\S+/g, '…').trim();
      return text.length > 60 ? `${text.slice(0, 59)}…` : text;
    }

    /** The next run the timer will start (UTC hh:mm), or null without a timer. */
    function nextRunAt(): string | null {
      if (!timer || intervalMs <= 0) return null;
      const t = now();
      const at = lastTickAt + (Math.floor(Math.max(0, t - lastTickAt) / intervalMs) + 1) * intervalMs;
      return new Date(at).toISOString().slice(11, 16);
    }

    function showDone(stats: RunStats): void {
      const at = stats.lastSuccess ? stats.lastSuccess.slice(11, 16) : '';
      const pending = stats.backfillPending ? ` · ${RED._(`${TYPE}.status.backfill`)}` : '';
      status.set({ fill: 'green', shape: 'dot', text: RED._(`${TYPE}.status.done`, { records: count(stats.records), at }) + pending }, true);
    }

    /**
     * A failed run: red with the reason, or, when the timer will try again, yellow "retry at hh:mm:
     * reason". It stays until a run succeeds (progress is not shown meanwhile).
     */
    function showError(err: unknown): void {
      failed = true;
      const type = errorType(err);
      const reason = reasonOf(err);
      const retryAt = fatal(err) ? null : nextRunAt();
      if (retryAt) {
        status.set({ fill: 'yellow', shape: 'ring', text: RED._(`${TYPE}.status.retryAt`, { at: retryAt, error: reason }) }, true);
        return;
      }
      const text = type === 'reauthorize' ? RED._(`${TYPE}.status.reauthorize`)
        : type === 'config' ? RED._(`${TYPE}.status.forbidden`)
          : type === 'noCredentials' || type === 'accessTokenRejected' || type === 'badClient' ? RED._(`${TYPE}.status.badToken`)
            : RED._(`${TYPE}.status.error`, { error: reason });
      status.set({ fill: 'red', shape: 'ring', text }, true);
    }

    /** One run (after setting the cursor, if given); serialised with any other. Rejects with the error to report. */
    function runOnce(req: SyncRequest, cursor: number | null, send: (m: any) => void, msg: NodeMessage | null): Promise<RunStats> {
      const result = running.then(async () => {
        await ready;
        config.get(); // a configuration problem, on every run
        if (!sync) throw new Error(RED._(`${TYPE}.errors.notReady`, { error: startError?.message ?? '' }));
        if (stopped) throw new Error(RED._(`${TYPE}.errors.closed`));
        if (cursor !== null) {
          await sync.setCursor(cursor);
          guard.resolved();
          node.log(RED._(`${TYPE}.cursor.set`, { time: new Date(cursor).toISOString() }));
        }
        if (req.mode !== 'repull') guard.check();
        busy = true;
        out = { send, msg };
        try {
          const stats = await sync.run(req, abort.signal);
          send([null, { ...(msg ? base() : {}), topic: 'cdr_sync_state', payload: stats }]);
          failed = false;
          showDone(stats);
          return stats;
        } catch (err) {
          if (stopped) throw err;
          const stats = err instanceof SyncError ? err.stats : null;
          if (stats) send([null, { ...(msg ? base() : {}), topic: 'cdr_sync_state', payload: stats }]);
          if (fatal(err)) {
            halted = (err as Error).message;
            stopTimer();
          }
          showError(err);
          throw err;
        } finally {
          busy = false;
          out = { send: (m) => node.send(m), msg: null };
        }
      });
      running = result.then(() => undefined, () => undefined);
      return result;
    }

    /** The error to report: a configuration problem or a lost cursor as it is, a sync failure with its context. */
    function reported(err: unknown): Error {
      if (err instanceof ConfigProblem || err instanceof CursorLostError) return err;
      return new Error(RED._(`${TYPE}.errors.sync`, { error: (err as Error)?.message ?? String(err) }));
    }

    function tick(): void {
      lastTickAt = now();
      if (busy || stopped || halted) return;
      runOnce({ mode: 'incremental' }, null, (m) => node.send(m), null).catch((err) => {
        if (stopped) return;
        const stats = err instanceof SyncError ? err.stats : null;
        node.error(reported(err).message, { topic: 'cdr_sync_errors', payload: { error_type: errorType(err), error_message: (err as Error)?.message ?? String(err), at: new Date(now()).toISOString(), stats } } as NodeMessage);
      });
    }

    function stopTimer(): void {
      if (timer) clearInterval(timer);
      timer = null;
    }

    node.on('input', (msg: NodeMessageInFlow, send: (m: any) => void, done: (err?: Error) => void) => {
      let parsed: { req: SyncRequest; cursor: number | null };
      try {
        parsed = parseRequest(msg as unknown as Record<string, unknown>);
      } catch (err) {
        done(err as Error);
        return;
      }
      runOnce(parsed.req, parsed.cursor, send, msg).then(
        () => done(),
        (err) => {
          if (stopped) return done();
          (msg as any).webex = { error_type: errorType(err), stats: err instanceof SyncError ? err.stats : null };
          done(reported(err));
        },
      );
    });

    function parseRequest(msg: Record<string, unknown>): { req: SyncRequest; cursor: number | null } {
      const p = msg.payload;
      const fromPayload = p && typeof p === 'object' && !Array.isArray(p) && !(p instanceof Date) && ('mode' in (p as object) || 'cursor' in (p as object));
      const src = fromPayload ? (p as Record<string, unknown>) : msg;
      const mode = String(src.mode ?? 'incremental');
      const clockNow = now();
      let cursor: number | null = null;
      if (src.cursor !== undefined && src.cursor !== null && src.cursor !== '') {
        cursor = timeOf(src.cursor);
        if (cursor === null) throw new Error(RED._(`${TYPE}.errors.cursor`, { value: String(src.cursor).slice(0, 60) }));
        if (cursor > clockNow) throw new Error(RED._(`${TYPE}.errors.cursorFuture`, { time: new Date(cursor).toISOString() }));
      }
      const hours = Number(src.hours);
      const from = timeOf(src.from) ?? (Number.isFinite(hours) && hours > 0 ? clockNow - hours * H : null);
      if (mode === 'incremental' || mode === 'sync' || mode === '') return { req: { mode: 'incremental' }, cursor };
      if (mode === 'backfill') {
        if (from === null) throw new Error(RED._(`${TYPE}.errors.needFrom`, { mode }));
        return { req: { mode: 'backfill', from }, cursor };
      }
      if (mode === 'repull') {
        const to = timeOf(src.to) ?? clockNow;
        if (from === null) throw new Error(RED._(`${TYPE}.errors.needFrom`, { mode }));
        if (!(to > from)) throw new Error(RED._(`${TYPE}.errors.range`));
        return { req: { mode: 'repull', from, to }, cursor };
      }
      throw new Error(RED._(`${TYPE}.errors.mode`, { mode }));
    }

    if (intervalMs > 0 && config.problem === null) {
      ready.then(() => {
        if (stopped) return;
        timer = setInterval(tick, intervalMs);
        tick();
      });
    }

    node.on('close', (removed: boolean, done: () => void) => {
      stopped = true;
      stopTimer();
      abort.abort(new Error('node closed'));
      status.stop();
      const waited = new Promise<void>((r) => setTimeout(r, 10_000).unref());
      Promise.race([running, waited])
        .then(() => state?.close(removed))
        .catch(() => undefined)
        .then(() => {
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType(TYPE, WebexCdrPull as any);
};

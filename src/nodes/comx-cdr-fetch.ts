/**
 * comx-cdr-fetch: GETs `/commagui/cdr` from a Com.X PBX (seeds/002; specs/peers.md §1) when a message
 * arrives; src/comx/fetch.ts does the run. This adapter reads the settings, keeps the incremental
 * state (nodeState: a journal entry per emitted CDR and per window, a checked restore, a lost cursor
 * salvaged or asked for with msg.cursor), and turns the run's callbacks into messages on output 1
 * (with msg.tick backpressure) and 2, status, warnings and done(err) for Catch nodes.
 *
 * With a shared state (a cdrflow-redis node, issue 16) the incremental state lives in Redis and the
 * node holds a lease per node id: only the holder runs incremental fetches and changes the cursor, it
 * reads the state again from Redis at the start of each term, and a fetch in progress stops the moment
 * the lease is lost. The other instance answers incremental runs with a "standby" status and nothing
 * else; one-off lookups (range, id, start, users) touch no shared state and run wherever they are asked.
 */
import * as path from 'node:path';
import type { NodeAPI, Node, NodeDef, NodeMessage, NodeStatus } from 'node-red';
import { isoUtc } from '../common/time';
import type { ComxPbx } from '../comx/client';
import { describeFailure } from '../comx/failures';
import { runFetch, askOf, FETCH_MODES, FETCH_FORMATS, type FetchHooks, type FetchProgress, type FetchResult, type FetchWarning } from '../comx/fetch';
import { ComxSync, DEFAULT_SYNC, isInstant } from '../comx/sync';
import { TickGate } from '../comx/tick-gate';
import { removeStaleStaging } from '../comx/spool';
import { RedisUnavailableError } from '../ha/connection';
import { LeaseLostError, PullLease, type PullRole } from '../ha/pull-lease';
import type { SharedState } from '../ha/shared';
import { ConfigProblem, useConfig } from './lib/config';
import { CursorGuard, CursorLostError, salvageField, timeOf } from './lib/cursor';
import { properties, settingMs } from './lib/props';
import { nodeState, stateFileDir, type NodeState } from './lib/state';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

type Msg = NodeMessage & Record<string, any>;

/** A change of the incremental state could not be saved: the run failed. */
class StateSaveError extends Error {}
/** Asked of the standby (or while Redis is down) what only the lease holder may do. */
class NotHolderError extends Error {}

/**
 * How long a lease lasts without renewal (settings.js `cdrflowLeaseMs`, default 10 s): the longest a
 * dead holder keeps the other instance waiting. Renewed every third of it.
 */
const DEFAULT_LEASE_MS = 10_000;
function leaseTime(RED: NodeAPI): number {
  return settingMs(RED, 'cdrflowLeaseMs', DEFAULT_LEASE_MS, 100);
}

/** The incremental state of one term: opened at deploy (file, context store) or at each lease gain (Redis). */
interface Term {
  state: NodeState<ComxSync>;
  /** Resolves when restored and checked; rejects only when Redis could not be read. */
  ready: Promise<void>;
  /** The lease term it was read in (0 without a shared state). */
  term: number;
  failed: boolean;
}
type Send = (m: (NodeMessage | null)[]) => void;

/** How long to wait for a msg.tick before giving up on the rest of a result. */
const TICK_TIMEOUT_MS = 10 * 60_000;
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
/** A time a user gave (Date, epoch ms, ISO text) that a Date can hold, or null. */
const instant = (v: unknown, t = timeOf(v)) => (isInstant(t) ? t : null);

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function ComxCdrFetch(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const status = new ThrottledStatus(node);
    const pbx = useConfig<ComxPbx>(RED, node, 'comx-cdr-fetch', prop.text('pbx') || undefined, status);
    const perCdr = prop.choice('output', ['cdr', 'request'], 'cdr') === 'cdr';
    const useTick = prop.flag('tick', false) && perCdr;
    // a relative folder is taken from the Node-RED user directory, not from wherever the process started
    const saveDir = prop.text('saveDir');
    const settings = {
      perCdr,
      spool: useTick,
      saveDir: saveDir && !path.isAbsolute(saveDir) ? path.join(path.dirname(stateFileDir(RED)), saveDir) : saveDir || null,
      attachMaxBytes: Math.round(prop.number('attachKb', 0, { min: 0 }) * 1024),
      stagingTag: node.id,
    };
    // what a kill of this node left half-downloaded in the recordings folder goes now (none can be in use;
    // fetches wait for it, so it never meets a new download)
    const cleaned: Promise<unknown> = !settings.saveDir ? Promise.resolve() : removeStaleStaging(settings.saveDir, node.id).then(
        (n) => { if (n > 0) node.log(RED._('comx-cdr-fetch.log.staging', { count: n, dir: settings.saveDir! })); },
        (err: Error) => node.warn(RED._('comx-cdr-fetch.log.stagingFailed', { dir: settings.saveDir!, error: err.message })),
      );
    const syncOpts = {
      ...DEFAULT_SYNC,
      overlapMs: prop.number('overlapMin', 240, { min: 0 }) * 60_000,
      safetyMs: prop.number('safetyMin', 2, { min: 0 }) * 60_000,
      firstLookbackMs: prop.number('firstHours', 24, { min: 0 }) * 3_600_000,
    };
    const defaults = {
      mode: prop.choice('mode', FETCH_MODES, 'incremental'),
      format: prop.choice('format', FETCH_FORMATS, 'txt'),
      extended: prop.flag('extended', false),
      includePin: prop.flag('includePin', false),
      rangeStart: prop.text('rangeStart'),
      rangeEnd: prop.text('rangeEnd'),
      uniqueId: prop.text('uniqueId'),
      exactStart: prop.text('exactStart'),
    };

    let closing = false;
    // shared state (issue 16): a cdrflow-redis node chosen; a missing or broken one is said, never swapped for the file
    const redisId = prop.text('redis');
    let shared: SharedState | null = null;
    let redisProblem: string | null = null;
    if (redisId) {
      const handle = useConfig<SharedState>(RED, node, 'comx-cdr-fetch', redisId, status, { missing: 'noRedis' });
      redisProblem = handle.problem;
      if (redisProblem === null) shared = handle.get();
    }
    // the connection stays open until this node's last save and lease release at close
    const letGo = shared?.hold();
    const pull = shared ? new PullLease(shared.redis, `comx-cdr-fetch:${node.id}`, { ttlMs: leaseTime(RED), onRole: showRole }) : null;

    let sync = new ComxSync(syncOpts);
    const guard = new CursorGuard(RED, node, 'comx-cdr-fetch', status);
    function openState(term: number): Term {
      const state = nodeState(RED, node, {
        type: 'comx-cdr-fetch',
        store: prop.text('stateStore'),
        shared: shared ?? undefined,
        fence: pull?.fence,
        restore: (saved, journal) => ComxSync.restore(saved, journal, syncOpts),
        snapshot: (live) => live.snapshot(),
      });
      const t: Term = { state, term, failed: false, ready: Promise.resolve() };
      t.ready = state.ready.then(async (restored) => {
        sync = restored;
        const loss = state.loss();
        // the last good copy (recoveredFrom) has a cursor; else the journal's, else what the lost state still shows
        const salvaged = loss && !loss.recoveredFrom ? sync.cursorMs ?? instant(salvageField(loss, 'cursor')) : null;
        if (salvaged !== null && sync.cursorMs === null) {
          try {
            await state.record(sync.setCursor(salvaged));
          } catch (err) {
            node.warn(RED._('comx-cdr-fetch.state.saveFailed', { where: state.where, error: (err as Error).message }));
          }
        }
        guard.settle(loss, salvaged);
      }, (err: unknown) => {
        t.failed = true; // Redis could not be read: the next run reads again
        throw err;
      });
      t.ready.catch(() => undefined);
      return t;
    }
    // without a shared state the state is read once, at deploy; with one, at the start of each lease term
    let current: Term | null = shared || redisProblem !== null ? null : openState(0);

    /** The state to use now (runs are queued, so this never races itself). */
    async function stateNow(): Promise<Term> {
      if (!pull) return current!;
      if (current && current.term === pull.term && !current.failed) return current;
      const old = current;
      current = null;
      // nothing to write: a term's changes were stored as they were recorded (or fenced off)
      if (old) await old.state.close(false).catch(() => undefined);
      current = openState(pull.term);
      return current;
    }

    /** The status and log line for the lease's role. */
    function showRole(role: PullRole, why?: 'expired' | 'taken' | 'released'): void {
      if (closing) return;
      if (why === 'expired' || why === 'taken') node.warn(RED._('comx-cdr-fetch.log.leaseLost', { why: RED._(`comx-cdr-fetch.lease.${why}`) }));
      if (role === 'active') node.log(RED._('comx-cdr-fetch.log.leaseGained'));
      const look: Record<PullRole, NodeStatus> = {
        waiting: { fill: 'grey', shape: 'ring', text: RED._('comx-cdr-fetch.status.redisWaiting') },
        active: { fill: 'green', shape: 'ring', text: RED._('comx-cdr-fetch.status.active') },
        standby: { fill: 'grey', shape: 'ring', text: RED._('comx-cdr-fetch.status.standby') },
        down: { fill: 'yellow', shape: 'ring', text: RED._('comx-cdr-fetch.status.redisDown') },
      };
      status.set(look[role], true);
    }

    /** Before anything only the holder may do: throws NotHolderError on the standby or while Redis is down. */
    function mustHold(): void {
      if (redisProblem !== null) throw new ConfigProblem(redisProblem);
      if (pull && !pull.canPull) throw new NotHolderError(RED._(pull.role === 'down' ? 'comx-cdr-fetch.errors.redisDown' : 'comx-cdr-fetch.errors.standby', { where: shared!.redis.where }));
    }

    const abort = new AbortController();
    let queue: Promise<void> = Promise.resolve();
    const gate = new TickGate(TICK_TIMEOUT_MS, () => new Error(RED._('comx-cdr-fetch.errors.noTick', { seconds: TICK_TIMEOUT_MS / 1000 })));

    if (pbx.problem === null && redisProblem === null) status.set({ fill: 'grey', shape: 'ring', text: RED._(pull ? 'comx-cdr-fetch.status.redisWaiting' : 'comx-cdr-fetch.status.idle') }, true);
    pull?.start();

    node.on('input', (msg: Msg, send: Send, done: (err?: Error) => void) => {
      if (msg.tick) {
        gate.tick();
        done();
        return;
      }
      const job = msg.reset || msg.cursor !== undefined ? () => control(msg) : () => fetch(msg, send);
      queue = queue.then(job).then(() => done(), (err: unknown) => {
        const e = explain(err);
        // the status names what happened in a few words; the whole reason goes to the log and Catch
        if (err instanceof NotHolderError) status.set({ fill: 'yellow', shape: 'ring', text: shortReason(err) }, true);
        else if (!(err instanceof CursorLostError || err instanceof ConfigProblem)) status.set({ fill: 'red', shape: 'ring', text: shortReason(err) }, true);
        done(e);
      });
    });

    /** msg.reset forgets the cursor and the sent CDRs; msg.cursor sets where the next incremental fetch resumes. */
    async function control(msg: Msg): Promise<void> {
      const cursor = msg.cursor === undefined ? null : instant(msg.cursor);
      if (msg.cursor !== undefined && cursor === null) throw new Error(RED._('comx-cdr-fetch.errors.cursor', { value: String(msg.cursor).slice(0, 40) }));
      // the cursor is the holder's: a standby that set it would be overwritten by the holder's next window
      mustHold();
      const { state, ready } = await stateNow();
      await ready;
      if (msg.reset) await state.record(sync.reset());
      if (cursor !== null) await state.record(sync.setCursor(cursor));
      guard.resolved();
      const text = cursor === null ? RED._('comx-cdr-fetch.status.reset') : RED._('comx-cdr-fetch.status.cursorSet', { time: isoUtc(cursor).slice(0, 16).replace('T', ' ') });
      status.set({ fill: 'grey', shape: 'ring', text }, true);
    }

    async function fetch(msg: Msg, send: Send): Promise<void> {
      await cleaned;
      const ask = askOf(msg, defaults);
      // one-off lookups (range, id, start, users) use no state: they run on whichever instance is asked
      const incremental = ask.mode === 'incremental';
      let term: Term | null = null;
      let lease: { signal: AbortSignal; done(): void } | null = null;
      if (incremental) {
        if (redisProblem !== null) throw new ConfigProblem(redisProblem);
        if (pull) {
          // the standby, or Redis away: nothing is fetched (never a double pull); the status says why
          if (!pull.canPull) return showRole(pull.role);
          term = await stateNow();
          await term.ready;
          if (!pull.canPull) return showRole(pull.role);
          lease = pull.runSignal();
        } else {
          term = current!;
        }
      }
      gate.running(true);
      try {
        const { client, zone, host } = pbx.get();
        const signal = lease ? AbortSignal.any([abort.signal, lease.signal]) : abort.signal;
        const result = await runFetch(ask, { client, zone, host, settings, signal }, hooksFor(msg, send, term, lease?.signal));
        status.set(resultStatus(result), true);
      } catch (err) {
        // stopped because the lease was lost: say that, not the abort it caused
        if (lease?.signal.aborted && !closing) throw lease.signal.reason;
        throw err;
      } finally {
        gate.running(false);
        lease?.done();
      }
    }

    function hooksFor(msg: Msg, send: Send, term: Term | null, leaseSignal?: AbortSignal): FetchHooks {
      // a copy of the input message: its properties stay, topic and payload are the run's
      const base = (): Msg => RED.util.cloneMessage(msg) as Msg;
      let n = 0;
      let firstSent = 0;
      // yield to the event loop now and then, and stop when the node closes
      const breathe = async () => {
        if (++n % 200 === 0) await new Promise((r) => setImmediate(r));
        if (closing) throw new Error(RED._('comx-cdr-fetch.errors.closed'));
      };
      // nothing more goes out once the lease is lost: the other instance may be fetching the window now
      const stillHeld = () => {
        if (leaseSignal?.aborted) throw leaseSignal.reason;
      };
      const noTerm = () => new Error('incremental state not opened'); // a bug: only incremental runs ask for it
      return {
        sync: () => (term ? term.ready.then(() => guard.check()).then(() => sync) : Promise.reject(noTerm())),
        emit: async (out) => {
          if (useTick && firstSent > 0) await gate.wait();
          stillHeld();
          firstSent++;
          send([{ ...base(), ...out }, null]);
          await breathe();
        },
        report: async (out) => {
          send([null, { ...base(), ...out }]);
          await breathe();
        },
        record: (entry) => {
          if (!term) throw noTerm();
          const { state } = term;
          // a change that cannot be saved fails the run: a cursor that is not on disk is not a success
          const failed = (err: unknown) => new StateSaveError(RED._('comx-cdr-fetch.errors.stateSave', { where: state.where, error: (err as Error)?.message ?? String(err) }));
          try {
            stillHeld();
            const saved = state.record(entry);
            return saved ? saved.catch((err: unknown) => { throw failed(err); }) : saved;
          } catch (err) {
            throw failed(err);
          }
        },
        progress: (p) => status.set(progressStatus(p), p.phase === 'requesting' || p.phase === 'retrying'),
        warn: (w) => node.warn(warningText(w)),
      };
    }

    function progressStatus(p: FetchProgress): NodeStatus {
      if (p.phase === 'retrying') return { fill: 'yellow', shape: 'ring', text: RED._('comx-cdr-fetch.status.retrying', { attempt: p.attempt }) };
      const text = p.phase === 'requesting' ? RED._('comx-cdr-fetch.status.requesting')
        : p.phase === 'download' ? RED._('comx-cdr-fetch.status.downloading', { size: p.totalBytes ? `${mb(p.bytes)}/${mb(p.totalBytes)}` : mb(p.bytes) })
        : p.phase === 'extract' ? RED._('comx-cdr-fetch.status.extracting', { entries: p.entries, total: p.totalEntries, size: mb(p.bytes) })
        : RED._('comx-cdr-fetch.status.sending', { count: count(p.count) });
      return { fill: 'blue', shape: 'dot', text };
    }

    function resultStatus(r: FetchResult): NodeStatus {
      if (r.kind === 'upToDate') return { fill: 'green', shape: 'ring', text: RED._('comx-cdr-fetch.status.upToDate') };
      if (r.kind === 'users') return { fill: 'green', shape: 'dot', text: RED._('comx-cdr-fetch.status.users', { count: count(r.count) }) };
      if (r.kind === 'recording') return { fill: 'green', shape: 'dot', text: RED._('comx-cdr-fetch.status.recording', { size: mb(r.size) }) };
      const text = RED._(r.incremental ? 'comx-cdr-fetch.status.doneIncremental' : 'comx-cdr-fetch.status.done', { count: count(r.sent), total: count(r.total), time: new Date().toTimeString().slice(0, 5) });
      if (r.malformed === 0) return { fill: 'green', shape: 'dot', text };
      return { fill: 'yellow', shape: 'dot', text: `${text} · ${RED._('comx-cdr-fetch.status.malformed', { count: r.malformed })}` };
    }

    function warningText(w: FetchWarning): string {
      if (w.kind === 'zone') return RED._('comx-cdr-fetch.warnings.zone', { zone: w.zone, offset: w.offset, count: w.count, total: w.total });
      const lines = w.lines.slice(0, 10).join(', ') + (w.lines.length > 10 ? ', …' : '');
      return RED._('comx-cdr-fetch.warnings.malformed', { count: w.count, lines });
    }

    /** A few words for the status, short phrase first (the whole reason is in the error). */
    function shortReason(err: unknown): string {
      const at = new Date().toTimeString().slice(0, 5);
      if (err instanceof StateSaveError) return `${RED._('comx-cdr-fetch.status.failed.state')} · ${at}`;
      if (err instanceof NotHolderError) return `${RED._(pull?.role === 'down' ? 'comx-cdr-fetch.status.redisDown' : 'comx-cdr-fetch.status.standby')} · ${at}`;
      if (err instanceof LeaseLostError) return `${RED._('comx-cdr-fetch.status.failed.leaseLost')} · ${at}`;
      if (err instanceof RedisUnavailableError) return `${RED._('comx-cdr-fetch.status.redisDown')} · ${at}`;
      const failure = closing ? null : describeFailure(err);
      const phrase = failure ? RED._(`comx-cdr-fetch.status.failed.${failure.key}`, failure.vars) : RED._('comx-cdr-fetch.status.failed.other');
      return `${phrase} · ${at}`;
    }

    /** Turns low-level failures into the messages a user can act on. */
    function explain(err: unknown): Error {
      if (err instanceof ConfigProblem || err instanceof CursorLostError || err instanceof StateSaveError || err instanceof NotHolderError) return err;
      if (err instanceof LeaseLostError) return new Error(RED._('comx-cdr-fetch.errors.leaseLost', { why: RED._(`comx-cdr-fetch.lease.${err.why}`) }));
      if (err instanceof RedisUnavailableError) return new Error(RED._('comx-cdr-fetch.errors.redisDown', { where: shared?.redis.where ?? '' }));
      if (closing) return new Error(RED._('comx-cdr-fetch.errors.closed'));
      const failure = describeFailure(err);
      if (failure) return new Error(RED._(`comx-cdr-fetch.errors.${failure.key}`, failure.vars));
      return err instanceof Error ? err : new Error(String(err));
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      abort.abort(new Error('node closed'));
      gate.close(new Error(RED._('comx-cdr-fetch.errors.closed')));
      status.stop();
      Promise.race([queue.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))])
        .then(() => current?.state.close(removed))
        .catch(() => undefined)
        // after the state's last write (fenced by the lease); released, the other instance takes over at once
        .then(() => pull?.stop())
        .catch(() => undefined)
        .then(() => {
          letGo?.();
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('comx-cdr-fetch', ComxCdrFetch as any);
};

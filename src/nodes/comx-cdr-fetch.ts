/**
 * comx-cdr-fetch: GETs `/commagui/cdr` from a Com.X PBX (seeds/002; specs/peers.md §1) when a message
 * arrives; src/comx/fetch.ts does the run. This adapter reads the settings, keeps the incremental
 * state (nodeState: a journal entry per emitted CDR and per window, a checked restore, a lost cursor
 * salvaged or asked for with msg.cursor), and turns the run's callbacks into messages on output 1
 * (with msg.tick backpressure) and 2, status, warnings and done(err) for Catch nodes.
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
import { ConfigProblem, useConfig } from './lib/config';
import { CursorGuard, CursorLostError, salvageField, timeOf } from './lib/cursor';
import { properties } from './lib/props';
import { nodeState, stateFileDir } from './lib/state';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

type Msg = NodeMessage & Record<string, any>;

/** A change of the incremental state could not be saved: the run failed. */
class StateSaveError extends Error {}
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

    let sync = new ComxSync(syncOpts);
    const state = nodeState(RED, node, {
      type: 'comx-cdr-fetch',
      store: prop.text('stateStore'),
      restore: (saved, journal) => ComxSync.restore(saved, journal, syncOpts),
      snapshot: (live) => live.snapshot(),
    });
    const guard = new CursorGuard(RED, node, 'comx-cdr-fetch', status);
    const ready = state.ready.then(async (restored) => {
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
    });

    let closing = false;
    const abort = new AbortController();
    let queue: Promise<void> = Promise.resolve();
    const gate = new TickGate(TICK_TIMEOUT_MS, () => new Error(RED._('comx-cdr-fetch.errors.noTick', { seconds: TICK_TIMEOUT_MS / 1000 })));

    if (pbx.problem === null) status.set({ fill: 'grey', shape: 'ring', text: RED._('comx-cdr-fetch.status.idle') }, true);

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
        if (!(err instanceof CursorLostError || err instanceof ConfigProblem)) status.set({ fill: 'red', shape: 'ring', text: shortReason(err) }, true);
        done(e);
      });
    });

    /** msg.reset forgets the cursor and the sent CDRs; msg.cursor sets where the next incremental fetch resumes. */
    async function control(msg: Msg): Promise<void> {
      const cursor = msg.cursor === undefined ? null : instant(msg.cursor);
      if (msg.cursor !== undefined && cursor === null) throw new Error(RED._('comx-cdr-fetch.errors.cursor', { value: String(msg.cursor).slice(0, 40) }));
      await ready;
      if (msg.reset) await state.record(sync.reset());
      if (cursor !== null) await state.record(sync.setCursor(cursor));
      guard.resolved();
      const text = cursor === null ? RED._('comx-cdr-fetch.status.reset') : RED._('comx-cdr-fetch.status.cursorSet', { time: isoUtc(cursor).slice(0, 16).replace('T', ' ') });
      status.set({ fill: 'grey', shape: 'ring', text }, true);
    }

    async function fetch(msg: Msg, send: Send): Promise<void> {
      await cleaned;
      gate.running(true);
      try {
        const { client, zone, host } = pbx.get();
        const result = await runFetch(askOf(msg, defaults), { client, zone, host, settings, signal: abort.signal }, hooksFor(msg, send));
        status.set(resultStatus(result), true);
      } finally {
        gate.running(false);
      }
    }

    function hooksFor(msg: Msg, send: Send): FetchHooks {
      // a copy of the input message: its properties stay, topic and payload are the run's
      const base = (): Msg => RED.util.cloneMessage(msg) as Msg;
      let n = 0;
      let firstSent = 0;
      // yield to the event loop now and then, and stop when the node closes
      const breathe = async () => {
        if (++n % 200 === 0) await new Promise((r) => setImmediate(r));
        if (closing) throw new Error(RED._('comx-cdr-fetch.errors.closed'));
      };
      return {
        sync: () => ready.then(() => guard.check()).then(() => sync),
        emit: async (out) => {
          if (useTick && firstSent > 0) await gate.wait();
          firstSent++;
          send([{ ...base(), ...out }, null]);
          await breathe();
        },
        report: async (out) => {
          send([null, { ...base(), ...out }]);
          await breathe();
        },
        record: (entry) => {
          // a change that cannot be saved fails the run: a cursor that is not on disk is not a success
          const failed = (err: unknown) => new StateSaveError(RED._('comx-cdr-fetch.errors.stateSave', { where: state.where, error: (err as Error)?.message ?? String(err) }));
          try {
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
      const failure = closing ? null : describeFailure(err);
      const phrase = failure ? RED._(`comx-cdr-fetch.status.failed.${failure.key}`, failure.vars) : RED._('comx-cdr-fetch.status.failed.other');
      return `${phrase} · ${at}`;
    }

    /** Turns low-level failures into the messages a user can act on. */
    function explain(err: unknown): Error {
      if (err instanceof ConfigProblem || err instanceof CursorLostError || err instanceof StateSaveError) return err;
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

/**
 * cms-call-message: sets or clears the on-screen message of a CMS call through the REST API
 * (`PUT /api/v1/calls/<id>`, specs/cms.md §6). Requests for one call are sent one after another, in
 * the order the messages arrived, so a "set" never overtakes the "clear" that followed it. A message
 * the server did not take is kept (src/cms/message-ledger.ts, across restarts) and sent again on a
 * timer with backoff, and at once when the server takes another one, until the server has it.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { CmsApiError, type CallMessage, type MessagePosition, type CmsApiClient } from '../cms/api';
import { CallMessageLedger, sameMessage, type LedgerChange } from '../cms/message-ledger';
import { useConfig } from './lib/config';
import { nodeState } from './lib/state';
import { properties } from './lib/props';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

interface CmsCallMessageDef extends NodeDef {
  server?: string;
  action?: 'set' | 'clear';
  text?: string;
  position?: string;
  duration?: string | number;
  retryMin?: number | string;
  retryMax?: number | string;
  stateStore?: string;
}

const POSITIONS = new Set(['top', 'middle', 'bottom']);

/** The input message a PUT answers (null for a retry the node makes by itself). */
interface Origin {
  msg: NodeMessage & Record<string, any>;
  send: (m: NodeMessage) => void;
  done: (err?: Error) => void;
}

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CmsCallMessage(this: Node, def: CmsCallMessageDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const prop = properties(RED, node, def);
    const server = useConfig<CmsApiClient>(RED, node, 'cms-call-message', def.server, status);
    const retryMinMs = prop.seconds('retryMin', 5, { positive: true });
    const opts = { retryMinMs, retryMaxMs: Math.max(retryMinMs, prop.seconds('retryMax', 300, { positive: true })) };
    const queues = new Map<string, Promise<void>>();
    let sets = 0;
    let clears = 0;
    let closing = false;
    const abort = new AbortController();
    let timer: NodeJS.Timeout | null = null;

    let ledger = new CallMessageLedger(opts);
    const state = nodeState(RED, node, {
      type: 'cms-call-message',
      store: prop.text('stateStore'),
      restore: (saved, journal) => CallMessageLedger.fromSaved(opts, saved, journal),
      snapshot: (l) => l.snapshot(),
    });
    const ready = state.ready.then((l) => {
      ledger = l;
      schedule();
      showStatus();
    });
    /** Journals one change of the ledger (nothing once the node is stopping: the state is closing). */
    const keep = (change: LedgerChange | null) => {
      if (!change || closing) return;
      Promise.resolve(state.record(change)).catch(() => undefined); // a failed save is warned by nodeState
    };

    /** Yellow while calls are not confirmed (shown at once when a message fails), green once all are. */
    function showStatus(immediate = false): void {
      if (ledger.size > 0) {
        const key = ledger.size === 1 ? 'cms-call-message.status.unconfirmedOne' : 'cms-call-message.status.unconfirmed';
        status.set({ fill: 'yellow', shape: 'ring', text: RED._(key, { count: count(ledger.size), error: (ledger.lastError() ?? '').slice(0, 40) }) }, immediate);
      } else if (sets + clears > 0) {
        status.set({ fill: 'green', shape: 'dot', text: RED._('cms-call-message.status.ok', { set: count(sets), cleared: count(clears) }) }, immediate);
      }
    }

    /** Runs `job` after every earlier job for the call. */
    function enqueue(callId: string, job: () => Promise<void>): void {
      const previous = queues.get(callId) ?? Promise.resolve();
      const tail = previous.then(job).catch(() => undefined);
      queues.set(callId, tail);
      void tail.then(() => {
        if (queues.get(callId) === tail) queues.delete(callId);
      });
    }

    /** One PUT and what follows from its answer, for an input message or a retry. */
    async function put(callId: string, message: CallMessage, origin: Origin | null): Promise<void> {
      const action = message.text === '' ? 'clear' : 'set';
      if (closing) {
        origin?.done(new Error(RED._('cms-call-message.errors.closing')));
        return;
      }
      // a message sent again in the background leaves the status as it is ("… not confirmed")
      if (origin) status.set({ fill: 'blue', shape: 'dot', text: RED._(action === 'set' ? 'cms-call-message.status.setting' : 'cms-call-message.status.clearing', { call: callId.slice(0, 8) }) });
      try {
        const result = await server.get().setCallMessage(callId, message, abort.signal);
        const now = Date.now();
        keep(ledger.accepted(callId, message, now));
        if (action === 'set') sets++;
        else clears++;
        // the server answers: what it did not take before is tried now
        ledger.retryAllNow(now);
        schedule();
        const msg = origin?.msg ?? ({ callId, payload: { callId }, message } as NodeMessage & Record<string, any>);
        msg.cmsApi = { callId, action, baseUrl: result.baseUrl, status: result.status, attempts: result.attempts, message, ...(origin ? {} : { retried: true }) };
        if (msg.topic === undefined) msg.topic = action;
        if (origin) {
          origin.send(msg);
          origin.done();
        } else {
          node.send(msg);
        }
      } catch (err) {
        const e = err as Error;
        if (closing) {
          // not taken, and still wanted: the ledger keeps it for the next start
          origin?.done(new Error(RED._('cms-call-message.errors.closing')));
          return;
        }
        const code = err instanceof CmsApiError ? err.code : null;
        const { change, final } = ledger.failed(callId, message, code, e.message, Date.now());
        keep(change);
        schedule();
        if (final) status.set({ fill: 'red', shape: 'ring', text: (e.message ?? String(e)).slice(0, 40) }, true);
        else showStatus(true);
        origin?.done(new Error(RED._(final ? 'cms-call-message.errors.failed' : 'cms-call-message.errors.failedRetrying', { action, callId, error: e.message })));
        return;
      }
      showStatus();
    }

    /** Sends again what the server has not taken, for every call that is due; then waits for the next. */
    function schedule(): void {
      if (timer) clearTimeout(timer);
      timer = null;
      if (closing) return;
      const next = ledger.nextDue();
      if (next === null) return;
      timer = setTimeout(() => {
        timer = null;
        for (const callId of ledger.takeDue(Date.now())) {
          enqueue(callId, async () => {
            const entry = ledger.get(callId);
            if (!entry || sameMessage(entry.desired, entry.accepted)) return;
            await put(callId, entry.desired, null);
          });
        }
        for (const change of ledger.prune(Date.now())) keep(change);
        schedule();
        showStatus();
      }, Math.max(0, next - Date.now()));
      timer.unref?.();
    }

    node.on('input', (msg: NodeMessage & Record<string, any>, send: (m: NodeMessage) => void, done: (err?: Error) => void) => {
      let callId: string;
      let message: CallMessage;
      try {
        server.get(); // a missing or unusable server fails every message with the reason
        callId = callIdOf(msg);
        message = messageOf(msg, def);
      } catch (err) {
        done(err as Error);
        return;
      }
      // wanted from now on (kept across a restart), then sent after what came before for the call
      void ready.then(() => {
        if (!closing) keep(ledger.want(callId, message, Date.now()));
        enqueue(callId, () => put(callId, message, { msg, send, done }));
      });
    });

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      if (timer) clearTimeout(timer);
      abort.abort(new Error('node closed'));
      status.stop();
      Promise.allSettled([...queues.values()])
        .then(() => state.close(removed)).catch(() => undefined)
        .then(() => {
          node.status({});
          done();
        });
    });
  }

  /** msg.callId, msg.payload.callId (tracker output), msg.payload.call.id, or a payload that is the id. */
  function callIdOf(msg: Record<string, any>): string {
    const p = msg.payload;
    const candidates = [msg.callId, p && typeof p === 'object' ? p.callId : undefined, p && typeof p === 'object' && p.call ? p.call.callId ?? p.call.id : undefined, typeof p === 'string' ? p : undefined];
    const id = candidates.find((c) => typeof c === 'string' && c.trim() !== '');
    if (!id) throw new Error(RED._('cms-call-message.errors.noCallId'));
    return id.trim();
  }

  /** The node's settings, overridden by msg.message {text, position, duration}; action clear → empty text. */
  function messageOf(msg: Record<string, any>, def: CmsCallMessageDef): CallMessage {
    const m = msg.message && typeof msg.message === 'object' ? msg.message : {};
    const clear = def.action === 'clear' || m.clear === true;
    const text = clear ? '' : typeof m.text === 'string' ? m.text : def.text ?? '';
    const position = String(m.position ?? def.position ?? 'bottom');
    if (!POSITIONS.has(position)) throw new Error(RED._('cms-call-message.errors.position', { position }));
    const rawDuration = m.duration ?? def.duration ?? 'permanent';
    let duration: 'permanent' | number;
    if (rawDuration === 'permanent' || rawDuration === '') duration = 'permanent';
    else {
      const n = Number(rawDuration);
      if (!Number.isInteger(n) || n < 0) throw new Error(RED._('cms-call-message.errors.duration', { duration: String(rawDuration) }));
      duration = n;
    }
    return { text, position: position as MessagePosition, duration };
  }

  RED.nodes.registerType('cms-call-message', CmsCallMessage as any);
};

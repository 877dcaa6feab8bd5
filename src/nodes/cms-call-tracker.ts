/**
 * cms-call-tracker: folds the records of cms-cdr-in into live call state (src/cms/tracker.ts) and sends
 * (1) one message each time a call's security state changes, with the notice text to show, and
 * (2) a summary when a call ends. The state survives redeploys and restarts (nodeState).
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import {
  CallTracker, restrictedPattern, domainList,
  type TrackerEvent, type TrackerOptions, type TrackerEntry, type SecurityLevel,
} from '../cms/tracker';
import { readRecord } from '../cms/record';
import { nodeState, serveStoreList } from './lib/state';
import { properties } from './lib/props';
import { reportConfigProblem } from './lib/config';
import { ThrottledStatus, count } from './lib/status';

interface CmsCallTrackerDef extends NodeDef {
  internalDomains?: string;
  guestsExternal?: boolean | string;
  webAppExternal?: boolean | string;
  restrictedPattern?: string;
  expireHours?: number | string;
  textExternal?: string;
  textRestricted?: string;
  textBoth?: string;
  position?: string;
  stateStore?: string;
}

const DEFAULT_TEXTS = {
  external: 'External Participant(s) in Meeting',
  restricted: 'Restricted Meeting',
  both: 'Restricted Meeting, External Participant(s) in Meeting',
};
export = function register(RED: NodeAPI): void {
  serveStoreList(RED);

  function CmsCallTracker(this: Node, def: CmsCallTrackerDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const prop = properties(RED, node, def);
    let opts: Partial<TrackerOptions>;
    try {
      opts = {
        internalDomains: domainList(prop.text('internalDomains')),
        guestsExternal: prop.flag('guestsExternal', true),
        webAppExternal: prop.flag('webAppExternal', true),
        restrictedPattern: restrictedPattern(prop.text('restrictedPattern', 'restricted')),
        expireAfterMs: prop.number('expireHours', 24, { positive: true }) * 3600_000,
      };
    } catch (err) {
      const text = RED._('cms-call-tracker.errors.pattern', { error: (err as Error).message });
      reportConfigProblem(RED, node, 'cms-call-tracker', text, status);
      // messages still complete, with the configuration error, so Catch and Complete nodes see them
      node.on('input', (_msg: NodeMessage, _send: unknown, done: (err?: Error) => void) => done(new Error(text)));
      return;
    }
    const texts: Record<SecurityLevel, string> = {
      none: '',
      external: prop.text('textExternal', DEFAULT_TEXTS.external),
      restricted: prop.text('textRestricted', DEFAULT_TEXTS.restricted),
      restrictedExternal: prop.text('textBoth', DEFAULT_TEXTS.both),
    };
    const position = prop.choice('position', ['top', 'middle', 'bottom'], 'bottom');

    let tracker = new CallTracker(opts);
    const state = nodeState(RED, node, {
      type: 'cms-call-tracker',
      store: prop.text('stateStore'),
      restore: (saved, journal) => CallTracker.fromSaved(opts, saved, journal),
      snapshot: (t) => t.snapshot(),
    });
    const ready = state.ready.then((t) => {
      tracker = t;
      showStatus();
    });
    /** Applies a change and journals it, so a restart replays it (nothing is written for what changes nothing). */
    const change = (entry: TrackerEntry): TrackerEvent[] => {
      const events = 'a' in entry ? tracker.apply(entry.a, entry.t) : 'b' in entry ? tracker.bridgeRestarted(entry.b, entry.t) : tracker.expire(entry.t);
      void state.record(entry);
      return events;
    };

    function showStatus(): void {
      const c = tracker.counts();
      const warn = c.externalCalls > 0 || c.restrictedCalls > 0;
      status.set({
        fill: warn ? 'yellow' : 'green',
        shape: 'dot',
        text: RED._('cms-call-tracker.status.calls', { calls: count(c.calls), external: count(c.externalCalls), restricted: count(c.restrictedCalls) }),
      });
    }

    /** Two outputs: security changes, summaries. Each message keeps the properties of `base`. */
    function toMessages(events: TrackerEvent[], base: NodeMessage | null): [NodeMessage[], NodeMessage[]] {
      const security: NodeMessage[] = [];
      const summaries: NodeMessage[] = [];
      for (const e of events) {
        const out = (base ? RED.util.cloneMessage(base) : {}) as NodeMessage & Record<string, unknown>;
        if (e.kind === 'security') {
          out.topic = 'security';
          out.payload = { event: e.reason, previousLevel: e.previousLevel, time: e.time, ...e.call };
          out.callId = e.call.callId;
          const text = texts[e.call.level];
          out.message = text === '' ? { text: '', position, duration: 0 } : { text, position, duration: 'permanent' };
          security.push(out);
        } else {
          out.topic = 'callSummary';
          out.payload = e.summary;
          out.callId = e.summary.callId;
          delete out.message;
          summaries.push(out);
        }
      }
      return [security, summaries];
    }

    node.on('input', (msg: NodeMessage & Record<string, any>, send: (m: any) => void, done: (err?: Error) => void) => {
      ready.then(() => {
        const now = Date.now();
        const events: TrackerEvent[] = [];
        const p = msg.payload as { previousSession?: unknown } | null;
        if (msg.topic === 'sessionChanged' && p && typeof p.previousSession === 'string') {
          events.push(...change({ t: now, b: p.previousSession }));
        } else {
          const items = Array.isArray(msg.payload) ? msg.payload : [msg.payload];
          for (const item of items) {
            const rec = readRecord(item, Array.isArray(msg.payload) ? { session: msg.cms?.session, callBridge: msg.cms?.callBridge } : msg.cms);
            if (!rec || !tracker.affects(rec)) continue;
            const { raw: _raw, ...fields } = rec;
            events.push(...change({ t: now, a: fields }));
          }
        }
        if (events.length > 0) send(toMessages(events, msg));
        showStatus();
        done();
      }).catch((err: Error) => done(err));
    });

    // calls whose end never arrives: look now and then
    const sweepMs = Math.max(1000, Math.min(60_000, (opts.expireAfterMs ?? 86_400_000) / 10));
    const timer = setInterval(() => {
      ready.then(() => {
        const before = tracker.size;
        // a sweep is journaled only when it drops something: an idle tracker writes nothing
        const now = Date.now();
        const events = tracker.expire(now);
        if (events.length > 0 || tracker.size !== before) {
          void state.record({ t: now, x: true });
          if (events.length > 0) node.send(toMessages(events, null) as any);
          showStatus();
        }
      }).catch(() => undefined);
    }, sweepMs);
    timer.unref?.();

    node.on('close', (removed: boolean, done: () => void) => {
      clearInterval(timer);
      status.stop();
      state.close(removed).catch(() => undefined).then(() => {
        node.status({});
        done();
      });
    });
  }

  RED.nodes.registerType('cms-call-tracker', CmsCallTracker as any);
};

/**
 * cms-call-tracker: folds the records of cms-cdr-in into live call state (src/cms/tracker.ts) and sends
 * (1) one message each time a call's security state changes, with the notice text to show, and
 * (2) a summary when a call ends. The state survives redeploys and restarts (nodeState). With a
 * cms-server, it checks its view against the CMS API (src/cms/reconcile.ts) on start, after every gap
 * cms-cdr-in reports, and on `msg.topic` `reconcile`: the API is the source of truth.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import {
  CallTracker, restrictedPattern, domainList,
  type TrackerEvent, type TrackerOptions, type TrackerEntry, type SecurityLevel,
} from '../cms/tracker';
import { readRecord } from '../cms/record';
import { planReconcile } from '../cms/reconcile';
import type { CmsApiClient } from '../cms/api';
import { nodeState } from './lib/state';
import { properties } from './lib/props';
import { reportConfigProblem, useConfig, ConfigProblem, type ConfigHandle } from './lib/config';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

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
  server?: string;
  apiRetry?: number | string;
}

/** What cms-cdr-in's second output says when records may have been missed. */
const GAPS = new Set(['recordsMissing', 'sessionChanged', 'sequenceGap']);

const DEFAULT_TEXTS = {
  external: 'External Participant(s) in Meeting',
  restricted: 'Restricted Meeting',
  both: 'Restricted Meeting, External Participant(s) in Meeting',
};
export = function register(RED: NodeAPI): void {
  packageSetup(RED);

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
      const text = RED._('cms-call-tracker.status.calls', { calls: count(c.calls), external: count(c.externalCalls), restricted: count(c.restrictedCalls) });
      // the calls are followed from the records either way; the status says what keeps the API read from working
      if (api && api.problem !== null) {
        status.set({ fill: api.unset ? 'yellow' : 'red', shape: 'ring', text: RED._(`cms-call-tracker.status.${api.unset ? 'apiNotConfigured' : 'apiBadConfig'}`, { calls: text }) });
        return;
      }
      if (apiError !== null) {
        status.set({ fill: 'yellow', shape: 'ring', text: RED._('cms-call-tracker.status.apiFailed', { calls: text }) });
        return;
      }
      status.set({ fill: warn ? 'yellow' : 'green', shape: 'dot', text });
    }

    // ---- the CMS API as the source of truth (optional) ----
    const api: ConfigHandle<CmsApiClient> | null = prop.text('server') ? useConfig<CmsApiClient>(RED, node, 'cms-call-tracker', def.server, status) : null;
    const retryMs = prop.seconds('apiRetry', 30, { positive: true });
    const abort = new AbortController();
    let apiError: string | null = null;
    let failures = 0;
    let reading: Promise<void> | null = null;
    let again = false;
    let closing = false;
    let retryTimer: NodeJS.Timeout | null = null;

    /** Reads the live calls from the API and brings the view and the screens in line; one read at a time. */
    function reconcile(trigger: string): void {
      if (!api || closing) return;
      if (reading) {
        again = true; // a gap reported during a read: read again once it is done
        return;
      }
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
      reading = readApi(trigger).finally(() => {
        reading = null;
        if (again && !closing) {
          again = false;
          reconcile(trigger);
        }
      });
    }

    async function readApi(trigger: string): Promise<void> {
      await ready;
      const startedAt = Date.now();
      try {
        const client = api!.get();
        const read = await client.readActiveCalls({ needLegDetail: (id) => !tracker.knowsLeg(id), signal: abort.signal });
        if (closing) return;
        const plan = planReconcile(tracker.snapshot(), { calls: read.calls, complete: read.complete, startedAt }, texts, tracker);
        const now = Date.now();
        const events = tracker.reconcile(plan, now);
        if (plan.end.length > 0 || plan.calls.length > 0) void state.record({ t: now, r: plan });
        if (events.length > 0) node.send(toMessages(events, null) as any);
        // what the bridges that answered said is in; a bridge that did not is reported (and tried again)
        if (read.failures.length > 0) throw new Error(read.failures.map((f) => f.message).join('; '));
        failures = 0;
        apiError = null;
      } catch (err) {
        if (closing) return;
        const retry = !(err instanceof ConfigProblem);
        // a configuration problem is shown as such (showStatus), not as a failed read
        if (retry) failures++;
        apiError = retry ? (err as Error).message : null;
        const delay = Math.min(retryMs * 2 ** (failures - 1), retryMs * 16);
        const text = RED._(retry ? 'cms-call-tracker.errors.apiRetry' : 'cms-call-tracker.errors.api', { error: (err as Error).message, seconds: Math.round(delay / 100) / 10 });
        // a configuration that cannot work was said at deploy (useConfig); a message that asks fails with it
        if (retry || trigger !== 'start') node.error(text, { topic: 'apiError', payload: { trigger, error: apiError, failures } } as NodeMessage);
        if (retry) {
          retryTimer = setTimeout(() => {
            retryTimer = null;
            reconcile('retry');
          }, delay);
          retryTimer.unref?.();
        }
      } finally {
        showStatus();
      }
    }

    /** Two outputs: security changes, summaries. Each message keeps the properties of `base`. */
    function toMessages(events: TrackerEvent[], base: NodeMessage | null): [NodeMessage[], NodeMessage[]] {
      const security: NodeMessage[] = [];
      const summaries: NodeMessage[] = [];
      for (const e of events) {
        const out = (base ? RED.util.cloneMessage(base) : {}) as NodeMessage & Record<string, unknown>;
        if (e.kind === 'security') {
          out.topic = 'security';
          out.payload = { event: e.reason, previousLevel: e.previousLevel, time: e.time, source: e.source, ...e.call };
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
        if (msg.topic === 'reconcile' || GAPS.has(msg.topic as string)) {
          if (msg.topic === 'sessionChanged' && p && typeof p.previousSession === 'string') events.push(...change({ t: now, b: p.previousSession }));
          // records may be missing: the API says what is live (never waited for: the stream goes on)
          reconcile(msg.topic as string);
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

    // on start: what happened while Node-RED was down (or after the last record it kept) is read from the API
    void ready.then(() => reconcile('start'));

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      clearInterval(timer);
      if (retryTimer) clearTimeout(retryTimer);
      abort.abort(new Error('node closed'));
      status.stop();
      Promise.resolve(reading).catch(() => undefined)
        .then(() => state.close(removed)).catch(() => undefined).then(() => {
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('cms-call-tracker', CmsCallTracker as any);
};

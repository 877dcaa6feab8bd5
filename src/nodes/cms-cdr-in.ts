/**
 * cms-cdr-in: the HTTP endpoint Cisco Meeting Server POSTs its CDR XML to (specs/cms.md §4).
 * Answers 200 only after every record of the POST was parsed and sent on; anything else gets a
 * non-2xx answer, so CMS keeps the records and sends them again.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { parseCdrDocument, CdrParseError, type CmsRecord, type ValueMode } from '../cms/parse';
import { ReceiverTracker, type ReceiverWarning } from '../cms/receiver';
import { checkSender, parseAllowList, plainAddress, isOpen, type SenderRules } from '../common/http-auth';
import { normalisePath, effectivePath, readBody, answer, queryOf, BodyTooLargeError, BodyConsumedError, type Handler } from './lib/http-endpoint';
import { httpNodesDisabled, mountReceiver, limitedWarn } from './lib/receiver';
import { nodeState } from './lib/state';
import { properties, settingMs } from './lib/props';
import { reportConfigProblem, useConfig, ConfigProblem, type ConfigHandle } from './lib/config';
import { claimBatch, confirmAll, releaseAll, cmsClaimKey, ClaimPendingError, type BatchClaim } from '../ha/batch';
import { RedisUnavailableError } from '../ha/connection';
import type { SharedState } from '../ha/shared';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

interface CmsCdrInDef extends NodeDef {
  path?: string;
  maxBodyMb?: number | string;
  output?: 'record' | 'post';
  values?: ValueMode;
  allowFrom?: string;
  stateStore?: string;
  /** `sent`: 200 once the records were sent on; `flow`: an http response node in the flow answers. */
  ack?: 'sent' | 'flow';
  ackTimeout?: number | string;
  /** A cdrflow-redis config node: records are claimed there, so two instances pass each on once. */
  redis?: string;
}
/** What every message of one POST says about where it came from (msg.cms). */
interface Meta {
  receiver: string;
  path: string;
  remoteAddress: string;
  query: Record<string, unknown>;
}
interface Credentials {
  token?: string;
  user?: string;
  password?: string;
}

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CmsCdrIn(this: Node<Credentials>, def: CmsCdrInDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const path = normalisePath(prop.text('path'), '/cdr');
    const limit = Math.round(prop.number('maxBodyMb', 10, { positive: true }) * 1024 * 1024);
    const ackByFlow = prop.choice('ack', ['sent', 'flow'], 'sent') === 'flow';
    // the flow answers once per POST, so it gets the POST as one message
    const perPost = prop.choice('output', ['record', 'post'], 'record') === 'post' || ackByFlow;
    const ackTimeoutMs = prop.seconds('ackTimeout', 30, { positive: true });
    const mode = prop.choice<ValueMode>('values', ['typed', 'xmltodict'], 'typed');
    const creds = node.credentials ?? {};
    const status = new ThrottledStatus(node);
    const url = effectivePath(RED.settings as any, path);
    let received = 0;
    // a claim not confirmed runs out after this: a holder that died blocks a record no longer
    const claimTtlMs = (ackByFlow ? ackTimeoutMs : 0) + 30_000;
    /** settings.js `cmsCdrInClaimWaitMs`: how long to wait for a record another instance is delivering. */
    const claimWaitMs = settingMs(RED, 'cmsCdrInClaimWaitMs', 5000);

    let rules: SenderRules;
    try {
      rules = {
        allow: parseAllowList(prop.text('allowFrom')),
        basic: creds.user ? { user: creds.user, password: creds.password ?? '' } : null,
        token: creds.token ? creds.token : null,
      };
    } catch (err) {
      reportConfigProblem(RED, node, 'cms-cdr-in', RED._('cms-cdr-in.errors.allowList', { error: (err as Error).message }), status);
      return;
    }

    if (httpNodesDisabled(RED, node, 'cms-cdr-in', status)) return;
    const open = isOpen(rules);
    if (open) node.warn(RED._('cms-cdr-in.errors.open', { url }));
    const where = open ? RED._('cms-cdr-in.status.open', { url }) : url;

    let tracker = new ReceiverTracker();
    const state = nodeState(RED, node, {
      type: 'cms-cdr-in',
      store: prop.text('stateStore'),
      restore: (saved, journal) => {
        const t = ReceiverTracker.restore(saved);
        for (const e of journal) t.replay(e);
        return t;
      },
      snapshot: (t) => t.snapshot(),
    });
    let loaded = false;
    const ready = state.ready.then((t) => {
      tracker = t;
      loaded = true;
    });

    // refusals are answered at once but reported at most once a minute per reason
    const warnOnce = limitedWarn(node);

    // Set on close: a POST still being read must not be acknowledged, since its messages would go
    // into a stopped flow; CMS gets 503 and sends it again to the new node.
    let closing = false;
    // POSTs waiting for the flow's http response node, answered 503 on close.
    const awaitingFlow = new Map<any, NodeJS.Timeout>();

    /** Answers `code` with the reason; the status says in a few words what was refused, the log and Catch say why. */
    const fail = (res: any, code: number, why: string, reason: string, msg: NodeMessage, report: boolean) => {
      answer(res, code, reason);
      status.set({ fill: 'red', shape: 'ring', text: `${code}: ${RED._(`cms-cdr-in.status.failed.${why}`)} · ${new Date().toTimeString().slice(0, 5)}` }, true);
      if (report) node.error(reason, msg);
    };

    const post: Handler = (req, res) => {
      const remote = plainAddress(req.ip ?? req.socket.remoteAddress);
      // Express has parsed the query already; a copy, since the token is taken out of it
      const query: Record<string, unknown> = req.query ? { ...req.query } : queryOf(req.originalUrl ?? req.url);
      const tokenGiven = (req.params?.token as string | undefined) ?? (typeof query.token === 'string' ? query.token : null);
      delete query.token; // never pass the secret on
      const refusal = checkSender(rules, { address: remote, authorization: req.headers.authorization, token: tokenGiven });
      if (refusal) {
        if (refusal.challenge) res.setHeader('WWW-Authenticate', refusal.challenge);
        const reason = RED._(`cms-cdr-in.refused.${refusal.code}`);
        answer(res, refusal.status, reason);
        warnOnce(refusal.code, RED._('cms-cdr-in.errors.refused', { status: refusal.status, reason, remote }));
        status.set({ fill: 'yellow', shape: 'ring', text: `${refusal.status}: ${remote}` }, true);
        return;
      }
      const meta: Meta = { receiver: node.id, path: url, remoteAddress: remote, query };
      readBody(req, limit)
        .then(async (body) => {
          if (!loaded) await ready;
          if (closing) {
            fail(res, 503, 'closing', RED._('cms-cdr-in.errors.closing'), { topic: 'error', payload: null, cms: meta } as NodeMessage, false);
            return;
          }
          let doc;
          try {
            doc = parseCdrDocument(body, mode);
          } catch (err) {
            if (!(err instanceof CdrParseError)) throw err;
            const reason = RED._(`cms-cdr-in.errors.${err.code}`, { detail: err.message });
            fail(res, 400, err.code, reason, { topic: 'error', payload: body.subarray(0, 2048).toString('utf8'), cms: meta } as NodeMessage, true);
            return;
          }
          const { fresh, duplicates, warnings } = tracker.review(doc.records, remote);
          // Shared state: only the records this instance claimed first are sent on; the others were (or
          // are being) sent on by another instance. All fresh ones count as handled here (recordIndex).
          let claimed: BatchClaim | null = null;
          let toSend = fresh;
          if (shared && fresh.length > 0) {
            const s = shared.get();
            claimed = await claimBatch(s.claims, fresh.map(cmsClaimKey), { ttlMs: claimTtlMs, waitMs: claimWaitMs });
            const won = claimed.won;
            toSend = fresh.filter((_, i) => won[i]);
          }
          const confirm = async (): Promise<void> => {
            if (!claimed || claimed.keys.length === 0) return;
            try {
              const late = await confirmAll(shared!.get().claims, claimed.keys, shared!.get().dedupMs);
              if (late > 0) warnOnce('unconfirmed', RED._('cms-cdr-in.warnings.unconfirmed', { count: late, error: 'claim ran out' }));
            } catch (err) {
              // the records went on already: the 200 stands, the other instance may send them again later
              warnOnce('unconfirmed', RED._('cms-cdr-in.warnings.unconfirmed', { count: claimed.keys.length, error: (err as Error).message }));
            }
          };
          const giveBack = async (): Promise<void> => {
            if (claimed && claimed.keys.length > 0) await releaseAll(shared!.get().claims, claimed.keys);
          };
          // delivered: remembered in the journal (on disk when this returns, for the file store)
          const delivered = (): Promise<void> | void => {
            const saved = fresh.length > 0 ? state.record(tracker.commit(fresh, remote)) : undefined;
            received += fresh.length;
            const dup = duplicates > 0 ? ` (+${count(duplicates)} dup)` : '';
            status.set(() => (warnings.length > 0
              ? { fill: 'yellow', shape: 'dot', text: `${where} · ${count(received)}${dup} · ${warnings[0].kind}` }
              : { fill: open ? 'yellow' : 'green', shape: 'dot', text: `${where} · ${count(received)}${dup}` }));
            return saved;
          };
          const warnMsgs = warnings.map((w) => warningMessage(w, meta));
          for (const w of warnings) node.warn(RED._(`cms-cdr-in.warnings.${w.kind}`, w as any));
          if (ackByFlow && toSend.length > 0) {
            // The flow acknowledges (an http response node, after it stored the records): only a 2xx
            // answer marks them delivered; anything else, or silence until the timeout, lets CMS resend.
            // msg.res only: the http response node needs nothing else, and msg.req would carry the
            // sender's Authorization header and token
            const msg = postMessage(toSend, doc.session, doc.callBridge, meta) as NodeMessage & Record<string, unknown>;
            msg.res = { _res: res };
            const timer = setTimeout(() => {
              awaitingFlow.delete(res);
              if (!res.headersSent) {
                fail(res, 503, 'ackTimeout', RED._('cms-cdr-in.errors.ackTimeout', { seconds: ackTimeoutMs / 1000 }), { topic: 'error', payload: null, cms: meta } as NodeMessage, true);
              }
            }, ackTimeoutMs);
            awaitingFlow.set(res, timer);
            res.once('finish', () => {
              clearTimeout(timer);
              awaitingFlow.delete(res);
              // the flow's answer is already out: recorded right after it (a resend is dropped from then on)
              if (res.statusCode >= 200 && res.statusCode < 300 && !closing) void Promise.resolve(delivered()).then(confirm, giveBack).catch(() => undefined);
              else void giveBack().catch(() => undefined);
            });
            res.once('close', () => {
              clearTimeout(timer);
              awaitingFlow.delete(res);
              // closed without a finished answer: not delivered, the claims go back
              if (!res.writableFinished) void giveBack().catch(() => undefined);
            });
            node.send(msg);
            for (const w of warnMsgs) node.send([null, w]);
            return;
          }
          // One send per message: Node-RED deep-clones every message after the first of a single send
          // call (they might share objects); ours are built fresh for this send, so that clone is waste.
          try {
            if (perPost) {
              if (toSend.length > 0) node.send(postMessage(toSend, doc.session, doc.callBridge, meta));
            } else {
              for (const r of toSend) node.send(recordMessage(r, meta));
            }
            for (const w of warnMsgs) node.send([null, w]);
            const saved = delivered();
            if (saved) await saved;
          } catch (err) {
            // not acknowledged: CMS resends, and the records must be claimable again (here or elsewhere)
            await giveBack().catch(() => undefined);
            throw err;
          }
          if (claimed) await confirm(); // only with a shared state: no extra turn on the plain path
          answer(res, 200);
        })
        .catch((err: Error) => {
          if (err instanceof BodyConsumedError) {
            // CMS posts XML; a JSON or form body parsed before this route is not a CDR document
            fail(res, 415, 'consumed', RED._('cms-cdr-in.errors.consumed', { type: err.contentType }), { topic: 'error', payload: null, cms: meta } as NodeMessage, true);
          } else if (err instanceof RedisUnavailableError || err instanceof ConfigProblem) {
            // nothing claimed, nothing sent on: 503 keeps the records at CMS until the shared state is back
            const reason = err instanceof ConfigProblem
              ? RED._('cms-cdr-in.errors.config', { error: err.message })
              : RED._('cms-cdr-in.errors.redis', { error: err.message });
            fail(res, 503, 'redis', reason, { topic: 'error', payload: null, cms: meta } as NodeMessage, false);
            warnOnce('redis', reason);
          } else if (err instanceof ClaimPendingError) {
            fail(res, 503, 'claimPending', RED._('cms-cdr-in.errors.claimPending', { count: err.count }), { topic: 'error', payload: null, cms: meta } as NodeMessage, false);
          } else if (err instanceof BodyTooLargeError) {
            fail(res, 413, 'tooLarge', RED._('cms-cdr-in.errors.tooLarge', { limit: count(limit) }), { topic: 'error', payload: null, cms: meta } as NodeMessage, true);
          } else {
            // not delivered: 503 makes CMS send the records again
            fail(res, 503, 'internal', RED._('cms-cdr-in.errors.internal', { error: err.message }), { topic: 'error', payload: null, cms: meta } as NodeMessage, true);
          }
        });
    };
    const paths = rules.token ? [path, `${path === '/' ? '' : path}/:token`] : [path];
    const endpoint = mountReceiver(RED, node, 'cms-cdr-in', url, paths, post, status);
    if (endpoint) status.set({ fill: open ? 'yellow' : 'green', shape: 'ring', text: where }, true);

    // Shared state (optional): its connection is made now, so the status shows Redis down before a POST
    let shared: ConfigHandle<SharedState> | null = null;
    let stopWatching: (() => void) | null = null;
    const sharedId = prop.text('redis');
    if (sharedId && endpoint) {
      shared = useConfig<SharedState>(RED, node, 'cms-cdr-in', sharedId, status);
      if (shared.problem === null) {
        const link = shared.get().redis;
        const show = (up: boolean) => status.set(up
          ? { fill: open ? 'yellow' : 'green', shape: 'ring', text: where }
          : { fill: 'red', shape: 'ring', text: `${where} · ${RED._('cms-cdr-in.status.redisDown')}` }, true);
        stopWatching = link.onChange((state) => {
          if (state === 'up' || state === 'down') show(state === 'up');
        });
        if (link.state === 'down') show(false);
      }
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      stopWatching?.();
      endpoint?.close();
      for (const [res, timer] of awaitingFlow) {
        clearTimeout(timer);
        answer(res, 503, RED._('cms-cdr-in.errors.closing'));
      }
      awaitingFlow.clear();
      status.stop();
      state.close(removed).catch(() => undefined).then(() => {
        node.status({});
        done();
      });
    });
  }

  function recordMessage(r: CmsRecord, meta: Meta): NodeMessage {
    // written out, not spread: this runs for every record, and a spread costs as much as the rest of it
    const cms = {
      receiver: meta.receiver, path: meta.path, remoteAddress: meta.remoteAddress, query: meta.query,
      session: r.session, callBridge: r.callBridge, type: r.type, recordIndex: r.recordIndex, correlatorIndex: r.correlatorIndex, objectType: r.objectType, id: r.id,
    };
    return { topic: r.type ?? 'record', payload: r.xmltodict ?? typedPayload(r), cms } as NodeMessage;
  }

  function postMessage(records: CmsRecord[], session: string | null, callBridge: string | null, meta: Meta): NodeMessage {
    return {
      topic: 'records',
      payload: records.map((r) => r.xmltodict ?? typedPayload(r)),
      cms: { ...meta, session, callBridge, count: records.length },
    } as NodeMessage;
  }

  function warningMessage(w: ReceiverWarning, meta: Meta): NodeMessage {
    return { topic: w.kind, payload: w, cms: meta } as NodeMessage;
  }

  RED.nodes.registerType('cms-cdr-in', CmsCdrIn as any, {
    credentials: { token: { type: 'password' }, user: { type: 'text' }, password: { type: 'password' } },
  });
};

function typedPayload(r: CmsRecord): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    type: r.type,
    time: r.time,
    recordIndex: r.recordIndex,
    correlatorIndex: r.correlatorIndex,
    numPrecedingRecordsMissing: r.numPrecedingRecordsMissing,
    session: r.session,
    callBridge: r.callBridge,
    objectType: r.objectType,
    id: r.id,
  };
  for (const k in r.body) payload[k] = r.body[k];
  return payload;
}

/**
 * ccfs-bill-request: asks CC-FS to generate a CDR / recording-index file (queryBillData, auth-v2 signed).
 * Parameters come from the node's properties, overridden by `msg.payload`; everything is validated
 * before anything is sent, and a window over the server's limit (3 days) becomes consecutive requests.
 * One message per request with the responseId and the file name CC-FS will announce. Once CC-FS has
 * refused the account (401/403), nothing is signed: every message fails with the reason (see the account).
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import type { CcfsAccount } from '../ccfs/account';
import { CcfsLockedError } from '../ccfs/lockout';
import { planBillQueries, expectedBillFileName, CcfsValidationError, CcfsAuthError, CcfsResultError, type PlannedQuery, type BillQuery, type QueryResult } from '../ccfs/client';
import { periodWindow, billQueryInput, PERIODS, QUERY_FIELDS } from '../ccfs/period';
import { properties } from './lib/props';
import { useConfig, ConfigProblem } from './lib/config';
import { ThrottledStatus } from './lib/status';
import { packageSetup } from './lib/setup';

/** The node's properties: the query fields of BillQuery (as text), the period and the account. */
type BillRequestDef = NodeDef & Partial<Record<keyof BillQuery, string>> & {
  account?: string;
  period?: 'fields' | 'yesterday' | 'today' | 'hours';
  hours?: number | string;
  maxDays?: number | string;
};

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CcfsBillRequest(this: Node, def: BillRequestDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const prop = properties(RED, node, def);
    const status = new ThrottledStatus(node);
    const config = useConfig<CcfsAccount>(RED, node, 'ccfs-bill-request', def.account, status);
    const maxDays = prop.number('maxDays', 3, { positive: true });
    const hours = prop.number('hours', 24, { positive: true });
    const period = prop.choice('period', PERIODS, 'fields');
    const fields: Record<string, string> = {};
    for (const f of QUERY_FIELDS) fields[f] = prop.text(f);
    const controller = new AbortController();
    let queue: Promise<void> = Promise.resolve();
    let total = 0;
    // red while the account signs nothing (a lock-out kept from an earlier run included)
    const unwatch = config.problem !== null ? () => undefined : config.get().lock.watch((l) => status.set({ fill: 'red', shape: 'ring', text: RED._('ccfs-bill-request.status.lockedOut', { status: l.status }) }, true));

    async function run(msg: NodeMessage, send: (m: NodeMessage) => void): Promise<void> {
      const account = config.get();
      const zone = account.config.timeZone;
      const now = Date.now();
      const window = period === 'fields' ? null : periodWindow(period, zone, now, hours);
      let planned: PlannedQuery[];
      try {
        planned = planBillQueries(billQueryInput(fields, msg.payload, window, zone), { timeZone: zone, now, maxDays });
      } catch (err) {
        if (err instanceof CcfsValidationError) throw new Error(RED._('ccfs-bill-request.errors.invalid', { field: err.field, reason: err.reason }));
        throw err;
      }
      const client = account.client();
      for (let i = 0; i < planned.length; i++) {
        const part = planned[i];
        status.set({ fill: 'blue', shape: 'dot', text: planned.length > 1 ? RED._('ccfs-bill-request.status.requestingPart', { part: i + 1, parts: planned.length }) : RED._('ccfs-bill-request.status.requesting') });
        const requestedAt = Date.now();
        let result: QueryResult;
        try {
          result = await client.queryBillData(part.msgBody, controller.signal);
        } catch (err) {
          if (err instanceof CcfsLockedError) throw new CcfsLockedError(RED._('ccfs-bill-request.errors.lockedOut', { reason: err.message }), err.lockout);
          throw err;
        }
        const billFileName = expectedBillFileName(result.responseId, requestedAt, zone);
        await account.remember({
          responseId: result.responseId, billFileName, requestedAt: new Date(requestedAt).toISOString(), node: node.id,
          msgBody: { ...part.msgBody }, part: i + 1, parts: planned.length, correlation: (msg as { _msgid?: string })._msgid,
        });
        const out = (i === planned.length - 1 ? msg : RED.util.cloneMessage(msg)) as NodeMessage & Record<string, unknown>;
        out.topic = 'ccfs/request';
        out.payload = {
          responseId: result.responseId, billFileName, beginTime: part.msgBody.beginTime, endTime: part.msgBody.endTime,
          beginUtc: part.beginUtc, endUtc: part.endUtc, dataType: part.msgBody.dataType, part: i + 1, parts: planned.length,
        };
        out.ccfs = { request: part.msgBody, responseId: result.responseId, billFileName, timeZone: zone, response: result.response, node: node.id };
        send(out);
        total++;
      }
      status.set({ fill: 'green', shape: 'dot', text: RED._('ccfs-bill-request.status.done', { count: total }) });
    }

    node.on('input', (msg: NodeMessage, send: (m: NodeMessage) => void, done: (err?: Error) => void) => {
      // one request at a time: CC-FS flow-controls queries (0300009)
      queue = queue.then(() => run(msg, send)).then(() => done(), (err: Error) => {
        const text = err instanceof ConfigProblem ? RED._('ccfs-bill-request.status.badConfig')
          : err instanceof CcfsLockedError ? RED._('ccfs-bill-request.status.lockedOut', { status: err.lockout.status })
          : err instanceof CcfsAuthError ? RED._(err.status === 403 ? 'ccfs-bill-request.status.locked' : 'ccfs-bill-request.status.unauthorized')
            : err instanceof CcfsResultError ? `${err.code}: ${err.meaning}` : err.message;
        status.set({ fill: 'red', shape: 'ring', text: text.slice(0, 40) }, true);
        done(err);
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      unwatch();
      controller.abort(new Error(RED._('ccfs-bill-request.errors.closed')));
      status.stop();
      queue.catch(() => undefined).then(() => {
        node.status({});
        done();
      });
    });
  }

  RED.nodes.registerType('ccfs-bill-request', CcfsBillRequest as any);
};

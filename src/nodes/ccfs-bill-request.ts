/**
 * ccfs-bill-request: asks CC-FS to generate a CDR / recording-index file (queryBillData, auth-v2 signed).
 * Parameters come from the node's properties, overridden by `msg.payload`; everything is validated
 * before anything is sent, and a window over the server's limit (3 days) becomes consecutive requests.
 * One message per request with the responseId and the file name CC-FS will announce.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import type { CcfsAccount } from '../ccfs/account';
import { planBillQueries, expectedBillFileName, CcfsValidationError, CcfsAuthError, CcfsResultError, OPTIONAL_FIELDS, type PlannedQuery } from '../ccfs/client';
import { formatLocal, localParts, zonedToUtc } from '../common/time';
import { ThrottledStatus } from './lib/status';

interface BillRequestDef extends NodeDef {
  account?: string;
  period?: 'fields' | 'yesterday' | 'today' | 'hours';
  hours?: number | string;
  beginTime?: string;
  endTime?: string;
  dataType?: string;
  callBackURL?: string;
  accountId?: string;
  agentId?: string;
  callId?: string;
  callerNo?: string;
  calleeNo?: string;
  calleeNo2?: string;
  maxDays?: number | string;
}

const FIELDS = ['beginTime', 'endTime', 'dataType', 'callBackURL', ...OPTIONAL_FIELDS] as const;

export = function register(RED: NodeAPI): void {
  function CcfsBillRequest(this: Node, def: BillRequestDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const accountNode = def.account ? (RED.nodes.getNode(def.account) as (Node & { ccfs?: CcfsAccount }) | null) : null;
    const account = accountNode?.ccfs ?? null;
    const maxDaysNum = Number(def.maxDays);
    const maxDays = Number.isFinite(maxDaysNum) && maxDaysNum > 0 ? maxDaysNum : 3;
    const hoursNum = Number(def.hours);
    const hours = Number.isFinite(hoursNum) && hoursNum > 0 ? hoursNum : 24;
    const controller = new AbortController();
    let queue: Promise<void> = Promise.resolve();
    let total = 0;

    if (!account) status.set({ fill: 'red', shape: 'ring', text: RED._('ccfs-bill-request.status.noAccount') }, true);
    else {
      const problem = account.problem();
      if (problem) status.set({ fill: 'red', shape: 'ring', text: RED._('ccfs-bill-request.status.badAccount') }, true);
    }

    /** Node properties, overridden by msg.payload fields; times may be Date, epoch ms or ISO text. */
    function parameters(msg: NodeMessage, zone: string, now: number): Record<string, unknown> {
      const p: Record<string, unknown> = {};
      for (const f of FIELDS) {
        const v = (def as unknown as Record<string, unknown>)[f];
        if (typeof v === 'string' && v.trim() !== '') p[f] = v.trim();
      }
      const period = def.period ?? 'fields';
      if (period !== 'fields') Object.assign(p, window(period, zone, now));
      const payload = msg.payload;
      if (payload && typeof payload === 'object' && !Array.isArray(payload) && !Buffer.isBuffer(payload)) {
        for (const f of FIELDS) {
          const v = (payload as Record<string, unknown>)[f];
          if (v !== undefined && v !== null && v !== '') p[f] = v;
        }
      }
      for (const f of ['beginTime', 'endTime']) p[f] = asLocal(p[f], zone);
      return p;
    }

    function window(period: string, zone: string, now: number): { beginTime: string; endTime: string } {
      if (period === 'hours') {
        return { beginTime: formatLocal(now - hours * 3_600_000, zone, 'sql'), endTime: formatLocal(now, zone, 'sql') };
      }
      const today = localParts(now, zone);
      if (period === 'today') return { beginTime: `${formatLocal(now, zone, 'sql').slice(0, 10)} 00:00:00`, endTime: formatLocal(now, zone, 'sql') };
      // yesterday: the previous calendar day in the tenant's zone
      const midnight = zonedToUtc({ ...today, hour: 0, minute: 0, second: 0 }, zone).date.getTime();
      const day = formatLocal(midnight - 12 * 3_600_000, zone, 'sql').slice(0, 10);
      return { beginTime: `${day} 00:00:00`, endTime: `${day} 23:59:59` };
    }

    function asLocal(v: unknown, zone: string): unknown {
      if (v instanceof Date) return formatLocal(v.getTime(), zone, 'sql');
      if (typeof v === 'number' && Number.isFinite(v)) return formatLocal(v, zone, 'sql');
      if (typeof v === 'string' && /[Tt].*([Zz]|[+-]\d\d:?\d\d)$/.test(v.trim()) && !Number.isNaN(Date.parse(v))) {
        return formatLocal(Date.parse(v), zone, 'sql');
      }
      return v;
    }

    async function run(msg: NodeMessage, send: (m: NodeMessage) => void): Promise<void> {
      if (!account) throw new Error(RED._('ccfs-bill-request.errors.noAccount'));
      const zone = account.config.timeZone;
      const now = Date.now();
      let planned: PlannedQuery[];
      try {
        planned = planBillQueries(parameters(msg, zone, now), { timeZone: zone, now, maxDays });
      } catch (err) {
        if (err instanceof CcfsValidationError) throw new Error(RED._('ccfs-bill-request.errors.invalid', { field: err.field, reason: err.reason }));
        throw err;
      }
      const client = account.client();
      for (let i = 0; i < planned.length; i++) {
        const part = planned[i];
        status.set({ fill: 'blue', shape: 'dot', text: planned.length > 1 ? RED._('ccfs-bill-request.status.requestingPart', { part: i + 1, parts: planned.length }) : RED._('ccfs-bill-request.status.requesting') });
        const requestedAt = Date.now();
        const result = await client.queryBillData(part.msgBody, controller.signal);
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
        const text = err instanceof CcfsAuthError
          ? RED._(err.status === 403 ? 'ccfs-bill-request.status.locked' : 'ccfs-bill-request.status.unauthorized')
          : err instanceof CcfsResultError ? `${err.code}: ${err.meaning}` : err.message;
        status.set({ fill: 'red', shape: 'ring', text: text.slice(0, 40) }, true);
        done(err);
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
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

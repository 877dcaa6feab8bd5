/**
 * cms-call-message: sets or clears the on-screen message of a CMS call through the REST API
 * (`PUT /api/v1/calls/<id>`, specs/cms.md §6). Requests for one call are sent one after another, in
 * the order the messages arrived, so a "set" never overtakes the "clear" that followed it.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import type { CallMessage, MessagePosition, CmsApiClient } from '../cms/api';
import { useConfig } from './lib/config';
import { ThrottledStatus, count } from './lib/status';

interface CmsCallMessageDef extends NodeDef {
  server?: string;
  action?: 'set' | 'clear';
  text?: string;
  position?: string;
  duration?: string | number;
}

const POSITIONS = new Set(['top', 'middle', 'bottom']);

export = function register(RED: NodeAPI): void {
  function CmsCallMessage(this: Node, def: CmsCallMessageDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const server = useConfig<CmsApiClient>(RED, node, 'cms-call-message', def.server, status);
    const queues = new Map<string, Promise<void>>();
    let sets = 0;
    let clears = 0;
    let closing = false;
    const abort = new AbortController();

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
      const action = message.text === '' ? 'clear' : 'set';
      const previous = queues.get(callId) ?? Promise.resolve();
      const run = previous.then(async () => {
        if (closing) throw new Error(RED._('cms-call-message.errors.closing'));
        status.set({ fill: 'blue', shape: 'dot', text: RED._(action === 'set' ? 'cms-call-message.status.setting' : 'cms-call-message.status.clearing', { call: callId.slice(0, 8) }) });
        const result = await server.get().setCallMessage(callId, message, abort.signal);
        if (action === 'set') sets++;
        else clears++;
        msg.cmsApi = { callId, action, baseUrl: result.baseUrl, status: result.status, attempts: result.attempts, message };
        if (msg.topic === undefined) msg.topic = action;
        status.set({ fill: 'green', shape: 'dot', text: RED._('cms-call-message.status.ok', { set: count(sets), cleared: count(clears) }) });
        send(msg);
        done();
      }).catch((err: Error) => {
        status.set({ fill: 'red', shape: 'ring', text: (err.message ?? String(err)).slice(0, 40) }, true);
        done(new Error(RED._('cms-call-message.errors.failed', { action, callId, error: err.message })));
      });
      const tail = run.then(() => undefined);
      queues.set(callId, tail);
      void tail.then(() => {
        if (queues.get(callId) === tail) queues.delete(callId);
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      abort.abort(new Error('node closed'));
      status.stop();
      Promise.allSettled([...queues.values()]).then(() => {
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

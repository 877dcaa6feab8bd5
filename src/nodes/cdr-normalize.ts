/**
 * cdr-normalize: maps the messages of every source node of this package (cms-cdr-in, comx-cdr-fetch,
 * webex-cdr-pull, ccfs-callback-in) to one CDR schema (src/normalize, design.md §4). The source is
 * recognised by the metadata object its node sets (msg.cms, msg.comx, msg.webex, msg.ccfs). A message
 * that cannot be mapped goes to Catch via done(err); no half-filled record is ever sent.
 * CMS legs are joined from their start, update and end records; that state survives redeploys and
 * restarts (nodeState).
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { CmsLegJoiner, CMS_LIMITS, NormalizeError, normalizeMessage, type MapOptions } from '../normalize';
import { isoUtc } from '../common/time';
import { nodeState } from './lib/state';
import { properties } from './lib/props';
import { reportConfigProblem } from './lib/config';
import { ThrottledStatus, count } from './lib/status';
import { packageSetup } from './lib/setup';

interface CdrNormalizeDef extends NodeDef {
  zone?: string;
  instance?: string;
  raw?: 'keep' | 'drop';
  output?: 'record' | 'array';
  maxLegs?: number | string;
  stateStore?: string;
}

export = function register(RED: NodeAPI): void {
  packageSetup(RED);

  function CdrNormalize(this: Node, def: CdrNormalizeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const prop = properties(RED, node, def);
    const zoneText = prop.text('zone');
    const zone = zoneText === '' ? '' : prop.zone('zone', '');
    if (zone === null) {
      const text = RED._('cdr-normalize.errors.zone', { zone: zoneText });
      reportConfigProblem(RED, node, 'cdr-normalize', text, status);
      // every message still completes, with the reason, so Catch and Complete nodes see it
      node.on('input', (_msg: NodeMessage, _send: unknown, done: (err?: Error) => void) => done(new Error(text)));
      return;
    }
    const keepRaw = prop.choice('raw', ['keep', 'drop'], 'keep') === 'keep';
    const asArray = prop.choice('output', ['record', 'array'], 'record') === 'array';
    const limits = { ...CMS_LIMITS, maxLegs: prop.number('maxLegs', CMS_LIMITS.maxLegs, { positive: true, integer: true }) };
    const instance = prop.text('instance') || undefined;

    let joiner = new CmsLegJoiner(limits, keepRaw);
    // Open CMS legs: each record that changes them is journaled (a line per record), and a snapshot of
    // the open legs is written only once the journal outweighs the last one.
    const state = nodeState(RED, node, {
      type: 'cdr-normalize',
      store: prop.text('stateStore'),
      restore: (saved, journal) => CmsLegJoiner.fromSaved(limits, saved, journal, keepRaw),
      snapshot: (j) => j.snapshot(),
    });
    const ready = state.ready.then((j) => {
      joiner = j;
    });

    let emitted = 0;
    let failed = 0;
    const showStatus = () => {
      const text = RED._('cdr-normalize.status.count', { count: count(emitted), open: count(joiner.openLegs), failed: count(failed) });
      status.set({ fill: failed > 0 ? 'yellow' : 'green', shape: 'dot', text });
    };

    node.on('input', (msg: NodeMessage & Record<string, any>, send: (m: any) => void, done: (err?: Error) => void) => {
      ready.then(() => {
        const opts: MapOptions = { observedAt: isoUtc(Date.now()), keepRaw, instance, zone: zone || undefined };
        let result;
        try {
          result = normalizeMessage(msg, joiner, opts);
        } catch (err) {
          failed++;
          showStatus();
          if (err instanceof NormalizeError) {
            done(new Error(RED._('cdr-normalize.errors.unmappable', { topic: String(msg.topic ?? ''), error: err.message })));
            return;
          }
          throw err;
        }
        for (const rec of result.joined) void state.record(keepRaw ? rec : { ...rec, raw: undefined });
        if (result.records.length > 0) {
          emitted += result.records.length;
          if (asArray) {
            const out = RED.util.cloneMessage(msg) as NodeMessage & Record<string, unknown>;
            out.topic = `cdr/${result.source}`;
            out.payload = result.records;
            send(out);
          } else {
            const outs = result.records.map((r) => {
              const out = RED.util.cloneMessage(msg) as NodeMessage & Record<string, unknown>;
              out.topic = `cdr/${result.source}`;
              out.payload = r;
              return out;
            });
            send([outs]);
          }
        }
        showStatus();
        done();
      }).catch((err: Error) => done(err));
    });

    node.on('close', (removed: boolean, done: () => void) => {
      status.stop();
      state.close(removed).catch(() => undefined).then(() => {
        node.status({});
        done();
      });
    });
  }

  RED.nodes.registerType('cdr-normalize', CdrNormalize as any);
};

/**
 * cdr-normalize: maps the messages of every source node of this package (cms-cdr-in, comx-cdr-fetch,
 * webex-cdr-pull, ccfs-callback-in) to one CDR schema (src/normalize, design.md §4). The source is
 * recognised by the metadata object its node sets (msg.cms, msg.comx, msg.webex, msg.ccfs). A message
 * that cannot be mapped goes to Catch via done(err); no half-filled record is ever sent.
 * CMS legs are joined from their start, update and end records; that state survives redeploys and
 * restarts (nodeState).
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { CmsLegJoiner, CMS_LIMITS, NormalizeError, normalizeMessage, type CmsJoinState, type MapOptions } from '../normalize';
import { isoUtc, isValidZone } from '../common/time';
import { nodeState } from './lib/state';
import { ThrottledStatus, count } from './lib/status';

interface CdrNormalizeDef extends NodeDef {
  zone?: string;
  instance?: string;
  raw?: 'keep' | 'drop';
  output?: 'record' | 'array';
  maxLegs?: number | string;
  stateStore?: string;
}

const SAVE_DELAY_MS = 500;

export = function register(RED: NodeAPI): void {
  function CdrNormalize(this: Node, def: CdrNormalizeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const zone = (def.zone ?? '').trim();
    if (zone !== '' && !isValidZone(zone)) {
      node.error(RED._('cdr-normalize.errors.zone', { zone }));
      status.set({ fill: 'red', shape: 'ring', text: RED._('cdr-normalize.status.badConfig') }, true);
      return;
    }
    const keepRaw = def.raw !== 'drop';
    const asArray = def.output === 'array';
    const maxLegsN = Number(def.maxLegs);
    const limits = { ...CMS_LIMITS, maxLegs: Number.isInteger(maxLegsN) && maxLegsN > 0 ? maxLegsN : CMS_LIMITS.maxLegs };
    const instance = (def.instance ?? '').trim() || undefined;

    let joiner = new CmsLegJoiner(limits, null, keepRaw);
    const state = nodeState<CmsJoinState>(RED, node, 'cdr-normalize', def.stateStore, () => joiner.snapshot(), SAVE_DELAY_MS);
    const ready = state.ready.then((saved) => {
      if (saved) joiner = new CmsLegJoiner(limits, saved, keepRaw);
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
        if (result.source === 'cms') state.changed();
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

/**
 * What the two HTTP receivers (cms-cdr-in, ccfs-callback-in) do alike around their own handler:
 * refuse to start when settings disable HTTP nodes, mount the route (one owner per path, a catchable
 * error otherwise), answer health probes, and warn about refused senders without flooding the log.
 * Each node's catalog provides `<type>.errors.httpDisabled|pathInUse` and `<type>.status.httpDisabled|pathInUse`.
 */
import type { NodeAPI, Node, NodeMessage } from 'node-red';
import { mountEndpoint, PathInUseError, type Endpoint, type Handler } from './http-endpoint';
import type { ThrottledStatus } from './status';

/** True (after a warning and a grey status) when settings.js sets httpNodeRoot to false. */
export function httpNodesDisabled(RED: NodeAPI, node: Node, type: string, status: ThrottledStatus): boolean {
  if ((RED.settings as any).httpNodeRoot !== false) return false;
  node.warn(RED._(`${type}.errors.httpDisabled`));
  status.set({ fill: 'grey', shape: 'ring', text: RED._(`${type}.status.httpDisabled`) }, true);
  return true;
}

/**
 * Mounts POST (and GET for probes) on RED.httpNode, as core `http in` does; a taken path is a catchable
 * error and a red status.
 */
export function mountReceiver(RED: NodeAPI, node: Node, type: string, url: string, paths: string[], post: Handler, status: ThrottledStatus): Endpoint | null {
  const get: Handler = (_req, res) => {
    res.status(200).type('text/plain').send(`${type} ready\n`);
  };
  let endpoint: Endpoint;
  try {
    endpoint = mountEndpoint(RED.httpNode as any, RED.settings as any, node.id, paths, { post, get });
  } catch (err) {
    if (!(err instanceof PathInUseError)) throw err;
    node.error(RED._(`${type}.errors.pathInUse`, { path: url, owner: nodeLabel(RED, err.owner) }), { topic: 'error', payload: null } as NodeMessage);
    status.set({ fill: 'red', shape: 'ring', text: RED._(`${type}.status.pathInUse`) }, true);
    return null;
  }
  return endpoint;
}

/**
 * How an error names another node: `"<name>" (<type>)`, or `<type> <id>` when it has no name; what is
 * not a running node's id (a description such as "another node") stays as it is.
 */
export function nodeLabel(RED: NodeAPI, id: string): string {
  const other = RED.nodes.getNode(id) as (Node & { name?: unknown }) | null;
  if (!other) return id;
  const name = typeof other.name === 'string' ? other.name.trim() : '';
  return name ? `"${name}" (${other.type})` : `${other.type} ${id}`;
}

/** node.warn at most once per `intervalMs` for each key, so a scanner hammering an endpoint cannot flood the log. */
export function limitedWarn(node: Node, intervalMs = 60_000): (key: string, text: string) => void {
  const last = new Map<string, number>();
  return (key, text) => {
    const now = Date.now();
    if ((last.get(key) ?? 0) + intervalMs > now) return;
    last.set(key, now);
    node.warn(text);
  };
}

/**
 * One contract between config nodes (cms-server, comx-pbx, webex-account, ccfs-account) and the nodes
 * that use them: a config node offers `node.cdrflow`, a ConfigHandle; a user node asks for it with
 * useConfig, which reports a missing or unusable configuration the same way everywhere (a status, the
 * reason in the log at deploy, and the same error from get() on every message, for Catch), in the
 * node's words.
 * A configuration nobody has filled in yet (`unset`: no URL, no credentials, no config node chosen) is
 * not an error: a yellow ring "not configured" and the reason at info level. One that cannot work as
 * entered (a URL that is not a URL, a bad zone, an unreadable CA file) is: a red ring and a warning.
 * Each user node's catalog provides `<type>.errors.noConfig`, `<type>.status.badConfig` and
 * `<type>.status.notConfigured`.
 */
import type { NodeAPI, Node, NodeStatus } from 'node-red';
import type { ThrottledStatus } from './status';

export class ConfigProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigProblem';
  }
}

export interface ConfigHandle<T> {
  /** Why the configuration cannot be used (translated), or null. */
  readonly problem: string | null;
  /** True when the problem is only that nothing was entered yet (not a misconfiguration). */
  readonly unset: boolean;
  /** What the config node shares (client, agent, zone…), built once; throws ConfigProblem when unusable. */
  get(): T;
}

/**
 * For config nodes: the handle to put at `node.cdrflow`. `build` runs at the first get(). `unset`: the
 * problem is that something required was left empty (the user has not filled it in yet).
 */
export function offerConfig<T>(problem: string | null, build: () => T, opts: { unset?: boolean } = {}): ConfigHandle<T> {
  let built: T | undefined;
  let done = false;
  return {
    problem,
    unset: problem !== null && opts.unset === true,
    get() {
      if (problem !== null) throw new ConfigProblem(problem);
      if (!done) {
        built = build();
        done = true;
      }
      return built as T;
    },
  };
}

export interface ConfigNode<T> extends Node {
  cdrflow?: ConfigHandle<T>;
}

/**
 * For user nodes: the config node `id` names, or a handle whose get() throws the reason. A problem is
 * reported at once (reportConfigProblem); no config node chosen at all counts as not configured yet.
 */
export function useConfig<T>(RED: NodeAPI, node: Node, type: string, id: string | undefined, status: ThrottledStatus, opts: { missing?: string } = {}): ConfigHandle<T> {
  const found = id ? (RED.nodes.getNode(id) as ConfigNode<T> | null) : null;
  // a node with two config choices (a source and a shared state) names which one is missing
  const handle: ConfigHandle<T> = found?.cdrflow ?? offerConfig<T>(RED._(`${type}.errors.${opts.missing ?? 'noConfig'}`), () => undefined as T, { unset: !id });
  if (handle.problem !== null) reportConfigProblem(RED, node, type, handle.problem, status, { unset: handle.unset });
  return handle;
}

/** The status a node shows for a configuration problem: yellow "not configured" when unset, else red. */
export function configStatus(RED: NodeAPI, type: string, opts: { unset?: boolean } = {}): NodeStatus {
  return opts.unset
    ? { fill: 'yellow', shape: 'ring', text: RED._(`${type}.status.notConfigured`) }
    : { fill: 'red', shape: 'ring', text: RED._(`${type}.status.badConfig`) };
}

/**
 * A configuration the node cannot work with: a status and the reason in the log at deploy (a Catch node
 * cannot see anything a node reports while the flows are being built); every message the node then
 * gets fails with the same reason, which Catch nodes do see. Not filled in yet (`unset`): a yellow ring
 * and the reason at info level; misconfigured: a red ring and a warning.
 */
export function reportConfigProblem(RED: NodeAPI, node: Node, type: string, problem: string, status: ThrottledStatus, opts: { unset?: boolean } = {}): void {
  status.set(configStatus(RED, type, opts), true);
  if (opts.unset) node.log(problem);
  else node.warn(problem);
}

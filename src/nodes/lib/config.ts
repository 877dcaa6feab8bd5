/**
 * One contract between config nodes (cms-server, comx-pbx, webex-account, ccfs-account) and the nodes
 * that use them: a config node offers `node.cdrflow`, a ConfigHandle; a user node asks for it with
 * useConfig, which reports a missing or unusable configuration the same way everywhere (a red status,
 * the reason in the log at deploy, and the same error from get() on every message, for Catch), in
 * the node's words.
 * Each user node's catalog provides `<type>.errors.noConfig` and `<type>.status.badConfig`.
 */
import type { NodeAPI, Node } from 'node-red';
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
  /** What the config node shares (client, agent, zone…), built once; throws ConfigProblem when unusable. */
  get(): T;
}

/** For config nodes: the handle to put at `node.cdrflow`. `build` runs at the first get(). */
export function offerConfig<T>(problem: string | null, build: () => T): ConfigHandle<T> {
  let built: T | undefined;
  let done = false;
  return {
    problem,
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
 * reported at once (reportConfigProblem).
 */
export function useConfig<T>(RED: NodeAPI, node: Node, type: string, id: string | undefined, status: ThrottledStatus): ConfigHandle<T> {
  const found = id ? (RED.nodes.getNode(id) as ConfigNode<T> | null) : null;
  const handle: ConfigHandle<T> = found?.cdrflow ?? offerConfig<T>(RED._(`${type}.errors.noConfig`), () => undefined as T);
  if (handle.problem !== null) reportConfigProblem(RED, node, type, handle.problem, status);
  return handle;
}

/**
 * A configuration the node cannot work with: a red status and the reason in the log at deploy (a Catch
 * node cannot see anything a node reports while the flows are being built); every message the node
 * then gets fails with the same reason, which Catch nodes do see.
 */
export function reportConfigProblem(RED: NodeAPI, node: Node, type: string, problem: string, status: ThrottledStatus): void {
  status.set({ fill: 'red', shape: 'ring', text: RED._(`${type}.status.badConfig`) }, true);
  node.warn(problem);
}

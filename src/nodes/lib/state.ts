/**
 * Where a node keeps state that must outlive a redeploy or restart (design.md §3): in the context
 * store the user picked when it is a persistent one (a shared store serves several Node-RED
 * instances), otherwise in a JSON file in the userDir, written atomically.
 */
import * as path from 'node:path';
import * as os from 'node:os';
import type { NodeAPI, Node } from 'node-red';
import { JsonFileStore, type StateStore } from '../../common/persist';

const CONTEXT_KEY = 'cdrflow-state';

class ContextStore<T> implements StateStore<T> {
  constructor(private readonly node: Node, private readonly store: string) {}
  load(): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      this.node.context().get(CONTEXT_KEY, this.store, (err: Error | undefined, value: unknown) =>
        err ? reject(err) : resolve(value as T | undefined));
    });
  }
  save(value: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.node.context().set(CONTEXT_KEY, value, this.store, (err?: Error) => (err ? reject(err) : resolve()));
    });
  }
  clear(): Promise<void> {
    return this.save(undefined as T);
  }
}

/** Names of the context stores configured in settings.js other than in-memory ones. */
export function persistentContextStores(RED: NodeAPI): string[] {
  const stores = ((RED.settings as any).contextStorage ?? {}) as Record<string, { module?: unknown }>;
  return Object.keys(stores).filter((name) => {
    const mod = stores[name]?.module;
    return name !== 'default' && mod !== 'memory' && mod !== undefined;
  });
}

export function stateFileDir(RED: NodeAPI): string {
  const userDir = (RED.settings as any).userDir as string | undefined;
  return path.join(userDir ?? path.join(os.homedir(), '.node-red'), 'cdrflow-state');
}

/**
 * `storeName` empty or unknown: the file fallback. The file is named by node type and id, which stay
 * the same across redeploys and restarts.
 */
export function openStateStore<T>(RED: NodeAPI, node: Node, type: string, storeName: string | undefined): { store: StateStore<T>; where: string } {
  if (storeName && persistentContextStores(RED).includes(storeName)) {
    return { store: new ContextStore<T>(node, storeName), where: `context store "${storeName}"` };
  }
  const file = path.join(stateFileDir(RED), `${type}-${node.id.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  return { store: new JsonFileStore<T>(file), where: file };
}

/**
 * Where a node keeps state that must outlive a redeploy or restart (design.md §3): in the context
 * store the user picked when it is a persistent one (a shared store serves several Node-RED
 * instances), otherwise in a JSON file in the userDir, written atomically.
 */
import * as path from 'node:path';
import * as os from 'node:os';
import type { NodeAPI, Node } from 'node-red';
import { JsonFileStore, DebouncedSaver, type StateStore } from '../../common/persist';

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

/**
 * The state of one node, in one piece: where it lives (openStateStore), loading it once, coalesced saves,
 * and the close sequence (flush, then forget it if the node was deleted). After close, changes are
 * ignored, so a late request can never write a deleted node's file back.
 * Uses the node's own locale keys `<type>.errors.stateLoad` and `<type>.errors.stateSave`.
 */
export interface NodeState<T> {
  /** Resolves with what was stored (undefined the first time, or when it could not be read). */
  ready: Promise<T | undefined>;
  where: string;
  changed(): void;
  flush(): Promise<void>;
  close(removed: boolean): Promise<void>;
}

export function nodeState<T>(RED: NodeAPI, node: Node, type: string, storeName: string | undefined, snapshot: () => T, delayMs = 500): NodeState<T> {
  const { store, where } = openStateStore<T>(RED, node, type, storeName);
  let closed = false;
  const saver = new DebouncedSaver(store, snapshot, delayMs, (err) => node.warn(RED._(`${type}.errors.stateSave`, { where, error: err.message })));
  const ready = store.load().catch((err: Error) => {
    node.warn(RED._(`${type}.errors.stateLoad`, { where, error: err.message }));
    return undefined;
  });
  return {
    ready,
    where,
    changed: () => {
      if (!closed) saver.changed();
    },
    flush: () => saver.flush(),
    close: async (removed: boolean) => {
      await ready;
      await saver.flush();
      closed = true;
      if (removed) await store.clear();
    },
  };
}

/**
 * The one way a node keeps state across redeploys, restarts and kills (design.md §3), over
 * src/common/persist.ts:
 * - where: the persistent context store the user picked (one rule for the editor's list and the
 *   runtime, `persistentStores`), else an owner-only file in `<userDir>/cdrflow-state/`; a choice that
 *   cannot be honoured is said in a warning, never silently swapped;
 * - secrets (OAuth tokens) never go to a context store: always the file, encrypted with a key derived
 *   from credentialSecret when Node-RED has one;
 * - restore is checked by the node's own `restore`; what cannot be used is moved aside and a warning
 *   names both places; the node starts from the last good copy or clean, and never crashes Node-RED.
 * - shared (issue 16): with a `cdrflow-redis` configuration the state lives in Redis instead
 *   (src/ha/redis-state.ts), so two instances share it; the file stays the default.
 * Each stateful node's catalog provides `<type>.state.*` (unreadable, recovered, startedClean,
 * saveFailed, storeIgnored).
 */
import * as path from 'node:path';
import * as os from 'node:os';
import type { NodeAPI, Node } from 'node-red';
import { FileBackend, StateKeeper, secretCodec, type StateBackend, type Stored, type StateLoss } from '../../common/persist';
import { RedisStateBackend, type Fence } from '../../ha/redis-state';
import type { SharedState } from '../../ha/shared';

const CONTEXT_KEY = 'cdrflow-state';

interface StoreConfig {
  module?: unknown;
}

/**
 * The context stores that keep data across restarts, by the rule the runtime applies too: a `default`
 * that only names another store is an alias (resolved, not listed); a store is persistent unless its
 * module is the memory store.
 */
export function persistentStores(settings: unknown): string[] {
  const stores = ((settings as { contextStorage?: Record<string, unknown> })?.contextStorage ?? {}) as Record<string, unknown>;
  return Object.keys(stores).filter((name) => {
    const cfg = stores[name];
    if (typeof cfg === 'string') return false; // an alias (only `default` may be one)
    const mod = (cfg as StoreConfig | null)?.module;
    return mod !== undefined && mod !== null && mod !== 'memory';
  });
}

/** The store a node's choice names: `default` resolved through its alias; '' (or nothing) for the file. */
export function resolveStore(settings: unknown, choice: string | undefined): { store: string | null; honoured: boolean } {
  const wanted = (choice ?? '').trim();
  if (wanted === '') return { store: null, honoured: true };
  const stores = ((settings as { contextStorage?: Record<string, unknown> })?.contextStorage ?? {}) as Record<string, unknown>;
  const name = wanted === 'default' && typeof stores.default === 'string' ? stores.default : wanted;
  return persistentStores(settings).includes(name) ? { store: name, honoured: true } : { store: null, honoured: false };
}

export function stateFileDir(RED: NodeAPI): string {
  const userDir = (RED.settings as any).userDir as string | undefined;
  return path.join(userDir ?? path.join(os.homedir(), '.node-red'), 'cdrflow-state');
}

/** The key for a secret file: credentialSecret (or the one Node-RED generated), or null when credentials are not encrypted. */
function credentialKey(RED: NodeAPI): string | null {
  const settings = RED.settings as any;
  if (settings.credentialSecret === false) return null;
  if (typeof settings.credentialSecret === 'string' && settings.credentialSecret !== '') return settings.credentialSecret;
  try {
    const generated = typeof settings.get === 'function' ? settings.get('_credentialSecret') : undefined;
    return typeof generated === 'string' && generated !== '' ? generated : null;
  } catch {
    return null; // settings not available (an embedded or test runtime)
  }
}

class ContextBackend implements StateBackend {
  constructor(private readonly node: Node, private readonly store: string) {}
  get where(): string {
    return `context store "${this.store}"`;
  }
  private get(key: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.node.context().get(key, this.store, (err: Error | undefined, value: unknown) => (err ? reject(err) : resolve(value)));
    });
  }
  private set(key: string, value: unknown): Promise<void> {
    return new Promise((resolve, reject) => {
      this.node.context().set(key, value, this.store, (err?: Error) => (err ? reject(err) : resolve()));
    });
  }
  async read(): Promise<Stored> {
    return { value: await this.get(CONTEXT_KEY), journal: [] };
  }
  async readPrevious(): Promise<Stored | null> {
    return null;
  }
  write(snapshot: unknown): Promise<void> {
    return this.set(CONTEXT_KEY, snapshot);
  }
  append(): null {
    return null; // no journal: each recorded change writes the whole state through the store
  }
  async moveAside(): Promise<string | null> {
    const key = `${CONTEXT_KEY}-unreadable`;
    await this.set(key, await this.get(CONTEXT_KEY));
    return `${this.where}, key "${key}"`;
  }
  clear(): Promise<void> {
    return this.set(CONTEXT_KEY, undefined);
  }
}

export interface NodeStateOptions<S> {
  /** The node type: names the file and the locale keys. */
  type: string;
  /** The user's choice of store (the node's `stateStore` property). */
  store?: string;
  /** Tokens and other secrets: always the file, encrypted when Node-RED encrypts credentials. */
  secret?: boolean;
  /** A second state of the same node gets its own file (`<type>-<id>-<part>.json`). */
  part?: string;
  restore(saved: unknown, journal: unknown[]): S;
  /** The live state (what restore built) as plain JSON. */
  snapshot(live: S): unknown;
  /** Coalescing delay for changed(); default 500 ms. */
  delayMs?: number;
  /**
   * The node's shared state (its `cdrflow-redis` configuration): the state is kept in Redis, key
   * `<prefix>state:<type>:<node id>[:<part>]`, instead of the file or a context store (`store` is
   * then not used); secrets are encrypted as in the file. `ready` rejects with RedisUnavailableError
   * while Redis cannot be read (nothing is assumed, nothing set aside), and every `record` resolves
   * only once Redis has the change (there is no journal).
   */
  shared?: SharedState;
  /** With `shared`: every write is conditional on this lease still being held (src/ha/redis-state.ts). */
  fence?: Fence;
}

export interface NodeState<S> {
  /** The live state once loaded (never rejects, except with `shared` while Redis cannot be read). */
  ready: Promise<S>;
  where: string;
  /** After ready: what could not be used of the saved state, or null. */
  loss(): StateLoss | null;
  /** One change, on disk (file) or through the store before the promise resolves; throws once closed. */
  record(entry: unknown): Promise<void> | void;
  /** A change without a journal entry: saved within delayMs. */
  changed(): void;
  flush(): Promise<void>;
  close(removed: boolean): Promise<void>;
  /** Snapshots written so far (for tests). */
  writes(): number;
}

export function nodeState<S>(RED: NodeAPI, node: Node, opts: NodeStateOptions<S>): NodeState<S> {
  const { type } = opts;
  const file = path.join(stateFileDir(RED), `${type}-${node.id.replace(/[^A-Za-z0-9_.-]/g, '_')}${opts.part ? `-${opts.part}` : ''}.json`);
  let backend: StateBackend;
  if (opts.shared) {
    const key = opts.secret ? credentialKey(RED) : null;
    backend = new RedisStateBackend(opts.shared.redis, [type, node.id, ...(opts.part ? [opts.part] : [])].join(':'), { codec: key ? secretCodec(key) : undefined, fence: opts.fence });
  } else if (opts.secret) {
    const key = credentialKey(RED);
    backend = new FileBackend(file, key ? { codec: secretCodec(key) } : {});
  } else {
    const { store, honoured } = resolveStore(RED.settings, opts.store);
    if (!honoured) node.warn(RED._(`${type}.state.storeIgnored`, { store: opts.store ?? '', file }));
    backend = store ? new ContextBackend(node, store) : new FileBackend(file);
  }
  const keeper = new StateKeeper<S>({
    backend,
    restore: opts.restore,
    snapshot: opts.snapshot,
    delayMs: opts.delayMs,
    onError: (err) => node.warn(RED._(`${type}.state.saveFailed`, { where: backend.where, error: err.message })),
  });
  const ready = keeper.ready.then((s) => {
    const loss = keeper.loss;
    if (loss) {
      const moved = loss.movedTo ?? RED._(`${type}.state.notMoved`);
      const key = loss.recoveredFrom ? 'recovered' : 'startedClean';
      node.warn(RED._(`${type}.state.${key}`, { where: backend.where, error: loss.error, movedTo: moved, from: loss.recoveredFrom ?? '' }));
    }
    return s;
  });
  // a shared state's rejection (Redis unreachable) reaches the node where it awaits ready; not unhandled before
  ready.catch(() => undefined);
  return {
    ready,
    where: backend.where,
    loss: () => keeper.loss,
    record: (entry) => keeper.record(entry),
    changed: () => keeper.changed(),
    flush: () => keeper.flush(),
    close: (removed) => keeper.close(removed),
    writes: () => keeper.writes,
  };
}

const routed = new WeakSet<object>();

/**
 * GET <httpAdminRoot>/cdrflow/state-stores: the persistent stores, by the same rule as the runtime, for
 * the state select of every dialog (resources/cdrflow-editor.js). Behind the editor's own permissions.
 */
export function serveStoreList(RED: NodeAPI): void {
  const app = RED.httpAdmin as unknown as object | undefined;
  if (!app || routed.has(app)) return;
  routed.add(app);
  const auth = (RED as any).auth?.needsPermission?.('flows.read') ?? ((_q: unknown, _s: unknown, next: () => void) => next());
  RED.httpAdmin.get('/cdrflow/state-stores', auth, (_req: any, res: any) => {
    res.json({ stores: persistentStores(RED.settings) });
  });
}

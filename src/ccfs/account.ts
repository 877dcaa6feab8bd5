/**
 * What a ccfs-account config node holds and shares with the nodes that use it: one client (one undici
 * agent) per account, the tenant's time zone, the keys for verifying callbacks, the registry of
 * requests made, so a callback can say which request it answers, and the signing lock-out
 * (lockout.ts): after one 401 or 403 the account signs nothing more until its configuration changes.
 * No node-red import here: where the state is kept is the caller's (an AccountKeeper, which the node
 * kit's nodeState satisfies).
 */
import { CcfsClient, type SignedHeaderSet } from './client';
import { RequestRegistry, type RequestRecord, type RegistryState } from './callback';
import { SigningLock, checkLockout, type Lockout, type SigningLockOptions } from './lockout';
import { isValidZone } from '../common/time';

export interface CcfsAccountConfig {
  baseUrl: string;
  accessKey: string;
  secretKey: string;
  timeZone: string;
  signedHeaders: SignedHeaderSet;
  hostHeader?: string;
  timeoutMs: number;
  ca?: string;
  rejectUnauthorized: boolean;
  retries?: number;
  retryBaseMs?: number;
}

/** Why a configuration cannot work, as a code (the words are the adapter's catalog) and the values to name. */
export type AccountProblem =
  | { code: 'baseUrlMissing' }
  | { code: 'baseUrlInvalid'; baseUrl: string }
  | { code: 'baseUrlScheme'; baseUrl: string }
  | { code: 'accessKeyMissing' }
  | { code: 'secretKeyMissing' }
  | { code: 'timeZone'; timeZone: string };

/** The first reason the configuration cannot work, or null. */
export function accountProblem(c: CcfsAccountConfig): AccountProblem | null {
  if (!c.baseUrl) return { code: 'baseUrlMissing' };
  let url: URL;
  try {
    url = new URL(c.baseUrl);
  } catch {
    return { code: 'baseUrlInvalid', baseUrl: c.baseUrl };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { code: 'baseUrlScheme', baseUrl: c.baseUrl };
  if (!c.accessKey) return { code: 'accessKeyMissing' };
  if (!c.secretKey) return { code: 'secretKeyMissing' };
  if (!isValidZone(c.timeZone)) return { code: 'timeZone', timeZone: c.timeZone };
  return null;
}

/** What an account keeps across restarts: the requests made, and the lock-out if CC-FS refused it. */
export interface AccountState {
  registry: RequestRegistry;
  lockout: Lockout | null;
}

/** As saved: the registry's snapshot, with the lock-out beside it. */
export type AccountSnapshot = RegistryState & { lockout?: Lockout };

/** The journal entry that sets or clears the lock-out (every other entry is a remembered request). */
export interface LockoutEntry {
  lockout: Lockout | null;
}

const isLockoutEntry = (e: unknown): e is LockoutEntry => e !== null && typeof e === 'object' && 'lockout' in e;

/**
 * The state a snapshot (undefined the first time) and the journal after it describe; throws
 * StateShapeError on anything else.
 */
export function restoreAccountState(saved: unknown, journal: unknown[], now = Date.now()): AccountState {
  let lockout = checkLockout(saved && typeof saved === 'object' && !Array.isArray(saved) ? (saved as AccountSnapshot).lockout : undefined);
  const requests: unknown[] = [];
  for (const e of journal) {
    if (isLockoutEntry(e)) lockout = checkLockout(e.lockout);
    else requests.push(e);
  }
  return { registry: RequestRegistry.restore(saved, requests, {}, now), lockout };
}

export function accountSnapshot(s: AccountState): AccountSnapshot {
  return s.lockout ? { ...s.registry.snapshot(), lockout: s.lockout } : s.registry.snapshot();
}

/** Where the state lives: loaded once; each change recorded (durably once the promise, if any, resolves). */
export interface AccountKeeper {
  readonly ready: Promise<AccountState>;
  record(entry: unknown): Promise<void> | void;
}

/** State kept in memory only. */
export function memoryState(state: AccountState = { registry: new RequestRegistry(), lockout: null }): AccountKeeper {
  return { ready: Promise.resolve(state), record: () => undefined };
}

export class CcfsAccount {
  private clientInstance: CcfsClient | null = null;
  /** Stands in front of every signed request; locked after a 401 or 403 (see lockout.ts). */
  readonly lock: SigningLock;

  constructor(readonly config: CcfsAccountConfig, private readonly state: AccountKeeper = memoryState(), lockOptions: SigningLockOptions = {}) {
    this.lock = new SigningLock(config, {
      saved: state.ready.then((s) => s.lockout),
      save: async (l) => {
        const s = await state.ready;
        s.lockout = l;
        await state.record({ lockout: l } satisfies LockoutEntry);
      },
    }, lockOptions);
  }

  /** The account's client, made at the first call (throws CcfsValidationError for an unusable configuration). */
  client(): CcfsClient {
    if (!this.clientInstance) {
      const c = this.config;
      this.clientInstance = new CcfsClient({
        baseUrl: c.baseUrl, accessKey: c.accessKey, secretKey: c.secretKey, signedHeaders: c.signedHeaders,
        hostHeader: c.hostHeader, timeoutMs: c.timeoutMs, ca: c.ca, rejectUnauthorized: c.rejectUnauthorized,
        retries: c.retries, retryBaseMs: c.retryBaseMs, gate: this.lock,
      });
    }
    return this.clientInstance;
  }

  /** Remembers a request; resolves once it is recorded (on disk for the file store). */
  async remember(r: RequestRecord): Promise<void> {
    const { registry } = await this.state.ready;
    await this.state.record(registry.remember(r));
  }

  async find(responseId: string | null, billFileName: string): Promise<RequestRecord | null> {
    return (await this.state.ready).registry.find(responseId, billFileName);
  }

  /** Releases the client's connections. */
  async close(): Promise<void> {
    const c = this.clientInstance;
    this.clientInstance = null;
    await c?.close();
  }
}

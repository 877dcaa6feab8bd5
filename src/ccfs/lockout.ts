/**
 * An account's signing lock-out (specs/ccfs.md §0.5, §9, §11.4). CC-FS answers a bad signature with 401
 * and, after a few of them from one address, locks that address (403 to everything, until an operator
 * unlocks it). A wrong SK, a header set the tenant does not accept or a wrong clock fail every request
 * the same way, so the first 401 or 403 stops the account: it signs nothing more until its configuration
 * changes. At most one refused request per configuration, however many nodes use the account and
 * however many requests they have in flight: the status line of every signed request is awaited before
 * the next one is signed.
 *
 * The lock-out is kept with the account's state and honoured at the next start when the configuration
 * is the same. What is kept is a salted, deliberately slow hash (scrypt) of the configuration, never
 * the AK or SK, with the time and the reason.
 */
import { scrypt, randomBytes, timingSafeEqual } from 'node:crypto';
import { expectShape } from '../common/persist';
import type { SigningGate, CcfsAuthError, SignedHeaderSet } from './client';

/** What decides whether CC-FS accepts a signature: a change to any of these clears a lock-out. */
export interface SigningConfig {
  baseUrl: string;
  accessKey: string;
  secretKey: string;
  signedHeaders: SignedHeaderSet;
  hostHeader?: string;
}

export interface Lockout {
  /** scrypt of the configuration with `salt`, hex. */
  fingerprint: string;
  salt: string;
  /** When CC-FS refused (ISO 8601 UTC). */
  at: string;
  /** 401: signature refused; 403: the address is locked. */
  status: 401 | 403;
  /** The refused request (queryBillData, downloadBillFile). */
  operation: string;
}

/** A request the account did not sign because it is locked out. Never retried. */
export class CcfsLockedError extends Error {
  constructor(message: string, readonly lockout: Lockout) {
    super(message);
    this.name = 'CcfsLockedError';
  }
}

/** The fingerprint of a configuration with a given salt (hex). */
export function fingerprintOf(c: SigningConfig, salt: string): Promise<string> {
  const text = JSON.stringify(['ccfs-signing-v1', c.baseUrl.trim(), c.accessKey, c.secretKey, c.signedHeaders, (c.hostHeader ?? '').trim()]);
  return new Promise((resolve, reject) => {
    scrypt(text, Buffer.from(salt, 'hex'), 32, (err, key) => (err ? reject(err) : resolve(key.toString('hex'))));
  });
}

/** Whether a saved lock-out was made with this very configuration. */
export async function sameConfiguration(l: Lockout, c: SigningConfig): Promise<boolean> {
  const a = Buffer.from(await fingerprintOf(c, l.salt), 'hex');
  const b = Buffer.from(l.fingerprint, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Checks a saved lock-out (undefined and null: none); throws StateShapeError otherwise. */
export function checkLockout(v: unknown): Lockout | null {
  if (v === undefined || v === null) return null;
  const l = v as Lockout;
  expectShape(typeof l === 'object' && typeof l.fingerprint === 'string' && /^[0-9a-f]{64}$/.test(l.fingerprint)
    && typeof l.salt === 'string' && /^[0-9a-f]{32}$/.test(l.salt) && typeof l.at === 'string' && Number.isFinite(Date.parse(l.at))
    && (l.status === 401 || l.status === 403) && typeof l.operation === 'string',
  'the lock-out is not {fingerprint, salt, at, status, operation}');
  return { fingerprint: l.fingerprint, salt: l.salt, at: l.at, status: l.status, operation: l.operation };
}

export interface LockStore {
  /** The lock-out saved by an earlier run, if any. */
  saved: Promise<Lockout | null>;
  /** Keeps (or, with null, clears) the lock-out; resolves once it is durable. */
  save(l: Lockout | null): Promise<void> | void;
}

export interface SigningLockOptions {
  /** The words of a CcfsLockedError (the adapter's catalog); default English. */
  describe?: (l: Lockout) => string;
  now?: () => number;
}

export type LockListener = (l: Lockout | null, saveError?: Error) => void;

const english = (l: Lockout) => l.status === 403
  ? `CC-FS answered 403 on ${l.operation} at ${l.at} (this IP address is locked), so the account signs nothing more; an operator must unlock the address. Check AK/SK, the signed header set, the Host header and the clock, then deploy the account with the corrected settings`
  : `CC-FS refused this account's signature (401 on ${l.operation} at ${l.at}), so the account signs nothing more (repeated refusals lock the IP address). Check AK/SK, the signed header set, the Host header and the clock, then deploy the account with the corrected settings`;

/**
 * The gate in front of every signed request of one account (a SigningGate for CcfsClient). Requests
 * take turns from signing until their status line is known; a 401 or 403 locks the account before the
 * next turn; a locked account refuses every turn with CcfsLockedError.
 */
export class SigningLock implements SigningGate {
  /** The lock-out in force once the saved one was compared with this configuration. */
  readonly ready: Promise<Lockout | null>;
  private current: Lockout | null = null;
  private turn: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<LockListener>();
  /** This configuration's fingerprint, made before the first request: a refusal is then kept at once. */
  private own: Promise<{ salt: string; fingerprint: string }> | null = null;

  constructor(private readonly config: SigningConfig, private readonly store: LockStore, private readonly opts: SigningLockOptions = {}) {
    this.ready = store.saved.then(async (saved) => {
      if (!saved) return null;
      // when it cannot be told (the hash failed), the lock-out holds
      if (await sameConfiguration(saved, config).catch(() => true)) {
        this.current = saved;
        return saved;
      }
      // deployed with another configuration: it may be accepted, so it may sign again
      await (async () => store.save(null))().catch(() => undefined);
      return null;
    });
  }

  get lockout(): Lockout | null {
    return this.current;
  }

  /** The error a refused request gets. */
  lockedError(l: Lockout): CcfsLockedError {
    return new CcfsLockedError((this.opts.describe ?? english)(l), l);
  }

  /** Called with the lock-out when the account is locked (and whether it could be saved). */
  onChange(listener: LockListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` with the lock-out in force at start (if any), then with every new one; returns the unsubscribe. */
  watch(listener: (l: Lockout) => void): () => void {
    let active = true;
    const off = this.onChange((l) => l && listener(l));
    this.ready.then((l) => active && l && listener(l));
    return () => {
      active = false;
      off();
    };
  }

  private fingerprint(): Promise<{ salt: string; fingerprint: string }> {
    if (!this.own) {
      const salt = randomBytes(16).toString('hex');
      this.own = fingerprintOf(this.config, salt).then((fingerprint) => ({ salt, fingerprint }));
    }
    return this.own;
  }

  async enter(): Promise<() => void> {
    await this.ready;
    await this.fingerprint();
    let leave!: () => void;
    const before = this.turn;
    this.turn = new Promise<void>((r) => { leave = r; });
    await before;
    if (this.current) {
      leave();
      throw this.lockedError(this.current);
    }
    return leave;
  }

  async refused(err: CcfsAuthError): Promise<void> {
    if (this.current) return;
    const l: Lockout = {
      ...await this.fingerprint(),
      at: new Date((this.opts.now ?? Date.now)()).toISOString(), status: err.status === 403 ? 403 : 401, operation: err.operation,
    };
    this.current = l;
    let saveError: Error | undefined;
    try {
      await this.store.save(l);
    } catch (e) {
      saveError = e as Error; // it holds in memory until the next start
    }
    for (const listener of this.listeners) listener(l, saveError);
  }
}

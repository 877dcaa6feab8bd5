/**
 * What a ccfs-account config node holds and shares with the nodes that use it: one client (one undici
 * agent) per account, the tenant's time zone, the keys for verifying callbacks, and the registry of
 * requests made, so a callback can say which request it answers. No node-red import here.
 */
import { CcfsClient, CcfsValidationError, type SignedHeaderSet } from './client';
import { RequestRegistry, type RequestRecord } from './callback';
import { DebouncedSaver, type StateStore } from '../common/persist';
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

export class CcfsAccount {
  private clientInstance: CcfsClient | null = null;
  private registryInstance = new RequestRegistry();
  private readonly saver: DebouncedSaver<RequestRecord[]> | null;
  readonly ready: Promise<void>;

  constructor(readonly config: CcfsAccountConfig, private readonly store: StateStore<RequestRecord[]> | null, onStoreError: (err: Error, phase: 'load' | 'save') => void = () => undefined) {
    this.saver = store ? new DebouncedSaver(store, () => this.registryInstance.snapshot(), 500, (e) => onStoreError(e, 'save')) : null;
    this.ready = store
      ? store.load().then((s) => {
        if (Array.isArray(s)) this.registryInstance = new RequestRegistry(10_000, 14 * 86_400_000, s);
      }, (e: Error) => onStoreError(e, 'load'))
      : Promise.resolve();
  }

  /** The problem with the configuration, if any (shown by the nodes that use the account). */
  problem(): string | null {
    const c = this.config;
    if (!c.baseUrl) return 'base URL is missing';
    try {
      const u = new URL(c.baseUrl);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'base URL must be https://host:port';
    } catch {
      return `base URL "${c.baseUrl}" is not a URL`;
    }
    if (!c.accessKey) return 'AK (access key) is missing';
    if (!c.secretKey) return 'SK (secret key) is missing';
    if (!isValidZone(c.timeZone)) return `"${c.timeZone}" is not an IANA time zone`;
    return null;
  }

  client(): CcfsClient {
    const p = this.problem();
    if (p) throw new CcfsValidationError('ccfs-account', p);
    if (!this.clientInstance) {
      const c = this.config;
      this.clientInstance = new CcfsClient({
        baseUrl: c.baseUrl, accessKey: c.accessKey, secretKey: c.secretKey, signedHeaders: c.signedHeaders,
        hostHeader: c.hostHeader, timeoutMs: c.timeoutMs, ca: c.ca, rejectUnauthorized: c.rejectUnauthorized,
        retries: c.retries, retryBaseMs: c.retryBaseMs,
      });
    }
    return this.clientInstance;
  }

  async remember(r: RequestRecord): Promise<void> {
    await this.ready;
    this.registryInstance.remember(r);
    this.saver?.changed();
  }

  async find(responseId: string | null, billFileName: string): Promise<RequestRecord | null> {
    await this.ready;
    return this.registryInstance.find(responseId, billFileName);
  }

  async close(removed: boolean): Promise<void> {
    const c = this.clientInstance;
    this.clientInstance = null;
    await c?.close();
    if (this.saver) await this.saver.flush();
    if (removed) await this.store?.clear().catch(() => undefined);
  }
}

/**
 * What a ccfs-account config node holds and shares with the nodes that use it: one client (one undici
 * agent) per account, the tenant's time zone, the keys for verifying callbacks, and the registry of
 * requests made, so a callback can say which request it answers. No node-red import here: where the
 * registry is kept is the caller's (a RequestKeeper, which the node kit's nodeState satisfies).
 */
import { CcfsClient, type SignedHeaderSet } from './client';
import { RequestRegistry, type RequestRecord } from './callback';
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

/** Where the registry lives: loaded once; each remembered request recorded (durably once the promise, if any, resolves). */
export interface RequestKeeper {
  readonly ready: Promise<RequestRegistry>;
  record(entry: unknown): Promise<void> | void;
}

/** A registry kept in memory only. */
export function memoryRequests(registry = new RequestRegistry()): RequestKeeper {
  return { ready: Promise.resolve(registry), record: () => undefined };
}

export class CcfsAccount {
  private clientInstance: CcfsClient | null = null;

  constructor(readonly config: CcfsAccountConfig, private readonly requests: RequestKeeper = memoryRequests()) {}

  /** The account's client, made at the first call (throws CcfsValidationError for an unusable configuration). */
  client(): CcfsClient {
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

  /** Remembers a request; resolves once it is recorded (on disk for the file store). */
  async remember(r: RequestRecord): Promise<void> {
    const registry = await this.requests.ready;
    await this.requests.record(registry.remember(r));
  }

  async find(responseId: string | null, billFileName: string): Promise<RequestRecord | null> {
    return (await this.requests.ready).find(responseId, billFileName);
  }

  /** Releases the client's connections. */
  async close(): Promise<void> {
    const c = this.clientInstance;
    this.clientInstance = null;
    await c?.close();
  }
}

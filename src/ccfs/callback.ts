/**
 * The callback CC-FS POSTs to callBackURL when a bill file is ready (specs/ccfs.md §4, §2.9): the body's
 * shape, signature verification with a replay cache, and duplicate detection by billFileName. The
 * state is bounded and serialisable, so it survives restarts.
 */
import { verify, type VerifyRequest, type VerifyResult, type VerifyFailure } from './auth';
import { BILL_FILE_NAME_RE } from './client';

export interface CallbackBody {
  version: string | null;
  responseId: string | null;
  billFileName: string;
  accountId: string | null;
}

export class CallbackBodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CallbackBodyError';
  }
}

/** Reads `{"request":{"version":"2.0"},"msgBody":{responseId, billFileName (or billName), accountId}}`. */
export function parseCallbackBody(raw: Buffer | string): CallbackBody {
  let json: any;
  try {
    json = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw new CallbackBodyError(`body is not JSON: ${(err as Error).message}`);
  }
  const body = json?.msgBody;
  if (!body || typeof body !== 'object') throw new CallbackBodyError('body has no msgBody object');
  const name = body.billFileName ?? body.billName;
  if (typeof name !== 'string' || !BILL_FILE_NAME_RE.test(name)) {
    throw new CallbackBodyError(`msgBody.billFileName ${JSON.stringify(name)} is not a CC-FS file name`);
  }
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : null);
  return { version: str(json?.request?.version), responseId: str(body.responseId), billFileName: name, accountId: str(body.accountId) };
}

/** responseId without dashes, lowercase: the form that ends up in the file name. */
export function responseKey(responseId: string): string {
  return responseId.replace(/-/g, '').toLowerCase();
}

/** The responseId inside a file name `yyyyMMdd_<responseId>.zip`, if it has that shape. */
export function responseIdFromFileName(billFileName: string): string | null {
  const m = /^\d{8}_([A-Za-z0-9-]+)\.zip$/i.exec(billFileName);
  return m ? responseKey(m[1]) : null;
}

export interface CallbackState {
  version: 1;
  /** billFileName -> when it was delivered (ms). */
  delivered: Array<[string, number]>;
  /** signature -> when it was first seen (ms). */
  signatures: Array<[string, number]>;
}

export interface GuardOptions {
  /** How many delivered file names to remember (oldest forgotten first). */
  maxFiles?: number;
  /** How long to remember a delivered file name, ms. */
  fileTtlMs?: number;
  /** The signature replay window: a signature is remembered for 2 × maxSkewMs (it is stale after that). */
  maxSkewMs: number;
  maxSignatures?: number;
}

export type CheckResult =
  | { ok: true; verified: VerifyResult & { ok: true } }
  | { ok: false; reason: VerifyFailure | 'replayed'; detail: string };

/**
 * Verification plus the memory a receiver needs: signatures already used (a replayed request is refused
 * even when its signature is valid) and bill files already delivered (a retried callback is answered
 * but not delivered again).
 */
export class CallbackGuard {
  private readonly delivered = new Map<string, number>();
  private readonly signatures = new Map<string, number>();
  private readonly maxFiles: number;
  private readonly fileTtlMs: number;
  private readonly maxSignatures: number;

  constructor(private readonly opts: GuardOptions, state?: CallbackState | null) {
    this.maxFiles = opts.maxFiles ?? 10_000;
    this.fileTtlMs = opts.fileTtlMs ?? 30 * 86_400_000;
    this.maxSignatures = opts.maxSignatures ?? 10_000;
    if (state && state.version === 1) {
      for (const [k, v] of state.delivered ?? []) if (typeof k === 'string' && typeof v === 'number') this.delivered.set(k, v);
      for (const [k, v] of state.signatures ?? []) if (typeof k === 'string' && typeof v === 'number') this.signatures.set(k, v);
      this.prune(Date.now());
    }
  }

  /**
   * Verifies a request and, when it is genuine and fresh, records its signature so the same request
   * cannot be played again.
   */
  check(req: VerifyRequest, verifyOpts: { secretKey: string; accessKey?: string; hostOverride?: string; now?: number }): CheckResult {
    const now = verifyOpts.now ?? Date.now();
    const r = verify(req, { ...verifyOpts, maxSkewMs: this.opts.maxSkewMs, now });
    if (!r.ok) return { ok: false, reason: r.reason, detail: r.detail };
    this.prune(now);
    if (this.signatures.has(r.signature)) return { ok: false, reason: 'replayed', detail: 'this signed request was already received' };
    this.signatures.set(r.signature, now);
    while (this.signatures.size > this.maxSignatures) this.signatures.delete(this.signatures.keys().next().value as string);
    return { ok: true, verified: r };
  }

  /** Forgets a signature, so the same request can be sent again (its delivery failed: a retry is not an attack). */
  release(signature: string): void {
    this.signatures.delete(signature);
  }

  isDelivered(billFileName: string): boolean {
    return this.delivered.has(billFileName);
  }

  markDelivered(billFileName: string, now = Date.now()): void {
    this.delivered.delete(billFileName);
    this.delivered.set(billFileName, now);
    this.prune(now);
  }

  private prune(now: number): void {
    for (const [k, t] of this.delivered) {
      if (t + this.fileTtlMs >= now && this.delivered.size <= this.maxFiles) break;
      this.delivered.delete(k);
    }
    const sigTtl = 2 * this.opts.maxSkewMs;
    for (const [k, t] of this.signatures) {
      if (t + sigTtl >= now) break;
      this.signatures.delete(k);
    }
  }

  snapshot(): CallbackState {
    return { version: 1, delivered: [...this.delivered], signatures: [...this.signatures] };
  }
}

export interface RequestRecord {
  responseId: string;
  billFileName: string;
  requestedAt: string;
  /** Id of the ccfs-bill-request node that asked. */
  node: string;
  msgBody: Record<string, unknown>;
  part?: number;
  parts?: number;
  /** Caller-supplied correlation (e.g. msg._msgid, a job id). */
  correlation?: unknown;
}

/**
 * Requests made by ccfs-bill-request nodes, so a callback can say which request it answers. Keyed by
 * responseId (without dashes); bounded by count and age; serialisable.
 */
export class RequestRegistry {
  private readonly map = new Map<string, RequestRecord>();
  constructor(private readonly maxEntries = 10_000, private readonly ttlMs = 14 * 86_400_000, state?: RequestRecord[] | null) {
    for (const r of state ?? []) if (r && typeof r.responseId === 'string') this.map.set(responseKey(r.responseId), r);
    this.prune(Date.now());
  }

  remember(r: RequestRecord): void {
    const key = responseKey(r.responseId);
    this.map.delete(key);
    this.map.set(key, r);
    this.prune(Date.now());
  }

  /** The request a callback answers: by its responseId, else by the id inside its file name. */
  find(responseId: string | null, billFileName: string): RequestRecord | null {
    const keys = [responseId ? responseKey(responseId) : null, responseIdFromFileName(billFileName)];
    for (const k of keys) if (k && this.map.has(k)) return this.map.get(k)!;
    return null;
  }

  private prune(now: number): void {
    for (const [k, r] of this.map) {
      if (Date.parse(r.requestedAt) + this.ttlMs >= now && this.map.size <= this.maxEntries) break;
      this.map.delete(k);
    }
  }

  snapshot(): RequestRecord[] {
    return [...this.map.values()];
  }
}

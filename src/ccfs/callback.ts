/**
 * The callback CC-FS POSTs to callBackURL when a bill file is ready (specs/ccfs.md §4, §2.9): the body's
 * shape, signature verification with a replay cache, duplicate detection by billFileName, and the
 * download jobs a receiver has accepted and not yet finished. The state is bounded and serialisable, so
 * it survives restarts.
 */
import { verify, type VerifyRequest, type VerifyResult, type VerifyFailure } from './auth';
import { BILL_FILE_NAME_RE } from './client';
import { BoundedMap, type BoundedEntry } from '../common/bounded-map';
import { expectShape } from '../common/persist';

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

/**
 * A bill file to download, parse and send on, accepted (answered 200) and not finished: `pending` until
 * it is done (then it is a delivered file) or `failed` (kept, so a later callback for it is a duplicate).
 */
export interface BillJob {
  file: string;
  responseId: string | null;
  accountId: string | null;
  version: string | null;
  state: 'pending' | 'failed';
  /** Attempts that ended (a refused or unsigned one not counted). */
  attempts: number;
  /** When the callback was accepted (ms). */
  since: number;
  /** Why the last attempt failed. */
  error?: string;
  /** What the callback said about itself (verified, signedBy, signedAt, remoteAddress...), for the messages. */
  meta: Record<string, unknown>;
}

/**
 * What a receiver remembers: the bill files it delivered, the signatures it answered 200 for and the
 * jobs it has not finished, each list least recently set first (BoundedMap entries). Version 1 kept
 * `[key, time]` pairs and version 2 had no jobs; both are still read.
 */
export interface CallbackState {
  version: 3;
  delivered: BoundedEntry<string, true>[];
  signatures: BoundedEntry<string, true>[];
  jobs: BoundedEntry<string, BillJob>[];
}

/**
 * The journal entry for one change, written before the answer it allows: `f` the bill file delivered
 * (its job, if any, is over), `s` the signature accepted, `j` a job as it now is, `t` when (ms).
 */
export interface GuardEntry {
  f?: string;
  s?: string;
  j?: BillJob;
  t: number;
}

export interface GuardOptions {
  /** How many delivered file names to remember (oldest forgotten first). */
  maxFiles?: number;
  /** How long to remember a delivered file name, ms. */
  fileTtlMs?: number;
  /** The signature replay window: a signature is remembered for 2 × maxSkewMs (it is stale after that). */
  maxSkewMs: number;
  maxSignatures?: number;
  /** How many unfinished and failed jobs to keep (oldest forgotten first); default 10,000. */
  maxJobs?: number;
}

export type CheckResult =
  | { ok: true; verified: VerifyResult & { ok: true } }
  | { ok: false; reason: VerifyFailure | 'replayed'; detail: string };

/**
 * Verification plus the memory a receiver needs: signatures already used (a replayed request is refused
 * even when its signature is valid) and bill files already delivered (a retried callback is answered
 * but not delivered again). Both bounded by count and age.
 */
export class CallbackGuard {
  private readonly delivered: BoundedMap<string, true>;
  private readonly signatures: BoundedMap<string, true>;
  private readonly jobList: BoundedMap<string, BillJob>;

  constructor(private readonly opts: GuardOptions) {
    const fileTtl = opts.fileTtlMs ?? 30 * 86_400_000;
    this.delivered = new BoundedMap({ max: opts.maxFiles ?? 10_000, maxAgeMs: fileTtl });
    this.signatures = new BoundedMap({ max: opts.maxSignatures ?? 10_000, maxAgeMs: 2 * opts.maxSkewMs });
    this.jobList = new BoundedMap({ max: opts.maxJobs ?? 10_000, maxAgeMs: fileTtl });
  }

  /**
   * The guard a saved state (version 1, 2 or 3, or undefined) and the journal after it describe; throws
   * StateShapeError on anything else.
   */
  static restore(saved: unknown, journal: unknown[], opts: GuardOptions, now = Date.now()): CallbackGuard {
    const g = new CallbackGuard(opts);
    if (saved !== undefined && saved !== null) {
      const st = saved as Record<string, unknown>;
      expectShape(typeof st === 'object' && (st.version === 1 || st.version === 2 || st.version === 3), 'not a ccfs-callback-in state (version 1, 2 or 3)');
      expectShape(Array.isArray(st.delivered) && Array.isArray(st.signatures), 'delivered or signatures is not a list');
      expectShape(st.version !== 3 || Array.isArray(st.jobs), 'jobs is not a list');
      const entries = (list: unknown[]): unknown[] => (st.version !== 1 ? list : list.map((e) => {
        expectShape(Array.isArray(e) && e.length === 2 && Number.isFinite(e[1]), 'a version 1 entry is not [text, time]');
        return [e[0], true, e[1]];
      }));
      const check = (what: string) => (k: unknown, v: unknown): [string, true] => {
        expectShape(typeof k === 'string' && k !== '' && v === true, `a ${what} entry is not [text, true, time]`);
        return [k, true];
      };
      g.delivered.restore(entries(st.delivered as unknown[]), check('delivered-file'));
      g.signatures.restore(entries(st.signatures as unknown[]), check('signature'));
      if (st.version === 3) g.jobList.restore(st.jobs as unknown[], (k, v) => [k as string, checkJob(v, k)]);
    }
    for (const e of journal) g.replay(e);
    g.prune(now);
    return g;
  }

  /**
   * Verifies a request and, when it is genuine and fresh, remembers its signature so the same request
   * cannot be played again (in memory; commit() makes it part of the state).
   */
  check(req: VerifyRequest, verifyOpts: { secretKey: string; accessKey?: string; hostOverride?: string; now?: number }): CheckResult {
    const now = verifyOpts.now ?? Date.now();
    const r = verify(req, { ...verifyOpts, maxSkewMs: this.opts.maxSkewMs, now });
    if (!r.ok) return { ok: false, reason: r.reason, detail: r.detail };
    this.signatures.prune(now);
    if (this.signatures.has(r.signature)) return { ok: false, reason: 'replayed', detail: 'this signed request was already received' };
    this.signatures.set(r.signature, true, now);
    return { ok: true, verified: r };
  }

  /** Forgets a signature, so the same request can be sent again (its delivery failed: a retry is not an attack). */
  release(signature: string): void {
    this.signatures.delete(signature);
  }

  isDelivered(billFileName: string, now = Date.now()): boolean {
    this.delivered.prune(now);
    return this.delivered.has(billFileName);
  }

  /** What is known of a bill file: delivered, a job not finished or failed, or nothing. */
  known(billFileName: string, now = Date.now()): 'delivered' | BillJob['state'] | null {
    if (this.isDelivered(billFileName, now)) return 'delivered';
    this.jobList.prune(now);
    return this.jobList.get(billFileName)?.state ?? null;
  }

  /** The jobs not finished, oldest first (to resume at start). */
  pendingJobs(): BillJob[] {
    return this.jobList.snapshot().map((e) => e[1]).filter((j) => j.state === 'pending');
  }

  /**
   * What a 200 answer (or a job's progress) stands for, applied: a delivered file, an accepted
   * signature, a job as it now is. Returns the journal entry to record before answering, or null when
   * there is nothing to remember.
   */
  commit(what: { billFileName?: string; signature?: string | null; job?: BillJob }, now = Date.now()): GuardEntry | null {
    if (what.billFileName === undefined && !what.signature && !what.job) return null;
    const entry: GuardEntry = { t: now };
    if (what.billFileName !== undefined) entry.f = what.billFileName;
    if (what.signature) entry.s = what.signature;
    if (what.job) entry.j = { ...what.job, meta: { ...what.job.meta } };
    this.replay(entry);
    this.prune(now);
    return entry;
  }

  /** Applies a journal entry written by commit (checked: a damaged entry throws StateShapeError). */
  replay(entry: unknown): void {
    const e = entry as GuardEntry;
    expectShape(e !== null && typeof e === 'object' && Number.isFinite(e.t)
      && (e.f === undefined || (typeof e.f === 'string' && e.f !== ''))
      && (e.s === undefined || (typeof e.s === 'string' && e.s !== ''))
      && (e.f !== undefined || e.s !== undefined || e.j !== undefined), 'a journal entry is not {f?, s?, j?, t}');
    if (e.j !== undefined) this.jobList.set(e.j.file, checkJob(e.j), e.t);
    if (e.f !== undefined) {
      this.delivered.set(e.f, true, e.t);
      this.jobList.delete(e.f);
    }
    if (e.s !== undefined) this.signatures.set(e.s, true, e.t);
  }

  private prune(now: number): void {
    this.delivered.prune(now);
    this.signatures.prune(now);
    this.jobList.prune(now);
  }

  snapshot(): CallbackState {
    return { version: 3, delivered: this.delivered.snapshot(), signatures: this.signatures.snapshot(), jobs: this.jobList.snapshot() };
  }
}

const text = (v: unknown) => v === null || typeof v === 'string';

function checkJob(v: unknown, key?: unknown): BillJob {
  const j = v as BillJob;
  expectShape(j !== null && typeof j === 'object' && typeof j.file === 'string' && BILL_FILE_NAME_RE.test(j.file)
    && (key === undefined || key === j.file) && text(j.responseId) && text(j.accountId) && text(j.version)
    && (j.state === 'pending' || j.state === 'failed') && Number.isInteger(j.attempts) && j.attempts >= 0
    && Number.isFinite(j.since) && (j.error === undefined || typeof j.error === 'string')
    && j.meta !== null && typeof j.meta === 'object' && !Array.isArray(j.meta),
  'a job is not {file, responseId, accountId, version, state, attempts, since, meta}');
  return j;
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

/** The registry as saved: requests by responseKey, oldest first. Earlier versions saved a plain list of requests; it is still read. */
export interface RegistryState {
  version: 2;
  requests: BoundedEntry<string, RequestRecord>[];
}

export interface RegistryLimits {
  maxEntries?: number;
  ttlMs?: number;
}

/**
 * Requests made by ccfs-bill-request nodes, so a callback can say which request it answers. Keyed by
 * responseId (without dashes); bounded by count and by age (from requestedAt); serialisable, with one
 * journal entry (the request) per remembered request.
 */
export class RequestRegistry {
  private readonly map: BoundedMap<string, RequestRecord>;

  constructor(limits: RegistryLimits = {}) {
    this.map = new BoundedMap({ max: limits.maxEntries ?? 10_000, maxAgeMs: limits.ttlMs ?? 14 * 86_400_000 });
  }

  /** The registry a saved state and the journal after it describe; throws StateShapeError on anything else. */
  static restore(saved: unknown, journal: unknown[], limits: RegistryLimits = {}, now = Date.now()): RequestRegistry {
    const r = new RequestRegistry(limits);
    if (Array.isArray(saved)) {
      for (const rec of saved) r.add(checkRequest(rec));
    } else if (saved !== undefined && saved !== null) {
      const st = saved as Record<string, unknown>;
      expectShape(typeof st === 'object' && st.version === 2 && Array.isArray(st.requests), 'not a ccfs-account state (a list of requests, or version 2)');
      r.map.restore(st.requests, (k, v) => {
        const rec = checkRequest(v);
        expectShape(k === responseKey(rec.responseId), 'a request is filed under another key');
        return [k, rec];
      });
    }
    for (const e of journal) r.add(checkRequest(e));
    r.map.prune(now);
    return r;
  }

  /** Remembers a request; returns the journal entry that replays it. */
  remember(r: RequestRecord, now = Date.now()): RequestRecord {
    this.add(r);
    this.map.prune(now);
    return r;
  }

  private add(r: RequestRecord): void {
    this.map.set(responseKey(r.responseId), r, Date.parse(r.requestedAt));
  }

  /** The request a callback answers: by its responseId, else by the id inside its file name. */
  find(responseId: string | null, billFileName: string, now = Date.now()): RequestRecord | null {
    this.map.prune(now);
    const keys = [responseId ? responseKey(responseId) : null, responseIdFromFileName(billFileName)];
    for (const k of keys) if (k && this.map.has(k)) return this.map.get(k)!;
    return null;
  }

  get size(): number {
    return this.map.size;
  }

  snapshot(): RegistryState {
    return { version: 2, requests: this.map.snapshot() };
  }
}

function checkRequest(v: unknown): RequestRecord {
  const r = v as RequestRecord;
  expectShape(r !== null && typeof r === 'object'
    && typeof r.responseId === 'string' && r.responseId !== '' && typeof r.billFileName === 'string'
    && typeof r.requestedAt === 'string' && Number.isFinite(Date.parse(r.requestedAt)) && typeof r.node === 'string'
    && r.msgBody !== null && typeof r.msgBody === 'object' && !Array.isArray(r.msgBody)
    && (r.part === undefined || Number.isInteger(r.part)) && (r.parts === undefined || Number.isInteger(r.parts)),
  'a remembered request is not {responseId, billFileName, requestedAt, node, msgBody}');
  return r;
}

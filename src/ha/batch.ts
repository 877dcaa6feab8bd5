/**
 * Claiming the records of one delivery (a CMS POST) at once: which are this instance's to pass on,
 * which another instance already passed on, and a bounded wait for those another instance is still
 * delivering (its claim either becomes done, or is given back / runs out and can be won here).
 */
import type { Claims } from './claim';

/** Some records stayed claimed by another instance that neither finished nor gave up within the wait. */
export class ClaimPendingError extends Error {
  constructor(readonly count: number) {
    super(`${count} record(s) still being delivered by another instance`);
    this.name = 'ClaimPendingError';
  }
}

export interface BatchClaim {
  /** Per input key, in order: true when this instance won it (and must pass the record on). */
  won: boolean[];
  /** The keys won, to confirm after delivery or release on failure. */
  keys: string[];
}

export interface BatchOptions {
  /** Expiry of a claim not yet confirmed: the longest a holder that died blocks a record. */
  ttlMs: number;
  /** How long to wait for another instance's pending claims before giving up. */
  waitMs: number;
  /** Pause between looks at pending claims. */
  pollMs?: number;
}

/**
 * Claims every key. On any failure (Redis away, still pending after the wait) the claims won so far
 * are given back before the error is thrown, so nothing stays blocked by this instance.
 */
export async function claimBatch(claims: Claims, keys: readonly string[], opts: BatchOptions): Promise<BatchClaim> {
  const won = keys.map(() => false);
  const taken: string[] = [];
  try {
    let open = keys.map((_, i) => i);
    const until = Date.now() + opts.waitMs;
    for (;;) {
      const results = await Promise.all(open.map((i) => claims.claim(keys[i], opts.ttlMs)));
      const still: number[] = [];
      results.forEach((r, j) => {
        const i = open[j];
        if (r === 'won') {
          won[i] = true;
          taken.push(keys[i]);
        } else if (r === 'pending') {
          still.push(i);
        }
      });
      if (still.length === 0) return { won, keys: taken };
      if (Date.now() >= until) throw new ClaimPendingError(still.length);
      open = still;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 25));
    }
  } catch (err) {
    await releaseAll(claims, taken);
    throw err;
  }
}

/** Gives back claims (best effort: one that cannot be released runs out by itself). */
export async function releaseAll(claims: Claims, keys: readonly string[]): Promise<void> {
  await Promise.all(keys.map((k) => claims.release(k).catch(() => false)));
}

/** Marks delivered; resolves with how many were no longer ours (they ran out before the confirm). */
export async function confirmAll(claims: Claims, keys: readonly string[], windowMs: number): Promise<number> {
  const ok = await Promise.all(keys.map((k) => claims.confirm(k, windowMs)));
  return ok.filter((x) => !x).length;
}

/**
 * The key of a CMS record across receivers (specs/cms.md §1.3): `(session, correlatorIndex)` is unique
 * across all receivers of a call bridge, recordIndex is not. A record without them (a CMS before R1.2,
 * or a hand-made post) falls back to what identifies the event itself.
 */
export function cmsClaimKey(r: { session: string | null; correlatorIndex: number | null; callBridge: string | null; type: string | null; id: string | null; time: string | null }): string {
  if (r.session && r.correlatorIndex !== null) return `cms:${r.session}:${r.correlatorIndex}`;
  return `cms:x:${r.callBridge ?? ''}:${r.type ?? ''}:${r.id ?? ''}:${r.time ?? ''}`;
}

/**
 * What a webex-account keeps across restarts, checked on the way in (restore functions for
 * src/nodes/lib/state.ts nodeState; a wrong shape throws StateShapeError):
 * - the OAuth tokens (access token, refresh token, expiry, lineage): only ever in the owner-only
 *   secret file (TokenState);
 * - the host a 451 named (HostState), in the store the user chose. Versions before the node kit kept
 *   `{tokens, host}` there, with no version: the tokens are read as `legacyTokens`, to be moved into
 *   the secret file and removed from there.
 */
import { expectShape } from '../common/persist';
import type { StoredTokens } from './oauth';

export interface TokenState {
  version: 1;
  tokens: StoredTokens | null;
}

/** A host learnt from a 451, valid while the configured base URL is `for`. */
export interface LearntHost {
  for: string;
  url: string;
}

export interface HostState {
  host: LearntHost | null;
  /** Tokens an older version saved in this store, not yet moved to the secret file. */
  legacyTokens: StoredTokens | null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(v: Record<string, unknown>, allowed: string[], what: string): void {
  const extra = Object.keys(v).filter((k) => !allowed.includes(k));
  expectShape(extra.length === 0, `${what}: unknown field ${JSON.stringify(extra[0])}`);
}

const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);

/** Throws unless `v` is a token set as TokenManager saves it. */
export function checkTokens(v: unknown, what: string): StoredTokens {
  expectShape(isRecord(v), `${what} is not an object`);
  onlyKeys(v, ['accessToken', 'expiresAt', 'refreshToken', 'refreshExpiresAt', 'lineage', 'updatedAt'], what);
  expectShape(typeof v.accessToken === 'string', `${what}: accessToken is not text`);
  expectShape(finite(v.expiresAt), `${what}: expiresAt is not a number`);
  expectShape(v.refreshToken === undefined || typeof v.refreshToken === 'string', `${what}: refreshToken is not text`);
  expectShape(v.refreshExpiresAt === undefined || finite(v.refreshExpiresAt), `${what}: refreshExpiresAt is not a number`);
  expectShape(Array.isArray(v.lineage) && v.lineage.every((h) => typeof h === 'string'), `${what}: lineage is not a list of hashes`);
  expectShape(typeof v.updatedAt === 'string', `${what}: updatedAt is not text`);
  return { ...(v as unknown as StoredTokens), lineage: [...(v.lineage as string[])] };
}

/** The secret file: `{version: 1, tokens}`; undefined (no file) is a first start. */
export function restoreTokens(saved: unknown): TokenState {
  if (saved === undefined) return { version: 1, tokens: null };
  expectShape(isRecord(saved), 'the saved tokens are not an object');
  expectShape(saved.version === 1, `unknown token file version ${JSON.stringify(saved.version)}`);
  onlyKeys(saved, ['version', 'tokens'], 'the saved tokens');
  return { version: 1, tokens: saved.tokens === null || saved.tokens === undefined ? null : checkTokens(saved.tokens, 'the saved tokens') };
}

function checkHost(v: unknown): LearntHost | null {
  if (v === undefined || v === null) return null;
  expectShape(isRecord(v) && typeof v.for === 'string' && typeof v.url === 'string' && /^https?:\/\//i.test(v.url), `the learnt host ${JSON.stringify(v).slice(0, 120)} is not {for, url}`);
  return { for: v.for as string, url: v.url as string };
}

/** The chosen store: `{version: 2, host}`, or what older versions kept there (`{tokens, host}`). */
export function restoreHost(saved: unknown): HostState {
  if (saved === undefined) return { host: null, legacyTokens: null };
  expectShape(isRecord(saved), 'the saved account state is not an object');
  expectShape(saved.version === undefined || saved.version === 2, `unknown account state version ${JSON.stringify(saved.version)}`);
  onlyKeys(saved, ['version', 'host', 'tokens'], 'the saved account state');
  return {
    host: checkHost(saved.host),
    legacyTokens: saved.tokens === undefined || saved.tokens === null ? null : checkTokens(saved.tokens, 'the tokens saved by an older version'),
  };
}

/** What goes back into the chosen store: never tokens once they were moved to the secret file. */
export function hostSnapshot(s: HostState): Record<string, unknown> {
  return { version: 2, host: s.host, ...(s.legacyTokens ? { tokens: s.legacyTokens } : {}) };
}

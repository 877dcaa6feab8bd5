/**
 * Huawei AICC "auth-v2" (C2) signing and verification, exactly as Huawei's reference demo code
 * computes it (specs/ccfs.md §2): a percent-encoded canonical request that carries the whole raw body,
 * a signing key derived from the SK and the auth-string prefix, both HMAC-SHA256 in lowercase hex.
 *
 *   authStringPrefix = "auth-v2/" + AK + "/" + timestamp + "/" + signedHeaders
 *   signingKey       = hex(HMAC-SHA256(SK, authStringPrefix))
 *   signature        = hex(HMAC-SHA256(signingKey as its 64-char hex text, canonicalRequest))
 *   Authorization    = authStringPrefix + "/" + signature
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const UNRESERVED = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;
const HEX = '0123456789ABCDEF';

/**
 * Huawei's PathUtils.normalize: UTF-8 bytes, `A-Z a-z 0-9 - . _ ~` kept, every other byte `%XX` in
 * uppercase hex (space is `%20`). Not encodeURIComponent, which leaves `! ' ( ) *` alone.
 */
export function normalize(s: string | Buffer): string {
  const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  let out = '';
  for (const b of bytes) out += UNRESERVED[b] ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  return out;
}

export type QueryInput = Record<string, string | number | boolean | null | undefined | Array<string | number>> | null | undefined;

export interface SignInput {
  accessKey: string;
  secretKey: string;
  /** The timestamp text exactly as it goes into the auth string (see authTimestamp). */
  timestamp: string;
  method: string;
  /** The path as is, not encoded, without the query. */
  uri: string;
  query?: QueryInput;
  /** The headers to sign (any case), with their values as sent / received. */
  headers: Record<string, string | number>;
  /** The raw body: the exact string or bytes that are (or were) on the wire. */
  body?: string | Buffer | null;
}

export interface Signature {
  authStringPrefix: string;
  signingKey: string;
  canonicalRequest: string;
  signature: string;
  authorization: string;
  /** Lowercase, sorted names, as listed in the auth string. */
  signedHeaders: string[];
}

function queryLine(query: QueryInput): string | null {
  if (!query) return null;
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    const values = Array.isArray(v) ? v : [v];
    for (const one of values) pairs.push(`${normalize(k)}=${normalize(one === null ? '' : String(one))}`);
  }
  if (pairs.length === 0) return null;
  return pairs.sort().join('&');
}

function headerEntries(headers: Record<string, string | number>): Array<[string, string]> {
  const map = new Map<string, string>();
  for (const [k, v] of Object.entries(headers)) map.set(k.trim().toLowerCase(), String(v).trim());
  return [...map.entries()];
}

/** The canonical request of specs/ccfs.md §2.3. */
export function canonicalRequest(input: Pick<SignInput, 'method' | 'uri' | 'query' | 'headers' | 'body'>): { text: string; signedHeaders: string[] } {
  const entries = headerEntries(input.headers);
  const names = entries.map(([k]) => k).sort();
  const lines = [input.method, input.uri];
  const q = queryLine(input.query);
  if (q !== null) lines.push(q);
  lines.push(names.join(';'));
  lines.push(entries.map(([k, v]) => `${normalize(k)}:${normalize(v)}`).sort().join('\n'));
  const body = input.body;
  const payload = body === null || body === undefined || body.length === 0 ? '' : normalize(body);
  return { text: `${lines.join('\n')}\n${payload}`, signedHeaders: names };
}

function hmacHex(key: string, data: string): string {
  return createHmac('sha256', Buffer.from(key, 'utf8')).update(data, 'utf8').digest('hex');
}

export function sign(input: SignInput): Signature {
  const { text, signedHeaders } = canonicalRequest(input);
  const authStringPrefix = `auth-v2/${input.accessKey}/${input.timestamp}/${signedHeaders.join(';')}`;
  const signingKey = hmacHex(input.secretKey, authStringPrefix);
  const signature = hmacHex(signingKey, text);
  return { authStringPrefix, signingKey, canonicalRequest: text, signature, authorization: `${authStringPrefix}/${signature}`, signedHeaders };
}

/** The timestamp a signer sends: UTC, seconds precision, like Huawei's demo (2018-07-02T02:42:49Z). */
export function authTimestamp(date: Date | number = Date.now()): string {
  return new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$/;

/** Reads an auth-v2 timestamp with or without milliseconds; null when it is anything else. */
export function parseAuthTimestamp(ts: string): number | null {
  const m = TS_RE.exec(ts);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return null;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s, m[7] ? Number(m[7].padEnd(3, '0')) : 0);
  if (new Date(ms).getUTCDate() !== d) return null;
  return ms;
}

export interface ParsedAuthorization {
  accessKey: string;
  timestamp: string;
  signedHeaders: string[];
  signature: string;
}

/**
 * Splits `auth-v2/{AK}/{timestamp}/{signedHeaders}/{signature}`. Tolerates the line break that Huawei's
 * docs show before the last `/`. Null for any other scheme or shape.
 */
export function parseAuthorization(header: string | undefined | null): ParsedAuthorization | null {
  if (typeof header !== 'string') return null;
  const parts = header.replace(/\s*\r?\n\s*/g, '').trim().split('/');
  if (parts.length !== 5 || parts[0] !== 'auth-v2') return null;
  const [, accessKey, timestamp, headers, signature] = parts;
  if (!accessKey || !timestamp || !headers || !/^[0-9a-fA-F]{64}$/.test(signature)) return null;
  const signedHeaders = headers.split(';');
  if (signedHeaders.some((h) => h === '' || h !== h.toLowerCase())) return null;
  return { accessKey, timestamp, signedHeaders, signature: signature.toLowerCase() };
}

export type VerifyFailure = 'missing' | 'malformed' | 'accessKey' | 'headers' | 'timestamp' | 'stale' | 'signature';

export interface VerifyRequest {
  method: string;
  /** The path as received, without the query. */
  uri: string;
  query?: QueryInput;
  /** The received headers (Node's lowercase IncomingHttpHeaders, or any case). */
  headers: Record<string, string | string[] | undefined>;
  /** The raw body bytes as received. */
  body: Buffer | string | null;
}

export interface VerifyOptions {
  secretKey: string;
  /** When set, the AK in the auth string must be this one. */
  accessKey?: string;
  /** Largest allowed |now - timestamp|, milliseconds. */
  maxSkewMs: number;
  now?: number;
  /** Headers that must be among the signed ones (default: host). */
  requiredHeaders?: string[];
  /** Replaces the received Host header, e.g. the public host when a proxy rewrote it. */
  hostOverride?: string;
}

export type VerifyResult =
  | { ok: true; accessKey: string; timestamp: string; time: number; signature: string; signedHeaders: string[] }
  | { ok: false; reason: VerifyFailure; detail: string; accessKey?: string };

/** Verifies a received request's Authorization header over its method, path, query, signed headers and raw body. */
export function verify(req: VerifyRequest, opts: VerifyOptions): VerifyResult {
  const lower: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) lower[k.toLowerCase()] = v;
  const raw = lower.authorization;
  const header = Array.isArray(raw) ? raw[0] : raw;
  if (!header) return { ok: false, reason: 'missing', detail: 'no Authorization header' };
  const auth = parseAuthorization(header);
  if (!auth) return { ok: false, reason: 'malformed', detail: 'Authorization is not auth-v2/{AK}/{timestamp}/{signedHeaders}/{signature}' };
  if (opts.accessKey !== undefined && auth.accessKey !== opts.accessKey) {
    return { ok: false, reason: 'accessKey', detail: `signed with AK "${auth.accessKey}", not the configured one`, accessKey: auth.accessKey };
  }
  const time = parseAuthTimestamp(auth.timestamp);
  if (time === null) return { ok: false, reason: 'timestamp', detail: `timestamp "${auth.timestamp}" is not yyyy-MM-ddTHH:mm:ss[.SSS]Z`, accessKey: auth.accessKey };
  for (const need of opts.requiredHeaders ?? ['host']) {
    if (!auth.signedHeaders.includes(need)) return { ok: false, reason: 'headers', detail: `"${need}" is not among the signed headers`, accessKey: auth.accessKey };
  }
  const signed: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    let v: string | string[] | undefined = name === 'host' && opts.hostOverride ? opts.hostOverride : lower[name];
    if (Array.isArray(v)) v = v.join(',');
    if (v === undefined) return { ok: false, reason: 'headers', detail: `signed header "${name}" is not in the request`, accessKey: auth.accessKey };
    signed[name] = v;
  }
  const expected = sign({ accessKey: auth.accessKey, secretKey: opts.secretKey, timestamp: auth.timestamp, method: req.method, uri: req.uri, query: req.query, headers: signed, body: req.body });
  const a = Buffer.from(expected.signature, 'utf8');
  const b = Buffer.from(auth.signature, 'utf8');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, reason: 'signature', detail: 'signature does not match', accessKey: auth.accessKey };
  // Checked after the signature, so an attacker learns nothing about the clock from unsigned requests.
  const now = opts.now ?? Date.now();
  if (Math.abs(now - time) > opts.maxSkewMs) {
    return { ok: false, reason: 'stale', detail: `timestamp ${auth.timestamp} is ${Math.round((now - time) / 1000)} s from this server's clock`, accessKey: auth.accessKey };
  }
  return { ok: true, accessKey: auth.accessKey, timestamp: auth.timestamp, time, signature: auth.signature, signedHeaders: auth.signedHeaders };
}

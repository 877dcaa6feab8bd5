/**
 * Who may post to a receiver: an optional IP allow-list, HTTP Basic credentials and a secret token.
 * Pure checks over request facts; the node adapter turns a refusal into 401/403.
 */
import { BlockList, isIP } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';

export interface SenderRules {
  /** null: any address. */
  allow: BlockList | null;
  basic: { user: string; password: string } | null;
  /** Accepted as the last path segment or as `?token=`. */
  token: string | null;
}

/** Parses "10.0.0.0/8, 192.0.2.7, ::1" into a BlockList used as an allow-list. Throws on a bad entry. */
export function parseAllowList(text: string | undefined): BlockList | null {
  const entries = (text ?? '').split(/[\s,;]+/).filter(Boolean);
  if (entries.length === 0) return null;
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, bits, extra] = entry.split('/');
    const family = isIP(addr);
    if (family === 0 || extra !== undefined) throw new Error(`not an IP address or CIDR range: ${entry}`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) {
      list.addAddress(addr, type);
    } else {
      const prefix = Number(bits);
      if (!/^\d+$/.test(bits) || prefix > (family === 6 ? 128 : 32)) throw new Error(`bad prefix length in ${entry}`);
      list.addSubnet(addr, prefix, type);
    }
  }
  return list;
}

/** No sender check at all: anyone who can reach the port may post. */
export function isOpen(rules: SenderRules): boolean {
  return rules.allow === null && rules.basic === null && rules.token === null;
}

/** The sender's address without the IPv4-mapped IPv6 prefix. */
export function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export function addressAllowed(list: BlockList | null, address: string): boolean {
  if (list === null) return true;
  const family = isIP(address);
  if (family === 0) return false;
  return list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/** Constant-time comparison that does not leak the length of the secret. */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function basicAuthOk(header: string | undefined, expected: { user: string; password: string }): boolean {
  if (!header || !/^basic /i.test(header)) return false;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  // evaluate both so timing does not say which part was wrong
  const userOk = sameSecret(decoded.slice(0, colon), expected.user);
  const passOk = sameSecret(decoded.slice(colon + 1), expected.password);
  return userOk && passOk;
}

/** `code` names the rule that refused (for the caller's message catalog); `reason` is plain English. */
export type Refusal = { status: 401 | 403; code: 'address' | 'token' | 'basic'; reason: string; challenge?: string };

/** Applies the rules in order: address, token, Basic. Returns null when the sender may post. */
export function checkSender(
  rules: SenderRules,
  req: { address: string; authorization?: string; token?: string | null },
): Refusal | null {
  if (!addressAllowed(rules.allow, req.address)) return { status: 403, code: 'address', reason: 'sender address not allowed' };
  if (rules.token !== null && (req.token == null || !sameSecret(req.token, rules.token))) {
    return { status: 401, code: 'token', reason: 'missing or wrong token' };
  }
  if (rules.basic !== null && !basicAuthOk(req.authorization, rules.basic)) {
    return { status: 401, code: 'basic', reason: 'missing or wrong credentials', challenge: 'Basic realm="cdr", charset="UTF-8"' };
  }
  return null;
}

/**
 * The one way adapters read their node's properties. Every reader takes the current name first and
 * then the names older flows used (`verifyTls` after `tlsVerify`, `timeout` after `timeoutS`), treats
 * '' and whitespace as unset, and expands `${ENV}` inside a text (Node-RED itself only replaces a
 * property that is exactly `${ENV}`).
 */
import { readFileSync } from 'node:fs';
import type { NodeAPI, Node } from 'node-red';
import { isValidZone } from '../../common/time';

type Names = string | string[];

export interface NumberRule {
  min?: number;
  max?: number;
  integer?: boolean;
  /** 0 and below count as unset (a limit or a timeout of 0 means "the default"). */
  positive?: boolean;
}

export interface PropertyReader {
  /** Trimmed text with `${ENV}` expanded; `fallback` when unset. */
  text(names: Names, fallback?: string): string;
  /** A number within [min, max] (clamped); `fallback` when unset or not a number. */
  number(names: Names, fallback: number, rule?: NumberRule): number;
  /** true/false/'true'/'false'; `fallback` when unset. */
  flag(names: Names, fallback: boolean): boolean;
  /** One of `allowed`; `fallback` otherwise. */
  choice<T extends string>(names: Names, allowed: readonly T[], fallback: T): T;
  /** Seconds in the property, milliseconds returned. */
  seconds(names: Names, fallbackS: number, rule?: NumberRule): number;
  /** An IANA zone name, or null when set but not valid (the caller reports it); `fallback` when unset. */
  zone(names: Names, fallback: string): string | null;
  /**
   * A CA certificate given as PEM text or as the path of a PEM file: `{ pem }` (undefined when unset),
   * or `{ problem }` (the file cannot be read) for the config node to report.
   */
  pem(names: Names): { pem?: string; problem?: string };
  /** The raw value (first name set), for properties with their own grammar. */
  raw(names: Names): unknown;
}

export function properties(RED: NodeAPI, node: Node, def: object): PropertyReader {
  const values = def as Record<string, unknown>;
  const raw = (names: Names): unknown => {
    for (const n of Array.isArray(names) ? names : [names]) {
      const v = values[n];
      if (v === undefined || v === null) continue;
      if (typeof v === 'string' && v.trim() === '') continue;
      return v;
    }
    return undefined;
  };
  const expand = (v: string): string => (/\$\{[^}]+\}/.test(v) ? String(RED.util.evaluateNodeProperty(v, 'env', node, {} as never) ?? '') : v);
  const reader: PropertyReader = {
    raw,
    text(names, fallback = '') {
      const v = raw(names);
      return v === undefined ? fallback : expand(String(v)).trim();
    },
    number(names, fallback, rule = {}) {
      const v = raw(names);
      const n = typeof v === 'number' ? v : v === undefined ? NaN : Number(expand(String(v)).trim());
      if (!Number.isFinite(n) || (rule.positive && n <= 0)) return fallback;
      let out = rule.integer ? Math.floor(n) : n;
      if (rule.min !== undefined) out = Math.max(rule.min, out);
      if (rule.max !== undefined) out = Math.min(rule.max, out);
      return out;
    },
    flag(names, fallback) {
      const v = raw(names);
      if (v === true || v === 'true') return true;
      if (v === false || v === 'false') return false;
      return fallback;
    },
    choice(names, allowed, fallback) {
      const v = raw(names);
      return typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as typeof fallback) : fallback;
    },
    pem(names) {
      const v = reader.text(names);
      if (v === '') return {};
      if (v.includes('-----BEGIN')) return { pem: v };
      try {
        return { pem: readFileSync(v, 'utf8') };
      } catch (err) {
        return { problem: `${v}: ${(err as Error).message}` };
      }
    },
    seconds(names, fallbackS, rule) {
      return Math.round(reader.number(names, fallbackS, rule) * 1000);
    },
    zone(names, fallback) {
      const z = reader.text(names, fallback);
      return isValidZone(z) ? z : null;
    },
  };
  return reader;
}

/**
 * A time in milliseconds from settings.js (`key`), for what a user tunes once per runtime rather than
 * per node (lease time, claim wait, retry pause; tests make them short). Anything not a number of at
 * least `min` gives `fallbackMs`.
 */
export function settingMs(RED: NodeAPI, key: string, fallbackMs: number, min = 0): number {
  const v = Number((RED.settings as unknown as Record<string, unknown>)[key] ?? fallbackMs);
  return Number.isFinite(v) && v >= min ? v : fallbackMs;
}

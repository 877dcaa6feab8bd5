/** Paths to the captured payloads (test/fixtures/shared, a copy of the project's shared fixtures) and this package's own test inputs. */
import * as fs from 'node:fs';
import * as path from 'node:path';

// kept in the repository, so a fresh clone needs nothing beside it
export const sharedFixtures = path.resolve(__dirname, '..', 'fixtures', 'shared');
export const ownFixtures = path.resolve(__dirname, '..', 'fixtures');

export function shared(...parts: string[]): string {
  return fs.readFileSync(path.join(sharedFixtures, ...parts), 'utf8');
}

export function own(...parts: string[]): string {
  return fs.readFileSync(path.join(ownFixtures, ...parts), 'utf8');
}

/** The ten real 2017 CMS POST bodies, in the order CMS sent them. */
export function mividasPosts(): string[] {
  const dir = path.join(sharedFixtures, 'cms', 'real_mividas_2017-04-24_posts');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.xml')).sort().map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
}

/** Wraps a bare `<record>` (the record-only fixtures) in a `<records>` envelope. */
export function envelope(record: string, session = '11111111-2222-4333-8444-555555555555', callBridge?: string): string {
  const bridge = callBridge ? ` callBridge="${callBridge}"` : '';
  return `<?xml version="1.0"?><records session="${session}"${bridge}>${record}</records>`;
}

/** Sorts object keys recursively, as Flask's jsonify did for cdr-receiver-db. */
export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

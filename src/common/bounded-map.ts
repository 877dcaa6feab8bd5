/**
 * The one bounded map behind every dedup window and registry of the package: a Map in least recently
 * set order, with a cap on entries, an optional age limit and a plain-JSON snapshot. Whatever an
 * untrusted sender can fill must be bounded, so nothing here grows without limit.
 */
export interface BoundedMapOptions<K, V> {
  /** Most entries kept; the least recently set go first. */
  max: number;
  /** Entries older than this (by the time they were last set) are dropped by prune(). */
  maxAgeMs?: number;
  /** Called for each entry pushed out by the cap or the age limit (not for delete()). */
  onEvict?: (key: K, value: V) => void;
}

/** [key, value, time last set (ms)] */
export type BoundedEntry<K, V> = [K, V, number];

type Entry<V> = { v: V; t: number };

export class BoundedMap<K, V> {
  private readonly map = new Map<K, Entry<V>>();
  /**
   * The oldest entry, found with one long-lived iterator: a fresh iterator would walk past every slot
   * that deletions left at the front of the Map (until V8 rehashes), which made eviction at a cap of
   * 100,000 cost seconds. An entry is current while the Map still holds that very entry object (set()
   * replaces it), so a moved or deleted one is skipped.
   */
  private it: IterableIterator<[K, Entry<V>]> | null = null;
  private head: [K, Entry<V>] | null = null;
  /** The entry set last, if it is still the newest (updated in place when set again). */
  private newest: [K, Entry<V>] | undefined;

  private front(): [K, Entry<V>] | null {
    for (;;) {
      if (this.head && this.map.get(this.head[0]) === this.head[1]) return this.head;
      if (this.map.size === 0) {
        this.it = null;
        this.head = null;
        return null;
      }
      this.it ??= this.map.entries();
      const r = this.it.next();
      if (r.done) {
        // entries set after the iterator finished: start over (everything it passed is gone)
        this.it = null;
        this.head = null;
        continue;
      }
      this.head = r.value;
    }
  }

  constructor(readonly opts: BoundedMapOptions<K, V>) {}

  get size(): number {
    return this.map.size;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  get(key: K): V | undefined {
    return this.map.get(key)?.v;
  }

  /** When `key` was last set (ms), if present. */
  timeOf(key: K): number | undefined {
    return this.map.get(key)?.t;
  }

  /** Sets (and makes newest) `key`; evicts beyond the cap. */
  set(key: K, value: V, at = Date.now()): this {
    // the newest key set again (a steady stream from one session or sender): updated where it stands
    if (this.newest !== undefined && this.newest[0] === key && this.map.get(key) === this.newest[1]) {
      this.newest[1].v = value;
      this.newest[1].t = at;
      return this;
    }
    const entry = { v: value, t: at };
    this.map.delete(key);
    this.map.set(key, entry);
    this.newest = [key, entry];
    while (this.map.size > this.opts.max) this.evictOldest();
    return this;
  }

  /** Makes `key` newest without changing its value. */
  touch(key: K, at = Date.now()): void {
    const e = this.map.get(key);
    if (e) this.set(key, e.v, at);
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.it = null;
    this.head = null;
    this.newest = undefined;
  }

  /** The oldest key, if any. */
  oldest(): K | undefined {
    return this.front()?.[0];
  }

  evictOldest(): void {
    const first = this.front();
    if (!first) return;
    const [k, e] = first;
    this.map.delete(k);
    this.opts.onEvict?.(k, e.v);
  }

  /** Drops entries older than maxAgeMs; returns how many. */
  prune(now = Date.now()): number {
    const maxAge = this.opts.maxAgeMs;
    if (maxAge === undefined) return 0;
    let n = 0;
    // set order is age order (set() moves an entry to the end), so the old ones are at the front
    for (let first = this.front(); first && first[1].t + maxAge < now; first = this.front()) {
      this.evictOldest();
      n++;
    }
    return n;
  }

  /** Drops every entry for which `test` holds (not counted as evictions). */
  deleteWhere(test: (value: V, key: K) => boolean): number {
    let n = 0;
    for (const [k, e] of this.map) {
      if (test(e.v, k)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }

  *entries(): IterableIterator<[K, V]> {
    for (const [k, e] of this.map) yield [k, e.v];
  }

  keys(): IterableIterator<K> {
    return this.map.keys();
  }

  *values(): IterableIterator<V> {
    for (const e of this.map.values()) yield e.v;
  }

  snapshot(copy: (v: V) => V = (v) => v): BoundedEntry<K, V>[] {
    const out: BoundedEntry<K, V>[] = [];
    for (const [k, e] of this.map) out.push([k, copy(e.v), e.t]);
    return out;
  }

  /**
   * Loads saved entries (oldest first), each checked by `check`, which returns the value to keep or
   * throws. The cap and the age limit apply as they would have when the entries were set.
   */
  restore(entries: unknown, check: (key: unknown, value: unknown) => [K, V]): this {
    if (!Array.isArray(entries)) throw new TypeError('expected a list of entries');
    for (const e of entries) {
      if (!Array.isArray(e) || e.length < 2) throw new TypeError('an entry is not [key, value, time]');
      const [k, v] = check(e[0], e[1]);
      const t = typeof e[2] === 'number' && Number.isFinite(e[2]) ? e[2] : Date.now();
      this.set(k, v, t);
    }
    return this;
  }
}

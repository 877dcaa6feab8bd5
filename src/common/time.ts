/**
 * Wall-clock times of a named IANA zone ↔ UTC, DST-correct, with Intl only (no tz database of our own).
 * Com.X and CC-FS speak local time; everything this package emits is UTC ISO 8601 with Z.
 */

export interface LocalParts {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export interface ZonedResult {
  /** The UTC instant. For an ambiguous time (DST fall-back) the earlier one; for a skipped time, as if the clock had not moved yet. */
  date: Date;
  /** The wall-clock time happened twice (fall-back): `date` is the first, `alternative` the second. */
  ambiguous: boolean;
  alternative?: Date;
  /** The wall-clock time never happened (spring-forward gap). */
  nonexistent: boolean;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** Throws RangeError for a zone name Intl does not know. */
export function assertZone(zone: string): void {
  formatter(zone);
}

export function isValidZone(zone: string): boolean {
  try {
    assertZone(zone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock parts of `ms` in `zone`. */
export function localParts(ms: number, zone: string): LocalParts {
  const out: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return { year: out.year, month: out.month, day: out.day, hour: out.hour, minute: out.minute, second: out.second };
}

/** Offset of `zone` from UTC at instant `ms`, in milliseconds (east positive). */
export function zoneOffsetMs(ms: number, zone: string): number {
  const p = localParts(ms, zone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/** Converts a wall-clock time in `zone` to UTC, saying when DST made it ambiguous or impossible. */
export function zonedToUtc(parts: LocalParts, zone: string): ZonedResult {
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  // The offsets in force a day either side bracket any DST change near this time.
  const before = zoneOffsetMs(wall - 86_400_000, zone);
  const after = zoneOffsetMs(wall + 86_400_000, zone);
  const candidates = [...new Set([before, after])]
    .map((off) => wall - off)
    .filter((t) => t + zoneOffsetMs(t, zone) === wall)
    .sort((a, b) => a - b);
  if (candidates.length === 0) {
    // spring-forward gap: read the time with the offset in force before the change
    return { date: new Date(wall - before), ambiguous: false, nonexistent: true };
  }
  if (candidates.length > 1) {
    return { date: new Date(candidates[0]), ambiguous: true, alternative: new Date(candidates[1]), nonexistent: false };
  }
  return { date: new Date(candidates[0]), ambiguous: false, nonexistent: false };
}

const LOCAL_RE = /^(\d{4})-?(\d{2})-?(\d{2})[T ]?(\d{2}):?(\d{2}):?(\d{2})$/;

/**
 * Parses `yyyy-MM-dd HH:mm:ss`, `yyyyMMddHHmmss` or `yyyy-MM-ddTHH:mm:ss` (no zone) as a wall-clock time.
 * Returns null when the text is not such a time or names an impossible date.
 */
export function parseLocal(text: string): LocalParts | null {
  const m = LOCAL_RE.exec(text.trim());
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return null;
  return { year, month, day, hour, minute, second };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `ms` as wall-clock text in `zone`: pattern `compact` = yyyyMMddHHmmss, `sql` = yyyy-MM-dd HH:mm:ss. */
export function formatLocal(ms: number, zone: string, pattern: 'compact' | 'sql'): string {
  const p = localParts(ms, zone);
  const date = `${pad(p.year, 4)}${pattern === 'sql' ? '-' : ''}${pad(p.month)}${pattern === 'sql' ? '-' : ''}${pad(p.day)}`;
  const time = `${pad(p.hour)}${pattern === 'sql' ? ':' : ''}${pad(p.minute)}${pattern === 'sql' ? ':' : ''}${pad(p.second)}`;
  return pattern === 'sql' ? `${date} ${time}` : `${date}${time}`;
}

/** UTC ISO 8601 with Z and no milliseconds: 2026-03-29T01:30:00Z. */
export function isoUtc(date: Date | number): string {
  return new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

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

// Reading UTC ISO 8601 text fast (the mapping of cdr-normalize reads many).
const hourCache = new Map<number, number>();

function digits2(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48, b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : NaN;
}

/** The instant of `YYYY-MM-DDTHH` (validated once, then cached under a numeric key), NaN when impossible. */
function hourMs(s: string): number {
  const year = digits2(s, 0) * 100 + digits2(s, 2);
  const month = digits2(s, 5), day = digits2(s, 8), hour = digits2(s, 11);
  if (Number.isNaN(year + month + day + hour)) return NaN;
  const key = ((year * 100 + month) * 100 + day) * 100 + hour;
  let t = hourCache.get(key);
  if (t === undefined) {
    t = month < 1 || month > 12 || day < 1 || hour > 23 ? NaN : Date.UTC(year, month - 1, day, hour);
    // Date.UTC rolls 31 April over into May: refuse what does not round-trip
    if (!Number.isNaN(t) && new Date(t).getUTCDate() !== day) t = NaN;
    if (hourCache.size > 50_000) hourCache.clear();
    hourCache.set(key, t);
  }
  return t;
}

/**
 * Milliseconds of `YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z` read by character codes (Date.parse was the hot spot of
 * the mapping), NaN when the text is not exactly that form or names an impossible time.
 */
export function isoMs(s: string): number {
  const n = s.length;
  if (n < 20 || n > 24 || n === 21 || s.charCodeAt(n - 1) !== 90 /* Z */ || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return NaN;
  const minute = digits2(s, 14), second = digits2(s, 17);
  if (!(minute <= 59 && second <= 59)) return NaN;
  let frac = 0;
  if (n > 20) {
    if (s.charCodeAt(19) !== 46) return NaN;
    let scale = 100;
    for (let i = 20; i < n - 1; i++, scale /= 10) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return NaN;
      frac += c * scale;
    }
  }
  return hourMs(s) + minute * 60_000 + second * 1000 + frac;
}

/** Milliseconds of a UTC ISO time, or null. */
export function ms(iso: string | null): number | null {
  if (iso === null) return null;
  const fast = isoMs(iso);
  if (!Number.isNaN(fast)) return fast;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

const dayPrefix = new Map<number, string>();
/** UTC ISO 8601 with Z; milliseconds kept only when the source had them. The date part is cached per day. */
export function iso(t: number, withMs = false): string {
  const day = Math.floor(t / 86_400_000);
  let prefix = dayPrefix.get(day);
  if (prefix === undefined) {
    if (dayPrefix.size > 20_000) dayPrefix.clear();
    prefix = new Date(day * 86_400_000).toISOString().slice(0, 11); // 2026-01-05T
    dayPrefix.set(day, prefix);
  }
  let rest = t - day * 86_400_000;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  const milli = rest - sec * 1000;
  const base = `${prefix}${h < 10 ? '0' : ''}${h}:${m < 10 ? '0' : ''}${m}:${sec < 10 ? '0' : ''}${sec}`;
  if (!withMs || milli === 0) return `${base}Z`;
  return `${base}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

export interface LocalRead {
  ms: number;
  ambiguous: boolean;
  /** For an ambiguous time: the later of the two instants. */
  laterMs?: number;
  nonexistent: boolean;
}

const hourOffsets = new Map<string, number | null>();
const wallMs = (p: LocalParts) => Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);

/**
 * A zone-less local time (`yyyy-MM-dd HH:mm:ss`) in `zone` → UTC ms, saying when DST made it ambiguous
 * (the earlier instant is taken) or impossible. The offset is remembered per zone and local hour when
 * no change falls inside that hour; such hours are converted one by one.
 */
export function readLocal(textIn: string, zone: string): LocalRead | null {
  const p = parseLocal(textIn);
  if (!p) return null;
  const key = `${zone}|${p.year}-${p.month}-${p.day}T${p.hour}`;
  let off = hourOffsets.get(key);
  if (off === undefined) {
    const first = zonedToUtc({ ...p, minute: 0, second: 0 }, zone);
    const last = zonedToUtc({ ...p, minute: 59, second: 59 }, zone);
    const a = wallMs({ ...p, minute: 0, second: 0 }) - first.date.getTime();
    const b = wallMs({ ...p, minute: 59, second: 59 }) - last.date.getTime();
    off = first.ambiguous || first.nonexistent || last.ambiguous || last.nonexistent || a !== b ? null : a;
    if (hourOffsets.size > 50_000) hourOffsets.clear();
    hourOffsets.set(key, off);
  }
  if (off !== null) return { ms: wallMs(p) - off, ambiguous: false, nonexistent: false };
  const z = zonedToUtc(p, zone);
  return { ms: z.date.getTime(), ambiguous: z.ambiguous, laterMs: z.alternative?.getTime(), nonexistent: z.nonexistent };
}

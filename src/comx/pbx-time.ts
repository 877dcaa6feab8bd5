/**
 * The PBX's clock (specs/peers.md §0.2, §1.2): Com.X prints local wall-clock times without an offset.
 * Reading them, converting them to UTC in the configured IANA zone (DST gaps and repeated hours
 * included), and checking that zone against the epoch Asterisk puts in every unique id.
 */
import { zonedToUtc, parseLocal, type LocalParts, type ZonedResult } from '../common/time';

const SLASH_TIME = /^(\d{4})\/(\d{2})\/(\d{2})\/(\d{2}):(\d{2}):(\d{2})$/;

/** The record's local start: the spec's `YYYY/MM/DD/hh:mm:ss`, or `YYYY-MM-DD hh:mm:ss` / 14 digits. */
export function parseComxTime(text: string): LocalParts | null {
  // the spec's fixed-width form, read by character codes (a million lines per run is not unusual)
  if (text.length === 19 && text.charCodeAt(4) === 47 && text.charCodeAt(7) === 47 && text.charCodeAt(10) === 47 && text.charCodeAt(13) === 58 && text.charCodeAt(16) === 58) {
    const d = (i: number) => {
      const c = text.charCodeAt(i) - 48;
      return c >= 0 && c <= 9 ? c : NaN;
    };
    const year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    const month = d(5) * 10 + d(6), day = d(8) * 10 + d(9), hour = d(11) * 10 + d(12), minute = d(14) * 10 + d(15), second = d(17) * 10 + d(18);
    if (Number.isNaN(year + month + day + hour + minute + second)) return null;
    if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return null;
    return { year, month, day, hour, minute, second };
  }
  if (SLASH_TIME.test(text)) return null;
  return parseLocal(text);
}

function daysIn(year: number, month: number): number {
  return month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

/** ISO 8601 UTC without milliseconds (as common/time isoUtc, without the regex). */
const hourPrefix = new Map<number, string>();
export function isoSeconds(ms: number): string {
  const hour = Math.floor(ms / 3_600_000);
  let prefix = hourPrefix.get(hour);
  if (prefix === undefined) {
    if (hourPrefix.size > 10_000) hourPrefix.clear();
    prefix = new Date(hour * 3_600_000).toISOString().slice(0, 14); // 2026-01-05T08:
    hourPrefix.set(hour, prefix);
  }
  const rest = ms - hour * 3_600_000;
  const m = Math.floor(rest / 60_000);
  const sec = Math.floor((rest % 60_000) / 1000);
  return `${prefix}${m < 10 ? '0' : ''}${m}:${sec < 10 ? '0' : ''}${sec}Z`;
}

/** The epoch seconds in an Asterisk-style unique id (`1362123180.67`), if it has that shape. */
export function idEpochMs(id: string): number | null {
  const m = /^(?:.*-)?(\d{9,11})\.\d+$/.exec(id);
  return m ? Number(m[1]) * 1000 : null;
}

export interface Converted {
  ms: number;
  ambiguous: boolean;
  alternativeMs?: number;
  nonexistent: boolean;
}

/**
 * Local → UTC conversion, cached per local hour when no DST change falls in it, else per local minute
 * (changes happen on whole minutes): Intl is asked twice per hour of the index, not once per line.
 */
const minuteCache = new Map<string, Map<number, ZonedResult>>();
export function convertLocal(parts: LocalParts, zone: string): Converted {
  let byZone = minuteCache.get(zone);
  if (!byZone) {
    if (minuteCache.size > 16) minuteCache.clear();
    byZone = new Map();
    minuteCache.set(zone, byZone);
  }
  if (byZone.size > 100_000) byZone.clear();
  const s = parts.second * 1000;
  // an hour whose :00 and :59 have the same plain offset has no DST change inside: one entry for it
  const hourKey = -Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour) - 1;
  let hour = byZone.get(hourKey);
  if (!hour) {
    const a = zonedToUtc({ ...parts, minute: 0, second: 0 }, zone);
    const b = zonedToUtc({ ...parts, minute: 59, second: 0 }, zone);
    const clean = !a.ambiguous && !a.nonexistent && !b.ambiguous && !b.nonexistent && b.date.getTime() - a.date.getTime() === 59 * 60_000;
    hour = clean ? a : { date: new Date(NaN), ambiguous: false, nonexistent: false };
    byZone.set(hourKey, hour);
  }
  if (!Number.isNaN(hour.date.getTime())) {
    return { ms: hour.date.getTime() + parts.minute * 60_000 + s, ambiguous: false, alternativeMs: undefined, nonexistent: false };
  }
  const key = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
  let r = byZone.get(key);
  if (!r) {
    r = zonedToUtc({ ...parts, second: 0 }, zone);
    byZone.set(key, r);
  }
  return { ms: r.date.getTime() + s, ambiguous: r.ambiguous, alternativeMs: r.alternative ? r.alternative.getTime() + s : undefined, nonexistent: r.nonexistent };
}

/** The configured zone looks wrong: most CDRs start far from their unique id's epoch. */
export interface ZoneMismatch {
  zone: string;
  /** The offset the ids suggest, `UTC+02:00`. */
  offset: string;
  count: number;
  total: number;
}

/**
 * peers.md §1.2: an Asterisk unique id starts with the epoch of the call's channel, seconds before the
 * printed local start, so the ids tell whether the configured zone matches the PBX clock. Fed one CDR
 * at a time; `verdict()` names the offset most of them point to, when most are more than 15 min off.
 */
export class ZoneCheck {
  private checked = 0;
  private off = 0;
  private readonly offsets = new Map<number, number>();

  constructor(private readonly zone: string) {}

  observe(cdr: { uniqueId: string; start: string; startLocal: string }): void {
    const epoch = idEpochMs(cdr.uniqueId);
    const parts = parseComxTime(cdr.startLocal);
    if (epoch === null || !parts) return;
    this.checked++;
    if (Math.abs(Date.parse(cdr.start) - epoch) <= 15 * 60_000) return;
    this.off++;
    const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
    const offset = Math.round((wall - epoch) / 900_000) * 15;
    this.offsets.set(offset, (this.offsets.get(offset) ?? 0) + 1);
  }

  verdict(): ZoneMismatch | null {
    if (this.checked < 3 || this.off * 2 <= this.checked) return null;
    const [minutes] = [...this.offsets.entries()].sort((a, b) => b[1] - a[1])[0];
    const sign = minutes < 0 ? '-' : '+';
    const abs = Math.abs(minutes);
    const offset = `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
    return { zone: this.zone, offset, count: this.off, total: this.checked };
  }
}

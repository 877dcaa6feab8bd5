/** Reading UTC ISO 8601 text fast (no imports: schema.ts and common.ts both use it). */

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

/**
 * The query windows of ccfs-bill-request in the tenant's wall-clock time (specs/ccfs.md §0.9, §3.1): CC-FS
 * takes `beginTime`/`endTime` as `yyyy-MM-dd HH:mm:ss` in the tenant space's zone, so "yesterday", "today"
 * and "the last N hours" are worked out in that zone, DST days included. Pure; the zone helpers are
 * src/common/time.ts.
 */
import { formatLocal, zoneOffsetMs } from '../common/time';
import { OPTIONAL_FIELDS, wallText } from './client';

export const PERIODS = ['fields', 'yesterday', 'today', 'hours'] as const;
export type Period = (typeof PERIODS)[number];

/** The queryBillData fields a node property or msg.payload may set. */
export const QUERY_FIELDS = ['beginTime', 'endTime', 'dataType', 'callBackURL', ...OPTIONAL_FIELDS] as const;

export interface LocalWindow {
  beginTime: string;
  endTime: string;
}

/** The wall-clock time of `ms` in `zone` (whole seconds), as milliseconds of the same text read as UTC. */
const wallMs = (ms: number, zone: string): number => Math.floor(ms / 1000) * 1000 + zoneOffsetMs(ms, zone);

/**
 * The window `period` names at `now` in `zone`:
 * - `yesterday`: the previous calendar day, 00:00:00 to 23:59:59 (23 or 25 hours long on DST days);
 * - `today`: from 00:00:00 until now;
 * - `hours`: the last `hours` hours until now. Its begin is the wall-clock time of the instant `hours`
 *   ago, or, on the night the clock goes back (when that reading is later than now's), the wall-clock
 *   time `hours` before now's, so the window never ends before it begins.
 * Throws RangeError for a zone Intl does not know, or `hours` not above 0.
 */
export function periodWindow(period: Exclude<Period, 'fields'>, zone: string, now: number, hours = 24): LocalWindow {
  const end = wallMs(now, zone);
  if (period === 'yesterday') {
    // wall-clock milliseconds have no DST: a day back is always the previous calendar day
    const day = wallText(end - 86_400_000).slice(0, 10);
    return { beginTime: `${day} 00:00:00`, endTime: `${day} 23:59:59` };
  }
  if (period === 'today') return { beginTime: `${wallText(end).slice(0, 10)} 00:00:00`, endTime: wallText(end) };
  if (!(Number.isFinite(hours) && hours > 0)) throw new RangeError(`hours must be a number above 0, not ${hours}`);
  const span = Math.round(hours * 3_600_000);
  const begin = Math.min(wallMs(now - span, zone), end - span);
  return { beginTime: wallText(begin), endTime: wallText(end) };
}

/**
 * A time given as a Date, epoch milliseconds or ISO 8601 text with a zone (Z or ±hh:mm), as wall-clock
 * text in `zone`; anything else unchanged (the planner checks it).
 */
export function asLocal(v: unknown, zone: string): unknown {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? v : formatLocal(v.getTime(), zone, 'sql');
  if (typeof v === 'number' && Number.isFinite(v)) return formatLocal(v, zone, 'sql');
  if (typeof v === 'string' && /[Tt].*([Zz]|[+-]\d\d:?\d\d)$/.test(v.trim()) && !Number.isNaN(Date.parse(v))) {
    return formatLocal(Date.parse(v), zone, 'sql');
  }
  return v;
}

/**
 * The queryBillData input: the node's fields, then the period's window, then the fields of an object
 * `payload` (each set one wins), with the times converted by asLocal.
 */
export function billQueryInput(fields: Partial<Record<string, string>>, payload: unknown, window: LocalWindow | null, zone: string): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  for (const f of QUERY_FIELDS) if (fields[f]) p[f] = fields[f];
  if (window) Object.assign(p, window);
  if (payload && typeof payload === 'object' && !Array.isArray(payload) && !Buffer.isBuffer(payload) && !(payload instanceof Date)) {
    for (const f of QUERY_FIELDS) {
      const v = (payload as Record<string, unknown>)[f];
      if (v !== undefined && v !== null && v !== '') p[f] = v;
    }
  }
  for (const f of ['beginTime', 'endTime']) if (f in p) p[f] = asLocal(p[f], zone);
  return p;
}

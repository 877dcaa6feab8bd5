/**
 * Property-style: many generated source records (seeded PRNG, so a failure replays) through the real
 * source parsers and the normalizer; every record must satisfy the schema invariants, and the same
 * source record must always get the same id.
 */
import { strict as assert } from 'node:assert';
import { CmsLegJoiner, normalizeMessage, validateCdr, NormalizeError, type CdrRecord } from '../../src/normalize';
import { parseIndexText } from '../../src/comx/index-file';
import { parseCdrDocument } from '../../src/cms/parse';
import { LocalToUtc, CDR_COLUMNS, type CdrRow } from '../../src/ccfs/bill-file';
import { parseLocal } from '../../src/common/time';
import { cmsMessage, opts } from './helpers';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.PROP_SEED ?? 20261123);
const rnd = mulberry32(SEED);
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const ZONES = ['Africa/Johannesburg', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata', 'UTC', 'America/Sao_Paulo'];
/** Wall-clock times biased towards DST change nights. */
function localTime(): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
  const near = pick([[2026, 3, 29], [2026, 10, 25], [2026, 3, 8], [2026, 11, 1], [2026, 4, 5], [2026, 10, 4], [2026, int(1, 12), int(1, 28)]]);
  return { y: near[0], mo: near[1], d: near[2], h: pick([0, 1, 2, 3, int(0, 23)]), mi: int(0, 59), s: int(0, 59) };
}

function check(records: CdrRecord[]): void {
  for (const r of records) assert.deepEqual(validateCdr(r), [], `seed ${SEED}: ${JSON.stringify(r)}`);
}

describe(`normalize: schema invariants over generated inputs (seed ${SEED})`, () => {
  it('Com.X: 3,000 index rows in DST-changing zones', async () => {
    for (let batch = 0; batch < 30; batch++) {
      const zone = pick(ZONES);
      const lines: string[] = [];
      for (let i = 0; i < 100; i++) {
        const t = localTime();
        const dur = int(0, 7200);
        const bill = rnd() < 0.1 ? dur + int(1, 5) : int(0, dur); // sometimes the PBX's "estimate" overshoots
        const type = pick(['CALLTYPE_INBOUND', 'CALLTYPE_OUTBOUND', 'CALLTYPE_INTERNAL', 'CALLTYPE_OTHER', 'CALLTYPE_UNKNOWN']);
        const disp = pick(['CALL_ANSWERED', 'CALL_NOANSWER']);
        const rec = rnd() < 0.5 ? `${int(1, 900000)},rec-${i}.wav` : '0,';
        lines.push(`${int(1300000000, 1800000000)}.${int(0, 999)},${t.y}/${pad(t.mo)}/${pad(t.d)}/${pad(t.h)}:${pad(t.mi)}:${pad(t.s)},${type},${int(100, 999)},${rnd() < 0.5 ? '0' + int(100000000, 999999999) : ''},${rnd() < 0.5 ? '+27' + int(100000000, 999999999) : ''},${disp},${dur},${bill},${rec}`);
      }
      const { cdrs, malformed } = await parseIndexText(lines.join('\n'), { zone });
      assert.equal(malformed.length, 0);
      const a = normalizeMessage({ topic: 'comx/cdrs', payload: cdrs, comx: { pbx: 'pbx', timezone: zone } }, new CmsLegJoiner(), opts()).records;
      const b = normalizeMessage({ topic: 'comx/cdrs', payload: cdrs, comx: { pbx: 'pbx', timezone: zone } }, new CmsLegJoiner(), opts()).records;
      check(a);
      assert.deepEqual(a.map((r) => r.id), b.map((r) => r.id));
    }
  });

  it('Webex: 3,000 records with blanks, NA, both time forms and every outcome', () => {
    const records: CdrRecord[] = [];
    for (let i = 0; i < 3000; i++) {
      const start = Date.UTC(2026, int(0, 11), int(1, 28), int(0, 23), int(0, 59), int(0, 59), int(0, 999));
      const answered = rnd() < 0.6;
      const ring = int(0, 60);
      const talk = answered ? int(0, 3600) : 0;
      const release = start + (ring + talk) * 1000 + int(0, 999);
      const fmt = (ms: number) => (rnd() < 0.8 ? new Date(ms).toISOString() : new Date(ms).toISOString().replace('T', ' ').replace('Z', ''));
      const raw: Record<string, unknown> = {
        'Report ID': rnd() < 0.95 ? `r-${i}` : '',
        'Org UUID': 'org-1',
        'Start time': fmt(start),
        'Answer time': answered ? fmt(start + ring * 1000) : pick(['', 'NA']),
        'Release time': rnd() < 0.97 ? fmt(release) : '',
        Answered: answered ? 'true' : pick(['false', '', 'NA']),
        Duration: rnd() < 0.5 ? talk : String(talk),
        'Ring duration': String(ring),
        Direction: pick(['ORIGINATING', 'TERMINATING', '']),
        'Call type': pick(['SIP_ENTERPRISE', 'SIP_INBOUND', 'SIP_NATIONAL', 'SIP_INTERNATIONAL', 'SIP_MOBILE', 'SIP_MEETING', 'UNKNOWN', '']),
        'Call outcome': answered ? 'Success' : pick(['Success', 'Failure', 'Refusal', '']),
        'Call outcome reason': pick(['Normal', 'UserBusy', 'NoAnswer', 'CallRejected', 'SIP408', 'Internal', '']),
        'Calling number': pick(['+4930123', '0044123', '', 'NA']),
        'Called number': pick(['2002', '+1555', '']),
        'Correlation ID': `c-${int(1, 500)}`,
        'Call ID': pick(['', `SSE${i}@10.0.0.1`]),
      };
      records.push(...normalizeMessage({ topic: 'webex-cdr', payload: raw, webex: {} }, new CmsLegJoiner(), opts()).records);
    }
    check(records);
    assert.equal(records.length, 3000);
  });

  it('CMS: 1,000 legs with any subset of start / update / end, in any order of legs', () => {
    const joiner = new CmsLegJoiner({ maxLegs: 200, maxCalls: 50 });
    const out: CdrRecord[] = [];
    let idx = 1;
    const rec = (type: string, time: number, obj: string) =>
      `<record type="${type}" time="${new Date(time).toISOString().replace(/\.\d+Z$/, 'Z')}" recordIndex="${idx++}" correlatorIndex="${idx}">${obj}</record>`;
    const docs: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const call = `call-${int(1, 60)}`;
      const leg = `leg-${i}`;
      const t0 = Date.UTC(2026, 0, 1) + int(0, 86_400) * 1000;
      const dur = int(0, 5000);
      const parts: string[] = [];
      if (rnd() < 0.3) parts.push(rec('callStart', t0 - 5000, `<call id="${call}"><name>room ${call}</name><callCorrelator>corr-${call}</callCorrelator></call>`));
      const hasStart = rnd() < 0.8;
      if (hasStart) parts.push(rec('callLegStart', t0, `<callLeg id="${leg}"><remoteParty>${pick(['alice@example.org', '+4930123@gw', ''])}</remoteParty><displayName>${pick(['Alice', ''])}</displayName><direction>${pick(['incoming', 'outgoing', 'sideways'])}</direction><type>sip</type><call>${call}</call></callLeg>`));
      if (rnd() < 0.6) parts.push(rec('callLegUpdate', t0 + int(0, dur) * 1000, `<callLeg id="${leg}"><state>${pick(['connected', ''])}</state><call>${call}</call></callLeg>`));
      if (rnd() < 0.9) {
        const activated = rnd() < 0.7 ? `<activatedDuration>${int(0, dur)}</activatedDuration>` : '';
        const ds = rnd() < 0.9 ? `<durationSeconds>${dur}</durationSeconds>` : '';
        parts.push(rec('callLegEnd', t0 + dur * 1000 + int(0, 1500), `<callLeg id="${leg}"><reason>${pick(['remoteTeardown', 'localTeardown', 'remoteBusy', 'ringingTimeout', 'unknownDestination', 'remoteRejected', 'callEnded', 'somethingNew'])}</reason>${ds}${activated}${rnd() < 0.1 ? '<confirmationStatus>rejected</confirmationStatus>' : ''}</callLeg>`));
      }
      docs.push(`<?xml version="1.0"?><records session="s" callBridge="${pick(['cb-1', 'cb-2'])}">${parts.join('')}</records>`);
    }
    for (const body of docs) {
      for (const r of parseCdrDocument(body).records) {
        try {
          out.push(...normalizeMessage(cmsMessage(r), joiner, opts()).records);
        } catch (err) {
          // the only refusal allowed: an end with neither a start seen nor durationSeconds
          assert.ok(err instanceof NormalizeError, String(err));
          assert.match((err as Error).message, /no start or end time|start_time or end_time/);
        }
      }
    }
    check(out);
    assert.ok(out.length > 700, `only ${out.length} records`);
    assert.ok(joiner.openLegs <= 200);
  });

  it('CC-FS: 3,000 rows in DST-changing tenant zones, zone given or not', () => {
    for (let batch = 0; batch < 30; batch++) {
      const zone = pick(ZONES);
      const toUtc = new LocalToUtc(zone);
      const rows: CdrRow[] = [];
      for (let i = 0; i < 100; i++) {
        const t = localTime();
        const begin = Date.UTC(t.y, t.mo - 1, t.d, t.h, t.mi, t.s);
        const ackAt = rnd() < 0.5 ? begin + int(0, 60) * 1000 : null;
        const end = (ackAt ?? begin) + int(0, 3600) * 1000;
        const local = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
        const cells: Record<string, string> = {
          account_id: 'tenant01', call_id: `${int(1700000000, 1800000000)}-${i}`, call_id_num: String(pick([1, 2, -1])),
          call_begin: local(begin), call_end: local(end), ack_begin: ackAt === null ? '' : local(ackAt),
          device_type: String(pick([1, 2, 3])), call_type: String(int(0, 70)), leave_reason: String(pick([0, 2, 5, 20, 26, 27, 88, 89, 99])),
          caller_no: '0123', callee_no: '4000', agent_id: pick(['', '1001']), current_skill_id: pick(['', '7']), release_cause: '0',
        };
        const raw = CDR_COLUMNS.map((c) => cells[c] ?? '');
        const row: Record<string, unknown> = { raw };
        for (const [k, v] of Object.entries(cells)) {
          if (['call_begin', 'call_end', 'ack_begin'].includes(k)) row[k] = v === '' ? null : toUtc.convert(parseLocal(v)!);
          else if (['device_type', 'call_type', 'call_id_num', 'release_cause'].includes(k)) row[k] = Number(v);
          else row[k] = v === '' ? null : v;
        }
        row.ack_end = null;
        row.skill_id = null;
        rows.push(row as unknown as CdrRow);
      }
      for (const zoneOpt of [zone, undefined]) {
        const out: CdrRecord[] = [];
        for (const row of rows) {
          try {
            out.push(...normalizeMessage({ topic: 'ccfs/call', payload: [row], ccfs: { complete: true } }, new CmsLegJoiner(), opts({ zone: zoneOpt })).records);
          } catch (err) {
            // a local end that a fall-back turned into an earlier UTC instant than the start is refused, not bent
            assert.ok(err instanceof NormalizeError, String(err));
            assert.match((err as Error).message, /before/);
          }
        }
        check(out);
        assert.ok(out.length >= 90, `only ${out.length}`);
      }
    }
  });
});

#!/usr/bin/env node
/**
 * cdr-normalize benchmark (issue 6), on the built code (`npm run build` first):
 *   node bench/normalize.js [--records 200000]
 * Records/s through the mapping on one core (normalizeMessage: source detection, the mapper, the
 * schema check, the sha256 id), per source and for a mix, with inputs shaped as the source nodes send
 * them (typed rows built by the real parsers beforehand). Target: >= 200,000 records/s for the mix,
 * counted per CPU second of this process (process.cpuUsage), so a busy machine does not hide the cost.
 * CMS counts output records: each leg is three input messages (start, update, end) joined into one.
 */
'use strict';
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
const { normalizeMessage, CmsLegJoiner, CMS_LIMITS } = require(path.join(dist, 'normalize'));
const { typedRecord } = require(path.join(dist, 'webex', 'records'));
const { toCdr } = require(path.join(dist, 'comx', 'index-file'));
const { CDR_COLUMNS, LocalToUtc } = require(path.join(dist, 'ccfs', 'bill-file'));
const { parseLocal } = require(path.join(dist, 'common', 'time'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('records', 200_000);
const TARGET = 200_000;
const pad = (n, w = 2) => String(n).padStart(w, '0');

function comxMessages(n) {
  const zone = 'Africa/Johannesburg';
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = Date.UTC(2026, 2, 1) + i * 7000;
    const d = new Date(t);
    const local = `${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    const fields = [`${Math.floor(t / 1000) - 7200}.${i}`, local, i % 3 ? 'CALLTYPE_INBOUND' : 'CALLTYPE_OUTBOUND', String(200 + (i % 50)), i % 3 ? '' : `021555${pad(i % 100)}`, i % 3 ? `082444${pad(i % 100)}` : '', i % 5 ? 'CALL_ANSWERED' : 'CALL_NOANSWER', String(30 + (i % 300)), String(i % 5 ? 25 + (i % 300) : 0), '0', ''];
    const item = toCdr(fields, fields.join(','), i + 1, { zone });
    out.push({ topic: 'comx/cdr', payload: item.cdr, comx: { mode: 'incremental', format: 'txt', pbx: 'pbx.example.org', timezone: zone, line: i + 1 } });
  }
  return out;
}

function webexMessages(n) {
  const template = require(path.join(__dirname, '..', 'test', 'fixtures', 'shared', 'webex', 'real_webexone2026-lab_cdr_feed_2026-09-24.json')).items[0];
  const out = [];
  for (let i = 0; i < n; i++) {
    const start = Date.UTC(2026, 8, 24) + i * 3000;
    const raw = { ...template, 'Report ID': `r-${i}`, 'Start time': new Date(start).toISOString(), 'Release time': new Date(start + 60_000 + (i % 997)).toISOString(), Duration: i % 2 ? 55 : 0, Answered: i % 2 ? 'true' : 'false', 'Answer time': i % 2 ? new Date(start + 5000).toISOString() : '', 'Call outcome': i % 2 ? 'Success' : 'Refusal' };
    out.push({ topic: 'webex-cdr', payload: raw, cdr: typedRecord(raw), webex: { endpoint: 'cdr_stream', page: 1, reportId: `r-${i}` } });
  }
  return out;
}

function ccfsMessages(n) {
  const toUtc = new LocalToUtc('America/Sao_Paulo');
  const out = [];
  for (let i = 0; i < n; i++) {
    const begin = Date.UTC(2026, 3, 14, 9) + i * 4000;
    const local = (ms) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
    const cells = { developer: 'dev', account_id: 'tenant01', cc_id: '1', agent_id: '1001', call_id: `1776135340-${i}`, caller_no: '5511999990000', callee_no: '4000', call_begin: local(begin), ack_begin: local(begin + 4000), call_end: local(begin + 90_000), device_type: '2', device_no: '1001', call_type: '0', release_cause: '0', call_id_num: '-1', current_skill_id: '7', leave_reason: '88', media_type: '5' };
    const raw = CDR_COLUMNS.map((c) => cells[c] ?? '');
    const row = { raw };
    CDR_COLUMNS.forEach((c, k) => {
      const v = raw[k];
      if (v === '') row[c] = null;
      else if (['call_begin', 'call_end', 'ack_begin', 'ack_end', 'wait_begin', 'wait_end'].includes(c)) row[c] = toUtc.convert(parseLocal(v));
      else if (['device_type', 'device_no', 'call_type', 'release_cause', 'call_id_num'].includes(c)) row[c] = Number(v);
      else row[c] = v;
    });
    out.push({ topic: 'ccfs/call', payload: [row], ccfs: { accountId: 'tenant01', call_id: cells.call_id, complete: true } });
  }
  return out;
}

function cmsMessages(legs) {
  const out = [];
  const session = 'b0b0b0b0-1111-4222-8333-444455556666';
  for (let i = 0; i < legs; i++) {
    const id = `aaaaaaaa-bbbb-4ccc-8ddd-${String(i).padStart(12, '0')}`;
    const call = `cccccccc-bbbb-4ccc-8ddd-${String(i >> 4).padStart(12, '0')}`;
    const t = Date.UTC(2026, 10, 23, 10) + i * 1000;
    const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const base = (type, time, idx, body) => ({ topic: type, payload: { type, time: iso(time), recordIndex: idx, correlatorIndex: idx, numPrecedingRecordsMissing: 0, session, callBridge: null, objectType: 'callLeg', id, callLeg: body }, cms: { session, callBridge: null, type, objectType: 'callLeg', id } });
    out.push(base('callLegStart', t, 3 * i, { remoteParty: `user${i}@example.org`, displayName: `User ${i}`, type: 'sip', direction: 'incoming', call }));
    out.push(base('callLegUpdate', t + 2000, 3 * i + 1, { state: 'connected', call, deactivated: false }));
    out.push(base('callLegEnd', t + 600_000, 3 * i + 2, { reason: 'remoteTeardown', remoteTeardown: true, durationSeconds: 600, activatedDuration: 598 }));
  }
  return out;
}

function run(name, msgs, keepRaw) {
  const joiner = new CmsLegJoiner({ ...CMS_LIMITS, maxLegs: 1_000_000 });
  const opts = { observedAt: '2026-11-23T12:00:00Z', keepRaw };
  // a full warm-up pass (own joiner: the same legs again), so the measured pass sees optimised code
  const warm = new CmsLegJoiner({ ...CMS_LIMITS, maxLegs: 1_000_000 });
  for (let i = 0; i < msgs.length; i++) normalizeMessage(msgs[i], warm, opts);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let records = 0;
  for (let i = 0; i < msgs.length; i++) records += normalizeMessage(msgs[i], joiner, opts).records.length;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  // CPU seconds of this process (all its threads, GC included): the cost on one core even when other
  // processes share the machine; wall time is shown beside it
  const secs = (cpu.user + cpu.system) / 1e6;
  console.log(`  ${name.padEnd(26)} ${records.toLocaleString('en-US').padStart(9)} records: ${Math.round(records / secs).toLocaleString('en-US').padStart(9)} records/s of CPU time (${Math.round(records / wall).toLocaleString('en-US').padStart(9)} by the wall clock)`);
  return { records, secs };
}

const per = Math.ceil(N / 4);
console.log(`cdr-normalize mapping benchmark: node ${process.version}, one core, ${N.toLocaleString('en-US')} records`);
const inputs = { comx: comxMessages(per), webex: webexMessages(per), ccfs: ccfsMessages(per), cms: cmsMessages(per) };
let total = 0;
let time = 0;
for (const keepRaw of [true, false]) {
  console.log(`raw ${keepRaw ? 'kept' : 'dropped'}:`);
  for (const [name, msgs] of Object.entries(inputs)) {
    const r = run(name === 'cms' ? 'cms (3 messages per leg)' : name, msgs, keepRaw);
    if (keepRaw) {
      total += r.records;
      time += r.secs;
    }
  }
}
const mix = total / time;
console.log(`\nmix (raw kept): ${Math.round(mix).toLocaleString('en-US')} records per CPU second, target >= ${TARGET.toLocaleString('en-US')}: ${mix >= TARGET ? 'PASS' : 'FAIL'}`);
process.exitCode = mix >= TARGET ? 0 : 1;

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CmsLegJoiner, normalizeMessage, validateCdr } from '../../src/normalize';
import { parseIndexText } from '../../src/comx/index-file';
import { readBillFile, type BillItem } from '../../src/ccfs/bill-file';
import { typedRecord, recordKey } from '../../src/webex/records';
import { shared } from '../helpers/fixtures';
import { buildZip, csv, cdrRow, recordRow } from '../simulators/ccfs-server';
import { opts, OBSERVED } from './helpers';

const run = (msg: Record<string, unknown>, o = {}) => normalizeMessage(msg, new CmsLegJoiner(), opts(o));

describe('normalize: Com.X', () => {
  const zone = 'Africa/Johannesburg'; // the spec's examples decode to UTC+2 (peers.md §1.2)
  const meta = { mode: 'range', format: 'txt', pbx: 'pbx.example.org', timezone: zone };

  it('maps the spec v1.6 index rows as written by hand', async () => {
    const { cdrs } = await parseIndexText(shared('comx', 'derived_spec-v1.6_index-txt_rejoined.txt'), { zone });
    assert.equal(cdrs.length, 2);
    const res = run({ topic: 'comx/cdrs', payload: cdrs, recordings: [null, null], comx: { ...meta, count: 2 } });
    assert.equal(res.source, 'comx');
    const [a, b] = res.records;
    assert.deepEqual(a, {
      schema_version: '1',
      id: a.id,
      source_type: 'comx', source_instance: 'pbx.example.org',
      // uniqueid # first 12 hex of sha1 of the line's 11 base columns (python hashlib)
      source_record_id: '1362123180.67#698a3f4ba15a', record_type: 'leg',
      call_id: '1362123180.67', correlation_id: null, call_name: null,
      start_time: '2013-03-01T07:33:00Z', // 09:33:00 at UTC+2
      answer_time: '2013-03-01T07:33:05Z', // end − billsec 216
      end_time: '2013-03-01T07:36:41Z', // start + duration 221
      duration_s: 221, billable_s: 216, ring_s: 5,
      direction: 'inbound', direction_raw: 'CALLTYPE_INBOUND',
      caller_number: null, caller_name: null, callee_number: '8266', // inbound: external CID (empty) / extension
      extension: '8266', user_id: null, user_name: null, agent_id: null, queue: null,
      answered: true, outcome: 'answered', outcome_raw: 'CALL_ANSWERED', account_code: null, trunk: null,
      channel: null, dst_channel: null,
      recordings: [{ ref: 'g8266-20130301-093300-1362123180.67.gsm', size_bytes: 365211, format: 'gsm', url: null }],
      source_timezone: zone, source_local_start: '2013/03/01/09:33:00',
      derived: ['end_time', 'answer_time', 'ring_s'], flags: [], observed_at: OBSERVED,
    });
    assert.equal(b.source_record_id, '1362125482.87#917d665604fe');
    assert.equal(b.start_time, '2013-03-01T08:11:31Z');
    assert.equal(b.end_time, '2013-03-01T08:12:31Z'); // + 60 s
    assert.equal(b.answer_time, '2013-03-01T08:11:38Z'); // end − 53 s
    assert.equal(b.direction, 'outbound');
    assert.equal(b.caller_number, '8264'); // outbound: extension / dialled number
    assert.equal(b.callee_number, '0215551111');
    assert.equal(b.duration_s, 60);
    assert.equal(b.billable_s, 53);
  });

  it('one row per message (comx/cdr) gives the same record; the id ignores the &extended columns', async () => {
    const text = shared('comx', 'derived_spec-v1.6_index-txt_rejoined.txt');
    const plain = (await parseIndexText(text, { zone })).cdrs[0];
    const ext = (await parseIndexText(`${text.split(/\r?\n/)[0]},Reception,ACC1,SIP/8266-0000001a,SIP/trunk-0001\n`, { zone, extended: true })).cdrs[0];
    const r1 = run({ topic: 'comx/cdr', payload: plain, comx: meta }).records[0];
    const r2 = run({ topic: 'comx/cdr', payload: ext, comx: meta }).records[0];
    assert.equal(r2.id, r1.id);
    assert.equal(r2.user_name, 'Reception');
    assert.equal(r2.account_code, 'ACC1');
    assert.equal(r2.channel, 'SIP/8266-0000001a');
    assert.equal(r2.dst_channel, 'SIP/trunk-0001');
  });

  it('flags a start in the fall-back hour (Europe/Berlin, 2026-10-25 02:30 happened twice)', async () => {
    const line = '1792888200.5,2026/10/25/02:30:00,CALLTYPE_INTERNAL,200,201,,CALL_NOANSWER,20,0,0,\n';
    const { cdrs } = await parseIndexText(line, { zone: 'Europe/Berlin' });
    const r = run({ topic: 'comx/cdr', payload: cdrs[0], comx: { ...meta, timezone: 'Europe/Berlin' } }).records[0];
    assert.ok(r.flags.includes('start_time_ambiguous'));
    // unique-id epoch 1792888200 = 2026-10-25T00:30:00Z: the first 02:30 (CEST, UTC+2)
    assert.equal(r.start_time, '2026-10-25T00:30:00Z');
    assert.equal(r.outcome, 'no_answer');
    assert.equal(r.answered, false);
    assert.equal(r.answer_time, null);
    assert.equal(r.billable_s, 0);
    assert.deepEqual(validateCdr(r), []);
  });

  it('Com.X messages that are not CDRs are errors', () => {
    assert.throws(() => run({ topic: 'comx/user', payload: { extension: '200' }, comx: meta }), /not a CDR/);
  });
});

describe('normalize: Webex', () => {
  const lab = JSON.parse(shared('webex', 'real_webexone2026-lab_cdr_feed_2026-09-24.json')).items[0];
  const doc = JSON.parse(shared('webex', 'official-doc-example_cdr_200.json')).items[0];
  const meta = { endpoint: 'cdr_feed', purpose: 'incremental', window: {}, page: 1 };

  it('maps the real lab record as written by hand', () => {
    const res = run({ topic: 'webex-cdr', payload: lab, cdr: typedRecord(lab), webex: { ...meta, reportId: recordKey(lab) } });
    assert.deepEqual(res.records[0], {
      schema_version: '1',
      // sha256("webex|74983fd5-…|ea9cd4c2-…") with python's hashlib
      id: 'd2db574c32bc497fc5416a759f44b39c44df40cade5561cacb992a8506921d77',
      source_type: 'webex', source_instance: '74983fd5-5c18-45cb-bfcd-507005e05b0f',
      source_record_id: 'ea9cd4c2-b4e8-3e0f-b518-b14906a6d01a', record_type: 'leg',
      call_id: null, // "Call ID": ""
      correlation_id: 'cf30fa26-7c1a-4099-8ada-b8e57acca6ce', call_name: null,
      start_time: '2026-09-24T07:49:10.939Z', answer_time: null, end_time: '2026-09-24T07:49:10.941Z',
      duration_s: 0, billable_s: 0, ring_s: 0,
      direction: 'inbound', direction_raw: 'TERMINATING/SIP_INBOUND',
      caller_number: '+48123210049', caller_name: 'Agent-80945336', callee_number: '+12542121223',
      extension: null, user_id: '18c2c489-2fef-4a15-a4bd-cab7b65d8416', user_name: 'Pod 0', agent_id: null, queue: null,
      answered: false, outcome: 'rejected', outcome_raw: 'Refusal/TemporarilyUnavailable', account_code: null, trunk: null,
      channel: null, dst_channel: null, recordings: [], source_timezone: null, source_local_start: null,
      derived: ['duration_s'], flags: [], observed_at: OBSERVED,
    });
  });

  it('maps the documented example: enterprise call, answered, talk time 36 s', () => {
    const r = run({ topic: 'webex-cdr', payload: doc, webex: meta }).records[0]; // msg.cdr absent: typed here
    assert.equal(r.direction, 'internal'); // SIP_ENTERPRISE
    assert.equal(r.answered, true);
    assert.equal(r.outcome, 'answered');
    assert.equal(r.answer_time, '2020-05-14T11:01:17.551Z');
    assert.equal(r.end_time, '2023-10-12T21:22:32.621Z'); // the doc's zone-less release time, read as UTC
    assert.equal(r.billable_s, 36);
    assert.equal(r.duration_s, 107691676); // release − start (the doc's example spans three years), python datetime
    assert.equal(r.ring_s, 23);
    assert.equal(r.account_code, '107');
    assert.equal(r.trunk, 'InTrunk');
    assert.equal(r.caller_number, '2001');
    assert.equal(r.callee_number, '2002');
  });

  it('a page (per-page output) becomes one record each', () => {
    const res = run({ topic: 'webex-cdr', payload: [lab, doc], cdr: [typedRecord(lab), typedRecord(doc)], webex: { ...meta, count: 2 } });
    assert.equal(res.records.length, 2);
  });

  it('without Org UUID it needs a configured instance, otherwise it is an error', () => {
    const { ['Org UUID']: _org, ...noOrg } = lab;
    assert.throws(() => run({ topic: 'webex-cdr', payload: noOrg, webex: meta }), /Org UUID/);
    assert.equal(run({ topic: 'webex-cdr', payload: noOrg, webex: meta }, { instance: 'acme' }).records[0].source_instance, 'acme');
  });
});

describe('normalize: CC-FS', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-norm-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function items(rows: string[][], zone: string): Promise<BillItem[]> {
    const file = path.join(dir, `${Math.random().toString(36).slice(2)}.zip`);
    fs.writeFileSync(file, await buildZip([['tenant01_20260414_call_1.csv', csv(rows)], ['tenant01_20260414_record_1.csv', csv([recordRow()])]]));
    const out: BillItem[] = [];
    for await (const it of readBillFile(file, { timeZone: zone })) out.push(it);
    return out;
  }

  it('maps a two-row call (queue then agent) as written by hand', async () => {
    // call id shape from the real Postman requests (ccfs.md §6.3); São Paulo is UTC−3, no DST in 2026
    const rows = [
      cdrRow({ call_id: '1776135340-404299', call_id_num: '1', device_type: '1', device_no: '7', agent_id: '', ack_begin: '', ack_end: '', call_begin: '2026-04-14 09:15:40', call_end: '2026-04-14 09:15:48', leave_reason: '0' }),
      cdrRow({ call_id: '1776135340-404299', call_id_num: '-1', call_begin: '2026-04-14 09:15:48', ack_begin: '2026-04-14 09:15:52', call_end: '2026-04-14 09:20:01', release_cause: '0', leave_reason: '88' }),
    ];
    const its = await items(rows, 'America/Sao_Paulo');
    const call = its.find((i) => i.kind === 'call')!;
    assert.equal(call.kind, 'call');
    const msg = { topic: 'ccfs/call', payload: call.kind === 'call' ? call.call.rows : [], ccfs: { accountId: 'tenant01', billFileName: 'x.zip', call_id: '1776135340-404299', complete: true } };
    const res = run(msg, { zone: 'America/Sao_Paulo' });
    assert.equal(res.records.length, 2);
    const [queue, agent] = res.records;
    assert.equal(queue.source_record_id, '1776135340-404299:1');
    assert.equal(queue.start_time, '2026-04-14T12:15:40Z');
    assert.equal(queue.end_time, '2026-04-14T12:15:48Z');
    assert.equal(queue.duration_s, 8);
    assert.equal(queue.answered, false);
    assert.equal(queue.outcome, 'unknown'); // leave_reason 0 (normal/transfer) on a queue leg
    assert.equal(queue.queue, '7');
    assert.deepEqual(agent, {
      schema_version: '1', id: agent.id, source_type: 'ccfs', source_instance: 'tenant01',
      source_record_id: '1776135340-404299:-1', record_type: 'leg',
      call_id: '1776135340-404299', correlation_id: '1776135340-404299', call_name: null,
      start_time: '2026-04-14T12:15:48Z', answer_time: '2026-04-14T12:15:52Z', end_time: '2026-04-14T12:20:01Z',
      duration_s: 253, billable_s: 249, ring_s: 4, // 09:15:48→09:20:01, 09:15:52→09:20:01
      direction: 'inbound', direction_raw: '0',
      caller_number: '5511999990000', caller_name: null, callee_number: '4000',
      extension: null, user_id: null, user_name: null, agent_id: '1001', queue: '7',
      answered: true, outcome: 'answered', outcome_raw: 'leave_reason=88;release_cause=0', account_code: null, trunk: null,
      channel: null, dst_channel: null, recordings: [], source_timezone: 'America/Sao_Paulo', source_local_start: '2026-04-14 09:15:48',
      derived: ['duration_s', 'answer_time', 'billable_s', 'ring_s'], flags: [], observed_at: OBSERVED,
    });
  });

  it('flags a fall-back time when the zone is configured, and uses the row as read without it', async () => {
    // America/New_York 2026-11-01 01:30 happened twice (EDT then EST)
    const rows = [cdrRow({ call_id: '1793510000-1', call_id_num: '-1', call_begin: '2026-11-01 01:30:00', ack_begin: '2026-11-01 01:30:05', call_end: '2026-11-01 01:40:00', leave_reason: '88' })];
    const its = await items(rows, 'America/New_York');
    const call = its.find((i) => i.kind === 'call')!;
    const msg = { topic: 'ccfs/call', payload: call.kind === 'call' ? call.call.rows : [], ccfs: { accountId: 'tenant01', complete: true } };
    const flagged = run(msg, { zone: 'America/New_York' }).records[0];
    assert.deepEqual(flagged.flags, ['start_time_ambiguous', 'answer_time_ambiguous', 'end_time_ambiguous']);
    assert.equal(flagged.start_time, '2026-11-01T05:30:00Z'); // the earlier instant, EDT (UTC−4)
    const plain = run(msg).records[0];
    assert.deepEqual(plain.flags, []);
    assert.equal(plain.source_timezone, null);
    assert.equal(plain.start_time, '2026-11-01T05:30:00Z');
  });

  it('maps the other leave reasons and call types (busy outbound, cancelled, internal)', async () => {
    const rows = [
      cdrRow({ call_id: 'c1', call_id_num: '-1', call_type: '8', device_type: '2', ack_begin: '', ack_end: '', leave_reason: '20' }),
      cdrRow({ call_id: 'c2', call_id_num: '-1', call_type: '0', device_type: '1', ack_begin: '', ack_end: '', leave_reason: '89' }),
      cdrRow({ call_id: 'c3', call_id_num: '-1', call_type: '6', device_type: '2', ack_begin: '', ack_end: '', leave_reason: '27' }),
    ];
    const calls = (await items(rows, 'UTC')).filter((i) => i.kind === 'call');
    const out = calls.map((c) => run({ topic: 'ccfs/call', payload: c.kind === 'call' ? c.call.rows : [], ccfs: { complete: true } }).records[0]);
    assert.deepEqual(out.map((r) => [r.direction, r.outcome, r.answered]), [['outbound', 'busy', false], ['inbound', 'cancelled', false], ['internal', 'rejected', false]]);
  });

  it('recording-index rows are consumed without output; file notices are errors', async () => {
    const rec = (await items([cdrRow()], 'UTC')).find((i) => i.kind === 'record')!;
    const res = run({ topic: 'ccfs/record', payload: rec.kind === 'record' ? rec.row : null, ccfs: {} });
    assert.equal(res.consumed, true);
    assert.equal(res.records.length, 0);
    assert.throws(() => run({ topic: 'ccfs/file', payload: {}, ccfs: {} }), /not a CDR/);
  });
});

describe('normalize: recognising the source', () => {
  it('a message from no source node, or from two, is an error, never a record', () => {
    assert.throws(() => run({ topic: 'x', payload: { 'Report ID': 'a', 'Start time': '2026-01-01T00:00:00.000Z' } }), /not a message from a cdrflow source node/);
    assert.throws(() => run({ topic: 'x', payload: {}, cms: {}, webex: {} }), /several sources/);
  });
});

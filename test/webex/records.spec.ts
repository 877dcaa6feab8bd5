import { strict as assert } from 'node:assert';
import { typedRecord, toIsoUtc, recordKey, field, camelKey } from '../../src/webex/records';
import { shared } from '../helpers/fixtures';

const lab = JSON.parse(shared('webex', 'real_webexone2026-lab_cdr_feed_2026-09-24.json')).items[0];
const rsi = JSON.parse(shared('webex', 'real_rsi-git_webhook-relay_cdr_2025-08-15.json')).body.items[0];
const doc = JSON.parse(shared('webex', 'official-doc-example_cdr_200.json')).items[0];

describe('webex/records', () => {
  it('types the real lab record: times, integers, booleans, "" and NA as null', () => {
    const t = typedRecord(lab);
    assert.equal(t.reportId, 'ea9cd4c2-b4e8-3e0f-b518-b14906a6d01a');
    assert.equal(t.startTime, '2026-09-24T07:49:10.939Z');
    assert.equal(t.answerTime, null);
    assert.equal(t.answered, false);
    assert.equal(t.duration, 0);
    assert.equal(t.ringDuration, 0);
    assert.equal(t.holdDuration, 0);
    assert.equal(t.siteTimezone, -420);
    assert.equal(t.callId, null, '"Call ID": "" is null');
    assert.equal(t.calledLineId, null, '"NA" is null');
    assert.equal(t.osType, null, '"na" is null');
    assert.equal(t.pstnLegalEntity, 'Broadsoft Adaption LLC');
    assert.equal(t.callTransferTime, null);
    assert.equal(t.answerReason, null, 'undocumented key kept');
    assert.equal(Object.keys(t).length, Object.keys(lab).length, 'one typed field per key');
  });

  it('types the relayed record: Ring duration as a string becomes an integer', () => {
    const t = typedRecord(rsi);
    assert.equal(t.ringDuration, 8);
    assert.equal(t.direction, 'ORIGINATING');
    assert.equal(t.clientType, 'TEAMS_WXC_CLIENT');
    assert.equal(t.releaseTime, '2025-08-15T16:50:01.772Z');
  });

  it('matches the docs\' capitalisation too and reads the zone-less release time as UTC', () => {
    const t = typedRecord(doc);
    assert.equal(t.pstnLegalEntity, 'Broadsoft Adaption LLC', '"PSTN Legal Entity"');
    assert.equal(t.callTransferTime, '2023-06-05T18:21:29.707Z', '"Call transfer Time"');
    assert.equal(t.releaseTime, '2023-10-12T21:22:32.621Z');
    assert.equal(t.ringDuration, 23);
    assert.equal(t.answered, true);
    assert.equal(t.siteTimezone, -300);
  });

  it('leaves the record as received', () => {
    const copy = JSON.parse(JSON.stringify(lab));
    typedRecord(lab);
    assert.deepEqual(lab, copy);
  });

  it('keys unknown fields in camelCase and reads keys case-insensitively', () => {
    assert.equal(camelKey('Some  new Key ID'), 'someNewKeyId');
    assert.equal(typedRecord({ 'Brand New Field': 'x' }).brandNewField, 'x');
    assert.equal(field({ 'report  ID': 'A' }, 'Report ID'), 'A');
    assert.equal(recordKey({ 'REPORT ID': 'ABC-1' }), 'abc-1');
    assert.equal(recordKey({ 'Report ID': 'abc-1' }), recordKey({ 'report id': 'ABC-1' }));
    assert.match(recordKey({ 'Correlation ID': 'c', 'Start time': 's' }), /^composite:/);
  });

  it('builds typed objects safely for any key (quotes, backslashes, __proto__, duplicates, many keys)', () => {
    const odd = { 'a"b\\c': '1', '__proto__x': 'p', 'Duration': '5', 'duration ': '7', "it's": 'NA' };
    const t = typedRecord(odd);
    assert.equal(t['aBC'], '1');
    assert.equal(t.protoX, 'p');
    assert.equal(t.duration, 7, 'the later of two keys that normalise alike wins');
    assert.equal(t.itS, null);
    assert.equal(Object.getPrototypeOf(t), Object.prototype);
    const wide: Record<string, string> = {};
    for (let i = 0; i < 300; i++) wide[`Field ${i}`] = String(i);
    assert.equal(typedRecord(wide).field299, '299');
    // many shapes in a row (more than the compiled-shape cache holds)
    for (let i = 0; i < 40; i++) assert.equal(typedRecord({ [`K${i}`]: 'v', 'Report ID': 'x' }).reportId, 'x');
  });

  it('parses both timestamp forms and rejects garbage', () => {
    assert.equal(toIsoUtc('2026-01-30T10:00:00.000Z'), '2026-01-30T10:00:00.000Z');
    assert.equal(toIsoUtc('2023-10-12 21:22:32.621'), '2023-10-12T21:22:32.621Z');
    assert.equal(toIsoUtc('2026-01-30T12:00:00+02:00'), '2026-01-30T10:00:00.000Z');
    assert.equal(toIsoUtc(''), null);
    assert.equal(toIsoUtc('NA'), null);
    assert.equal(toIsoUtc('yesterday'), null);
  });
});

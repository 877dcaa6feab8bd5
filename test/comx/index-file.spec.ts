import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { shared } from '../helpers/fixtures';
import { zonedToUtc } from '../../src/common/time';
import { parseIndexText, parseIndexStream, type IndexItem } from '../../src/comx/index-file';

const SA = 'Africa/Johannesburg';

describe('comx/index-file', () => {
  it('reads the spec example (rejoined) as two typed CDRs in UTC', async () => {
    const { cdrs, malformed } = await parseIndexText(shared('comx', 'derived_spec-v1.6_index-txt_rejoined.txt'), { zone: SA });
    assert.deepEqual(malformed, []);
    assert.equal(cdrs.length, 2);
    const [a, b] = cdrs;
    assert.equal(a.uniqueId, '1362123180.67');
    assert.equal(a.start, '2013-03-01T07:33:00Z', 'local 09:33 at UTC+2');
    assert.equal(a.startLocal, '2013/03/01/09:33:00');
    assert.equal(a.timezone, SA);
    assert.equal(a.startAmbiguous, false);
    assert.equal(a.callType, 'CALLTYPE_INBOUND');
    assert.equal(a.direction, 'inbound');
    assert.equal(a.extension, '8266');
    assert.equal(a.dialledNumber, null);
    assert.equal(a.externalCallerId, null);
    assert.equal(a.answered, true);
    assert.equal(a.duration, 221);
    assert.equal(a.billableSeconds, 216);
    assert.equal(a.recordingSize, 365211);
    assert.equal(a.recordingFile, 'g8266-20130301-093300-1362123180.67.gsm');
    assert.equal(a.line, 1);
    assert.equal(a.columns, 11);
    assert.equal(b.direction, 'outbound');
    assert.equal(b.dialledNumber, '0215551111', 'numbers stay text (leading zero)');
    assert.equal(b.start, '2013-03-01T08:11:31Z');
    assert.equal(b.line, 2);
    assert.equal(typeof b.duration, 'number');
  });

  it('detects the as-printed spec example (wrapped lines) as malformed, line by line', async () => {
    const { cdrs, malformed } = await parseIndexText(shared('comx', 'official-doc-example_spec-v1.6_index-txt_as-printed.txt'), { zone: SA });
    assert.equal(cdrs.length, 0);
    assert.deepEqual(malformed.map((m) => m.line), [1, 2, 3, 4, 5, 6]);
    assert.match(malformed[0].reason, /columns, got 7/);
    assert.match(malformed[1].reason, /got 5/);
    assert.match(malformed[1].text, /CALL_ANSWERED,221/);
  });

  it('reports wrong column counts, bad dates, bad numbers and broken quotes with line numbers, keeps the good lines', async () => {
    const text = [
      '1.1,2026/01/05/10:00:00,CALLTYPE_INTERNAL,200,201,,CALL_NOANSWER,12,0,0,', // ok, 11
      '1.2,2026/01/05/10:00:00,CALLTYPE_INTERNAL,200,201,,CALL_ANSWERED,12,0', // 9 columns
      '1.3,2026/02/30/10:00:00,CALLTYPE_INBOUND,200,,0215550000,CALL_ANSWERED,12,10,0,', // 30 Feb
      '1.4,05.01.2026 10:00,CALLTYPE_INBOUND,200,,0215550000,CALL_ANSWERED,12,10,0,', // not the format
      '1.5,2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,0215550000,CALL_ANSWERED,1x,10,0,', // duration
      '1.6,2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,"Smith, J"x,CALL_ANSWERED,12,10,0,', // broken quote
      '1.7,2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,"Smith, J",CALL_ANSWERED,12,10,0,', // properly quoted comma
      '1.8,2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,"unclosed,CALL_ANSWERED,12,10,0,', // unclosed quote
      '',
      '1.9,2026/01/05/11:00:00,CALLTYPE_OUTBOUND,200,0215551111,,CALL_ANSWERED,60,53,98934,OUT200-x.gsm',
    ].join('\r\n');
    const { cdrs, malformed } = await parseIndexText(text, { zone: SA });
    assert.deepEqual(cdrs.map((c) => c.uniqueId), ['1.1', '1.7', '1.9']);
    assert.deepEqual(cdrs.map((c) => c.line), [1, 7, 10]);
    assert.equal(cdrs[1].externalCallerId, 'Smith, J');
    assert.equal(cdrs[0].answered, false);
    assert.equal(cdrs[0].direction, 'internal');
    assert.equal(cdrs[0].raw, text.split('\r\n')[0], 'raw line without CR');
    assert.deepEqual(malformed.map((m) => m.line), [2, 3, 4, 5, 6, 8]);
    assert.match(malformed[0].reason, /got 9/);
    assert.match(malformed[1].reason, /not a date/);
    assert.match(malformed[2].reason, /not a date/);
    assert.match(malformed[3].reason, /duration/);
    assert.match(malformed[4].reason, /quot/);
    assert.match(malformed[5].reason, /quot/);
  });

  it('cuts an overlong line (bounded memory) and reports it, keeping the line numbers of what follows', async () => {
    const ok = (i: number) => `1.${i},2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,0821,CALL_ANSWERED,12,10,0,`;
    const text = [ok(1), 'x'.repeat(5000), ok(3), '\u0000\u0001'.repeat(3000), ok(5)].join('\n');
    const { cdrs, malformed } = await parseIndexText(text, { zone: SA, maxLineBytes: 300 });
    assert.deepEqual(cdrs.map((c) => [c.uniqueId, c.line]), [['1.1', 1], ['1.3', 3], ['1.5', 5]]);
    assert.deepEqual(malformed.map((m) => m.line), [2, 4]);
    assert.match(malformed[0].reason, /longer than 300 bytes/);
  });

  it('reads a line that is not UTF-8 as Latin-1, and UTF-8 split across chunks as UTF-8', async () => {
    const head = '1.1,2026/01/05/10:00:00,CALLTYPE_INBOUND,200,,0821,CALL_ANSWERED,12,10,0,,';
    const latin = Buffer.concat([Buffer.from(head), Buffer.from([0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72, 0xa5]), Buffer.from(',ACC\n')]);
    const utf8 = Buffer.from(head.replace('1.1', '1.2') + 'Zoë Müller,ACC\n');
    const all = Buffer.concat([latin, utf8]);
    const at = latin.length + head.length + 3; // inside the ë
    const items: IndexItem[] = [];
    for await (const it of parseIndexStream(Readable.from([all.subarray(0, at), all.subarray(at)]), { zone: SA, extended: true })) items.push(it);
    const names = items.map((i) => (i.kind === 'cdr' ? i.cdr.friendlyName : i.malformed.reason));
    assert.deepEqual(names, ['Müller¥', 'Zoë Müller']);
  });

  it('reads extended columns (13, 15) and a friendly name holding unquoted commas', async () => {
    const base = '1.1,2026/01/05/10:00:00,CALLTYPE_OUTBOUND,200,0215551111,,CALL_ANSWERED,60,53,0,';
    const text = [
      `${base},Reception,ACC1`,
      `${base},Reception,ACC1,SIP/200-0000001a,SIP/trunk-0000001b`,
      `${base},Smith, John,ACC2,SIP/200-0000001c,`,
      `${base},X,Y,Z`,
    ].join('\n');
    const { cdrs, malformed } = await parseIndexText(text, { zone: SA, extended: true });
    assert.equal(cdrs.length, 3);
    assert.equal(cdrs[0].friendlyName, 'Reception');
    assert.equal(cdrs[0].accountCode, 'ACC1');
    assert.equal(cdrs[1].channel, 'SIP/200-0000001a');
    assert.equal(cdrs[1].destinationChannel, 'SIP/trunk-0000001b');
    assert.equal(cdrs[2].friendlyName, 'Smith, John');
    assert.equal(cdrs[2].accountCode, 'ACC2');
    assert.equal(cdrs[2].destinationChannel, null);
    assert.ok(cdrs[2].repaired);
    assert.deepEqual(malformed.map((m) => m.line), [4]);
  });

  it('converts across DST: spring-forward gap flagged, fall-back hour settled by the unique id epoch', async () => {
    // Europe/Berlin 2026-10-25: 03:00 CEST -> 02:00 CET, so 02:30 happens at 00:30Z and at 01:30Z
    const first = Date.UTC(2026, 9, 25, 0, 30) / 1000;
    const second = Date.UTC(2026, 9, 25, 1, 30) / 1000;
    const text = [
      `${first - 2}.1,2026/10/25/02:30:00,CALLTYPE_INBOUND,200,,0301234,CALL_ANSWERED,5,3,0,`,
      `${second - 2}.2,2026/10/25/02:30:00,CALLTYPE_INBOUND,200,,0301234,CALL_ANSWERED,5,3,0,`,
      'abc.3,2026/10/25/02:30:00,CALLTYPE_INBOUND,200,,0301234,CALL_ANSWERED,5,3,0,',
      '1774747800.4,2026/03/29/02:30:00,CALLTYPE_INBOUND,200,,0301234,CALL_ANSWERED,5,3,0,',
      '1774747800.5,2026/07/01/12:00:00,CALLTYPE_INBOUND,200,,0301234,CALL_ANSWERED,5,3,0,',
    ].join('\n');
    const { cdrs } = await parseIndexText(text, { zone: 'Europe/Berlin' });
    assert.equal(cdrs[0].start, '2026-10-25T00:30:00Z');
    assert.equal(cdrs[0].startAmbiguous, true);
    assert.equal(cdrs[0].startAlternative, '2026-10-25T01:30:00Z');
    assert.equal(cdrs[0].startResolvedBy, 'uniqueId');
    assert.equal(cdrs[1].start, '2026-10-25T01:30:00Z');
    assert.equal(cdrs[1].startAlternative, '2026-10-25T00:30:00Z');
    assert.equal(cdrs[1].startResolvedBy, 'uniqueId');
    assert.equal(cdrs[2].start, '2026-10-25T00:30:00Z', 'no epoch in the id: the earlier instant');
    assert.equal(cdrs[2].startResolvedBy, 'earlier');
    assert.equal(cdrs[3].startNonexistent, true);
    assert.equal(cdrs[3].start, '2026-03-29T01:30:00Z');
    assert.equal(cdrs[4].start, '2026-07-01T10:00:00Z', 'CEST in summer');
    assert.equal(cdrs[4].startAmbiguous, false);
  });

  it('the conversion cache agrees with a direct conversion on DST days, half-hour shifts and odd offsets', async () => {
    const cases: [string, number][] = [['Europe/Berlin', Date.UTC(2026, 9, 24, 20)], ['Australia/Lord_Howe', Date.UTC(2026, 3, 4, 10)], ['Australia/Lord_Howe', Date.UTC(2026, 9, 3, 10)], ['Asia/Kathmandu', Date.UTC(2026, 0, 1)], ['America/St_Johns', Date.UTC(2026, 2, 8, 0)]];
    for (const [zone, from] of cases) {
      const lines: string[] = [];
      const expected: string[] = [];
      for (let t = 0; t < 8 * 3600_000; t += 7 * 60_000 + 13_000) {
        // wall-clock stamps walked in local time: build them from UTC+0 arithmetic, then convert directly
        const d = new Date(from + t);
        const parts = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
        const p2 = (n: number) => String(n).padStart(2, '0');
        lines.push(`x.${lines.length},${parts.year}/${p2(parts.month)}/${p2(parts.day)}/${p2(parts.hour)}:${p2(parts.minute)}:${p2(parts.second)},CALLTYPE_INBOUND,200,,1,CALL_ANSWERED,1,1,0,`);
        expected.push(zonedToUtc(parts, zone).date.toISOString().replace('.000Z', 'Z'));
      }
      const { cdrs } = await parseIndexText(lines.join('\n'), { zone });
      assert.deepEqual(cdrs.map((c) => c.start), expected, zone);
    }
  });

  it('streams: yields in line order from a chunked source and reads CRLF, BOM and a missing final newline', async () => {
    const line = (i: number) => `${1700000000 + i}.${i},2026/01/05/10:00:${String(i % 60).padStart(2, '0')},CALLTYPE_INBOUND,200,,021555${i},CALL_ANSWERED,${i},${i},0,`;
    const body = '\ufeff' + Array.from({ length: 500 }, (_, i) => line(i)).join('\r\n');
    const chunks = body.match(/[\s\S]{1,97}/g)!.map((c) => Buffer.from(c));
    const items: IndexItem[] = [];
    for await (const it of parseIndexStream(Readable.from(chunks), { zone: SA })) items.push(it);
    assert.equal(items.length, 500);
    assert.ok(items.every((it, i) => it.kind === 'cdr' && it.cdr.line === i + 1 && it.cdr.duration === i));
  });
});

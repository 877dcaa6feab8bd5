import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readBillFile, emptySummary, LocalToUtc, CDR_COLUMNS, RECORD_COLUMNS, BillFileError, type BillItem, type BillFileOptions } from '../../src/ccfs/bill-file';
import { buildZip, csv, cdrRow, recordRow } from '../simulators/ccfs-server';
import { zonedToUtc } from '../../src/common/time';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfs-bill-'));
let n = 0;
async function zipFile(entries: Array<[string, string | Buffer]>): Promise<string> {
  const f = path.join(tmp, `z${++n}.zip`);
  fs.writeFileSync(f, await buildZip(entries));
  return f;
}
async function read(file: string, opts: Partial<BillFileOptions> = {}) {
  const summary = emptySummary();
  const items: BillItem[] = [];
  for await (const it of readBillFile(file, { timeZone: 'America/Sao_Paulo', ...opts }, summary)) items.push(it);
  return { items, summary };
}

describe('ccfs/bill-file', () => {
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('knows the 29 CDR and 18 recording-index columns', () => {
    assert.equal(CDR_COLUMNS.length, 29);
    assert.equal(RECORD_COLUMNS.length, 18);
  });

  it('types every column of a CDR row and converts local times with the tenant zone', async () => {
    const { items, summary } = await read(await zipFile([['20260414091612123456_call_1.csv', csv([cdrRow()])]]));
    assert.equal(items.length, 1);
    const it = items[0];
    assert.equal(it.kind, 'call');
    if (it.kind !== 'call') return;
    assert.equal(it.call.complete, true);
    const r = it.call.rows[0];
    assert.equal(r.developer, 'globalaktest');
    assert.equal(r.call_id, '1776135340-404299');
    assert.equal(r.caller_no, '5511999990000', 'numbers stay text');
    assert.equal(r.wait_begin, '2026-04-14T12:15:40Z', '09:15:40 in Sao Paulo (UTC-3)');
    assert.equal(r.call_end, '2026-04-14T12:20:01Z');
    assert.equal(r.device_type, 2);
    assert.equal(r.call_id_num, -1);
    assert.equal(r.release_cause, 0);
    assert.equal(r.leave_reason, '88');
    assert.equal(r.sub_media_type, null, 'empty cells are null');
    assert.equal(r.raw.length, 29);
    assert.equal(summary.callRows, 1);
    assert.equal(summary.problemCount, 0);
  });

  it('types a recording-index row, keeping backslashes in original_file_name', async () => {
    const { items, summary } = await read(await zipFile([['20260414091612123456_record_1.csv', csv([recordRow()])]]), { timeZone: 'UTC' });
    assert.equal(items.length, 1);
    const it = items[0];
    assert.ok(it.kind === 'record');
    if (it.kind !== 'record') return;
    assert.equal(it.row.file_name, '/10/1/record/100/13533/0903379.wav');
    assert.equal(it.row.original_file_name, 'X:\\17\\0\\20260414\\1001\\2043295.V3');
    assert.equal(it.row.call_begin, '2026-04-14T09:15:48Z');
    assert.equal(it.row.task_status, 0);
    assert.equal(it.row.call_type, 0);
    assert.equal(it.row.current_skill_id, '7');
    assert.equal(summary.records, 1);
  });

  it('keeps the rows of one call together, -1 last, even across interleaved calls and split files', async () => {
    const a = (num: string) => cdrRow({ call_id: 'A-1', call_id_num: num });
    const b = (num: string) => cdrRow({ call_id: 'B-2', call_id_num: num });
    const file = await zipFile([
      ['x_call_1.csv', csv([a('1'), b('2'), a('-1'), b('1')])],
      ['x_call_2.csv', csv([b('-1'), cdrRow({ call_id: 'C-3', call_id_num: '1' })])],
    ]);
    const { items, summary } = await read(file);
    const calls = items.filter((i): i is Extract<BillItem, { kind: 'call' }> => i.kind === 'call').map((i) => i.call);
    assert.deepEqual(calls.map((c) => [c.call_id, c.rows.map((r) => r.call_id_num), c.complete]), [
      ['A-1', [1, -1], true],
      ['B-2', [1, 2, -1], true],
      ['C-3', [1], false],
    ]);
    assert.equal(summary.calls, 3);
    assert.equal(summary.incompleteCalls, 1);
    assert.equal(summary.files.length, 2);
    assert.match(summary.problems[0].message, /no row with call_id_num -1/);
  });

  it('bounds the calls it holds open', async () => {
    const rows = Array.from({ length: 5 }, (_v, i) => cdrRow({ call_id: `K-${i}`, call_id_num: '1' }));
    const { items, summary } = await read(await zipFile([['x_call_1.csv', csv(rows)]]), { maxOpenCalls: 2 });
    assert.equal(items.length, 5);
    assert.equal(summary.incompleteCalls, 5);
    assert.equal((items[0] as any).call.call_id, 'K-0', 'the oldest goes first');
  });

  it('skips a header row and a BOM, tolerates extra and missing columns, and reports bad cells', async () => {
    const header = ['developer', ...CDR_COLUMNS.slice(1)];
    const extra = [...cdrRow({ call_id: 'E-1' }), 'future_col'];
    const short = cdrRow({ call_id: 'S-1' }).slice(0, 18);
    const bad = cdrRow({ call_id: 'B-1', call_begin: '14/04/2026 09:00', device_type: 'two' });
    const file = await zipFile([['x_call_1.csv', '\ufeff' + csv([extra, short, bad], header)], ['readme.txt', 'hello']]);
    const { items, summary } = await read(file);
    assert.equal(summary.headerRows, 1);
    assert.equal(items.length, 3);
    const rows = items.map((i) => (i as any).call.rows[0]);
    assert.deepEqual(rows[0].extra, ['future_col']);
    assert.equal(rows[1].vdn_id, null);
    assert.equal(rows[1].call_id_num, -1);
    assert.equal(rows[2].call_begin, null);
    assert.equal(rows[2].device_type, null);
    assert.equal(summary.problemCount, 2);
    assert.deepEqual(summary.skipped, ['readme.txt']);
  });

  it('parses quoted cells with commas and quotes, CRLF or LF line ends', async () => {
    const row = cdrRow({ device_in: 'a, "b"' });
    const file = await zipFile([['x_call_1.csv', csv([row]).replace(/\r\n/g, '\n')]]);
    const { items } = await read(file);
    assert.equal((items[0] as any).call.rows[0].device_in, 'a, "b"');
  });

  it('reads another charset when told to', async () => {
    // "张三" in GBK
    const gbk = Buffer.concat([Buffer.from('globalaktest,tenant01,1,1001,G-1,'), Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]), Buffer.from(',4000\r\n')]);
    const { items } = await read(await zipFile([['x_record_1.csv', gbk]]), { encoding: 'gbk' });
    assert.equal((items[0] as any).row.caller_no, '张三');
  });

  it('refuses something that is not a zip, and an unknown zone', async () => {
    const f = path.join(tmp, 'not.zip');
    fs.writeFileSync(f, '{"resultCode":"0300011"}');
    await assert.rejects(read(f), BillFileError);
    await assert.rejects(read(f, { timeZone: 'Nowhere/Else' }), /IANA/);
  });

  it('refuses a zip whose entry names leave the folder or whose directory is damaged, and never yields a row of it', async () => {
    for (const bad of ['../x_call_1.csv', '/tmp/x_call_1.csv', 'C:/x/y_call_1.csv']) {
      // yazl refuses such names: store a placeholder of the same length, then patch the bytes
      const zip = await buildZip([['Q'.repeat(bad.length), csv([cdrRow({ call_id_num: '-1' })])]]);
      for (let at = zip.indexOf('Q'.repeat(bad.length)); at >= 0; at = zip.indexOf('Q'.repeat(bad.length), at + 1)) zip.write(bad, at);
      const f = path.join(tmp, `hostile${++n}.zip`);
      fs.writeFileSync(f, zip);
      const seen: BillItem[] = [];
      await assert.rejects((async () => {
        for await (const it of readBillFile(f, { timeZone: 'UTC' })) seen.push(it);
      })(), (err: Error) => err instanceof BillFileError && /^damaged zip: (invalid relative path|absolute path)/.test(err.message), bad);
      assert.deepEqual(seen, [], bad);
    }
    const whole = await buildZip([['a_call_1.csv', csv([cdrRow({ call_id_num: '-1' })])], ['b_call_1.csv', csv([cdrRow({ call_id_num: '-1' })])]]);
    const cut = Buffer.from(whole);
    cut.write('XXXX', whole.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]))); // the second central directory record
    const f = path.join(tmp, `cut${++n}.zip`);
    fs.writeFileSync(f, cut);
    await assert.rejects(read(f), (err: Error) => err instanceof BillFileError && /^damaged zip: /.test(err.message));
  });

  it('streams a large file, several parts, keeping every call whole', async () => {
    const calls = 6000;
    const part = (from: number, to: number) => csv(Array.from({ length: to - from }, (_v, i) => [
      cdrRow({ call_id: `${1776135340 + from + i}-1`, call_id_num: '1' }),
      cdrRow({ call_id: `${1776135340 + from + i}-1`, call_id_num: '-1' }),
    ]).flat());
    const file = await zipFile([['big_call_1.csv', part(0, 3000)], ['big_call_2.csv', part(3000, calls)], ['big_record_1.csv', csv(Array.from({ length: 500 }, () => recordRow()))]]);
    const summary = emptySummary();
    let rows = 0;
    let whole = 0;
    for await (const it of readBillFile(file, { timeZone: 'UTC' }, summary)) {
      if (it.kind === 'call') {
        rows += it.call.rows.length;
        if (it.call.complete && it.call.rows.map((r) => r.call_id_num).join() === '1,-1') whole++;
      }
    }
    assert.equal(whole, calls);
    assert.equal(rows, 2 * calls);
    assert.equal(summary.records, 500);
    assert.equal(summary.problemCount, 0);
  });

  it('converts local times exactly like zonedToUtc, DST changes included', () => {
    for (const zone of ['America/Sao_Paulo', 'Europe/Berlin', 'Australia/Lord_Howe', 'America/New_York', 'Asia/Shanghai', 'UTC']) {
      const conv = new LocalToUtc(zone);
      // every 7 minutes (and a few seconds) around each 2018 DST change of these zones, and a coarse sweep of the year
      const days = ['2018-02-17', '2018-03-11', '2018-03-25', '2018-04-01', '2018-10-07', '2018-10-28', '2018-11-04', '2018-11-03'];
      const times: number[] = [];
      for (const day of days) for (let t = Date.parse(`${day}T00:00:00Z`) - 86_400_000; t < Date.parse(`${day}T00:00:00Z`) + 86_400_000; t += 7 * 60_000 + 13_000) times.push(t);
      for (let t = Date.UTC(2018, 0, 1); t < Date.UTC(2019, 0, 1); t += 86_400_000 + 3_600_000 + 61_000) times.push(t);
      for (const t of times) {
        const d = new Date(t);
        const p = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
        const want = zonedToUtc(p, zone).date.toISOString().replace(/\.000Z$/, 'Z');
        if (conv.convert(p) !== want) assert.fail(`${zone} ${JSON.stringify(p)}: ${conv.convert(p)} != ${want}`);
      }
    }
  });

  it('handles an empty zip', async () => {
    const { items, summary } = await read(await zipFile([]));
    assert.equal(items.length, 0);
    assert.equal(summary.files.length, 0);
  });
});

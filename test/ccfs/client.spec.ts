import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CcfsClient, CcfsAuthError, CcfsResultError, CcfsValidationError, CcfsProtocolError, planBillQueries, expectedBillFileName } from '../../src/ccfs/client';
import { CcfsSimulator, simSign, buildZip, selfSignedCert } from '../simulators/ccfs-server';
import { shared } from '../helpers/fixtures';
import { request } from 'undici';

const AK = 'globalaktest';
const SK = 'test-sk-0123456789abcdef';
const NOW = Date.parse('2026-04-15T12:00:00Z');

describe('ccfs/client', () => {
  describe('planBillQueries', () => {
    const base = { dataType: 'call', callBackURL: 'https://nr.example:1880/ccfs' };
    const plan = (q: Record<string, unknown>, zone = 'America/Sao_Paulo') => planBillQueries({ ...base, ...q }, { timeZone: zone, now: NOW });

    it('passes a valid window through, omits empty optional fields, and gives the UTC instants', () => {
      const [p, ...rest] = plan({ beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 23:59:59', accountId: '', agentId: '1001' });
      assert.equal(rest.length, 0);
      assert.deepEqual(p.msgBody, { beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 23:59:59', agentId: '1001', dataType: 'call', callBackURL: base.callBackURL });
      assert.equal(p.beginUtc, '2026-04-14T03:00:00.000Z');
    });

    it('splits a window over 3 days into consecutive windows that do not overlap', () => {
      const parts = plan({ beginTime: '2026-04-01 00:00:00', endTime: '2026-04-10 12:00:00' });
      assert.deepEqual(parts.map((p) => [p.msgBody.beginTime, p.msgBody.endTime]), [
        ['2026-04-01 00:00:00', '2026-04-04 00:00:00'],
        ['2026-04-04 00:00:01', '2026-04-07 00:00:01'],
        ['2026-04-07 00:00:02', '2026-04-10 00:00:02'],
        ['2026-04-10 00:00:03', '2026-04-10 12:00:00'],
      ]);
      assert.equal(plan({ beginTime: '2026-04-01 00:00:00', endTime: '2026-04-04 00:00:00' }).length, 1, 'exactly 3 days is one request');
    });

    it('refuses what CC-FS would refuse, naming the field', () => {
      const refuses = (q: Record<string, unknown>, field: string, re: RegExp, zone?: string) =>
        assert.throws(() => plan(q, zone), (e: unknown) => e instanceof CcfsValidationError && e.field === field && re.test(e.message), JSON.stringify(q));
      const ok = { beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 23:59:59' };
      refuses({ ...ok, beginTime: '2026-04-15 00:00:00' }, 'beginTime', /after endTime/);
      refuses({ ...ok, endTime: '2026-04-15 09:00:01' }, 'endTime', /future/); // 12:00Z is 09:00 in Sao Paulo
      refuses({ ...ok, endTime: '2026-04-15 20:00:01' }, 'endTime', /future/, 'Asia/Shanghai');
      assert.equal(plan({ ...ok, endTime: '2026-04-15 20:00:00' }, 'Asia/Shanghai').length, 1);
      refuses({ ...ok, beginTime: '2026-04-14T00:00:00' }, 'beginTime', /yyyy-MM-dd HH:mm:ss/);
      refuses({ ...ok, beginTime: '2026-02-30 00:00:00' }, 'beginTime', /valid/);
      refuses({ ...ok, beginTime: undefined }, 'beginTime', /required/);
      refuses({ ...ok, dataType: 'cdr' }, 'dataType', /call, record or call_record/);
      refuses({ ...ok, callBackURL: '' }, 'callBackURL', /required/);
      refuses({ ...ok, callBackURL: 'ftp://x/y' }, 'callBackURL', /https/);
      refuses({ ...ok, accountId: 'a'.repeat(21) }, 'accountId', /at most 20/);
      refuses({ ...ok, callId: 'c'.repeat(26) }, 'callId', /at most 25/);
      assert.throws(() => planBillQueries({ ...base, ...ok }, { timeZone: 'Mars/Olympus', now: NOW }), /IANA/);
      assert.equal(plan({ ...ok, callerNo: 'c'.repeat(25), accountId: 'a'.repeat(20) }).length, 1);
    });

    it('names the expected file after the request day in the tenant zone, without dashes', () => {
      assert.equal(expectedBillFileName('9239cb50-a838-4bb0-ab50-3441bf089446', Date.parse('2018-07-01T23:30:00Z'), 'Asia/Shanghai'), '20180702_9239cb50a8384bb0ab503441bf089446.zip');
    });
  });

  describe('against the CC-FS simulator', () => {
    let sim: CcfsSimulator;
    let client: CcfsClient;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfs-client-'));
    const body = { beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 23:59:59', dataType: 'call_record' as const, callBackURL: 'http://127.0.0.1:9/cb' };
    const make = (o: Partial<ConstructorParameters<typeof CcfsClient>[0]> = {}) =>
      new CcfsClient({ baseUrl: sim.url, accessKey: AK, secretKey: SK, retries: 0, retryBaseMs: 1, ...o });

    beforeEach(async () => {
      sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, autoCallback: false, lockAfter: 3, timeZone: 'America/Sao_Paulo' }).start();
      client = make();
    });
    afterEach(async () => {
      await client.close();
      await sim.stop();
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('the simulator signs the reference vectors like Huawei’s code', () => {
      for (const line of shared('ccfs', 'computed_auth-v2_test-vectors_huawei-hpsdemo-reference.jsonl').split('\n').filter(Boolean)) {
        const v = JSON.parse(line);
        const q = v.query ? new URLSearchParams(v.query) : undefined;
        assert.equal(simSign(v.accessKey, v.secretKey, v.timestamp, v.method, v.uri, v.signedHeaders, v.body ?? '', q), v.expected.authorization, v.id);
      }
    });

    it('sends a signed queryBillData the server accepts, with the three doc headers or host only', async () => {
      const r = await client.queryBillData(body);
      assert.match(r.responseId, /^[0-9a-f]{32}$/);
      const seen = sim.requests[0];
      assert.equal(seen.outcome, '');
      assert.match(String(seen.headers.authorization), /^auth-v2\/globalaktest\/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\/content-length;content-type;host\/[0-9a-f]{64}$/);
      assert.equal(seen.headers.host, new URL(sim.url).host);
      assert.deepEqual(JSON.parse(seen.body), { request: { version: '2.0' }, msgBody: body });
      const hostOnly = make({ signedHeaders: 'host' });
      await hostOnly.queryBillData(body);
      await hostOnly.close();
      assert.match(String(sim.requests[1].headers.authorization), /\/host\/[0-9a-f]{64}$/);
      assert.equal(sim.requests[1].status, 200);
    });

    it('signs the Host header it sends when told to use another one (as Huawei’s demo does)', async () => {
      const c = make({ hostHeader: 'ccfs.internal' });
      await c.queryBillData(body);
      await c.close();
      assert.equal(sim.requests[0].headers.host, 'ccfs.internal');
      assert.equal(sim.requests[0].status, 200);
    });

    it('turns a business code into an error naming the code and its meaning', async () => {
      sim.queryQueue.push({ code: '0300014', desc: 'the interval cannot exceed 3 days' });
      await assert.rejects(client.queryBillData(body), (e: unknown) => e instanceof CcfsResultError && e.code === '0300014'
        && /0300014 \(the time window is longer than the server allows/.test(e.message) && /cannot exceed 3 days/.test(e.message));
      await assert.rejects(client.queryBillData({ ...body, beginTime: '2026-04-15 00:00:00' }), /0300013 \(beginTime is later than endTime\)/);
      sim.queryQueue.push({ code: '0300042' });
      await assert.rejects(client.queryBillData(body), /configuration error/);
    });

    it('never retries 401, and reports the 403 lock clearly', async () => {
      const wrong = make({ secretKey: 'wrong', retries: 5 });
      await assert.rejects(wrong.queryBillData(body), (e: unknown) => e instanceof CcfsAuthError && e.status === 401 && /Not retried/.test(e.message));
      assert.equal(sim.requests.length, 1, 'exactly one attempt');
      await assert.rejects(wrong.queryBillData(body), /401/);
      await assert.rejects(wrong.queryBillData(body), /401/);
      await assert.rejects(wrong.queryBillData(body), (e: unknown) => e instanceof CcfsAuthError && e.status === 403 && /locked this IP/.test(e.message));
      await assert.rejects(client.queryBillData(body), (e: unknown) => (e as CcfsAuthError).status === 403, 'locked even with the right key');
      await wrong.close();
      sim.unlock();
      await client.queryBillData(body);
    });

    it('is refused when the header set or the body do not match what was signed', async () => {
      const s = await new CcfsSimulator({ accessKey: AK, secretKey: SK, autoCallback: false, requiredSignedHeaders: ['content-length', 'content-type', 'host'] }).start();
      const c = new CcfsClient({ baseUrl: s.url, accessKey: AK, secretKey: SK, signedHeaders: 'host', retries: 0 });
      await assert.rejects(c.queryBillData(body), /401/);
      assert.equal(s.requests[0].outcome, 'header set lacks content-length');
      // a body changed after signing (same length, so only the signature can tell)
      const path = '/CCFS/resource/ccfs/queryBillData';
      const signed = '{"request":{"version":"2.0"},"msgBody":{"x":1}}';
      const std = new CcfsClient({ baseUrl: s.url, accessKey: AK, secretKey: SK });
      const headers = std.signedHeaders(path, signed);
      await std.close();
      const res = await request(`${s.url}${path}`, { method: 'POST', headers, body: signed.replace('1', '2') });
      await res.body.text();
      assert.equal(res.statusCode, 401);
      assert.equal(s.requests[1].outcome, 'signature mismatch');
      await c.close();
      await s.stop();
    });

    it('retries query flow control (0300009) but not other business codes', async () => {
      const c = make({ retries: 2 });
      sim.queryQueue.push({ code: '0300009' }, { code: '0300009' });
      const r = await c.queryBillData(body);
      assert.ok(r.responseId);
      assert.equal(sim.requests.length, 3);
      sim.queryQueue.push({ code: '0300004' });
      await assert.rejects(c.queryBillData(body), /0300004/);
      assert.equal(sim.requests.length, 4);
      await c.close();
    });

    it('downloads a zip to disk and tells JSON errors from zips', async () => {
      const zip = await buildZip([['a_call_1.csv', 'x\r\n']]);
      sim.files.set('20260414_abc.zip', zip);
      const dest = path.join(tmp, 'a.zip');
      const r = await client.downloadBillFile('20260414_abc.zip', dest);
      assert.equal(r.bytes, zip.length);
      assert.deepEqual(fs.readFileSync(dest), zip);
      await assert.rejects(client.downloadBillFile('20260414_missing.zip', path.join(tmp, 'b.zip')), (e: unknown) => e instanceof CcfsResultError && e.code === '0300011');
      assert.equal(fs.existsSync(path.join(tmp, 'b.zip')), false, 'no file left behind');
      // octet-stream that is not a zip
      sim.files.set('20260414_bad.zip', Buffer.from('this is not a zip at all'));
      await assert.rejects(client.downloadBillFile('20260414_bad.zip', path.join(tmp, 'c.zip')), CcfsProtocolError);
      assert.throws(() => client.downloadBillFile('../etc/passwd', path.join(tmp, 'd.zip')), CcfsValidationError);
    });

    it('retries a download on flow control and server errors, not on 401', async () => {
      const c = make({ retries: 3 });
      sim.files.set('20260414_abc.zip', await buildZip([['a_call_1.csv', 'x\r\n']]));
      sim.downloadQueue.push({ code: '0300008' }, { http: 502 });
      const r = await c.downloadBillFile('20260414_abc.zip', path.join(tmp, 'e.zip'));
      assert.ok(r.bytes > 0);
      assert.equal(sim.requests.length, 3);
      await c.close();
    });
  });

  describe('TLS', () => {
    let pem: { key: string; cert: string } | null = null;
    before(function () {
      pem = selfSignedCert();
      if (!pem) this.skip(); // no openssl here
    });

    it('verifies the server certificate by default, and trusts a self-signed one only when its CA is given', async () => {
      const sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, autoCallback: false, tls: pem! }).start();
      const q = { beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 23:59:59', dataType: 'call' as const, callBackURL: 'https://127.0.0.1:9/cb' };
      const strict = new CcfsClient({ baseUrl: sim.url, accessKey: AK, secretKey: SK, retries: 0 });
      await assert.rejects(strict.queryBillData(q), (e: any) => /certificate/i.test(`${e.message} ${e.cause?.message ?? ''} ${e.code ?? ''} ${e.cause?.code ?? ''}`));
      assert.equal(sim.requests.length, 0, 'nothing was sent to an unverified server');
      const withCa = new CcfsClient({ baseUrl: sim.url, accessKey: AK, secretKey: SK, retries: 0, ca: pem!.cert });
      assert.match((await withCa.queryBillData(q)).responseId, /^[0-9a-f]{32}$/);
      await strict.close();
      await withCa.close();
      await sim.stop();
    });
  });
});

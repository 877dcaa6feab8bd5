import { strict as assert } from 'node:assert';
import { shared } from '../helpers/fixtures';
import { buildUrl, toRangeStamp, toExactStamp, ComxClient, ComxAuthError, ComxRequestError, dispositionFileName, extensionFor, endpointUrl } from '../../src/comx/client';
import { HttpStatusError, createAgent, bodyText } from '../../src/common/http';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';

const SA = 'Africa/Johannesburg';

describe('comx/client', () => {
  it('builds every request form of the spec, matching its example URLs', () => {
    const ex = shared('comx', 'official-doc-example_spec-v1.6_request-urls.txt').trim().split('\n');
    assert.equal(buildUrl('http://192.168.0.5', { kind: 'range', format: 'ziprec', start: '201301012300', end: '201301020000' }), ex[0]);
    assert.equal(buildUrl('http://192.168.0.5/', { kind: 'id', id: '1396000115.1', format: 'ziprec' }), ex[1]);
    assert.equal(buildUrl('http://192.168.0.5', { kind: 'id', id: '1392723066.6', format: 'raw' }), ex[2]);
    assert.equal(buildUrl('http://192.168.0.5/commagui/cdr', { kind: 'start', start: '20140328114835', format: 'ziprec' }), ex[3]);
    assert.equal(buildUrl('http://192.168.0.5', { kind: 'start', start: '20140328114835', format: 'raw' }), ex[4]);
    // the spec's §2.1.3 slash form is read, and sent in the defined 14-digit form
    assert.equal(buildUrl('http://192.168.0.7', { kind: 'start', start: toExactStamp('2014/03/28/11:48:35', SA), format: 'raw', extended: true }),
      'http://192.168.0.7/commagui/cdr?start=20140328114835&extended');
    assert.equal(buildUrl('https://pbx.example:8443/base', { kind: 'users' }), 'https://pbx.example:8443/base/commagui/cdr?users');
    assert.equal(buildUrl('http://pbx', { kind: 'range', format: 'txt', extended: true }), 'http://pbx/commagui/cdr?format=txt&extended');
  });

  it('refuses what the PBX would misread: 14 digits as a range bound, bad ids, credentials in the URL', () => {
    assert.throws(() => buildUrl('http://pbx', { kind: 'range', format: 'txt', start: '20140328114835' }), ComxRequestError);
    assert.throws(() => buildUrl('http://pbx', { kind: 'range', format: 'txt', start: '20140230' }), ComxRequestError);
    assert.throws(() => buildUrl('http://pbx', { kind: 'id', id: '1.1&format=x', format: 'txt' }), ComxRequestError);
    assert.throws(() => buildUrl('http://pbx', { kind: 'start', start: '201403281148', format: 'txt' }), ComxRequestError);
    assert.throws(() => endpointUrl('http://admin:pw@pbx'), /credentials/);
    assert.throws(() => endpointUrl('ftp://pbx'), /http/);
    assert.throws(() => toRangeStamp('20140328114835', SA), /14 digits/);
  });

  it('turns instants into PBX-local range stamps floored to the minute, and passes local forms through', () => {
    assert.equal(toRangeStamp('2013-01-01T21:00:59Z', SA), '201301012300');
    assert.equal(toRangeStamp(Date.UTC(2013, 0, 1, 21, 0, 59), SA), '201301012300');
    assert.equal(toRangeStamp(new Date('2026-10-25T00:30:00Z'), 'Europe/Berlin'), '202610250230');
    assert.equal(toRangeStamp('20130101', SA), '20130101');
    assert.equal(toRangeStamp('2013-01-01 23:00', SA), '201301012300');
    assert.equal(toRangeStamp('2013/01/01/23:00', SA), '201301012300');
    assert.throws(() => toRangeStamp('yesterday', SA), ComxRequestError);
    assert.equal(toExactStamp('2014-03-28T09:48:35Z', SA), '20140328114835');
  });

  it('reads recording names and types from the answer headers', () => {
    assert.equal(dispositionFileName('attachment; filename="a b.gsm"'), 'a b.gsm');
    assert.equal(dispositionFileName("attachment; filename*=UTF-8''%C3%A9.wav"), 'é.wav');
    assert.equal(dispositionFileName(null), null);
    assert.equal(extensionFor('audio/x-wav'), 'wav');
    assert.equal(extensionFor('audio/x-gsm'), 'gsm');
  });

  describe('against the simulator', () => {
    const sim = new ComxSimulator(SA);
    let url: string;
    before(async () => {
      url = await sim.start();
      sim.calls = generateCalls(Date.UTC(2026, 0, 5, 8), 3, 60_000);
    });
    after(() => sim.close());
    beforeEach(() => {
      sim.faults = {};
      sim.requests = [];
    });

    const client = (over: Partial<ConstructorParameters<typeof ComxClient>[0]> = {}) =>
      new ComxClient({ baseUrl: url, user: 'cdr', password: 's3cret', retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 }, ...over });

    it('sends Basic credentials and returns the body stream', async () => {
      const res = await client().open({ kind: 'range', format: 'txt', start: '20260105', end: '20260106' });
      const text = await bodyText({ body: res.body } as any);
      assert.equal(text.trim().split('\n').length, 3);
      assert.equal(sim.requests[0], '/commagui/cdr?format=txt&start=20260105&end=20260106');
    });

    it('401: a "check credentials" error at once, no retry', async () => {
      await assert.rejects(client({ password: 'wrong' }).open({ kind: 'users' }), (err: Error) => err instanceof ComxAuthError && /check the user and password/.test(err.message));
      assert.equal(sim.requests.length, 1);
    });

    it('5xx: bounded backoff, then success or the last error', async () => {
      sim.faults.fail500 = 2;
      const retries: number[] = [];
      const res = await client().open({ kind: 'users' }, { onRetry: (_e, a) => retries.push(a) });
      res.body.resume();
      assert.deepEqual(retries, [1, 2]);
      sim.faults.fail500 = 10;
      sim.requests = [];
      await assert.rejects(client().open({ kind: 'users' }), (err: Error) => err instanceof HttpStatusError && err.status === 500);
      assert.equal(sim.requests.length, 3, 'first try + 2 retries');
    });

    it('timeouts are retried, then reported', async () => {
      sim.faults.slowMs = 2500;
      const agent = createAgent({ timeoutMs: 100 });
      try {
        await assert.rejects(client({ dispatcher: agent }).open({ kind: 'users' }), /timeout/i);
        assert.equal(sim.requests.length, 3);
      } finally {
        await agent.close();
      }
    });
  });
});

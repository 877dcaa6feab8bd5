import { strict as assert } from 'node:assert';
import { CallbackGuard, parseCallbackBody, CallbackBodyError, RequestRegistry, responseIdFromFileName } from '../../src/ccfs/callback';
import { sign } from '../../src/ccfs/auth';
import { shared } from '../helpers/fixtures';

const SK = 'test-sk-0123456789abcdef';

function signedRequest(body: string, ts: string, o: { sk?: string; host?: string; uri?: string } = {}) {
  const headers = { host: o.host ?? '10.57.118.171', 'content-type': 'application/json;charset=UTF-8', 'content-length': String(Buffer.byteLength(body)) };
  const s = sign({ accessKey: 'globalaktest', secretKey: o.sk ?? SK, timestamp: ts, method: 'POST', uri: o.uri ?? '/', headers, body });
  return { method: 'POST', uri: '/', headers: { ...headers, accept: '*/*', authorization: s.authorization }, body: Buffer.from(body) };
}

describe('ccfs/callback', () => {
  it('reads the documented callback body', () => {
    const b = parseCallbackBody(shared('ccfs', 'official-doc-example_callback_request-body.json'));
    assert.deepEqual(b, { version: '2.0', responseId: '9239cb50a8384bb0ab503441bf089446', billFileName: '20180702_9239cb50a8384bb0ab503441bf089446.zip', accountId: null });
    assert.equal(parseCallbackBody('{"msgBody":{"billName":"20180702_a.zip","accountId":"t1"}}').billFileName, '20180702_a.zip', 'billName fallback');
    for (const bad of ['not json', '{}', '{"msgBody":{"billFileName":"../x.zip"}}', '{"msgBody":{"billFileName":""}}']) assert.throws(() => parseCallbackBody(bad), CallbackBodyError, bad);
  });

  it('accepts a genuine callback once and refuses its replay, a stale one, a tampered one', () => {
    const vector = JSON.parse(shared('ccfs', 'computed_auth-v2_test-vectors_huawei-hpsdemo-reference.jsonl').split('\n')[1]);
    const now = Date.parse(vector.timestamp) + 60_000;
    const guard = new CallbackGuard({ maxSkewMs: 15 * 60_000 });
    const req = signedRequest(vector.body, vector.timestamp);
    assert.equal(req.headers.authorization, vector.expected.authorization, 'the v2 vector is the callback as received');
    const first = guard.check(req, { secretKey: SK, now });
    assert.equal(first.ok, true);
    const again = guard.check(req, { secretKey: SK, now: now + 1000 });
    assert.deepEqual([again.ok, (again as any).reason], [false, 'replayed']);
    assert.equal((guard.check(signedRequest(vector.body, '2018-07-02T01:00:00Z'), { secretKey: SK, now }) as any).reason, 'stale');
    assert.equal((guard.check({ ...req, body: Buffer.from(vector.body.replace('"accountId":""', '"accountId":"x"')) }, { secretKey: SK, now }) as any).reason, 'signature');
    assert.equal((guard.check(signedRequest(vector.body, '2018-07-02T02:43:04.120Z'), { secretKey: SK, now }) as any).ok, true, 'milliseconds accepted');
    assert.equal((guard.check(signedRequest(vector.body, '2018-07-02T02:43:05Z', { sk: 'other' }), { secretKey: SK, now }) as any).reason, 'signature');
    assert.equal((guard.check(signedRequest(vector.body, '2018-07-02T02:43:06Z'), { secretKey: SK, accessKey: 'ak2', now }) as any).reason, 'accessKey');
    // a released signature (its delivery failed) may come again
    guard.release((first as any).verified.signature);
    assert.equal(guard.check(req, { secretKey: SK, now: now + 2000 }).ok, true);
    // the replay cache survives a snapshot
    const live = new CallbackGuard({ maxSkewMs: 15 * 60_000 });
    const fresh = signedRequest(vector.body, new Date().toISOString());
    assert.equal(live.check(fresh, { secretKey: SK }).ok, true);
    const restored = new CallbackGuard({ maxSkewMs: 15 * 60_000 }, JSON.parse(JSON.stringify(live.snapshot())));
    assert.equal((restored.check(fresh, { secretKey: SK }) as any).reason, 'replayed');
  });

  it('uses a host override when a proxy rewrote Host', () => {
    const guard = new CallbackGuard({ maxSkewMs: 60_000 });
    const req = signedRequest('{"msgBody":{"billFileName":"a.zip"}}', '2026-01-01T00:00:00Z', { host: 'public.example' });
    const proxied = { ...req, headers: { ...req.headers, host: '127.0.0.1:1880' } };
    assert.equal((guard.check(proxied, { secretKey: SK, now: Date.parse('2026-01-01T00:00:00Z') }) as any).reason, 'signature');
    assert.equal(guard.check(proxied, { secretKey: SK, hostOverride: 'public.example', now: Date.parse('2026-01-01T00:00:00Z') }).ok, true);
  });

  it('remembers delivered files across a snapshot, bounded by count and age', () => {
    const g = new CallbackGuard({ maxSkewMs: 1000, maxFiles: 3, fileTtlMs: 10_000 });
    const t = Date.now();
    for (const f of ['a', 'b', 'c', 'd']) g.markDelivered(f, t);
    assert.equal(g.isDelivered('a'), false, 'oldest dropped');
    const restored = new CallbackGuard({ maxSkewMs: 1000, maxFiles: 3, fileTtlMs: 10_000 }, JSON.parse(JSON.stringify(g.snapshot())));
    assert.deepEqual(['b', 'c', 'd'].map((f) => restored.isDelivered(f)), [true, true, true]);
    const old = new CallbackGuard({ maxSkewMs: 1000, fileTtlMs: 10_000 }, { version: 1, delivered: [['x', t - 20_000], ['y', t]], signatures: [] });
    assert.equal(old.isDelivered('x'), false);
    assert.equal(old.isDelivered('y'), true);
  });

  it('finds the request a callback answers by responseId or by the file name', () => {
    const r = new RequestRegistry(2);
    const rec = (id: string) => ({ responseId: id, billFileName: `20260414_${id.replace(/-/g, '')}.zip`, requestedAt: new Date().toISOString(), node: 'n1', msgBody: {} });
    r.remember(rec('9239cb50-a838-4bb0-ab50-3441bf089446'));
    assert.equal(r.find('9239cb50a8384bb0ab503441bf089446', 'x.zip')?.node, 'n1');
    assert.equal(r.find(null, '20260415_9239CB50A8384BB0AB503441BF089446.zip')?.node, 'n1');
    assert.equal(r.find('nope', 'x.zip'), null);
    r.remember(rec('b'));
    r.remember(rec('c'));
    assert.equal(r.find('9239cb50a8384bb0ab503441bf089446', 'x.zip'), null, 'bounded');
    assert.equal(new RequestRegistry(10, 1000, r.snapshot()).find('c', 'x.zip')?.responseId, 'c');
    assert.equal(responseIdFromFileName('20180702_9239cb50a8384bb0ab503441bf089446.zip'), '9239cb50a8384bb0ab503441bf089446');
  });
});

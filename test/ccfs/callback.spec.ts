import { strict as assert } from 'node:assert';
import { CallbackGuard, parseCallbackBody, CallbackBodyError, RequestRegistry, responseIdFromFileName, type RequestRecord, type BillJob } from '../../src/ccfs/callback';
import { StateShapeError } from '../../src/common/persist';
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
    const restored = CallbackGuard.restore(JSON.parse(JSON.stringify(live.snapshot())), [], { maxSkewMs: 15 * 60_000 });
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
    for (const f of ['a', 'b', 'c', 'd']) g.commit({ billFileName: f }, t);
    assert.equal(g.isDelivered('a'), false, 'oldest dropped');
    const restored = CallbackGuard.restore(JSON.parse(JSON.stringify(g.snapshot())), [], { maxSkewMs: 1000, maxFiles: 3, fileTtlMs: 10_000 });
    assert.deepEqual(['b', 'c', 'd'].map((f) => restored.isDelivered(f)), [true, true, true]);
    // the state of earlier versions ([name, time] pairs)
    const old = CallbackGuard.restore({ version: 1, delivered: [['x', t - 20_000], ['y', t]], signatures: [] }, [], { maxSkewMs: 1000, fileTtlMs: 10_000 });
    assert.equal(old.isDelivered('x'), false);
    assert.equal(old.isDelivered('y'), true);
  });

  it('finds the request a callback answers by responseId or by the file name', () => {
    const r = new RequestRegistry({ maxEntries: 2 });
    const rec = (id: string) => ({ responseId: id, billFileName: `20260414_${id.replace(/-/g, '')}.zip`, requestedAt: new Date().toISOString(), node: 'n1', msgBody: {} });
    r.remember(rec('9239cb50-a838-4bb0-ab50-3441bf089446'));
    assert.equal(r.find('9239cb50a8384bb0ab503441bf089446', 'x.zip')?.node, 'n1');
    assert.equal(r.find(null, '20260415_9239CB50A8384BB0AB503441BF089446.zip')?.node, 'n1');
    assert.equal(r.find('nope', 'x.zip'), null);
    r.remember(rec('b'));
    r.remember(rec('c'));
    assert.equal(r.find('9239cb50a8384bb0ab503441bf089446', 'x.zip'), null, 'bounded');
    assert.equal(RequestRegistry.restore(JSON.parse(JSON.stringify(r.snapshot())), [], { maxEntries: 10, ttlMs: 1000 }).find('c', 'x.zip')?.responseId, 'c');
    assert.equal(responseIdFromFileName('20180702_9239cb50a8384bb0ab503441bf089446.zip'), '9239cb50a8384bb0ab503441bf089446');
  });
  describe('state: snapshot, journal and shape checks', () => {
    const opts = { maxSkewMs: 15 * 60_000 };
    const roundTrip = <T>(v: T): T => JSON.parse(JSON.stringify(v));

    it('a guard rebuilt from the journal alone knows the delivered files and the signatures answered 200', () => {
      const live = new CallbackGuard(opts);
      const req = signedRequest('{"msgBody":{"billFileName":"20260414_a.zip"}}', new Date().toISOString());
      const first = live.check(req, { secretKey: SK });
      assert.equal(first.ok, true);
      const entries = [
        live.commit({ billFileName: '20260414_a.zip', signature: (first as any).verified.signature }),
        live.commit({ signature: 'another-signature' }),
      ];
      assert.equal(live.commit({ signature: null }), null, 'nothing to remember: no entry');
      const restored = CallbackGuard.restore(undefined, roundTrip(entries), opts);
      assert.equal(restored.isDelivered('20260414_a.zip'), true);
      assert.equal(restored.isDelivered('20260414_b.zip'), false);
      assert.equal((restored.check(req, { secretKey: SK }) as any).reason, 'replayed', 'the replay window survives too');
      // a snapshot followed by the entries written after it
      const later = live.commit({ billFileName: '20260414_c.zip' })!;
      const both = CallbackGuard.restore(roundTrip(new CallbackGuard(opts).snapshot()), roundTrip([...entries, later]), opts);
      assert.deepEqual(['20260414_a.zip', '20260414_c.zip'].map((f) => both.isDelivered(f)), [true, true]);
      assert.equal(CallbackGuard.restore(undefined, [], opts).isDelivered('20260414_a.zip'), false, 'nothing saved: empty');
    });

    const job = (file: string, o: Partial<BillJob> = {}): BillJob => ({ file, responseId: 'r1', accountId: null, version: '2.0', state: 'pending', attempts: 0, since: 1, meta: { verified: true }, ...o });

    it('keeps the jobs not finished: pending until done (then a delivered file) or failed, from the journal and the snapshot', () => {
      const live = new CallbackGuard(opts);
      const entries = [
        live.commit({ job: job('20260414_a.zip'), signature: 'sig-a' }),
        live.commit({ job: job('20260414_b.zip') }),
        live.commit({ job: job('20260414_c.zip') }),
        live.commit({ job: job('20260414_b.zip', { attempts: 1, error: '0300011' }) }),
        live.commit({ billFileName: '20260414_a.zip' }),
        live.commit({ job: job('20260414_c.zip', { state: 'failed', attempts: 3, error: 'gone' }) }),
      ];
      const check = (g: CallbackGuard) => {
        assert.deepEqual(['20260414_a.zip', '20260414_b.zip', '20260414_c.zip', '20260414_d.zip'].map((f) => g.known(f)), ['delivered', 'pending', 'failed', null]);
        assert.deepEqual(g.pendingJobs().map((j) => [j.file, j.attempts, j.error]), [['20260414_b.zip', 1, '0300011']]);
      };
      check(live);
      check(CallbackGuard.restore(undefined, roundTrip(entries), opts));
      const snap = roundTrip(live.snapshot());
      assert.equal(snap.version, 3);
      check(CallbackGuard.restore(snap, [], opts));
      // a job's entry is a copy: changing the job afterwards changes nothing journaled
      const j = job('20260414_e.zip');
      const e = live.commit({ job: j })!;
      j.attempts = 9;
      assert.equal(e.j!.attempts, 0);
      assert.throws(() => CallbackGuard.restore(undefined, [{ t: 1, j: { ...job('20260414_f.zip'), attempts: -1 } }], opts), StateShapeError);
      assert.throws(() => CallbackGuard.restore(undefined, [{ t: 1, j: { ...job('../f.zip') } }], opts), StateShapeError);
    });

    it('forgets signatures after twice the skew and files after their age, also when restored', () => {
      const t = Date.parse('2026-04-14T12:00:00Z');
      const g = new CallbackGuard({ maxSkewMs: 1000, fileTtlMs: 10_000 });
      const e = [g.commit({ billFileName: 'f.zip', signature: 's' }, t)];
      assert.deepEqual(CallbackGuard.restore(undefined, e, { maxSkewMs: 1000, fileTtlMs: 10_000 }, t + 1999).snapshot().signatures.map((x) => x[0]), ['s']);
      const aged = CallbackGuard.restore(undefined, e, { maxSkewMs: 1000, fileTtlMs: 10_000 }, t + 2001).snapshot();
      assert.deepEqual([aged.signatures.length, aged.delivered.length], [0, 1]);
      assert.equal(CallbackGuard.restore(undefined, e, { maxSkewMs: 1000, fileTtlMs: 10_000 }, t + 10_001).isDelivered('f.zip', t + 10_001), false);
    });

    for (const [what, saved] of [
      ['a version without lists', { version: 1 }],
      ['an unknown version', { version: 4, delivered: [], signatures: [], jobs: [] }],
      ['version 3 without jobs', { version: 3, delivered: [], signatures: [] }],
      ['a job filed under another name', { version: 3, delivered: [], signatures: [], jobs: [['20260414_x.zip', { file: '20260414_y.zip', responseId: null, accountId: null, version: null, state: 'pending', attempts: 0, since: 1, meta: {} }, 1]] }],
      ['a job in a state that is not pending or failed', { version: 3, delivered: [], signatures: [], jobs: [['20260414_x.zip', { file: '20260414_x.zip', responseId: null, accountId: null, version: null, state: 'running', attempts: 0, since: 1, meta: {} }, 1]] }],
      ['text', 'delivered'],
      ['a list', []],
      ['delivered not a list', { version: 2, delivered: 'a.zip', signatures: [] }],
      ['a delivered entry that is not [name, true, time]', { version: 2, delivered: [['a.zip', 'yes', 1]], signatures: [] }],
      ['a file name that is not text', { version: 2, delivered: [[7, true, 1]], signatures: [] }],
      ['an empty signature', { version: 2, delivered: [], signatures: [['', true, 1]] }],
      ['a version 1 pair without a time', { version: 1, delivered: [['a.zip']], signatures: [] }],
      ['a version 1 pair with a text time', { version: 1, delivered: [['a.zip', 'yesterday']], signatures: [] }],
    ] as Array<[string, unknown]>) {
      it(`refuses ${what} as a saved guard`, () => {
        assert.throws(() => CallbackGuard.restore(saved, [], opts), StateShapeError);
      });
    }

    it('refuses an entry that is not [key, value, time] and a damaged journal entry', () => {
      assert.throws(() => CallbackGuard.restore({ version: 2, delivered: ['a.zip'], signatures: [] }, [], opts), /not \[key, value, time\]/);
      for (const entry of [null, 'a.zip', {}, { t: 1 }, { t: 'now', f: 'a.zip' }, { t: 1, f: '' }, { t: 1, s: 5 }, { t: 1, f: ['a.zip'] }]) {
        assert.throws(() => CallbackGuard.restore(undefined, [entry], opts), StateShapeError, JSON.stringify(entry));
      }
    });

    const rec = (id: string, at = new Date().toISOString()): RequestRecord => ({ responseId: id, billFileName: `20260414_${id}.zip`, requestedAt: at, node: 'n1', msgBody: { dataType: 'call' }, part: 1, parts: 1 });

    it('a registry is rebuilt from its journal, from its snapshot, and from the plain list earlier versions saved', () => {
      const live = new RequestRegistry();
      const entries = [live.remember(rec('a1')), live.remember(rec('b2'))];
      assert.equal(RequestRegistry.restore(undefined, roundTrip(entries)).find('a1', 'x.zip')?.node, 'n1');
      const fromSnapshot = RequestRegistry.restore(roundTrip(live.snapshot()), roundTrip([rec('c3')]));
      assert.deepEqual(['a1', 'b2', 'c3'].map((id) => fromSnapshot.find(id, 'x.zip')?.responseId), ['a1', 'b2', 'c3']);
      const legacy = RequestRegistry.restore(roundTrip([rec('d4'), rec('e5')]), []);
      assert.equal(legacy.find(null, '20260101_e5.zip')?.responseId, 'e5');
      assert.equal(RequestRegistry.restore(undefined, []).size, 0);
    });

    it('a registry forgets requests past their age, also when restored', () => {
      const t = Date.parse('2026-04-14T12:00:00Z');
      const e = [rec('a1', new Date(t).toISOString())];
      assert.equal(RequestRegistry.restore(undefined, e, { ttlMs: 1000 }, t + 999).size, 1);
      assert.equal(RequestRegistry.restore(undefined, e, { ttlMs: 1000 }, t + 1001).size, 0);
      const r = RequestRegistry.restore(undefined, e, { ttlMs: 1000 }, t);
      assert.equal(r.find('a1', 'x.zip', t + 1001), null);
    });

    for (const [what, saved, journal] of [
      ['a state of another kind', { version: 1 }, []],
      ['version 2 without requests', { version: 2 }, []],
      ['a request without responseId', [{ billFileName: 'a.zip', requestedAt: '2026-04-14T12:00:00Z', node: 'n', msgBody: {} }], []],
      ['a request with a time that is not one', [{ ...rec('a1'), requestedAt: 'yesterday' }], []],
      ['a request whose msgBody is a list', [{ ...rec('a1'), msgBody: [] }], []],
      ['a request filed under another key', { version: 2, requests: [['zz', rec('a1'), 1]] }, []],
      ['a damaged journal entry', undefined, [{ responseId: 'a1' }]],
      ['a journal entry that is text', undefined, ['a1']],
    ] as Array<[string, unknown, unknown[]]>) {
      it(`refuses ${what} as a saved registry`, () => {
        assert.throws(() => RequestRegistry.restore(saved, journal), StateShapeError);
      });
    }
  });
});

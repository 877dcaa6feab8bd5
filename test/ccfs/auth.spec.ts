import { strict as assert } from 'node:assert';
import { shared } from '../helpers/fixtures';
import { sign, verify, normalize, canonicalRequest, parseAuthorization, parseAuthTimestamp, authTimestamp } from '../../src/ccfs/auth';

interface Vector {
  id: string;
  accessKey: string;
  secretKey: string;
  timestamp: string;
  method: string;
  uri: string;
  query: Record<string, string> | null;
  signedHeaders: Record<string, string>;
  body: string | null;
  expected: { authStringPrefix: string; signingKey: string; canonicalRequest: string; authorization: string };
}

const vectors: Vector[] = shared('ccfs', 'computed_auth-v2_test-vectors_huawei-hpsdemo-reference.jsonl')
  .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

describe('ccfs/auth (auth-v2)', () => {
  it('has the five reference vectors', () => assert.equal(vectors.length, 5));

  for (const v of vectors) {
    it(`reproduces every field of ${v.id}`, () => {
      const s = sign({ accessKey: v.accessKey, secretKey: v.secretKey, timestamp: v.timestamp, method: v.method, uri: v.uri, query: v.query, headers: v.signedHeaders, body: v.body });
      assert.equal(s.authStringPrefix, v.expected.authStringPrefix);
      assert.equal(s.signingKey, v.expected.signingKey);
      assert.equal(s.canonicalRequest, v.expected.canonicalRequest);
      assert.equal(s.authorization, v.expected.authorization);
      assert.equal(s.authorization, `${s.authStringPrefix}/${s.signature}`);
      // the body given as bytes signs the same
      if (v.body) assert.equal(sign({ ...v, headers: v.signedHeaders, body: Buffer.from(v.body, 'utf8') }).authorization, v.expected.authorization);
    });

    it(`verifies ${v.id} as a receiver would see it, and refuses any change`, () => {
      const headers: Record<string, string> = { authorization: v.expected.authorization, accept: '*/*' };
      for (const [k, val] of Object.entries(v.signedHeaders)) headers[k.toLowerCase()] = val;
      const req = { method: v.method, uri: v.uri, query: v.query, headers, body: v.body === null ? null : Buffer.from(v.body, 'utf8') };
      const now = parseAuthTimestamp(v.timestamp)!;
      const ok = verify(req, { secretKey: v.secretKey, accessKey: v.accessKey, maxSkewMs: 900_000, now });
      assert.equal(ok.ok, true, JSON.stringify(ok));
      const bad = (r: typeof req, o: Partial<Parameters<typeof verify>[1]> = {}) =>
        verify(r, { secretKey: v.secretKey, maxSkewMs: 900_000, now, ...o });
      assert.equal((bad(req, { secretKey: 'wrong' }) as any).reason, 'signature');
      assert.equal((bad({ ...req, headers: { ...headers, host: 'other.example:1' } }) as any).reason, 'signature');
      assert.equal((bad({ ...req, uri: v.uri + 'x' }) as any).reason, 'signature');
      assert.equal((bad({ ...req, query: { ...(v.query ?? {}), extra: '1' } }) as any).reason, 'signature', 'the query is signed');
      if (v.body) assert.equal((bad({ ...req, body: Buffer.from(v.body.replace('2.0', '2.1')) }) as any).reason, 'signature');
      assert.equal((bad(req, { now: now + 900_001 }) as any).reason, 'stale');
      assert.equal((bad(req, { now: now - 900_001 }) as any).reason, 'stale');
      assert.equal((bad(req, { accessKey: 'someone-else' }) as any).reason, 'accessKey');
      const noHost = { ...headers };
      delete noHost.host;
      delete (noHost as any).Host;
      assert.equal((bad({ ...req, headers: noHost }) as any).reason, 'headers');
    });
  }

  it('percent-encodes like PathUtils.normalize, not like encodeURIComponent', () => {
    assert.equal(normalize("a b!'()*~-._/:;="), 'a%20b%21%27%28%29%2A~-._%2F%3A%3B%3D');
    assert.equal(normalize('é中'), '%C3%A9%E4%B8%AD');
  });

  it('leaves out the query line when there is no query, and the payload when the body is empty', () => {
    const c = canonicalRequest({ method: 'POST', uri: '/', query: {}, headers: { Host: 'h' }, body: '' });
    assert.equal(c.text, 'POST\n/\nhost\nhost:h\n');
  });

  it('reads timestamps with and without milliseconds, and refuses others', () => {
    assert.equal(parseAuthTimestamp('2018-07-02T02:42:49Z'), Date.parse('2018-07-02T02:42:49Z'));
    assert.equal(parseAuthTimestamp('2021-08-31T09:38:50.872Z'), Date.parse('2021-08-31T09:38:50.872Z'));
    for (const bad of ['2021-08-31 09:38:50Z', '2021-02-30T00:00:00Z', '2021-08-31T09:38:50+00:00', '1630402730']) assert.equal(parseAuthTimestamp(bad), null, bad);
    assert.equal(authTimestamp(Date.parse('2021-08-31T09:38:50.872Z')), '2021-08-31T09:38:50Z');
  });

  it('verifies a millisecond timestamp signed as received', () => {
    const body = '{"request":{"version":"2.0"},"msgBody":{"billFileName":"x.zip"}}';
    const headers = { host: '10.57.118.171', 'content-type': 'application/json;charset=UTF-8', 'content-length': String(Buffer.byteLength(body)) };
    const s = sign({ accessKey: 'ak', secretKey: 'sk', timestamp: '2021-08-31T09:38:50.872Z', method: 'POST', uri: '/cb', headers, body });
    const r = verify({ method: 'POST', uri: '/cb', headers: { ...headers, authorization: s.authorization }, body: Buffer.from(body) },
      { secretKey: 'sk', maxSkewMs: 60_000, now: Date.parse('2021-08-31T09:39:00Z') });
    assert.equal(r.ok, true);
  });

  it('parses the Authorization header, including the docs’ wrapped form', () => {
    const p = parseAuthorization(`auth-v2/ak/2018-07-02T02:42:49Z/content-length;content-type;host\n/${'7a'.repeat(32)}`);
    assert.ok(p);
    assert.deepEqual(p!.signedHeaders, ['content-length', 'content-type', 'host']);
    assert.equal(parseAuthorization('Bearer abc'), null);
    assert.equal(parseAuthorization('auth-v2/ak/ts/host'), null);
    assert.equal(parseAuthorization('auth-v2/ak/2018-07-02T02:42:49Z/host/******'), null);
    assert.equal(verify({ method: 'POST', uri: '/', headers: {}, body: null }, { secretKey: 's', maxSkewMs: 1 }).ok, false);
  });
});

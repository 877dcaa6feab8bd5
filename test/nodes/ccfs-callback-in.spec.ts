import { strict as assert } from 'node:assert';
import supertest from 'supertest';
import { helper, collect, settle } from '../helpers/red';
import { start, closeServer, account, creds, until, setRouting, statuses, writeState, assertMovedAside, afterKill, AK, type Env } from './ccfs-env';
import { buildZip, csv, cdrRow, recordRow } from '../simulators/ccfs-server';

const SUCCESS = { resultCode: '0', resultDesc: 'success' };
const body = (name = '20260414_9239cb50a8384bb0ab503441bf089446.zip', responseId = '9239cb50a8384bb0ab503441bf089446') =>
  ({ request: { version: '2.0' }, msgBody: { responseId, billFileName: name, accountId: 'tenant01' } });

function flow(env: Env, cb: Record<string, unknown> = {}, acc: Record<string, unknown> = {}) {
  return [
    { id: 't1', type: 'tab' },
    account(env.sim, acc),
    { id: 'cb', type: 'ccfs-callback-in', z: 't1', account: 'acc', path: '/ccfs/cb', wires: [['file'], ['rows']], ...cb },
    { id: 'file', type: 'helper', z: 't1' },
    { id: 'rows', type: 'helper', z: 't1' },
    { id: 'c', type: 'catch', z: 't1', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 't1' },
  ];
}

describe('ccfs-callback-in node', function () {
  let env: Env;
  const url = () => `${env.base}/ccfs/cb`;
  const received: any[] = [];

  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
  beforeEach(async () => {
    env = await start({ autoCallback: false });
    received.length = 0;
  });
  afterEach(async () => {
    setRouting('admin-first');
    await env.stop();
  });

  /** What the callback node had sent when each answer left (send() is synchronous; delivery to the next node is not). */
  let sends = 0;
  async function loaded(cb: Record<string, unknown> = {}, userDir?: string) {
    await env.load(flow(env, cb), creds, userDir);
    helper.getNode('file').on('input', (m: any) => received.push(m));
    const node = helper.getNode('cb') as any;
    const send = node.send.bind(node);
    sends = 0;
    node.send = (m: any) => {
      sends++;
      return send(m);
    };
  }

  it('verifies a genuine callback (Host without port, as CC-FS signs it), sends it on, then answers 200 success', async () => {
    await loaded();
    const r = await env.sim.sendCallback(url(), body());
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), SUCCESS);
    assert.equal(r.sent.headers.host, '127.0.0.1');
    assert.equal(sends, 1, 'the message was sent before the answer');
    await until(() => received.length === 1);
    const m = received[0];
    assert.equal(m.topic, 'ccfs/callback');
    assert.deepEqual(m.payload, { responseId: '9239cb50a8384bb0ab503441bf089446', billFileName: '20260414_9239cb50a8384bb0ab503441bf089446.zip', accountId: 'tenant01', version: '2.0' });
    assert.equal(m.ccfs.verified, true);
    assert.equal(m.ccfs.signedBy, `…${AK.slice(-4)}`);
    assert.ok(!JSON.stringify(m).includes(AK), 'the AK never appears whole in the message');
    assert.equal(m.ccfs.request, null, 'not asked by a ccfs-bill-request node');
    assert.equal(m.ccfs.path, '/ccfs/cb');
    // host-only signatures and millisecond timestamps are accepted too
    const ms = new Date().toISOString();
    const r2 = await env.sim.sendCallback(url(), body('20260414_b.zip', 'b'), { hostOnly: true, timestamp: ms });
    assert.equal(r2.status, 200);
    await until(() => received.length === 2);
  });

  it('refuses bad, missing, stale and replayed signatures with 401 and sends nothing', async () => {
    await loaded();
    const first = await env.sim.sendCallback(url(), body());
    assert.equal(first.status, 200);
    const other = body('20260414_c.zip', 'c');
    const minutes = (n: number) => new Date(Date.now() + n * 60_000).toISOString();
    const cases: Array<[string, () => Promise<{ status: number }>]> = [
      ['wrong SK', () => env.sim.sendCallback(url(), other, { secretKey: 'nope' })],
      ['other AK', () => env.sim.sendCallback(url(), other, { accessKey: 'someone' })],
      ['tampered body', () => env.sim.sendCallback(url(), other, { tamper: true })],
      ['unsigned', () => env.sim.sendCallback(url(), other, { unsigned: true })],
      ['stale', () => env.sim.sendCallback(url(), other, { timestamp: minutes(-16).replace(/\.\d+Z$/, 'Z') })],
      ['future', () => env.sim.sendCallback(url(), other, { timestamp: minutes(16) })],
      ['replayed', () => env.sim.sendCallback(url(), null, { replay: first.sent })],
      ['Host rewritten', () => env.sim.sendCallback(url(), null, { replay: { ...first.sent, headers: { ...first.sent.headers, host: 'other.example' } } })],
    ];
    for (const [what, send] of cases) assert.equal((await send()).status, 401, what);
    await settle();
    assert.deepEqual(received.map((m) => m.payload.billFileName), [body().msgBody.billFileName], 'only the genuine one was sent on');
  });

  it('answers a duplicate callback 200 without sending it on again, also after a restart', async () => {
    await loaded();
    assert.equal((await env.sim.sendCallback(url(), body())).status, 200);
    // CC-FS signs each attempt anew (a new timestamp)
    const dup = await env.sim.sendCallback(url(), body(), { timestamp: new Date(Date.now() + 1000).toISOString() });
    assert.equal(dup.status, 200);
    assert.deepEqual(JSON.parse(dup.body), SUCCESS);
    await until(() => received.length === 1);
    await settle();
    assert.equal(received.length, 1);
    // restart: same node id, same user directory
    await helper.unload();
    received.length = 0;
    await loaded();
    const again = await env.sim.sendCallback(url(), body(), { timestamp: new Date(Date.now() + 2000).toISOString() });
    assert.equal(again.status, 200);
    assert.deepEqual(JSON.parse(again.body), SUCCESS);
    await settle();
    assert.equal(received.length, 0, 'remembered across the restart');
    assert.equal((await env.sim.sendCallback(url(), body('20260415_new.zip', 'new'))).status, 200);
    await until(() => received.length === 1);
    await settle();
    assert.equal(received.length, 1);
  });

  it('verifies a callback URL with a query string (the query is signed too)', async () => {
    await loaded();
    const r = await env.sim.sendCallback(`${url()}?tenant=a%20b&x=1`, body());
    assert.equal(r.status, 200);
    await until(() => received.length === 1);
    await settle();
    assert.equal(received.length, 1);
    const otherQuery = await env.sim.sendCallback(`${url()}?tenant=other&x=1`, null, { replay: r.sent });
    assert.equal(otherQuery.status, 401);
    await until(() => received.length === 1);
    await settle();
    assert.equal(received.length, 1);
  });

  it('checks the exact bytes even though the JSON parser of the editor app runs first (Node-RED default roots)', async () => {
    await loaded();
    // spaces, newlines and a \u escape: JSON.stringify(JSON.parse(text)) would not give these bytes back
    const text = '{\n  "request": {"version": "2\\u002e0"},\n  "msgBody": {"responseId": "p", "billFileName": "20260414_p.zip", "accountId": "tenant01"}\n}';
    const r = await env.sim.sendCallback(url(), text);
    assert.equal(r.status, 200, r.body);
    await until(() => received.length === 1);
    assert.equal(received[0].payload.version, '2.0');
    assert.equal(received[0].ccfs.bodyReserialised, undefined);
    assert.equal(received[0].ccfs.verified, true);
  });

  it('works without the editor app in front, and falls back to re-serialised JSON behind a foreign parser', async () => {
    setRouting('node-only');
    await loaded();
    assert.equal((await env.sim.sendCallback(url(), body('20260414_n.zip', 'n'))).status, 200);
    setRouting('foreign-parser');
    const compact = await env.sim.sendCallback(url(), body('20260414_q.zip', 'q'));
    assert.equal(compact.status, 200, 'a compact body re-serialises to the same bytes');
    await until(() => received.length === 2);
    assert.equal(received[1].ccfs.bodyReserialised, true);
    const pretty = await env.sim.sendCallback(url(), JSON.stringify(body('20260414_r.zip', 'r'), null, 2));
    assert.equal(pretty.status, 401, 'the bytes are gone: refused rather than trusted');
    await settle();
    assert.equal(received.length, 2);
  });

  it('removes its route on close and refuses a second node on the same path', async () => {
    await loaded();
    const red = env.red.RED;
    await supertest(red.httpNode).get('/ccfs/cb').expect(200);
    await helper.unload();
    await supertest(red.httpNode).post('/ccfs/cb').send('{}').expect(404);
  });

  it('refuses a body over the limit (413) and a malformed callback (400) without sending anything', async () => {
    await loaded({ maxBodyKb: 1 });
    const caught = collect(helper.getNode('caught'), 2);
    const big = await env.sim.sendCallback(url(), { request: { version: '2.0' }, msgBody: { billFileName: 'a.zip', pad: 'x'.repeat(2000) } });
    assert.equal(big.status, 413);
    const bad = await env.sim.sendCallback(url(), { request: { version: '2.0' }, msgBody: { billFileName: '../../etc/passwd' } });
    assert.equal(bad.status, 400);
    const errs = await caught;
    assert.match(errs[0].error.message, /limit/);
    assert.match(errs[1].error.message, /not a CC-FS file name/);
    assert.equal(received.length, 0);
  });

  it('downloads and parses the file: the rows of each call together, then the file summary, then 200', async () => {
    await loaded({ download: true });
    const zip = await buildZip([
      ['20260414091612123456_call_1.csv', csv([cdrRow({ call_id: 'A', call_id_num: '1' }), cdrRow({ call_id: 'B', call_id_num: '-1' }), cdrRow({ call_id: 'A', call_id_num: '-1', release_cause: '518' })])],
      ['20260414091612123456_record_1.csv', csv([recordRow({ call_id: 'A' })])],
    ]);
    env.sim.files.set('20260414_f.zip', zip);
    const rows: any[] = [];
    helper.getNode('rows').on('input', (m: any) => rows.push(m));
    const r = await env.sim.sendCallback(url(), body('20260414_f.zip', 'f'));
    assert.equal(r.status, 200);
    assert.deepEqual(rows.map((m) => [m.topic, m.ccfs.call_id]), [['ccfs/call', 'B'], ['ccfs/call', 'A'], ['ccfs/record', 'A']]);
    const a = rows[1];
    assert.deepEqual(a.payload.map((x: any) => x.call_id_num), [1, -1]);
    assert.equal(a.payload[1].release_cause, 518);
    assert.equal(a.payload[0].call_begin, '2026-04-14T12:15:40Z');
    assert.equal(a.ccfs.complete, true);
    assert.equal(rows[2].payload.file_name, '/10/1/record/100/13533/0903379.wav');
    await until(() => received.length === 1);
    await settle();
    assert.equal(received.length, 1);
    assert.equal(received[0].topic, 'ccfs/file');
    assert.equal(received[0].payload.summary.calls, 2);
    assert.equal(received[0].payload.summary.records, 1);
    assert.equal(received[0].payload.bytes, zip.length);
    const dl = env.sim.requests.find((q) => q.path.endsWith('/downloadBillFile'));
    assert.equal(dl?.status, 200, 'the download was signed with the account');
  });

  it('answers 503 and reports the error when the file cannot be downloaded; the retry delivers it', async () => {
    await loaded({ download: true });
    const caught = collect(helper.getNode('caught'), 1);
    const r = await env.sim.sendCallback(url(), body('20260414_late.zip', 'late'));
    assert.equal(r.status, 503);
    const [err] = await caught;
    assert.match(err.error.message, /0300011 \(the file does not exist/);
    assert.equal(received.length, 0);
    env.sim.files.set('20260414_late.zip', await buildZip([['x_call_1.csv', csv([cdrRow()])]]));
    // the very same signed request again (a sender that retries without signing anew) is accepted after a failure
    const retry = await env.sim.sendCallback(url(), null, { replay: r.sent });
    assert.equal(retry.status, 200);
    await until(() => received.length === 1);
    await settle();
    assert.equal(received.length, 1);
  });

  it('in log-only mode accepts an unsigned callback and says it was not verified', async () => {
    await loaded({ verify: 'log' });
    const node = helper.getNode('cb') as any;
    assert.ok(node.warn.getCalls().some((c: any) => /log-only mode/.test(String(c.args[0]))), 'one warning at deploy');
    assert.ok(statuses(node).some((t: string) => /\(open\)/.test(t)), statuses(node).join(', '));
    const r = await env.sim.sendCallback(url(), body(), { unsigned: true });
    assert.equal(r.status, 200);
    await until(() => received.length === 1);
    assert.equal(received[0].ccfs.verified, false);
  });
  describe('state across restarts and kills', () => {
    /** A callback signed anew (CC-FS signs every attempt), `s` seconds from now. */
    const later = (s: number) => ({ timestamp: new Date(Date.now() + s * 1000).toISOString() });

    it('a resend after a kill right after the 200 is answered 200 and not sent on: the answer waited for the disk', async () => {
      await loaded();
      const first = await env.sim.sendCallback(url(), body());
      assert.equal(first.status, 200);
      // the disk as it is the instant the 200 went out (what a SIGKILL would leave)
      await afterKill(env.userDir, async (frozen) => {
        await helper.unload();
        received.length = 0;
        await loaded({}, frozen);
        const again = await env.sim.sendCallback(url(), body(), later(1));
        assert.equal(again.status, 200);
        assert.deepEqual(JSON.parse(again.body), SUCCESS);
        assert.equal(sends, 0, 'not sent on again');
        // the signature answered 200 was on disk too: the very same request is a replay
        assert.equal((await env.sim.sendCallback(url(), null, { replay: first.sent })).status, 401);
        await settle();
        assert.equal(received.length, 0);
      });
    });

    const unusable: Record<string, string> = {
      'an unreadable state file': '{"version":2,"deliv',
      'a state of the wrong shape': '{"version":1}',
      'a state with a wrong type inside': '{"version":2,"delivered":[["20260414_a.zip","yes",1]],"signatures":[]}',
      'an empty state file': '',
    };
    for (const [what, content] of Object.entries(unusable)) {
      it(`${what}: the node starts, warns naming both files, and takes callbacks`, async () => {
        const file = writeState(env.userDir, 'ccfs-callback-in', 'cb', content);
        await loaded();
        assert.equal((await env.sim.sendCallback(url(), body())).status, 200);
        await until(() => received.length === 1);
        assertMovedAside(helper.getNode('cb'), file, content);
        assert.equal((await env.sim.sendCallback(url(), body(), later(1))).status, 200);
        await settle();
        assert.equal(received.length, 1, 'and remembers what it delivered from then on');
      });
    }

    it('reads the state earlier versions saved', async () => {
      writeState(env.userDir, 'ccfs-callback-in', 'cb', JSON.stringify({ version: 1, delivered: [[body().msgBody.billFileName, Date.now() - 60_000]], signatures: [] }));
      await loaded();
      assert.equal((await env.sim.sendCallback(url(), body())).status, 200);
      await settle();
      assert.equal(received.length, 0, 'delivered before the upgrade');
      assert.deepEqual((helper.getNode('cb') as any).warn.getCalls().map((c: any) => String(c.args[0])), []);
    });
  });

  describe('an account that cannot be used', () => {
    for (const [what, cb, acc, credentials, reason] of [
      ['no account chosen', { account: '' }, {}, creds.acc, /no CC-FS account is configured for this node: the callback cannot be verified/],
      ['an account without SK', {}, {}, { accessKey: AK }, /SK \(secret key\) is missing in the CC-FS account/],
      ['a CA file that cannot be read', {}, { ca: '/nonexistent/ccfs-ca.pem' }, creds.acc, /CA certificate file of the CC-FS account cannot be read/],
    ] as Array<[string, Record<string, unknown>, Record<string, unknown>, Record<string, string>, RegExp]>) {
      it(`${what}: red status, the reason at deploy, and every callback answered 503 with the reason for Catch`, async () => {
        await env.load(flow(env, cb, acc), { acc: credentials });
        helper.getNode('file').on('input', (m: any) => received.push(m));
        const node = helper.getNode('cb') as any;
        assert.ok(statuses(node).includes('account not usable'), statuses(node).join(', '));
        assert.ok(node.warn.getCalls().some((c: any) => reason.test(String(c.args[0]))));
        const caught = collect(helper.getNode('caught'), 2);
        for (const b of [body(), body('20260414_b.zip', 'b')]) {
          const r = await env.sim.sendCallback(url(), b);
          assert.equal(r.status, 503);
          assert.equal(JSON.parse(r.body).resultCode, '503');
        }
        for (const e of await caught) assert.match(e.error.message, reason);
        await settle();
        assert.equal(received.length, 0);
      });
    }
  });
});

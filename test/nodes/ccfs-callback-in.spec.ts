import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import supertest from 'supertest';
import { helper, collect, settle } from '../helpers/red';
import { start, closeServer, account, creds, until, setRouting, statuses, warnings, writeState, assertMovedAside, afterKill, AK, type Env } from './ccfs-env';
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
  const rows: any[] = [];
  const downloads = () => env.sim.requests.filter((q) => q.path.endsWith('/downloadBillFile'));
  /** The node's state as it is on disk now: the snapshot and the journal after it. */
  const onDisk = (dir = env.userDir) => {
    const file = path.join(dir, 'cdrflow-state', 'ccfs-callback-in-cb.json');
    const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
    return { snapshot: read(file) ? JSON.parse(read(file)) : null, journal: read(`${file}.log`).split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
  };

  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
  beforeEach(async () => {
    env = await start({ autoCallback: false });
    received.length = 0;
    rows.length = 0;
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
    helper.getNode('rows').on('input', (m: any) => rows.push(m));
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

  it('a client that sends the whole body, twice the limit, before reading the answer still gets the 413', async () => {
    await loaded({ maxBodyKb: 16 });
    const caught = collect(helper.getNode('caught'), 4);
    // through the capture at Node-RED's server, and through the route's own reading (httpNode alone)
    for (const routing of ['admin-first', 'node-only'] as const) {
      setRouting(routing);
      const { hostname, port } = new URL(env.base);
      for (const chunked of [false, true]) {
        const payload = Buffer.alloc(2 * 16 * 1024, 0x61);
        const framing = chunked ? `Transfer-Encoding: chunked\r\n\r\n${payload.length.toString(16)}\r\n` : `Content-Length: ${payload.length}\r\n\r\n`;
        const wire = Buffer.concat([Buffer.from(`POST /ccfs/cb HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n${framing}`), payload, Buffer.from(chunked ? '\r\n0\r\n\r\n' : '')]);
        const reply = await new Promise<string>((resolve) => {
          let text = '';
          const socket = net.connect(Number(port), hostname, () => socket.end(wire)); // all of it, then read
          socket.on('data', (d) => { text += d.toString('latin1'); });
          socket.on('error', (err: NodeJS.ErrnoException) => resolve(`${text}[${err.code}]`));
          socket.on('close', () => resolve(text));
        });
        assert.match(reply, /^HTTP\/1\.1 413 /, `${routing}, ${chunked ? 'chunked' : 'declared'}: ${reply.slice(0, 60)}`);
      }
    }
    for (const m of await caught) assert.match(m.error.message, /body over the 16,384 byte limit/);
    assert.equal(received.length, 0);
  });

  it('downloads and parses the file after the 200: the rows of each call together, then the file summary', async () => {
    await loaded({ download: true });
    const zip = await buildZip([
      ['20260414091612123456_call_1.csv', csv([cdrRow({ call_id: 'A', call_id_num: '1' }), cdrRow({ call_id: 'B', call_id_num: '-1' }), cdrRow({ call_id: 'A', call_id_num: '-1', release_cause: '518' })])],
      ['20260414091612123456_record_1.csv', csv([recordRow({ call_id: 'A' })])],
    ]);
    env.sim.files.set('20260414_f.zip', zip);
    const r = await env.sim.sendCallback(url(), body('20260414_f.zip', 'f'));
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), SUCCESS);
    await until(() => received.length === 1);
    assert.deepEqual(rows.map((m) => [m.topic, m.ccfs.call_id]), [['ccfs/call', 'B'], ['ccfs/call', 'A'], ['ccfs/record', 'A']], 'the rows came before the summary');
    const a = rows[1];
    assert.deepEqual(a.payload.map((x: any) => x.call_id_num), [1, -1]);
    assert.equal(a.payload[1].release_cause, 518);
    assert.equal(a.payload[0].call_begin, '2026-04-14T12:15:40Z');
    assert.equal(a.ccfs.complete, true);
    assert.deepEqual([a.ccfs.attempt, a.ccfs.resumed, a.ccfs.verified], [1, false, true]);
    assert.equal(rows[2].payload.file_name, '/10/1/record/100/13533/0903379.wav');
    await settle();
    assert.equal(received.length, 1);
    assert.equal(received[0].topic, 'ccfs/file');
    assert.equal(received[0].payload.summary.calls, 2);
    assert.equal(received[0].payload.summary.records, 1);
    assert.equal(received[0].payload.bytes, zip.length);
    const dl = env.sim.requests.find((q) => q.path.endsWith('/downloadBillFile'));
    assert.equal(dl?.status, 200, 'the download was signed with the account');
  });

  it('a file that is not there yet is tried again by the node itself, with backoff, and delivered once', async () => {
    await loaded({ download: true, retries: 3, retryDelay: 0.02 });
    const node = helper.getNode('cb') as any;
    env.sim.downloadQueue.push({ code: '0300011', desc: 'file does not exist' }, { code: '0300011', desc: 'file does not exist' });
    env.sim.files.set('20260414_late.zip', await buildZip([['x_call_1.csv', csv([cdrRow()])]]));
    const r = await env.sim.sendCallback(url(), body('20260414_late.zip', 'late'));
    assert.equal(r.status, 200, 'answered at once: the node retries, not CC-FS');
    await until(() => received.length === 1);
    assert.equal(received[0].ccfs.attempt, 3);
    assert.deepEqual(env.sim.requests.filter((q) => q.path.endsWith('/downloadBillFile')).map((q) => q.status), [200, 200, 200]);
    assert.ok(warnings(node).some((w) => /20260414_late\.zip: attempt 1 failed \(downloadBillFile: CC-FS result 0300011/.test(w)), warnings(node).join('\n'));
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
  describe('background jobs (download)', () => {
    const later = (s: number) => ({ timestamp: new Date(Date.now() + s * 1000).toISOString() });
    const fileA = '20260414_aaaa.zip';
    const fileB = '20260414_bbbb.zip';
    beforeEach(async () => {
      env.sim.files.set(fileA, await buildZip([['a_call_1.csv', csv([cdrRow({ call_id: 'A1' }), cdrRow({ call_id: 'A2' })])], ['a_record_1.csv', csv([recordRow({ call_id: 'A1' })])]]));
      env.sim.files.set(fileB, await buildZip([['b_call_1.csv', csv([cdrRow({ call_id: 'B1' })])]]));
    });

    it('answers 200 once the job is on disk, while the file is still downloading; the same file called back meanwhile or after is not handled again', async () => {
      await loaded({ download: true });
      const node = helper.getNode('cb') as any;
      env.sim.holdDownloads(); // a file so large that sending it outlasts CC-FS's callback timeout
      // CC-FS's way: an attempt not answered within its timeout is abandoned and made again later
      const attempts = await env.sim.callBack(url(), body(fileA, 'aaaa'), { timeoutMs: 2000, retryMs: 50, retries: 3 });
      assert.deepEqual(attempts.map((a) => [a.status, a.timedOut ?? false]), [[200, false]], 'the first attempt was answered, in time');
      const job = onDisk().journal.find((e) => e.j?.file === fileA);
      assert.equal(job?.j.state, 'pending', 'journaled before the answer');
      await until(() => downloads().length === 1 && downloads()[0].outcome === 'held');
      // meanwhile: CC-FS calls again for the same file, and another file comes
      assert.equal((await env.sim.sendCallback(url(), body(fileA, 'aaaa'), later(1))).status, 200);
      assert.equal((await env.sim.sendCallback(url(), body(fileB, 'bbbb'), later(2))).status, 200);
      await until(() => statuses(node).includes('downloading (+1 pending)'), 3000);
      assert.equal(downloads().length, 1, 'one at a time');
      env.sim.release();
      await until(() => received.length === 2);
      await settle();
      assert.deepEqual(received.map((m) => m.payload.billFileName), [fileA, fileB]);
      assert.deepEqual(rows.map((m) => m.ccfs.call_id), ['A1', 'A2', 'A1', 'B1'], 'each row once');
      assert.deepEqual(downloads().map((q) => q.status), [200, 200]);
      // after: a late retry of CC-FS
      assert.equal((await env.sim.sendCallback(url(), body(fileA, 'aaaa'), later(3))).status, 200);
      await settle();
      assert.equal(downloads().length, 2);
      assert.equal(received.length, 2);
      await until(() => /· 2 \(\+2 dup\)$/.test(statuses(node).at(-1) ?? ''), 3000);
    });

    it('a job cut off by a kill is resumed at the next start and done there once (its rows again from the start)', async () => {
      await loaded({ download: true });
      env.sim.holdDownloads();
      const r = await env.sim.sendCallback(url(), body(fileA, 'aaaa'), { timeoutMs: 2000 });
      assert.equal(r.status, 200);
      await until(() => downloads().length === 1);
      // the disk as it is now, with the job running (what a SIGKILL would leave)
      await afterKill(env.userDir, async (frozen) => {
        await helper.unload();
        env.sim.release();
        received.length = 0;
        rows.length = 0;
        await loaded({ download: true }, frozen);
        await until(() => received.length === 1);
        assert.equal(received[0].ccfs.resumed, true, 'says it was resumed: rows of a partly sent file may have come before');
        assert.deepEqual(rows.map((m) => [m.ccfs.call_id, m.ccfs.resumed]), [['A1', true], ['A2', true], ['A1', true]]);
        assert.equal((await env.sim.sendCallback(url(), body(fileA, 'aaaa'), later(1))).status, 200);
        await settle();
        assert.equal(received.length, 1);
        assert.equal(rows.length, 3);
        assert.deepEqual(downloads().map((q) => q.status), [0, 200], 'the held one was cut off (never answered), the resumed one done');
      });
    });

    it('a job that finally fails goes to Catch with the file and the reason, and its state says failed', async () => {
      await loaded({ download: true, retries: 2, retryDelay: 0.01 });
      const node = helper.getNode('cb') as any;
      // not worth another attempt: given up at once
      env.sim.downloadQueue.push({ code: '0300018', desc: 'no permission' });
      const caught1 = collect(helper.getNode('caught'), 1);
      assert.equal((await env.sim.sendCallback(url(), body(fileA, 'aaaa'))).status, 200);
      const [other] = await caught1;
      assert.match(other.error.message, /20260414_aaaa\.zip not delivered after 1 attempt\(s\), given up \(ask for the file again with ccfs-bill-request\): downloadBillFile: CC-FS result 0300018/);
      // worth retrying, but never there
      const gone = '20260414_gone.zip';
      const caught2 = collect(helper.getNode('caught'), 1);
      assert.equal((await env.sim.sendCallback(url(), body(gone, 'gone'))).status, 200);
      const [e] = await caught2;
      assert.match(e.error.message, /20260414_gone\.zip not delivered after 3 attempt\(s\), given up \(ask for the file again with ccfs-bill-request\): downloadBillFile: CC-FS result 0300011/);
      assert.deepEqual(e.payload, { billFileName: gone, responseId: 'gone', accountId: 'tenant01', state: 'failed', attempts: 3, error: '0300011: the file does not exist (yet?)' });
      assert.equal(e.error.source.id, 'cb');
      assert.equal(downloads().length, 4);
      await until(() => /^failed: 0300011/.test(statuses(node).at(-1) ?? ''), 3000).catch(() => assert.fail(statuses(node).join(' | ')));
      assert.equal(received.length, 0);
      await helper.unload();
      const saved = new Map((onDisk().snapshot.jobs as any[]).map((x) => [x[0], x[1]]));
      assert.deepEqual([saved.get(gone).state, saved.get(gone).attempts], ['failed', 3]);
      assert.match(saved.get(gone).error, /0300011/);
      assert.equal(saved.get(fileA).state, 'failed');
      // not tried again at the next start, nor for a late callback: the user asks for the file again
      await loaded({ download: true, retries: 2, retryDelay: 0.01 });
      assert.equal((await env.sim.sendCallback(url(), body(gone, 'gone'), later(1))).status, 200);
      await settle(100);
      assert.equal(downloads().length, 4);
    });
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
    for (const [what, cb, acc, credentials, reason, unset] of [
      ['no account chosen', { account: '' }, {}, creds.acc, /no CC-FS account is configured for this node: the callback cannot be verified/, true],
      ['an account without SK', {}, {}, { accessKey: AK }, /SK \(secret key\) is missing in the CC-FS account/, true],
      ['a CA file that cannot be read', {}, { ca: '/nonexistent/ccfs-ca.pem' }, creds.acc, /CA certificate file of the CC-FS account cannot be read/, false],
    ] as Array<[string, Record<string, unknown>, Record<string, unknown>, Record<string, string>, RegExp, boolean]>) {
      it(`${what}: ${unset ? 'yellow "not configured", the reason at deploy at info level' : 'red status, the reason at deploy'}, and every callback answered 503 with the reason for Catch`, async () => {
        await env.load(flow(env, cb, acc), { acc: credentials });
        helper.getNode('file').on('input', (m: any) => received.push(m));
        const node = helper.getNode('cb') as any;
        await settle(100); // the state loaded: the status still says what is wrong
        assert.deepEqual(node.status.lastCall.args[0], unset ? { fill: 'yellow', shape: 'ring', text: 'not configured' } : { fill: 'red', shape: 'ring', text: 'account not usable' });
        assert.ok(node[unset ? 'log' : 'warn'].getCalls().some((c: any) => reason.test(String(c.args[0]))));
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

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, collect, settle } from '../helpers/red';
import { start, closeServer, account, creds, until, warnings, statuses, writeState, assertMovedAside, afterKill, type Env } from './ccfs-env';
import { selfSignedCert } from '../simulators/ccfs-server';

describe('ccfs-account node', function () {
  let env: Env;
  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
  afterEach(async () => env.stop());

  const flow = (e: Env, extra: Record<string, unknown> = {}, req: Record<string, unknown> = {}) => [
    { id: 't1', type: 'tab' },
    account(e.sim, extra),
    { id: 'req', type: 'ccfs-bill-request', z: 't1', account: 'acc', dataType: 'call', period: 'yesterday', callBackURL: 'https://nr.example/ccfs/cb', wires: [['out']], ...req },
    { id: 'cb', type: 'ccfs-callback-in', z: 't1', account: 'acc', path: '/ccfs/cb', wires: [['file'], []] },
    { id: 'out', type: 'helper', z: 't1' },
    { id: 'file', type: 'helper', z: 't1' },
    { id: 'c', type: 'catch', z: 't1', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 't1' },
  ];
  /** The callback CC-FS sends for a request this node made. */
  const callbackFor = (m: any) => ({ request: { version: '2.0' }, msgBody: { responseId: m.payload.responseId, billFileName: m.payload.billFileName, accountId: '' } });

  it('keeps AK/SK as credentials and never puts them in messages', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env), { acc: { accessKey: 'globalaktest', secretKey: 'test-sk-0123456789abcdef' } });
    const out = collect(helper.getNode('out'), 1);
    helper.getNode('req').receive({ payload: null });
    const [m] = await out;
    const text = JSON.stringify(m);
    assert.doesNotMatch(text, /test-sk-0123456789abcdef/);
    assert.equal(env.sim.requests[0].status, 200);
  });

  it('says what is missing, and warns when TLS verification is turned off', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env, { tlsVerify: false }), { acc: { accessKey: 'globalaktest' } });
    const acc = helper.getNode('acc') as any;
    await until(() => acc.warn.called);
    assert.match(String(acc.warn.firstCall.args[0]), /TLS certificate verification is OFF/);
    const req = helper.getNode('req') as any;
    // an SK not entered yet: not configured (yellow), not an error
    assert.deepEqual(req.status.firstCall.args[0], { fill: 'yellow', shape: 'ring', text: 'not configured' });
    const caught = collect(helper.getNode('caught'), 1);
    req.receive({ payload: null });
    const [e] = await caught;
    assert.match(e.error.message, /SK \(secret key\) is missing/);
    assert.equal(env.sim.requests.length, 0);
  });

  describe('reports a configuration that cannot work with its reason: red status (yellow "not configured" for what is not entered yet), the reason in the log at deploy, and on every message for Catch', () => {
    for (const [what, extra, credentials, reason, unset] of [
      ['no account chosen', null, creds.acc, /no CC-FS account is configured for this node/, true],
      ['an account that does not exist', { account: 'gone' }, creds.acc, /no CC-FS account is configured for this node/, false],
      ['no AK', {}, { secretKey: creds.acc.secretKey }, /AK \(access key\) is missing in the CC-FS account/, true],
      ['no SK', {}, { accessKey: creds.acc.accessKey }, /SK \(secret key\) is missing in the CC-FS account/, true],
      ['a zone that is not an IANA name', { timeZone: 'Mars/Olympus_Mons' }, creds.acc, /"Mars\/Olympus_Mons" \(time zone of the CC-FS account\) is not an IANA time zone/, false],
      ['a base URL without a scheme', { baseUrl: 'ccfs.example.com' }, creds.acc, /base URL "ccfs\.example\.com" of the CC-FS account/, false],
      ['a CA file that cannot be read', { ca: '/nonexistent/ccfs-ca.pem' }, creds.acc, /CA certificate file of the CC-FS account cannot be read: \/nonexistent\/ccfs-ca\.pem: ENOENT/, false],
    ] as Array<[string, Record<string, unknown> | null, Record<string, string>, RegExp, boolean]>) {
      it(what, async () => {
        env = await start({ autoCallback: false });
        const accountProps = extra && !('account' in extra) ? extra : {};
        const req = extra === null ? { account: '' } : 'account' in extra ? { account: extra.account } : {};
        await env.load(flow(env, accountProps, req), { acc: credentials });
        const node = helper.getNode('req') as any;
        assert.ok(statuses(node).includes(unset ? 'not configured' : 'account not usable'), statuses(node).join(', '));
        const atDeploy = node[unset ? 'log' : 'warn'].getCalls().map((c: any) => String(c.args[0]));
        assert.ok(atDeploy.some((e: string) => reason.test(e)), atDeploy.join('\n'));
        const caught = collect(helper.getNode('caught'), 2);
        node.receive({ payload: null });
        node.receive({ payload: null });
        for (const e of await caught) assert.match(e.error.message, reason);
        assert.equal(env.sim.requests.length, 0, 'nothing sent to CC-FS');
      });
    }
  });

  describe('TLS', () => {
    let pem: { key: string; cert: string } | null = null;
    let dir = '';
    before(function () {
      pem = selfSignedCert();
      if (!pem) this.skip(); // no openssl here
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfs-ca-'));
      fs.writeFileSync(path.join(dir, 'ca.pem'), pem!.cert);
    });
    after(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      delete process.env.CCFS_TEST_CA_FILE;
    });

    it('verifies by default; honours verifyTls, the older tlsVerify, and a CA given as PEM text, a file path or ${ENV}', async () => {
      env = await start({ autoCallback: false, tls: pem! });
      process.env.CCFS_TEST_CA_FILE = path.join(dir, 'ca.pem');
      const cases: Array<[string, Record<string, unknown>, boolean]> = [
        ['default', {}, false],
        ['an older flow with tlsVerify: false', { tlsVerify: false }, true],
        ['an older flow with tlsVerify: "false"', { tlsVerify: 'false' }, true],
        ['verifyTls: false', { verifyTls: false }, true],
        ['verifyTls wins over tlsVerify', { verifyTls: true, tlsVerify: false }, false],
        ['the CA as PEM text', { ca: pem!.cert }, true],
        ['the CA as a file path', { ca: path.join(dir, 'ca.pem') }, true],
        ['the CA file path in ${ENV}', { ca: '${CCFS_TEST_CA_FILE}' }, true],
      ];
      for (const [what, extra, works] of cases) {
        const before = env.sim.requests.length;
        await env.load(flow(env, extra), creds);
        const acc = helper.getNode('acc') as any;
        const off = extra.verifyTls === false || (extra.verifyTls === undefined && [false, 'false'].includes(extra.tlsVerify as any));
        assert.equal(warnings(acc).some((w) => /TLS certificate verification is OFF/.test(w)), off, `${what}: warned`);
        const out = collect(helper.getNode(works ? 'out' : 'caught'), 1);
        helper.getNode('req').receive({ payload: null });
        const [m] = await out;
        if (works) {
          assert.match(m.payload.responseId, /^[0-9a-f]{32}$/, what);
          assert.equal(env.sim.requests.length, before + 1, what);
        } else {
          assert.match(`${m.error.message}`, /certificate/i, what);
          assert.equal(env.sim.requests.length, before, `${what}: nothing sent to an unverified server`);
        }
        await helper.unload();
      }
    });
  });

  describe('remembered requests', () => {
    it('a request is on disk before its message goes on: after a kill right then, the callback still names it', async () => {
      env = await start({ autoCallback: false });
      await env.load(flow(env), creds);
      const out = collect(helper.getNode('out'), 1);
      helper.getNode('req').receive({ payload: null });
      const [m] = await out;
      await afterKill(env.userDir, async (frozen) => {
        await helper.unload();
        await env.load(flow(env), creds, frozen);
        const file = collect(helper.getNode('file'), 1);
        assert.equal((await env.sim.sendCallback(`${env.base}/ccfs/cb`, callbackFor(m))).status, 200);
        const [f] = await file;
        assert.equal(f.ccfs.requestNode, 'req');
        assert.equal(f.ccfs.request.correlation, m._msgid);
      });
    });

    const unusable: Record<string, string> = {
      'an unreadable saved list': '{"version":2,"requ',
      'a saved list of the wrong shape': '{"version":1}',
      'a saved list with a request that is not one': '{"version":2,"requests":[["a1",{"responseId":"a1"},1]]}',
    };
    for (const [what, content] of Object.entries(unusable)) {
      it(`${what}: the account starts, warns naming both files, and goes on remembering`, async () => {
        env = await start({ autoCallback: false });
        const file = writeState(env.userDir, 'ccfs-account', 'acc', content);
        await env.load(flow(env), creds);
        const out = collect(helper.getNode('out'), 1);
        helper.getNode('req').receive({ payload: null });
        const [m] = await out;
        assertMovedAside(helper.getNode('acc'), file, content);
        await helper.unload();
        await env.load(flow(env), creds);
        const got = collect(helper.getNode('file'), 1);
        assert.equal((await env.sim.sendCallback(`${env.base}/ccfs/cb`, callbackFor(m))).status, 200);
        assert.equal((await got)[0].ccfs.requestNode, 'req', 'remembered across the restart');
        await settle();
      });
    }

    it('reads the list earlier versions saved', async () => {
      env = await start({ autoCallback: false });
      const responseId = '0123456789abcdef0123456789abcdef';
      const old = [{ responseId, billFileName: `20260414_${responseId}.zip`, requestedAt: new Date().toISOString(), node: 'req', msgBody: { agentId: '1001' }, part: 1, parts: 1 }];
      writeState(env.userDir, 'ccfs-account', 'acc', JSON.stringify(old));
      await env.load(flow(env), creds);
      const got = collect(helper.getNode('file'), 1);
      assert.equal((await env.sim.sendCallback(`${env.base}/ccfs/cb`, callbackFor({ payload: old[0] }))).status, 200);
      const [f] = await got;
      assert.equal(f.ccfs.request.msgBody.agentId, '1001');
      assert.deepEqual(warnings(helper.getNode('acc')), []);
    });
  });
});

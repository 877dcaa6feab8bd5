import { strict as assert } from 'node:assert';
import { helper, collect } from '../helpers/red';
import { start, closeServer, account, until, type Env } from './ccfs-env';

describe('ccfs-account node', function () {
  let env: Env;
  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
  afterEach(async () => env.stop());

  const flow = (e: Env, extra: Record<string, unknown> = {}) => [
    { id: 't1', type: 'tab' },
    account(e.sim, extra),
    { id: 'req', type: 'ccfs-bill-request', z: 't1', account: 'acc', dataType: 'call', period: 'yesterday', callBackURL: 'https://nr.example/ccfs/cb', wires: [['out']] },
    { id: 'out', type: 'helper', z: 't1' },
    { id: 'c', type: 'catch', z: 't1', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 't1' },
  ];

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
    assert.match(JSON.stringify(req.status.firstCall.args[0]), /account incomplete/);
    const caught = collect(helper.getNode('caught'), 1);
    req.receive({ payload: null });
    const [e] = await caught;
    assert.match(e.error.message, /SK \(secret key\) is missing/);
    assert.equal(env.sim.requests.length, 0);
  });
});

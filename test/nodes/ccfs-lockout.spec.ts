/**
 * The account-wide signing lock-out (specs/ccfs.md §0.5): after a 401 or 403 from CC-FS no node of the
 * account signs again until the account is deployed with another configuration, also across restarts.
 * The simulator locks the address after 5 refusals in a row, as CC-FS does.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, collect, settle } from '../helpers/red';
import { start, useServers, account, until, statuses, AK, SK, type Env } from './ccfs-env';
import { buildZip, csv, cdrRow } from '../simulators/ccfs-server';
import { formatLocal } from '../../src/common/time';

const yesterday = () => formatLocal(Date.now() - 86_400_000, 'America/Sao_Paulo', 'sql').slice(0, 10);
const window = () => ({ beginTime: `${yesterday()} 00:00:00`, endTime: `${yesterday()} 01:00:00` });
const cbBody = (file: string) => ({ request: { version: '2.0' }, msgBody: { responseId: file.slice(9, -4), billFileName: file, accountId: '' } });

/** Two bill-request nodes and a downloading callback receiver on one account, with a Catch for all of them. */
function flow(env: Env, acc: Record<string, unknown> = {}, cb: Record<string, unknown> = {}) {
  const request = (id: string) => ({ id, type: 'ccfs-bill-request', z: 't1', account: 'acc', dataType: 'call', callBackURL: `${env.base}/ccfs/cb`, wires: [['out']] });
  return [
    { id: 't1', type: 'tab' },
    account(env.sim, acc),
    request('req'),
    request('req2'),
    { id: 'cb', type: 'ccfs-callback-in', z: 't1', account: 'acc', path: '/ccfs/cb', download: true, retryDelay: 0.01, wires: [['file'], ['rows']], ...cb },
    { id: 'c', type: 'catch', z: 't1', scope: null, uncaught: false, wires: [['caught']] },
    ...['out', 'file', 'rows', 'caught'].map((id) => ({ id, type: 'helper', z: 't1' })),
  ];
}

describe('CC-FS signing lock-out (account-wide)', function () {
  let env: Env;
  useServers();
  afterEach(async () => env.stop());

  const signed = () => env.sim.requests.filter((q) => q.path.startsWith('/CCFS/'));
  const errorsOf = (id: string) => {
    const node = helper.getNode(id) as any;
    return node.error.getCalls().filter((c: any) => c.thisValue === node).map((c: any) => String(c.args[0]));
  };
  const lockedStatus = (id: string) => statuses(helper.getNode(id)).some((t) => /^account refused \(40[13]\): not signing$/.test(t));
  const WHAT_TO_CHECK = /AK and SK, the signed header set .* the Host header .* clock/;

  for (const [what, simOpts, acc, secretKey, cb] of [
    ['a wrong SK, callbacks accepted in "log only" mode', {}, {}, 'wrong-secret', { verify: 'log' }],
    ['the right keys, but the tenant wants content-length and content-type signed too', { requiredSignedHeaders: ['content-length', 'content-type', 'host'] }, { signedHeaders: 'host' }, SK, {}],
  ] as Array<[string, Record<string, unknown>, Record<string, unknown>, string, Record<string, unknown>]>) {
    it(`${what}: the first download refused, CC-FS's callbacks answered 200 and no second signature sent, the IP never locked`, async () => {
      // CC-FS calls again shortly when a callback fails (here: every 30 ms, up to 6 times)
      env = await start({ autoCallback: false, callbackRetryMs: 30, callbackRetries: 6, ...simOpts });
      await env.load(flow(env, acc, cb), { acc: { accessKey: AK, secretKey } });
      for (const f of ['20260414_a1.zip', '20260414_b2.zip']) env.sim.files.set(f, await buildZip([['x_call_1.csv', csv([cdrRow()])]]));
      const caught = collect(helper.getNode('caught'), 3, 10_000);
      const first = await env.sim.callBack(`${env.base}/ccfs/cb`, cbBody('20260414_a1.zip'));
      const second = await env.sim.callBack(`${env.base}/ccfs/cb`, cbBody('20260414_b2.zip'));
      helper.getNode('req').receive({ payload: window() });
      const errors = await caught;
      await env.sim.idle();
      await settle();
      assert.deepEqual(signed().map((q) => [q.path.split('/').pop(), q.status]), [['downloadBillFile', 401]], 'one refused request, nothing signed after it');
      assert.equal(env.sim.isLocked(), false);
      assert.deepEqual([...first, ...second].map((a) => a.status), [200, 200], 'each callback answered at once');
      // one clear error naming what to check, from the account
      const said = errorsOf('acc');
      assert.equal(said.length, 1, said.join('\n'));
      assert.match(said[0], /refused this account's signature \(HTTP 401 on downloadBillFile at .*\)/);
      assert.match(said[0], WHAT_TO_CHECK);
      // a catchable error for each refused callback and message
      assert.deepEqual(errors.map((m) => m.error.source.id).sort(), ['cb', 'cb', 'req']);
      for (const m of errors) assert.match(m.error.message, /refused (this account's|the) signature/);
      assert.ok(errors.some((m) => /^20260414_b2\.zip not downloaded \(the job is kept.*\): CC-FS refused/.test(m.error.message)));
      assert.ok(errors.some((m) => /not sent: CC-FS refused/.test(m.error.message)));
      await until(() => lockedStatus('cb') && lockedStatus('req') && lockedStatus('req2'), 3000);
    });
  }

  it('a node sending each message again (an hourly inject) signs once: later messages fail without being sent', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env), { acc: { accessKey: AK, secretKey: 'wrong-secret' } });
    const caught = collect(helper.getNode('caught'), 6);
    for (let i = 0; i < 6; i++) helper.getNode('req').receive({ payload: window() });
    const errors = await caught;
    assert.deepEqual(signed().map((q) => q.status), [401]);
    assert.equal(env.sim.isLocked(), false);
    assert.match(errors[0].error.message, /HTTP 401/);
    for (const m of errors.slice(1)) assert.match(m.error.message, /not sent: CC-FS refused this account's signature \(HTTP 401 on queryBillData/);
  });

  it('two nodes of one account asking at the same instant: still one refused signature', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env), { acc: { accessKey: AK, secretKey: 'wrong-secret' } });
    const caught = collect(helper.getNode('caught'), 2);
    helper.getNode('req').receive({ payload: window() });
    helper.getNode('req2').receive({ payload: window() });
    await caught;
    assert.deepEqual(signed().map((q) => q.status), [401]);
  });

  it('a 403 (the IP already locked) stops the account the same way, saying an operator must unlock it', async () => {
    env = await start({ autoCallback: false });
    env.sim.queryQueue.push({ http: 403 });
    await env.load(flow(env), { acc: { accessKey: AK, secretKey: SK } });
    const caught = collect(helper.getNode('caught'), 2);
    helper.getNode('req').receive({ payload: window() });
    helper.getNode('req').receive({ payload: window() });
    const [, second] = await caught;
    assert.match(second.error.message, /not sent: CC-FS answered 403 on queryBillData .* locked this IP address .* An operator must unlock/);
    assert.equal(signed().length, 1);
  });

  it('is kept across a restart without the keys, honoured while the configuration is the same, and cleared by a changed one (pending downloads then resume)', async () => {
    env = await start({ autoCallback: false });
    const wrong = { acc: { accessKey: AK, secretKey: 'wrong-secret' } };
    await env.load(flow(env, {}, { verify: 'log' }), wrong);
    env.sim.files.set('20260414_a1.zip', await buildZip([['x_call_1.csv', csv([cdrRow({ call_id: 'K1' })])]]));
    const first = collect(helper.getNode('caught'), 2);
    helper.getNode('req').receive({ payload: window() });
    assert.equal((await env.sim.sendCallback(`${env.base}/ccfs/cb`, cbBody('20260414_a1.zip'))).status, 200);
    await first;
    assert.equal(signed().length, 1);
    await helper.unload();
    // what is kept: when, why, and a salted hash of the configuration; never the keys
    const dir = path.join(env.userDir, 'cdrflow-state');
    const kept = fs.readdirSync(dir).filter((f) => f.startsWith('ccfs-account-acc.json')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
    for (const secret of [AK, 'wrong-secret']) assert.ok(!kept.includes(secret), `${secret} is not in the state`);
    const snapshot = JSON.parse(fs.readFileSync(path.join(dir, 'ccfs-account-acc.json'), 'utf8'));
    assert.deepEqual([snapshot.lockout.status, snapshot.lockout.operation], [401, 'queryBillData']);
    assert.match(snapshot.lockout.fingerprint, /^[0-9a-f]{64}$/);

    // restart, same configuration: red at once, one error saying why, and nothing signed
    await env.load(flow(env, {}, { verify: 'log' }), wrong);
    const again = collect(helper.getNode('caught'), 2);
    helper.getNode('req').receive({ payload: window() });
    const errors = await again; // the message, and the pending download resumed at start
    assert.deepEqual(errors.map((m) => m.error.source.id).sort(), ['cb', 'req']);
    await until(() => lockedStatus('req') && lockedStatus('req2') && lockedStatus('cb'), 3000);
    const said = errorsOf('acc');
    assert.equal(said.length, 1);
    assert.match(said[0], /^still locked out from an earlier run .*: CC-FS refused this account's signature \(HTTP 401 on queryBillData/);
    assert.equal(signed().length, 1, 'nothing signed after the restart');
    await helper.unload();

    // the account deployed with the right SK: signs again; the download that waited is done
    await env.load(flow(env, {}, { verify: 'log' }), { acc: { accessKey: AK, secretKey: SK } });
    const file = collect(helper.getNode('file'), 1);
    const out = collect(helper.getNode('out'), 1);
    helper.getNode('req').receive({ payload: window() });
    const [done] = await file;
    assert.equal(done.payload.billFileName, '20260414_a1.zip');
    assert.equal(done.ccfs.resumed, true);
    await out;
    assert.deepEqual(signed().map((q) => q.status), [401, 200, 200]);
    assert.deepEqual(errorsOf('acc'), []);
    await helper.unload();
    const cleared = JSON.parse(fs.readFileSync(path.join(dir, 'ccfs-account-acc.json'), 'utf8'));
    assert.equal(cleared.lockout, undefined);
  });
});

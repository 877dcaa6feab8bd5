import { strict as assert } from 'node:assert';
import { helper, collect, settle } from '../helpers/red';
import { start, closeServer, account, creds, until, ZONE, type Env } from './ccfs-env';
import { formatLocal } from '../../src/common/time';

function flow(env: Env, req: Record<string, unknown> = {}, cb: Record<string, unknown> = {}) {
  return [
    { id: 't1', type: 'tab' },
    account(env.sim),
    { id: 'req', type: 'ccfs-bill-request', z: 't1', account: 'acc', dataType: 'call_record', callBackURL: `${env.base}/ccfs/cb`, wires: [['out']], ...req },
    { id: 'cb', type: 'ccfs-callback-in', z: 't1', account: 'acc', path: '/ccfs/cb', download: true, wires: [['file'], ['rows']], ...cb },
    { id: 'out', type: 'helper', z: 't1' },
    { id: 'file', type: 'helper', z: 't1' },
    { id: 'rows', type: 'helper', z: 't1' },
    { id: 'c', type: 'catch', z: 't1', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 't1' },
  ];
}

const yesterday = () => formatLocal(Date.now() - 86_400_000, ZONE, 'sql').slice(0, 10);

describe('ccfs-bill-request node', function () {
  let env: Env;
  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
  afterEach(async () => env.stop());

  it('requests a file, then the signed callback names the request, and the file’s rows come out', async () => {
    env = await start({ autoCallback: true });
    await env.load(flow(env), creds);
    const out = collect(helper.getNode('out'), 1);
    const file = collect(helper.getNode('file'), 1);
    const rows = collect(helper.getNode('rows'), 3);
    const day = yesterday();
    helper.getNode('req').receive({ payload: { beginTime: `${day} 00:00:00`, endTime: `${day} 23:59:59` }, job: 'nightly' });
    const [m] = await out;
    assert.equal(m.topic, 'ccfs/request');
    assert.equal(m.job, 'nightly', 'input properties kept');
    assert.match(m.payload.responseId, /^[0-9a-f]{32}$/);
    assert.equal(m.payload.billFileName, `${formatLocal(Date.now(), ZONE, 'compact').slice(0, 8)}_${m.payload.responseId}.zip`);
    assert.deepEqual([m.payload.beginTime, m.payload.part, m.payload.parts], [`${day} 00:00:00`, 1, 1]);
    assert.equal(m.ccfs.request.callBackURL, `${env.base}/ccfs/cb`);
    assert.equal(env.sim.requests[0].status, 200, 'the simulator accepted the signature');
    const [f] = await file;
    assert.equal(f.topic, 'ccfs/file');
    assert.equal(f.payload.billFileName, m.payload.billFileName);
    assert.equal(f.ccfs.requestNode, 'req', 'says which ccfs-bill-request asked');
    assert.equal(f.ccfs.request.msgBody.beginTime, `${day} 00:00:00`);
    assert.equal(f.ccfs.request.correlation, m._msgid);
    const r = await rows;
    assert.deepEqual(r.map((x) => x.topic), ['ccfs/call', 'ccfs/call', 'ccfs/record']);
    await env.sim.idle();
    assert.deepEqual(env.sim.callbacks.map((c) => [c.status, c.body]), [[200, '{"resultCode":"0","resultDesc":"success"}']]);
  });

  it('splits a long window into consecutive requests, and a duplicate callback is not delivered twice', async () => {
    env = await start({ autoCallback: true, callbackCopies: 2 });
    await env.load(flow(env, { period: 'fields' }, { download: false }), creds);
    const out = collect(helper.getNode('out'), 3);
    const files = collect(helper.getNode('file'), 3);
    const end = formatLocal(Date.now() - 3_600_000, ZONE, 'sql');
    const begin = formatLocal(Date.now() - 3_600_000 - 7 * 86_400_000, ZONE, 'sql');
    helper.getNode('req').receive({ payload: { beginTime: begin, endTime: end } });
    const msgs = await out;
    assert.deepEqual(msgs.map((m) => [m.payload.part, m.payload.parts]), [[1, 3], [2, 3], [3, 3]]);
    assert.equal(msgs[0].payload.beginTime, begin);
    assert.equal(msgs[2].payload.endTime, end);
    assert.equal(new Set(msgs.map((m) => m.payload.responseId)).size, 3);
    const f = await files;
    assert.deepEqual(new Set(f.map((x) => x.payload.responseId)), new Set(msgs.map((m) => m.payload.responseId)));
    await env.sim.idle();
    await settle();
    assert.equal(env.sim.callbacks.length, 6, 'every callback sent twice');
    assert.ok(env.sim.callbacks.every((c) => c.status === 200 && c.body === '{"resultCode":"0","resultDesc":"success"}'), 'duplicates answered 200');
    assert.equal(f.length, 3);
  });

  it('uses the "yesterday" window of the tenant zone', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env, { period: 'yesterday' }), creds);
    const out = collect(helper.getNode('out'), 1);
    helper.getNode('req').receive({ payload: 'tick' });
    const [m] = await out;
    assert.deepEqual([m.payload.beginTime, m.payload.endTime], [`${yesterday()} 00:00:00`, `${yesterday()} 23:59:59`]);
  });

  it('refuses invalid parameters before sending anything', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env), creds);
    const caught = collect(helper.getNode('caught'), 3);
    const req = helper.getNode('req');
    req.receive({ payload: { beginTime: '2026-01-02 00:00:00', endTime: '2026-01-01 00:00:00' } });
    req.receive({ payload: { beginTime: '2999-01-01 00:00:00', endTime: '2999-01-01 01:00:00' } });
    req.receive({ payload: { beginTime: `${yesterday()} 00:00:00`, endTime: `${yesterday()} 01:00:00`, agentId: 'x'.repeat(21) } });
    const errs = await caught;
    assert.match(errs[0].error.message, /not sent: beginTime .* is after endTime/);
    assert.match(errs[1].error.message, /future/);
    assert.match(errs[2].error.message, /agentId is 21 characters, at most 20/);
    assert.equal(env.sim.requests.length, 0);
  });

  it('reports a business code with its meaning, and a 401 without retrying', async () => {
    env = await start({ autoCallback: false });
    const flowDef = flow(env);
    await env.load(flowDef, { acc: { accessKey: 'globalaktest', secretKey: 'wrong-secret' } });
    const caught = collect(helper.getNode('caught'), 1);
    const payload = { beginTime: `${yesterday()} 00:00:00`, endTime: `${yesterday()} 01:00:00` };
    helper.getNode('req').receive({ payload });
    const [e401] = await caught;
    assert.match(e401.error.message, /HTTP 401.*Not retried/);
    assert.equal(env.sim.requests.length, 1);
    await until(() => (helper.getNode('req') as any).status.called);
    await helper.unload();
    await env.load(flow(env), creds);
    env.sim.queryQueue.push({ code: '0300018', desc: 'no permission' });
    const caught2 = collect(helper.getNode('caught'), 1);
    helper.getNode('req').receive({ payload });
    const [e] = await caught2;
    assert.match(e.error.message, /0300018 \(the record belongs to another developer/);
  });

  it('still names the request when the callback comes after a restart', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env, {}, { download: false }), creds);
    const out = collect(helper.getNode('out'), 1);
    helper.getNode('req').receive({ payload: { beginTime: `${yesterday()} 00:00:00`, endTime: `${yesterday()} 06:00:00`, agentId: '1001' } });
    const [m] = await out;
    await helper.unload(); // the account flushes its remembered requests
    await env.load(flow(env, {}, { download: false }), creds);
    const file = collect(helper.getNode('file'), 1);
    const r = await env.sim.sendCallback(`${env.base}/ccfs/cb`, { request: { version: '2.0' }, msgBody: { responseId: m.payload.responseId, billFileName: m.payload.billFileName, accountId: '' } });
    assert.equal(r.status, 200);
    const [f] = await file;
    assert.equal(f.ccfs.requestNode, 'req');
    assert.equal(f.ccfs.request.msgBody.agentId, '1001');
    assert.equal(f.payload.accountId, null);
  });

  it('offers "today" and "last N hours" windows, and takes Date / ISO times from msg.payload', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env, { period: 'hours', hours: 6 }), creds);
    const out = collect(helper.getNode('out'), 2);
    const req = helper.getNode('req');
    req.receive({});
    const from = new Date(Date.now() - 2 * 3_600_000);
    req.receive({ payload: { beginTime: from, endTime: new Date(Date.now() - 3_600_000).toISOString() } });
    const [hours, explicit] = await out;
    const span = Date.parse(hours.payload.endUtc) - Date.parse(hours.payload.beginUtc);
    assert.equal(span, 6 * 3_600_000);
    assert.equal(explicit.payload.beginTime, formatLocal(from.getTime(), ZONE, 'sql'));
    assert.equal(explicit.payload.beginUtc, new Date(Math.floor(from.getTime() / 1000) * 1000).toISOString());
    await helper.unload();
    await env.load(flow(env, { period: 'today' }), creds);
    const out2 = collect(helper.getNode('out'), 1);
    helper.getNode('req').receive({});
    const [today] = await out2;
    assert.equal(today.payload.beginTime, `${formatLocal(Date.now(), ZONE, 'sql').slice(0, 10)} 00:00:00`);
  });

  it('refuses a time that is an invalid Date before sending anything', async () => {
    env = await start({ autoCallback: false });
    await env.load(flow(env), creds);
    const caught = collect(helper.getNode('caught'), 1);
    helper.getNode('req').receive({ payload: { beginTime: new Date('not a date'), endTime: `${yesterday()} 01:00:00` } });
    const [e] = await caught;
    assert.match(e.error.message, /not sent: beginTime must be text/);
    assert.equal(env.sim.requests.length, 0);
  });
});

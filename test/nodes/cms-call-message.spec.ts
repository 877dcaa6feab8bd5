/**
 * cms-call-message with a cms-server config node in a real Node-RED runtime, against the CMS API simulator.
 */
import { strict as assert } from 'node:assert';
import cmsCallMessage from '../../src/nodes/cms-call-message';
import cmsServer from '../../src/nodes/cms-server';
import { helper, capture, collect, settle, useTempUserDir } from '../helpers/red';
import { CmsApiSimulator } from '../simulators/cms-api';

const CALL = '7d1c2a90-1111-4222-8333-444455556666';

describe('cms-call-message node', function () {
  let sim: CmsApiSimulator;
  const msgNode = capture(cmsCallMessage as any);
  const server = capture(cmsServer as any);

  const flow = (extra: Record<string, unknown> = {}): any[] => [
    { id: 'tab', type: 'tab', label: 'msg' },
    { id: 'srv', type: 'cms-server', urls: sim.bridges.map((b) => b.url).join('\n'), timeout: 2, retries: 1 },
    { id: 'm', z: 'tab', type: 'cms-call-message', server: 'srv', action: 'set', text: 'Recorded call', position: 'top', duration: 'permanent', wires: [['out']], ...extra },
    { id: 'out', z: 'tab', type: 'helper' },
    { id: 'c', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];
  const creds = (password = 'apipass') => ({ srv: { user: 'apiuser', password } });
  // the messages not yet confirmed are kept in a temporary user directory, not ~/.node-red
  useTempUserDir('suite', 'cms-call-message-node-');
  const NOTICE = { text: 'External Participant(s) in Meeting', position: 'bottom', duration: 'permanent' };
  const statuses = (id: string) => ((helper.getNode(id) as any).status.getCalls() as any[]).map((c) => c.args[0]);
  async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!fn()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await settle(20);
    }
  }

  beforeEach(async () => {
    sim = await CmsApiSimulator.start(['cb1', 'cb2']);
  });
  afterEach(async () => {
    await helper.unload();
    await sim.close();
  });

  it('sets the node text, then msg.message overrides and clears, in arrival order', async () => {
    sim.addCall('cb2', CALL);
    await helper.load([msgNode.module, server.module], flow(), creds());
    const out = collect(helper.getNode('out'), 3);
    const m = helper.getNode('m');
    m.receive({ callId: CALL });
    m.receive({ payload: { callId: CALL }, message: { text: 'External Participant(s) in Meeting', position: 'bottom', duration: 'permanent' } });
    m.receive({ payload: { callId: CALL }, message: { text: '', position: 'bottom', duration: 0 } });
    const msgs = await out;
    assert.deepEqual(msgs.map((x) => [x.cmsApi.action, x.cmsApi.status, x.cmsApi.baseUrl]), [
      ['set', 200, sim.bridge('cb2').url],
      ['set', 200, sim.bridge('cb2').url],
      ['clear', 200, sim.bridge('cb2').url],
    ]);
    assert.deepEqual(sim.puts().map((p) => p.form), [
      [['messageText', 'Recorded call'], ['messagePosition', 'top'], ['messageDuration', 'permanent']],
      [['messageText', 'External Participant(s) in Meeting'], ['messagePosition', 'bottom'], ['messageDuration', 'permanent']],
      [['messageText', ''], ['messagePosition', 'bottom'], ['messageDuration', '0']],
    ]);
    // the owner was found once (cb1 said 404), then remembered
    assert.deepEqual(sim.log.map((r) => [r.bridge, r.status]), [['cb1', 404], ['cb2', 200], ['cb2', 200], ['cb2', 200]]);
  });

  it('clears with action clear and a duration in seconds from the node', async () => {
    sim.addCall('cb1', CALL);
    await helper.load([msgNode.module, server.module], flow({ action: 'clear' }), creds());
    const out = collect(helper.getNode('out'), 1);
    helper.getNode('m').receive({ payload: CALL });
    await out;
    assert.deepEqual(sim.puts()[0].form, [['messageText', ''], ['messagePosition', 'top'], ['messageDuration', '0']]);
  });

  it('sends a wrong password, an unknown call and a missing call id to Catch', async () => {
    await helper.load([msgNode.module, server.module], flow(), creds('wrong'));
    const caught = collect(helper.getNode('caught'), 1);
    helper.getNode('m').receive({ callId: CALL });
    const [c1] = await caught;
    assert.match(c1.error.message, /could not set the message of call .*401 Unauthorized: check the API user and password/);
    assert.equal(c1.callId, CALL);
  });

  it('reports a call that no bridge has, and a message without call id', async () => {
    await helper.load([msgNode.module, server.module], flow(), creds());
    const caught = collect(helper.getNode('caught'), 3);
    const m = helper.getNode('m');
    m.receive({ callId: CALL });
    m.receive({ topic: 'no id' });
    m.receive({ callId: CALL, message: { text: 'x', position: 'left' } });
    const errors = (await caught).map((c) => c.error.message).sort();
    assert.match(errors[0], /could not set the message of call .* not found on any of 2 call bridges/);
    assert.match(errors[1], /message position left is not top, middle or bottom/);
    assert.match(errors[2], /no call id/);
    assert.equal(sim.puts().length, 0);
  });

  it('says what is missing in the server config', async () => {
    await helper.load([msgNode.module, server.module], flow(), {});
    const caught = collect(helper.getNode('caught'), 1);
    helper.getNode('m').receive({ callId: CALL });
    const [c] = await caught;
    assert.match(c.error.message, /API user and password are not set/);
  });

  it('no server chosen shows a yellow "not configured", an unreadable CA file a red status, at deploy; each message fails with the reason', async () => {
    await helper.load([msgNode.module, server.module], flow({ server: '' }), creds());
    let statuses = ((helper.getNode('m') as any).status.getCalls() as any[]).map((c) => c.args[0]);
    assert.ok(statuses.some((st) => st.fill === 'yellow' && st.text === 'not configured'), JSON.stringify(statuses));
    assert.ok(!statuses.some((st) => st.fill === 'red'), JSON.stringify(statuses));
    let caught = collect(helper.getNode('caught'), 1);
    helper.getNode('m').receive({ callId: CALL });
    assert.match((await caught)[0].error.message, /no CMS server selected/);
    await helper.unload();

    const f = flow();
    f[1].ca = '/nonexistent/ca.pem';
    await helper.load([msgNode.module, server.module], f, creds());
    statuses = ((helper.getNode('m') as any).status.getCalls() as any[]).map((c) => c.args[0]);
    assert.ok(statuses.some((st) => st.fill === 'red'), JSON.stringify(statuses));
    caught = collect(helper.getNode('caught'), 1);
    helper.getNode('m').receive({ callId: CALL });
    assert.match((await caught)[0].error.message, /CA certificate cannot be read: \/nonexistent\/ca.pem/);
  });

  describe('a message CMS did not take', () => {
    const quick = { retryMin: 0.2, retryMax: 1 };

    it('is sent again, with backoff, until CMS has it, and the status says so', async () => {
      sim.addCall('cb1', CALL);
      await helper.load([msgNode.module, server.module], flow(quick), creds());
      const caught = collect(helper.getNode('caught'), 1);
      const out = collect(helper.getNode('out'), 1);
      // the bridge keeps failing past the server config's retry (1): the PUT of the message fails
      sim.bridge('cb1').faults.push(503, 503, 503, 503);
      helper.getNode('m').receive({ callId: CALL, message: NOTICE });
      const [c] = await caught;
      assert.match(c.error.message, /could not set the message of call .*503 from the call bridge.*it will be sent again/);
      await until('the status', () => statuses('m').some((st) => st.fill === 'yellow' && /^1 call not confirmed: .*503/.test(st.text)));
      // sent again by the node itself, twice (503, 503 on the second try), then taken
      const [m] = await out;
      assert.equal(m.cmsApi.retried, true);
      assert.equal(m.callId, CALL);
      assert.deepEqual(m.message, NOTICE);
      assert.equal(sim.bridge('cb1').calls.get(CALL)!.messageText, NOTICE.text);
      const cb1 = sim.log.filter((r) => r.bridge === 'cb1').map((r) => r.status);
      assert.deepEqual(cb1, [503, 503, 503, 503, 200]);
      await until('a green status', () => statuses('m').at(-1)?.fill === 'green');
      // agreed: nothing more is sent
      const sent = sim.log.length;
      await settle(600);
      assert.equal(sim.log.length, sent);
    });

    it('is replaced by a newer message for the call, and dropped when the call has ended', async () => {
      const GONE = '7d1c2a90-1111-4222-8333-00000000dead';
      sim.addCall('cb2', CALL);
      sim.setCredentials('apiuser', 'rotated'); // the API password changed on CMS, not yet in Node-RED
      await helper.load([msgNode.module, server.module], flow({ ...quick, retryMin: 0.3 }), creds());
      const caught = collect(helper.getNode('caught'), 3);
      const m = helper.getNode('m');
      m.receive({ callId: CALL, message: NOTICE });
      m.receive({ callId: CALL, message: { text: '', position: 'bottom', duration: 0 } });
      m.receive({ callId: GONE, message: NOTICE });
      const errors = (await caught).map((x) => x.error.message);
      assert.equal(errors.filter((e) => /401 Unauthorized.*it will be sent again/.test(e)).length, 3);
      await until('two calls waiting', () => statuses('m').some((st) => /^2 calls not confirmed/.test(st.text)));
      sim.setCredentials('apiuser', 'apipass'); // the old password is valid again
      const out = collect(helper.getNode('out'), 1);
      const [back] = await out;
      assert.equal(back.cmsApi.action, 'clear');
      // the clear replaced the notice: the notice was never sent; the call that ended answered 404 and is dropped
      await until('the 404', () => sim.log.some((r) => r.callId === GONE && r.status === 404));
      const sent = sim.log.length;
      await settle(800);
      assert.equal(sim.log.length, sent, 'nothing more for a call that ended');
      assert.deepEqual(sim.puts().map((p) => [p.callId, Object.fromEntries(p.form).messageText]), [[CALL, '']]);
      assert.equal(statuses('m').at(-1).fill, 'green');
    });

    it('is kept across a restart and sent when the node is back', async () => {
      sim.addCall('cb1', CALL);
      sim.setCredentials('apiuser', 'rotated');
      await helper.load([msgNode.module, server.module], flow({ retryMin: 60 }), creds());
      const caught = collect(helper.getNode('caught'), 1);
      helper.getNode('m').receive({ callId: CALL, message: NOTICE });
      await caught;
      await helper.unload();
      sim.setCredentials('apiuser', 'apipass');
      assert.equal(sim.puts().length, 0);
      // back with a short retry: the notice is sent without any new message
      await helper.load([msgNode.module, server.module], flow(quick), creds());
      const node = helper.getNode('m') as any;
      await until('the message sent again', () => node.send.callCount > 0); // the spy: sent before a listener could be there
      const m = node.send.getCall(0).args[0];
      assert.equal(m.cmsApi.retried, true);
      assert.equal(sim.bridge('cb1').calls.get(CALL)!.messageText, NOTICE.text);
    });
  });
});

/**
 * cms-call-message with a cms-server config node in a real Node-RED runtime, against the CMS API simulator.
 */
import { strict as assert } from 'node:assert';
import cmsCallMessage from '../../src/nodes/cms-call-message';
import cmsServer from '../../src/nodes/cms-server';
import { helper, capture, collect } from '../helpers/red';
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

  it('a missing server or an unreadable CA file shows a red status at deploy and fails each message with the reason', async () => {
    await helper.load([msgNode.module, server.module], flow({ server: '' }), creds());
    let statuses = ((helper.getNode('m') as any).status.getCalls() as any[]).map((c) => c.args[0]);
    assert.ok(statuses.some((st) => st.fill === 'red' && /no usable CMS server/.test(st.text)), JSON.stringify(statuses));
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
});

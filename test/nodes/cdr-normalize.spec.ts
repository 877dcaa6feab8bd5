/**
 * cdr-normalize in a real Node-RED runtime: cms-cdr-in → cdr-normalize over HTTP, the CMS leg state
 * across an unload/load with the same node id and userDir, array output, raw dropped, and an
 * unmappable message reaching a Catch node.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import supertest from 'supertest';
import cmsCdrIn from '../../src/nodes/cms-cdr-in';
import cdrNormalize from '../../src/nodes/cdr-normalize';
import { helper, capture, collect, settle, coreNode, useTempUserDir } from '../helpers/red';
import { mividasPosts, shared } from '../helpers/fixtures';
import { validateCdr } from '../../src/normalize';

describe('cdr-normalize node', function () {
  this.timeout(20_000);
  // state files go to a temporary user directory, not ~/.node-red; each test starts without saved state
  const tmp = useTempUserDir('suite', 'cdr-normalize-node-');

  const flow = (norm: Record<string, unknown> = {}) => [
    { id: 'tab', type: 'tab', label: 'normalize' },
    { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr-norm', wires: [['norm'], []] },
    { id: 'norm', z: 'tab', type: 'cdr-normalize', ...norm, wires: [['out']] },
    { id: 'out', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: ['norm'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];

  async function load(norm: Record<string, unknown> = {}) {
    const cdrIn = capture(cmsCdrIn as any);
    const normalize = capture(cdrNormalize as any);
    await helper.load([cdrIn.module, normalize.module, coreNode('common/25-catch.js')], flow(norm));
    return supertest(cdrIn.red.RED.httpNode);
  }

  it('turns posted CMS records into one record per ended leg, keeping msg properties', async () => {
    const http = await load();
    const got = collect(helper.getNode('out'), 2);
    for (const body of mividasPosts().slice(0, 9)) await http.post('/cdr-norm').type('application/xml').send(body).expect(200);
    const msgs = await got;
    assert.equal(msgs[0].topic, 'cdr/cms');
    assert.equal(msgs[0].payload.source_record_id, '9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef');
    assert.equal(msgs[1].payload.source_record_id, 'aa7c3c54-07d6-4af3-b853-a25fe676e554');
    assert.equal(msgs[0].payload.call_name, 'techsupport');
    assert.equal(msgs[0].cms.path, '/cdr-norm'); // the input's properties stay
    assert.equal(msgs[0].payload.raw.callLegEnd.type, 'callLegEnd');
    for (const m of msgs) assert.deepEqual(validateCdr(m.payload), []);
  });

  it('a leg started before an unload/load (same node id, same userDir) is joined after it', async () => {
    let http = await load();
    const posts = mividasPosts();
    for (const body of posts.slice(0, 5)) await http.post('/cdr-norm').type('application/xml').send(body).expect(200);
    await settle(100);
    await helper.unload(); // close flushes the state file
    const file = path.join(tmp.dir(), 'cdrflow-state', 'cdr-normalize-norm.json');
    assert.ok(fs.existsSync(file), 'state file written');
    http = await load();
    const got = collect(helper.getNode('out'), 2);
    for (const body of posts.slice(5, 9)) await http.post('/cdr-norm').type('application/xml').send(body).expect(200);
    const msgs = await got;
    const christian = msgs.find((m) => m.payload.source_record_id === '9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef');
    assert.equal(christian.payload.start_time, '2017-04-24T12:00:11Z'); // from the callLegStart before the restart
    assert.equal(christian.payload.call_name, 'techsupport');
    assert.deepEqual(christian.payload.flags, []);
  });

  it('array output and raw dropped', async () => {
    const http = await load({ output: 'array', raw: 'drop' });
    const got = collect(helper.getNode('out'), 1);
    await http.post('/cdr-norm').type('application/xml').send(shared('cms', 'real_mividas_2022-05-17_callLegEnd_confirmationStatus-rejected.xml')).expect(200);
    const [msg] = await got;
    assert.ok(Array.isArray(msg.payload));
    assert.equal(msg.payload.length, 1);
    assert.equal(msg.payload[0].raw, undefined);
    assert.deepEqual(msg.payload[0].flags, ['leg_start_missing']);
  });

  it('an unmappable message goes to Catch and nothing is sent', async () => {
    await load();
    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    const caught = collect(helper.getNode('caught'), 2);
    helper.getNode('norm').receive({ topic: 'hello', payload: { anything: 1 } });
    helper.getNode('norm').receive({ topic: 'comx/user', payload: { extension: '200' }, comx: { pbx: 'pbx' } });
    const msgs = await caught;
    assert.match(msgs[0].error.message, /cannot normalize message \(topic "hello"\): not a message from a cdrflow source node/);
    assert.match(msgs[1].error.message, /Com.X message "comx\/user" is not a CDR/);
    await settle(50);
    assert.equal(out.length, 0);
  });

  it('refuses a zone that is not an IANA name, and still completes every message with that error', async () => {
    await load({ zone: 'Mars/Olympus' });
    const norm = helper.getNode('norm') as any;
    assert.ok(norm);
    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    const caught = collect(helper.getNode('caught'), 1);
    norm.receive({ topic: 'x', payload: {}, cms: {} });
    const [c] = await caught;
    assert.match(c.error.message, /Mars\/Olympus/);
    await settle(50);
    assert.equal(out.length, 0);
  });

  it('writes what changed: one journal line per CMS record that moves a leg, no snapshot rewrite per record', async () => {
    const http = await load();
    const stateDir = path.join(tmp.dir(), 'cdrflow-state');
    for (const body of mividasPosts().slice(0, 9)) await http.post('/cdr-norm').type('application/xml').send(body).expect(200);
    await settle(100);
    const files = fs.readdirSync(stateDir).filter((f) => f.startsWith('cdr-normalize-norm'));
    assert.deepEqual(files, ['cdr-normalize-norm.json.log'], 'no snapshot yet: the journal is small');
    const lines = fs.readFileSync(path.join(stateDir, files[0]), 'utf8').trim().split('\n');
    const posted = mividasPosts().slice(0, 9).join('').match(/<record /g)!.length;
    assert.ok(lines.length > 0 && lines.length <= posted, `${lines.length} lines for ${posted} records`);
    assert.ok(lines.every((l) => /"type":"(callStart|callLegStart|callLegUpdate|callLegEnd|recordingStart)"/.test(l)), 'only records that change the joins');
  });

  it('a state file of the wrong shape: the node starts, warns naming both files, and maps', async () => {
    const stateDir = path.join(tmp.dir(), 'cdrflow-state');
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'cdr-normalize-norm.json'), '{"v":1,"legs":[["x",{"startTime":5}]],"calls":[]}');
    const http = await load();
    const got = collect(helper.getNode('out'), 2);
    for (const body of mividasPosts().slice(0, 9)) await http.post('/cdr-norm').type('application/xml').send(body).expect(200);
    await got;
    const warnings = ((helper.getNode('norm') as any).warn.getCalls() as any[]).map((c) => String(c.args[0]));
    assert.ok(warnings.some((w) => /is not text/.test(w) && /unreadable-/.test(w)), warnings.join('\n'));
  });
});

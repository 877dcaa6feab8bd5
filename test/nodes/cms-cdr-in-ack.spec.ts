/**
 * Acknowledgement by the flow: the records count as delivered only when an http response node after
 * the storage answers 2xx. An error answer, or none within the timeout, leaves them undelivered, so the
 * CMS resend is emitted again instead of being dropped as a duplicate.
 */
import { strict as assert } from 'node:assert';
import supertest from 'supertest';
import cmsCdrIn = require('../../src/nodes/cms-cdr-in');
import { helper, capture, collect, settle, coreNode, useTempUserDir } from '../helpers/red';
import { mividasPosts } from '../helpers/fixtures';

// With settingsFile (red.js) the POSTs are answered at the HTTP server, through Express's response methods.
describe(`cms-cdr-in acknowledged by the flow, POSTs answered by its Express route`, () => {
  const { dir } = useTempUserDir('each');
  const { module: node, red } = capture(cmsCdrIn as any);
  const httpin = coreNode('network/21-httpin.js');
  beforeEach(() => helper.settings({ userDir: dir() }));


  const flow = (status: string, extra: Record<string, unknown> = {}): any[] => [
    { id: 'tab', type: 'tab' },
    { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr', ack: 'flow', ...extra, wires: [['seen', 'answer'], []] },
    { id: 'seen', z: 'tab', type: 'helper' },
    { id: 'answer', z: 'tab', type: 'http response', statusCode: status, headers: {}, wires: [] },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];
  const post = (body: string) => supertest(red.RED.httpNode).post('/cdr').set('content-type', 'text/xml').send(body);

  it('answers what the http response node answers, and drops the resend only after a 2xx', async () => {
    await helper.load([node, httpin], flow('200'));
    const seen: any[] = [];
    helper.getNode('seen').on('input', (m: any) => seen.push(m));
    const res = await post(mividasPosts()[8]);
    assert.equal(res.status, 200);
    await settle();
    assert.equal(seen.length, 1, 'one message per POST');
    assert.deepEqual(seen[0].payload.map((r: any) => r.type), ['callLegEnd', 'callEnd']);
    assert.ok(seen[0].res, 'msg.res for the response node');
    assert.equal(seen[0].req, undefined, 'no msg.req: it would carry the sender\'s credentials');
    assert.equal((await post(mividasPosts()[8])).status, 200);
    await settle();
    assert.equal(seen.length, 1, 'the resend was a duplicate');
  });

  it('passes an error answer through to CMS and emits the resend again', async () => {
    await helper.load([node, httpin], flow('500'));
    const seen: any[] = [];
    helper.getNode('seen').on('input', (m: any) => seen.push(m));
    assert.equal((await post(mividasPosts()[0])).status, 500);
    assert.equal((await post(mividasPosts()[0])).status, 500);
    await settle();
    assert.equal(seen.length, 2, 'not delivered, so not a duplicate');
  });

  it('answers 503 to a POST still waiting for the flow when the node stops, and stores nothing as delivered', async () => {
    await helper.load([node, httpin], [
      { id: 'tab', type: 'tab' },
      { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr', ack: 'flow', ackTimeout: 30, wires: [['seen'], []] },
      { id: 'seen', z: 'tab', type: 'helper' },
    ] as any[]);
    const got = collect(helper.getNode('seen'), 1);
    const pending = post(mividasPosts()[0]);
    const answer = pending.then((r) => r);
    await got;
    await helper.unload();
    assert.equal((await answer).status, 503);
  });

  it('answers 503 when the flow does not answer in time, reports it, and emits the resend again', async () => {
    await helper.load([node, httpin], [
      { id: 'tab', type: 'tab' },
      { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr', ack: 'flow', ackTimeout: 0.2, wires: [['seen'], []] },
      { id: 'seen', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ] as any[]);
    const caught = collect(helper.getNode('caught'), 1);
    const got = collect(helper.getNode('seen'), 2);
    const first = await post(mividasPosts()[0]);
    assert.equal(first.status, 503);
    assert.match((await caught)[0].error.message, /did not answer within 0.2 s/);
    assert.equal((await post(mividasPosts()[0])).status, 503);
    assert.equal((await got).length, 2);
  });
});

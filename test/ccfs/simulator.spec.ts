/** The CC-FS simulator is as strict as CC-FS (specs/ccfs.md §0.5, §4.3): what the node tests rely on. */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CcfsClient } from '../../src/ccfs/client';
import { CcfsSimulator, callbackSucceeded } from '../simulators/ccfs-server';

const AK = 'globalaktest';
const SK = 'test-sk-0123456789abcdef';
const q = { beginTime: '2026-04-14 00:00:00', endTime: '2026-04-14 01:00:00', dataType: 'call' as const, callBackURL: 'http://127.0.0.1:9/cb' };
const cb = { request: { version: '2.0' }, msgBody: { responseId: 'r1', billFileName: '20260414_r1.zip' } };

describe('CC-FS simulator', () => {
  let sim: CcfsSimulator;
  afterEach(() => sim.stop());

  it('locks an address after 5 refused signatures in a row: 403 to everything from it, the right key included', async () => {
    sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, autoCallback: false }).start();
    const wrong = new CcfsClient({ baseUrl: sim.url, accessKey: AK, secretKey: 'wrong', retries: 0 });
    const right = new CcfsClient({ baseUrl: sim.url, accessKey: AK, secretKey: SK, retries: 0 });
    const status = (c: CcfsClient) => c.queryBillData(q).then(() => 200, (e) => e.status);
    // a good signature between refusals starts the count again
    assert.deepEqual([await status(wrong), await status(wrong), await status(wrong), await status(wrong), await status(right)], [401, 401, 401, 401, 200]);
    assert.equal(sim.isLocked(), false);
    const five = [];
    for (let i = 0; i < 5; i++) five.push(await status(wrong));
    assert.deepEqual(five, [401, 401, 401, 401, 401]);
    assert.deepEqual([await status(wrong), await status(right)], [403, 403]);
    assert.equal(sim.isLocked(), true);
    sim.unlock();
    assert.equal(await status(right), 200);
    await Promise.all([wrong.close(), right.close()]);
  });

  describe('calls back as CC-FS does', () => {
    let server: http.Server;
    let target = '';
    const answers: Array<(res: http.ServerResponse) => void> = [];
    beforeEach(async () => {
      sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, autoCallback: false, callbackTimeoutMs: 200, callbackRetryMs: 10, callbackRetries: 3 }).start();
      answers.length = 0;
      server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => (answers.shift() ?? ((r) => r.end('{"resultCode":"0"}')))(res));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`;
    });
    afterEach(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    it('tries again after no answer in time, an error status, or a 200 without a success body; stops at success', async () => {
      answers.push(
        () => undefined, // never answered: the attempt times out
        (res) => { res.statusCode = 503; res.end('{"resultCode":"503"}'); },
        (res) => res.end(''), // 200 without a body
      );
      const attempts = await sim.callBack(target, cb);
      assert.deepEqual(attempts.map((a) => [a.status, a.timedOut ?? false, callbackSucceeded(a)]), [[0, true, false], [503, false, false], [200, false, false], [200, false, true]]);
      assert.notEqual(attempts[0].sent.headers.authorization, attempts[3].sent.headers.authorization, 'each attempt signed anew');
    });

    it('gives up after the retry limit', async () => {
      for (let i = 0; i < 10; i++) answers.push((res) => { res.statusCode = 500; res.end('{}'); });
      const attempts = await sim.callBack(target, cb, { retries: 2 });
      assert.deepEqual(attempts.map((a) => a.status), [500, 500, 500]);
    });
  });
});

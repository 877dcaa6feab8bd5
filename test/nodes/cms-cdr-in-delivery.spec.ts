/**
 * Delivery under a flaky network: the CMS sender simulator replays real and synthetic posts over
 * keep-alive while the receiver's connections drop at random, before and after the records were
 * handled. CMS re-sends whatever it did not see acknowledged; every record must come out once.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import cmsCdrIn = require('../../src/nodes/cms-cdr-in');
import { helper, capture, settle } from '../helpers/red';
import { mividasPosts } from '../helpers/fixtures';
import { CmsSender, syntheticPosts } from '../simulators/cms-sender';

describe('cms-cdr-in delivery with the CMS sender simulator', () => {
  let userDir: string;
  let server: http.Server;
  const { module: node, red } = capture(cmsCdrIn as any);

  afterEach(async () => {
    server?.close();
    server = undefined as unknown as http.Server;
    await helper.unload();
    await helper.stopServer();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  /** Drops connections at random, before the request is handled or instead of its answer. */
  function chaosMonkey() {
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const counts = { before: 0, after: 0 };
    const middleware = (req: any, res: any, next: () => void) => {
      const roll = rand();
      if (roll < 0.15) {
        counts.before++;
        req.socket.destroy(); // lost on the way in: nothing handled
        return;
      }
      if (roll < 0.35) {
        // handled, but the 200 never reaches CMS: it will resend what was already delivered
        res.end = function () {
          counts.after++;
          res.socket.destroy();
          return res;
        };
      }
      next();
    };
    return { counts, middleware };
  }

  it('emits every record exactly once while connections drop at random', async () => {
      userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-test-'));
      const monkey = chaosMonkey();
      const chaos = monkey.counts;
      helper.settings({ userDir, httpNodeMiddleware: monkey.middleware } as any);
      await helper.startServer();
      await helper.load(node, [
        { id: 'in', type: 'cms-cdr-in', path: '/cdr', wires: [['out'], []] },
        { id: 'out', type: 'helper' },
      ] as any[]);
      server = http.createServer(red.RED.httpNode).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cdr`;
      const emitted: string[] = [];
      helper.getNode('out').on('input', (m: any) => emitted.push(`${m.cms.session}:${m.cms.recordIndex}`));

      // the nine real posts (post10 is a hand-edited artefact that reuses an index), then synthetic traffic
      const real = mividasPosts().slice(0, 9);
      const synthetic = syntheticPosts(150, 'c0ffee00-1111-4222-8333-444455556666');
      const all = [...real, ...synthetic];
      const expected = all.flatMap((body) => {
        const session = /session="([^"]+)"/.exec(body)![1];
        return [...body.matchAll(/recordIndex="(\d+)"/g)].map((m) => `${session}:${m[1]}`);
      });

      const sender = new CmsSender({ url, retryDelayMs: 1 });
      const results = await sender.replay(all);
      sender.close();
      await settle(100);

      assert.ok(results.every((r) => r.status === 200), 'every batch acknowledged in the end');
      assert.ok(chaos.before > 5 && chaos.after > 5, `chaos happened: ${JSON.stringify(chaos)}`);
      assert.ok(sender.stats.resends >= chaos.before + chaos.after);
      assert.equal(emitted.length, expected.length, 'no record lost, none doubled');
      assert.deepEqual([...emitted].sort(), [...expected].sort());
      assert.deepEqual(emitted, expected, 'and in the order CMS sent them');
  });
});

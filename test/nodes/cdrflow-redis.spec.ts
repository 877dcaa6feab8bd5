/**
 * The cdrflow-redis config node in a real Node-RED runtime against a real redis-server: what it offers
 * the nodes that choose it, credentials from Node-RED's store, every bad setting reported as a
 * configuration problem, and its connection closed when the flow stops.
 */
import { strict as assert } from 'node:assert';
import { createClient } from 'redis';
import cdrflowRedis = require('../../src/nodes/cdrflow-redis');
import { ConfigProblem, type ConfigHandle } from '../../src/nodes/lib/config';
import type { SharedState } from '../../src/ha/shared';
import { helper, capture, useTempUserDir } from '../helpers/red';
import { RedisServer, useRedisServer, waitFor } from '../helpers/redis-server';

const rawClient = (url: string) => createClient({ url });

describe('cdrflow-redis config node (real redis-server)', function () {
  this.timeout(30_000);
  useTempUserDir('each');
  const { server } = useRedisServer();
  const { module: node } = capture(cdrflowRedis as any);
  const handle = (id = 'redis'): ConfigHandle<SharedState> => (helper.getNode(id) as any).cdrflow;
  const load = (props: Record<string, unknown>, creds?: Record<string, unknown>) =>
    helper.load(node, [{ id: 'redis', type: 'cdrflow-redis', ...props }], creds ? { redis: creds } : undefined);
  const clients = async (): Promise<number> => {
    const c = rawClient(server().url);
    await c.connect();
    try {
      return Number(/connected_clients:(\d+)/.exec(await c.info('clients'))![1]) - 1;
    } finally {
      c.destroy();
    }
  };

  it('offers a connection that comes up, claims under the key prefix, and the dedup window', async () => {
    await load({ host: '127.0.0.1', port: String(server().port), prefix: 'ha1:', dedupHours: '2' });
    const h = handle();
    assert.equal(h.problem, null);
    const shared = h.get();
    assert.equal(h.get(), shared, 'built once, shared by every user');
    await waitFor(() => shared.redis.up, 'up');
    assert.equal(shared.dedupMs, 2 * 3_600_000);
    assert.equal(await shared.claims.claim('x', 1000), 'won');
    const c = rawClient(server().url);
    await c.connect();
    assert.equal(await c.exists('ha1:x'), 1);
    await c.del('ha1:x');
    c.destroy();
  });

  it('a hand-written node with no properties works: 127.0.0.1:6379, database 0 (the defaults)', async () => {
    await load({});
    assert.equal(handle().problem, null);
    assert.equal((helper.getNode('redis') as any).cdrflow.get().redis.where, '127.0.0.1:6379');
  });

  it('takes the URL (with ${ENV} in it) over host and port', async () => {
    process.env.CDRFLOW_TEST_REDIS_PORT = String(server().port);
    try {
      await load({ url: 'redis://127.0.0.1:${CDRFLOW_TEST_REDIS_PORT}/1', host: 'ignored.example', port: '1' });
      const shared = handle().get();
      await waitFor(() => shared.redis.up, 'up');
      assert.equal(shared.redis.where, `127.0.0.1:${server().port}/1`);
    } finally {
      delete process.env.CDRFLOW_TEST_REDIS_PORT;
    }
  });

  it('closes its connection when the flow stops', async () => {
    const before = await clients();
    await load({ port: server().port });
    const shared = handle().get();
    await waitFor(() => shared.redis.up, 'up');
    assert.equal(await clients(), before + 1);
    await helper.unload();
    assert.equal(shared.redis.state, 'closed');
    await waitFor(async () => (await clients()) === before, 'the server sees the connection go');
  });

  describe('credentials', () => {
    const secured = new RedisServer({ args: ['--requirepass', 'nr-secret'] });
    before(async () => secured.start());
    after(async () => secured.dispose());

    it('logs in with the password from Node-RED\'s credentials', async () => {
      await load({ port: secured.port }, { password: 'nr-secret' });
      const shared = handle().get();
      await waitFor(() => shared.redis.up, 'up');
      assert.equal(await shared.claims.claim('pw', 1000), 'won');
    });

    it('a wrong password never comes up, and the reason names no secret', async () => {
      await load({ port: secured.port, timeout: '0.5' }, { username: 'default', password: 'wrong-one' });
      const shared = handle().get();
      await waitFor(() => shared.redis.error !== null, 'auth error');
      assert.equal(shared.redis.up, false);
      assert.ok(!shared.redis.error!.includes('wrong-one'));
    });
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a URL of another scheme', { url: 'http://127.0.0.1:6379' }, /^Redis URL: .*redis:\/\//],
    ['a URL that is not one', { url: 'redis://' }, /^Redis URL/],
    ['a host with a space', { host: 'two words' }, /^Redis host/],
    ['a port that is not a number', { port: 'abc' }, /^Redis port/],
    ['port 0', { port: '0' }, /^Redis port/],
    ['a database that is not a whole number', { database: '1.5' }, /^Redis database/],
    ['a key prefix with a space', { prefix: 'a b' }, /^Redis key prefix/],
    ['an extra CA file that does not exist', { ca: '/nonexistent/ca.pem' }, /^Redis extra CA: \/nonexistent\/ca\.pem/],
  ];
  for (const [what, props, reason] of bad) {
    it(`reports ${what} as a configuration problem; get() throws it`, async () => {
      await load(props);
      const h = handle();
      assert.match(h.problem ?? '', reason);
      assert.equal(h.unset, false);
      assert.throws(() => h.get(), (err: unknown) => err instanceof ConfigProblem && reason.test(err.message));
    });
  }
});

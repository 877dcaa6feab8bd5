/**
 * Claims and the shared connection against a real redis-server (test/helpers/redis-server.ts),
 * including Redis stopped and started again under a connected client.
 */
import { strict as assert } from 'node:assert';
import { SharedRedis, RedisUnavailableError } from '../../src/ha/connection';
import { Claims } from '../../src/ha/claim';
import { redisSettings } from '../../src/ha/options';
import { RedisServer, useRedisServer, waitFor, withRedis, type RawRedis } from '../helpers/redis-server';


/** A plain client beside the code under test, to look at what it wrote. */
describe('ha/claim and ha/connection (real redis-server)', function () {
  this.timeout(30_000);
  const { server } = useRedisServer();
  const open: SharedRedis[] = [];
  const connect = async (more: Parameters<typeof redisSettings>[0] = {}, srv: RedisServer = server()): Promise<SharedRedis> => {
    const r = new SharedRedis(redisSettings({ host: '127.0.0.1', port: srv.port, prefix: 't:', timeoutMs: 1000, ...more }));
    open.push(r);
    await waitFor(() => r.up, 'redis up');
    return r;
  };
  /** A plain client beside the code under test, to look at what it wrote. */
  const peek = <T>(fn: (c: RawRedis) => Promise<T>, db = 0): Promise<T> => withRedis(`${server().url}/${db}`, fn);
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
    if (!server().running) await server().start();
    await peek((c) => c.flushAll());
  });

  it('the first claim wins; another holder sees it pending, then done once confirmed; the key has the prefix', async () => {
    const a = new Claims(await connect());
    const b = new Claims(await connect());
    assert.equal(await a.claim('cms:s1:7', 5000), 'won');
    assert.equal(await b.claim('cms:s1:7', 5000), 'pending');
    assert.equal(await a.claim('cms:s1:7', 5000), 'pending', 'a second claim by the holder is not a second win');
    assert.equal(await a.confirm('cms:s1:7', 60_000), true);
    assert.equal(await b.claim('cms:s1:7', 5000), 'done');
    assert.deepEqual(await peek((c) => c.keys('*')), ['t:cms:s1:7']);
    const ttl = await peek((c) => c.pTTL('t:cms:s1:7'));
    assert.ok(ttl > 5000 && ttl <= 60_000, `confirmed claims are kept for the dedup window (pttl ${ttl})`);
  });

  it('a released claim can be won by the other holder; only the holder can release or confirm', async () => {
    const a = new Claims(await connect());
    const b = new Claims(await connect());
    assert.equal(await a.claim('k', 5000), 'won');
    assert.equal(await b.release('k'), false, 'not b\'s to release');
    assert.equal(await b.confirm('k', 5000), false, 'not b\'s to confirm');
    assert.equal(await b.claim('k', 5000), 'pending');
    assert.equal(await a.release('k'), true);
    assert.equal(await b.claim('k', 5000), 'won');
    assert.equal(await a.confirm('k', 5000), false, 'a lost it: confirming must not mark b\'s delivery done');
    assert.equal(await b.confirm('k', 5000), true);
    assert.equal(await b.release('k'), false, 'a confirmed claim is not released (the item was delivered)');
    assert.equal(await a.claim('k', 5000), 'done');
  });

  it('an unconfirmed claim expires, so a holder that died does not block the item for ever', async () => {
    const a = new Claims(await connect());
    const b = new Claims(await connect());
    assert.equal(await a.claim('k', 50), 'won');
    await waitFor(async () => (await peek((c) => c.exists('t:k'))) === 0, 'claim expiry');
    assert.equal(await b.claim('k', 5000), 'won');
    assert.equal(await a.confirm('k', 5000), false, 'a late confirm after expiry is refused');
  });

  it('refuses an expiry that is not a positive number of milliseconds', async () => {
    const a = new Claims(await connect());
    for (const bad of [0, -1, NaN, Infinity]) {
      await assert.rejects(a.claim('k', bad), RangeError);
      await assert.rejects(a.confirm('k', bad), RangeError);
    }
    assert.equal(await peek((c) => c.exists('t:k')), 0);
  });

  it('Redis stopped: down, commands fail with RedisUnavailableError at once; restarted: up again, confirmed claims kept', async () => {
    const r = await connect();
    const a = new Claims(r);
    const states: string[] = [];
    r.onChange((s) => states.push(s));
    assert.equal(await a.claim('kept', 5000), 'won');
    assert.equal(await a.confirm('kept', 600_000), true);
    await server().stop();
    await waitFor(() => !r.up, 'redis down noticed');
    await assert.rejects(a.claim('other', 5000), RedisUnavailableError);
    await assert.rejects(a.release('kept'), RedisUnavailableError);
    assert.ok(r.error, 'the reason is kept for the status');
    await server().start();
    await waitFor(() => r.up, 'reconnected', 20_000);
    assert.deepEqual([states[0], states[states.length - 1]], ['down', 'up']);
    assert.equal(await new Claims(await connect()).claim('kept', 5000), 'done', 'the append-only file kept the claim across the restart');
    assert.equal(await a.claim('other', 5000), 'won');
  });

  it('uses the database it is given', async () => {
    const a = new Claims(await connect({ database: 2 }));
    assert.equal(await a.claim('db', 5000), 'won');
    assert.equal(await peek((c) => c.exists('t:db'), 0), 0);
    assert.equal(await peek((c) => c.exists('t:db'), 2), 1);
  });

  it('a closed connection refuses commands; closing twice is harmless', async () => {
    const r = await connect();
    await r.close();
    await r.close();
    assert.equal(r.state, 'closed');
    await assert.rejects(new Claims(r).claim('k', 1000), RedisUnavailableError);
  });

  it('never comes up with no server at the address, and says why', async () => {
    const gone = new RedisServer();
    await gone.start();
    const port = gone.port;
    await gone.dispose();
    const r = new SharedRedis(redisSettings({ port, timeoutMs: 500 }));
    open.push(r);
    await waitFor(() => r.error !== null, 'a connection error');
    assert.equal(r.up, false);
    assert.match(r.error!, /ECONNREFUSED|connect/i);
    await assert.rejects(new Claims(r).claim('k', 1000), RedisUnavailableError);
  });

  describe('with a password (requirepass)', () => {
    const secured = new RedisServer({ args: ['--requirepass', 's3cret'] });
    before(async () => secured.start());
    after(async () => secured.dispose());

    it('logs in with the password; a wrong one never comes up and the error does not show it', async () => {
      const ok = await connect({ password: 's3cret' }, secured);
      assert.equal(await new Claims(ok).claim('pw', 1000), 'won');
      const wrong = new SharedRedis(redisSettings({ port: secured.port, password: 'nope-wrong', timeoutMs: 500 }));
      open.push(wrong);
      await waitFor(() => wrong.error !== null, 'an auth error');
      assert.equal(wrong.up, false);
      assert.match(wrong.error!, /WRONGPASS|invalid|NOAUTH/i);
      assert.ok(!wrong.error!.includes('nope-wrong'));
    });
  });
});

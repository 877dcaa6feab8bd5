/**
 * The Redis state backend under the real StateKeeper, against a real redis-server: a recorded change
 * is in Redis when record's promise resolves and a second keeper (the other instance) restores it; a
 * wrong shape or a foreign value is moved aside and the last good copy used; Redis down rejects record
 * with RedisUnavailableError and never starts clean; a fence keeps a holder that lost its lease from
 * writing; a removed node's state expires instead of vanishing under the other instance.
 */
import { strict as assert } from 'node:assert';
import { SharedRedis, RedisUnavailableError } from '../../src/ha/connection';
import { redisSettings } from '../../src/ha/options';
import { RedisStateBackend, StateFencedError, type RedisStateOptions } from '../../src/ha/redis-state';
import { Lease } from '../../src/ha/lease';
import { StateKeeper, expectShape, secretCodec } from '../../src/common/persist';
import { useRedisServer, waitFor, withRedis, type RawRedis } from '../helpers/redis-server';

/** A plain client beside the code under test, to look at what it wrote. */

interface Counter {
  n: number;
  items: string[];
}
type Entry = { add: string };

/** A node's restore: checks the shape, replays nothing (a Redis backend has no journal). */
function restore(saved: unknown, journal: unknown[]): Counter {
  const live: Counter = { n: 0, items: [] };
  if (saved !== undefined) {
    const s = saved as Record<string, unknown>;
    expectShape(s && typeof s === 'object' && s.version === 1 && typeof s.n === 'number' && Array.isArray(s.items), 'not a counter state');
    live.n = s.n as number;
    live.items = [...(s.items as string[])];
  }
  for (const e of journal as Entry[]) {
    live.n++;
    live.items.push(e.add);
  }
  return live;
}

describe('ha/redis-state (StateKeeper on a real redis-server)', function () {
  this.timeout(30_000);
  const { server } = useRedisServer();
  const conns: SharedRedis[] = [];
  const errors: Error[] = [];
  const connect = async () => {
    const r = new SharedRedis(redisSettings({ port: server().port, prefix: 's:', timeoutMs: 1000 }));
    conns.push(r);
    await waitFor(() => r.up, 'redis up');
    return r;
  };
  const keeperOn = (redis: SharedRedis, opts: RedisStateOptions = {}, name = 'counter:n1') => {
    const backend = new RedisStateBackend(redis, name, opts);
    const keeper = new StateKeeper<Counter>({
      backend,
      restore,
      snapshot: (live) => ({ version: 1, n: live.n, items: live.items }),
      onError: (err) => errors.push(err),
    });
    return { backend, keeper };
  };
  /** Applies one change the way a node does: in memory, then recorded (awaited: there is no journal). */
  const add = async (keeper: StateKeeper<Counter>, item: string) => {
    const live = await keeper.ready;
    live.n++;
    live.items.push(item);
    await keeper.record({ add: item });
  };
  const raw = <T>(fn: (c: RawRedis) => Promise<T>): Promise<T> => withRedis(server().url, fn);
  afterEach(async () => {
    for (const r of conns.splice(0)) await r.close();
    errors.length = 0;
    if (!server().running) await server().start();
    await raw((c) => c.flushAll());
  });

  it('record resolves once the snapshot is in Redis; another keeper restores it; the replaced one is kept as :prev', async () => {
    const { keeper, backend } = keeperOn(await connect());
    assert.deepEqual(await keeper.ready, { n: 0, items: [] }, 'nothing stored: a clean start, no loss');
    assert.equal(keeper.loss, null);
    assert.equal(backend.append(), null, 'no journal');
    await add(keeper, 'a');
    // resolved: it is in Redis now, as a hash with the JSON text and when it was written
    const stored = await raw((c) => c.hGetAll('s:state:counter:n1'));
    assert.deepEqual(JSON.parse(stored.json), { version: 1, n: 1, items: ['a'] });
    assert.ok(Number(stored.savedAt) > 0);
    await add(keeper, 'b');
    assert.deepEqual(JSON.parse((await raw((c) => c.hGetAll('s:state:counter:n1:prev'))).json), { version: 1, n: 1, items: ['a'] });
    assert.equal(keeper.writes, 2, 'one snapshot per recorded change');

    // the other instance, its own connection
    const other = keeperOn(await connect());
    assert.deepEqual(await other.keeper.ready, { n: 2, items: ['a', 'b'] });
    assert.equal(other.keeper.loss, null);
    assert.match(other.backend.where, /^Redis 127\.0\.0\.1:\d+, key "s:state:counter:n1"$/);
  });

  it('a snapshot of the wrong shape is moved to :unreadable-<time> and the last good copy is used', async () => {
    const { keeper } = keeperOn(await connect());
    await keeper.ready;
    await add(keeper, 'a');
    await add(keeper, 'b');
    await raw((c) => c.hSet('s:state:counter:n1', 'json', JSON.stringify({ version: 2, something: 'else' })));

    const again = keeperOn(await connect());
    assert.deepEqual(await again.keeper.ready, { n: 1, items: ['a'] }, 'the previous copy');
    const loss = again.keeper.loss!;
    assert.ok(loss, 'the loss is reported');
    assert.equal(loss.error, 'not a counter state');
    assert.deepEqual(loss.lostValue, { version: 2, something: 'else' });
    assert.equal(loss.recoveredFrom, `${again.backend.where}.prev`);
    const keys = (await raw((c) => c.keys('s:state:counter:n1:unreadable-*'))) as string[];
    assert.equal(keys.length, 1);
    assert.equal(loss.movedTo, `Redis ${conns[0].where}, key "${keys[0]}"`);
    assert.deepEqual(JSON.parse((await raw((c) => c.hGetAll(keys[0]))).json), { version: 2, something: 'else' }, 'kept for a human');
    // the recovered state is written back at the next change
    await add(again.keeper, 'c');
    assert.deepEqual(JSON.parse((await raw((c) => c.hGetAll('s:state:counter:n1'))).json).items, ['a', 'c']);
  });

  it('something that is not our hash under the key (WRONGTYPE), or JSON that does not parse, is moved aside; without a good copy it starts clean', async () => {
    await raw((c) => c.set('s:state:counter:n1', 'a string someone put here'));
    const a = keeperOn(await connect());
    assert.deepEqual(await a.keeper.ready, { n: 0, items: [] });
    assert.match(a.keeper.loss!.error, /WRONGTYPE/);
    assert.equal(a.keeper.loss!.recoveredFrom, undefined);
    assert.equal(await raw((c) => c.exists('s:state:counter:n1')), 0);
    assert.equal(((await raw((c) => c.keys('s:state:counter:n1:unreadable-*'))) as string[]).length, 1);

    await raw((c) => c.hSet('s:state:counter:n2', { json: '{"version":1,"n":3,"ite', savedAt: '1767600000000' }));
    const b = keeperOn(await connect(), {}, 'counter:n2');
    assert.deepEqual(await b.keeper.ready, { n: 0, items: [] });
    assert.equal(b.keeper.loss!.lostText, '{"version":1,"n":3,"ite', 'the text, for salvaging a cursor');
    assert.equal(b.keeper.loss!.savedAt, 1767600000000);
  });

  it('Redis down: record rejects with RedisUnavailableError (not stored); a keeper loading meanwhile rejects ready and sets nothing aside', async () => {
    const redis = await connect();
    const { keeper } = keeperOn(redis);
    await keeper.ready;
    await add(keeper, 'a');
    await server().stop();
    await waitFor(() => !redis.up, 'redis seen down');

    const live = await keeper.ready;
    live.n++;
    live.items.push('b');
    await assert.rejects(Promise.resolve(keeper.record({ add: 'b' })), RedisUnavailableError);
    assert.ok(errors.some((e) => e instanceof RedisUnavailableError), 'reported through onError too');

    // the other instance starting now knows nothing: ready rejects, it does not start clean
    const other = keeperOn(redis);
    await assert.rejects(other.keeper.ready, RedisUnavailableError);
    assert.throws(() => other.keeper.record({ add: 'x' }), RedisUnavailableError, 'nothing can be recorded on a state never loaded');
    await other.keeper.close(false); // closes without writing anything

    await server().start();
    await waitFor(() => redis.up, 'redis back');
    // what was stored before the outage is intact; nothing was moved aside
    const after = keeperOn(redis);
    assert.deepEqual(await after.keeper.ready, { n: 1, items: ['a'] });
    assert.equal(after.keeper.loss, null);
    assert.deepEqual(await raw((c) => c.keys('s:state:*unreadable*')), []);
    // the first keeper's change that failed is written by its next flush
    await keeper.flush();
    assert.deepEqual(JSON.parse((await raw((c) => c.hGetAll('s:state:counter:n1'))).json).items, ['a', 'b']);
  });

  it('fenced by a lease: a holder writes; once the lease is another\'s, its writes are refused and change nothing', async () => {
    const ra = await connect();
    const rb = await connect();
    const la = new Lease(ra, 'counter:n1', { ttlMs: 300 });
    const lb = new Lease(rb, 'counter:n1', { ttlMs: 300 });
    assert.equal(await la.attempt(), true);
    const a = keeperOn(ra, { fence: { key: ra.key('lease', 'counter:n1'), token: la.token } });
    await a.keeper.ready;
    await add(a.keeper, 'a');

    // a stops renewing (a stalled process); its lease runs out and b takes it
    await waitFor(async () => lb.attempt(), 'b holds the lease', 5000);
    const b = keeperOn(rb, { fence: { key: rb.key('lease', 'counter:n1'), token: lb.token } });
    assert.deepEqual(await b.keeper.ready, { n: 1, items: ['a'] });
    await add(b.keeper, 'b');
    await assert.rejects(add(a.keeper, 'late'), StateFencedError);
    await assert.rejects(a.backend.moveAside(), StateFencedError);
    assert.deepEqual(JSON.parse((await raw((c) => c.hGetAll('s:state:counter:n1'))).json).items, ['a', 'b'], 'b\'s state stands');
    await lb.stop();
  });

  it('a removed node\'s state expires (the other instance may still run it); a later write keeps it for good', async () => {
    const redis = await connect();
    const { keeper } = keeperOn(redis, { removedTtlMs: 60_000 });
    await keeper.ready;
    await add(keeper, 'a');
    await add(keeper, 'b');
    await keeper.close(true);
    const ttl = await raw((c) => c.pTTL('s:state:counter:n1'));
    assert.ok(ttl > 0 && ttl <= 60_000, `expiry set (${ttl})`);
    assert.ok((await raw((c) => c.pTTL('s:state:counter:n1:prev'))) > 0);

    const other = keeperOn(redis);
    assert.deepEqual(await other.keeper.ready, { n: 2, items: ['a', 'b'] });
    await add(other.keeper, 'c');
    assert.equal(await raw((c) => c.pTTL('s:state:counter:n1')), -1, 'no expiry on the new snapshot');
    assert.equal(await raw((c) => c.pTTL('s:state:counter:n1:prev')), -1, 'nor on the copy it replaced');
  });

  it('with a codec (tokens) the stored text is encrypted and restored', async () => {
    const codec = secretCodec('a credential secret');
    const { keeper } = keeperOn(await connect(), { codec });
    await keeper.ready;
    await add(keeper, 'token-value');
    const text = (await raw((c) => c.hGetAll('s:state:counter:n1'))).json;
    assert.ok(!text.includes('token-value'), 'not in clear text');
    const other = keeperOn(await connect(), { codec });
    assert.deepEqual((await other.keeper.ready).items, ['token-value']);
    const wrongKey = keeperOn(await connect(), { codec: secretCodec('another secret') });
    await wrongKey.keeper.ready;
    assert.match(wrongKey.keeper.loss!.error, /credentialSecret/);
  });
});

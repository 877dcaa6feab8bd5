/**
 * Leases against a real redis-server: one holder at a time, renewal, release, a holder that dies
 * (stops renewing) replaced by the other contender, Redis stopped under a holder.
 */
import { strict as assert } from 'node:assert';
import { SharedRedis } from '../../src/ha/connection';
import { Lease, type LeaseOptions } from '../../src/ha/lease';
import { redisSettings } from '../../src/ha/options';
import { useRedisServer, waitFor, withRedis, type RawRedis } from '../helpers/redis-server';


/** A plain client beside the code under test, to look at what it wrote. */
describe('ha/lease (real redis-server)', function () {
  this.timeout(30_000);
  const { server } = useRedisServer();
  const conns: SharedRedis[] = [];
  const leases: Lease[] = [];
  const connect = async () => {
    const r = new SharedRedis(redisSettings({ port: server().port, prefix: 'l:', timeoutMs: 1000 }));
    conns.push(r);
    await waitFor(() => r.up, 'redis up');
    return r;
  };
  /** A contender with its own connection, recording what it was told. */
  const contender = async (name: string, opts: Partial<LeaseOptions> = {}) => {
    const events: string[] = [];
    const redis = await connect();
    const lease = new Lease(redis, name, {
      ttlMs: 400,
      onGained: () => events.push('gained'),
      onLost: (why) => events.push(`lost:${why}`),
      ...opts,
    });
    leases.push(lease);
    return { lease, events, redis };
  };
  const raw = <T>(fn: (c: RawRedis) => Promise<T>): Promise<T> => withRedis(server().url, fn);
  afterEach(async () => {
    for (const l of leases.splice(0)) await l.stop();
    for (const r of conns.splice(0)) await r.close();
    if (!server().running) await server().start();
    await raw((c) => c.flushAll());
  });

  it('one of two contenders gets the lease; the other does not while it is held and renewed', async () => {
    const a = await contender('pull');
    const b = await contender('pull');
    assert.equal(await a.lease.attempt(), true);
    assert.equal(await b.lease.attempt(), false);
    a.lease.start();
    b.lease.start();
    // several lease times of renewals; b must never get it meanwhile
    const renewalsSeen = new Set<number>();
    await waitFor(async () => {
      renewalsSeen.add(await raw((c) => c.pTTL('l:lease:pull')));
      return renewalsSeen.size >= 5;
    }, 'renewals');
    assert.equal(a.lease.held, true);
    assert.equal(b.lease.held, false);
    assert.deepEqual(b.events, []);
    assert.deepEqual(a.events, ['gained']);
    assert.equal(await raw((c) => c.get('l:lease:pull')), a.lease.token);
  });

  it('stop() releases the lease and the other contender takes over', async () => {
    const a = await contender('pull');
    const b = await contender('pull');
    assert.equal(await a.lease.attempt(), true);
    b.lease.start();
    await a.lease.stop();
    assert.deepEqual(a.events, ['gained', 'lost:released']);
    await waitFor(() => b.lease.held, 'b takes over');
    assert.deepEqual(b.events, ['gained']);
  });

  it('a holder that dies (stops renewing, never releases) is replaced once its lease runs out, never overlapping', async () => {
    const a = await contender('pull');
    let aHeldWhenBGained: boolean | null = null;
    const b = await contender('pull', { onGained: () => { aHeldWhenBGained = a.lease.held; } });
    a.lease.start();
    await waitFor(() => a.lease.held, 'a holds');
    b.lease.start();
    // the process "dies": its connection is gone, so no renewal and no release reaches Redis
    await a.redis.close();
    await waitFor(() => b.lease.held, 'b takes over', 10_000);
    assert.equal(aHeldWhenBGained, false, 'a counted its lease as run out before b got it');
    assert.ok(a.events.includes('lost:expired'), `a was told: ${a.events.join(',')}`);
    assert.equal(await raw((c) => c.get('l:lease:pull')), b.lease.token);
  });

  it('a lease taken from under the holder (key changed) is reported lost at the next renewal', async () => {
    const a = await contender('pull');
    a.lease.start();
    await waitFor(() => a.lease.held, 'a holds');
    await raw((c) => c.set('l:lease:pull', 'someone-else', { expiration: { type: 'PX', value: 10_000 } } as any));
    await waitFor(() => a.events.includes('lost:taken'), 'lost:taken');
    assert.equal(a.lease.held, false);
    await a.lease.stop();
    assert.equal(await raw((c) => c.get('l:lease:pull')), 'someone-else', 'stop() does not delete a lease that is not ours');
  });

  it('Redis stopped under the holder: the lease counts as run out; after the restart one contender holds it again', async () => {
    const errors: Error[] = [];
    const a = await contender('pull', { onError: (e) => errors.push(e) });
    a.lease.start();
    await waitFor(() => a.lease.held, 'a holds');
    await server().stop();
    await waitFor(() => a.events.includes('lost:expired'), 'a gives up when it cannot renew');
    assert.equal(a.lease.held, false);
    assert.ok(errors.length > 0, 'renewal failures are reported');
    await server().start();
    await waitFor(() => a.lease.held, 'held again after the restart', 20_000);
    assert.equal(a.events.filter((e) => e === 'gained').length, 2);
  });

  it('leases of different names are independent', async () => {
    const a = await contender('one');
    const b = await contender('two');
    assert.equal(await a.lease.attempt(), true);
    assert.equal(await b.lease.attempt(), true);
  });

  it('refuses a lease time under 10 ms, an interval not below the lease time, an empty name', async () => {
    const r = await connect();
    assert.throws(() => new Lease(r, 'x', { ttlMs: 5 }), RangeError);
    assert.throws(() => new Lease(r, 'x', { ttlMs: NaN }), RangeError);
    assert.throws(() => new Lease(r, 'x', { ttlMs: 1000, intervalMs: 1000 }), RangeError);
    assert.throws(() => new Lease(r, 'x', { ttlMs: 1000, intervalMs: 0 }), RangeError);
    assert.throws(() => new Lease(r, '', { ttlMs: 1000 }), RangeError);
  });
});

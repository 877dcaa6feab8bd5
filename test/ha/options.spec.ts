import { strict as assert } from 'node:assert';
import { redisSettings, RedisConfigError } from '../../src/ha/options';

const socket = (s: ReturnType<typeof redisSettings>) => s.client.socket as Record<string, any>;

describe('ha/options: cdrflow-redis settings to client options', () => {
  it('defaults to 127.0.0.1:6379, database 0, prefix cdrflow:, no TLS, commands failing while offline', () => {
    const s = redisSettings({});
    assert.equal(socket(s).host, '127.0.0.1');
    assert.equal(socket(s).port, 6379);
    assert.equal(socket(s).tls, undefined);
    assert.equal(s.client.database, 0);
    assert.equal(s.prefix, 'cdrflow:');
    assert.equal(s.client.disableOfflineQueue, true);
    assert.equal(s.where, '127.0.0.1:6379');
    assert.equal(s.client.username, undefined);
  });

  it('takes host, port, database, prefix and credentials from the fields', () => {
    const s = redisSettings({ host: 'redis.lan', port: 6380, database: 3, prefix: 'site-a:', username: 'cdr', password: 'pw' });
    assert.equal(socket(s).host, 'redis.lan');
    assert.equal(socket(s).port, 6380);
    assert.equal(s.client.database, 3);
    assert.equal(s.prefix, 'site-a:');
    assert.equal(s.client.username, 'cdr');
    assert.equal(s.client.password, 'pw');
    assert.equal(s.where, 'redis.lan:6380/3');
  });

  it('a password alone logs in as the default user (requirepass servers)', () => {
    assert.equal(redisSettings({ password: 'pw' }).client.username, 'default');
  });

  it('a redis:// URL wins over host/port and carries database and credentials; the fields win over URL credentials', () => {
    const s = redisSettings({ url: 'redis://u%40x:p%3A1@10.0.0.9:7000/2', host: 'ignored', port: 1 });
    assert.equal(socket(s).host, '10.0.0.9');
    assert.equal(socket(s).port, 7000);
    assert.equal(s.client.database, 2);
    assert.equal(s.client.username, 'u@x');
    assert.equal(s.client.password, 'p:1');
    const f = redisSettings({ url: 'redis://a:b@h', username: 'field', password: 'fieldpw' });
    assert.equal(f.client.username, 'field');
    assert.equal(f.client.password, 'fieldpw');
    assert.ok(!f.where.includes('fieldpw') && !f.where.includes('b@'), 'where never shows credentials');
  });

  it('rediss:// and tls turn TLS on with the CA and certificate checking (on unless turned off)', () => {
    const u = redisSettings({ url: 'rediss://cache.example:6380', ca: 'PEM' });
    assert.equal(socket(u).tls, true);
    assert.equal(socket(u).ca, 'PEM');
    assert.equal(socket(u).rejectUnauthorized, true);
    assert.equal(socket(u).servername, 'cache.example');
    const t = redisSettings({ host: '10.1.1.1', tls: true, verifyTls: false });
    assert.equal(socket(t).tls, true);
    assert.equal(socket(t).rejectUnauthorized, false);
    assert.equal(socket(t).servername, undefined, 'no SNI for an address');
  });

  const bad: Array<[string, Parameters<typeof redisSettings>[0], RedisConfigError['code']]> = [
    ['a URL that is not one', { url: 'not a url' }, 'url'],
    ['another scheme', { url: 'http://redis:6379' }, 'url'],
    ['a URL path that is not a database', { url: 'redis://h/abc' }, 'database'],
    ['a host with spaces', { host: 'two words' }, 'host'],
    ['port 0', { port: 0 }, 'port'],
    ['port 70000', { port: 70000 }, 'port'],
    ['a fractional port', { port: 63.5 }, 'port'],
    ['a negative database', { database: -1 }, 'database'],
    ['a fractional database', { database: 1.5 }, 'database'],
    ['a prefix with a space', { prefix: 'a b' }, 'prefix'],
    ['a prefix with a glob character', { prefix: 'cdr*' }, 'prefix'],
    ['a prefix of 65 characters', { prefix: 'x'.repeat(65) }, 'prefix'],
  ];
  for (const [what, input, code] of bad) {
    it(`refuses ${what} (${code})`, () => {
      assert.throws(() => redisSettings(input), (err: unknown) => err instanceof RedisConfigError && err.code === code);
    });
  }
});

/**
 * The state kit's rules that are not the persistence itself (test/common/persist.spec.ts): which context
 * stores count, the `default` alias, a choice that cannot be honoured, the editor's list, a store
 * that really is used when picked, and a shared state (Redis) picked over both.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { persistentStores, resolveStore, nodeState } from '../../../src/nodes/lib/state';
import { expectShape } from '../../../src/common/persist';
import cdrflowRedis = require('../../../src/nodes/cdrflow-redis');
import { useRedisServer, waitFor, withRedis, type RawRedis } from '../../helpers/redis-server';
import cmsCdrIn = require('../../../src/nodes/cms-cdr-in');
import { helper, capture, useTempUserDir } from '../../helpers/red';
import { mividasPosts } from '../../helpers/fixtures';
import supertest from 'supertest';

/** A plain client beside the code under test, to look at what it wrote. */

describe('nodes/lib/state: which store', () => {
  const custom = { get() {}, set() {} }; // a store module given as an object (a Redis plugin, say)

  it('counts a store unless its module is the memory store; a `default` that names another store is an alias', () => {
    assert.deepEqual(persistentStores({}), []);
    assert.deepEqual(persistentStores({ contextStorage: { default: { module: 'memory' }, file: { module: 'localfilesystem' } } }), ['file']);
    assert.deepEqual(persistentStores({ contextStorage: { default: 'file', file: { module: 'localfilesystem' } } }), ['file']);
    assert.deepEqual(persistentStores({ contextStorage: { default: { module: custom } } }), ['default'], 'a shared store as the default is offered');
    assert.deepEqual(persistentStores({ contextStorage: { default: { module: 'localfilesystem' }, mem: { module: 'memory' } } }), ['default']);
  });

  it('resolves a choice by the same rule, and says when it cannot be honoured', () => {
    const settings = { contextStorage: { default: 'file', file: { module: 'localfilesystem' }, mem: { module: 'memory' } } };
    assert.deepEqual(resolveStore(settings, ''), { store: null, honoured: true });
    assert.deepEqual(resolveStore(settings, 'default'), { store: 'file', honoured: true });
    assert.deepEqual(resolveStore(settings, 'file'), { store: 'file', honoured: true });
    assert.deepEqual(resolveStore(settings, 'mem'), { store: null, honoured: false });
    assert.deepEqual(resolveStore(settings, 'gone'), { store: null, honoured: false });
    assert.deepEqual(resolveStore({ contextStorage: { default: { module: custom } } }, 'default'), { store: 'default', honoured: true });
  });
});

describe('nodes/lib/state in a runtime', () => {
  const { dir } = useTempUserDir('each');
  const { module: node, red } = capture(cmsCdrIn as any);
  const flow = (stateStore: string) => [{ id: 'in', type: 'cms-cdr-in', path: '/cdr', stateStore, wires: [[]] }];

  it('a store that cannot be honoured is named in a warning and the file is used', async () => {
    helper.settings({ userDir: dir(), contextStorage: { mem: { module: 'memory' } } });
    await helper.load(node, flow('mem'));
    const warnings = (helper.getNode('in').warn as any).getCalls().map((c: any) => String(c.args[0]));
    assert.ok(warnings.some((w: string) => /"mem" is not a persistent store/.test(w) && w.includes(path.join(dir(), 'cdrflow-state'))), warnings.join('\n'));
    assert.equal((await supertest(red.RED.httpNode).post('/cdr').set('content-type', 'text/xml').send(mividasPosts()[0])).status, 200);
    assert.ok(fs.readdirSync(path.join(dir(), 'cdrflow-state')).some((f) => f.startsWith('cms-cdr-in-in')));
  });

  it('a persistent default store picked as "default" is the store used: no file is written', async () => {
    const kept = new Map<string, unknown>();
    // a minimal context store plugin, as a shared (say, Redis-backed) store would be given
    const shared = function () {
      return {
        open: () => Promise.resolve(), close: () => Promise.resolve(),
        get: (scope: string, key: string, cb: (e: null, v?: unknown) => void) => cb(null, kept.get(`${scope}/${key}`)),
        set: (scope: string, key: string, value: unknown, cb: (e: null) => void) => { kept.set(`${scope}/${key}`, value); cb(null); },
        keys: (_s: string, cb: (e: null, k: string[]) => void) => cb(null, []),
        delete: () => Promise.resolve(), clean: () => Promise.resolve(),
      };
    };
    helper.settings({ userDir: dir(), contextStorage: { default: { module: shared } } } as any);
    try {
      // the test helper never loads settings.contextStorage itself: do it before the flows start
      await helper.load([async () => (helper as any)._context.load(), node] as any, flow('default'));
      assert.equal((await supertest(red.RED.httpNode).post('/cdr').set('content-type', 'text/xml').send(mividasPosts()[0])).status, 200);
      assert.ok([...kept.keys()].some((k) => k.endsWith('/cdrflow-state')), [...kept.keys()].join(', '));
      assert.equal(fs.existsSync(path.join(dir(), 'cdrflow-state')), false, 'nothing kept on the side in a file');
    } finally {
      await helper.unload();
      await (helper as any)._context.close();
    }
  });

  it('the editor gets the same list from GET cdrflow/state-stores', async () => {
    helper.settings({ userDir: dir(), contextStorage: { default: 'file', file: { module: 'localfilesystem' }, mem: { module: 'memory' } } });
    await helper.load(node, flow(''));
    const res = await helper.request().get('/cdrflow/state-stores').expect(200);
    assert.deepEqual(res.body, { stores: ['file'] });
  });
});

describe('nodes/lib/state with a shared state (cdrflow-redis, real redis-server)', function () {
  this.timeout(30_000);
  const { dir } = useTempUserDir('each');
  const { server } = useRedisServer();
  const redisMod = capture(cdrflowRedis as any);
  /**
   * A minimal stateful node on the kit: counts the messages it got, one recorded change each. It
   * borrows comx-cdr-fetch's catalog for the kit's warnings.
   */
  const probe = (RED: any) => {
    RED.nodes.registerType('state-probe', function (this: any, def: any) {
      RED.nodes.createNode(this, def);
      const shared = def.redis ? (RED.nodes.getNode(def.redis) as any).cdrflow.get() : undefined;
      const state = nodeState<{ n: number }>(RED, this, {
        type: 'comx-cdr-fetch',
        store: def.stateStore,
        shared,
        restore: (saved) => {
          expectShape(saved === undefined || typeof (saved as any)?.n === 'number', 'not a probe state');
          return { n: (saved as any)?.n ?? 0 };
        },
        snapshot: (live) => ({ n: live.n }),
      });
      this.where = state.where;
      this.on('input', async (_msg: unknown, _send: unknown, done: (e?: Error) => void) => {
        try {
          const live = await state.ready;
          live.n++;
          await state.record({ n: live.n });
          done();
        } catch (err) {
          done(err as Error);
        }
      });
      this.on('close', (removed: boolean, done: () => void) => {
        state.close(removed).catch(() => undefined).then(() => done());
      });
    });
  };
  const stateKey = 'kit:state:comx-cdr-fetch:p';
  const raw = <T>(fn: (c: RawRedis) => Promise<T>): Promise<T> => withRedis(server().url, fn);
  const flow = (p: Record<string, unknown>) => [
    { id: 'r', type: 'cdrflow-redis', port: server().port, prefix: 'kit:', timeout: '1' },
    { id: 'p', type: 'state-probe', ...p },
  ];
  afterEach(async () => {
    await raw((c) => c.flushAll());
  });

  it('with a cdrflow-redis node the state is in Redis (no file, the store choice not used); without it the file, as before', async () => {
    helper.settings({ userDir: dir(), contextStorage: { file: { module: 'localfilesystem' } } });
    await helper.load([redisMod.module, probe] as any, flow({ redis: 'r', stateStore: 'file' }));
    const p = helper.getNode('p') as any;
    assert.equal(p.where, `Redis 127.0.0.1:${server().port}, key "${stateKey}"`);
    await waitFor(() => (helper.getNode('r') as any).cdrflow.get().redis.up, 'redis up');
    p.receive({});
    p.receive({});
    await waitFor(async () => (await raw((c) => c.hGet(stateKey, 'json'))) === '{"n":2}', 'both changes in Redis');
    assert.equal(fs.existsSync(path.join(dir(), 'cdrflow-state')), false, 'no state file');
    assert.deepEqual((p.warn as any).getCalls().map((c: any) => String(c.args[0])), [], 'no warning: the store choice is not used with a shared state');

    // a redeploy (or the other instance) resumes from Redis
    await helper.unload();
    await helper.load([redisMod.module, probe] as any, flow({ redis: 'r' }));
    await waitFor(() => (helper.getNode('r') as any).cdrflow.get().redis.up, 'redis up');
    helper.getNode('p').receive({});
    await waitFor(async () => (await raw((c) => c.hGet(stateKey, 'json'))) === '{"n":3}', 'counted on from 2');

    // without the shared state: the file, as it always was
    await helper.unload();
    await helper.load([redisMod.module, probe] as any, flow({}));
    const local = helper.getNode('p') as any;
    assert.equal(local.where, path.join(dir(), 'cdrflow-state', 'comx-cdr-fetch-p.json'));
    local.receive({});
    // the file store journals the change (a snapshot follows later)
    await waitFor(() => fs.existsSync(`${local.where}.log`) && fs.readFileSync(`${local.where}.log`, 'utf8') === '{"n":1}\n', 'the file\'s journal');
  });

  it('Redis stopped before the node starts: its changes fail for Catch (nothing assumed, no file instead)', async () => {
    helper.settings({ userDir: dir() });
    await server().stop();
    try {
      const flowWithCatch = [
        { id: 'tab', type: 'tab' },
        ...flow({ redis: 'r', z: 'tab' }),
        { id: 'c', type: 'catch', z: 'tab', scope: null, wires: [['caught']] },
        { id: 'caught', type: 'helper', z: 'tab' },
      ];
      await helper.load([redisMod.module, probe] as any, flowWithCatch);
      const caught: any[] = [];
      helper.getNode('caught').on('input', (m: any) => caught.push(m));
      helper.getNode('p').receive({});
      await waitFor(() => caught.length === 1, 'the failure caught');
      assert.match(caught[0].error.message, /unavailable/);
      assert.equal(fs.existsSync(path.join(dir(), 'cdrflow-state')), false, 'never fell back to a file');
    } finally {
      await server().start();
    }
    assert.equal(await raw((c) => c.exists(stateKey)), 0, 'nothing written');
  });
});

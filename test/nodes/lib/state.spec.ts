/**
 * The state kit's rules that are not the persistence itself (test/common/persist.spec.ts): which context
 * stores count, the `default` alias, a choice that cannot be honoured, the editor's list, and a store
 * that really is used when picked.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { persistentStores, resolveStore } from '../../../src/nodes/lib/state';
import cmsCdrIn = require('../../../src/nodes/cms-cdr-in');
import { helper, capture, useTempUserDir } from '../../helpers/red';
import { mividasPosts } from '../../helpers/fixtures';
import supertest from 'supertest';

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

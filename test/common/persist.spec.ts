import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonFileStore, DebouncedSaver } from '../../src/common/persist';

describe('common/persist', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-persist-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes atomically, readable by the owner only, and the last of concurrent saves wins', async () => {
    const store = new JsonFileStore<{ n: number }>(path.join(dir, 'sub', 'state.json'));
    await Promise.all(Array.from({ length: 20 }, (_, n) => store.save({ n })));
    assert.deepEqual(await store.load(), { n: 19 });
    assert.equal(fs.statSync(store.file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(path.dirname(store.file)), ['state.json'], 'no temporary files left');
    await store.clear();
    assert.equal(await store.load(), undefined);
  });

  it('sets a damaged file aside and starts empty', async () => {
    const file = path.join(dir, 'state.json');
    fs.writeFileSync(file, '{"n": 1');
    const store = new JsonFileStore(file);
    assert.equal(await store.load(), undefined);
    assert.ok(fs.readdirSync(dir).some((f) => f.startsWith('state.json.corrupt-')));
  });

  it('coalesces changes into one write and flushes what is pending', async () => {
    let writes = 0;
    let value = 0;
    const store = { load: async () => undefined, clear: async () => undefined, save: async () => { writes++; } };
    const saver = new DebouncedSaver(store, () => value, 10_000, () => undefined);
    for (let i = 0; i < 100; i++) {
      value = i;
      saver.changed();
    }
    assert.equal(writes, 0);
    await saver.flush();
    assert.equal(writes, 1);
    await saver.flush();
    assert.equal(writes, 1, 'nothing pending, nothing written');
  });
});

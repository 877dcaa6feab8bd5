import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fork } from 'node:child_process';
import { FileBackend, StateKeeper, StateShapeError, expectShape, secretCodec } from '../../src/common/persist';

/** A tiny state for the tests: a list of numbers, each journal entry adds one. */
interface Nums { n: number[] }
function restoreNums(saved: unknown, journal: unknown[]): Nums {
  const s = saved as Nums | undefined;
  expectShape(s === undefined || (s && Array.isArray(s.n) && s.n.every(Number.isInteger)), 'not {n: integer[]}');
  const out = { n: s ? [...s.n] : [] };
  for (const e of journal) {
    expectShape(Number.isInteger(e), 'a journal entry is not an integer');
    if (!out.n.includes(e as number)) out.n.push(e as number);
  }
  return out;
}

describe('common/persist', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-persist-'));
    file = path.join(dir, 'sub', 'state.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const keeper = (live: { v: Nums }, errors: Error[] = [], opts: { minJournalBytes?: number; backend?: FileBackend } = {}) => new StateKeeper<Nums>({
    backend: opts.backend ?? new FileBackend(file),
    restore: restoreNums,
    snapshot: () => live.v,
    minJournalBytes: opts.minJournalBytes,
    onError: (e) => errors.push(e),
  });

  it('writes snapshots atomically and owner-only, keeps the previous one, and a missing file is a clean start', async () => {
    const live = { v: { n: [] as number[] } };
    const k = keeper(live);
    assert.deepEqual(await k.ready, { n: [] });
    assert.equal(k.loss, null);
    live.v = { n: [1] };
    k.changed();
    await k.flush();
    live.v = { n: [1, 2] };
    k.changed();
    await k.flush();
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { n: [1, 2] });
    assert.deepEqual(JSON.parse(fs.readFileSync(`${file}.prev`, 'utf8')), { n: [1] });
    assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), ['state.json', 'state.json.prev'], 'no temporary files left');
  });

  it('journal entries are on disk when record() returns, replayed on load, and folded into the next snapshot', async () => {
    const live = { v: { n: [] as number[] } };
    const k = keeper(live);
    live.v = await k.ready;
    for (const i of [5, 6, 7]) {
      live.v.n.push(i);
      k.record(i);
      // read by another reader at once: nothing waits for a timer or a flush
      assert.match(fs.readFileSync(`${file}.log`, 'utf8'), new RegExp(`^${i}$`, 'm'));
    }
    assert.equal(k.writes, 0, 'a recorded change writes no snapshot');
    // a second instance (a restart after a kill) sees everything
    assert.deepEqual(await keeper({ v: { n: [] } }).ready, { n: [5, 6, 7] });
    await k.flush();
    assert.equal(fs.existsSync(`${file}.log`), false, 'journal folded into the snapshot');
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { n: [5, 6, 7] });
  });

  it('a snapshot follows once the journal outweighs the last snapshot, not on every change', async () => {
    const live = { v: { n: [] as number[] } };
    const k = keeper(live, [], { minJournalBytes: 100 });
    live.v = await k.ready;
    for (let i = 0; i < 200; i++) {
      live.v.n.push(i);
      k.record(i);
      await k.settled(); // entries arrive over time, as requests do
    }
    await k.flush();
    // ~3-4 bytes per entry: a snapshot once the journal passes 100 bytes, then once it outweighs the
    // growing snapshot: a handful of writes for 200 changes, not 200
    assert.ok(k.writes >= 3 && k.writes <= 12, `writes: ${k.writes}`);
    assert.deepEqual((await keeper({ v: { n: [] } }).ready).n.length, 200);
  });

  it('entries recorded while a snapshot is being written are kept', async () => {
    const live = { v: { n: [] as number[] } };
    const k = keeper(live);
    live.v = await k.ready;
    live.v.n.push(1);
    k.record(1);
    const flushing = k.flush();
    live.v.n.push(2);
    k.record(2); // after the snapshot was taken, before it is on disk
    await flushing;
    assert.deepEqual(await keeper({ v: { n: [] } }).ready, { n: [1, 2] });
  });

  it('a line cut short by a kill mid-write is skipped, the rest replayed', async () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.log`, '1\n2\n3');
    fs.appendFileSync(`${file}.log`, '\n{"torn');
    assert.deepEqual(await keeper({ v: { n: [] } }).ready, { n: [1, 2, 3] });
  });

  it('a kill right after record() loses nothing (a child process is SIGKILLed after acknowledging)', async () => {
    const script = path.join(dir, 'child.js');
    fs.writeFileSync(script, `
      require(${JSON.stringify(require.resolve('tsx/cjs'))});
      const { FileBackend, StateKeeper } = require(${JSON.stringify(path.resolve(__dirname, '../../src/common/persist.ts'))});
      const k = new StateKeeper({ backend: new FileBackend(${JSON.stringify(file)}), restore: () => ({}), snapshot: () => ({}), onError: () => {} });
      k.ready.then(() => { for (let i = 0; i < 50; i++) k.record(i); process.send('acknowledged'); setInterval(() => {}, 1000); });
    `);
    const child = fork(script, { stdio: 'ignore' });
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal((await keeper({ v: { n: [] } }).ready).n.length, 50);
  });

  for (const [what, content] of [
    ['an unreadable file', '{"n": [1'],
    ['a file of the wrong shape', '{"version": 1}'],
    ['a wrong type inside', '{"n": ["x"]}'],
    ['not an object at all', '42'],
  ] as const) {
    it(`${what}: moved aside, reported, and the last good copy is used`, async () => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, content);
      fs.writeFileSync(`${file}.prev`, '{"n": [7]}');
      const k = keeper({ v: { n: [] } });
      assert.deepEqual(await k.ready, { n: [7] });
      assert.ok(k.loss);
      assert.equal(k.loss.recoveredFrom, `${file}.prev`);
      assert.ok(k.loss.movedTo && k.loss.movedTo.startsWith(`${file}.unreadable-`));
      assert.equal(fs.readFileSync(k.loss.movedTo, 'utf8'), content, 'kept for a human');
      assert.equal(fs.existsSync(file), false);
    });
  }

  it('with no good copy the node starts clean and says what was lost', async () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{"n": "oops", "cursor": 17}');
    const k = keeper({ v: { n: [] } });
    assert.deepEqual(await k.ready, { n: [] });
    assert.equal(k.loss?.recoveredFrom, undefined);
    assert.deepEqual(k.loss?.lostValue, { n: 'oops', cursor: 17 }, 'what could be read, for salvaging');
    assert.match(k.loss!.error, /not \{n: integer\[\]\}/);
  });

  it('a snapshot missing after a crash between the two renames is taken from the previous copy with the journal', async () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.prev`, '{"n": [1]}');
    fs.writeFileSync(`${file}.log.old`, '2\n');
    fs.writeFileSync(`${file}.log`, '3\n');
    const k = keeper({ v: { n: [] } });
    assert.deepEqual(await k.ready, { n: [1, 2, 3] });
    assert.equal(k.loss, null, 'nothing was lost');
  });

  it('removing the node deletes every file', async () => {
    const live = { v: { n: [1] } };
    const k = keeper(live);
    await k.ready;
    k.record(1);
    await k.flush();
    k.record(2);
    await k.close(true);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), []);
  });

  it('encrypts with a key from the secret; another key cannot read it and starts clean', async () => {
    // a value whose digits cannot turn up by chance in the base64 of the envelope
    const live = { v: { n: [918273645] } };
    const k = keeper(live, [], { backend: new FileBackend(file, { codec: secretCodec('s3cret') }) });
    await k.ready;
    k.changed();
    await k.flush();
    const text = fs.readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /918273645/);
    assert.equal(JSON.parse(text).cdrflowEncrypted, 1);
    assert.deepEqual(await keeper({ v: { n: [] } }, [], { backend: new FileBackend(file, { codec: secretCodec('s3cret') }) }).ready, { n: [918273645] });
    const other = keeper({ v: { n: [] } }, [], { backend: new FileBackend(file, { codec: secretCodec('other') }) });
    assert.deepEqual(await other.ready, { n: [] });
    assert.match(other.loss!.error, /credentialSecret/);
  });

  it('an encrypted state keeps no journal: a recorded change rewrites the encrypted file, never a clear-text line', async () => {
    const backend = new FileBackend(file, { codec: secretCodec('s3cret') });
    const live = { v: { n: [] as number[] } };
    const k = keeper(live, [], { backend });
    live.v = await k.ready;
    live.v.n.push(918273645);
    await k.record(918273645);
    assert.equal(fs.existsSync(`${file}.log`), false);
    assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /918273645/);
  });

  it('a failed save is reported and retried with the next flush', async () => {
    const live = { v: { n: [1] } };
    const errors: Error[] = [];
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'sub'), 'a file where the folder should be');
    const k = keeper(live, errors);
    await k.ready;
    k.changed();
    await assert.rejects(k.flush());
    assert.equal(errors.length, 1);
    fs.rmSync(path.join(dir, 'sub'));
    await k.flush();
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { n: [1] });
  });

  it('StateShapeError is what expectShape throws', () => {
    assert.throws(() => expectShape(false, 'x'), StateShapeError);
  });
});

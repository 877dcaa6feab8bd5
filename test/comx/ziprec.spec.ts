import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ComxClient } from '../../src/comx/client';
import { readZipArchive, ArchiveError, type ArchiveProgress } from '../../src/comx/ziprec';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';

const SA = 'Africa/Johannesburg';

/** Every file under dir, hidden ones included, relative. */
function tree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

describe('comx/ziprec', () => {
  const sim = new ComxSimulator(SA);
  let client: ComxClient;
  let dir: string;
  const day = { kind: 'range' as const, format: 'ziprec' as const, start: '20260105', end: '20260106' };

  before(async () => {
    const url = await sim.start();
    client = new ComxClient({ baseUrl: url, user: 'cdr', password: 's3cret', retry: { retries: 0 } });
    sim.calls = generateCalls(Date.UTC(2026, 0, 5, 8), 10, 60_000);
  });
  after(() => sim.close());
  beforeEach(() => {
    sim.faults = {};
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comx-archive-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('streams a ziprec: typed index, recordings saved under their names, progress reported, no staging left', async () => {
    const res = await client.open(day);
    const progress: ArchiveProgress[] = [];
    const out = await readZipArchive(res.body, { zone: SA, saveDir: dir, onProgress: (p) => progress.push(p), totalBytes: res.contentLength });
    const cdrs = out.items.flatMap((i) => (i.kind === 'cdr' ? [i.cdr] : []));
    assert.equal(cdrs.length, 10);
    const withRec = sim.calls.filter((c) => c.recording);
    assert.equal(out.recordings.size, withRec.length);
    for (const c of withRec) {
      const cdr = cdrs.find((x) => x.uniqueId === c.uniqueId)!;
      const ref = out.recordings.get(cdr.line)!;
      assert.equal(ref.saved, true);
      assert.equal(ref.path, path.join(dir, sim.recordingName(c)));
      assert.ok(fs.readFileSync(ref.path!).equals(c.recording!));
      assert.equal(ref.size, c.recording!.length);
    }
    assert.deepEqual(tree(dir), withRec.map((c) => sim.recordingName(c)).sort(), 'only the recordings, no temp files');
    assert.ok(progress.some((p) => p.phase === 'download' && p.bytes > 0));
    const last = progress[progress.length - 1];
    assert.equal(last.phase, 'extract');
    assert.equal(last.entries, withRec.length + 1);
    assert.equal(last.totalEntries, withRec.length + 1);
    await out.cleanup();
  });

  it('extracts only the recordings of wanted CDRs, and keeps attach-only recordings in a temp folder until cleanup', async () => {
    const wanted = sim.calls[0];
    const res = await client.open(day);
    const out = await readZipArchive(res.body, { zone: SA, saveDir: null, attachMaxBytes: 1_000_000, want: (c) => c.uniqueId === wanted.uniqueId });
    assert.equal(out.recordings.size, 1);
    const ref = [...out.recordings.values()][0];
    assert.equal(ref.saved, false);
    assert.ok(fs.readFileSync(ref.path!).equals(wanted.recording!));
    assert.ok(ref.path!.startsWith(os.tmpdir()));
    await out.cleanup();
    assert.ok(!fs.existsSync(ref.path!));
  });

  it('does not extract over the attach limit when nothing is saved', async () => {
    let res = await client.open(day);
    let out = await readZipArchive(res.body, { zone: SA, saveDir: null, attachMaxBytes: 10 });
    assert.ok([...out.recordings.values()].every((r) => r.missing === 'tooLarge' && !r.path));
    await out.cleanup();
    res = await client.open(day);
    out = await readZipArchive(res.body, { zone: SA, saveDir: null, attachMaxBytes: 0 });
    assert.ok([...out.recordings.values()].every((r) => r.missing === 'notKept' && !r.path));
    await out.cleanup();
  });

  it('never writes outside the folder: hostile entry names are skipped and reported (zip slip)', async () => {
    sim.faults.extraEntries = [
      { name: '../escaped.gsm', data: Buffer.from('x') },
      { name: '/tmp/absolute.gsm', data: Buffer.from('x') },
      { name: 'sub/../../../up.gsm', data: Buffer.from('x') },
    ];
    sim.faults.extraIndexLines = ['9.9,2026/01/05/09:00:00,CALLTYPE_INBOUND,200,,0821,CALL_ANSWERED,1,1,1,../escaped.gsm'];
    const inner = path.join(dir, 'rec');
    const res = await client.open(day);
    const out = await readZipArchive(res.body, { zone: SA, saveDir: inner });
    assert.ok(!fs.existsSync(path.join(dir, 'escaped.gsm')));
    assert.ok(!fs.existsSync('/tmp/absolute.gsm') || fs.statSync('/tmp/absolute.gsm').mtimeMs < Date.now() - 60_000);
    assert.equal(out.warnings.filter((w) => /unsafe entry name/.test(w)).length, 3);
    const evil = out.items.find((i) => i.kind === 'cdr' && i.cdr.uniqueId === '9.9');
    assert.ok(evil && evil.kind === 'cdr');
    assert.equal(out.recordings.get(evil.cdr.line)!.missing, 'unsafeName');
    assert.ok(tree(inner).every((f) => !f.includes('..') && !f.startsWith('.')));
  });

  for (const stored of [false, true]) {
    for (const [fault, re] of [['truncateZip', /not a readable zip/], ['corruptZip', /could not be extracted|CRC-32 mismatch/], ['resetMidZip', /broke off/]] as const) {
      it(`${fault} (${stored ? 'stored' : 'deflated'} recordings): an ArchiveError and nothing (not even a partial file) left in the folder`, async () => {
        sim.storeRecordings = stored;
        sim.faults[fault] = 1;
        try {
          const res = await client.open(day);
          await assert.rejects(readZipArchive(res.body, { zone: SA, saveDir: dir }), (err: Error) => err instanceof ArchiveError && re.test(err.message));
          assert.deepEqual(tree(dir), []);
        } finally {
          sim.storeRecordings = false;
        }
      });
    }
  }

  it('extracts stored (uncompressed) recordings byte for byte', async () => {
    sim.storeRecordings = true;
    try {
      const res = await client.open(day);
      const out = await readZipArchive(res.body, { zone: SA, saveDir: dir });
      const withRec = sim.calls.filter((c) => c.recording);
      for (const c of withRec) assert.ok(fs.readFileSync(path.join(dir, sim.recordingName(c))).equals(c.recording!));
      assert.equal(out.recordings.size, withRec.length);
    } finally {
      sim.storeRecordings = false;
    }
  });

  it('an answer without index.txt is an error', async () => {
    const yazl = await import('yazl');
    const z = new yazl.ZipFile();
    z.addBuffer(Buffer.from('x'), 'a.gsm');
    z.end();
    await assert.rejects(readZipArchive(z.outputStream as any, { zone: SA, saveDir: dir }), /no index.txt/);
    assert.deepEqual(tree(dir), []);
  });

});

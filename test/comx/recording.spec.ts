import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ComxClient } from '../../src/comx/client';
import { saveRecording, readLimited, RecordingTooLargeError } from '../../src/comx/recording';
import { safeFileName, isUnsafeEntryName, insideFolder } from '../../src/comx/safe-name';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';

describe('comx/recording and safe names', () => {
  const sim = new ComxSimulator('Africa/Johannesburg');
  let client: ComxClient;
  let dir = '';
  before(async () => {
    client = new ComxClient({ baseUrl: await sim.start(), user: 'cdr', password: 's3cret', retry: { retries: 0 } });
    sim.calls = generateCalls(Date.UTC(2026, 0, 5, 8), 3, 60_000);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comx-recording-'));
  });
  after(async () => {
    await sim.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('makes entry names safe and spots names that try to leave the folder', () => {
    assert.equal(safeFileName('g8266-20130301-093300-1362123180.67.gsm'), 'g8266-20130301-093300-1362123180.67.gsm');
    assert.equal(safeFileName('a/b/c.wav'), 'c.wav');
    assert.equal(safeFileName('..\\..\\evil.wav'), 'evil.wav');
    assert.equal(safeFileName('.hidden'), 'hidden');
    assert.equal(safeFileName('x y;$(rm).gsm'), 'x_y__(rm).gsm');
    assert.equal(safeFileName('..'), 'recording');
    assert.equal(safeFileName('CON.wav'), '_CON.wav');
    for (const bad of ['../x.gsm', '/etc/passwd', 'a/../../x', 'C:\\x.gsm', '..\\x.gsm']) assert.ok(isUnsafeEntryName(bad), bad);
    for (const ok of ['x.gsm', 'dir/x.gsm', 'a..b.gsm']) assert.ok(!isUnsafeEntryName(ok), ok);
  });

  it('refuses a path that would not land directly inside the folder', () => {
    assert.equal(insideFolder(dir, 'a.gsm'), path.join(dir, 'a.gsm'));
    for (const bad of ['../a.gsm', 'sub/a.gsm', '/tmp/a.gsm']) assert.throws(() => insideFolder(dir, bad), /outside/, bad);
  });

  it('saves a raw recording atomically, and refuses to attach one over the limit', async () => {
    const c = sim.calls[0];
    let res = await client.open({ kind: 'id', id: c.uniqueId, format: 'raw' });
    const saved = await saveRecording(res.body, dir, '../' + sim.recordingName(c));
    assert.equal(saved.path, path.join(dir, sim.recordingName(c)));
    assert.equal(saved.size, c.recording!.length);
    assert.deepEqual(fs.readdirSync(dir), [sim.recordingName(c)], 'no partial file left beside it');
    res = await client.open({ kind: 'id', id: c.uniqueId, format: 'raw' });
    await assert.rejects(readLimited(res.body, 10), (err: Error) => err instanceof RecordingTooLargeError && err.limit === 10 && /attach limit/.test(err.message));
    res = await client.open({ kind: 'id', id: c.uniqueId, format: 'raw' });
    assert.ok((await readLimited(res.body, 1e6)).equals(c.recording!));
  });
});

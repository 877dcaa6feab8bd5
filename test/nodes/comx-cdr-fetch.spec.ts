import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as sinon from 'sinon';
import { execFileSync } from 'node:child_process';
import { helper, capture, collect, settle, translate } from '../helpers/red';
import pbxNode from '../../src/nodes/comx-pbx';
import fetchNode from '../../src/nodes/comx-cdr-fetch';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';
import { ComxSync } from '../../src/comx/sync';

const SA = 'Africa/Johannesburg';
const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 5, 8); // 10:00 at the PBX

function flow(sim: ComxSimulator, fetch: Record<string, unknown>, pbx: Record<string, unknown> = {}) {
  return [
    { id: 'tab', type: 'tab' },
    { id: 'pbx', type: 'comx-pbx', url: sim.url, timezone: sim.zone, timeout: 5, retries: 2, ...pbx },
    { id: 'f', type: 'comx-cdr-fetch', z: 'tab', pbx: 'pbx', wires: [['out'], ['bad']], ...fetch },
    { id: 'out', type: 'helper', z: 'tab' },
    { id: 'bad', type: 'helper', z: 'tab' },
    { id: 'c', type: 'catch', z: 'tab', scope: null, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 'tab' },
  ];
}
const creds = (password = 's3cret') => ({ pbx: { user: 'cdr', password } });

/** Polls `cond` (every 10 ms, at most 5 s): for what happens when a runtime gets to it, never a speed check. */
async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await settle(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The incremental state as it is on disk now (what a kill would leave): the snapshot, if any, and the journal after it. */
function onDisk(userDir: string, id = 'f'): ComxSync {
  const file = path.join(userDir, 'cdrflow-state', `comx-cdr-fetch-${id}.json`);
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  const journal = (read(`${file}.log.old`) + read(`${file}.log`)).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const snapshot = read(file);
  return ComxSync.restore(snapshot ? JSON.parse(snapshot) : undefined, journal);
}

describe('comx-cdr-fetch node', function () {
  this.timeout(20_000);
  const sim = new ComxSimulator(SA, 'cdr', 's3cret', () => Date.now());
  let userDir: string;
  let saveDir: string;
  let clock: sinon.SinonFakeTimers;
  const pbx = capture(pbxNode as any);
  const fetch = capture(fetchNode as any);
  const load = (f: unknown[], c: unknown = creds()) => helper.load([pbx.module, fetch.module] as any, f as any, c as any);

  before(async () => {
    await sim.start();
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await sim.close();
    helper.settings({});
  });
  beforeEach(() => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'comx-node-'));
    saveDir = path.join(userDir, 'recordings');
    helper.settings({ userDir, comxPbxRetryBaseMs: 1 } as any);
    clock = sinon.useFakeTimers({ now: T0 + 3 * HOUR, toFake: ['Date'] });
    sim.faults = {};
    sim.requests = [];
    sim.calls = generateCalls(T0, 12, 10 * MIN);
  });
  afterEach(async () => {
    await helper.unload();
    clock.restore();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('range, txt: one typed message per CDR, topic and input properties kept', async () => {
    await load(flow(sim, { mode: 'range', format: 'txt', rangeStart: '202601051000', rangeEnd: '202601051100' }));
    const got = collect(helper.getNode('out'), 6);
    helper.getNode('f').receive({ payload: 'go', topic: 'hourly', correlation: 42 });
    const msgs = await got;
    assert.equal(sim.requests[0], '/commagui/cdr?format=txt&start=202601051000&end=202601051100');
    assert.deepEqual(msgs.map((m) => m.payload.uniqueId), sim.calls.slice(0, 6).map((c) => c.uniqueId));
    const m = msgs[0];
    assert.equal(m.topic, 'comx/cdr');
    assert.equal(m.correlation, 42);
    assert.equal(m.payload.start, '2026-01-05T08:00:00Z');
    assert.equal(m.payload.startLocal, '2026/01/05/10:00:00');
    assert.equal(typeof m.payload.duration, 'number');
    assert.equal(m.comx.mode, 'range');
    assert.equal(m.comx.line, 1);
    assert.ok(!String(m.comx.url).includes('s3cret'));
  });

  it('range from msg: ISO instants converted to PBX local, extended columns, one message per request', async () => {
    sim.calls[0].friendlyName = 'Reception';
    await load(flow(sim, { mode: 'range', format: 'txt', output: 'request' }));
    const got = collect(helper.getNode('out'), 1);
    helper.getNode('f').receive({ start: '2026-01-05T08:00:00Z', end: new Date(T0 + 30 * MIN), extended: true });
    const [m] = await got;
    assert.equal(sim.requests[0], '/commagui/cdr?format=txt&start=202601051000&end=202601051030&extended');
    assert.equal(m.topic, 'comx/cdrs');
    assert.equal(m.payload.length, 3);
    assert.equal(m.payload[0].friendlyName, 'Reception');
    assert.equal(m.payload[0].columns, 15);
    assert.equal(m.comx.count, 3);
  });

  it('incremental: a call still up is fetched by the next poll, nothing twice, and a restart in between loses nothing', async () => {
    // a long call started 10:05 local, ends 12:05; the first poll is at 11:00
    const long = { uniqueId: `${(T0 + 5 * MIN) / 1000 - 1}.500`, startMs: T0 + 5 * MIN, duration: 2 * 3600 };
    sim.calls.push(long);
    clock.setSystemTime(T0 + HOUR);
    const f = flow(sim, { mode: 'incremental', format: 'txt', firstHours: 2, safetyMin: 2 });
    await load(f);
    let got = collect(helper.getNode('out'), 6);
    helper.getNode('f').receive({});
    const first = (await got).map((m) => m.payload.uniqueId);
    assert.deepEqual(first, sim.calls.slice(0, 6).map((c) => c.uniqueId));
    assert.equal(sim.requests[0], '/commagui/cdr?format=txt&start=202601050900&end=202601051058');
    await settle(100);

    // restart: same ids, same userDir
    await helper.unload();
    clock.setSystemTime(T0 + 3 * HOUR);
    await load(f);
    const out = helper.getNode('out');
    got = collect(out, 7);
    helper.getNode('f').receive({});
    const second = (await got).map((m) => m.payload.uniqueId);
    assert.equal(sim.requests[1], '/commagui/cdr?format=txt&start=202601050658&end=202601051258', 'cursor − 4 h overlap');
    assert.deepEqual(second.sort(), [long.uniqueId, ...sim.calls.slice(6, 12).map((c) => c.uniqueId)].sort());
    const extra: any[] = [];
    out.on('input', (m: any) => extra.push(m));
    clock.setSystemTime(T0 + 4 * HOUR);
    helper.getNode('f').receive({});
    await settle(300);
    assert.equal(sim.requests.length, 3);
    assert.deepEqual(extra, [], 'nothing twice');
    assert.equal(onDisk(userDir).cursorMs, T0 + 4 * HOUR - 2 * MIN);
  });

  it('incremental ziprec: recordings saved to the folder, attached under the cap, named in each CDR message', async () => {
    await load(flow(sim, { mode: 'incremental', format: 'ziprec', firstHours: 4, saveDir, attachKb: 10 }));
    const got = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({});
    const msgs = await got;
    for (const m of msgs) {
      const call = sim.calls.find((c) => c.uniqueId === m.payload.uniqueId)!;
      if (!call.recording) {
        assert.equal(m.recording, undefined);
        continue;
      }
      assert.equal(m.recording.path, path.join(saveDir, sim.recordingName(call)));
      assert.ok(fs.readFileSync(m.recording.path).equals(call.recording));
      assert.ok(Buffer.isBuffer(m.recording.buffer) && m.recording.buffer.equals(call.recording), 'under 10 KB: attached');
    }
    assert.deepEqual(fs.readdirSync(saveDir).sort(), sim.calls.filter((c) => c.recording).map((c) => sim.recordingName(c)).sort());
  });

  it('a relative save folder is taken from the user directory', async () => {
    await load(flow(sim, { mode: 'range', format: 'ziprec', rangeStart: '202601051000', rangeEnd: '202601051010', saveDir: 'rec' }));
    const got = collect(helper.getNode('out'), 1);
    helper.getNode('f').receive({});
    const [m] = await got;
    assert.equal(m.recording.path, path.join(userDir, 'rec', sim.recordingName(sim.calls[0])));
  });

  it('one call by id (txt), by exact start (ziprec), the raw recording with its content type, and the extension list without PINs', async () => {
    const call = sim.calls[1];
    await load(flow(sim, { mode: 'id', format: 'txt', uniqueId: call.uniqueId }));
    const out = helper.getNode('out');
    let got = collect(out, 1);
    helper.getNode('f').receive({});
    assert.equal((await got)[0].payload.uniqueId, call.uniqueId);

    got = collect(out, 1);
    helper.getNode('f').receive({ mode: 'start', format: 'ziprec', start: '20260105101000' });
    const [z] = await got;
    assert.equal(sim.requests[1], '/commagui/cdr?format=ziprec&start=20260105101000');
    assert.equal(z.payload.uniqueId, call.uniqueId);
    assert.equal(z.recording.missing, 'notKept', 'no folder, no attach limit');

    got = collect(out, 1);
    helper.getNode('f').receive({ mode: 'id', format: 'raw', id: call.uniqueId });
    const [r] = await got;
    assert.equal(sim.requests[2], `/commagui/cdr?id=${call.uniqueId}`);
    assert.equal(r.topic, 'comx/recording');
    assert.equal(r.contentType, 'audio/x-gsm');
    assert.ok(Buffer.isBuffer(r.payload) && r.payload.equals(call.recording));
    assert.equal(r.filename, sim.recordingName(call));

    got = collect(out, 2);
    helper.getNode('f').receive({ mode: 'users' });
    const users = await got;
    assert.equal(sim.requests[3], '/commagui/cdr?users');
    assert.deepEqual(users.map((u) => [u.topic, u.payload.extension, u.payload.name]), [['comx/user', '200', 'Reception'], ['comx/user', '201', 'Smith, J']]);
    assert.ok(users.every((u) => !('pin' in u.payload)));
  });

  it('401: a catchable "check the user and password" error, asked once', async () => {
    await load(flow(sim, { mode: 'range', format: 'txt' }), creds('wrong'));
    const got = collect(helper.getNode('caught'), 1);
    helper.getNode('f').receive({ payload: 'x' });
    const [err] = await got;
    assert.ok(String(err.error.message).endsWith(translate('comx-cdr-fetch.errors.auth', { status: 401 })), err.error.message);
    assert.equal(sim.requests.length, 1);
  });

  it('5xx: retried with backoff, then a catchable error, and the cursor stays where it was', async () => {
    await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
    const first = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({});
    await first;
    // the cursor is journalled after the window was sent: wait for it, however busy the machine
    for (let i = 0; i < 200 && onDisk(userDir).cursorMs === null; i++) await settle(25);
    const cursor = onDisk(userDir).cursorMs;
    assert.equal(cursor, T0 + 3 * HOUR - 2 * MIN);
    clock.tick(30 * MIN);
    sim.faults.fail500 = 100;
    sim.requests = [];
    const got = collect(helper.getNode('caught'), 1);
    helper.getNode('f').receive({});
    const [err] = await got;
    assert.match(err.error.message, /HTTP 500/);
    assert.equal(sim.requests.length, 3, 'first try + 2 retries');
    await settle(100);
    assert.equal(onDisk(userDir).cursorMs, cursor, 'cursor unchanged');
    sim.faults.fail500 = 0;
    clock.tick(5 * MIN);
    const extra: any[] = [];
    helper.getNode('out').on('input', (m: any) => extra.push(m));
    helper.getNode('f').receive({});
    await settle(300);
    assert.equal(sim.requests.length, 4);
    const start = (r: string) => new URLSearchParams(r.split('?')[1]).get('start');
    assert.equal(start(sim.requests[3]), start(sim.requests[0]), 'the same window start: cursor − overlap');
    assert.deepEqual(extra, [], 'and nothing sent twice');
  });

  it('truncated or corrupt zip: an error, nothing saved, the cursor unchanged', async () => {
    await load(flow(sim, { mode: 'incremental', format: 'ziprec', firstHours: 4, saveDir }));
    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    for (const fault of ['truncateZip', 'corruptZip', 'resetMidZip'] as const) {
      sim.faults[fault] = 1;
      const got = collect(helper.getNode('caught'), 1);
      helper.getNode('f').receive({});
      const [err] = await got;
      assert.match(err.error.message, /zip could not be read|broke while its answer was read/, fault);
    }
    assert.deepEqual(out, []);
    assert.deepEqual(fs.existsSync(saveDir) ? fs.readdirSync(saveDir) : [], []);
    const got = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({});
    await got;
    const starts = sim.requests.map((r) => new URLSearchParams(r.split('?')[1]).get('start'));
    assert.equal(new Set(starts).size, 1, 'the same window every time');
  });

  it('one message per request: a connection reset mid-index loses nothing, the next poll sends every CDR', async () => {
    await load(flow(sim, { mode: 'incremental', format: 'txt', output: 'request', firstHours: 4 }));
    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    sim.faults.resetMidTxt = 1;
    const failed = collect(helper.getNode('caught'), 1);
    helper.getNode('f').receive({});
    await failed;
    assert.deepEqual(out, [], 'nothing sent from the broken answer');
    const got = collect(helper.getNode('out'), 1);
    helper.getNode('f').receive({});
    const [msg] = await got;
    assert.equal(msg.payload.length, 12, 'the CDRs read before the reset were not dropped as already sent');
  });

  it('malformed index lines go to output 2 with line numbers, once per line across overlapping polls', async () => {
    sim.faults.extraIndexLines = ['1.1,2026/01/05/10:00:00,CALLTYPE_INBOUND', '    CALL_ANSWERED,221,216,365211,'];
    await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
    const bad = collect(helper.getNode('bad'), 2);
    const good = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({});
    const [a, b] = await bad;
    await good;
    assert.equal(a.topic, 'comx/malformed');
    assert.deepEqual([a.payload.line, b.payload.line], [13, 14]);
    assert.match(a.payload.reason, /columns/);
    const again: any[] = [];
    helper.getNode('bad').on('input', (m: any) => again.push(m));
    clock.tick(10 * MIN);
    helper.getNode('f').receive({});
    await settle(300);
    assert.equal(sim.requests.length, 2);
    assert.deepEqual(again, []);
  });

  it('msg.reset forgets the cursor and the sent CDRs: the next fetch starts from the first lookback again', async () => {
    await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
    const out = helper.getNode('out');
    let got = collect(out, 12);
    helper.getNode('f').receive({});
    await got;
    const done = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({ reset: true });
    clock.tick(10 * MIN);
    helper.getNode('f').receive({});
    got = done;
    assert.equal((await got).length, 12);
    assert.equal(sim.requests.length, 2);
    assert.equal(new URLSearchParams(sim.requests[1].split('?')[1]).get('start'), '202601050910', 'now − 4 h again (13:10 local − 4 h)');
  });

  it('a large index (5,000 lines) arrives whole, one message per CDR, in order', async () => {
    sim.calls = generateCalls(T0 - 24 * HOUR, 5000, 15_000, { recordings: false, duration: 10 });
    await load(flow(sim, { mode: 'range', format: 'txt' }));
    const got = collect(helper.getNode('out'), 5000, 15_000);
    helper.getNode('f').receive({});
    const msgs = await got;
    assert.deepEqual(msgs.map((m) => m.comx.line), Array.from({ length: 5000 }, (_, i) => i + 1));
  });

  it('msg.tick backpressure: one CDR, then one more per tick', async () => {
    await load(flow(sim, { mode: 'range', format: 'txt', tick: true }));
    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    const f = helper.getNode('f');
    f.receive({});
    await settle(200);
    assert.equal(out.length, 1);
    f.receive({ tick: true });
    await settle(50);
    assert.equal(out.length, 2);
    for (let i = 0; i < 10; i++) f.receive({ tick: true });
    await settle(200);
    assert.equal(out.length, 12);
    assert.equal(sim.requests.length, 1, 'ticks never start a fetch');
  });

  it('warns when the unique ids show the PBX clock runs in another zone than configured', async () => {
    await load(flow(sim, { mode: 'range', format: 'txt' }, { timezone: 'Europe/London' }));
    const warned: string[] = [];
    (helper.getNode('f') as any).on('call:warn', (call: any) => warned.push(String(call.args[0])));
    const got = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({});
    await got;
    await settle(50);
    assert.ok(warned.some((w) => /UTC\+02:00, not Europe\/London/.test(w)), warned.join('\n'));
  });

  it('https: verifies the certificate against the extra CA, refuses an unknown one, and can be told not to verify', async function () {
    let tls: { key: string; cert: string };
    try {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comx-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'k.pem'),
        '-out', path.join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
      tls = { key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8') };
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      this.skip();
      return;
    }
    const secure = new ComxSimulator(SA, 'cdr', 's3cret', () => Date.now());
    await secure.start(tls);
    secure.calls = sim.calls;
    const caFile = path.join(userDir, 'private-ca.pem');
    fs.writeFileSync(caFile, tls.cert);
    try {
      for (const [pbxProps, ok] of [[{ ca: tls.cert }, true], [{ ca: caFile }, true], [{}, false], [{ verifyTls: false }, true]] as const) {
        await load(flow(secure, { mode: 'users' }, pbxProps));
        const got = collect(helper.getNode(ok ? 'out' : 'caught'), ok ? 2 : 1);
        helper.getNode('f').receive({});
        const msgs = await got;
        if (!ok) assert.match(String(msgs[0].error.message), /certificate/i);
        await helper.unload();
      }
    } finally {
      await secure.close();
    }
  });

  it('DST fall-back at the node: a range over the repeated hour gives every call its true UTC start', async () => {
    const berlin = new ComxSimulator('Europe/Berlin', 'cdr', 's3cret', () => Date.now());
    await berlin.start();
    try {
      clock.setSystemTime(Date.UTC(2026, 9, 26));
      berlin.calls = generateCalls(Date.UTC(2026, 9, 24, 23, 30), 20, 10 * MIN, { recordings: false });
      await load(flow(berlin, { mode: 'range', format: 'txt', output: 'request', rangeStart: '202610250100', rangeEnd: '202610250400' }));
      const got = collect(helper.getNode('out'), 1);
      helper.getNode('f').receive({});
      const [m] = await got;
      // local 01:00..03:59 spans 23:00Z..02:59Z (02:xx happens twice)
      assert.deepEqual(m.payload.map((c: any) => c.uniqueId), berlin.calls.filter((c) => c.startMs < Date.UTC(2026, 9, 25, 3)).map((c) => c.uniqueId));
      for (const cdr of m.payload) {
        const call = berlin.calls.find((c) => c.uniqueId === cdr.uniqueId)!;
        assert.equal(cdr.start, new Date(call.startMs).toISOString().replace('.000Z', 'Z'), cdr.startLocal);
      }
      assert.equal(m.payload.filter((c: any) => c.startAmbiguous).length, 12, 'two hours of calls at 02:xx local');
    } finally {
      await berlin.close();
    }
  });

  it('runs fetches one after another, and a redeploy during a slow fetch aborts it', async () => {
    await load(flow(sim, { mode: 'range', format: 'txt', output: 'request' }));
    const got = collect(helper.getNode('out'), 2);
    helper.getNode('f').receive({ start: '202601051000', end: '202601051030', tag: 'a' });
    helper.getNode('f').receive({ start: '202601051030', end: '202601051100', tag: 'b' });
    const [a, b] = await got;
    assert.deepEqual([a.tag, a.payload.length, b.tag, b.payload.length], ['a', 3, 'b', 3]);

    sim.faults.slowMs = 5000;
    sim.aborted = 0;
    helper.getNode('f').receive({});
    await settle(100);
    await helper.unload();
    await settle(100);
    assert.equal(sim.aborted, 1, 'close aborted the request in flight instead of waiting for it');
    sim.faults.slowMs = 0;
  });

  it('a web page where CDRs were expected is a clear error, not a page of malformed lines', async () => {
    sim.faults.htmlPage = true;
    await load(flow(sim, { mode: 'incremental', format: 'txt' }));
    const bad: any[] = [];
    helper.getNode('bad').on('input', (m: any) => bad.push(m));
    const got = collect(helper.getNode('caught'), 1);
    helper.getNode('f').receive({});
    const [e] = await got;
    assert.match(e.error.message, /^(Error: )?the PBX answered with a web page instead of CDRs/);
    assert.deepEqual(bad, []);
  });

  it('a bad request is a catchable error, not a crash, and asks the PBX nothing', async () => {
    await load(flow(sim, { mode: 'range', format: 'raw' }));
    await settle(50);
    const got = collect(helper.getNode('caught'), 2);
    helper.getNode('f').receive({});
    helper.getNode('f').receive({ mode: 'range', format: 'zip' });
    const [a, b] = await got;
    assert.ok(a.error.message.endsWith(translate('comx-cdr-fetch.errors.rawNeedsOne')), a.error.message);
    assert.ok(b.error.message.endsWith(translate('comx-cdr-fetch.errors.format', { format: 'zip' })), b.error.message);
    helper.getNode('f').receive({ mode: 'sideways' });
    const [c] = await collect(helper.getNode('caught'), 1);
    assert.ok(c.error.message.endsWith(translate('comx-cdr-fetch.errors.mode', { mode: 'sideways' })), c.error.message);
    assert.equal(sim.requests.length, 0);
  });

  describe('configuration problems: red status (yellow "not configured" when nothing was entered yet), the reason in the log at deploy, an error for Catch on every message, no request', () => {
    const missingCa = () => path.join(userDir, 'no-such-ca.pem');
    const cases: [string, Record<string, unknown>, Record<string, unknown>, unknown, () => RegExp, boolean][] = [
      ['no PBX chosen', {}, { pbx: '' }, creds(), () => /no Com\.X PBX configured/, true],
      ['a PBX node that does not exist', {}, { pbx: 'gone' }, creds(), () => /no Com\.X PBX configured/, false],
      ['a time zone that is not an IANA zone', { timezone: 'Mars/Olympus' }, {}, creds(), () => /time zone "Mars\/Olympus" is not an IANA time zone/, false],
      ['an extra CA file that cannot be read', { ca: '${CDRFLOW_TEST_CA}' }, {}, creds(), () => new RegExp(`extra CA: ${missingCa().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`), false],
      ['a URL that is not http', { url: 'ftp://pbx.example' }, {}, creds(), () => /URL: only http and https/, false],
      ['no URL', { url: '' }, {}, creds(), () => /URL: not a URL/, true],
      ['no user', {}, {}, { pbx: { password: 'x' } }, () => /no user set/, true],
    ];
    for (const [what, pbxProps, fetchProps, c, problem, unset] of cases) {
      it(what, async () => {
        process.env.CDRFLOW_TEST_CA = missingCa();
        try {
          await load(flow(sim, { mode: 'range', format: 'txt', ...fetchProps }, pbxProps), c);
          const n = helper.getNode('f') as any;
          // not entered yet: at info level (node.log); entered wrong: a warning
          const logged = () => n[unset ? 'log' : 'warn'].getCalls().map((x: any) => String(x.args[0]));
          await waitFor(() => logged().some((w: string) => problem().test(w)), 'the reason in the log at deploy');
          const statuses = n.status.getCalls().map((x: any) => x.args[0]);
          assert.deepEqual(statuses[statuses.length - 1], unset ? { fill: 'yellow', shape: 'ring', text: translate('comx-cdr-fetch.status.notConfigured') }
            : { fill: 'red', shape: 'ring', text: translate('comx-cdr-fetch.status.badConfig') });
          await settle(50);
          const got = collect(helper.getNode('caught'), 2);
          n.receive({ tag: 1 });
          n.receive({ tag: 2 });
          const caught = await got;
          assert.deepEqual(caught.map((m) => m.tag), [1, 2], 'each message fails to Catch');
          for (const m of caught) assert.match(m.error.message, problem());
          assert.equal(sim.requests.length, 0);
          assert.equal(n.status.getCalls().map((x: any) => x.args[0]).slice(-1)[0].text, translate(`comx-cdr-fetch.status.${unset ? 'notConfigured' : 'badConfig'}`), 'the status stays');
        } finally {
          delete process.env.CDRFLOW_TEST_CA;
        }
      });
    }
  });

  describe('state on disk', () => {
    const stateDir = () => path.join(userDir, 'cdrflow-state');
    const stateFile = () => path.join(stateDir(), 'comx-cdr-fetch-f.json');
    const texts = (n: any, kind: 'warn' | 'error') => n[kind].getCalls().map((x: any) => String(x.args[0]));
    const journalLines = () => (fs.existsSync(`${stateFile()}.log`) ? fs.readFileSync(`${stateFile()}.log`, 'utf8').split('\n').filter(Boolean) : []);
    const startOf = (r: string) => new URLSearchParams(r.split('?')[1]).get('start');

    for (const [what, content, recover] of [
      ['a state without a cursor ({"version":1})', '{"version":1}', 'cursor'],
      ['an unreadable state file', '\u0000\u0007 not JSON at all', 'cursor'],
      ['an empty state file', '', 'reset'],
    ] as const) {
      it(`${what}: starts, warns naming both files, and every incremental fetch fails to Catch until msg.${recover}`, async () => {
        fs.mkdirSync(stateDir(), { recursive: true });
        fs.writeFileSync(stateFile(), content);
        await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4, overlapMin: 0 }));
        const n = helper.getNode('f') as any;
        await waitFor(() => texts(n, 'error').some((e: string) => /incremental cursor is lost/.test(e)), 'the lost cursor reported at deploy');
        const moved = fs.readdirSync(stateDir()).find((f) => f.startsWith('comx-cdr-fetch-f.json.unreadable-'));
        assert.ok(moved, fs.readdirSync(stateDir()).join(', '));
        assert.equal(fs.readFileSync(path.join(stateDir(), moved), 'utf8'), content, 'kept as it was');
        assert.ok(texts(n, 'warn').some((w: string) => w.includes(stateFile()) && w.includes(moved)), texts(n, 'warn').join('\n'));
        await settle(50);
        for (let i = 0; i < 2; i++) {
          const got = collect(helper.getNode('caught'), 1);
          n.receive({ tag: i });
          const [e] = await got;
          assert.equal(e.tag, i);
          assert.match(e.error.message, /incremental cursor is lost.*msg\.cursor/);
          const last = n.status.getCalls().slice(-1)[0].args[0];
          assert.equal(last.fill, 'red');
          assert.match(last.text, /cursor lost/);
        }
        assert.equal(sim.requests.length, 0, 'never the first-run lookback in silence');
        // other modes are not held up
        let got = collect(helper.getNode('out'), 2);
        n.receive({ mode: 'users' });
        await got;

        n.receive(recover === 'cursor' ? { cursor: new Date(T0 + HOUR) } : { reset: true });
        got = collect(helper.getNode('out'), recover === 'cursor' ? 6 : 12);
        n.receive({});
        const msgs = await got;
        if (recover === 'cursor') {
          assert.equal(startOf(sim.requests[1]), '202601051100', 'from msg.cursor (09:00Z, 11:00 at the PBX)');
          assert.deepEqual(msgs.map((m) => m.payload.uniqueId), sim.calls.slice(6).map((c) => c.uniqueId));
        } else {
          assert.equal(startOf(sim.requests[1]), '202601050900', 'msg.reset: First fetch hours back, as asked');
        }
        assert.equal(onDisk(userDir).cursorMs, T0 + 3 * HOUR - 2 * MIN);
      });
    }

    it('a damaged state that still shows its cursor: resumes from it with a warning, instead of stopping', async () => {
      fs.mkdirSync(stateDir(), { recursive: true });
      const content = `{"version":1,"cursor":${T0 + 2 * HOUR},"seen":[["f0O8ENbWB`;
      fs.writeFileSync(stateFile(), content);
      await load(flow(sim, { mode: 'incremental', format: 'txt', overlapMin: 60 }));
      const n = helper.getNode('f') as any;
      await waitFor(() => texts(n, 'warn').some((w: string) => /cursor was read from the unreadable state/.test(w)), 'the salvage warning');
      const moved = fs.readdirSync(stateDir()).find((f) => f.startsWith('comx-cdr-fetch-f.json.unreadable-'))!;
      const warning = texts(n, 'warn').find((w: string) => /cursor was read/.test(w));
      assert.ok(warning.includes(path.join(stateDir(), moved)) && warning.includes(new Date(T0 + 2 * HOUR).toISOString()), warning);
      assert.equal(onDisk(userDir).cursorMs, T0 + 2 * HOUR, 'the salvaged cursor is stored at once');
      assert.ok(!texts(n, 'error').some((e: string) => /cursor is lost/.test(e)));
      const got = collect(helper.getNode('out'), 6);
      n.receive({});
      const msgs = await got;
      assert.equal(startOf(sim.requests[0]), '202601051100', 'salvaged cursor (10:00Z) − 60 min overlap, at the PBX');
      assert.deepEqual(msgs.map((m) => m.payload.uniqueId), sim.calls.slice(6).map((c) => c.uniqueId));
    });

    it('a damaged state with a good previous copy: resumes from that copy without asking', async () => {
      fs.mkdirSync(stateDir(), { recursive: true });
      fs.writeFileSync(stateFile(), '{"version":1,"cur');
      fs.writeFileSync(`${stateFile()}.prev`, JSON.stringify({ version: 1, cursor: T0 + HOUR, seen: [] }));
      await load(flow(sim, { mode: 'incremental', format: 'txt', overlapMin: 0 }));
      const n = helper.getNode('f') as any;
      await waitFor(() => texts(n, 'warn').some((w: string) => /last good copy/.test(w)), 'the recovery warning');
      const got = collect(helper.getNode('out'), 6);
      n.receive({});
      await got;
      assert.equal(startOf(sim.requests[0]), '202601051100');
      assert.ok(!texts(n, 'error').some((e: string) => /cursor is lost/.test(e)));
    });

    it('msg.cursor at any time sets where the next fetch starts; one that is not a time is a catchable error that changes nothing', async () => {
      await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4, overlapMin: 0 }));
      const n = helper.getNode('f') as any;
      let got = collect(helper.getNode('out'), 12);
      n.receive({});
      await got;
      for (const bad of ['yesterday', {}, null, Number.NaN, 1e20, '']) {
        const failed = collect(helper.getNode('caught'), 1);
        n.receive({ cursor: bad });
        const [e] = await failed;
        assert.match(e.error.message, /msg\.cursor .* is not a time/);
      }
      assert.equal(onDisk(userDir).cursorMs, T0 + 3 * HOUR - 2 * MIN, 'unchanged');
      n.receive({ cursor: T0 + 90 * MIN });
      n.receive({ cursor: '2026-01-05T09:20:00Z' });
      clock.tick(10 * MIN);
      n.receive({});
      await waitFor(() => sim.requests.length === 2, 'the second fetch');
      assert.equal(startOf(sim.requests[1]), '202601051120', 'the last msg.cursor wins (09:20Z)');
      await settle(100);
      assert.equal(onDisk(userDir).cursorMs, T0 + 3 * HOUR + 8 * MIN, 'the window was committed');
    });

    it('writes only what changed: runs with nothing new add one small journal line each and never rewrite the snapshot', async () => {
      sim.calls = generateCalls(T0, 12, 10 * MIN);
      await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
      const got = collect(helper.getNode('out'), 12);
      helper.getNode('f').receive({});
      await got;
      await waitFor(() => onDisk(userDir).cursorMs !== null, 'the first cursor');
      assert.equal(journalLines().length, 13, 'one line per CDR and one for the window');
      assert.ok(!fs.existsSync(stateFile()), 'no snapshot of the whole state while the journal is small');
      await helper.unload(); // close: the journal is folded into a snapshot
      const snapshot = fs.statSync(stateFile());
      assert.equal(JSON.parse(fs.readFileSync(stateFile(), 'utf8')).seen.length, 12);
      await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
      const runs = 8;
      for (let i = 1; i <= runs; i++) {
        clock.tick(10 * MIN);
        helper.getNode('f').receive({});
        await waitFor(() => journalLines().length === i, `run ${i} journalled`);
      }
      assert.equal(sim.requests.length, 1 + runs);
      for (const line of journalLines()) {
        assert.ok(line.length < 60, line);
        assert.deepEqual(Object.keys(JSON.parse(line)).sort(), ['at', 'c'], 'a window commit, no keys');
      }
      const after = fs.statSync(stateFile());
      assert.equal(after.ino, snapshot.ino, 'the snapshot file was not replaced');
      assert.equal(after.mtimeMs, snapshot.mtimeMs);
      assert.ok(!fs.existsSync(`${stateFile()}.prev`), 'no second snapshot was ever written');
      assert.equal(onDisk(userDir).cursorMs, T0 + 3 * HOUR + runs * 10 * MIN - 2 * MIN);
    });

    it('a kill mid-window or right after a run loses nothing and sends nothing twice: the journal is replayed', async () => {
      await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4, tick: true }));
      const n = helper.getNode('f');
      const out: any[] = [];
      helper.getNode('out').on('input', (m: any) => out.push(m));
      const freeze = (name: string) => {
        // the disk as it is at this instant (what a SIGKILL would leave)
        const dir = path.join(userDir, name);
        fs.cpSync(stateDir(), path.join(dir, 'cdrflow-state'), { recursive: true });
        return dir;
      };
      n.receive({});
      await waitFor(() => out.length === 1, 'the first CDR');
      for (let i = 0; i < 3; i++) n.receive({ tick: true });
      await waitFor(() => out.length === 4, 'four CDRs');
      const midWindow = freeze('killed-mid-window');
      for (let i = 0; i < 8; i++) n.receive({ tick: true });
      await waitFor(() => out.length === 12 && onDisk(userDir).cursorMs !== null, 'the whole window and its cursor');
      const afterRun = freeze('killed-after-run');
      const firstStart = startOf(sim.requests[0]);

      const restart = async (dir: string) => {
        await helper.unload();
        await helper.stopServer();
        helper.settings({ userDir: dir, comxPbxRetryBaseMs: 1 } as any);
        await helper.startServer();
        await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
      };
      await restart(midWindow);
      let got = collect(helper.getNode('out'), 8);
      helper.getNode('f').receive({});
      const rest = await got;
      assert.equal(startOf(sim.requests[1]), firstStart, 'the same window: its cursor had not moved');
      assert.deepEqual(rest.map((m) => m.payload.uniqueId), sim.calls.slice(4).map((c) => c.uniqueId), 'only the CDRs not sent before the kill');

      await restart(afterRun);
      clock.tick(10 * MIN);
      const extra: any[] = [];
      helper.getNode('out').on('input', (m: any) => extra.push(m));
      helper.getNode('f').receive({});
      await waitFor(() => sim.requests.length === 3 && onDisk(afterRun).cursorMs === T0 + 3 * HOUR + 8 * MIN, 'the next window committed');
      assert.equal(startOf(sim.requests[2]), '202601050858', 'the journalled cursor (12:58 at the PBX) − 4 h overlap');
      assert.deepEqual(extra, [], 'nothing twice');
    });
  });

  describe('what a user is told, and what a stop leaves behind', () => {
    const statusTexts = () => ((helper.getNode('f') as any).status.getCalls() as any[]).map((c) => c.args[0]?.text).filter(Boolean) as string[];

    it('a 404 is asked once and reads as a 404, not "after the retries"; a 500 says how many times it came', async () => {
      await load(flow(sim, { mode: 'range', format: 'txt' }, { url: `${sim.url}/gui` }));
      let got = collect(helper.getNode('caught'), 1);
      helper.getNode('f').receive({});
      let [err] = await got;
      assert.equal(sim.requests.length, 1, 'not asked again');
      assert.match(err.error.message, /answered HTTP 404/);
      assert.doesNotMatch(err.error.message, /retr|times/);
      await helper.unload();
      sim.requests = [];
      await load(flow(sim, { mode: 'range', format: 'txt' }));
      sim.faults.fail500 = 10;
      got = collect(helper.getNode('caught'), 1);
      helper.getNode('f').receive({});
      [err] = await got;
      assert.match(err.error.message, /HTTP 500, 3 times in a row/);
    });

    it('a connection that breaks after CDRs went out says so, with how many went out', async () => {
      await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
      const out: any[] = [];
      helper.getNode('out').on('input', (m: any) => out.push(m));
      sim.faults.resetMidTxt = 1;
      const got = collect(helper.getNode('caught'), 1);
      helper.getNode('f').receive({});
      const [err] = await got;
      assert.ok(out.length > 0, 'part of the index was sent on before the break');
      assert.match(err.error.message, new RegExp(`broke while its answer was read, after ${out.length} CDR\\(s\\) had been sent on`));
      assert.doesNotMatch(err.error.message, /could not be reached/);
    });

    it('the status names the failure in full, short phrase first (not cut at 32 characters)', async () => {
      await load(flow(sim, { mode: 'range', format: 'txt' }), creds('wrong'));
      const got = collect(helper.getNode('caught'), 1);
      helper.getNode('f').receive({});
      await got;
      await settle(20);
      const last = statusTexts().pop()!;
      assert.match(last, /^login refused \(HTTP 401\) · \d\d:\d\d$/);
    });

    it('a run whose cursor cannot be saved is not a success: Catch, red status, and the window is fetched again', async () => {
      // a file where the state folder should be: every save fails
      fs.writeFileSync(path.join(userDir, 'cdrflow-state'), 'not a folder');
      await load(flow(sim, { mode: 'incremental', format: 'txt', firstHours: 4 }));
      const out: any[] = [];
      helper.getNode('out').on('input', (m: any) => out.push(m));
      const got = collect(helper.getNode('caught'), 1);
      helper.getNode('f').receive({});
      const [err] = await got;
      assert.match(err.error.message, /could not be saved/);
      assert.ok(out.length < 12, 'the run stopped at the first change it could not save');
      await settle(20);
      assert.match(statusTexts().pop()!, /^cursor not saved/);
      fs.rmSync(path.join(userDir, 'cdrflow-state'));
      helper.getNode('f').receive({});
      await waitFor(() => out.length === 12, 'the rest of the window');
      await settle(100);
      assert.equal(new Set(out.map((m) => m.payload.uniqueId)).size, 12, 'every CDR once');
      const starts = sim.requests.map((r) => new URLSearchParams(r.split('?')[1]).get('start'));
      assert.equal(starts[0], starts[1], 'the same window again: the cursor had not moved');
    });

    it('at start, removes what a kill of this node left half-downloaded in its folder, and nothing of other nodes', async () => {
      fs.mkdirSync(saveDir, { recursive: true });
      const mine = path.join(saveDir, '.comx-partial-f-0123456789ab');
      const other = path.join(saveDir, '.comx-partial-g-0123456789ab');
      const oldUntagged = path.join(saveDir, '.comx-partial-aaaaaaaaaaaa');
      const freshUntagged = path.join(saveDir, '.comx-partial-bbbbbbbbbbbb');
      for (const d of [mine, other, oldUntagged, freshUntagged]) {
        fs.mkdirSync(d);
        fs.writeFileSync(path.join(d, 'answer.zip'), Buffer.alloc(1000));
      }
      const twoHoursAgo = (Date.now() - 2 * HOUR) / 1000;
      fs.utimesSync(oldUntagged, twoHoursAgo, twoHoursAgo);
      await load(flow(sim, { mode: 'incremental', format: 'ziprec', firstHours: 4, saveDir }));
      const got = collect(helper.getNode('out'), 12);
      helper.getNode('f').receive({});
      await got;
      assert.equal(fs.existsSync(mine), false, "this node's leftover is gone");
      assert.equal(fs.existsSync(oldUntagged), false, 'an untagged one older than an hour is gone');
      assert.equal(fs.existsSync(other), true, "another node's is left alone");
      assert.equal(fs.existsSync(freshUntagged), true, 'a recent untagged one is left alone');
      assert.ok(!fs.readdirSync(saveDir).some((n) => n.startsWith('.comx-partial-f-')), 'and the run left none of its own');
    });
  });
});

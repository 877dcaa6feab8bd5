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
    const state = JSON.parse(fs.readFileSync(path.join(userDir, 'cdrflow-state', 'comx-cdr-fetch-f.json'), 'utf8'));
    assert.equal(state.cursor, T0 + 4 * HOUR - 2 * MIN);
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
    const stateFile = path.join(userDir, 'cdrflow-state', 'comx-cdr-fetch-f.json');
    const first = collect(helper.getNode('out'), 12);
    helper.getNode('f').receive({});
    await first;
    // the state is written (fsync, rename) after the window was sent: wait for it, however busy the machine
    for (let i = 0; i < 200 && !fs.existsSync(stateFile); i++) await settle(25);
    const cursor = JSON.parse(fs.readFileSync(stateFile, 'utf8')).cursor;
    clock.tick(30 * MIN);
    sim.faults.fail500 = 100;
    sim.requests = [];
    const got = collect(helper.getNode('caught'), 1);
    helper.getNode('f').receive({});
    const [err] = await got;
    assert.match(err.error.message, /HTTP 500/);
    assert.equal(sim.requests.length, 3, 'first try + 2 retries');
    await settle(100);
    assert.equal(JSON.parse(fs.readFileSync(stateFile, 'utf8')).cursor, cursor, 'cursor unchanged');
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
      assert.match(err.error.message, /zip could not be read|could not be reached/, fault);
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
    try {
      for (const [pbxProps, ok] of [[{ ca: tls.cert }, true], [{}, false], [{ verifyTls: false }, true]] as const) {
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

  it('a bad configuration or request is a catchable error, not a crash', async () => {
    await load(flow(sim, { mode: 'range', format: 'raw' }, { timezone: 'Mars/Olympus' }));
    const got = collect(helper.getNode('caught'), 2);
    helper.getNode('f').receive({});
    helper.getNode('f').receive({});
    const [e] = await got;
    assert.match(e.error.message, /cannot be used.*Mars\/Olympus/);
    assert.equal(sim.requests.length, 0);
  });
});

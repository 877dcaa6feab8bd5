import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, settle, collect } from '../helpers/red';
import { useWebexRig, now0, MIN, H } from '../webex/node-rig';

describe('webex-cdr-pull node: saved state and a lost cursor', function () {
  this.timeout(20_000);
  const rig = useWebexRig('webex-state-');
  const { flow, load, until } = rig;

  const stateFile = () => path.join(rig.stateDir(), 'webex-cdr-pull-pull.json');
  const iso = (t: number) => new Date(t).toISOString();
  const cdrRequests = () => rig.sim.log.filter((l) => l.kind !== 'token');

  function writeState(content: string): void {
    fs.mkdirSync(rig.stateDir(), { recursive: true });
    fs.writeFileSync(stateFile(), content);
  }

  function movedAside(): string {
    const moved = fs.readdirSync(rig.stateDir()).find((f) => f.startsWith('webex-cdr-pull-pull.json.unreadable-'));
    assert.ok(moved, fs.readdirSync(rig.stateDir()).join(', '));
    return path.join(rig.stateDir(), moved);
  }

  const lastStatus = () => (helper.getNode('pull').status as any).lastCall.args[0];

  const unusable: Array<[string, string]> = [
    ['an unreadable state file', '{"version":1,"backfill":null,"seen":["a","b'],
    ['a version 1 state with fields of the wrong type', '{"version":1,"streamCursor":42,"backfill":"soon","current":null,"seen":"x"}'],
    ['a version 1 state without its fields', '{"version":1}'],
    ['a state of an unknown version', '{"version":"2","cursor":"2026-11-23T11:00:00.000Z"}'],
    ['an empty state file', ''],
  ];
  for (const [what, content] of unusable) {
    it(`${what}: starts, warns naming both files, and blocks incremental runs until msg.cursor`, async () => {
      writeState(content);
      rig.sim.generate(300, now0 - 5 * H, now0 - 3 * MIN);
      const got = await load();
      await until(() => got.caught.length === 1);
      // the kit's warning names the state file and where it went; the content is kept as it was
      const moved = movedAside();
      assert.equal(fs.readFileSync(moved, 'utf8'), content);
      const warnings = rig.warnings('pull');
      assert.ok(warnings.some((w) => w.includes(stateFile()) && w.includes(moved)), warnings.join('\n'));
      // the lost cursor: an error for Catch and a red status
      assert.match(got.caught[0].error.message, /its cursor could not be recovered/);
      assert.ok(got.caught[0].error.message.includes(moved));
      await settle(20);
      assert.equal(lastStatus().fill, 'red');
      assert.match(lastStatus().text, /cursor lost/);
      // incremental and backfill runs fail to Catch and send nothing to Webex; a re-pull is allowed
      const pull = helper.getNode('pull');
      pull.receive({ tag: 1 });
      pull.receive({ mode: 'backfill', hours: 10, tag: 2 });
      const refused = await collect(helper.getNode('caught'), 2);
      assert.deepEqual(refused.map((m) => m.tag), [1, 2]);
      for (const m of refused) {
        assert.match(m.error.message, /send a message with msg\.cursor/);
        assert.equal(m.webex.error_type, 'cursorLost');
      }
      assert.deepEqual(cdrRequests(), []);
      assert.equal(got.records.length, 0);
      assert.equal(lastStatus().fill, 'red');
      // msg.cursor says where to resume
      pull.receive({ cursor: iso(now0 - H) });
      await until(() => got.stats.length === 1);
      assert.equal(got.stats[0].payload.ok, true);
      const first = cdrRequests()[0];
      assert.equal(first.path, '/v1/cdr_stream');
      assert.equal(first.query.startTime, iso(now0 - H - 2 * MIN), 'from the given cursor, less the overlap');
      assert.ok(!cdrRequests().some((l) => l.path === '/v1/cdr_feed'), 'no first-run lookback');
      assert.ok(got.records.length > 0);
      // from now on plain incremental runs work
      rig.clock.advance(10 * MIN);
      pull.receive({});
      await until(() => got.stats.length === 2);
      assert.equal(got.stats[1].payload.ok, true);
    });
  }

  it('while the account is unusable the saved state is left alone; the next good deploy still reports the lost cursor', async () => {
    writeState('{"version":1,"stream');
    let got = await load(flow(), { acc: {} });
    // no token entered yet: said at info level (node.log), not as a warning
    await until(() => (helper.getNode('pull').log as any).getCalls().some((c: any) => /no refresh token and no access token/.test(String(c.args[0]))));
    await settle(50);
    assert.deepEqual(fs.readdirSync(rig.stateDir()), ['webex-cdr-pull-pull.json']);
    await helper.unload();
    got = await load();
    await until(() => got.caught.length === 1);
    assert.match(got.caught[0].error.message, /its cursor could not be recovered/);
    helper.getNode('pull').receive({});
    await until(() => got.caught.length === 2);
    assert.deepEqual(cdrRequests(), [], 'no silent first-run lookback');
  });

  it('on the timer a lost cursor reaches Catch as cdr_sync_errors on every run, and no request is sent', async () => {
    writeState('{"version":1,"stream');
    const got = await load(flow({ interval: 1 }));
    await until(() => got.caught.filter((m) => m.topic === 'cdr_sync_errors').length === 1);
    const runError = got.caught.find((m) => m.topic === 'cdr_sync_errors');
    assert.equal(runError.payload.error_type, 'cursorLost');
    assert.match(runError.error.message, /msg\.cursor/);
    assert.deepEqual(cdrRequests(), []);
  });

  const salvageable: Array<[string, (cursor: string) => string]> = [
    ['a damaged file that still shows the cursor', (c) => `{"version":1,"streamCursor":"${c}","backfill":null,"current":null,"seen":["0000", tru`],
    ['a readable state of the wrong shape', (c) => `{"version":1,"streamCursor":"${c}","backfill":null,"current":null,"seen":[1,2]}`],
    ['a state of an unknown version (a newer release)', (c) => `{"version":7,"streamCursor":"${c}"}`],
  ];
  for (const [what, content] of salvageable) {
    it(`${what}: resumes from the salvaged cursor with a warning`, async () => {
      const cursor = iso(now0 - 2 * H);
      writeState(content(cursor));
      rig.sim.generate(300, now0 - 5 * H, now0 - 3 * MIN);
      const got = await load();
      await until(() => rig.warnings('pull').some((w) => /could be read from it/.test(w)));
      const warning = rig.warnings('pull').find((w) => /could be read from it/.test(w))!;
      assert.ok(warning.includes(cursor) && warning.includes(movedAside()), warning);
      helper.getNode('pull').receive({});
      await until(() => got.stats.length === 1);
      assert.deepEqual(got.caught, []);
      assert.equal(got.stats[0].payload.ok, true);
      assert.equal(cdrRequests()[0].query.startTime, iso(now0 - 2 * H - 2 * MIN));
      assert.ok(!cdrRequests().some((l) => l.path === '/v1/cdr_feed'));
      const expected = rig.sim.records.filter((r) => r.insertedAt >= now0 - 2 * H - 2 * MIN && r.insertedAt + 30_000 <= now0 - 3 * MIN).length;
      assert.equal(got.records.length, expected);
    });
  }

  it('an unusable state with a good previous copy goes on from that copy, without blocking', async () => {
    writeState('{"version":1,"stre');
    const prev = { version: 1, streamCursor: iso(now0 - 3 * H), backfill: null, current: null, seen: [], lastSuccess: null, lastError: null };
    fs.writeFileSync(`${stateFile()}.prev`, JSON.stringify(prev));
    rig.sim.generate(300, now0 - 5 * H, now0 - 3 * MIN);
    const got = await load();
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1);
    assert.deepEqual(got.caught, []);
    assert.equal(cdrRequests()[0].query.startTime, iso(now0 - 3 * H - 2 * MIN));
    assert.ok(rig.warnings('pull').some((w) => w.includes(`${stateFile()}.prev`)));
  });

  it('msg.cursor is taken at any time; one that is not a time, or in the future, goes to Catch and changes nothing', async () => {
    rig.sim.generate(300, now0 - 5 * H, now0 - 3 * MIN);
    const got = await load();
    const pull = helper.getNode('pull');
    pull.receive({ cursor: 'last tuesday', tag: 'a' });
    pull.receive({ payload: { cursor: iso(now0 + H) }, tag: 'b' });
    pull.receive({ cursor: {}, tag: 'c' });
    const bad = await collect(helper.getNode('caught'), 3);
    assert.deepEqual(bad.map((m) => m.tag), ['a', 'b', 'c']);
    assert.match(bad[0].error.message, /msg\.cursor "last tuesday" is not a time/);
    assert.match(bad[1].error.message, /is in the future/);
    assert.match(bad[2].error.message, /is not a time/);
    assert.deepEqual(cdrRequests(), []);
    pull.receive({ payload: { cursor: now0 - 30 * MIN } });
    await until(() => got.stats.length === 1);
    assert.equal(cdrRequests()[0].query.startTime, iso(now0 - 32 * MIN));
    assert.equal(got.stats[0].payload.streamCursor, iso(now0 - 2 * MIN));
  });

  it('keeps the time of its last new window with the cursor: after a restart the account waits its minute from the latest any of its nodes saved', async () => {
    rig.sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const f = () => rig.withSecondPull(flow({ lookbackHours: 1 }));
    let got = await load(f());
    // pull2 opens a window first, pull one a minute later
    helper.getNode('pull2').receive({});
    await until(() => got.stats2.length === 1);
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1);
    const [older, newer] = rig.sim.log.filter((l) => l.kind === 'initial').map((l) => l.at);
    assert.equal(newer, older + 61_000);
    await helper.unload();
    const saved = (id: string) => {
      const file = path.join(rig.stateDir(), `webex-cdr-pull-${id}.json`);
      return JSON.parse(fs.readFileSync(file, 'utf8')).lastInitial;
    };
    assert.deepEqual([saved('pull2'), saved('pull')], [iso(older), iso(newer)], 'saved with the cursor');
    // pull's state takes longer to read (a long dedup list): pull2 is ready first and must still wait for it
    const file = path.join(rig.stateDir(), 'webex-cdr-pull-pull.json');
    const big = JSON.parse(fs.readFileSync(file, 'utf8'));
    big.seen = [...Array.from({ length: 200_000 }, (_, i) => `old-${i}`), ...big.seen];
    fs.writeFileSync(file, JSON.stringify(big));
    // back 10 s later: pull2 (whose own last window is the older one) wants a new window first
    rig.clock.advance(10_000);
    got = await load(f());
    helper.getNode('pull2').receive({});
    await until(() => got.stats2.length === 1);
    assert.equal(got.stats2[0].payload.ok, true);
    const after = rig.sim.log.filter((l) => l.kind === 'initial').slice(2);
    assert.equal(after[0].status, 200);
    assert.equal(after[0].at, newer + 61_000, 'a minute after the newest window of any node on the account');
    assert.equal(rig.sim.rateViolations, 0, 'no 429');
  });

  it('saves as it goes, writes nothing for a run that sent nothing, only the request time for one that found nothing, and restores what it saved', async () => {
    rig.sim.generate(1100, now0 - 3 * H, now0 - 3 * MIN);
    const got = await load(flow({ lookbackHours: 4 }));
    const pull = helper.getNode('pull');
    pull.receive({});
    await until(() => got.stats.length === 1);
    await settle(50);
    const files = () => fs.readdirSync(rig.stateDir()).filter((f) => f.startsWith('webex-cdr-pull-pull.json'))
      .map((f) => [f, fs.statSync(path.join(rig.stateDir(), f)).size, fs.statSync(path.join(rig.stateDir(), f)).mtimeMs]);
    const journal = () => fs.readFileSync(`${stateFile()}.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const before = files();
    assert.ok(before.length > 0, 'the run was saved');
    // an incremental run with no window due yet sends nothing and writes nothing
    pull.receive({});
    await until(() => got.stats.length === 2);
    await settle(50);
    assert.equal(got.stats[1].payload.apiCalls, 0);
    assert.deepEqual(files(), before, 'nothing written');
    // a re-pull of a range without records writes only the time of its request (short journal lines)
    const lines = journal().length;
    pull.receive({ mode: 'repull', from: now0 - 20 * H, to: now0 - 19 * H });
    await until(() => got.stats.length === 3);
    await settle(50);
    assert.equal(got.stats[2].payload.ok, true);
    assert.equal(got.stats[2].payload.records, 0);
    const feed = cdrRequests().filter((l) => l.path === '/v1/cdr_feed');
    assert.equal(feed.length, 1);
    assert.deepEqual(files().filter(([f]) => !String(f).endsWith('.log')), before.filter(([f]) => !String(f).endsWith('.log')), 'no snapshot written');
    const added = journal().slice(lines);
    assert.ok(added.length > 0 && added.length <= 2, JSON.stringify(added));
    assert.deepEqual(Object.assign({}, ...added), { lastInitial: iso(feed[0].at), lastSuccess: got.stats[2].payload.lastSuccess });
    // what was saved restores to the same state after a restart: nothing is fetched twice
    await helper.unload();
    rig.clock.advance(5 * MIN);
    const again = await load(flow({ lookbackHours: 4 }));
    helper.getNode('pull').receive({});
    await until(() => again.stats.length === 1);
    rig.exactlyOnce([...got.records, ...again.records], rig.expectedIds(now0 - 4 * H));
  });
});

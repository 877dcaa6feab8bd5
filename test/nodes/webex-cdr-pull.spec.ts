import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, settle } from '../helpers/red';
import { WebexApiSim } from '../simulators/webex-api';
import { useWebexRig, now0, MIN, H } from '../webex/node-rig';

describe('webex-cdr-pull node', function () {
  this.timeout(20_000);
  const rig = useWebexRig();
  const { flow, creds, load, until, expectedIds, exactlyOnce } = rig;

  it('a message runs an incremental sync: one typed message per record, input properties kept, statistics on output 2', async () => {
    rig.sim.generate(1100, now0 - 5 * H, now0 - 3 * MIN);
    const got = await load();
    helper.getNode('pull').receive({ payload: 'go', correlation: 'abc' });
    await until(() => got.stats.length === 1);
    await settle();
    const s = got.stats[0];
    assert.equal(s.topic, 'cdr_sync_state');
    assert.equal(s.correlation, 'abc');
    assert.equal(s.payload.ok, true);
    assert.equal(s.payload.records, got.records.length);
    assert.ok(s.payload.apiCalls >= s.payload.pages);
    exactlyOnce(got.records, expectedIds(now0 - 6 * H));
    const m = got.records[0];
    assert.equal(m.topic, 'webex-cdr');
    assert.equal(m.correlation, 'abc');
    assert.equal(typeof m.payload['Report ID'], 'string', 'the record as received');
    assert.equal(m.cdr.reportId, m.payload['Report ID']);
    assert.match(m.cdr.startTime, /Z$/);
    assert.equal(typeof m.cdr.duration, 'number');
    assert.equal(typeof m.cdr.answered, 'boolean');
    assert.equal(m.webex.endpoint, 'cdr_stream');
    assert.equal(got.caught.length, 0);
    assert.equal(rig.sim.rateViolations, 0);
    // the rotated refresh token was kept in the token file and in the credential cache
    const file = path.join(rig.userDir, 'cdrflow-state', 'webex-account-acc-tokens.json');
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.notEqual(saved.tokens.refreshToken, rig.refreshToken);
    assert.equal(got.red.nodes.getCredentials('acc').refreshToken, saved.tokens.refreshToken);
  });

  it('per-page output sends arrays', async () => {
    rig.sim.generate(1100, now0 - 1.5 * H, now0 - 3 * MIN);
    const got = await load(flow({ output: 'page', lookbackHours: 2 }));
    helper.getNode('pull').receive({ payload: '' });
    await until(() => got.stats.length === 1);
    await settle();
    assert.ok(got.records.length >= 3);
    assert.ok(got.records.every((m) => Array.isArray(m.payload) && m.payload.length === m.cdr.length && m.payload.length <= 500));
    assert.equal(got.records.reduce((n, m) => n + m.payload.length, 0), got.stats[0].payload.records);
  });

  it('killed and restarted mid-pagination (close aborts the request in flight): no gap, no duplicate; a restart uses the rotated tokens', async () => {
    rig.sim.generate(2600, now0 - 5 * H, now0 - 3 * MIN);
    rig.sim.inject({ kind: 'page', hang: true, after: 1 });
    let got = await load(flow({}, { timeout: 60 })); // no timeout can end the held request: only the abort on close
    const all: any[] = [];
    helper.getNode('pull').receive({ payload: 'go' });
    await until(() => rig.sim.log.some((l) => l.status === -1));
    all.push(...got.records);
    assert.ok(got.records.length > 0 && got.records.length < 2000, `${got.records.length} before the kill`);
    await helper.unload();
    await until(() => rig.sim.hungClosed === 1);
    // the original refresh token was revoked by the rotation: a restart must use the stored one
    got = await load();
    helper.getNode('pull').receive({ payload: 'go' });
    await until(() => got.stats.length === 1);
    await settle();
    all.push(...got.records);
    assert.equal(got.stats[0].payload.ok, true, JSON.stringify(got.stats[0].payload.error));
    exactlyOnce(all, expectedIds(now0 - 6 * H));
    assert.equal(rig.sim.refreshGrants, 1, 'no second refresh: the stored access token was still valid');
  });

  it('killed and restarted after each window: no gap, no duplicate', async () => {
    rig.sim.generate(1500, now0 - 9 * H, now0 - 3 * MIN);
    const all: any[] = [];
    let restarts = 0;
    for (let i = 0; i < 12; i++) {
      rig.sim.inject({ kind: 'initial', hang: true, after: 1 });
      const got = await load(flow({ lookbackHours: 10 }));
      helper.getNode('pull').receive({ payload: 'go' });
      await until(() => got.stats.length === 1 || rig.sim.log.some((l) => l.status === -1));
      await settle();
      all.push(...got.records);
      rig.sim.log = rig.sim.log.filter((l) => l.status !== -1);
      rig.sim.faults = [];
      await helper.unload();
      if (got.stats.length === 1) break;
      restarts++;
    }
    assert.ok(restarts >= 3, `restarted ${restarts} times`);
    exactlyOnce(all, expectedIds(now0 - 10 * H));
  });

  it('403 goes to Catch with the scope and role, and the status says so', async () => {
    rig.sim.generate(10, now0 - 2 * H, now0 - 3 * MIN);
    rig.sim.inject({ status: 403, body: JSON.stringify({ message: 'Forbidden' }) });
    const got = await load();
    const pull = helper.getNode('pull');
    helper.getNode('pull').receive({ payload: 'go', tag: 1 });
    await until(() => got.caught.length === 1);
    assert.match(got.caught[0].error.message, /spark-admin:calling_cdr_read/);
    assert.equal(got.caught[0].tag, 1);
    assert.equal(got.caught[0].webex.error_type, 'config');
    await settle(20);
    const last = (pull.status as any).lastCall.args[0];
    assert.equal(last.fill, 'red');
    assert.match(last.text, /403/);
    assert.equal(got.stats[0].payload.ok, false);
  });

  it('a dead refresh token shows re-authorize; on the timer the error reaches Catch as cdr_sync_errors, once', async () => {
    rig.sim.revokeRefreshToken(rig.refreshToken);
    const got = await load(flow({ interval: 1 }));
    await until(() => got.caught.length === 1);
    assert.equal(got.caught[0].topic, 'cdr_sync_errors');
    assert.equal(got.caught[0].payload.error_type, 'reauthorize');
    assert.match(got.caught[0].error.message, /authorize the integration again/);
    await settle(30);
    const last = (helper.getNode('pull').status as any).lastCall.args[0];
    assert.match(last.text, /re-authorize/);
    assert.equal(rig.sim.refreshGrants, 1);
  });

  it('after a failed run the status keeps the reason, with the time of the next run, until a run succeeds', async () => {
    rig.sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    rig.sim.inject({ kind: 'initial', status: 503, times: 5 }); // the first try and its 4 retries
    const got = await load(flow({ interval: 1, lookbackHours: 1 }));
    await until(() => got.caught.length === 1);
    await settle(20);
    const pull = helper.getNode('pull');
    const shown = () => (pull.status as any).getCalls().map((c: any) => c.args[0]);
    const failed = shown().length;
    // the run started at deploy (12:00 on the test clock) and failed within its retries (< 30 s): next run 12:01
    assert.deepEqual(shown()[failed - 1], { fill: 'yellow', shape: 'ring', text: 'retry at 12:01 UTC: 503 after 5 tries: simulated 503' });
    // a run by message waits a minute for the rate limit (the failed run booked a new window): meanwhile
    // the status still says what went wrong, not "window 1 · 0"
    await settle(1100); // past the status throttle: any new status would be shown at once
    pull.receive({});
    await until(() => got.stats.length === 2);
    await settle(20);
    assert.equal(got.stats[1].payload.ok, true);
    const since = shown().slice(failed);
    assert.deepEqual(since.filter((st: any) => st.fill !== 'yellow' && st.fill !== 'red').map((st: any) => st.fill), ['green'], JSON.stringify(since));
    assert.equal(since[since.length - 1].fill, 'green');
    const initials = rig.sim.log.filter((l) => l.kind === 'initial');
    assert.ok(initials[initials.length - 1].at - initials[0].at >= 61_000, 'the second run waited for the limiter');
  });

  it('runs on its own interval from deploy', async () => {
    rig.sim.generate(300, now0 - 2 * H, now0 - 3 * MIN);
    const got = await load(flow({ interval: 5, lookbackHours: 3 }));
    await until(() => got.stats.length === 1);
    await settle();
    assert.equal(got.stats[0].payload.ok, true);
    exactlyOnce(got.records, expectedIds(now0 - 3 * H));
  });

  it('re-pulls a range on request without moving the cursor; bad requests go to Catch', async () => {
    rig.sim.generate(600, now0 - 3 * H, now0 - 3 * MIN);
    const got = await load(flow({ lookbackHours: 4 }));
    const pull = helper.getNode('pull');
    pull.receive({ payload: 'go' });
    await until(() => got.stats.length === 1);
    const first = got.records.length;
    pull.receive({ payload: { mode: 'repull', from: new Date(now0 - 3 * H).toISOString(), to: now0 - 2 * H } });
    await until(() => got.stats.length === 2);
    await settle();
    const again = got.records.slice(first);
    assert.ok(again.length > 100);
    assert.ok(again.every((m) => m.webex.purpose === 'repull' && m.webex.endpoint === 'cdr_feed'));
    assert.equal(got.stats[1].payload.streamCursor, got.stats[0].payload.streamCursor);
    pull.receive({ mode: 'fetch-everything' });
    await until(() => got.caught.length === 1);
    assert.match(got.caught[0].error.message, /unknown mode/);
    pull.receive({ mode: 'repull' });
    await until(() => got.caught.length === 2);
    assert.match(got.caught[1].error.message, /needs msg.from/);
  });

  it('two pull nodes on one account share one refresh and one rate budget', async () => {
    rig.sim.generate(1200, now0 - 3 * H, now0 - 3 * MIN);
    const got = await load(rig.withSecondPull(flow({ lookbackHours: 4 })));
    helper.getNode('pull').receive({});
    helper.getNode('pull2').receive({});
    await until(() => got.stats.length === 1 && got.stats2.length === 1);
    await settle();
    exactlyOnce(got.records, expectedIds(now0 - 4 * H));
    exactlyOnce(got.records2, expectedIds(now0 - 4 * H));
    assert.equal(rig.sim.refreshGrants, 1, 'single-flight refresh across nodes');
    assert.equal(rig.sim.rateViolations, 0, 'one limiter per token: ' + JSON.stringify(rig.sim.log.filter((l) => l.kind !== 'token').map((l) => [l.kind[0], Math.round((l.at - now0) / 1000), l.status])));
  });

  it('works with a fixed access token; an incomplete account is reported', async () => {
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    let got = await load(flow({ lookbackHours: 3 }), { acc: { accessToken: rig.sim.issueAccessToken() } });
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1);
    assert.equal(got.stats[0].payload.records, 20);
    assert.equal(rig.sim.refreshGrants, 0);
    await helper.unload();
    got = await load(flow(), { acc: { refreshToken: 'RT-x' } });
    await settle(20);
    // a client ID and secret not entered yet: not configured (yellow), not an error
    const first = (helper.getNode('pull').status as any).getCall(0).args[0];
    assert.deepEqual(first, { fill: 'yellow', shape: 'ring', text: 'not configured' });
    helper.getNode('pull').receive({});
    await until(() => got.caught.length === 1);
    assert.match(got.caught[0].error.message, /no client ID and no client secret/);
  });

  it('follows a 451 to the region Webex names and remembers it', async () => {
    await rig.sim.stop();
    rig.sim = await new WebexApiSim({ clock: rig.clock, regions: ['us', 'eu'], orgRegion: 'eu' }).start();
    rig.refreshToken = rig.sim.issueRefreshToken();
    rig.sim.generate(50, now0 - 2 * H, now0 - 3 * MIN);
    const got = await load(flow({ lookbackHours: 3 }, { baseUrl: rig.sim.url('us'), tokenUrl: rig.sim.tokenUrl }));
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1);
    assert.equal(got.stats[0].payload.ok, true);
    assert.equal(got.records.length, 50);
    // the learnt host is saved (coalesced, within half a second) in the account's state, without tokens
    const file = path.join(rig.userDir, 'cdrflow-state', 'webex-account-acc.json');
    await until(() => fs.existsSync(file));
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(saved, { version: 2, host: { for: rig.sim.url('us'), url: rig.sim.url('eu') } });
    assert.equal(rig.sim.log.filter((l) => l.status === 451).length, 1);
    // and used after a restart: no second 451
    await helper.unload();
    rig.clock.advance(10 * MIN);
    const again = await load(flow({ lookbackHours: 3 }, { baseUrl: rig.sim.url('us'), tokenUrl: rig.sim.tokenUrl }));
    helper.getNode('pull').receive({});
    await until(() => again.stats.length === 1);
    assert.equal(again.stats[0].payload.ok, true);
    assert.equal(rig.sim.log.filter((l) => l.status === 451).length, 1);
    assert.ok(rig.sim.log.filter((l) => l.kind === 'initial').slice(-1)[0].region === 'eu');
  });
});

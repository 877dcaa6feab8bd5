import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, settle, translate } from '../helpers/red';
import { WebexApiSim } from '../simulators/webex-api';
import { tokenHash, type StoredTokens } from '../../src/webex/oauth';
import { useWebexRig, now0, MIN, H } from '../webex/node-rig';

describe('webex-account node: tokens, state and configuration', function () {
  this.timeout(20_000);
  const rig = useWebexRig('webex-account-');
  const { flow, creds, load, until } = rig;

  const tokenFile = () => path.join(rig.stateDir(), 'webex-account-acc-tokens.json');

  /** Every file under `dir` (recursively) with its text. */
  function filesUnder(dir: string): Array<[string, string]> {
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath ?? (e as any).path, e.name))
      .map((f) => [f, fs.readFileSync(f, 'utf8')] as [string, string]);
  }

  /** The tokens the simulator issued that appear in `text`. */
  const tokensIn = (text: string) => rig.sim.issuedTokens.filter((t) => text.includes(t));

  function contextValue(id: string, key = 'cdrflow-state'): Promise<unknown> {
    return new Promise((resolve, reject) => {
      helper.getNode(id).context().get(key, 'file', (err: Error | undefined, v: unknown) => (err ? reject(err) : resolve(v)));
    });
  }

  async function runOnce(): Promise<any> {
    const got = await load();
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1 || got.caught.length > 0);
    assert.deepEqual(got.caught.map((m: any) => m.error.message), []);
    assert.equal(got.stats[0].payload.ok, true, JSON.stringify(got.stats[0].payload.error));
    return got;
  }

  /** Tokens as the version before the node kit saved them, descending from the configured refresh token. */
  function legacyTokens(): StoredTokens {
    const rt = rig.sim.issueRefreshToken();
    return {
      accessToken: rig.sim.issueAccessToken(), expiresAt: now0 + 14 * 24 * H, refreshToken: rt, refreshExpiresAt: now0 + 90 * 24 * H,
      lineage: [tokenHash(rig.refreshToken), tokenHash(rt)], updatedAt: new Date(now0 - H).toISOString(),
    };
  }

  it('never puts tokens into the context store the account and the pull node were given', async () => {
    await rig.sim.stop();
    rig.sim = await new WebexApiSim({ clock: rig.clock, regions: ['us', 'eu'], orgRegion: 'eu' }).start();
    rig.refreshToken = rig.sim.issueRefreshToken();
    rig.sim.generate(30, now0 - 2 * H, now0 - 3 * MIN);
    rig.useContextStore();
    const got = await load(flow({ lookbackHours: 3, stateStore: 'file' }, { baseUrl: rig.sim.url('us'), stateStore: 'file' }));
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1);
    assert.equal(got.stats[0].payload.ok, true);
    assert.equal(rig.sim.refreshGrants, 1, 'a refresh happened');
    // the learnt host reaches the store (coalesced); the pull node's state is there too
    let kept: any;
    for (const t = Date.now(); !kept && Date.now() - t < 5000; await settle(20)) kept = await contextValue('acc');
    assert.deepEqual(kept, { version: 2, host: { for: rig.sim.url('us'), url: rig.sim.url('eu') } });
    const pullState: any = await contextValue('pull');
    assert.ok(pullState.streamCursor, 'the pull state is in the chosen store');
    assert.deepEqual(tokensIn(JSON.stringify([kept, pullState])), [], 'no token in the context store');
    // the tokens are in the owner-only file instead
    const saved = JSON.parse(fs.readFileSync(tokenFile(), 'utf8'));
    assert.equal(saved.tokens.refreshToken, got.red.nodes.getCredentials('acc').refreshToken);
    assert.equal(fs.statSync(tokenFile()).mode & 0o777, 0o600);
  });

  it('encrypts the token file with a key from credentialSecret (0600, no token in clear text) and reads it back after a restart', async () => {
    rig.settings({ credentialSecret: 'a long and secret phrase' });
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    await runOnce();
    await helper.unload();
    assert.equal(fs.statSync(tokenFile()).mode & 0o777, 0o600);
    const text = fs.readFileSync(tokenFile(), 'utf8');
    assert.equal(JSON.parse(text).cdrflowEncrypted, 1);
    for (const [file, content] of filesUnder(rig.userDir)) assert.deepEqual(tokensIn(content), [], `no token in clear text in ${file}`);
    // restart: the credential still holds the original refresh token, which the rotation revoked
    rig.clock.advance(10 * MIN);
    await runOnce();
    assert.equal(rig.sim.refreshGrants, 1, 'the saved access token was read back and used: no new grant');
  });

  it('a changed credentialSecret: the token file is moved aside, a warning names both files, and the configured refresh token is used', async () => {
    await rig.sim.stop();
    rig.sim = await new WebexApiSim({ clock: rig.clock, rotateRefreshTokens: false }).start();
    rig.refreshToken = rig.sim.issueRefreshToken();
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    rig.settings({ credentialSecret: 'the first secret' });
    await runOnce();
    await helper.unload();
    rig.settings({ credentialSecret: 'another secret' });
    rig.clock.advance(10 * MIN);
    await runOnce();
    const moved = fs.readdirSync(rig.stateDir()).find((f) => f.startsWith('webex-account-acc-tokens.json.unreadable-'));
    assert.ok(moved, fs.readdirSync(rig.stateDir()).join(', '));
    const warnings = rig.warnings('acc');
    assert.ok(warnings.some((w) => w.includes(tokenFile()) && w.includes(moved) && /credentialSecret/.test(w)), warnings.join('\n'));
    assert.deepEqual(rig.sim.presentedRefreshTokens, [rig.refreshToken, rig.refreshToken], 'the second start refreshed with the configured token');
    // and the new file is readable with the new key
    await helper.unload();
    rig.clock.advance(10 * MIN);
    await runOnce();
    assert.equal(rig.sim.refreshGrants, 2);
  });

  it('a refresh still in flight when the flow stops is saved before the account closes', async () => {
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    rig.sim.tokenDelayMs = 400;
    await load();
    helper.getNode('pull').receive({});
    await settle(100); // the grant is on its way; the rotation will revoke the configured token
    await helper.unload();
    assert.equal(rig.sim.refreshGrants, 1);
    const saved = JSON.parse(fs.readFileSync(tokenFile(), 'utf8')).tokens;
    assert.notEqual(saved.refreshToken, rig.refreshToken, 'the rotated token reached the file');
    rig.sim.tokenDelayMs = 0;
    await runOnce();
    assert.equal(rig.sim.refreshGrants, 1, 'the restart used it');
  });

  it('moves the tokens an older version kept in the context store into the token file, and removes them there', async () => {
    const legacy = legacyTokens();
    const seeded = path.join(rig.userDir, 'context', 'acc', 'flow.json');
    fs.mkdirSync(path.dirname(seeded), { recursive: true });
    fs.writeFileSync(seeded, JSON.stringify({ 'cdrflow-state': { tokens: legacy } }));
    rig.useContextStore();
    rig.sim.revokeRefreshToken(rig.refreshToken); // rotated away long ago: only the saved tokens work
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    const got = await load(flow({ lookbackHours: 3 }, { stateStore: 'file' }));
    helper.getNode('pull').receive({});
    await until(() => got.stats.length === 1);
    assert.equal(got.stats[0].payload.ok, true);
    assert.equal(rig.sim.refreshGrants, 0, 'the moved access token was used');
    assert.deepEqual(await contextValue('acc'), { version: 2, host: null }, 'written back without the tokens');
    assert.deepEqual(JSON.parse(fs.readFileSync(tokenFile(), 'utf8')).tokens, legacy);
    const warnings = rig.warnings('acc');
    assert.ok(warnings.some((w) => w.includes('context store "file"') && w.includes(tokenFile())), warnings.join('\n'));
  });

  it('moves the tokens from the old state file; no copy of them is left beside it', async () => {
    const legacy = legacyTokens();
    const old = path.join(rig.stateDir(), 'webex-account-acc.json');
    fs.mkdirSync(rig.stateDir(), { recursive: true });
    fs.writeFileSync(old, JSON.stringify({ tokens: legacy, host: { for: 'https://example.invalid', url: 'https://analytics-calling-eu.webexapis.com' } }));
    rig.sim.revokeRefreshToken(rig.refreshToken);
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    await runOnce();
    assert.equal(rig.sim.refreshGrants, 0, 'the moved access token was used');
    assert.deepEqual(JSON.parse(fs.readFileSync(old, 'utf8')), { version: 2, host: { for: 'https://example.invalid', url: 'https://analytics-calling-eu.webexapis.com' } });
    assert.deepEqual(JSON.parse(fs.readFileSync(tokenFile(), 'utf8')).tokens, legacy);
    for (const [file, content] of filesUnder(rig.stateDir())) {
      if (file !== tokenFile()) assert.deepEqual(tokensIn(content), [], `no token left in ${file}`);
    }
  });

  it('an old copy is only removed when the token file already has newer tokens', async () => {
    await runOnce(); // the token file now holds the rotated tokens
    await helper.unload();
    const current = JSON.parse(fs.readFileSync(tokenFile(), 'utf8')).tokens;
    const old = path.join(rig.stateDir(), 'webex-account-acc.json');
    fs.writeFileSync(old, JSON.stringify({ tokens: legacyTokens() }));
    rig.clock.advance(10 * MIN);
    await runOnce();
    assert.deepEqual(JSON.parse(fs.readFileSync(tokenFile(), 'utf8')).tokens, current);
    assert.deepEqual(JSON.parse(fs.readFileSync(old, 'utf8')), { version: 2, host: null });
    assert.equal(rig.sim.refreshGrants, 1);
  });

  it('reads the timeout under its old name (timeoutS)', async () => {
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    rig.sim.inject({ kind: 'initial', hang: true });
    const f = flow({ lookbackHours: 3 }, { timeoutS: 1 });
    delete f[1].timeout;
    const got = await load(f);
    helper.getNode('pull').receive({});
    // the held request ends after 1 s (not the default 60 s) and is retried
    await until(() => got.stats.length === 1, 15_000);
    assert.equal(got.stats[0].payload.ok, true);
    assert.equal(rig.sim.hungClosed, 1);
  });

  describe('configuration problems: the reason in the log at deploy, a red status (yellow "not configured" for what is not entered yet), and an error for Catch on every message', () => {
    const missingCa = () => path.join(rig.userDir, 'no-such-ca.pem');
    const cases: Array<[string, Record<string, unknown>, Record<string, unknown>, () => Record<string, unknown>, () => RegExp, boolean]> = [
      ['no credentials at all', {}, {}, () => ({ acc: {} }), () => /no refresh token and no access token/, true],
      ['a refresh token without client ID and secret', {}, {}, () => ({ acc: { refreshToken: 'RT-x' } }), () => /(^|: )no client ID and no client secret:/, true],
      ['no client ID', {}, {}, () => creds({ clientId: '' }), () => /(^|: )no client ID:/, true],
      ['no client secret', {}, {}, () => creds({ clientSecret: '' }), () => /(^|: )no client secret:/, true],
      ['a custom base URL that is not http(s)', { baseUrl: 'ftp://cdr.example' }, {}, () => creds(), () => /custom base URL "ftp:\/\/cdr\.example" is not an http\(s\) URL/, false],
      ['a custom region without a base URL', { region: 'custom', baseUrl: '' }, {}, () => creds(), () => /custom base URL "" is not an http\(s\) URL/, true],
      ['a token URL that is not http(s)', { tokenUrl: 'webexapis.com/v1/access_token' }, {}, () => creds(), () => /token URL "webexapis\.com\/v1\/access_token" is not an http\(s\) URL/, false],
      ['a CA file that cannot be read', { ca: '${CDRFLOW_TEST_CA}' }, {}, () => creds(), () => /CA certificate cannot be read: .*no-such-ca\.pem: ENOENT/, false],
      ['no account chosen', {}, { account: '' }, () => creds(), () => /no Webex account is configured/, true],
    ];
    for (const [what, accountProps, pullProps, c, problem, unset] of cases) {
      it(what, async () => {
        process.env.CDRFLOW_TEST_CA = missingCa();
        try {
          const got = await load(flow({ interval: 1, ...pullProps }, accountProps), c());
          const n = helper.getNode('pull') as any;
          // at deploy the reason goes to the log (no Catch node can see what a node reports while the flows are built):
          // at info level when nothing was entered yet, as a warning when what was entered cannot work
          const logged = () => ((unset ? n.log : n.warn) as any).getCalls().map((x: any) => String(x.args[0])) as string[];
          await until(() => logged().some((w) => problem().test(w)));
          assert.deepEqual((n.status as any).lastCall.args[0], unset ? { fill: 'yellow', shape: 'ring', text: translate('webex-cdr-pull.status.notConfigured') }
            : { fill: 'red', shape: 'ring', text: translate('webex-cdr-pull.status.badConfig') });
          for (const tag of [1, 2]) n.receive({ tag });
          await until(() => got.caught.length === 2);
          assert.deepEqual(got.caught.map((m) => [m.tag, problem().test(m.error.message)]), [[1, true], [2, true]], 'each message fails to Catch, with the reason');
          assert.equal(rig.sim.log.length, 0, 'nothing was sent to Webex');
          assert.equal(got.stats.length, 0);
        } finally {
          delete process.env.CDRFLOW_TEST_CA;
        }
      });
    }
  });
});

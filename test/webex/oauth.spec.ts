import { strict as assert } from 'node:assert';
import { TokenManager, TokenError, tokenHash, type StoredTokens } from '../../src/webex/oauth';
import { useWebexSim } from './node-rig';

describe('webex/oauth', () => {
  const w = useWebexSim({ accessTtlS: 3600 });

  function manager(rt: string, extra: Partial<ConstructorParameters<typeof TokenManager>[0]> = {}) {
    const saved: StoredTokens[] = [];
    const m = new TokenManager({
      clientId: w.sim.clientId, clientSecret: w.sim.clientSecret, refreshToken: rt, tokenUrl: w.sim.tokenUrl,
      dispatcher: w.agent, clock: w.clock, persist: async (t) => { saved.push(t); }, retryBaseMs: 1, ...extra,
    });
    return { m, saved };
  }

  it('refreshes on first use, persists the rotated refresh token before use, and reuses the access token', async () => {
    const rt = w.sim.issueRefreshToken();
    const { m, saved } = manager(rt);
    const at = await m.getToken();
    assert.match(at, /^AT-/);
    assert.equal(saved.length, 1);
    assert.notEqual(saved[0].refreshToken, rt, 'rotated');
    assert.equal(saved[0].accessToken, at);
    assert.equal(saved[0].expiresAt, w.clock.now() + 3600_000);
    assert.ok(saved[0].lineage.includes(tokenHash(rt)) && saved[0].lineage.includes(tokenHash(saved[0].refreshToken!)));
    assert.equal(await m.getToken(), at, 'still valid: no new grant');
    assert.equal(w.sim.refreshGrants, 1);
  });

  it('refreshes shortly before expiry', async () => {
    const { m } = manager(w.sim.issueRefreshToken());
    const a = await m.getToken();
    w.clock.advance(3600_000 - 4 * 60_000); // 4 min left < 5 min margin
    const b = await m.getToken();
    assert.notEqual(a, b);
    assert.equal(w.sim.refreshGrants, 2);
  });

  it('single-flight: parallel callers and parallel 401s share one refresh', async () => {
    const { m } = manager(w.sim.issueRefreshToken());
    const tokens = await Promise.all(Array.from({ length: 8 }, () => m.getToken()));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(w.sim.refreshGrants, 1);
    const rejected = tokens[0];
    const again = await Promise.all(Array.from({ length: 5 }, () => m.onUnauthorized(rejected)));
    assert.equal(new Set(again).size, 1);
    assert.notEqual(again[0], rejected);
    assert.equal(w.sim.refreshGrants, 2, 'one refresh for five 401s (a rotated token used twice would be dead)');
    // a 401 for a token already replaced does not refresh again
    assert.equal(await m.onUnauthorized(rejected), again[0]);
    assert.equal(w.sim.refreshGrants, 2);
  });

  it('a dead refresh token is a re-authorize state without a retry loop', async () => {
    const rt = w.sim.issueRefreshToken();
    w.sim.revokeRefreshToken(rt);
    const { m } = manager(rt);
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'reauthorize' && /authorize the integration again/.test(e.message));
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'reauthorize');
    assert.equal(w.sim.refreshGrants, 1, 'no second grant');
    assert.equal(m.failure?.code, 'reauthorize');
  });

  it('an expired refresh token is refused the same way', async () => {
    const rt = w.sim.issueRefreshToken(60);
    w.clock.advance(120_000);
    const { m } = manager(rt);
    await assert.rejects(m.getToken(), /refresh token was refused \(400: The refresh token provided is expired/);
  });

  it('a wrong client secret is a configuration error, not "re-authorize"', async () => {
    const { m } = manager(w.sim.issueRefreshToken(), { clientSecret: 'wrong' });
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'badClient' && /client id or client secret/.test(e.message));
  });

  it('retries a 5xx from the token endpoint, then succeeds', async () => {
    w.sim.inject({ on: 'token', status: 503, times: 2 });
    const { m } = manager(w.sim.issueRefreshToken());
    assert.match(await m.getToken(), /^AT-/);
  });

  it('a restart uses the newest stored tokens when the credential is one of their ancestors', async () => {
    const rt = w.sim.issueRefreshToken();
    const first = manager(rt);
    await first.m.getToken();
    await first.m.refresh(); // a second rotation
    const stored = first.saved[first.saved.length - 1];
    // restart: credentials still hold the original token (addCredentials not yet written to disk)
    const second = manager(rt, { stored });
    assert.equal(await second.m.getToken(), stored.accessToken, 'no refresh needed: the stored access token is valid');
    w.clock.advance(3600_000);
    assert.match(await second.m.getToken(), /^AT-/, 'refresh with the newest refresh token works (the original is revoked)');
    // a newly pasted token (not in the lineage) wins over the stored set
    const fresh = w.sim.issueRefreshToken();
    const third = manager(fresh, { stored });
    await third.m.getToken();
    assert.equal(third.saved[0].lineage[0], tokenHash(fresh));
  });

  it('adopt: tokens of a new authorization replace a dead refresh token, are saved before use, and a restart from the old credential finds them', async () => {
    const rt = w.sim.issueRefreshToken();
    w.sim.revokeRefreshToken(rt);
    const saved: StoredTokens[] = [];
    let usedBeforeSaved: boolean | null = null;
    const { m } = manager(rt, {
      persist: async (t) => {
        usedBeforeSaved = m.current?.accessToken === t.accessToken;
        saved.push(t);
      },
    });
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'reauthorize');
    const fresh = { accessToken: w.sim.issueAccessToken(3600), expiresAt: w.clock.now() + 3600_000, refreshToken: w.sim.issueRefreshToken() };
    await m.adopt(fresh);
    assert.equal(usedBeforeSaved, false, 'saved before it is used');
    assert.equal(m.failure, null, 're-authorize is over');
    assert.equal(await m.getToken(), fresh.accessToken);
    assert.equal(saved.length, 1);
    assert.deepEqual(saved[0].lineage, [tokenHash(rt), tokenHash(fresh.refreshToken)]);
    // a restart before the deploy: the credential still holds the old (dead) refresh token
    const restarted = manager(rt, { stored: saved[0] });
    assert.equal(await restarted.m.getToken(), fresh.accessToken);
    assert.equal(w.sim.refreshGrants, 1, 'only the refused grant');
    await assert.rejects(m.adopt({ accessToken: 'AT-x', expiresAt: 0 }), /no refresh token/);
  });

  it('adopt waits for a refresh in flight, so the rotated tokens do not overwrite the new ones', async () => {
    w.sim.tokenDelayMs = 100;
    const { m, saved } = manager(w.sim.issueRefreshToken());
    const refreshing = m.getToken();
    const fresh = { accessToken: w.sim.issueAccessToken(3600), expiresAt: w.clock.now() + 3600_000, refreshToken: w.sim.issueRefreshToken() };
    await m.adopt(fresh);
    await refreshing;
    assert.equal(m.current?.refreshToken, fresh.refreshToken);
    assert.equal(saved[saved.length - 1].refreshToken, fresh.refreshToken);
  });

  it('a fixed access token is used as is and a 401 on it is final', async () => {
    const at = w.sim.issueAccessToken();
    const m = new TokenManager({ accessToken: at, clock: w.clock });
    assert.equal(m.mode, 'static');
    assert.equal(await m.getToken(), at);
    await assert.rejects(m.onUnauthorized(at), (e: unknown) => e instanceof TokenError && e.code === 'accessTokenRejected');
    await assert.rejects(new TokenManager({ clock: w.clock }).getToken(), (e: unknown) => e instanceof TokenError && e.code === 'noCredentials');
  });
});

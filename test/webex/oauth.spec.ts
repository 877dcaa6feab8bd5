import { strict as assert } from 'node:assert';
import { TokenManager, TokenError, tokenHash, type StoredTokens } from '../../src/webex/oauth';
import { createAgent } from '../../src/common/http';
import { WebexApiSim, VirtualClock } from '../simulators/webex-api';

describe('webex/oauth', () => {
  let clock: VirtualClock;
  let sim: WebexApiSim;
  const agent = createAgent({ timeoutMs: 2000 });
  beforeEach(async () => {
    clock = new VirtualClock(Date.parse('2026-11-23T12:00:00.000Z'));
    sim = await new WebexApiSim({ clock, accessTtlS: 3600 }).start();
  });
  afterEach(() => sim.stop());
  after(() => agent.close());

  function manager(rt: string, extra: Partial<ConstructorParameters<typeof TokenManager>[0]> = {}) {
    const saved: StoredTokens[] = [];
    const m = new TokenManager({
      clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: rt, tokenUrl: sim.tokenUrl,
      dispatcher: agent, clock, persist: async (t) => { saved.push(t); }, retryBaseMs: 1, ...extra,
    });
    return { m, saved };
  }

  it('refreshes on first use, persists the rotated refresh token before use, and reuses the access token', async () => {
    const rt = sim.issueRefreshToken();
    const { m, saved } = manager(rt);
    const at = await m.getToken();
    assert.match(at, /^AT-/);
    assert.equal(saved.length, 1);
    assert.notEqual(saved[0].refreshToken, rt, 'rotated');
    assert.equal(saved[0].accessToken, at);
    assert.equal(saved[0].expiresAt, clock.now() + 3600_000);
    assert.ok(saved[0].lineage.includes(tokenHash(rt)) && saved[0].lineage.includes(tokenHash(saved[0].refreshToken!)));
    assert.equal(await m.getToken(), at, 'still valid: no new grant');
    assert.equal(sim.refreshGrants, 1);
  });

  it('refreshes shortly before expiry', async () => {
    const { m } = manager(sim.issueRefreshToken());
    const a = await m.getToken();
    clock.advance(3600_000 - 4 * 60_000); // 4 min left < 5 min margin
    const b = await m.getToken();
    assert.notEqual(a, b);
    assert.equal(sim.refreshGrants, 2);
  });

  it('single-flight: parallel callers and parallel 401s share one refresh', async () => {
    const { m } = manager(sim.issueRefreshToken());
    const tokens = await Promise.all(Array.from({ length: 8 }, () => m.getToken()));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(sim.refreshGrants, 1);
    const rejected = tokens[0];
    const again = await Promise.all(Array.from({ length: 5 }, () => m.onUnauthorized(rejected)));
    assert.equal(new Set(again).size, 1);
    assert.notEqual(again[0], rejected);
    assert.equal(sim.refreshGrants, 2, 'one refresh for five 401s (a rotated token used twice would be dead)');
    // a 401 for a token already replaced does not refresh again
    assert.equal(await m.onUnauthorized(rejected), again[0]);
    assert.equal(sim.refreshGrants, 2);
  });

  it('a dead refresh token is a re-authorize state without a retry loop', async () => {
    const rt = sim.issueRefreshToken();
    sim.revokeRefreshToken(rt);
    const { m } = manager(rt);
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'reauthorize' && /authorize the integration again/.test(e.message));
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'reauthorize');
    assert.equal(sim.refreshGrants, 1, 'no second grant');
    assert.equal(m.failure?.code, 'reauthorize');
  });

  it('an expired refresh token is refused the same way', async () => {
    const rt = sim.issueRefreshToken(60);
    clock.advance(120_000);
    const { m } = manager(rt);
    await assert.rejects(m.getToken(), /refresh token was refused \(400: The refresh token provided is expired/);
  });

  it('a wrong client secret is a configuration error, not "re-authorize"', async () => {
    const { m } = manager(sim.issueRefreshToken(), { clientSecret: 'wrong' });
    await assert.rejects(m.getToken(), (e: unknown) => e instanceof TokenError && e.code === 'badClient' && /client id or client secret/.test(e.message));
  });

  it('retries a 5xx from the token endpoint, then succeeds', async () => {
    sim.inject({ on: 'token', status: 503, times: 2 });
    const { m } = manager(sim.issueRefreshToken());
    assert.match(await m.getToken(), /^AT-/);
  });

  it('a restart uses the newest stored tokens when the credential is one of their ancestors', async () => {
    const rt = sim.issueRefreshToken();
    const first = manager(rt);
    await first.m.getToken();
    await first.m.refresh(); // a second rotation
    const stored = first.saved[first.saved.length - 1];
    // restart: credentials still hold the original token (addCredentials not yet written to disk)
    const second = manager(rt, { stored });
    assert.equal(await second.m.getToken(), stored.accessToken, 'no refresh needed: the stored access token is valid');
    clock.advance(3600_000);
    assert.match(await second.m.getToken(), /^AT-/, 'refresh with the newest refresh token works (the original is revoked)');
    // a newly pasted token (not in the lineage) wins over the stored set
    const fresh = sim.issueRefreshToken();
    const third = manager(fresh, { stored });
    await third.m.getToken();
    assert.equal(third.saved[0].lineage[0], tokenHash(fresh));
  });

  it('a fixed access token is used as is and a 401 on it is final', async () => {
    const at = sim.issueAccessToken();
    const m = new TokenManager({ accessToken: at, clock });
    assert.equal(m.mode, 'static');
    assert.equal(await m.getToken(), at);
    await assert.rejects(m.onUnauthorized(at), (e: unknown) => e instanceof TokenError && e.code === 'accessTokenRejected');
    await assert.rejects(new TokenManager({ clock }).getToken(), (e: unknown) => e instanceof TokenError && e.code === 'noCredentials');
  });
});

import { strict as assert } from 'node:assert';
import { request } from 'undici';
import { consent, useWebexSim } from './node-rig';
import {
  AuthStates, AuthorizeError, AUTH_SCOPES, CALLBACK_PATH, STATE_TTL_MS, authorizeUrl, callbackResponse, describeIdentity, exchangeCode,
  isCallbackUri, isStateShaped, oauthEndpoints, whoAmI,
} from '../../src/webex/authorize';
import { HttpStatusError } from '../../src/common/http';
import { parseTokenResponse, postTokenForm } from '../../src/webex/oauth';
import { WebexApiSim, CDR_SCOPE } from '../simulators/webex-api';

const REDIRECT = `http://127.0.0.1:1880${CALLBACK_PATH}`;

describe('webex/authorize: URLs', () => {
  it('puts the consent page and the identity call beside the token endpoint', () => {
    assert.deepEqual(oauthEndpoints(), {
      authorize: 'https://webexapis.com/v1/authorize', token: 'https://webexapis.com/v1/access_token', me: 'https://webexapis.com/v1/people/me',
    });
    assert.deepEqual(oauthEndpoints('http://127.0.0.1:4567/v1/access_token'), {
      authorize: 'http://127.0.0.1:4567/v1/authorize', token: 'http://127.0.0.1:4567/v1/access_token', me: 'http://127.0.0.1:4567/v1/people/me',
    });
    assert.equal(oauthEndpoints('https://proxy.example/webex/v1/access_token').authorize, 'https://proxy.example/webex/v1/authorize');
    assert.equal(oauthEndpoints('https://proxy.example/token').authorize, 'https://proxy.example/v1/authorize', 'another path: the Webex paths on that host');
    assert.equal(oauthEndpoints('').token, 'https://webexapis.com/v1/access_token');
    assert.throws(() => oauthEndpoints('ftp://webexapis.com/v1/access_token'), /not an http/);
    assert.throws(() => oauthEndpoints('webexapis.com/v1/access_token'));
  });

  it('builds the consent URL with client_id, response_type=code, redirect_uri, both scopes (space separated) and the state', () => {
    const state = 'S'.repeat(43);
    const url = authorizeUrl({ endpoint: 'https://webexapis.com/v1/authorize', clientId: 'C1 2&3', redirectUri: REDIRECT, state });
    assert.ok(url.startsWith('https://webexapis.com/v1/authorize?client_id=C1%202%263&response_type=code&redirect_uri='));
    assert.ok(url.includes('&scope=spark-admin%3Acalling_cdr_read%20spark%3Apeople_read&'), url);
    const q = new URL(url).searchParams;
    assert.deepEqual(Object.fromEntries(q), { client_id: 'C1 2&3', response_type: 'code', redirect_uri: REDIRECT, scope: 'spark-admin:calling_cdr_read spark:people_read', state });
    assert.deepEqual(AUTH_SCOPES, ['spark-admin:calling_cdr_read', 'spark:people_read']);
    assert.equal(new URL(authorizeUrl({ endpoint: 'https://x.example/authorize?tenant=1', clientId: 'c', redirectUri: REDIRECT, state })).searchParams.get('tenant'), '1');
  });

  it('accepts as redirect URI only an http(s) URL of the callback route', () => {
    for (const ok of [REDIRECT, `https://nodered.example.com/admin${CALLBACK_PATH}`, `http://localhost:1880${CALLBACK_PATH}`]) assert.ok(isCallbackUri(ok), ok);
    for (const bad of [`${REDIRECT}?x=1`, `${REDIRECT}#x`, 'http://127.0.0.1:1880/cdrflow/webex/auth/start', `javascript:alert(1)//${CALLBACK_PATH}`,
      `ftp://h${CALLBACK_PATH}`, `http://user:pw@h${CALLBACK_PATH}`, 'not a url', 42, undefined]) assert.equal(isCallbackUri(bad), false, String(bad));
  });

  it('describes who authorized with what Webex said', () => {
    assert.equal(describeIdentity({ displayName: 'Ada Admin', email: 'ada@example.com', orgId: 'O' }), 'Ada Admin (ada@example.com)');
    assert.equal(describeIdentity({ email: 'ada@example.com' }), 'ada@example.com');
    assert.equal(describeIdentity({ orgId: 'O' }), 'O');
    assert.equal(describeIdentity({}), '');
  });
});

describe('webex/authorize: the state store', () => {
  let t = 1_000_000;
  const now = () => t;
  beforeEach(() => {
    t = 1_000_000;
  });

  it('makes random, URL-safe states that are taken once', () => {
    const s = new AuthStates<{ secret: string }, string>(now);
    const a = s.begin('acc1', { secret: 'x' });
    const b = s.begin('acc2', { secret: 'y' });
    assert.ok(isStateShaped(a) && isStateShaped(b));
    assert.notEqual(a, b);
    assert.deepEqual(s.take(a), { ok: true, nodeId: 'acc1', pending: { secret: 'x' } });
    assert.deepEqual(s.take(a), { ok: false, why: 'used' }, 'single use');
    assert.deepEqual(s.take(b), { ok: true, nodeId: 'acc2', pending: { secret: 'y' } });
  });

  it('refuses an unknown or malformed state, and one older than the time limit', () => {
    const s = new AuthStates<string, string>(now);
    assert.deepEqual(s.take('A'.repeat(43)), { ok: false, why: 'unknown' });
    for (const bad of ['', 'short', '<script>', undefined, 42, ['x']]) assert.deepEqual(s.take(bad), { ok: false, why: 'unknown' });
    const old = s.begin('acc', 'p');
    t += STATE_TTL_MS + 1;
    assert.deepEqual(s.take(old), { ok: false, why: 'expired' });
    assert.deepEqual(s.take(old), { ok: false, why: 'expired' }, 'still expired, not "used"');
    const fresh = s.begin('acc', 'q');
    t += STATE_TTL_MS - 1;
    assert.equal(s.take(fresh).ok, true, 'just within the limit');
  });

  it('a newer authorization for the same node replaces one still waiting; other nodes keep theirs', () => {
    const s = new AuthStates<string, string>(now);
    const first = s.begin('acc', 'p1');
    const other = s.begin('acc2', 'o');
    const second = s.begin('acc', 'p2');
    assert.deepEqual(s.take(first), { ok: false, why: 'replaced' });
    assert.deepEqual(s.collect(first, 'acc'), { status: 'replaced' });
    assert.deepEqual(s.take(second), { ok: true, nodeId: 'acc', pending: 'p2' });
    assert.deepEqual(s.take(other), { ok: true, nodeId: 'acc2', pending: 'o' });
  });

  it('hands the result to the editor once, for the node the state is bound to, within the time limit', () => {
    const s = new AuthStates<string, { rt: string }>(now);
    const state = s.begin('acc', 'p');
    assert.deepEqual(s.collect(state, 'acc'), { status: 'pending' }, 'the user is still at Webex');
    s.take(state);
    assert.deepEqual(s.collect(state, 'acc'), { status: 'pending' }, 'the code is being exchanged');
    s.finish(state, { rt: 'RT-1' });
    assert.deepEqual(s.collect(state, 'other-node'), { status: 'unknown' }, 'bound to the node id');
    assert.deepEqual(s.collect('B'.repeat(43), 'acc'), { status: 'unknown' });
    assert.deepEqual(s.collect(state, 'acc'), { status: 'done', result: { rt: 'RT-1' } });
    assert.deepEqual(s.collect(state, 'acc'), { status: 'used' }, 'once');

    const late = s.begin('acc', 'p');
    s.take(late);
    s.finish(late, { rt: 'RT-2' });
    t += STATE_TTL_MS + 1;
    assert.deepEqual(s.collect(late, 'acc'), { status: 'expired' }, 'a result nobody collected in time is dropped');
    const never = s.begin('acc', 'p');
    t += STATE_TTL_MS + 1;
    assert.deepEqual(s.collect(never, 'acc'), { status: 'expired' });
  });

  it('finish() only fills a state the callback took', () => {
    const s = new AuthStates<string, string>(now);
    const state = s.begin('acc', 'p');
    s.finish(state, 'forged');
    assert.deepEqual(s.collect(state, 'acc'), { status: 'pending' });
  });

  it('stays bounded: the oldest states go first', () => {
    const s = new AuthStates<string, string>(now, { max: 3 });
    const states = [1, 2, 3, 4].map((i) => s.begin(`acc${i}`, 'p'));
    assert.equal(s.size, 3);
    assert.deepEqual(s.take(states[0]), { ok: false, why: 'unknown' });
    assert.equal(s.take(states[3]).ok, true);
  });
});

describe('webex/authorize: the callback page', () => {
  it('escapes what it shows, carries only a well-formed state, and allows only its own script', () => {
    const state = 'a'.repeat(43);
    const { headers, body } = callbackResponse({ ok: true, title: 'Done <b>', lines: ['Authorized as <img src=x onerror=alert(1)> & co'], state });
    assert.ok(body.includes('Done &lt;b&gt;') && body.includes('Authorized as &lt;img src=x onerror=alert(1)&gt; &amp; co'));
    assert.ok(!body.includes('<img'));
    const nonce = /script-src 'nonce-([^']+)'/.exec(headers['content-security-policy'])?.[1];
    assert.ok(nonce && body.includes(`<script nonce="${nonce}">`));
    assert.match(headers['content-security-policy'], /default-src 'none'/);
    assert.equal(headers['cache-control'], 'no-store');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    assert.ok(body.includes(`"state":"${state}"`) && body.includes('window.opener.postMessage(m, location.origin)') && body.includes('window.close()'));
    const forged = callbackResponse({ ok: false, title: 't', lines: [], state: '"</script><script>alert(1)</script>' });
    assert.ok(forged.body.includes('"state":null'));
    assert.ok(!forged.body.includes('alert(1)'));
    assert.ok(forged.body.includes('"ok":false') && forged.body.includes('if (m.ok) setTimeout'), 'a failure stays open');
    assert.notEqual(nonce, /nonce-([^']+)/.exec(forged.headers['content-security-policy'])?.[1], 'a new nonce each time');
  });
});

describe('webex/authorize: against the simulated Webex', () => {
  const w = useWebexSim({ redirectUris: [REDIRECT] });

  const url = (over: Partial<Parameters<typeof authorizeUrl>[0]> = {}) => authorizeUrl({ endpoint: w.sim.authorizeUrl, clientId: w.sim.clientId, redirectUri: REDIRECT, state: 'st-1', ...over });
  const exchange = (code: string, over: Partial<Parameters<typeof exchangeCode>[0]> = {}) => exchangeCode({
    tokenUrl: w.sim.tokenUrl, clientId: w.sim.clientId, clientSecret: w.sim.clientSecret, code, redirectUri: REDIRECT, now: () => w.clock.now(), dispatcher: w.agent, ...over,
  });
  async function refused(p: Promise<unknown>, code: string, detail: RegExp): Promise<void> {
    await assert.rejects(p, (err: unknown) => err instanceof AuthorizeError && err.code === code && detail.test(err.detail));
  }

  it('consents and sends the browser back with a code and the state; the code becomes tokens, and they say who authorized', async () => {
    const back = await consent(url());
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    assert.equal(back.searchParams.get('state'), 'st-1');
    const code = back.searchParams.get('code')!;
    const granted = await exchange(code);
    assert.equal(granted.tokens.accessToken, w.sim.authorizations[0].accessToken);
    assert.equal(granted.tokens.refreshToken, w.sim.authorizations[0].refreshToken);
    assert.equal(granted.tokens.expiresAt, w.clock.now() + 1209599_000);
    assert.deepEqual(granted.scope, ['spark-admin:calling_cdr_read', 'spark:people_read']);
    const me = await whoAmI(oauthEndpoints(w.sim.tokenUrl).me, granted.tokens.accessToken, w.agent);
    assert.deepEqual(me, { displayName: 'Sim Admin', email: 'sim.admin@example.com', orgId: w.sim.orgId });
    assert.equal(w.sim.codeGrants, 1);
  });

  it('refuses a reused, unknown or expired code, a redirect_uri other than the consent one, and a wrong secret', async () => {
    const code = (await consent(url())).searchParams.get('code')!;
    await refused(exchange(code, { clientSecret: 'wrong' }), 'badClient', /client authentication failed/);
    await refused(exchange(code, { redirectUri: `http://127.0.0.1:1881${CALLBACK_PATH}` }), 'badCode', /redirect_uri does not match/);
    await exchange(code);
    await refused(exchange(code), 'badCode', /already been used/);
    await refused(exchange('CODE-made-up'), 'badCode', /invalid/);
    const late = (await consent(url())).searchParams.get('code')!;
    w.clock.advance(301_000);
    await refused(exchange(late), 'badCode', /expired/);
    assert.equal(w.sim.codeGrants, 1);
  });

  it('reports a token endpoint that fails, or cannot be reached', async () => {
    const code = (await consent(url())).searchParams.get('code')!;
    w.sim.inject({ on: 'token', status: 503, body: JSON.stringify({ message: 'Service Unavailable' }) });
    await refused(exchange(code), 'tokenEndpoint', /Service Unavailable/);
    const dead = await new WebexApiSim({ clock: w.clock }).start();
    const deadUrl = dead.tokenUrl;
    await dead.stop();
    await refused(exchange(code, { tokenUrl: deadUrl }), 'network', /./);
  });

  it('the consent page: no redirect to an unregistered URI or for an unknown client; scopes the integration lacks, a declined consent and another response_type come back as errors', async () => {
    for (const [over, text] of [[{ redirectUri: `http://evil.example${CALLBACK_PATH}` }, /redirect_uri mismatch/], [{ clientId: 'other' }, /invalid_client/]] as const) {
      const res = await request(url(over), { method: 'GET' });
      assert.equal(res.statusCode, 400);
      assert.equal(res.headers.location, undefined);
      assert.match(await res.body.text(), text);
    }
    const scopeless = await consent(url({ scopes: [CDR_SCOPE, 'spark-admin:people_write'] }));
    assert.deepEqual([scopeless.searchParams.get('error'), scopeless.searchParams.get('state')], ['invalid_scope', 'st-1']);
    w.sim.integrationScopes = ['spark:kms', CDR_SCOPE];
    assert.equal((await consent(url())).searchParams.get('error'), 'invalid_scope', 'an integration without spark:people_read');
    w.sim.integrationScopes = ['spark:kms', CDR_SCOPE, 'spark:people_read'];
    const odd = await consent(url().replace('response_type=code', 'response_type=token'));
    assert.equal(odd.searchParams.get('error'), 'unsupported_response_type');
    w.sim.consent = 'deny';
    const denied = await consent(url());
    assert.deepEqual([denied.searchParams.get('error'), denied.searchParams.get('code')], ['access_denied', null]);
    assert.equal(w.sim.authorizations.length, 0);
  });

  it('the identity needs spark:people_read, as at Webex', async () => {
    const at = w.sim.issueAccessToken(3600, [CDR_SCOPE]);
    await assert.rejects(whoAmI(oauthEndpoints(w.sim.tokenUrl).me, at, w.agent), (err: unknown) => err instanceof HttpStatusError && err.status === 403 && /missing required scopes/.test(err.body));
    await assert.rejects(whoAmI(oauthEndpoints(w.sim.tokenUrl).me, 'AT-unknown', w.agent), (err: unknown) => err instanceof HttpStatusError && err.status === 401);
  });

  it('tokens of an authorization keep its scopes through refreshes; without the CDR scope the CDR API answers 403', async () => {
    const code = (await consent(url({ scopes: ['spark:people_read'] }))).searchParams.get('code')!;
    const granted = await exchange(code);
    const res = await request(`${w.sim.url()}/v1/cdr_stream?startTime=2026-11-23T10:00:00.000Z&endTime=2026-11-23T11:00:00.000Z`, { headers: { authorization: `Bearer ${granted.tokens.accessToken}` } });
    assert.equal(res.statusCode, 403);
    assert.match(await res.body.text(), /missing required scopes/);
    assert.equal(w.sim.grantOf(granted.tokens.refreshToken!), 'auth-1');
    const refreshed = parseTokenResponse(await postTokenForm(w.sim.tokenUrl, {
      grant_type: 'refresh_token', client_id: w.sim.clientId, client_secret: w.sim.clientSecret, refresh_token: granted.tokens.refreshToken!,
    }, w.agent), w.clock.now());
    assert.deepEqual(refreshed.scope, ['spark:people_read']);
    assert.equal(w.sim.grantOf(refreshed.tokens.accessToken), 'auth-1');
    assert.equal(w.sim.grantOf(refreshed.tokens.refreshToken!), 'auth-1');
  });
});

/**
 * The authorization routes of webex-account in a real Node-RED (helper.request() reaches
 * RED.httpAdmin): start (what the dialog sends), the callback Webex sends the browser to (against the
 * simulated Webex), and the result the dialog collects.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, capture, translate } from '../helpers/red';
import { useWebexRig, consent, now0, MIN, H } from '../webex/node-rig';
import { tokenHash } from '../../src/webex/oauth';
import { escapeHtml } from '../../src/webex/authorize';
import { CDR_SCOPE } from '../simulators/webex-api';
import accountMod = require('../../src/nodes/webex-account');

const REDIRECT = 'http://127.0.0.1:1880/cdrflow/webex/auth/callback';
const ROUTE = '/cdrflow/webex/auth';
const t = (key: string, vars?: Record<string, unknown>) => translate(`webex-account.authorize.${key}`, vars);
/** Whether the callback page shows `text`. */
const shows = (page: { text: string }, text: string) => page.text.includes(escapeHtml(text));

describe('webex-account node: authorizing from the editor', function () {
  this.timeout(20_000);
  const rig = useWebexRig('webex-auth-');
  const { flow, creds, load, until } = rig;
  const tokenFile = () => path.join(rig.stateDir(), 'webex-account-acc-tokens.json');

  beforeEach(() => {
    rig.sim.redirectUris.push(REDIRECT);
  });

  /** POST start as the dialog does for the deployed account `acc` (its secret shown as stored). */
  function start(body: Record<string, unknown> = {}) {
    return helper.request().post(`${ROUTE}/start`).send({
      id: 'acc', clientId: rig.sim.clientId, clientSecret: '__PWRD__', tokenUrl: rig.sim.tokenUrl, timeout: '1', ca: '', redirectUri: REDIRECT, ...body,
    });
  }

  /** Follows the consent URL to Webex and back: the callback page. */
  async function callback(consentUrl: string) {
    const back = await consent(consentUrl);
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    return helper.request().get(`${ROUTE}/callback${back.search}`);
  }

  function result(state: string, id = 'acc') {
    return helper.request().get(`${ROUTE}/result`).query({ id, state });
  }

  /** The whole round: start, consent, callback, result. */
  async function authorize(body: Record<string, unknown> = {}) {
    const started = await start(body);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const page = await callback(started.body.url);
    const res = await result(started.body.state, (body.id as string) ?? 'acc');
    return { started, page, res };
  }

  /** Everything the runtime logged so far. */
  const logged = () => JSON.stringify(helper.log().args);

  async function run(got: Awaited<ReturnType<typeof load>>): Promise<any> {
    const before = got.stats.length + got.caught.length;
    helper.getNode('pull').receive({});
    await until(() => got.stats.length + got.caught.length > before);
    return got.stats[got.stats.length - 1];
  }

  it('a deployed account whose refresh token died: the new authorization works at once, is saved to the token file and the credentials, and survives a restart without a deploy', async () => {
    rig.sim.revokeRefreshToken(rig.refreshToken);
    rig.sim.generate(20, now0 - 2 * H, now0 - 3 * MIN);
    const got = await load(flow({ lookbackHours: 3 }));
    await run(got);
    assert.match(got.caught[0].error.message, /refresh token was refused/);

    const { started, page, res } = await authorize();
    const consentUrl = new URL(started.body.url);
    assert.equal(`${consentUrl.origin}${consentUrl.pathname}`, rig.sim.authorizeUrl);
    assert.deepEqual(Object.fromEntries(consentUrl.searchParams), {
      client_id: rig.sim.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'spark-admin:calling_cdr_read spark:people_read', state: started.body.state,
    });
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'], /text\/html/);
    assert.match(page.headers['content-security-policy'], /script-src 'nonce-/);
    assert.ok(shows(page, t('page.doneAs', { who: 'Sim Admin (sim.admin@example.com)' })), page.text);
    const auth = rig.sim.authorizations[0];
    assert.deepEqual(res.body, { status: 'done', refreshToken: auth.refreshToken, who: 'Sim Admin (sim.admin@example.com)', whoError: null, outcome: 'applied' });
    assert.deepEqual((await result(started.body.state)).body.status, 'used', 'collected once');

    // in use at once: no deploy
    const stats = await run(got);
    assert.equal(stats.payload.ok, true, JSON.stringify(stats.payload.error));
    const cdr = rig.sim.log.filter((e) => e.path.startsWith('/v1/cdr_'));
    assert.ok(cdr.length > 0 && cdr.every((e) => e.status === 200 && e.grant === auth.id), JSON.stringify(cdr.map((e) => [e.status, e.grant])));
    // saved where the account keeps tokens
    const saved = JSON.parse(fs.readFileSync(tokenFile(), 'utf8')).tokens;
    assert.equal(saved.refreshToken, auth.refreshToken);
    assert.equal(saved.accessToken, auth.accessToken);
    assert.ok(saved.lineage.includes(tokenHash(rig.refreshToken)), 'descends from the configured token: a restart finds it');
    assert.equal(got.red.nodes.getCredentials('acc').refreshToken, auth.refreshToken, 'handed to the credentials (written at the next deploy)');
    // nothing secret in what the routes answered, nor in the log
    const secrets = [rig.sim.clientSecret, ...rig.sim.issuedTokens];
    for (const text of [JSON.stringify(started.body), started.body.url, page.text, logged()]) assert.deepEqual(secrets.filter((s) => text.includes(s)), []);

    // restart with the old credential (no deploy happened): the saved tokens are used
    await helper.unload();
    rig.clock.advance(10 * MIN);
    const again = await load(flow({ lookbackHours: 3 }));
    assert.equal((await run(again)).payload.ok, true);
    assert.equal(rig.sim.refreshGrants, 1, 'only the refused grant: no refresh with the dead token');
    assert.ok(rig.sim.log.filter((e) => e.path.startsWith('/v1/cdr_')).every((e) => e.grant === auth.id));
  });

  it('an account that is not deployed yet: the typed client secret is used and the refresh token goes to the dialog only', async () => {
    const got = await load();
    const { page, res } = await authorize({ id: 'acc-new', clientSecret: rig.sim.clientSecret });
    assert.equal(page.status, 200);
    assert.deepEqual(res.body, { status: 'done', refreshToken: rig.sim.authorizations[0].refreshToken, who: 'Sim Admin (sim.admin@example.com)', whoError: null, outcome: 'notDeployed' });
    assert.equal(got.red.nodes.getCredentials('acc').refreshToken, rig.refreshToken, 'the running account is untouched');
    assert.equal(fs.existsSync(tokenFile()), false);
  });

  it('a deployed account that cannot use it yet (no refresh token before, or another client): after the deploy, and its credentials are left alone', async () => {
    const got = await load(flow(), creds({ refreshToken: '' }));
    const first = await authorize();
    assert.equal(first.res.body.outcome, 'afterDeploy');
    assert.equal(got.red.nodes.getCredentials('acc').refreshToken, '');
    await helper.unload();
    // deployed with another secret (changed in the dialog, not deployed): the typed one is used
    rig.sim.redirectUris.push(REDIRECT);
    const other = await load(flow(), creds({ clientSecret: 'the-old-secret' }));
    const second = await authorize({ clientSecret: rig.sim.clientSecret });
    assert.equal(second.res.body.outcome, 'afterDeploy');
    assert.equal(other.red.nodes.getCredentials('acc').refreshToken, rig.refreshToken);
    assert.equal(rig.sim.codeGrants, 2);
  });

  it('start: says what is missing, expands ${ENV}, and sends a stored secret only to the token URL it was deployed with', async () => {
    await load();
    const error = async (body: Record<string, unknown>) => {
      const r = await start(body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      return r.body.error as string;
    };
    assert.equal(await error({ clientId: '' }), t('errors.noClientId'));
    assert.equal(await error({ clientSecret: '' }), t('errors.noClientSecret'));
    assert.equal(await error({ id: 'not-deployed' }), t('errors.noClientSecret'), 'a placeholder for a node that is not running');
    assert.equal(await error({ tokenUrl: 'https://elsewhere.example/v1/access_token' }), t('errors.secretElsewhere'));
    assert.equal(await error({ tokenUrl: 'ftp://x/v1/access_token', clientSecret: 's' }), t('errors.tokenUrl', { url: 'ftp://x/v1/access_token' }));
    assert.equal(await error({ redirectUri: 'http://127.0.0.1:1880/somewhere/else' }), t('errors.redirectUri'));
    assert.equal(await error({ id: '../../etc' }), t('errors.badRequest'));
    assert.match(await error({ ca: path.join(rig.userDir, 'missing.pem'), clientSecret: 's' }), /^the CA certificate cannot be read: .*ENOENT/);
    process.env.CDRFLOW_TEST_CLIENT = rig.sim.clientId;
    try {
      const r = await start({ clientId: '${CDRFLOW_TEST_CLIENT}' });
      assert.equal(r.status, 200);
      assert.equal(new URL(r.body.url).searchParams.get('client_id'), rig.sim.clientId);
      assert.deepEqual(r.body.scopes, ['spark-admin:calling_cdr_read', 'spark:people_read']);
      assert.equal(r.headers['cache-control'], 'no-store');
    } finally {
      delete process.env.CDRFLOW_TEST_CLIENT;
    }
  });

  it('the callback refuses an unknown, reused, expired or replaced state with a page that says so, and exchanges nothing', async () => {
    await load();
    const refusedWith = async (query: string, key: string) => {
      const r = await helper.request().get(`${ROUTE}/callback${query}`);
      assert.equal(r.status, 400);
      assert.ok(shows(r, t('page.refusedTitle')) && shows(r, t(`page.${key}`)), r.text);
    };
    await refusedWith('', 'unknown');
    await refusedWith(`?code=CODE-x&state=${'A'.repeat(43)}`, 'unknown');
    await refusedWith('?code=CODE-x&state=%3Cscript%3E', 'unknown');

    // reused: the same redirect a second time
    const started = await start();
    const back = await consent(started.body.url);
    assert.equal((await helper.request().get(`${ROUTE}/callback${back.search}`)).status, 200);
    await refusedWith(back.search, 'used');

    // expired: the user took longer than 10 minutes
    const slow = await start();
    rig.clock.advance(11 * MIN);
    const slowBack = await consent(slow.body.url);
    await refusedWith(slowBack.search, 'expired');
    assert.deepEqual((await result(slow.body.state)).body, { status: 'expired', error: t('page.expired') });

    // replaced: a second click on the button before the first finished
    const older = await start();
    const newer = await start();
    await refusedWith((await consent(older.body.url)).search, 'replaced');
    assert.equal((await callback(newer.body.url)).status, 200);
    assert.equal((await result(older.body.state)).body.status, 'replaced');
    assert.equal((await result(newer.body.state, 'someone-else')).status, 404, 'bound to the node id');

    assert.equal(rig.sim.codeGrants, 2);
    assert.equal(rig.sim.log.filter((e) => e.kind === 'token').length, 2, 'a refused state never reaches the token endpoint');
  });

  describe('what Webex refuses is shown on the page and in the dialog; nothing changes', () => {
    const cases: Array<[string, () => void, Record<string, unknown>, number, () => string]> = [
      ['a wrong client secret', () => undefined, { clientSecret: 'not-the-secret' }, 400, () => t('exchange.badClient', { detail: 'client authentication failed' })],
      ['a declined consent', () => { rig.sim.consent = 'deny'; }, {}, 400, () => t('webex.access_denied', { detail: 'The user denied the request.' })],
      ['an integration without spark:people_read', () => { rig.sim.integrationScopes = ['spark:kms', CDR_SCOPE]; }, {}, 400,
        () => t('webex.invalid_scope', { detail: 'The requested scope is invalid.', scopes: 'spark-admin:calling_cdr_read, spark:people_read' })],
      ['a token endpoint that fails', () => rig.sim.inject({ on: 'token', status: 503, body: JSON.stringify({ message: 'Service Unavailable' }) }), {}, 502,
        () => t('exchange.tokenEndpoint', { status: 503, detail: 'Service Unavailable' })],
    ];
    for (const [what, arrange, body, status, message] of cases) {
      it(what, async () => {
        const got = await load();
        arrange();
        const { page, res } = await authorize(body);
        assert.equal(page.status, status);
        assert.ok(shows(page, t('page.failedTitle')) && shows(page, message()) && shows(page, t('page.again')), page.text);
        assert.deepEqual(res.body, { status: 'failed', error: message() });
        assert.equal(got.red.nodes.getCredentials('acc').refreshToken, rig.refreshToken);
        assert.equal(fs.existsSync(tokenFile()), false);
      });
    }
  });

  it('when Webex does not say who authorized, the authorization still counts and the dialog says why', async () => {
    await load();
    rig.sim.inject({ on: 'identity', status: 403, body: JSON.stringify({ message: 'missing required scopes' }) });
    const { page, res } = await authorize();
    assert.equal(page.status, 200);
    assert.ok(shows(page, t('page.done')));
    assert.equal(res.body.status, 'done');
    assert.equal(res.body.who, null);
    assert.match(res.body.whoError, /^403: .*missing required scopes/);
    assert.equal(res.body.outcome, 'applied');
  });

  it('start and result ask for the editor permission webex-account.write; the callback asks for none', async () => {
    const asked: string[] = [];
    const acc = capture(accountMod as any);
    const guarded = (RED: any) => {
      RED.auth = {
        needsPermission: (p: string) => {
          asked.push(p);
          return (req: any, res: any, next: () => void) => (req.headers.authorization === 'Bearer editor' ? next() : res.status(401).end());
        },
      };
      return acc.module(RED);
    };
    await helper.load([guarded], flow().slice(0, 2), creds());
    // flows.read: the list of state stores every module of the package serves to the dialogs (lib/setup.ts)
    assert.deepEqual(asked.sort(), ['flows.read', 'webex-account.write']);
    assert.equal((await start()).status, 401);
    assert.equal((await helper.request().get(`${ROUTE}/result`).query({ id: 'acc', state: 'x' })).status, 401);
    const ok = await start().set('authorization', 'Bearer editor');
    assert.equal(ok.status, 200);
    assert.equal((await callback(ok.body.url)).status, 200, 'the browser comes back from Webex without the editor token');
    assert.equal((await result(ok.body.state).set('authorization', 'Bearer editor')).body.status, 'done');
  });
});

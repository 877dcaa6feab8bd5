/**
 * "Authorize with Webex" in a real editor (Chromium) against the simulated Webex: a new account added
 * from the pull node's dialog is authorized in a second window (a wrong secret first), deployed, and
 * the pull runs with the new token; then the deployed account is authorized again and uses the new
 * tokens at once.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { startEditor, deploy, openNode, CHROMIUM, type Editor } from './harness';
import { WebexApiSim } from '../simulators/webex-api';
import { translate } from '../helpers/red';
import { systemClock } from '../../src/webex/clock';

const haveBrowser = fs.existsSync(CHROMIUM);
const shots = process.env.SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-shots-'));
const MIN = 60_000;
const t = (key: string, vars?: Record<string, unknown>) => translate(`webex-account.authorize.${key}`, vars);
const WHO = 'Sim Admin (sim.admin@example.com)';

(haveBrowser || process.env.CI ? describe : describe.skip)('editor (Chromium): authorizing a Webex account', function () {
  this.timeout(180_000);
  let ed: Editor;
  let sim: WebexApiSim;
  let accountId = '';

  before(async () => {
    sim = await new WebexApiSim({ clock: systemClock }).start();
    sim.generate(12, Date.now() - 50 * MIN, Date.now() - 10 * MIN);
    ed = await startEditor([
      { id: 'tab1', type: 'tab', label: 'Webex' },
      { id: 'inj', type: 'inject', z: 'tab1', name: 'pull now', props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, x: 120, y: 100, wires: [['pull']] },
      { id: 'pull', type: 'webex-cdr-pull', z: 'tab1', account: '', interval: 0, lookbackHours: 1, max: 500, x: 330, y: 100, wires: [[], []] },
    ]);
    sim.redirectUris.push(`${ed.url}cdrflow/webex/auth/callback`);
  });
  after(async () => {
    await ed?.stop();
    await sim?.stop();
  });

  /** The status line under the button, once it says something other than "waiting for Webex". */
  async function outcome(): Promise<string> {
    const status = ed.page.locator('#webex-account-authorize-status');
    await ed.page.waitForFunction((waiting) => {
      const el = document.getElementById('webex-account-authorize-status');
      return !!el && el.style.display !== 'none' && el.textContent !== '' && !el.textContent!.includes(waiting);
    }, t('opening'), { timeout: 30_000 });
    return (await status.textContent()) ?? '';
  }

  /** Clicks the button; returns the second window once Webex sent it back to the callback page. */
  async function clickAuthorize(): Promise<Page> {
    const [popup] = await Promise.all([ed.page.waitForEvent('popup'), ed.page.click('#webex-account-authorize')]);
    return popup;
  }

  it('adds an account from the pull node, authorizes it in a second window (a wrong secret first), deploys it, and pulls with the new token', async () => {
    await openNode(ed, 'pull');
    await ed.page.click('#node-input-btn-account-add');
    await ed.page.waitForSelector('.red-ui-tray #node-config-input-clientId', { timeout: 15_000 });
    assert.equal(await ed.page.inputValue('#webex-account-redirect-uri'), `${ed.url}cdrflow/webex/auth/callback`, 'the dialog shows the redirect URI to register');
    await ed.page.selectOption('#node-config-input-region', 'custom');
    await ed.page.fill('#node-config-input-baseUrl', sim.url());
    await ed.page.fill('#node-config-input-tokenUrl', sim.tokenUrl);
    await ed.page.fill('#node-config-input-clientId', sim.clientId);
    await ed.page.fill('#node-config-input-clientSecret', 'not-the-secret');

    // a wrong secret: the second window stays open and says why, and so does the dialog
    const failedWindow = await clickAuthorize();
    await failedWindow.waitForURL(/\/cdrflow\/webex\/auth\/callback\?/, { timeout: 30_000 });
    const refusal = t('exchange.badClient', { detail: 'client authentication failed' });
    assert.equal(await failedWindow.locator('#title').textContent(), t('page.failedTitle'));
    assert.ok((await failedWindow.locator('body').textContent())!.includes(refusal));
    assert.ok((await outcome()).includes(t('failed', { error: refusal })));
    assert.equal(await ed.page.inputValue('#node-config-input-refreshToken'), '');
    await failedWindow.close();

    // the right secret: the window closes itself and the dialog says who authorized
    await ed.page.fill('#node-config-input-clientSecret', sim.clientSecret);
    const doneWindow = await clickAuthorize();
    await doneWindow.waitForEvent('close', { timeout: 30_000 });
    const said = await outcome();
    assert.ok(said.includes(t('as', { who: WHO })) && said.includes(t('notDeployed')), said);
    const granted = sim.authorizations.filter((a) => a.exchanged);
    assert.equal(granted.length, 1);
    assert.equal(await ed.page.inputValue('#node-config-input-refreshToken'), granted[0].refreshToken, 'the refresh token is in the dialog, for the deploy to save');
    await ed.page.locator('.red-ui-tray').last().screenshot({ path: path.join(shots, 'dialog-webex-account-authorized.png') });

    await ed.page.click('#node-config-dialog-ok');
    await ed.page.waitForFunction(() => document.querySelectorAll('.red-ui-tray').length === 1, undefined, { timeout: 10_000 });
    await ed.page.click('#node-dialog-ok');
    accountId = await ed.page.evaluate(() => (window as any).RED.nodes.node('pull').account);
    assert.ok(accountId, 'the pull node uses the new account');
    await deploy(ed);
    const creds = JSON.parse(fs.readFileSync(path.join(ed.userDir, 'flows_cred.json'), 'utf8'));
    assert.deepEqual(creds[accountId], { clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: granted[0].refreshToken }, 'the deploy saved the credentials');

    // a pull with the new token, as the inject button does it
    assert.equal(await ed.page.evaluate(async () => (await fetch('inject/inj', { method: 'POST' })).status), 200);
    await ed.page.waitForFunction(() => /records/.test((window as any).RED.nodes.node('pull')?.status?.text ?? ''), undefined, { timeout: 60_000 });
    const status = await ed.page.evaluate(() => (window as any).RED.nodes.node('pull').status);
    assert.equal(status.fill, 'green', JSON.stringify(status));
    assert.match(status.text, /^12 records/);
    const cdr = sim.log.filter((e) => e.path.startsWith('/v1/cdr_'));
    assert.ok(cdr.length > 0 && cdr.every((e) => e.status === 200 && e.grant === granted[0].id), JSON.stringify(cdr.map((e) => [e.status, e.grant])));
  });

  it('authorizes the deployed account again: it uses the new tokens at once (stored secret, no deploy needed), and the deploy stores the refresh token', async () => {
    await ed.page.evaluate((id) => (window as any).RED.editor.editConfig('', 'webex-account', id), accountId);
    await ed.page.waitForSelector('.red-ui-tray #node-config-input-clientId', { timeout: 15_000 });
    assert.equal(await ed.page.inputValue('#node-config-input-clientSecret'), '__PWRD__', 'the stored secret is not in the editor');
    const doneWindow = await clickAuthorize();
    await doneWindow.waitForEvent('close', { timeout: 30_000 });
    const said = await outcome();
    assert.ok(said.includes(t('as', { who: WHO })) && said.includes(t('applied')), said);
    const latest = sim.authorizations.filter((a) => a.exchanged).pop()!;
    assert.equal(latest.id, 'auth-3');
    // in use by the running account already: its token file holds the new tokens (plain JSON: credentialSecret is false here)
    const tokenFile = path.join(ed.userDir, 'cdrflow-state', `webex-account-${accountId}-tokens.json`);
    const saved = JSON.parse(fs.readFileSync(tokenFile, 'utf8')).tokens;
    assert.deepEqual([saved.accessToken, saved.refreshToken], [latest.accessToken, latest.refreshToken]);

    await ed.page.click('#node-config-dialog-ok');
    await ed.page.waitForFunction(() => document.querySelectorAll('.red-ui-tray').length === 0, undefined, { timeout: 10_000 });
    await deploy(ed);
    const creds = JSON.parse(fs.readFileSync(path.join(ed.userDir, 'flows_cred.json'), 'utf8'));
    assert.equal(creds[accountId].refreshToken, latest.refreshToken);
    assert.equal(creds[accountId].clientSecret, sim.clientSecret, 'the stored secret was kept');
  });

  it('had no page errors or console errors', () => {
    assert.deepEqual(ed.pageErrors, []);
    assert.deepEqual(ed.consoleErrors.filter((e) => !/favicon/.test(e)), []);
  });
});

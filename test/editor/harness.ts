/**
 * A real Node-RED with this package installed into a temporary user directory, and Debian's Chromium
 * driven by playwright-core (never a downloaded browser): what a user meets in the editor.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startNodeRed } from '../helpers/node-red-process';

export const root = path.resolve(__dirname, '..', '..');
export const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export interface TypeInfo {
  type: string;
  category: string;
}

/** Node types and categories as written in each .html (the literal registerType). */
export function packageTypes(): TypeInfo[] {
  const out: TypeInfo[] = [];
  for (const file of Object.values(pkg['node-red'].nodes) as string[]) {
    const html = fs.readFileSync(path.join(root, file.replace(/\.js$/, '.html')), 'utf8');
    for (const m of html.matchAll(/registerType\(\s*'([^']+)'\s*,\s*\{\s*category:\s*'([^']+)'/g)) out.push({ type: m[1], category: m[2] });
  }
  return out;
}

export interface Editor {
  url: string;
  userDir: string;
  log: string[];
  process: ChildProcess;
  browser: Browser;
  page: Page;
  pageErrors: string[];
  consoleErrors: string[];
  stop(): Promise<void>;
}

/** Starts Node-RED with `flows` (one tab is added) and opens the editor in Chromium. */
export async function startEditor(flows: any[]): Promise<Editor> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-editor-'));
  fs.mkdirSync(path.join(userDir, 'node_modules', '@cdrflow'), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, 'node_modules', pkg.name), 'dir');
  const settings = path.join(userDir, 'settings.js');
  fs.writeFileSync(settings, `module.exports = {
    flowFile: 'flows.json', credentialSecret: false, telemetry: { enabled: false },
    editorTheme: { tours: false, palette: { catalogues: [] } }, externalModules: { palette: { allowInstall: false } },
    logging: { console: { level: 'info', metrics: false, audit: false } }
  };`);
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows));
  // red.js as users start it, on this user directory and its settings.js
  const nr = await startNodeRed(userDir);
  const { log, child } = nr;
  const port = new URL(nr.base).port;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  const url = `http://127.0.0.1:${port}/`;
  await page.goto(url);
  // the palette fills in as node sets load: wait for every type of this package, not just the first node
  const types = packageTypes().map((t) => t.type);
  await page.waitForFunction((wanted: string[]) => {
    const RED = (window as any).RED;
    return !!RED?.nodes && !!document.querySelector('.red-ui-palette-node') && wanted.every((t) => RED.nodes.getType(t));
  }, types, { timeout: 60_000 });
  return {
    url, userDir, log, process: child, browser, page, pageErrors, consoleErrors,
    async stop() {
      await browser.close().catch(() => undefined);
      await nr.stop();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

/** Clicks Deploy (confirming what the editor asks, e.g. unused config nodes) and waits until it is done. */
export async function deploy(ed: Editor): Promise<void> {
  await ed.page.click('#red-ui-header-button-deploy');
  // confirm dialogs (e.g. "unused config nodes") if the editor asks
  const confirm = ed.page.locator('.ui-dialog-buttonset button.primary');
  await ed.page.waitForTimeout(300);
  if (await confirm.first().isVisible()) await confirm.first().click({ timeout: 5000 });
  await ed.page.waitForFunction(() => !(window as any).RED.nodes.dirty(), undefined, { timeout: 20_000 });
}

/** Double-clicks the node in the workspace, as a user opens its dialog. */
export async function openNode(ed: Editor, id: string): Promise<void> {
  await ed.page.evaluate((nid) => (window as any).RED.view.reveal(nid), id);
  const box = await ed.page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`).first();
  await box.dblclick();
  await ed.page.waitForSelector('.red-ui-tray', { timeout: 15_000 });
}

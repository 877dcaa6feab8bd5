#!/usr/bin/env node
/**
 * npm run test:install: every way README's "Install" section offers, from nothing, the way a user does
 * it (.ci/run runs this after npm test):
 *   tarball    npm pack of a clone nobody ran npm install in, installed into a fresh user directory;
 *   folder     a clone prepared with `npm install --omit=dev`, installed by path (npm links it);
 *   git        `npm install git+file://…` (npm clones, installs, builds through `prepare`);
 *   container  the official image's layout: /data as the user directory holding settings.js (Node-RED's
 *              default one) and the package installed there, Node-RED itself installed elsewhere.
 * Each ends with a Node-RED (this repository's devDependency, started with red.js as users start it)
 * listing all thirteen node types, deploying the demo example, and taking a CDR on it.
 * Tests what is committed: the clones come from git, not from this working tree.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { execFileSync, spawn } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
const types = Object.keys(pkg['node-red'].nodes);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-install-'));
const only = process.argv.slice(2);
const npmArgs = ['--no-audit', '--no-fund', '--loglevel=error'];

function sh(cmd, args, cwd) {
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}
function clone(name) {
  const dir = path.join(work, name);
  sh('git', ['clone', '-q', root, dir], work);
  return dir;
}
function userDir(name, settings = true) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `node-red-${name}`, private: true, description: 'Node-RED user directory' }));
  if (settings) {
    fs.writeFileSync(path.join(dir, 'settings.js'), `module.exports = ${JSON.stringify({
      flowFile: 'flows.json', uiHost: '127.0.0.1', credentialSecret: 'install-test', telemetry: { enabled: false },
      editorTheme: { tours: false }, logging: { console: { level: 'info', metrics: false, audit: false } },
    })};\n`);
  }
  return dir;
}

function request(port, method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: { accept: 'application/json', ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function freePort() {
  return new Promise((resolve) => {
    const probe = http.createServer().listen(0, '127.0.0.1', () => {
      const p = probe.address().port;
      probe.close(() => resolve(p));
    });
  });
}

/** Starts Node-RED on `dir`, checks the palette, deploys the demo and posts a CDR to it; then stops it. */
async function check(name, dir, settingsFile) {
  const port = await freePort();
  const log = [];
  const child = spawn(process.execPath, [require.resolve('node-red/red.js'), '-u', dir, '-s', settingsFile, '-p', String(port)], { cwd: dir, env: { ...process.env, PORT: String(port) } });
  for (const s of [child.stdout, child.stderr]) s.on('data', (d) => log.push(...d.toString().split('\n')));
  try {
    let nodes = null;
    for (let i = 0; i < 300 && !nodes; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const res = await request(port, 'GET', '/nodes').catch(() => null);
      if (res && res.status === 200) nodes = JSON.parse(res.text);
    }
    if (!nodes) throw new Error('Node-RED did not answer');
    const ours = nodes.filter((n) => n.module === pkg.name);
    const listed = new Set(ours.flatMap((n) => n.types));
    const missing = types.filter((t) => !listed.has(t));
    const broken = ours.filter((n) => n.err || !n.enabled);
    if (missing.length || broken.length) throw new Error(`palette: missing ${missing.join(', ') || 'none'}; not loaded ${broken.map((n) => `${n.name}: ${n.err}`).join('; ') || 'none'}`);
    const demo = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', pkg.name, 'examples', 'CMS CDRs to the debug sidebar.json'), 'utf8'));
    const tab = { id: 'install-test-tab', type: 'tab', label: 'install test' };
    const flows = [tab, ...demo.map((n) => ({ ...n, z: tab.id }))];
    const deployed = await request(port, 'POST', '/flows', JSON.stringify(flows), { 'content-type': 'application/json', 'node-red-deployment-type': 'full' });
    if (deployed.status !== 204 && deployed.status !== 200) throw new Error(`deploy: HTTP ${deployed.status} ${deployed.text}`);
    const receiver = demo.find((n) => n.type === 'cms-cdr-in');
    const xml = fs.readFileSync(path.join(root, 'test', 'fixtures', 'cms', 'cdr-receiver-db-call.xml'));
    let posted = null;
    for (let i = 0; i < 50 && (!posted || posted.status === 404); i++) {
      await new Promise((r) => setTimeout(r, 100));
      posted = await request(port, 'POST', receiver.path, xml, { 'content-type': 'text/xml' });
    }
    if (posted.status !== 200) throw new Error(`POST ${receiver.path}: HTTP ${posted.status} ${posted.text}`);
    const errors = log.filter((l) => /\[error\]/.test(l));
    if (errors.length) throw new Error(`errors in the log:\n${errors.join('\n')}`);
    console.log(`install ${name}: ${types.length} types listed, demo deployed, a CDR taken (Node-RED ${nodes.find((n) => n.module === 'node-red')?.version ?? ''})`);
  } catch (err) {
    console.error(log.slice(-40).join('\n'));
    throw err;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const paths = {
  async tarball() {
    const src = clone('src-pack');
    sh('npm', ['pack', ...npmArgs], src);
    const tgz = fs.readdirSync(src).find((f) => f.endsWith('.tgz'));
    fs.renameSync(path.join(src, tgz), path.join(work, 'package.tgz'));
    const dir = userDir('tarball');
    sh('npm', ['install', ...npmArgs, path.join(work, 'package.tgz')], dir);
    await check('tarball', dir, path.join(dir, 'settings.js'));
  },
  async folder() {
    const src = clone('src-folder');
    sh('npm', ['install', '--omit=dev', ...npmArgs], src);
    const dir = userDir('folder');
    sh('npm', ['install', ...npmArgs, src], dir);
    await check('folder', dir, path.join(dir, 'settings.js'));
  },
  async git() {
    const dir = userDir('git');
    sh('npm', ['install', ...npmArgs, `git+file://${root}`], dir);
    await check('git', dir, path.join(dir, 'settings.js'));
  },
  async container() {
    if (!fs.existsSync(path.join(work, 'package.tgz'))) await paths.tarball();
    // the image's /data: settings.js is Node-RED's default one, the package is installed there
    const dir = userDir('data', false);
    fs.copyFileSync(require.resolve('node-red/settings.js'), path.join(dir, 'settings.js'));
    sh('npm', ['install', ...npmArgs, path.join(work, 'package.tgz')], dir);
    await check('container', dir, path.join(dir, 'settings.js'));
  },
};

(async () => {
  for (const name of Object.keys(paths)) if (only.length === 0 || only.includes(name)) await paths[name]();
  fs.rmSync(work, { recursive: true, force: true });
})().catch((err) => {
  console.error(`test:install failed (work folder kept: ${work}):`, err.message);
  process.exit(1);
});

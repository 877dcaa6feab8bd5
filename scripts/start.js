#!/usr/bin/env node
// npm start: a local Node-RED (the devDependency) on port 1880 (PORT to change it) with its userDir in
// .node-red/ (git-ignored), this package linked into it, and the demo flow deployed on first start.
// The examples keep their data in CDRFLOW_DATA, which the package sets to that user directory.
// prepareUserDir() is also what the test of all examples together (test/flows/all-examples.spec.ts) starts from.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
const DEMO = 'CMS CDRs to the debug sidebar';

/** The demo example on a tab of its own, as npm start deploys it. */
function demoFlows() {
  const demo = JSON.parse(fs.readFileSync(path.join(root, 'examples', `${DEMO}.json`), 'utf8'));
  const tab = { id: 'cdrflow-demo-tab', type: 'tab', label: 'CDR demo', disabled: false, info: '' };
  return [tab, ...demo.map((n) => ({ ...n, z: tab.id }))];
}

/**
 * The package linked into `userDir`, a settings.js and, the first time, the demo flow; nothing that is
 * there already is overwritten. Returns the settings file.
 */
function prepareUserDir(userDir) {
  fs.mkdirSync(path.join(userDir, 'node_modules', '@cdrflow'), { recursive: true });
  const link = path.join(userDir, 'node_modules', pkg.name);
  try {
    fs.lstatSync(link);
  } catch {
    fs.symlinkSync(root, link, 'dir');
  }

  const settings = path.join(userDir, 'settings.js');
  if (!fs.existsSync(settings)) {
    fs.writeFileSync(settings, `// Written by npm start. Edit freely; it is not overwritten.
module.exports = {
    flowFile: 'flows.json',
    // demo only: a fixed key so credentials survive restarts of this local runtime
    credentialSecret: 'cdrflow-demo',
    telemetry: { enabled: false },
    editorTheme: { tours: false },
    contextStorage: {
        default: { module: 'memory' },
        file: { module: 'localfilesystem' }
    },
    logging: { console: { level: 'info', metrics: false, audit: false } }
};
`);
  }

  const flows = path.join(userDir, 'flows.json');
  if (!fs.existsSync(flows)) fs.writeFileSync(flows, JSON.stringify(demoFlows(), null, 2));
  return settings;
}

module.exports = { prepareUserDir, demoFlows, DEMO };

if (require.main === module) {
  const userDir = path.join(root, '.node-red');
  const port = process.env.PORT || '1880';
  const settings = prepareUserDir(userDir);
  console.log(`Node-RED with ${pkg.name}: http://localhost:${port}/  (CMS receiver: POST http://localhost:${port}/cdr)`);
  const child = spawn(process.execPath, [require.resolve('node-red/red.js'), '-u', userDir, '-s', settings, '-p', port], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code) => process.exit(code ?? 0));
}

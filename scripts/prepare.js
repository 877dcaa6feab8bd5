#!/usr/bin/env node
/**
 * npm `prepare`: builds dist/ and nodes/*.js whenever npm prepares the package from source: `npm install`
 * in a clone, a git URL install (npm has installed the devDependencies first), and `npm pack` or
 * `npm install --install-links <folder>` of a clone nobody ran `npm install` in. In the last two cases
 * what the build needs and the folder lacks (TypeScript, the type packages, the runtime dependencies
 * whose types the code uses) is fetched from the registry into a temporary folder, linked in for the
 * build, and removed again; nothing is saved to package.json.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
// what tsconfig.build.json needs besides the runtime dependencies
const BUILD_TOOLS = ['typescript', '@types/node', '@types/node-red', '@types/yauzl'];

/** Whether `name` is installed where Node (and tsc) would find it from the package: node_modules here or above. */
function resolvable(name) {
  for (let dir = root; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'node_modules', name, 'package.json'))) return true;
    if (path.dirname(dir) === dir) return false;
  }
}

// `npm pack --dry-run` (the package check) builds nothing
if (process.env.npm_config_dry_run === 'true') process.exit(0);

function build() {
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build.js')], { cwd: root, stdio: 'inherit' });
}

const needed = [...Object.keys(pkg.dependencies ?? {}), ...BUILD_TOOLS];
const missing = needed.filter((n) => !resolvable(n));
if (missing.length === 0) {
  build();
  process.exit(0);
}

const tools = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-build-tools-'));
const linked = [];
const created = [];
try {
  const specs = missing.map((n) => `${n}@${pkg.dependencies?.[n] ?? pkg.devDependencies[n]}`);
  console.log(`@cdrflow/node-red-cdr: building from source; fetching ${specs.join(', ')} for the build only`);
  fs.writeFileSync(path.join(tools, 'package.json'), JSON.stringify({ name: 'cdrflow-build-tools', private: true }));
  const npm = process.env.npm_execpath;
  const args = ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', ...specs];
  // the outer npm's own options (--json, --dry-run, --global…) are not this install's
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_(json|dry_run|global|prefix|ignore_scripts|omit|include|production|save.*|workspaces?)$/i.test(k)));
  const run = { cwd: tools, stdio: 'inherit', env };
  if (npm && npm.endsWith('.js')) execFileSync(process.execPath, [npm, ...args], run);
  else execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, run);
  // link what is missing into the package's own node_modules, where tsc looks for it
  for (const name of fs.readdirSync(path.join(tools, 'node_modules')).flatMap((n) => (n.startsWith('@')
    ? fs.readdirSync(path.join(tools, 'node_modules', n)).map((s) => `${n}/${s}`) : [n]))) {
    const target = path.join(root, 'node_modules', name);
    if (fs.existsSync(target)) continue;
    // remember the folders made to hold the links (node_modules, node_modules/@types)
    for (let dir = path.dirname(target); dir !== root && !fs.existsSync(dir); dir = path.dirname(dir)) created.push(dir);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.symlinkSync(path.join(tools, 'node_modules', name), target, 'dir');
    linked.push(target);
  }
  build();
} finally {
  for (const l of linked) fs.rmSync(l, { force: true });
  // the folders made only to hold the links, innermost first, if nothing else went into them
  for (const dir of [...new Set(created)].sort((a, b) => b.length - a.length)) {
    try {
      fs.rmdirSync(dir);
    } catch { /* not empty: something else lives there */ }
  }
  fs.rmSync(tools, { recursive: true, force: true });
}

#!/usr/bin/env node
/**
 * npm run bench [-- name ...]: every benchmark, or the named ones, one after another in child processes
 * (each measures its own baseline in the same run and prints ratios). Not a test: numbers depend on the
 * machine, so nothing here passes or fails.
 */
'use strict';
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const all = {
  cms: ['cms.js'],
  // one call bridge posting one batch at a time, then a cluster of 16 posting at once
  'cms-sqlite': ['cms-sqlite.js', '20000', '10', '7', '1'],
  'cms-sqlite-cluster': ['cms-sqlite.js', '20000', '10', '7', '16'],
  comx: ['comx.js'],
  webex: ['webex.js'],
  normalize: ['normalize.js'],
};
const fs = require('node:fs');
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = (wanted.length ? wanted : Object.keys(all)).filter((n) => fs.existsSync(path.join(__dirname, all[n]?.[0] ?? '-')));
for (const name of names) {
  console.log(`\n=== bench: ${name} ===`);
  const [file, ...args] = all[name];
  const run = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, file), ...args], { stdio: 'inherit' });
  if (run.status !== 0) console.log(`(${name} exited with ${run.status})`);
}

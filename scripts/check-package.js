#!/usr/bin/env node
/**
 * npm run check:package: the Flow Library scorecard checks that can run offline (specs/nodered.md §9),
 * plus what `npm pack` would publish. `node-red-dev validate` needs the network (P08, N01), so it
 * cannot run here; run it on a networked machine before a release.
 * Run after `npm run build` (the packed file list includes the built nodes/*.js).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const semver = require('semver');
const acorn = require('acorn');

const rootArg = process.argv.indexOf('--root');
const root = rootArg > 0 ? path.resolve(process.argv[rootArg + 1]) : path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const failures = [];
const passes = [];
const check = (id, ok, text) => (ok ? passes : failures).push(`${id} ${text}`);

// Node-RED lines the package must load on, and the minimum Node.js of the newest one (P06, P07).
const NODE_RED_VERSIONS = ['4.1.15', '5.0.7'];
const LATEST_NODE_RED_MIN_NODE = '22.9.0';

check('P01', typeof pkg.license === 'string' && pkg.license.length > 0, `license is set (${pkg.license})`);
check('P03', !!(pkg.repository || pkg.bugs), 'repository or bugs is set');
check('P04', /^@[^/]+\//.test(pkg.name), `the name is scoped (${pkg.name})`);
check('P05', Array.isArray(pkg.keywords) && pkg.keywords.includes('node-red'), 'keywords include node-red');
const range = pkg['node-red'] && pkg['node-red'].version;
for (const v of NODE_RED_VERSIONS) {
  check('P06', !!range && semver.satisfies(v, range), `node-red.version "${range}" admits Node-RED ${v}`);
}
check('P06', !!range && !/^[\^~]/.test(range.trim()), `node-red.version "${range}" is open-ended (not ^ or ~)`);
const engines = pkg.engines && pkg.engines.node;
check('P07', !!engines && semver.satisfies(LATEST_NODE_RED_MIN_NODE, engines), `engines.node "${engines}" admits Node.js ${LATEST_NODE_RED_MIN_NODE}`);
const deps = Object.keys(pkg.dependencies || {});
check('D01', deps.length <= 6, `${deps.length} runtime dependencies (at most 6)`);
for (const d of ['node-red', 'node-red-node-test-helper', 'mocha', 'typescript']) {
  check('D01', !deps.includes(d), `${d} is not a runtime dependency`);
}

// N02 and the .html parse the scorecard does: literal registerType with inline properties.
const types = new Map(); // type -> {category}
for (const [set, file] of Object.entries(pkg['node-red'].nodes)) {
  const html = path.join(root, file.replace(/\.js$/, '.html'));
  if (!fs.existsSync(html)) {
    check('N01', false, `${set}: ${path.relative(root, html)} exists`);
    continue;
  }
  const source = fs.readFileSync(html, 'utf8');
  const scripts = [...source.matchAll(/<script[^>]*type=["']text\/javascript["'][^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  check('N01', scripts.length > 0, `${set}: has a <script type="text/javascript"> block`);
  let found = 0;
  for (const code of scripts) {
    let ast;
    try {
      ast = acorn.parse(code, { ecmaVersion: 'latest' });
    } catch (err) {
      check('N01', false, `${set}: editor script parses (${err.message})`);
      continue;
    }
    walk(ast, (node) => {
      if (node.type !== 'CallExpression' || node.callee.type !== 'MemberExpression' || node.callee.property.name !== 'registerType') return;
      const [name, def] = node.arguments;
      found++;
      const literalName = name && name.type === 'Literal' && typeof name.value === 'string';
      check('N01', literalName, `${set}: registerType's first argument is a string literal`);
      check('N01', def && def.type === 'ObjectExpression', `${set}: registerType's second argument is an object literal`);
      if (!literalName || !def || def.type !== 'ObjectExpression') return;
      const props = new Map(def.properties.map((p) => [p.key.name || p.key.value, p.value]));
      const isConfig = props.get('category')?.value === 'config';
      for (const key of ['category', 'color', 'icon']) {
        const v = props.get(key);
        // config nodes have no palette entry: color and icon are optional there, literal when present
        const ok = isConfig && key !== 'category' ? !v || v.type === 'Literal' : v && v.type === 'Literal';
        check('N01', ok, `${name.value}: ${key} is an inline literal`);
      }
      for (const key of ['inputs', 'outputs']) {
        const v = props.get(key);
        check('N01', !v || v.type === 'Literal', `${name.value}: ${key} is an inline literal when present`);
      }
      for (const key of ['defaults', 'credentials']) {
        const v = props.get(key);
        check('N01', !v || v.type === 'ObjectExpression', `${name.value}: ${key} is an inline object when present`);
      }
      const icon = props.get('icon');
      if (icon && icon.type === 'Literal' && !String(icon.value).includes('/')) {
        check('N01', fs.existsSync(path.join(root, 'icons', icon.value)), `${name.value}: icon ${icon.value} is in icons/`);
      }
      types.set(name.value, { category: props.get('category')?.value });
      const locale = path.join(root, path.dirname(file), 'locales', 'en-US', `${set}.json`);
      check('L01', fs.existsSync(locale), `${name.value}: ${path.relative(root, locale)} exists`);
      check('H01', new RegExp(`data-help-name=["']${name.value}["']`).test(source) && /<h3>Details<\/h3>/.test(source) && /<h3>References<\/h3>/.test(source) && (isConfig || /<h3>(Inputs|Outputs)<\/h3>/.test(source)),
        `${name.value}: help has ${isConfig ? '' : 'Inputs/Outputs, '}Details and References`);
    });
  }
  check('N01', found > 0, `${set}: registers a node type`);
}

const used = new Set();
const exampleFiles = listFiles(path.join(root, 'examples')).filter((f) => f.endsWith('.json'));
for (const f of exampleFiles) {
  let flow;
  try {
    flow = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch (err) {
    check('N02', false, `${path.relative(root, f)} is JSON (${err.message})`);
    continue;
  }
  check('N02', Array.isArray(flow), `${path.relative(root, f)} is an array of nodes`);
  if (!Array.isArray(flow)) continue;
  check('N02', flow.some((n) => n.type === 'comment'), `${path.relative(root, f)} has a comment node`);
  check('S01', !flow.some((n) => n.credentials && Object.keys(n.credentials).length), `${path.relative(root, f)} carries no credentials`);
  for (const n of flow) used.add(n.type);
}
for (const [type, { category }] of types) {
  if (category !== 'config') check('N02', used.has(type), `${type} is used in an example flow`);
}

// What `npm pack` would publish.
const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))[0].files.map((f) => f.path);
const has = (p) => packed.some((f) => f === p || f.startsWith(p));
for (const [set, file] of Object.entries(pkg['node-red'].nodes)) {
  check('F01', has(file), `the package ships ${file}`);
  check('F01', has(file.replace(/\.js$/, '.html')), `the package ships ${file.replace(/\.js$/, '.html')}`);
  check('F01', has(path.posix.join(path.posix.dirname(file), 'locales/en-US', `${set}.json`)), `the package ships the ${set} locale`);
}
check('F01', has('nodes/icons/'), 'the package ships nodes/icons/');
for (const f of listFiles(path.join(root, 'resources'))) check('F01', has(path.relative(root, f).split(path.sep).join('/')), `the package ships ${path.relative(root, f)}`);
check('F01', exampleFiles.every((f) => has(path.relative(root, f).split(path.sep).join('/'))), 'the package ships every example');
for (const f of ['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']) check('F01', has(f), `the package ships ${f}`);
for (const p of ['src/', 'test/', 'bench/', 'scripts/', '.node-red/', '.ci/', 'node_modules/']) check('F02', !has(p), `the package leaves out ${p}`);
check('F02', !packed.some((f) => /\.(ts|map)$/.test(f) && !f.endsWith('.d.ts')), 'the package has no TypeScript sources or source maps');
check('F02', !packed.some((f) => /(^|\/)(\.env|flows_cred\.json|.*\.pem|.*\.key)$/.test(f)), 'the package has no secrets');

console.log(`check:package: ${passes.length} passed, ${failures.length} failed`);
for (const f of failures) console.log(`  FAIL ${f}`);
if (process.argv.includes('--verbose')) for (const p of passes) console.log(`  ok   ${p}`);
process.exit(failures.length ? 1 : 0);

function walk(node, visit) {
  if (!node || typeof node.type !== 'string') return;
  visit(node);
  for (const key of Object.keys(node)) {
    const v = node[key];
    if (Array.isArray(v)) v.forEach((c) => walk(c, visit));
    else if (v && typeof v.type === 'string') walk(v, visit);
  }
}

function listFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

'use strict';
// Node-RED as users run it, for the benchmarks: its own launcher (red.js) in this process, the editor at
// "/" in front of the HTTP nodes, a settings file, this package (and `modules`) linked into a fresh user
// directory. Resolves once `ready(base)` says the flows answer.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');

const root = path.resolve(__dirname, '..');

function freePort() {
  return new Promise((resolve) => {
    const probe = http.createServer().listen(0, '127.0.0.1', () => {
      const p = probe.address().port;
      probe.close(() => resolve(p));
    });
  });
}

/** GET (or another method) on base + path; resolves with the status code, or 0 when nothing answers. */
function statusOf(base, urlPath, method = 'GET') {
  return new Promise((resolve) => {
    http.request(`${base}${urlPath}`, { method }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', () => resolve(0)).end();
  });
}

async function startRedJs({ flows, settings = {}, modules = {}, ready }) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-bench-nr-'));
  fs.mkdirSync(path.join(userDir, 'node_modules', '@cdrflow'), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, 'node_modules', '@cdrflow', 'node-red-cdr'), 'dir');
  for (const [name, dir] of Object.entries(modules)) fs.symlinkSync(dir, path.join(userDir, 'node_modules', name), 'dir');
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows));
  const settingsFile = path.join(userDir, 'settings.js');
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify({
    flowFile: 'flows.json', uiHost: '127.0.0.1', credentialSecret: false, telemetry: { enabled: false },
    logging: { console: { level: 'error', metrics: false, audit: false } }, editorTheme: { tours: false }, ...settings,
  })};\n`);
  const port = await freePort();
  const redJs = require.resolve('node-red/red.js');
  process.argv = [process.execPath, redJs, '-u', userDir, '-s', settingsFile, '-p', String(port)];
  require(redJs);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600 && !(await ready(base)); i++) await new Promise((r) => setTimeout(r, 100));
  return { userDir, port, base };
}

module.exports = { startRedJs, statusOf };

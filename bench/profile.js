'use strict';
// BENCH_PROFILE=<dir>: CPU profiles of the measured part of a benchmark (open them in Chrome DevTools).
const fs = require('node:fs');
const path = require('node:path');

/** BENCH_PROFILE=<dir>: a CPU profile of the server process while cms-cdr-in is measured (open it in Chrome DevTools). */
async function startProfile() {
  const { Session } = require('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await post('Profiler.stop');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
      console.log(`  profile written to ${file}`);
    },
  };
}

module.exports = { startProfile };

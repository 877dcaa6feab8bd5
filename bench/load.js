// Load generator, run as a child process so it does not share the event loop with the server under test.
// argv: url, seconds, connections, rate (posts/s in total, 0 = as fast as possible), bodies JSON file
'use strict';
const { Pool } = require('undici');
const fs = require('node:fs');

const [url, seconds, connections, rate, bodiesFile] = process.argv.slice(2);
// an array of arrays: one list per connection, sent in order (like one CMS call bridge each)
const lists = JSON.parse(fs.readFileSync(bodiesFile, 'utf8'));
const u = new URL(url);
const pool = new Pool(u.origin, { connections: Number(connections), pipelining: 1 });
const end = Date.now() + Number(seconds) * 1000;
const latencies = [];
let sent = 0, ok = 0, failed = 0;
const interval = Number(rate) > 0 ? 1000 / Number(rate) : 0;
let due = Date.now();

async function worker(w) {
  const bodies = lists[w % lists.length];
  let next = 0;
  while (Date.now() < end) {
    if (interval) {
      const wait = due - Date.now();
      due += interval;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const body = bodies[next++ % bodies.length];
    const t0 = process.hrtime.bigint();
    sent++;
    try {
      const res = await pool.request({ method: 'POST', path: u.pathname, body, headers: { 'content-type': 'text/xml' } });
      await res.body.dump();
      if (res.statusCode === 200 || res.statusCode === 204) ok++; else failed++;
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch {
      failed++;
    }
  }
}

Promise.all(Array.from({ length: Number(connections) }, (_, w) => worker(w))).then(async () => {
  await pool.close();
  latencies.sort((a, b) => a - b);
  const p = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  process.stdout.write(JSON.stringify({ sent, ok, failed, p50: p(0.5), p99: p(0.99) }));
});

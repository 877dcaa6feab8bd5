#!/usr/bin/env node
// Benchmark for webex-cdr-pull (issue 4): 100,000 records over 20 pages of 5000, served without
// delays. Compares the node's pipeline (undici fetch, Link paging, limiter, dedup, state snapshots,
// typed fields per record) with fetching the same pages bare and JSON.parse-ing them:
//   T(ours) <= 2 x T(bare fetch + JSON.parse of the same pages)          (the pass/fail criterion)
// and also prints (T(ours) - T(fetch only)) / T(JSON.parse only) for information: on a loaded machine
// the fetch timings are noisy, so that finer ratio is reported, not enforced.
// Memory: live heap growth (after a GC at every emitted page) must stay within 1.5 pages.
// Run: npm run build && node --expose-gc bench/webex.js   (or through npm run bench)
'use strict';
require('tsx/cjs'); // the simulator is TypeScript test code
const http = require('node:http');
const path = require('node:path');
const { request } = require('undici');
const dist = path.join(__dirname, '..', 'dist');
const { CdrClient, RateLimiter } = require(path.join(dist, 'webex', 'client'));
const { CdrSync, emptyState } = require(path.join(dist, 'webex', 'sync'));
const { typedRecord } = require(path.join(dist, 'webex', 'records'));
const { TokenManager } = require(path.join(dist, 'webex', 'oauth'));
const { createAgent } = require(path.join(dist, 'common', 'http'));
const { WebexApiSim, VirtualClock } = require(path.join(__dirname, '..', 'test', 'simulators', 'webex-api.ts'));

const RECORDS = 100_000;
const PAGE = 5000;
const H = 3_600_000;
const gc = global.gc || (() => undefined);

async function main() {
  const now0 = Date.parse('2026-11-23T12:00:00.000Z');
  const clock = new VirtualClock(now0);
  const sim = await new WebexApiSim({ clock, enforceRateLimit: false }).start();
  const start = now0 - 2 * H + 60_000;
  const end = now0 - 3 * 60_000;
  sim.generate(RECORDS, start - 20_000, end - 60_000);

  // Record the pages once (the simulator filters and sorts per request), then serve them statically,
  // so both contenders pay the same, minimal server cost.
  const agent = createAgent({ timeoutMs: 30_000 });
  const tokens = new TokenManager({ accessToken: sim.issueAccessToken(), clock });
  const unlimited = () => new RateLimiter(clock, { initialIntervalMs: 0, pagesPerWindow: Infinity, pageWindowMs: 0 });
  const pages = new Map();
  let staticBase = '';
  const server = http.createServer((req, res) => {
    const p = pages.get(req.url);
    if (!p) { res.writeHead(404); res.end(); return; }
    const headers = { 'content-type': 'application/json' };
    if (p.link) headers.link = p.link.split(sim.url()).join(staticBase);
    res.writeHead(200, headers);
    res.end(p.body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  staticBase = `http://127.0.0.1:${server.address().port}`;
  const query = { endpoint: 'cdr_stream', start, end, max: PAGE };
  let url = new CdrClient({ baseUrl: sim.url(), tokens, limiter: unlimited(), clock }).firstUrl(query);
  while (url) {
    const res = await request(url, { headers: { authorization: `Bearer ${await tokens.getToken()}` }, dispatcher: agent });
    const body = await res.body.text();
    const link = res.headers.link || null;
    const u = new URL(url);
    pages.set(u.pathname + u.search, { body, link });
    const m = link && /<([^>]+)>/.exec(link);
    url = m ? m[1] : null;
  }
  await sim.stop();
  const bodies = [...pages.values()].map((p) => p.body);
  const pageBytes = Math.max(...bodies.map((b) => b.length));
  console.log(`pages: ${pages.size}, records: ${RECORDS}, largest page: ${(pageBytes / 1e6).toFixed(1)} MB`);

  const firstUrl = staticBase + [...pages.keys()][0];
  async function fetchOnly(parse) {
    let u = firstUrl;
    let n = 0;
    while (u) {
      const res = await request(u, { dispatcher: agent });
      const text = await res.body.text();
      if (parse) n += JSON.parse(text).items.length;
      const m = res.headers.link && /<([^>]+)>/.exec(res.headers.link);
      u = m ? m[1] : null;
    }
    return n;
  }
  function parseOnly() {
    let n = 0;
    for (const b of bodies) n += JSON.parse(b).items.length;
    return n;
  }
  let peak = 0;
  let measureMemory = false;
  async function ours() {
    let n = 0;
    const client = new CdrClient({ baseUrl: staticBase, tokens, limiter: unlimited(), dispatcher: agent, clock });
    const sync = new CdrSync(client, { ...emptyState(), streamCursor: new Date(start).toISOString() }, {
      emit: (b) => {
        for (const r of b.items) if (typedRecord(r).reportId) n++;
        if (measureMemory) {
          // what is still reachable while a page is being emitted (the pipeline holds this page only)
          gc();
          const used = process.memoryUsage().heapUsed;
          if (used > peak) peak = used;
        }
      },
      save: async () => undefined,
    }, { max: PAGE, overlapMs: 0, streamLagMs: 3 * 60_000 }, clock);
    const stats = await sync.run();
    if (stats.windows.length !== 1 || stats.pages !== pages.size) throw new Error(`unexpected plan: ${JSON.stringify(stats.windows)}`);
    return n;
  }
  const time = async (fn) => {
    gc();
    const t = process.hrtime.bigint();
    const n = await fn();
    return { ms: Number(process.hrtime.bigint() - t) / 1e6, n };
  };

  // warm up, then interleave the contenders (so machine noise hits them alike) and keep each one's best of 5
  await fetchOnly(true); parseOnly(); await ours();
  let tFetch = null, tParse = null, tBare = null, tOurs = null;
  const keep = (b, r) => (!b || r.ms < b.ms ? r : b);
  for (let i = 0; i < 5; i++) {
    tFetch = keep(tFetch, await time(() => fetchOnly(false)));
    tParse = keep(tParse, await time(async () => parseOnly()));
    tBare = keep(tBare, await time(() => fetchOnly(true)));
    tOurs = keep(tOurs, await time(ours));
  }
  if (tOurs.n !== RECORDS || tBare.n !== RECORDS) throw new Error(`counted ${tOurs.n} / ${tBare.n} records`);
  // memory pass (not timed): heap growth over the run, measured after a GC at every page
  gc();
  const base = process.memoryUsage().heapUsed;
  peak = base;
  measureMemory = true;
  await ours();
  measureMemory = false;

  gc();
  const before = process.memoryUsage().heapUsed;
  const parsed = JSON.parse(bodies[0]);
  const onePage = process.memoryUsage().heapUsed - before + bodies[0].length;
  void parsed;

  const overhead = tOurs.ms - tFetch.ms;
  const ratio = overhead / tParse.ms;
  const total = tOurs.ms / tBare.ms;
  const mem = (peak - base) / onePage;
  console.log(`fetch only        ${tFetch.ms.toFixed(0)} ms`);
  console.log(`JSON.parse only   ${tParse.ms.toFixed(0)} ms`);
  console.log(`fetch + parse     ${tBare.ms.toFixed(0)} ms`);
  console.log(`webex-cdr-pull    ${tOurs.ms.toFixed(0)} ms  (fetch, paging, dedup, state, typed fields)`);
  console.log(`webex-cdr-pull / (fetch + JSON.parse) = ${total.toFixed(2)}  (limit 2.00)`);
  console.log(`(webex-cdr-pull - fetch only) / JSON.parse = ${ratio.toFixed(2)}  (information)`);
  console.log(`peak live heap growth = ${((peak - base) / 1e6).toFixed(1)} MB = ${mem.toFixed(2)} pages (one page, parsed + text: ${(onePage / 1e6).toFixed(1)} MB; limit 1.5)`);
  server.close();
  await agent.close();
  const ok = total <= 2 && mem <= 1.5;
  console.log(ok ? 'webex bench: OK' : 'webex bench: OVER LIMIT');
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

#!/usr/bin/env node
/**
 * cms-cdr-in throughput against baselines measured in the same run, every side into the same minimal
 * counting node (bench/sink, not a function node, whose sandbox costs more than a receiver):
 *  - core: what a user builds without this package: http in -> xml -> change -> split (+ http response);
 *  - floor: what any receiver inside Node-RED must pay per POST: an empty `http in -> http response`
 *    flow (Node-RED's HTTP stack and routing), plus reading the body, fast-xml-parser's XMLValidator and
 *    parse in a node:http server of their own, less an empty node:http server's cost (counted once).
 * Costs are CPU time of this process (which hosts every server; the load comes from a child process),
 * so a busy machine moves them less than wall-clock rates. Node-RED runs as users run it (red.js,
 * editor at "/", settings file). Prints records per CPU-second and the ratios, medians of BENCH_ROUNDS
 * interleaved rounds (default 5) of BENCH_SECONDS each, for one-record and 20-record posts; then ack
 * latency at 1,000 records/s and heap use over a soak (BENCH_SOAK_S, default 60 s).
 * BENCH_PROFILE=<dir> writes a CPU profile of each cms-cdr-in measurement (BENCH_PROFILE_SIDES=cms-cdr-in,
 * empty flow,core: of those sides); BENCH_OUTPUT=post measures
 * one message per POST instead of one per record.
 * Load comes from a child process (bench/load.js). Numbers vary with the machine; ratios are the point.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { execFile } = require('node:child_process');
const { XMLParser, XMLValidator } = require('fast-xml-parser');
const { startProfile } = require('./profile');
const { startRedJs, statusOf } = require('./node-red');

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const SOAK = Number(process.env.BENCH_SOAK_S || 60);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);

function records(n, start, session = 'b0b0b0b0-1111-4222-8333-444455556666', bridge = 'c0c0c0c0-1111-4222-8333-444455556666') {
  let out = '';
  for (let i = 0; i < n; i++) {
    const idx = start + i;
    out += `<record type="callLegEnd" time="2026-11-23T10:00:00Z" recordIndex="${idx}" correlatorIndex="${idx}"><callLeg id="aaaaaaaa-bbbb-4ccc-8ddd-${String(idx).padStart(12, '0')}"><reason>remoteTeardown</reason><remoteTeardown>true</remoteTeardown><durationSeconds>3912</durationSeconds><activatedDuration>3912</activatedDuration><mediaUsagePercentages><mainVideoViewer>99.9</mainVideoViewer><mainVideoContributor>99.9</mainVideoContributor></mediaUsagePercentages><alarm type="packetLoss" durationPercentage="0.1" /><encryptedMedia>true</encryptedMedia><rxAudio><codec>opus</codec></rxAudio><txAudio><codec>opus</codec></txAudio></callLeg></record>`;
  }
  return `<?xml version="1.0"?><records session="${session}" callBridge="${bridge}">${out}</records>`;
}

// One list per connection, each its own call bridge session with consecutive indexes, as CMS sends them:
// nothing is a resend and no gap is reported.
function bodies(perPost, run, count = 20000) {
  const lists = [];
  for (let c = 0; c < CONNECTIONS; c++) {
    const list = [];
    const session = `b0b0b0b0-1111-4222-8333-${String(run * 1000 + perPost * 10 + c).padStart(12, '0')}`;
    // each connection is its own call bridge of a cluster (they all post from 127.0.0.1)
    const bridge = `c0c0c0c0-1111-4222-8333-${String(c).padStart(12, '0')}`;
    for (let i = 0; i < Math.ceil(count / CONNECTIONS); i++) list.push(records(perPost, 1 + i * perPost, session, bridge));
    lists.push(list);
  }
  const file = path.join(os.tmpdir(), `cdrflow-bench-${perPost}-${run}.json`);
  fs.writeFileSync(file, JSON.stringify(lists));
  return file;
}

function load(url, seconds, rate, file) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, 'load.js'), url, String(seconds), String(CONNECTIONS), String(rate), file],
      { maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout))));
  });
}

let sinkCount = 0;
process.on('bench-sink', (n) => { sinkCount += n; });

/**
 * Node-RED as users run it: its own launcher (red.js) in this process, with the editor at "/" in front
 * of the HTTP nodes, a settings file, and the flows below.
 */
async function startNodeRed() {
  const tab = 'bench';
  const flows = [
    { id: tab, type: 'tab', label: 'bench' },
    // BENCH_OUTPUT=post: one message per POST instead of one per record (the node's default)
    { id: 'cms', z: tab, type: 'cms-cdr-in', path: '/cdr', output: process.env.BENCH_OUTPUT === 'post' ? 'post' : 'record', wires: [['sink1'], []] },
    { id: 'sink1', z: tab, type: 'bench-sink', wires: [] },
    { id: 'hin', z: tab, type: 'http in', url: '/core', method: 'post', upload: false, wires: [['toxml', 'resp']] },
    { id: 'resp', z: tab, type: 'http response', statusCode: '200', headers: {}, wires: [] },
    { id: 'toxml', z: tab, type: 'xml', property: 'payload', attr: '', chr: '', wires: [['tochg']] },
    { id: 'tochg', z: tab, type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'payload.records.record', tot: 'msg' }], wires: [['splitter']] },
    { id: 'splitter', z: tab, type: 'split', splt: '\\n', spltType: 'str', arraySplt: 1, arraySpltType: 'len', stream: false, addname: '', wires: [['sink2']] },
    { id: 'sink2', z: tab, type: 'bench-sink', wires: [] },
    // the floor's Node-RED part: routing a POST to a flow and answering it, nothing else
    { id: 'ein', z: tab, type: 'http in', url: '/empty', method: 'post', upload: false, wires: [['eresp']] },
    { id: 'eresp', z: tab, type: 'http response', statusCode: '200', headers: {}, wires: [] },
  ];
  // started when both routes answer their probes (an OPTIONS on the core route: it takes only POST)
  return startRedJs({
    flows,
    settings: { nodesDir: [path.join(__dirname, 'sink')] },
    ready: async (base) => (await statusOf(base, '/cdr')) === 200 && ![0, 404].includes(await statusOf(base, '/core', 'OPTIONS')),
  });
}

/** node:http reading each body; with `parse`, XMLValidator then parse (records counted), else nothing more. */
function startBare(parse) {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (_n, j) => j === 'records.record' });
  let count = 0;
  let posts = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      posts++;
      if (parse) {
        const text = Buffer.concat(chunks).toString('utf8');
        if (XMLValidator.validate(text) !== true) {
          res.statusCode = 400;
          return res.end();
        }
        const doc = parser.parse(text);
        count += doc.records.record.length;
      }
      res.statusCode = 200;
      res.end();
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: server.address().port, count: () => count, posts: () => posts })));
}

/**
 * Records/s of wall-clock time, and records per CPU-second of this process (which hosts every server
 * under test; the load comes from a child process). The CPU figure holds up on a busy machine, where
 * wall-clock rates mostly measure the neighbours.
 */
async function measure(name, url, file, counter) {
  const profile = process.env.BENCH_PROFILE && (process.env.BENCH_PROFILE_SIDES ?? 'cms-cdr-in').split(',').includes(name) ? await startProfile() : null;
  const before = counter ? counter() : 0;
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const result = await load(url, SECONDS, 0, file);
  await new Promise((r) => setTimeout(r, 200));
  const cpu = process.cpuUsage(cpu0);
  const secs = (Date.now() - t0 - 200) / 1000;
  const n = counter === null ? result.ok : counter() - before;
  if (result.failed) console.log(`  ${name}: ${result.failed} failed requests`);
  if (profile) await profile.stop(path.join(process.env.BENCH_PROFILE, `${name.replace(/\W+/g, '-')}-${Date.now()}.cpuprofile`));
  const cpuS = (cpu.user + cpu.system) / 1e6;
  // n: records for the receivers, POSTs for the empty servers (counter null)
  return { rate: n / secs, perCpu: n / cpuS, cpuPerPost: cpuS / result.ok };
}

(async () => {
  console.log(`cms-cdr-in benchmark: ${SECONDS}s per measurement, ${CONNECTIONS} keep-alive connections, node ${process.version}, ${os.cpus().length} cores`);
  const nr = await startNodeRed();
  const bareEmpty = await startBare(false);
  const bareParse = await startBare(true);
  const base = `http://127.0.0.1:${nr.port}`;
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = [];
  for (const perPost of (process.env.BENCH_PER_POST ? [Number(process.env.BENCH_PER_POST)] : [1, 20])) {
    const count = perPost === 1 ? 80000 : 8000;
    // warm-up of every side (its own sessions), then ROUNDS rounds of every side in turn; medians are
    // reported, since the order of measurements and the neighbours on the machine move single figures
    const warm = bodies(perPost, 0, perPost === 1 ? 20000 : 2000);
    for (const where of ['cdr', 'core', 'empty']) await load(`${base}/${where}`, 2, 0, warm);
    for (const b of [bareEmpty, bareParse]) await load(`http://127.0.0.1:${b.port}/`, 2, 0, warm);
    const sides = process.env.BENCH_ONLY === 'cms'
      ? [['cms-cdr-in', 'cdr']]
      : [['cms-cdr-in', 'cdr'], ['core', 'core'], ['empty flow', 'empty'], ['node:http+validate+parse', bareParse], ['empty node:http', bareEmpty]];
    const runs = new Map(sides.map(([label]) => [label, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // fresh sessions each round, so no measured POST is a resend; enough posts that no connection wraps around
      const file = bodies(perPost, 10 + round, count);
      for (const [label, where] of sides) {
        const url = typeof where === 'string' ? `${base}/${where}` : `http://127.0.0.1:${where.port}/`;
        const counter = where === 'empty' || where === bareEmpty ? null : typeof where === 'string' ? () => sinkCount : where.count;
        runs.get(label).push(await measure(label, url, file, counter));
      }
    }
    const med = new Map([...runs].map(([label, list]) => [label, {
      rate: median(list.map((r) => r.rate)), perCpu: median(list.map((r) => r.perCpu)), cpuPerPost: median(list.map((r) => r.cpuPerPost)),
    }]));
    const ours = med.get('cms-cdr-in');
    const fmt = (v) => Math.round(v).toLocaleString('en-US').padStart(9);
    const us = (v) => `${(v * 1e6).toFixed(1).padStart(7)} µs/POST`;
    console.log(`\n${perPost} record(s) per POST (medians of ${ROUNDS} interleaved rounds; CPU of the server process)`);
    for (const [label, v] of med) console.log(`  ${label.padEnd(26)}${us(v.cpuPerPost)} ${fmt(v.rate)} /s wall ${fmt(v.perCpu)} /CPU-s`);
    if (med.has('core')) {
      const floorPerPost = med.get('empty flow').cpuPerPost + med.get('node:http+validate+parse').cpuPerPost - med.get('empty node:http').cpuPerPost;
      const vsCore = ours.perCpu / med.get('core').perCpu;
      const vsFloor = (perPost / floorPerPost) / ours.perCpu;
      const line = `${perPost}/POST: ${vsCore.toFixed(2)}x the core flow, ${(1 / vsFloor).toFixed(2)}x the floor (floor ${us(floorPerPost).trim()}, cms-cdr-in ${us(ours.cpuPerPost).trim()})`;
      summary.push(line);
      console.log(`  => ${line}`);
    }
  }
  if (summary.length) console.log(`\nsummary (records per CPU-second, ratios of medians):\n  ${summary.join('\n  ')}`);

  if (process.env.BENCH_ONLY === 'cms') process.exit(0);
  // ack latency at a steady 1,000 records/s (one record per POST), and heap over a soak at that rate
  const rateFile = bodies(1, 2, 12000);
  const lat = await load(`${base}/cdr`, 10, 1000, rateFile);
  console.log(`\nack latency at 1,000 records/s: p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms (${lat.failed} failed)`);
  const heap = [];
  const sampler = setInterval(() => {
    if (global.gc) global.gc();
    heap.push(process.memoryUsage().heapUsed / 1048576);
  }, 5000);
  const soak = await load(`${base}/cdr`, SOAK, 1000, bodies(1, 3, Math.max(SOAK * 1100, 10000)));
  clearInterval(sampler);
  const third = Math.max(1, Math.floor(heap.length / 3));
  const avg = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  console.log(`soak ${SOAK} s at 1,000 records/s: ${soak.ok.toLocaleString('en-US')} posts, p99 ${soak.p99.toFixed(1)} ms; heap first third ${avg(heap.slice(0, third)).toFixed(1)} MiB, last third ${avg(heap.slice(-third)).toFixed(1)} MiB (samples every 5 s${global.gc ? ', after gc' : ''})`);
  bareEmpty.server.close();
  bareParse.server.close();
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});

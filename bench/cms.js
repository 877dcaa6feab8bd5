#!/usr/bin/env node
/**
 * cms-cdr-in throughput against baselines measured in the same run:
 *  - core:  what a user builds without this package: http in -> xml -> change -> split (+ http response)
 *  - bare:  node:http + fast-xml-parser as commonly used, no Node-RED and no well-formedness check
 *  - bare+validate: the same with XMLValidator, which any receiver that must refuse malformed XML needs
 * Node-RED runs as users run it (red.js, editor at "/"). Prints records/s and the ratios, medians of
 * BENCH_ROUNDS rounds (default 3) of BENCH_SECONDS each, for one-record and 20-record posts; then ack
 * latency at 1,000 records/s and heap use over a soak (BENCH_SOAK_S, default 60 s; the issue asks 300).
 * BENCH_PROFILE=<dir> writes a CPU profile of each cms-cdr-in measurement; BENCH_OUTPUT=post measures
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
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);

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
  ];
  // started when both routes answer their probes (an OPTIONS on the core route: it takes only POST)
  return startRedJs({
    flows,
    settings: { nodesDir: [path.join(__dirname, 'sink')] },
    ready: async (base) => (await statusOf(base, '/cdr')) === 200 && ![0, 404].includes(await statusOf(base, '/core', 'OPTIONS')),
  });
}

function startBare(validate) {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (_n, j) => j === 'records.record' });
  let count = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (validate && XMLValidator.validate(text) !== true) {
        res.statusCode = 400;
        return res.end();
      }
      const doc = parser.parse(text);
      count += doc.records.record.length;
      res.statusCode = 200;
      res.end();
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: server.address().port, count: () => count })));
}

/**
 * Records/s of wall-clock time, and records per CPU-second of this process (which hosts every server
 * under test; the load comes from a child process). The CPU figure holds up on a busy machine, where
 * wall-clock rates mostly measure the neighbours.
 */
async function measure(name, url, file, counter) {
  const profile = process.env.BENCH_PROFILE && name === 'cms-cdr-in' ? await startProfile() : null;
  const before = counter();
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const result = await load(url, SECONDS, 0, file);
  await new Promise((r) => setTimeout(r, 200));
  const cpu = process.cpuUsage(cpu0);
  const secs = (Date.now() - t0 - 200) / 1000;
  const n = counter() - before;
  if (result.failed) console.log(`  ${name}: ${result.failed} failed requests`);
  if (profile) await profile.stop(path.join(process.env.BENCH_PROFILE, `cms-cdr-in-${Date.now()}.cpuprofile`));
  return { rate: n / secs, perCpu: n / ((cpu.user + cpu.system) / 1e6) };
}

(async () => {
  console.log(`cms-cdr-in benchmark: ${SECONDS}s per measurement, ${CONNECTIONS} keep-alive connections, node ${process.version}, ${os.cpus().length} cores`);
  const nr = await startNodeRed();
  const bare = await startBare(false);
  const bareValid = await startBare(true);
  const base = `http://127.0.0.1:${nr.port}`;
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const perPost of (process.env.BENCH_PER_POST ? [Number(process.env.BENCH_PER_POST)] : [1, 20])) {
    const count = perPost === 1 ? 80000 : 8000;
    // warm-up (its own sessions), then ROUNDS rounds of every side in turn; medians are reported, since
    // the order of measurements and the neighbours on the machine move single figures by a third
    await load(`${base}/cdr`, 2, 0, bodies(perPost, 0, perPost === 1 ? 20000 : 2000));
    const sides = process.env.BENCH_ONLY === 'cms'
      ? [['cms-cdr-in', 'cdr']]
      : [['cms-cdr-in', 'cdr'], ['core http in->xml->split', 'core'], ['bare node:http+fxp', bare], ['bare node:http+fxp+validate', bareValid]];
    const runs = new Map(sides.map(([label]) => [label, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // fresh sessions each round, so no measured POST is a resend; enough posts that no connection wraps around
      const file = bodies(perPost, 10 + round, count);
      for (const [label, where] of sides) {
        const url = typeof where === 'string' ? `${base}/${where}` : `http://127.0.0.1:${where.port}/`;
        runs.get(label).push(await measure(label, url, file, typeof where === 'string' ? () => sinkCount : where.count));
      }
    }
    const med = new Map([...runs].map(([label, list]) => [label, { rate: median(list.map((r) => r.rate)), perCpu: median(list.map((r) => r.perCpu)) }]));
    const ours = med.get('cms-cdr-in');
    const fmt = (v) => Math.round(v).toLocaleString('en-US').padStart(9);
    console.log(`\n${perPost} record(s) per POST (medians of ${ROUNDS} rounds)`);
    for (const [label, v] of med) {
      const ratio = label === 'cms-cdr-in' ? '' : `   cms-cdr-in / this: ${(ours.rate / v.rate).toFixed(2)}x wall, ${(ours.perCpu / v.perCpu).toFixed(2)}x CPU`;
      console.log(`  ${label.padEnd(28)}${fmt(v.rate)} records/s ${fmt(v.perCpu)} records/CPU-s${ratio}`);
    }
  }

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
  bare.server.close();
  bareValid.server.close();
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});

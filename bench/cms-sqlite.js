#!/usr/bin/env node
// Ingestion benchmark of the example "CMS CDRs to SQLite with API and admin page" (issue 8):
// records/s stored by the example flow, with every record present afterwards, next to the foundation
// benchmark's bare limit (node:http + fast-xml-parser) and a bare cms-cdr-in, all measured in the same run.
// Runs Node-RED as users do (red.js in this process, editor at "/") with this package (built: npm run
// build) and node-red-node-sqlite. Usage: node bench/cms-sqlite.js [records] [recordsPerPost] [rounds]
// [bridges]: `bridges` call bridges post at once, each one POST at a time and waiting for its answer, as
// CMS does (default 1); every side of the comparison gets the same load. Prints one JSON line; no
// assertion on speed.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { Pool } = require('undici');
const { startProfile } = require('./profile');
const { startRedJs, statusOf } = require('./node-red');

const root = path.resolve(__dirname, '..');
const TOTAL = Number(process.argv[2]) || 20000;
const PER_POST = Number(process.argv[3]) || 10;
const ROUNDS = Number(process.argv[4]) || 3;
const BRIDGES = Number(process.argv[5]) || 1;

function record(i) {
  // a callLegEnd like the real 2017 captures: the biggest common record
  return `<record type="callLegEnd" time="2024-01-01T00:00:00Z" recordIndex="${i + 1}" correlatorIndex="${i}">` +
    `<callLeg id="${String(i).padStart(8, '0')}-0000-4000-8000-000000000000"><reason>remoteTeardown</reason><remoteTeardown>true</remoteTeardown>` +
    '<durationSeconds>3912</durationSeconds><activatedDuration>3912</activatedDuration><mediaUsagePercentages><mainVideoViewer>99.9</mainVideoViewer>' +
    '<mainVideoContributor>99.6</mainVideoContributor></mediaUsagePercentages><alarm type="packetLoss" durationPercentage="0.1"/>' +
    '<rxAudio><codec>opus</codec></rxAudio><txAudio><codec>opus</codec></txAudio><rxVideo><codec>h264</codec></rxVideo>' +
    '<txVideo><codec>h264</codec><maxSizeWidth>1920</maxSizeWidth><maxSizeHeight>1080</maxSizeHeight></txVideo></callLeg></record>';
}

/** The posts of each bridge: the records split evenly, each bridge its own session (`prefix` + bridge number). */
function bodies(prefix) {
  const perBridge = Math.ceil(TOTAL / BRIDGES);
  const lists = [];
  for (let b = 0; b < BRIDGES; b++) {
    const out = [];
    const first = b * perBridge;
    const last = Math.min(TOTAL, first + perBridge);
    for (let i = first; i < last; i += PER_POST) {
      const recs = [];
      for (let j = i; j < Math.min(last, i + PER_POST); j++) recs.push(record(j));
      // each bridge names itself, as CMS does: otherwise bridges posting from one address look like one
      // bridge restarting over and over (a sessionChanged warning on every POST)
      const bridge = `c0c0c0c0-1111-4222-8333-${String(b).padStart(12, '0')}`;
      out.push(`<?xml version="1.0"?><records session="${prefix}${String(b).padStart(36 - prefix.length, '0')}" callBridge="${bridge}">${recs.join('')}</records>`);
    }
    lists.push(out);
  }
  return lists;
}

/**
 * Each bridge POSTs its list one after another on its own keep-alive connection; resolves with ms, up to
 * the end of `then` (run after the last answer) and not counting the closing of the connections.
 */
async function send(base, urlPath, lists, then = async () => undefined) {
  const pool = new Pool(base, { connections: lists.length });
  const t0 = process.hrtime.bigint();
  await Promise.all(lists.map(async (posts) => {
    for (const body of posts) {
      const res = await pool.request({ method: 'POST', path: urlPath, body, headers: { 'content-type': 'text/xml' } });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`${urlPath}: ${res.statusCode}`);
    }
  }));
  await then();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await pool.close();
  return ms;
}

async function main() {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cms-sqlite-bench-'));
  const dbFile = path.join(userDir, 'records.db');
  const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'CMS CDRs to SQLite with API and admin page.json'), 'utf8'));
  example.find((n) => n.type === 'sqlitedb').db = dbFile;
  const tab = example.find((n) => n.z).z;
  const flows = [
    { id: tab, type: 'tab', label: 'example' },
    ...example,
    { id: 'bench-tab', type: 'tab', label: 'bare' },
    { id: 'bench-bare', z: 'bench-tab', type: 'cms-cdr-in', path: '/cdr-bare', output: 'post', values: 'xmltodict', wires: [[], []] },
  ];
  const { userDir: runDir, base } = await startRedJs({
    flows,
    modules: { 'node-red-node-sqlite': path.dirname(require.resolve('node-red-node-sqlite/package.json')) },
    ready: async (b) => (await statusOf(b, '/cdr-bare')) === 200,
  });
  // the foundation benchmark's bare limit: node:http + fast-xml-parser, no Node-RED (bench/cms.js)
  const { XMLParser } = require('fast-xml-parser');
  const fxp = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (_n, j) => j === 'records.record' });
  const limitServer = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      fxp.parse(Buffer.concat(chunks).toString('utf8'));
      res.end();
    });
  });
  await new Promise((r) => limitServer.listen(0, '127.0.0.1', r));
  const limitBase = `http://127.0.0.1:${limitServer.address().port}`;

  const sqlite3 = require('sqlite3');
  // Cisco's cdr-receiver-db approach without Flask: each record its own INSERT and commit (SQLite's
  // defaults: rollback journal, synchronous FULL), 200 after the last one. Faster than the original,
  // which also paid for Flask and SQLAlchemy, so the comparison flatters the baseline.
  const ciscoDb = new sqlite3.Database(path.join(userDir, 'cisco.db'));
  await new Promise((resolve, reject) => ciscoDb.run('CREATE TABLE record (id INTEGER PRIMARY KEY AUTOINCREMENT, created_date TEXT NOT NULL, data TEXT NOT NULL)', (e) => (e ? reject(e) : resolve())));
  let ciscoStored = 0;
  const ciscoServer = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const doc = fxp.parse(Buffer.concat(chunks).toString('utf8'));
      for (const r of doc.records.record) {
        await new Promise((resolve, reject) => ciscoDb.run('INSERT INTO record (created_date, data) VALUES (?, ?)', [new Date().toISOString(), JSON.stringify(r)], (e) => (e ? reject(e) : resolve())));
        ciscoStored++;
      }
      res.end();
    });
  });
  await new Promise((r) => ciscoServer.listen(0, '127.0.0.1', r));
  const ciscoBase = `http://127.0.0.1:${ciscoServer.address().port}`;

  const db = new sqlite3.Database(dbFile);
  const all = (sql) => new Promise((resolve, reject) => db.all(sql, (e, rows) => (e ? reject(e) : resolve(rows))));
  try {
    // the example's inject node creates the table just after start
    for (let i = 0; i < 500; i++) {
      if ((await all("SELECT name FROM sqlite_master WHERE type='table' AND name='record'")).length) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // warm-up, then rounds of (bare, limit, example, Cisco's approach) on fresh sessions; the medians are
    // reported, because other work on the machine makes single runs noisy
    await send(base, '/cdr-bare', bodies('00000000-0000-4000-8000-f').map((l) => l.slice(0, 50)));
    await send(base, '/cdr', bodies('00000000-0000-4000-8000-e').map((l) => l.slice(0, 50)));
    const rounds = [];
    let expected = (await all('SELECT COUNT(*) AS n FROM record'))[0].n;
    let allStored = true;
    for (let round = 0; round < ROUNDS; round++) {
      const bareMs = await send(base, '/cdr-bare', bodies(`00000000-0000-4000-8000-1${String(round).padStart(2, '0')}`));
      const limitMs = await send(limitBase, '/', bodies(`00000000-0000-4000-8000-3${String(round).padStart(2, '0')}`));
      const profile = process.env.BENCH_PROFILE && round === 0 ? await startProfile() : null;
      expected += TOTAL;
      let stored = 0;
      let lagMs = 0;
      const storedMs = await send(base, '/cdr', bodies(`00000000-0000-4000-8000-2${String(round).padStart(2, '0')}`), async () => {
        const t0 = process.hrtime.bigint();
        // rows are only ever added here, so the highest id counts them without reading the whole table
        // (COUNT(*) reads every page: tens of milliseconds once the table holds a few rounds)
        for (let i = 0; i < 60000 && stored < expected; i++) {
          stored = (await all('SELECT MAX(id) AS n FROM record'))[0].n ?? 0;
          if (stored < expected) await new Promise((r) => setTimeout(r, 5));
        }
        lagMs = Number(process.hrtime.bigint() - t0) / 1e6;
      });
      if (profile) await profile.stop(path.join(process.env.BENCH_PROFILE, `cms-sqlite-example-${Date.now()}.cpuprofile`));
      allStored &&= stored === expected;
      // Cisco's approach last in the round, on a tenth of the records: its commit (and fsync) per record
      // is slow and leaves the disk busy for a while, which slowed whatever came next by a fifth here
      const ciscoBefore = ciscoStored;
      const ciscoMs = await send(ciscoBase, '/', bodies(`00000000-0000-4000-8000-4${String(round).padStart(2, '0')}`).map((l) => l.slice(0, Math.ceil(l.length / 10))));
      const ciscoRate = (ciscoStored - ciscoBefore) / (ciscoMs / 1000);
      rounds.push({ bare: TOTAL / (bareMs / 1000), limit: TOTAL / (limitMs / 1000), cisco: ciscoRate, example: TOTAL / (storedMs / 1000), lagMs });
    }
    // every record of every round, once: distinct (session-independent) correlatorIndex per round
    const distinct = (await all("SELECT COUNT(*) AS n FROM (SELECT DISTINCT json_extract(data, '$.\"@correlatorIndex\"') AS c, created_date FROM record)"))[0].n;
    const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const bareRate = median(rounds.map((r) => r.bare));
    const exampleRate = median(rounds.map((r) => r.example));
    console.log(JSON.stringify({
      bench: 'cms-sqlite-example',
      records: TOTAL,
      recordsPerPost: PER_POST,
      bridges: BRIDGES,
      rounds: ROUNDS,
      bareRecordsPerSec: Math.round(bareRate),
      exampleRecordsPerSec: Math.round(exampleRate),
      ratioToBare: Number(median(rounds.map((r) => r.example / r.bare)).toFixed(3)),
      bareLimitRecordsPerSec: Math.round(median(rounds.map((r) => r.limit))),
      ratioToBareLimit: Number(median(rounds.map((r) => r.example / r.limit)).toFixed(3)),
      targetRatioToBareLimit: 0.45,
      ciscoApproachRecordsPerSec: Math.round(median(rounds.map((r) => r.cisco))),
      ciscoApproachRatioToBareLimit: Number(median(rounds.map((r) => r.cisco / r.limit)).toFixed(3)),
      exampleOverCiscoApproach: Number(median(rounds.map((r) => r.example / r.cisco)).toFixed(1)),
      everyRecordStored: allStored && distinct >= expected,
      storedAfterLastAckMs: Math.round(median(rounds.map((r) => r.lagMs))),
    }));
  } finally {
    await new Promise((r) => db.close(r));
    limitServer.close();
    ciscoServer.close();
    await new Promise((r) => ciscoDb.close(r));
    fs.rmSync(userDir, { recursive: true, force: true });
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});

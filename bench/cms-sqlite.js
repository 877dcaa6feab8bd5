#!/usr/bin/env node
// Ingestion benchmark of the example "CMS CDRs to SQLite with API and admin page" (issue 8):
// records/s stored by the example flow, with every record present afterwards, next to the foundation
// benchmark's bare limit (node:http + fast-xml-parser) and a bare cms-cdr-in, all measured in the same run.
// Runs a real Node-RED runtime (no editor) with this package (built: npm run build) and
// node-red-node-sqlite. Usage: node bench/cms-sqlite.js [records] [recordsPerPost] [rounds]
// Prints one JSON line; no assertion on speed.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { Pool } = require('undici');

const root = path.resolve(__dirname, '..');
const TOTAL = Number(process.argv[2]) || 20000;
const PER_POST = Number(process.argv[3]) || 10;
const ROUNDS = Number(process.argv[4]) || 3;

function record(i) {
  // a callLegEnd like the real 2017 captures: the biggest common record
  return `<record type="callLegEnd" time="2024-01-01T00:00:00Z" recordIndex="${i + 1}" correlatorIndex="${i}">` +
    `<callLeg id="${String(i).padStart(8, '0')}-0000-4000-8000-000000000000"><reason>remoteTeardown</reason><remoteTeardown>true</remoteTeardown>` +
    '<durationSeconds>3912</durationSeconds><activatedDuration>3912</activatedDuration><mediaUsagePercentages><mainVideoViewer>99.9</mainVideoViewer>' +
    '<mainVideoContributor>99.6</mainVideoContributor></mediaUsagePercentages><alarm type="packetLoss" durationPercentage="0.1"/>' +
    '<rxAudio><codec>opus</codec></rxAudio><txAudio><codec>opus</codec></txAudio><rxVideo><codec>h264</codec></rxVideo>' +
    '<txVideo><codec>h264</codec><maxSizeWidth>1920</maxSizeWidth><maxSizeHeight>1080</maxSizeHeight></txVideo></callLeg></record>';
}

function bodies(session) {
  const out = [];
  for (let i = 0; i < TOTAL; i += PER_POST) {
    const recs = [];
    for (let j = i; j < Math.min(TOTAL, i + PER_POST); j++) recs.push(record(j));
    out.push(`<?xml version="1.0"?><records session="${session}">${recs.join('')}</records>`);
  }
  return out;
}

/** POSTs one after another on one keep-alive connection, as a call bridge does; resolves with ms. */
async function send(base, urlPath, posts) {
  const pool = new Pool(base, { connections: 1 });
  const t0 = process.hrtime.bigint();
  for (const body of posts) {
    const res = await pool.request({ method: 'POST', path: urlPath, body, headers: { 'content-type': 'text/xml' } });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${urlPath}: ${res.statusCode}`);
  }
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
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows));

  const RED = require('node-red');
  const express = require('express');
  const app = express();
  const server = http.createServer(app);
  RED.init(server, {
    userDir,
    flowFile: 'flows.json',
    nodesDir: [root],
    httpAdminRoot: false,
    httpNodeRoot: '/',
    credentialSecret: false,
    logging: { console: { level: 'error' } },
    editorTheme: { tours: false },
    telemetry: { enabled: false },
  });
  app.use('/', RED.httpNode);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  await RED.start();
  const base = `http://127.0.0.1:${server.address().port}`;
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
  const db = new sqlite3.Database(dbFile);
  const all = (sql) => new Promise((resolve, reject) => db.all(sql, (e, rows) => (e ? reject(e) : resolve(rows))));
  try {
    // the example's inject node creates the table just after start
    for (let i = 0; i < 500; i++) {
      if ((await all("SELECT name FROM sqlite_master WHERE type='table' AND name='record'")).length) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // warm-up, then rounds of (bare, example) on fresh sessions; the medians are reported, because other
    // work on the machine makes single runs noisy
    await send(base, '/cdr-bare', bodies('00000000-0000-4000-8000-0000000000ff').slice(0, 50));
    const rounds = [];
    let expected = 0;
    let allStored = true;
    for (let round = 0; round < ROUNDS; round++) {
      const bareMs = await send(base, '/cdr-bare', bodies(`00000000-0000-4000-8000-0000000001${String(round).padStart(2, '0')}`));
      const limitMs = await send(limitBase, '/', bodies(`00000000-0000-4000-8000-0000000003${String(round).padStart(2, '0')}`));
      const t0 = process.hrtime.bigint();
      const ackMs = await send(base, '/cdr', bodies(`00000000-0000-4000-8000-0000000002${String(round).padStart(2, '0')}`));
      expected += TOTAL;
      let stored = 0;
      for (let i = 0; i < 60000 && stored < expected; i++) {
        stored = (await all('SELECT COUNT(*) AS n FROM record'))[0].n;
        if (stored < expected) await new Promise((r) => setTimeout(r, 5));
      }
      const storedMs = Number(process.hrtime.bigint() - t0) / 1e6;
      allStored &&= stored === expected;
      rounds.push({ bare: TOTAL / (bareMs / 1000), limit: TOTAL / (limitMs / 1000), example: TOTAL / (storedMs / 1000), lagMs: storedMs - ackMs });
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
      rounds: ROUNDS,
      bareRecordsPerSec: Math.round(bareRate),
      exampleRecordsPerSec: Math.round(exampleRate),
      ratioToBare: Number(median(rounds.map((r) => r.example / r.bare)).toFixed(3)),
      bareLimitRecordsPerSec: Math.round(median(rounds.map((r) => r.limit))),
      ratioToBareLimit: Number(median(rounds.map((r) => r.example / r.limit)).toFixed(3)),
      targetRatioToBareLimit: 0.45,
      everyRecordStored: allStored && distinct >= expected,
      storedAfterLastAckMs: Math.round(median(rounds.map((r) => r.lagMs))),
    }));
  } finally {
    await new Promise((r) => db.close(r));
    await RED.stop();
    server.close();
    limitServer.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});

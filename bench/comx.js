#!/usr/bin/env node
/**
 * Com.X benchmark (issue 3), run on the built code (`npm run build` first):
 *   node --expose-gc bench/comx.js [--lines 1000000] [--zip-mib 1024] [--recordings 2000] [--only index|zip]
 *
 * 1. Index: a 1,000,000-line index.txt parsed by parseIndexBatches (what the node uses: typed rows, UTC times) against bare
 *    csv-parse over the same file (records counted, nothing else). Target: ratio >= 0.8.
 * 2. Zip: a 1 GiB ziprec with 2,000 recordings, streamed from a file (standing in for the HTTP body)
 *    through readZipArchive into a folder, against `unzip -o -q` of the same file to the same disk.
 *    Peak RSS is sampled during our run. Targets: ratio >= 0.7, peak RSS < 150 MB.
 * Ratios compare runs in the same process on the same machine, never absolute speeds. Data is written
 * to a temporary folder (or BENCH_DIR) and removed afterwards.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { parse } = require('csv-parse');
const yazl = require('yazl');

const root = path.resolve(__dirname, '..');
const { parseIndexBatches } = require(path.join(root, 'dist', 'comx', 'index-file.js'));
const { readZipArchive } = require(path.join(root, 'dist', 'comx', 'ziprec.js'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const LINES = Number(arg('lines', 1_000_000));
const ZIP_MIB = Number(arg('zip-mib', 1024));
const RECORDINGS = Number(arg('recordings', 2000));
const ONLY = arg('only', '');
const ZONE = 'Africa/Johannesburg';

const work = fs.mkdtempSync(path.join(process.env.BENCH_DIR || os.tmpdir(), 'comx-bench-'));
const results = [];
const pad = (n) => String(n).padStart(2, '0');

function line(i, t0) {
  const ms = t0 + i * 7000;
  const d = new Date(ms + 2 * 3600_000); // UTC+2 wall clock
  const local = `${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const id = `${Math.floor(ms / 1000) - 1}.${i}`;
  const out = i % 3 === 1;
  const dur = 20 + (i % 300);
  const stamp = local.replace(/[/:]/g, '').replace(/^(\d{8})(\d{6})$/, '$1-$2');
  return `${id},${local},${out ? 'CALLTYPE_OUTBOUND' : 'CALLTYPE_INBOUND'},${200 + (i % 50)},${out ? '0215551' + (i % 1000) : ''},${out ? '' : '0824441' + (i % 1000)},CALL_ANSWERED,${dur},${dur - 4},${dur * 1650},${out ? 'OUT' : 'g'}${200 + (i % 50)}-${stamp}-${id}.gsm`;
}

async function time(fn) {
  if (global.gc) global.gc();
  const t = process.hrtime.bigint();
  const r = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, r };
}

async function benchIndex() {
  const file = path.join(work, 'index.txt');
  const w = fs.createWriteStream(file);
  const t0 = Date.UTC(2026, 0, 1);
  for (let i = 0; i < LINES; i++) if (!w.write(line(i, t0) + '\n')) await new Promise((r) => w.once('drain', r));
  await new Promise((r) => w.end(r));
  const size = fs.statSync(file).size;

  const bare = async () => {
    let n = 0;
    for await (const _ of fs.createReadStream(file).pipe(parse())) n++;
    return n;
  };
  const ours = async () => {
    let n = 0;
    let bad = 0;
    for await (const batch of parseIndexBatches(fs.createReadStream(file), { zone: ZONE })) {
      for (const item of batch) {
        if (item.kind === 'cdr') n++;
        else bad++;
      }
    }
    if (bad) throw new Error(`${bad} malformed lines in generated data`);
    return n;
  };
  // warm up, then best of two each, alternating
  await bare();
  await ours();
  const b = [], o = [];
  for (let k = 0; k < 2; k++) {
    b.push(await time(bare));
    o.push(await time(ours));
  }
  const bm = Math.min(...b.map((x) => x.ms));
  const om = Math.min(...o.map((x) => x.ms));
  if (o[0].r !== LINES || b[0].r !== LINES) throw new Error(`row counts ${o[0].r} / ${b[0].r}, expected ${LINES}`);
  const ratio = bm / om;
  results.push({ name: `index ${LINES.toLocaleString('en-US')} lines (${(size / 1048576).toFixed(0)} MiB)`, baseline: `csv-parse ${bm.toFixed(0)} ms`, ours: `${om.toFixed(0)} ms`, ratio: ratio.toFixed(2), target: '>= 0.80', pass: ratio >= 0.8 });
  fs.rmSync(file);
}

async function benchZip() {
  const zipFile = path.join(work, 'answer.zip');
  const per = Math.floor((ZIP_MIB * 1048576) / RECORDINGS);
  const z = new yazl.ZipFile();
  const t0 = Date.UTC(2026, 0, 1);
  const lines = [];
  const chunk = Buffer.alloc(per);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24; // GSM-like, incompressible enough
  for (let i = 0; i < RECORDINGS; i++) {
    const l = line(i, t0).split(',');
    l[9] = String(per);
    lines.push(l.join(','));
  }
  z.addBuffer(Buffer.from(lines.map((l) => l + '\n').join('')), 'index.txt');
  for (const l of lines) z.addBuffer(chunk, l.split(',')[10], { compress: false });
  z.end();
  await new Promise((resolve, reject) => z.outputStream.pipe(fs.createWriteStream(zipFile)).on('close', resolve).on('error', reject));
  const size = fs.statSync(zipFile).size;

  const unzipDir = path.join(work, 'unzip');
  const oursDir = path.join(work, 'ours');
  const baseline = async () => {
    fs.rmSync(unzipDir, { recursive: true, force: true });
    execFileSync('unzip', ['-o', '-q', zipFile, '-d', unzipDir]);
  };
  let peak = 0;
  const ours = async () => {
    fs.rmSync(oursDir, { recursive: true, force: true });
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const out = await readZipArchive(fs.createReadStream(zipFile, { highWaterMark: 1 << 20 }), { zone: ZONE, saveDir: oursDir });
      const n = out.items.filter((i) => i.kind === 'cdr').length;
      await out.cleanup();
      return n;
    } finally {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
  };
  const b = [], o = [];
  for (let k = 0; k < 2; k++) {
    b.push(await time(baseline));
    o.push(await time(ours));
  }
  if (o[0].r !== RECORDINGS) throw new Error(`${o[0].r} CDRs, expected ${RECORDINGS}`);
  const saved = fs.readdirSync(oursDir).length;
  if (saved !== RECORDINGS) throw new Error(`${saved} recordings saved, expected ${RECORDINGS}`);
  const bm = Math.min(...b.map((x) => x.ms));
  const om = Math.min(...o.map((x) => x.ms));
  const ratio = bm / om;
  results.push({ name: `ziprec ${(size / 1048576).toFixed(0)} MiB, ${RECORDINGS} recordings`, baseline: `unzip ${bm.toFixed(0)} ms`, ours: `${om.toFixed(0)} ms`, ratio: ratio.toFixed(2), target: '>= 0.70', pass: ratio >= 0.7 });
  const rssMb = peak / 1048576;
  results.push({ name: 'ziprec peak RSS', baseline: '', ours: `${rssMb.toFixed(0)} MB`, ratio: '', target: '< 150 MB', pass: rssMb < 150 });
}

(async () => {
  try {
    if (ONLY !== 'zip') await benchIndex();
    if (ONLY !== 'index') await benchZip();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.table(results);
  const failed = results.filter((r) => !r.pass);
  if (failed.length) {
    console.error(`comx bench: ${failed.length} target(s) missed`);
    process.exitCode = 1;
  }
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

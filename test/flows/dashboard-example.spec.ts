/**
 * examples/CDR dashboard.json in Chromium against a real Node-RED (its own launcher, red.js, on a user
 * directory prepared as `npm start` prepares one, with node-red-node-sqlite and @flowfuse/node-red-dashboard
 * installed next to this package): the example is imported and deployed through the admin API as shipped,
 * only what a user fills in set (the Com.X PBX's URL and user, the Webex account's URL and tokens, the
 * first-run lookback); it is fed CMS posts (the CMS sender), a Webex Calling window (the Webex simulator)
 * and a Com.X window (the Com.X simulator, one failed fetch first). The dashboard page is opened in Debian's
 * Chromium and every widget is read off the page: the figures must be those computed here from the
 * records the flow stored in SQLite (the fed records, normalized), and the page must log no error. Then
 * Node-RED is stopped and started again: every widget must show the same figures, rebuilt from SQLite,
 * records delivered again must not count twice, and a source silent for longer than its schedule turns red.
 * The first render and the update latency at 100 records/s are printed, never asserted on.
 * With SCREENSHOT_DIR set (docs/images), the page is saved there as dashboard.png.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadExampleFile, nodePackages } from '../helpers/examples';
import { prepareUserDir, startNodeRed, userEnv, type NodeRedProcess } from '../helpers/node-red-process';
import { CmsSender } from '../simulators/cms-sender';
import { ComxSimulator, generateCalls } from '../simulators/comx-server';
import { WebexApiSim } from '../simulators/webex-api';
import { systemClock } from '../../src/webex/clock';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const haveBrowser = fs.existsSync(CHROMIUM);
const FILE = 'CDR dashboard.json';
const MIN = 60_000;
const HOUR = 3600_000;
const SESSION = '5e55e55e-da5b-4000-8000-000000000001';
const two = (n: number) => String(n).padStart(2, '0');

// ---------------------------------------------------------------------------------------------------
// CMS records, as a call bridge posts them

let recordIndex = 0;
function rec(type: string, id: string, body: string, time = new Date()): string {
  recordIndex++;
  const obj = type.startsWith('callLeg') ? 'callLeg' : 'call';
  return `<record type="${type}" time="${time.toISOString().replace(/\.\d{3}Z$/, 'Z')}" recordIndex="${recordIndex}" correlatorIndex="${recordIndex - 1}"><${obj} id="${id}">${body}</${obj}></record>`;
}
const records = (session: string, recs: string[]) => `<?xml version="1.0"?><records session="${session}">${recs.join('')}</records>`;
const uuid = (group: string, n: number) => `${group}-0000-4000-8000-${String(n).padStart(12, '0')}`;

const CALL_A = uuid('0000000a', 1);
const CALL_B = uuid('0000000b', 1);
const CALL_C = uuid('0000000c', 1);
const legStart = (id: string, call: string, remote: string, extra = '') =>
  rec('callLegStart', id, `<direction>incoming</direction><type>sip</type><remoteParty>${remote}</remoteParty><localAddress>meet@corp.example</localAddress>${extra}<call>${call}</call>`);
const connected = (id: string, call: string) => rec('callLegUpdate', id, `<state>connected</state><call>${call}</call>`);

/** Three meetings: A restricted with a guest and a Web App user, B plain, C over (ended) by the end. */
function meetingPosts(): string[] {
  return [
    records(SESSION, [
      rec('callStart', CALL_A, `<name>Restricted: board review</name><callCorrelator>${uuid('c0000000', 1)}</callCorrelator><callType>coSpace</callType>`),
      rec('callStart', CALL_B, `<name>Weekly sync</name><callCorrelator>${uuid('c0000000', 2)}</callCorrelator><callType>coSpace</callType>`),
      rec('callStart', CALL_C, `<name>Quick call</name><callCorrelator>${uuid('c0000000', 3)}</callCorrelator><callType>coSpace</callType>`),
    ]),
    records(SESSION, [
      legStart(uuid('1ea90a00', 1), CALL_A, '+27215550101'), connected(uuid('1ea90a00', 1), CALL_A),
      legStart(uuid('1ea90a00', 2), CALL_A, '+27215550102'), connected(uuid('1ea90a00', 2), CALL_A),
      legStart(uuid('1ea90a00', 3), CALL_A, 'visitor@elsewhere.example', '<guestConnection>true</guestConnection>'), connected(uuid('1ea90a00', 3), CALL_A),
      legStart(uuid('1ea90a00', 4), CALL_A, 'web.user@corp.example', '<subType>webApp</subType>'), connected(uuid('1ea90a00', 4), CALL_A),
      legStart(uuid('1ea90b00', 1), CALL_B, '+27215550101'), connected(uuid('1ea90b00', 1), CALL_B),
      legStart(uuid('1ea90b00', 2), CALL_B, '+27215550199'), connected(uuid('1ea90b00', 2), CALL_B),
      legStart(uuid('1ea90c00', 1), CALL_C, '+27215550101'), connected(uuid('1ea90c00', 1), CALL_C),
      legStart(uuid('1ea90c00', 2), CALL_C, '+27215550177'),
    ]),
    records(SESSION, [
      rec('callLegEnd', uuid('1ea90a00', 2), '<reason>remoteTeardown</reason><durationSeconds>95</durationSeconds><activatedDuration>95</activatedDuration>'),
      rec('callLegEnd', uuid('1ea90b00', 2), '<reason>remoteTeardown</reason><durationSeconds>300</durationSeconds><activatedDuration>300</activatedDuration>'),
      rec('callLegEnd', uuid('1ea90c00', 2), '<reason>timeout</reason><durationSeconds>30</durationSeconds>'),
      rec('callLegEnd', uuid('1ea90c00', 1), '<reason>remoteTeardown</reason><durationSeconds>61</durationSeconds><activatedDuration>61</activatedDuration>'),
      rec('callEnd', CALL_C, '<durationSeconds>62</durationSeconds>'),
    ]),
  ];
}

/** One ended leg (no callLegStart: CMS sends them so when the receiver came late), answered unless i % 4 == 3. */
function loneLeg(i: number): string {
  const answered = i % 4 !== 3;
  const body = answered
    ? `<reason>remoteTeardown</reason><durationSeconds>${20 + (i % 50)}</durationSeconds><activatedDuration>${20 + (i % 50)}</activatedDuration>`
    : '<reason>timeout</reason><durationSeconds>25</durationSeconds>';
  return rec('callLegEnd', uuid('10e1e000', i), body);
}

// ---------------------------------------------------------------------------------------------------
// What the widgets must show, computed from the rows the flow stored (the records, normalized)

interface Row { id: string; source_type: string; start_time: string | null; end_time: string | null; observed_at: string; answered: number; duration_s: number; direction: string; caller_number: string | null; caller_name: string | null; callee_number: string | null; user_name: string | null }
const LABELS: Record<string, string> = { cms: 'CMS', comx: 'Com.X', webex: 'Webex Calling' };

function localHour(t: number): number { return new Date(t).setMinutes(0, 0, 0); }
function hourLabel(t: number): string { const d = new Date(t); return `${two(d.getHours())}:${two(d.getMinutes())}`; }
function clock(t: number): string { const d = new Date(t); return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`; }
function duration(secs: number): string {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
}

interface Expected {
  /** series name -> hour label -> calls */
  chart: Map<string, Map<string, number>>;
  callsToday: string;
  answered: string;
  average: string;
  p95: string;
  busiest: string[][];
  health: Map<string, { records: number; last: string }>;
}

function expected(rows: Row[], now = Date.now()): Expected {
  const first = localHour(localHour(now) - 23 * HOUR);
  const midnight = new Date(now).setHours(0, 0, 0, 0);
  const chart = new Map<string, Map<string, number>>();
  for (const src of ['cms', 'comx', 'webex']) for (const a of ['answered', 'not answered']) chart.set(`${LABELS[src]} ${a}`, new Map());
  const durations: number[] = [];
  let calls = 0;
  const numbers = new Map<string, { number: string; name: string | null; calls: number; answered: number }>();
  const newest = new Map<string, number>();
  const today = new Map<string, number>();
  for (const r of rows) {
    const observed = Date.parse(r.observed_at);
    newest.set(r.source_type, Math.max(newest.get(r.source_type) ?? 0, observed));
    if (observed >= midnight) today.set(r.source_type, (today.get(r.source_type) ?? 0) + 1);
    const t = Date.parse(r.start_time ?? r.end_time ?? r.observed_at);
    const answered = r.answered === 1;
    if (t >= first) {
      const series = chart.get(`${LABELS[r.source_type]} ${answered ? 'answered' : 'not answered'}`)!;
      series.set(hourLabel(localHour(t)), (series.get(hourLabel(localHour(t))) ?? 0) + 1);
    }
    if (t < midnight) continue;
    calls++;
    if (answered) durations.push(r.duration_s);
    const parties: [string, string | null][] = [];
    if (r.caller_number) parties.push([r.caller_number, r.caller_name]);
    if (r.callee_number && r.callee_number !== r.caller_number) parties.push([r.callee_number, r.direction === 'inbound' ? r.user_name : null]);
    for (const [number, name] of parties) {
      const n = numbers.get(number) ?? { number, name: null, calls: 0, answered: 0 };
      n.calls++;
      if (answered) n.answered++;
      n.name = n.name || name || null;
      numbers.set(number, n);
    }
  }
  const health = new Map([...newest].map(([src, t]) => {
    const d = new Date(t);
    const last = t >= midnight ? clock(t) : `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock(t)}`;
    return [LABELS[src], { records: today.get(src) ?? 0, last }];
  }));
  durations.sort((a, b) => a - b);
  const busiest = [...numbers.values()]
    .sort((a, b) => b.calls - a.calls || b.answered - a.answered || (a.number < b.number ? -1 : 1))
    .slice(0, 10)
    .map((n, i) => [String(i + 1), n.number, n.name ?? '', String(n.calls), String(n.answered)]);
  return {
    chart,
    callsToday: String(calls),
    answered: calls ? `${durations.length} of ${calls} (${Math.round((100 * durations.length) / calls)} %)` : '–',
    average: durations.length ? duration(Math.round(durations.reduce((a, b) => a + b, 0) / durations.length)) : '–',
    p95: durations.length ? duration(durations[Math.ceil(0.95 * durations.length) - 1]) : '–',
    busiest,
    health,
  };
}

// ---------------------------------------------------------------------------------------------------
// Reading the page

interface Shown {
  chart: Map<string, Map<string, number>>;
  texts: Record<string, string>;
  tables: Record<string, string[][]>;
}

const TEXTS = ['cdrdash_calls_today', 'cdrdash_answered', 'cdrdash_avg', 'cdrdash_p95', 'cdrdash_cms_now'];
const TABLES = ['cdrdash_busiest', 'cdrdash_meetings_table', 'cdrdash_health_table'];

async function shown(page: Page): Promise<Shown> {
  const raw = await page.evaluate(({ texts, tables }) => {
    const w = globalThis as any;
    const doc = w.document;
    const out: any = { texts: {}, tables: {}, chart: null };
    for (const id of texts) out.texts[id] = doc.querySelector(`#nrdb-ui-widget-${id} .nrdb-ui-text-value`)?.textContent?.trim() ?? null;
    for (const id of tables) {
      const rows = [...doc.querySelectorAll(`#nrdb-ui-widget-${id} tbody tr`)] as any[];
      out.tables[id] = rows
        .map((tr) => [...tr.querySelectorAll('td')].map((td: any) => {
          // a tick/cross cell shows an icon, a colour cell a colour
          const icon = td.querySelector('.mdi-check-bold, .mdi-close-thick');
          if (icon) return icon.classList.contains('mdi-check-bold') ? '✓' : '✗';
          const swatch = td.querySelector('[style*="background"]');
          if (swatch && !td.textContent.trim()) return swatch.style.backgroundColor;
          return td.textContent.trim();
        }))
        .filter((cells: string[]) => !(cells.length === 1 && /No data/.test(cells[0])));
    }
    const chart = w.uiCharts?.cdrdash_chart?.chart;
    if (chart) {
      const opt = chart.getOption();
      out.chart = { x: opt.xAxis?.[0]?.data ?? null, series: (opt.series ?? []).map((s: any) => ({ name: s.name, data: s.data })) };
    }
    return out;
  }, { texts: TEXTS, tables: TABLES });
  const chart = new Map<string, Map<string, number>>();
  for (const s of raw.chart?.series ?? []) {
    const m = new Map<string, number>();
    for (const [i, p] of (s.data ?? []).entries()) {
      // a point is [x, y], {value: [x, y]} or y at the x axis' category i
      const v = Array.isArray(p) ? p : Array.isArray(p?.value) ? p.value : [raw.chart.x?.[i], p?.value ?? p];
      if (Number(v[1]) > 0) m.set(String(v[0]), Number(v[1]));
    }
    chart.set(s.name, m);
  }
  return { chart, texts: raw.texts, tables: raw.tables };
}

const plain = (m: Map<string, Map<string, number>>) => Object.fromEntries([...m].map(([k, v]) => [k, Object.fromEntries([...v].filter(([, n]) => n > 0).sort())]));

// ---------------------------------------------------------------------------------------------------

(haveBrowser || process.env.CI ? describe : describe.skip)('example flow: CDR dashboard, in Chromium against Node-RED', function () {
  this.timeout(150_000);
  const shots = process.env.SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-shots-'));
  let tmp: string;
  let userDir: string;
  let dataDir: string;
  let nr: NodeRedProcess | null = null;
  let browser: Browser;
  let comx: ComxSimulator;
  let webex: WebexApiSim;
  let cms: CmsSender;
  const pageErrors: string[] = [];
  let db: any;

  const query = (sql: string): Promise<any[]> => new Promise((resolve, reject) => db.all(sql, (err: Error | null, rows: any[]) => (err ? reject(err) : resolve(rows))));
  const cdrRows = () => query('SELECT id, source_type, start_time, end_time, observed_at, answered, duration_s, direction, caller_number, caller_name, callee_number, user_name FROM cdr') as Promise<Row[]>;

  async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 20_000): Promise<T> {
    const end = Date.now() + ms;
    let last: unknown;
    for (;;) {
      try {
        const v = await fn();
        if (v !== undefined && v !== false) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}\n${nr?.log.join('').slice(-3000) ?? ''}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function start(): Promise<NodeRedProcess> {
    return startNodeRed(userDir, { env: { ...userEnv(), CDRFLOW_DATA: dataDir } });
  }

  /** How long the page took to load (navigation timing), for the first-render figures. */
  const loaded = (page: Page): Promise<number> => page.evaluate(() => {
    const nav = (globalThis as any).performance.getEntriesByType('navigation')[0];
    return Math.round(nav.loadEventEnd - nav.startTime);
  });

  async function openPage(): Promise<{ page: Page; openedAt: number }> {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    // FlowFuse's own test hook: each chart component is kept in window.uiCharts[<node id>]
    await page.addInitScript(() => { (globalThis as any).Cypress = {}; });
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
    const openedAt = Date.now();
    await page.goto(`${nr!.base}/dashboard/cdr`);
    return { page, openedAt };
  }

  /** Waits until every widget shows what the rows in SQLite make; returns what was shown. */
  async function showsStored(page: Page, what: string, ms = 20_000): Promise<{ seen: Shown; want: Expected }> {
    let seen: Shown | null = null;
    let want: Expected | null = null;
    try {
      return await until(what, async () => {
        want = expected(await cdrRows());
        seen = await shown(page);
        const ok = JSON.stringify(plain(seen.chart)) === JSON.stringify(plain(want.chart))
          && seen.texts.cdrdash_calls_today === want.callsToday && seen.texts.cdrdash_answered === want.answered
          && seen.texts.cdrdash_avg === want.average && seen.texts.cdrdash_p95 === want.p95
          && JSON.stringify(seen.tables.cdrdash_busiest) === JSON.stringify(want.busiest);
        return ok && { seen, want };
      }, ms);
    } catch (err) {
      // say what differs
      if (seen && want) {
        const s = seen as Shown;
        const w = want as Expected;
        assert.deepEqual(plain(s.chart), plain(w.chart), 'chart');
        assert.deepEqual([s.texts.cdrdash_calls_today, s.texts.cdrdash_answered, s.texts.cdrdash_avg, s.texts.cdrdash_p95], [w.callsToday, w.answered, w.average, w.p95], 'today');
        assert.deepEqual(s.tables.cdrdash_busiest, w.busiest, 'busiest');
      }
      throw err;
    }
  }

  function healthRows(seen: Shown): Map<string, string[]> {
    // colour, source, condition, last record, records today, last error, node status
    return new Map(seen.tables.cdrdash_health_table.map((r) => [r[1], r]));
  }

  function checkHealth(seen: Shown, want: Expected): void {
    const rows = healthRows(seen);
    assert.deepEqual([...rows.keys()], ['CMS', 'Com.X', 'Webex Calling'], 'a row per source node');
    for (const [source, h] of want.health) {
      const row = rows.get(source)!;
      assert.equal(row[4], String(h.records), `${source}: records today`);
      assert.equal(row[3], h.last, `${source}: last record`);
    }
  }

  before(async function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-dashboard-'));
    userDir = path.join(tmp, 'user');
    dataDir = path.join(tmp, 'data');
    fs.mkdirSync(dataDir);
    prepareUserDir(userDir, nodePackages().map((dir) => JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name as string));

    const now = Date.now();
    comx = new ComxSimulator('Africa/Johannesburg');
    await comx.start();
    comx.calls = generateCalls(now - 5 * HOUR, 10, 25 * MIN);
    // the Webex API keeps its real rules, without its per-minute budget: a restart within the minute pulls again
    webex = await new WebexApiSim({ clock: systemClock, enforceRateLimit: false }).start();
    webex.generate(14, now - 100 * MIN, now - 4 * MIN);

    nr = await start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await nr?.stop();
    if (db) await new Promise((r) => db.close(r));
    cms?.close();
    await comx?.close();
    await webex?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('shows calls per hour, today\'s figures, the busiest numbers, live meetings and source health from CMS, Com.X and Webex records; renders again after a restart from SQLite', async () => {
    // ---- import and deploy the example, with what a user fills in
    const flow = loadExampleFile(FILE);
    const byId = (id: string) => flow.find((n) => n.id === id);
    Object.assign(byId('cdrdash_pbx'), { url: comx.url, retries: 0, credentials: { user: comx.user, password: comx.password } });
    Object.assign(byId('cdrdash_wxacct'), {
      region: 'custom', baseUrl: webex.url(), tokenUrl: webex.tokenUrl,
      credentials: { clientId: webex.clientId, clientSecret: webex.clientSecret, refreshToken: webex.issueRefreshToken() },
    });
    byId('cdrdash_webex').lookbackHours = 2; // one cdr_stream window on the first run
    // the first pull (at deploy) waits for a slow token endpoint, so the page is first seen with no history
    webex.tokenDelayMs = 8000;
    const current = await (await fetch(`${nr!.base}/flows`, { headers: { 'Node-RED-API-Version': 'v1' } })).json();
    const started = nr!.lines().filter((l) => l.includes('Started flows')).length;
    const res = await fetch(`${nr!.base}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Node-RED-API-Version': 'v1', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify([...current, ...flow]),
    });
    assert.equal(res.status, 204, await res.text());
    await until('the flows to start', () => nr!.lines().filter((l) => l.includes('Started flows')).length > started);
    const dbFile = path.join(dataDir, 'cdr-dashboard.db');
    await until('the SQLite file under CDRFLOW_DATA', () => fs.existsSync(dbFile));
    const sqlite3 = require('sqlite3');
    db = new sqlite3.Database(dbFile, sqlite3.OPEN_READONLY);
    await until('the cdr table', async () => (await query("SELECT name FROM sqlite_master WHERE name='cdr'")).length === 1);

    // ---- no history yet: the page shows empty figures
    let { page, openedAt } = await openPage();
    await until('the empty page', async () => (await shown(page)).texts.cdrdash_calls_today === '0');
    let seen = await shown(page);
    assert.equal(seen.texts.cdrdash_answered, '–');
    assert.deepEqual(seen.tables.cdrdash_busiest, []);
    assert.deepEqual(seen.tables.cdrdash_meetings_table, []);
    await showsStored(page, 'the empty figures');
    console.log(`      first render (no history): every widget filled ${Date.now() - openedAt} ms after the page was opened (page loaded in ${await loaded(page)} ms)`);
    assert.equal(webex.log.filter((l) => l.kind !== 'token').length, 0, 'checked before the Webex records came');
    webex.tokenDelayMs = 0;

    // ---- feed it: CMS posts, the Webex window (pulled on deploy), a Com.X window (its inject, pressed)
    cms = new CmsSender({ url: `${nr!.base}/cdr-dash` });
    for (const body of meetingPosts()) assert.equal((await cms.send(body)).status, 200);
    const press = async () => assert.equal((await fetch(`${nr!.base}/inject/cdrdash_comx_tick`, { method: 'POST' })).status, 200);
    comx.faults.fail500 = 1;
    await press();
    // the failed fetch is caught (source errors): shown as the last error of Com.X, not logged
    const comxError = await until('the Com.X error on the page', async () => healthRows(await shown(page)).get('Com.X')?.[5] || undefined);
    assert.match(comxError, /^\d\d:\d\d:\d\d .*500/, 'the time and the error');
    await press();
    await until('every record in SQLite', async () => {
      const n = Object.fromEntries((await query('SELECT source_type, COUNT(*) AS n FROM cdr GROUP BY source_type')).map((r) => [r.source_type, r.n]));
      return n.cms === 4 && n.comx === 10 && n.webex === 14;
    });

    ({ seen } = await showsStored(page, 'the figures of the fed records'));
    const fed = expected(await cdrRows());
    // the fed records as the sources gave them: 4 CMS legs (1 not answered), 10 Com.X calls (2 not answered)
    assert.ok(Number(fed.callsToday) >= 4, 'the CMS legs of today are counted');
    assert.equal([...fed.chart.get('Com.X not answered')!.values()].reduce((a, b) => a + b, 0), 2);
    assert.equal([...fed.chart.get('Com.X answered')!.values()].reduce((a, b) => a + b, 0), 8);
    assert.equal([...fed.chart.get('CMS not answered')!.values()].reduce((a, b) => a + b, 0), 1);
    assert.equal([...fed.chart.get('CMS answered')!.values()].reduce((a, b) => a + b, 0), 3);

    // live meetings: A (restricted, a guest and a Web App user, two internal legs of which one left),
    // B (two legs, one left, nothing to show), C ended
    seen = await until('the live meetings', async () => {
      const s = await shown(page);
      return s.tables.cdrdash_meetings_table.length === 2 && s;
    });
    const meetings = seen.tables.cdrdash_meetings_table.map((r) => r.slice(0, 6));
    assert.deepEqual(meetings.sort(), [
      ['Restricted: board review', '3', '1', '1', '✓', 'Restricted Meeting, External Participant(s) in Meeting'],
      ['Weekly sync', '1', '0', '0', '✗', 'none'],
    ]);
    assert.equal(seen.texts.cdrdash_cms_now, '2 meetings · 4 participants · 1 guest');

    // source health: records today and the newest, the Com.X error, all sources heard
    seen = await until('source health', async () => {
      const s = await shown(page);
      const rows = healthRows(s);
      return rows.get('Webex Calling')?.[2] === 'ok' && rows.get('Com.X')?.[2] === 'ok' && rows.get('CMS')?.[2] === 'ok' && s;
    });
    checkHealth(seen, expected(await cdrRows()));
    assert.equal(healthRows(seen).get('Com.X')![5], comxError, 'the Com.X error is still shown after the fetch that worked');
    assert.equal(healthRows(seen).get('Webex Calling')![5], '');
    assert.equal(healthRows(seen).get('CMS')![0], 'rgb(46, 125, 50)', 'green');

    await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });

    // ---- update latency at 100 records/s: when the page shows each record in "Calls today"
    await page.evaluate(() => {
      const w = globalThis as any;
      w.__shown = [];
      const el = w.document.querySelector('#nrdb-ui-widget-cdrdash_calls_today .nrdb-ui-text-value');
      new w.MutationObserver(() => w.__shown.push([Date.now(), Number(el.textContent)])).observe(el, { childList: true, characterData: true, subtree: true });
    });
    const base = Number((await shown(page)).texts.cdrdash_calls_today);
    // 10 records every 100 ms, as a busy call bridge posts them
    const N = 300;
    const BATCH = 10;
    const sentAt: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < N; i += BATCH) {
      const wait = t0 + i * 10 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const at = Date.now();
      const batch = Array.from({ length: BATCH }, (_, k) => loneLeg(i + k));
      for (let k = 0; k < BATCH; k++) sentAt.push(at);
      assert.equal((await cms.send(records(SESSION, batch))).status, 200);
    }
    const rate = N / ((Date.now() - t0) / 1000);
    await until('every record on the page', async () => Number((await shown(page)).texts.cdrdash_calls_today) === base + N);
    const updates: [number, number][] = await page.evaluate(() => (globalThis as any).__shown);
    const latency = sentAt.map((t, i) => updates.find(([, n]) => n >= base + i + 1)![0] - t).sort((a, b) => a - b);
    const pct = (p: number) => latency[Math.min(latency.length - 1, Math.ceil(p * latency.length) - 1)];
    console.log(`      update latency at ${rate.toFixed(0)} records/s (${N} records, ${updates.length} page updates): median ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${latency[latency.length - 1]} ms`);
    ({ seen } = await showsStored(page, 'the figures after the burst'));
    await page.close();

    // ---- restart: stop Node-RED, start it again; a source silent for longer than its schedule turns red
    const beforeRestart = await cdrRows();
    await nr!.stop();
    const flowsFile = path.join(userDir, 'flows.json');
    const saved = JSON.parse(fs.readFileSync(flowsFile, 'utf8'));
    const tab = saved.find((n: any) => n.id === 'cdrdash_tab');
    const schedule = tab.env.find((e: any) => e.name === 'CDR_DASH_SCHEDULE');
    schedule.value = JSON.stringify({ ...JSON.parse(schedule.value), webex: 0.05 }); // 3 s
    fs.writeFileSync(flowsFile, JSON.stringify(saved));
    const old = nr!;
    nr = await start();
    assert.ok(old.lines().some((l) => l.includes('Stopped flows')));

    ({ page, openedAt } = await openPage());
    ({ seen } = await showsStored(page, 'the figures rebuilt from SQLite'));
    console.log(`      first render after the restart (${beforeRestart.length} records in SQLite): every widget filled ${Date.now() - openedAt} ms after the page was opened (page loaded in ${await loaded(page)} ms)`);
    assert.deepEqual(plain(seen.chart), plain(expected(beforeRestart).chart), 'the same chart as before the restart');
    seen = await until('the live meetings from SQLite', async () => {
      const s = await shown(page);
      return s.tables.cdrdash_meetings_table.length === 2 && s;
    });
    assert.deepEqual(seen.tables.cdrdash_meetings_table.map((r) => r.slice(0, 6)).sort(), meetings);

    // records delivered again (a new session of the call bridge resends them) count once
    cms.close();
    cms = new CmsSender({ url: `${nr!.base}/cdr-dash` });
    assert.equal((await cms.send(records('5e55e55e-da5b-4000-8000-000000000002', Array.from({ length: 5 }, (_, i) => loneLeg(i))))).status, 200);
    await until('the resent records stored', async () => (await query(`SELECT COUNT(*) AS n FROM cdr WHERE observed_at > '${new Date(Date.now() - 10_000).toISOString()}' AND source_type = 'cms'`))[0].n === 5);
    ({ seen } = await showsStored(page, 'the figures after records delivered again'));
    assert.equal(seen.texts.cdrdash_calls_today, expected(beforeRestart).callsToday, 'nothing counted twice');

    seen = await until('Webex Calling red after 3 s of silence', async () => {
      const s = await shown(page);
      return /^silent for \d+ s \(schedule 3 s\)$/.test(healthRows(s).get('Webex Calling')?.[2] ?? '') && s;
    }, 25_000);
    const rows = healthRows(seen);
    assert.equal(rows.get('Webex Calling')![0], 'rgb(211, 47, 47)', 'red');
    assert.equal(rows.get('CMS')![2], 'ok');
    checkHealth(seen, expected(await cdrRows()));
    assert.equal(rows.get('Com.X')![5], comxError, 'the last Com.X error, from SQLite');
    await page.close();

    assert.deepEqual(pageErrors, [], 'the page logged no error');
    const errors = [...old.lines(), ...nr!.lines()].filter((l) => /\[error\]/.test(l));
    assert.deepEqual(errors, [], 'no uncaught error in the log');
  });
});

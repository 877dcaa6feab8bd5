/**
 * What the webex node tests share (test/nodes/webex-*.spec.ts): the Webex API simulator on a virtual
 * clock, a temporary userDir, a flow with one account and one pull node wired to helper nodes and a
 * Catch, and loading it into a real Node-RED. Mocha hooks are registered by useWebexRig().
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request, type Agent } from 'undici';
import { createAgent } from '../../src/common/http';
import { helper, capture, settle } from '../helpers/red';
import { WebexApiSim, VirtualClock, type SimOptions } from '../simulators/webex-api';
import accountMod = require('../../src/nodes/webex-account');
import pullMod = require('../../src/nodes/webex-cdr-pull');

/**
 * Opens a consent URL of the simulated Webex as a browser would, and returns where Webex sends the
 * browser back (the 302 Location).
 */
export async function consent(url: string): Promise<URL> {
  const res = await request(url, { method: 'GET' });
  await res.body.text();
  assert.equal(res.statusCode, 302, `the consent page redirects (got ${res.statusCode})`);
  return new URL(String(res.headers.location));
}

export interface WebexSim {
  readonly clock: VirtualClock;
  readonly sim: WebexApiSim;
  /** One agent for the whole describe block. */
  readonly agent: Agent;
}

/** Mocha hooks for module tests: a new simulated Webex on a virtual clock for each test, one agent. */
export function useWebexSim(opts: Omit<Partial<SimOptions>, 'clock'> = {}): WebexSim {
  const w = { agent: createAgent({ timeoutMs: 2000 }) } as { clock: VirtualClock; sim: WebexApiSim; agent: Agent };
  beforeEach(async () => {
    w.clock = new VirtualClock(Date.parse('2026-11-23T12:00:00.000Z'));
    w.sim = await new WebexApiSim({ clock: w.clock, ...opts }).start();
  });
  afterEach(() => w.sim.stop());
  after(() => w.agent.close());
  return w;
}

export const MIN = 60_000;
export const H = 60 * MIN;
export const now0 = Date.parse('2026-11-23T12:00:00.000Z');

export interface Loaded {
  records: any[];
  stats: any[];
  caught: any[];
  /** What a second pull node (withSecondPull) sent. */
  records2: any[];
  stats2: any[];
  red: any;
}

export interface WebexRig {
  clock: VirtualClock;
  sim: WebexApiSim;
  userDir: string;
  /** The refresh token in the account's credentials. */
  refreshToken: string;
  stateDir(): string;
  /** Runtime settings for the next load, on top of userDir and the virtual clock. */
  settings(extra?: Record<string, unknown>): void;
  /** Loads the next flow with a `localfilesystem` context store named `file` (in userDir/context). */
  useContextStore(): void;
  flow(pull?: Record<string, unknown>, account?: Record<string, unknown>): any[];
  /** Adds a second pull node `pull2` on the same account (outputs to `out2`, `stats2`). */
  withSecondPull(f: any[], pull?: Record<string, unknown>): any[];
  creds(over?: Record<string, unknown>): Record<string, Record<string, unknown>>;
  load(f?: any[], c?: Record<string, unknown>): Promise<Loaded>;
  until(cond: () => boolean, ms?: number): Promise<void>;
  /** What node.warn was called with so far. */
  warnings(id: string): string[];
  /** Records the API serves by now (cdr_stream visibility) that were reported after `from`. */
  expectedIds(from: number): string[];
  exactlyOnce(all: any[], ids: string[]): void;
}

export function useWebexRig(prefix = 'webex-pull-'): WebexRig {
  let contextStore = false;
  let extraSettings: Record<string, unknown> = {};
  const rig = {
    stateDir: () => path.join(rig.userDir, 'cdrflow-state'),
    settings(extra: Record<string, unknown> = {}) {
      extraSettings = { ...extraSettings, ...extra };
      helper.settings({ userDir: rig.userDir, cdrflowWebexClock: rig.clock, ...extraSettings } as any);
    },
    useContextStore() {
      contextStore = true;
      rig.settings({ contextStorage: { file: { module: 'localfilesystem' } } });
    },
    flow(pull: Record<string, unknown> = {}, account: Record<string, unknown> = {}) {
      return [
        { id: 'tab', type: 'tab', label: 'webex' },
        { id: 'acc', type: 'webex-account', region: 'custom', baseUrl: rig.sim.url(), tokenUrl: rig.sim.tokenUrl, timeout: 1, ...account },
        { id: 'pull', type: 'webex-cdr-pull', z: 'tab', x: 100, y: 100, account: 'acc', interval: 0, lookbackHours: 6, max: 500, wires: [['out'], ['stats']], ...pull },
        { id: 'out', type: 'helper', z: 'tab', x: 300, y: 100 },
        { id: 'stats', type: 'helper', z: 'tab', x: 300, y: 200 },
        { id: 'catch', type: 'catch', z: 'tab', scope: null, uncaught: false, x: 100, y: 300, wires: [['caught']] },
        { id: 'caught', type: 'helper', z: 'tab', x: 300, y: 300 },
      ];
    },
    withSecondPull(f: any[], pull: Record<string, unknown> = {}) {
      const first = f.find((n) => n.id === 'pull');
      return [
        ...f,
        { ...first, id: 'pull2', y: 400, wires: [['out2'], ['stats2']], ...pull },
        { id: 'out2', type: 'helper', z: 'tab', x: 300, y: 400 },
        { id: 'stats2', type: 'helper', z: 'tab', x: 300, y: 450 },
      ];
    },
    creds(over: Record<string, unknown> = {}) {
      return { acc: { clientId: rig.sim.clientId, clientSecret: rig.sim.clientSecret, refreshToken: rig.refreshToken, ...over } };
    },
    async load(f = rig.flow(), c: Record<string, unknown> = rig.creds()): Promise<Loaded> {
      const acc = capture(accountMod as any);
      const pull = capture(pullMod as any);
      // the test helper never loads settings.contextStorage itself: do it before the flows start
      const modules = contextStore ? [async () => (helper as any)._context.load(), acc.module, pull.module] : [acc.module, pull.module];
      await helper.load(modules, f, c);
      // the virtual clock jumps only once every request the accounts booked has reached the simulator
      const limiters = f.filter((n: any) => n.type === 'webex-account').map((n: any) => {
        try {
          return (helper.getNode(n.id) as any)?.cdrflow?.get()?.limiter ?? null;
        } catch {
          return null; // an account whose configuration cannot work books nothing
        }
      }).filter(Boolean);
      rig.clock.settled = () => rig.sim.cdrArrivals >= limiters.reduce((sum: number, l: any) => sum + l.booked, 0);
      const loaded: Loaded = { records: [], stats: [], caught: [], records2: [], stats2: [], red: pull.red.RED };
      const lists: Record<string, any[]> = { out: loaded.records, stats: loaded.stats, caught: loaded.caught, out2: loaded.records2, stats2: loaded.stats2 };
      for (const [id, list] of Object.entries(lists)) helper.getNode(id)?.on('input', (m: any) => list.push(m));
      return loaded;
    },
    async until(cond: () => boolean, ms = 10_000) {
      const t = Date.now();
      while (!cond()) {
        if (Date.now() - t > ms) throw new Error('timed out waiting');
        await settle(5);
      }
    },
    warnings(id: string): string[] {
      return (helper.getNode(id).warn as any).getCalls().map((c: any) => String(c.args[0]));
    },
    expectedIds(from: number): string[] {
      return rig.sim.records.filter((r) => r.reportAt >= from && r.insertedAt + 30_000 <= rig.clock.now() - 3 * MIN).map((r) => r.id.toLowerCase());
    },
    exactlyOnce(all: any[], ids: string[]) {
      const counts = new Map<string, number>();
      for (const m of all) counts.set(m.webex.reportId, (counts.get(m.webex.reportId) ?? 0) + 1);
      const missing = ids.filter((id) => !counts.has(id));
      assert.equal(missing.length, 0, `missing ${missing.length}`);
      const dups = [...counts].filter(([, n]) => n > 1);
      assert.equal(dups.length, 0, `duplicates ${dups.length}`);
    },
  } as unknown as WebexRig;

  beforeEach(async () => {
    rig.clock = new VirtualClock(now0, 15); // 15 ms of real time per virtual sleep: requests already sent land first, even on a busy machine
    rig.sim = await new WebexApiSim({ clock: rig.clock }).start();
    rig.refreshToken = rig.sim.issueRefreshToken();
    rig.userDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    contextStore = false;
    extraSettings = {};
    rig.settings();
    await helper.startServer();
  });
  afterEach(async () => {
    await helper.unload();
    if (contextStore) await (helper as any)._context.close();
    await helper.stopServer();
    helper.settings({});
    await rig.sim.stop();
    fs.rmSync(rig.userDir, { recursive: true, force: true });
  });
  return rig;
}

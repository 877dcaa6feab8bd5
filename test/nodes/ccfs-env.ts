/** Shared set-up for the CC-FS node tests: a real Node-RED (test helper), its httpNode served on a real port so the simulator can call back, and a CC-FS simulator. */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { helper, capture, coreNode } from '../helpers/red';
import { CcfsSimulator, type SimOptions } from '../simulators/ccfs-server';
import accountNode from '../../src/nodes/ccfs-account';
import billRequestNode from '../../src/nodes/ccfs-bill-request';
import callbackNode from '../../src/nodes/ccfs-callback-in';

export const AK = 'globalaktest';
export const SK = 'test-sk-0123456789abcdef';
export const ZONE = 'America/Sao_Paulo';

export const catchNode = coreNode('common/25-catch.js');

export interface Env {
  sim: CcfsSimulator;
  red: { RED: any };
  /** http://127.0.0.1:<port> serving RED.httpNode */
  base: string;
  userDir: string;
  modules: any[];
  /** Loads a flow; `userDir` another user directory than this env's (a copy, say). */
  load(flow: any[], creds?: Record<string, unknown>, userDir?: string): Promise<void>;
  stop(): Promise<void>;
}

let server: http.Server | null = null;
let routing: 'admin-first' | 'node-only' | 'foreign-parser' = 'admin-first';
const jsonParser = require('body-parser').json();

/** How the test server reaches httpNode: through the editor app first (Node-RED's default), directly, or behind a body parser we do not control. */
export function setRouting(r: typeof routing): void {
  routing = r;
}

export async function start(simOpts: Partial<SimOptions> = {}, userDir?: string): Promise<Env> {
  const sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, timeZone: ZONE, ...simOpts }).start();
  const dir = userDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ccfs-nodes-'));
  const cap = capture(callbackNode as any);
  // RED._ answers strictly from this package's catalogs (a missing key fails the test); core nodes
  // loaded beside ours (inject, debug, ...) get their keys echoed, as the test helper does by default
  const callbackModule = (RED: any) => {
    const result = cap.module(RED);
    const strict = RED._;
    RED._ = (key: string, vars?: Record<string, unknown>) => (/^(ccfs|cms|comx|webex|cdr)-/.test(key) ? strict(key, vars) : key);
    return result;
  };
  const modules = [accountNode, billRequestNode, callbackModule, catchNode];
  // Node-RED's own server (RED.server) serves httpNode behind an editor-like app with a JSON body parser,
  // as node-red/red.js does with the default roots; a second server reaches httpNode directly or behind
  // a body parser that runs before anything of ours.
  const app = (helper as any)._app;
  if (app && !app.__ccfs) {
    app.__ccfs = true;
    app.use((req: any, res: any) => {
      const RED = current?.red.RED;
      if (!RED?.httpNode) {
        res.statusCode = 503;
        res.end();
        return;
      }
      RED.httpAdmin(req, res, () => RED.httpNode(req, res));
    });
  }
  if (!server) {
    server = http.createServer((req, res) => {
      const RED = current?.red.RED;
      if (!RED?.httpNode) {
        res.statusCode = 503;
        res.end();
        return;
      }
      if (routing === 'foreign-parser') jsonParser(req, res, () => RED.httpNode(req, res));
      else RED.httpNode(req, res);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  }
  const port = (server.address() as AddressInfo).port;
  const env: Env = {
    sim,
    red: cap.red,
    get base() {
      return routing === 'admin-first' ? helper.url() : `http://127.0.0.1:${port}`;
    },
    userDir: dir,
    modules,
    async load(flow, creds = {}, userDir = dir) {
      helper.settings({ userDir });
      await helper.load(modules, flow, creds);
    },
    async stop() {
      await helper.unload();
      await sim.stop();
      if (!userDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  current = env;
  return env;
}

let current: Env | null = null;

/** Mocha hooks for a CC-FS node test file: the test helper's server, and the one callbacks reach, closed after the file. */
export function useServers(): void {
  before(() => helper.startServer());
  after(async () => {
    await closeServer();
    await helper.stopServer();
  });
}

export function closeServer(): Promise<void> {
  return new Promise((resolve) => {
    if (!server) return resolve();
    server.closeAllConnections?.();
    server.close(() => resolve());
    server = null;
  });
}

export function account(sim: CcfsSimulator, extra: Record<string, unknown> = {}) {
  return { id: 'acc', type: 'ccfs-account', name: 'sim', baseUrl: sim.url, timeZone: ZONE, signedHeaders: 'standard', timeout: 5, ...extra };
}

export const creds = { acc: { accessKey: AK, secretKey: SK } };

/** Waits until `cond` is true (polls), failing after `ms`. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The warnings a node logged (the test helper spies on node.warn). */
export function warnings(node: any): string[] {
  return (node.warn as any).getCalls().map((c: any) => String(c.args[0]));
}

/** The texts of the statuses a node showed. */
export function statuses(node: any): string[] {
  return (node.status as any).getCalls().map((c: any) => String(c.args[0]?.text ?? ''));
}

/** Writes `content` as the saved state of node `id` (of `type`) in `userDir`; returns the file. */
export function writeState(userDir: string, type: string, id: string, content: string): string {
  const file = path.join(userDir, 'cdrflow-state', `${type}-${id}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/**
 * Checks that a node warned about an unusable saved state: the file was moved aside unchanged, and a
 * warning names both the file and where it went.
 */
export function assertMovedAside(node: any, file: string, content: string): void {
  const dir = path.dirname(file);
  const moved = fs.readdirSync(dir).find((f) => f.startsWith(`${path.basename(file)}.unreadable-`));
  if (!moved) throw new Error(`not moved aside: ${fs.readdirSync(dir).join(', ')}`);
  if (fs.readFileSync(path.join(dir, moved), 'utf8') !== content) throw new Error('the unusable state was changed');
  const said = warnings(node);
  if (!said.some((w) => w.includes(file) && w.includes(path.join(dir, moved)))) throw new Error(`no warning names both files:\n${said.join('\n')}`);
}

/**
 * Runs `fn` on a copy of the state folder as it is this instant (what a kill would leave), given as
 * the copy's user directory; then stops the flow running on it (its close writes there) and removes the copy.
 */
export async function afterKill(userDir: string, fn: (frozen: string) => Promise<void>): Promise<void> {
  const frozen = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfs-killed-'));
  const state = path.join(userDir, 'cdrflow-state');
  if (fs.existsSync(state)) fs.cpSync(state, path.join(frozen, 'cdrflow-state'), { recursive: true });
  try {
    await fn(frozen);
  } finally {
    await helper.unload();
    fs.rmSync(frozen, { recursive: true, force: true });
  }
}

/**
 * Loads nodes into a real Node-RED runtime (node-red-node-test-helper) and gives tests the RED object
 * the node saw, so `supertest(RED.httpNode)` reaches its routes (specs/nodered.md §0.13), with RED._
 * answering from the package's real en-US catalogs instead of echoing keys.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import helper from 'node-red-node-test-helper';

// NODE_RED_PATH: another Node-RED to test against (scripts/test-nr5.js points it at Node-RED 5)
helper.init(process.env.NODE_RED_PATH ?? require.resolve('node-red'));

export { helper };

const localeDir = path.join(__dirname, '..', '..', 'nodes', 'locales', 'en-US');

function catalog(): Record<string, unknown> {
  const all: Record<string, unknown> = {};
  for (const f of fs.readdirSync(localeDir)) {
    if (f.endsWith('.json')) Object.assign(all, JSON.parse(fs.readFileSync(path.join(localeDir, f), 'utf8')));
  }
  return all;
}

/** What RED._ does at runtime: look the key up, replace __name__ placeholders. Unknown keys fail loudly. */
export function translate(key: string, vars?: Record<string, unknown>): string {
  const value = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], catalog());
  if (typeof value !== 'string') throw new Error(`missing locale key ${key}`);
  return value.replace(/__([A-Za-z0-9_]+)__/g, (_m, name: string) => String(vars?.[name] ?? `__${name}__`));
}

export interface Captured {
  RED: any;
}

/** Wraps a node module so the test can reach the RED it was given. */
export function capture(mod: (RED: any) => void): { module: (RED: any) => void; red: Captured } {
  const red: Captured = { RED: null };
  return {
    red,
    module: (RED: any) => {
      RED._ = translate;
      red.RED = RED;
      return mod(RED);
    },
  };
}

/** Resolves with the next `n` messages a helper node receives (rejects after `ms`). */
export function collect(node: any, n: number, ms = 5000): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const got: any[] = [];
    const timer = setTimeout(() => reject(new Error(`expected ${n} messages, got ${got.length}`)), ms);
    node.on('input', (msg: any) => {
      got.push(msg);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

/** Waits for the runtime to deliver anything still queued (messages are delivered asynchronously). */
export function settle(ms = 50): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The @node-red/nodes folder of the Node-RED under test (4.x by default, 5.x under test:nr5). */
export function coreNodesDir(): string {
  const runtime = process.env.NODE_RED_PATH ?? require.resolve('node-red');
  return path.dirname(require.resolve('@node-red/nodes/package.json', { paths: [path.dirname(runtime)] }));
}

/** A core node module of the Node-RED under test, e.g. coreNode('network/21-httpin.js') for http in/response. */
export function coreNode(rel: string): (RED: any) => void {
  return require(path.join(coreNodesDir(), 'core', rel));
}

/**
 * Mocha hooks for node tests: a temporary Node-RED user directory (state files land there, never in
 * ~/.node-red), removed afterwards.
 * - 'each': every test gets a new directory and a started test server (helper.startServer/stopServer);
 * - 'suite': one directory for the describe block; each test unloads its flow and starts without state.
 * `dir()` gives the current directory, e.g. to pass more settings: helper.settings({ userDir: dir(), ... }).
 */
export function useTempUserDir(scope: 'each' | 'suite', prefix = 'cdrflow-test-'): { dir(): string } {
  let userDir = '';
  const make = () => {
    userDir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), prefix));
  };
  if (scope === 'each') {
    beforeEach(async () => {
      make();
      helper.settings({ userDir });
      await helper.startServer();
    });
    afterEach(async () => {
      await helper.unload();
      await helper.stopServer();
      helper.settings({});
      fs.rmSync(userDir, { recursive: true, force: true });
    });
  } else {
    let saved: unknown;
    before(() => {
      make();
      const settings = (helper as any).settings();
      saved = settings.userDir;
      settings.userDir = userDir;
    });
    after(() => {
      (helper as any).settings().userDir = saved;
      fs.rmSync(userDir, { recursive: true, force: true });
    });
    afterEach(async () => {
      await helper.unload();
      fs.rmSync(path.join(userDir, 'cdrflow-state'), { recursive: true, force: true });
    });
  }
  return { dir: () => userDir };
}

/**
 * Node-RED as users run it, for tests that stop and start it again: its own launcher (red.js, the one
 * of NODE_RED_PATH under test:nr5) in a child process, on a user directory prepared like `npm start`'s
 * (scripts/start.js: this package linked, settings.js, the demo flow) that outlives each run. Optional
 * node modules found next to this package's own dependencies (node-red-node-sqlite, the dashboard) are
 * linked into that user directory too, so the Node-RED 5 run finds them as a user's install would.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port';

const root = path.resolve(__dirname, '..', '..');
const startScript = require(path.join(root, 'scripts', 'start.js')) as { prepareUserDir(dir: string): string };

export const redJs = process.env.NODE_RED_PATH ? path.join(path.dirname(process.env.NODE_RED_PATH), '..', 'red.js') : require.resolve('node-red/red.js');

export interface NodeRedProcess {
  base: string;
  /** Everything it printed, this run. */
  log: string[];
  child: ChildProcess;
  lines(): string[];
  /** Stops it (SIGTERM, as a service manager does) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Prepares `userDir` as npm start does and links `modules` (package names) into its node_modules. */
export function prepareUserDir(userDir: string, modules: string[] = []): string {
  fs.mkdirSync(userDir, { recursive: true });
  const settings = startScript.prepareUserDir(userDir);
  for (const name of modules) {
    const target = path.join(userDir, 'node_modules', name);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (!fs.existsSync(target)) fs.symlinkSync(path.dirname(require.resolve(`${name}/package.json`)), target, 'dir');
  }
  return settings;
}

/**
 * This process's environment as a user's shell would give it: without the CDRFLOW_DATA the package put
 * here for the test helper's in-process runtimes (their temporary user directories, maybe gone by now).
 * A child Node-RED then finds its own, the user directory, as a user's does.
 */
export function userEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CDRFLOW_DATA;
  return env;
}

/** Starts Node-RED on `userDir` (prepared with prepareUserDir) and resolves once its flows started. */
export async function startNodeRed(userDir: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string; port?: number } = {}): Promise<NodeRedProcess> {
  const port = opts.port ?? (await freePort());
  const child = spawn(process.execPath, [redJs, '-u', userDir, '-s', path.join(userDir, 'settings.js'), '-p', String(port)], {
    cwd: opts.cwd ?? userDir,
    env: opts.env ?? userEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const rt: NodeRedProcess = {
    base: `http://127.0.0.1:${port}`,
    log,
    child,
    lines: () => log.join('').split('\n'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
  for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (d: Buffer) => log.push(d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Node-RED did not start its flows:\n${log.join('')}`)), 60_000);
    const check = () => {
      if (!log.join('').includes('Started flows')) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve();
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Node-RED exited with ${code}:\n${log.join('')}`));
    });
  });
  return rt;
}

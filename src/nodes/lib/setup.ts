/**
 * What every node module of the package does when Node-RED registers it, in one place (each
 * module's register function calls packageSetup first):
 * - the data location: `CDRFLOW_DATA`, the folder the examples keep their databases, logs and
 *   recordings in (their tabs build paths from it with `$env("CDRFLOW_DATA")`). Left as it is when set
 *   (e.g. in the container's environment), else the Node-RED user directory: `.node-red/` under
 *   `npm start`, normally `~/.node-red`, `/data` in the official container;
 * - `GET cdrflow/state-stores` for the dialogs (serveStoreList).
 * Both are idempotent: registering twelve modules, or a second runtime in the same process, changes
 * nothing once done.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { NodeAPI } from 'node-red';
import { serveStoreList } from './state';

/** The environment variable naming where the examples keep their data. */
export const DATA_ENV = 'CDRFLOW_DATA';

export function packageSetup(RED: NodeAPI): void {
  dataLocation(RED);
  serveStoreList(RED);
}

/** CDRFLOW_DATA, set to the user directory (as an absolute path) when it is not set yet. */
export function dataLocation(RED: NodeAPI): string {
  const set = process.env[DATA_ENV];
  if (set !== undefined && set.trim() !== '') return set;
  const userDir = (RED.settings as { userDir?: unknown }).userDir;
  // the same fallback as the state files (state.ts): Node-RED's own default user directory
  const dir = path.resolve(typeof userDir === 'string' && userDir.trim() !== '' ? userDir : path.join(os.homedir(), '.node-red'));
  process.env[DATA_ENV] = dir;
  return dir;
}

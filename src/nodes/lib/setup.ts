/**
 * What every node module of the package does when Node-RED registers it, in one place (each
 * module's register function calls packageSetup first):
 * - the data location: `CDRFLOW_DATA`, the folder the examples keep their databases, logs and
 *   recordings in (their tabs build paths from it with `$env("CDRFLOW_DATA")`). Left as it is when set
 *   (e.g. in the container's environment), else the Node-RED user directory: `.node-red/` under
 *   `npm start`, normally `~/.node-red`, `/data` in the official container;
 * - `GET cdrflow/state-stores` for the dialogs (serveStoreList).
 * Both are idempotent: registering every module of the package changes nothing once done; a second
 * runtime in the same process points a CDRFLOW_DATA the package set at its own user directory.
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

/** What the package itself put into CDRFLOW_DATA (as opposed to a value the user set). */
let ours: string | null = null;

/**
 * CDRFLOW_DATA, set to the user directory (as an absolute path) when the user has not set it. A value
 * the package set follows the runtime registering now (another runtime in the same process, as in
 * tests, must not keep the first one's folder, which may be gone).
 */
export function dataLocation(RED: NodeAPI): string {
  const set = process.env[DATA_ENV];
  if (set !== undefined && set.trim() !== '' && set !== ours) return set;
  const userDir = (RED.settings as { userDir?: unknown }).userDir;
  // the same fallback as the state files (state.ts): Node-RED's own default user directory
  const dir = path.resolve(typeof userDir === 'string' && userDir.trim() !== '' ? userDir : path.join(os.homedir(), '.node-red'));
  process.env[DATA_ENV] = dir;
  ours = dir;
  return dir;
}

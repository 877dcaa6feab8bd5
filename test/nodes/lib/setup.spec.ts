/**
 * packageSetup (src/nodes/lib/setup.ts): CDRFLOW_DATA, where the examples keep their data, defaults to
 * the Node-RED user directory, is left alone when the user set it, and is set by whichever node module
 * of the package Node-RED registers first.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, capture } from '../../helpers/red';
import { packageSetup, dataLocation, DATA_ENV } from '../../../src/nodes/lib/setup';

const root = path.resolve(__dirname, '..', '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

describe('packageSetup: the data location CDRFLOW_DATA', () => {
  let saved: string | undefined;
  let tmp: string;
  beforeEach(() => {
    saved = process.env[DATA_ENV];
    delete process.env[DATA_ENV];
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-setup-'));
  });
  afterEach(() => {
    if (saved === undefined) delete process.env[DATA_ENV];
    else process.env[DATA_ENV] = saved;
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  // just what packageSetup reads: settings.userDir, and httpAdmin for the state-store route
  const fakeRED = (userDir: unknown) => ({ settings: { userDir }, httpAdmin: { get: () => undefined } }) as any;

  it('is the user directory, as an absolute path without a trailing slash (the container\'s settings say /data/)', () => {
    packageSetup(fakeRED(`${tmp}/`));
    assert.equal(process.env[DATA_ENV], tmp);
    delete process.env[DATA_ENV];
    const rel = path.relative(process.cwd(), tmp);
    assert.equal(dataLocation(fakeRED(rel)), tmp);
  });

  it('keeps a value the user set; one the package set follows the runtime registering now', () => {
    process.env[DATA_ENV] = '/srv/cdr';
    packageSetup(fakeRED(tmp));
    assert.equal(process.env[DATA_ENV], '/srv/cdr');
    process.env[DATA_ENV] = '  ';
    packageSetup(fakeRED(tmp));
    assert.equal(process.env[DATA_ENV], tmp, 'blank counts as unset');
    packageSetup(fakeRED(tmp));
    assert.equal(process.env[DATA_ENV], tmp, 'the same runtime registering another module');
    // a second runtime in this process (its user directory is another temp folder): not the first one's
    packageSetup(fakeRED(path.join(tmp, 'other')));
    assert.equal(process.env[DATA_ENV], path.join(tmp, 'other'));
    process.env[DATA_ENV] = '/srv/cdr';
    packageSetup(fakeRED(tmp));
    assert.equal(process.env[DATA_ENV], '/srv/cdr', 'the user\'s value again wins');
  });

  it('falls back to ~/.node-red, as the state files do, when the runtime names no user directory', () => {
    assert.equal(dataLocation(fakeRED(undefined)), path.join(os.homedir(), '.node-red'));
  });

  describe('every node module of the package sets it when Node-RED registers it', () => {
    after(() => helper.settings({}));
    for (const [type, file] of Object.entries(pkg['node-red'].nodes as Record<string, string>)) {
      it(type, async () => {
        const mod = require(path.join(root, 'src', 'nodes', `${path.basename(file, '.js')}.ts`));
        helper.settings({ userDir: tmp });
        await helper.load(capture(mod.default ?? mod).module, []);
        try {
          assert.equal(process.env[DATA_ENV], tmp);
        } finally {
          await helper.unload();
        }
      });
    }
  });
});

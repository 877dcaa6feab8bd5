import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const script = path.join(root, 'scripts', 'check-package.js');

describe('check:package (offline Flow Library scorecard and npm pack contents)', () => {
  it('passes on this package', () => {
    const out = execFileSync(process.execPath, [script], { cwd: root, encoding: 'utf8' });
    assert.match(out, / 0 failed/);
  });

  it('fails a copy with a caret node-red range, a non-literal registerType and an unused node', function () {
    this.timeout(60_000);
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-pkg-'));
    try {
      for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) fs.copyFileSync(path.join(root, f), path.join(copy, f));
      fs.cpSync(path.join(root, 'nodes'), path.join(copy, 'nodes'), { recursive: true });
      fs.cpSync(path.join(root, 'icons'), path.join(copy, 'icons'), { recursive: true });
      fs.mkdirSync(path.join(copy, 'examples'));
      const pkg = JSON.parse(fs.readFileSync(path.join(copy, 'package.json'), 'utf8'));
      pkg['node-red'].version = '^4.0.0';
      delete pkg.scripts; // the copy has no scripts/ folder: npm pack would run prepare
      fs.writeFileSync(path.join(copy, 'package.json'), JSON.stringify(pkg));
      const html = path.join(copy, 'nodes', 'cms-cdr-in.html');
      fs.writeFileSync(html, fs.readFileSync(html, 'utf8').replace("category: 'CDR'", 'category: CATEGORY'));
      const run = spawnSync(process.execPath, [script, '--root', copy], { encoding: 'utf8' });
      assert.equal(run.status, 1);
      assert.match(run.stdout, /FAIL P06 node-red.version "\^4.0.0" admits Node-RED 5.0.7/);
      assert.match(run.stdout, /FAIL N01 cms-cdr-in: category is an inline literal/);
      assert.match(run.stdout, /FAIL N02 cms-cdr-in is used in an example flow/);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

/** The editor files of comx-pbx and comx-cdr-fetch: literal registerType, every locale key they and the runtime use exists. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { translate } from '../helpers/red';

const root = path.join(__dirname, '..', '..');
const read = (p: string) => fs.readFileSync(path.join(root, p), 'utf8');

describe('comx editor files', () => {
  for (const type of ['comx-pbx', 'comx-cdr-fetch']) {
    it(`${type}: literal registration, help sections, and every locale key defined`, () => {
      const html = read(`nodes/${type}.html`);
      assert.match(html, new RegExp(`RED\\.nodes\\.registerType\\('${type}', \\{\\s*category: '${type === 'comx-pbx' ? 'config' : 'CDR'}'`));
      assert.match(html, /icon: 'cdrflow-comx\.svg'/);
      assert.match(html, new RegExp(`data-template-name="${type}"`));
      assert.match(html, new RegExp(`data-help-name="${type}"`));
      for (const h of ['Details', 'References']) assert.match(html, new RegExp(`<h3>${h}</h3>`));
      if (type === 'comx-cdr-fetch') for (const h of ['Inputs', 'Outputs']) assert.match(html, new RegExp(`<h3>${h}</h3>`));
      const src = read(`src/nodes/${type}.ts`);
      const keys = new Set<string>();
      for (const m of (html + src).matchAll(new RegExp(`['"\\]](${type}\\.[\\w.]+)`, 'g'))) keys.add(m[1].replace(/\.$/, ''));
      // keys built at run time
      for (const k of [...keys]) if (/\.$/.test(k)) keys.delete(k);
      assert.ok(keys.size > 10);
      for (const k of keys) assert.doesNotThrow(() => translate(k), k);
    });
  }

  it('the icon is white on transparent, 40x60', () => {
    const svg = read('icons/cdrflow-comx.svg');
    assert.match(svg, /width="40" height="60"/);
    assert.ok(!/fill="#(?!fff)/i.test(svg) && !/stroke="#(?!fff)/i.test(svg));
  });

  it('both nodes are registered in package.json', () => {
    const pkg = JSON.parse(read('package.json'));
    assert.equal(pkg['node-red'].nodes['comx-pbx'], 'nodes/comx-pbx.js');
    assert.equal(pkg['node-red'].nodes['comx-cdr-fetch'], 'nodes/comx-cdr-fetch.js');
  });
});

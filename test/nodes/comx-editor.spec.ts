/** The editor files of comx-pbx and comx-cdr-fetch: literal registerType, every locale key they and the runtime use exists. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
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

  /** Runs the editor script with a stand-in RED and returns the definition it registers. */
  function definition(type: string): any {
    const html = read(`nodes/${type}.html`);
    const script = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html)![1];
    let def: any = null;
    const RED = { nodes: { registerType: (t: string, d: any) => (t === type ? (def = d) : null) }, _: (k: string) => k, settings: {} };
    vm.runInNewContext(script, { RED, $: () => ({ length: 0 }), Intl });
    return def;
  }

  it('editor validators accept good values and ${ENV}, and answer bad ones with a translated message', () => {
    const node = { _: (k: string) => translate(k) };
    const check = (type: string, prop: string, good: unknown[], bad: unknown[]) => {
      const v = definition(type).defaults[prop].validate;
      for (const g of good) assert.equal(v.call({ ...node }, g), true, `${prop}=${String(g)}`);
      for (const b of bad) assert.equal(v.call({ ...node }, b), translate(`${type}.validate.${{ overlapMin: 'number', attachKb: 'number', rangeStart: 'rangeStamp', exactStart: 'exactStamp' }[prop] ?? prop}`), `${prop}=${String(b)}`);
    };
    check('comx-pbx', 'url', ['http://192.168.0.5', 'https://pbx.example:8443/base', '${PBX_URL}'], ['ftp://x', 'http://admin:pw@pbx', 'pbx']);
    check('comx-pbx', 'timezone', ['Africa/Johannesburg', 'UTC', '${TZ}'], ['Mars/Olympus', '']);
    check('comx-pbx', 'timeout', [60, '0.5e1', '${T}'], [0, 'x']);
    check('comx-pbx', 'retries', [0, 3, '10'], [11, -1, 1.5]);
    check('comx-cdr-fetch', 'rangeStart', ['', '20260105', '202601051000', '${FROM}'], ['2026010510', '20260105100000']);
    check('comx-cdr-fetch', 'exactStart', ['', '20140328114835'], ['201403281148']);
    check('comx-cdr-fetch', 'uniqueId', ['', '1396000115.1', 'pbx-1.2'], ['1.1&x=y']);
    check('comx-cdr-fetch', 'overlapMin', [0, 240, '${OVERLAP}'], [-1, 'x']);
    check('comx-cdr-fetch', 'attachKb', [0, 512], [-5]);
    const fmt = definition('comx-cdr-fetch').defaults.format.validate;
    assert.equal(fmt.call({ ...node, mode: 'id' }, 'raw'), true);
    assert.equal(fmt.call({ ...node, mode: 'incremental' }, 'raw'), translate('comx-cdr-fetch.validate.raw'));
    assert.equal(definition('comx-cdr-fetch').defaults.pbx.type, 'comx-pbx');
    assert.deepEqual(Object.keys(definition('comx-pbx').credentials), ['user', 'password']);
    assert.equal(definition('comx-pbx').credentials.password.type, 'password');
  });

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

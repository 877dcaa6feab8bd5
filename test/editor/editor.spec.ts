/**
 * The package in the Node-RED editor, in a real browser (issue 7): palette, icons, edit dialogs,
 * validation messages, credentials, help, examples, and no page errors along the way.
 * Screenshots go to SCREENSHOT_DIR (npm run screenshots writes docs/images/).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startEditor, packageTypes, deploy, openNode, CHROMIUM, pkg, type Editor } from './harness';

const haveBrowser = fs.existsSync(CHROMIUM);
const shots = process.env.SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'cdrflow-shots-'));

// Values no field of this package accepts in the form it expects; each validator must turn at least
// one of them into a readable message.
const BAD_VALUES = ['', 'no spaces / allowed here', '-1', 'not-a-number', 'ftp://', 'x'.repeat(300), '999999', 'Mars/Olympus'];

(haveBrowser || process.env.CI ? describe : describe.skip)('editor (Chromium)', function () {
  this.timeout(180_000);
  let ed: Editor;
  const types = packageTypes();
  const flowTypes = types.filter((t) => t.category !== 'config');

  before(async () => {
    ed = await startEditor([{ id: 'tab1', type: 'tab', label: 'CDR nodes' }]);
  });
  after(async () => {
    await ed?.stop();
  });

  it('lists every node type of the package in the palette under one CDR category, with its icon', async () => {
    for (const { type } of flowTypes) {
      const entry = ed.page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
      assert.equal(await entry.count(), 1, `${type} in the palette`);
      const category = await entry.evaluate((el) => el.closest('.red-ui-palette-category')?.id ?? '');
      assert.match(category, /CDR/, `${type} is in the CDR category (${category})`);
      const icon = await entry.evaluate((el) => getComputedStyle(el.querySelector('.red-ui-palette-icon')!).backgroundImage);
      const url = /url\("?([^")]+)"?\)/.exec(icon)?.[1];
      assert.ok(url, `${type} has an icon`);
      const res = await ed.page.request.get(url!);
      assert.equal(res.status(), 200, `${type} icon ${url} loads`);
      assert.match(res.headers()['content-type'] ?? '', /svg/);
    }
    // one colour per source, and every label on one line (a wrapped label makes the node twice as tall)
    const looks = await ed.page.evaluate((list) => list.map((type) => {
      const el = document.querySelector(`.red-ui-palette-node[data-palette-type="${type}"]`) as HTMLElement;
      return { type, color: getComputedStyle(el).backgroundColor, height: Math.round(el.getBoundingClientRect().height) };
    }), flowTypes.map((t) => t.type));
    // Node-RED's palette node is 30 px high with one line of label, 50 when the label wraps
    for (const l of looks) assert.ok(l.height <= 32, `${l.type}: its palette label wraps (${l.height} px high)`);
    const source = (t: string) => (t === 'cdr-normalize' ? 'normalize' : t.split('-')[0]);
    const colours = new Map<string, Set<string>>();
    for (const l of looks) colours.set(source(l.type), (colours.get(source(l.type)) ?? new Set()).add(l.color));
    for (const [src, set] of colours) assert.equal(set.size, 1, `${src} nodes share one colour`);
    const all = [...colours.values()].map((set) => [...set][0]);
    assert.equal(new Set(all).size, all.length, `each source has its own colour: ${JSON.stringify([...colours].map(([k, v]) => [k, [...v]]))}`);
    const categoryId = await ed.page.locator(`.red-ui-palette-node[data-palette-type="${flowTypes[0].type}"]`).evaluate((el) => el.closest('.red-ui-palette-category')!.id);
    await ed.page.locator(`[id="${categoryId}"]`).scrollIntoViewIfNeeded();
    await ed.page.locator(`[id="${categoryId}"]`).screenshot({ path: path.join(shots, 'palette.png') });
  });

  it('opens, validates and saves every edit dialog; secrets are password fields', async () => {
    // one of each config node, then one of each flow node using them, all with their editor defaults,
    // deployed through the admin API as the editor would, then the page reloaded
    const flow = await ed.page.evaluate((allTypes) => {
      // no named inner functions here: tsx's name helper does not exist in the page
      const RED = (window as any).RED;
      const configs: Record<string, string> = {};
      const nodes: any[] = [{ id: 'tab1', type: 'tab', label: 'CDR nodes' }];
      const ordered = [...allTypes.filter((t: any) => t.category === 'config'), ...allTypes.filter((t: any) => t.category !== 'config')];
      ordered.forEach((t: any, i: number) => {
        const def = RED.nodes.getType(t.type);
        const n: any = { id: t.category === 'config' ? `cfg${i}` : `node${i}`, type: t.type };
        if (t.category === 'config') configs[t.type] = n.id;
        else Object.assign(n, { z: 'tab1', x: 200 + (i % 3) * 260, y: 80 + Math.floor(i / 3) * 80, wires: Array.from({ length: def.outputs || 0 }, () => []) });
        for (const [prop, d] of Object.entries<any>(def.defaults)) n[prop] = d.type && configs[d.type] ? configs[d.type] : d.value;
        nodes.push(n);
      });
      return nodes;
    }, types);
    const deployed = await ed.page.evaluate(async (f) => {
      const res = await fetch('flows', { method: 'POST', headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full', 'Node-RED-API-Version': 'v1' }, body: JSON.stringify(f) });
      return res.status;
    }, flow);
    assert.equal(deployed, 204);
    await ed.page.reload();
    await ed.page.waitForFunction(() => (window as any).RED?.nodes?.workspace?.('tab1') && document.querySelector('.red-ui-flow-node'), undefined, { timeout: 60_000 });
    const made = flow.filter((n: any) => n.type !== 'tab').map((n: any) => ({ id: n.id as string, type: n.type as string }));
    for (const { id, type } of made) {
      const isConfig = id.startsWith('cfg');
      if (isConfig) {
        await ed.page.evaluate((nid) => (window as any).RED.editor.editConfig('', (window as any).RED.nodes.node(nid).type, nid), id);
      } else {
        await openNode(ed, id);
      }
      const prefix = isConfig ? 'node-config-input' : 'node-input';
      await ed.page.waitForSelector(`.red-ui-tray #${prefix}-name`, { timeout: 15_000 });
      const fields = await ed.page.evaluate(({ nid, pre }) => {
        const RED = (window as any).RED;
        const node = RED.nodes.node(nid);
        const def = RED.nodes.getType(node.type);
        const creds = def.credentials ?? {};
        return {
          defaults: Object.keys(def.defaults),
          missing: Object.keys(def.defaults).filter((p) => !document.getElementById(`${pre}-${p}`)),
          credentials: Object.entries<any>(creds).map(([name, c]) => ({ name, declared: c.type, input: (document.getElementById(`${pre}-${name}`) as HTMLInputElement | null)?.type ?? null })),
          configSelects: Object.entries<any>(def.defaults).filter(([, d]) => d.type).map(([p]) => ({ p, tag: document.getElementById(`${pre}-${p}`)?.tagName })),
        };
      }, { nid: id, pre: prefix });
      assert.deepEqual(fields.missing, [], `${type}: every property has a field in the dialog`);
      for (const c of fields.credentials) {
        assert.ok(c.input, `${type}: credential ${c.name} has a field`);
        if (c.declared === 'password') assert.equal(c.input, 'password', `${type}: ${c.name} is a password field`);
      }
      for (const s of fields.configSelects) assert.equal(s.tag, 'SELECT', `${type}: ${s.p} is a config-node selector`);
      const messages = await ed.page.evaluate(({ nid, bad }) => {
        const RED = (window as any).RED;
        const node = RED.nodes.node(nid);
        const out: string[] = [];
        for (const [, d] of Object.entries<any>(RED.nodes.getType(node.type).defaults)) {
          if (typeof d.validate !== 'function') continue;
          for (const v of bad) {
            const r = d.validate.call(node, v, {});
            // the editor shows a returned string only from a two-argument (3.x) validator; a one-argument
            // validator's string counts as "valid"
            if (typeof r === 'string') out.push(d.validate.length === 2 ? r : `NOT SHOWN (one-argument validator): ${r}`);
          }
        }
        return out;
      }, { nid: id, bad: BAD_VALUES });
      assert.ok(messages.length > 0, `${type}: a bad value gets a readable message`);
      assert.ok(messages.every((m) => m.length > 5 && !/^[a-z-]+\.[a-zA-Z.]+$/.test(m) && !m.startsWith('NOT SHOWN')), `${type}: messages are shown as text, not locale keys: ${messages.join(' | ')}`);
      await ed.page.locator('.red-ui-tray').last().screenshot({ path: path.join(shots, `dialog-${type}.png`) });
      await ed.page.locator('.red-ui-tray-footer button.primary, #node-dialog-ok, #node-config-dialog-ok').last().click();
      await ed.page.waitForFunction(() => document.querySelectorAll('.red-ui-tray').length === 0, undefined, { timeout: 10_000 });
    }
  });

  it('marks a bad value in the cms-cdr-in dialog and keeps the node invalid until it is fixed', async () => {
    const id = await ed.page.evaluate(() => (window as any).RED.nodes.filterNodes({ type: 'cms-cdr-in' })[0].id);
    await openNode(ed, id);
    await ed.page.fill('#node-input-path', 'no-leading-slash');
    await ed.page.locator('#node-input-path').dispatchEvent('change');
    await ed.page.waitForSelector('#node-input-path.input-error');
    await ed.page.click('#node-dialog-ok');
    assert.equal(await ed.page.evaluate((nid) => (window as any).RED.nodes.node(nid).valid, id), false);
    await openNode(ed, id);
    await ed.page.fill('#node-input-path', '/cdr-fixed');
    await ed.page.click('#node-dialog-ok');
    assert.equal(await ed.page.evaluate((nid) => (window as any).RED.nodes.node(nid).valid, id), true);
  });

  it('renders every help text with Inputs or Outputs, Details and References', async () => {
    for (const { type, category } of types) {
      const help: string = await ed.page.evaluate((t) => (window as any).RED.nodes.getNodeHelp(t) ?? '', type);
      assert.ok(help.length > 200, `${type} has help`);
      // config nodes take no messages: their help has no Inputs/Outputs
      if (category !== 'config') assert.match(help, /<h3>(Inputs|Outputs)<\/h3>/, `${type} help: Inputs/Outputs`);
      assert.match(help, /<h3>Details<\/h3>/, `${type} help: Details`);
      assert.match(help, /<h3>References<\/h3>/, `${type} help: References`);
    }
  });

  it('lists every example under Import > Examples, imports and deploys it without errors', async () => {
    const listing = await ed.page.evaluate(async () => (await fetch('library/examples/flows/')).json());
    const moduleEntry = JSON.stringify(listing);
    assert.ok(moduleEntry.includes(pkg.name), `examples listed for ${pkg.name}: ${moduleEntry.slice(0, 300)}`);
    const files = fs.readdirSync(path.join(__dirname, '..', '..', 'examples')).filter((f) => f.endsWith('.json'));
    // start from an empty workspace: the examples use the default endpoint paths of the nodes above
    const cleared = await ed.page.evaluate(async () => {
      const res = await fetch('flows', { method: 'POST', headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full', 'Node-RED-API-Version': 'v1' }, body: JSON.stringify([{ id: 'tab2', type: 'tab', label: 'examples' }]) });
      return res.status;
    });
    assert.equal(cleared, 204);
    await ed.page.reload();
    await ed.page.waitForFunction(() => (window as any).RED?.nodes?.workspace?.('tab2'), undefined, { timeout: 60_000 });
    for (const file of files) {
      const name = file.replace(/\.json$/, '');
      const flow = await ed.page.evaluate(async ([mod, n]) => (await fetch(`library/examples/flows/${mod}/${encodeURIComponent(n)}`)).json(), [pkg.name, name]);
      assert.ok(Array.isArray(flow) && flow.length > 0, `${name} is served`);
      const errorsBefore = ed.log.join('').split('\n').filter((l) => /\[error\]/.test(l)).length;
      const tabsBefore: string[] = await ed.page.evaluate(() => { const ids: string[] = []; (window as any).RED.nodes.eachWorkspace((w: any) => { ids.push(w.id); }); return ids; });
      await ed.page.evaluate((f) => (window as any).RED.view.importNodes(f, { addFlow: true, generateIds: true, touchImport: true }), flow);
      await deploy(ed);
      await new Promise((r) => setTimeout(r, 1000));
      const errors = ed.log.join('').split('\n').filter((l) => /\[error\]/.test(l)).slice(errorsBefore);
      assert.deepEqual(errors, [], `${name} deploys without errors`);
      if (name === 'CMS call security notifications' || (file === files[0] && !files.includes('CMS call security notifications.json'))) {
        await ed.page.evaluate((before) => {
          const RED = (window as any).RED;
          RED.nodes.eachWorkspace((w: any) => { if (!before.includes(w.id)) RED.workspaces.show(w.id); });
          document.querySelectorAll('.red-ui-notification').forEach((n) => n.remove());
        }, tabsBefore);
        await ed.page.waitForTimeout(500);
        await ed.page.screenshot({ path: path.join(shots, 'example-flow.png') });
      }
      // remove it again, so the next example (which may use the same endpoint path) starts clean
      await ed.page.evaluate((before) => {
        const RED = (window as any).RED;
        const added: string[] = [];
        RED.nodes.eachWorkspace((w: any) => { if (!before.includes(w.id)) added.push(w.id); });
        for (const id of added) RED.workspaces.delete(RED.nodes.workspace(id));
      }, tabsBefore);
      await deploy(ed);
    }
  });

  it('had no page errors or console errors', () => {
    assert.deepEqual(ed.pageErrors, []);
    assert.deepEqual(ed.consoleErrors.filter((e) => !/favicon/.test(e)), []);
  });
});

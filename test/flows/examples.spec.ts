/**
 * What every example under examples/ must hold, checked statically against the editor's own
 * definitions: every property of every node set (the `defaults` of its registerType in nodes/<type>.html,
 * in the core .html files of the Node-RED under test, or in the node package it comes from), a name on every node
 * that has one, a tab of its own with the data paths built from CDRFLOW_DATA, its own receiver paths,
 * and no inject firing at deploy at a source that needs credentials.
 */
import { strict as assert } from 'node:assert';
import { DEMO, editorTypes, exampleFiles, loadExampleFile, packageTypes } from '../helpers/examples';

const label = (n: any) => `${n.type} "${n.name || n.id}"`;
/** Properties naming a file or folder the flow writes. */
const PATH_PROPS: Record<string, string[]> = { sqlitedb: ['db'], file: ['filename'], 'comx-cdr-fetch': ['saveDir'] };

describe('examples', () => {
  const files = exampleFiles();
  const types = editorTypes();
  const defaults = new Map([...types].map(([type, t]) => [type, t.defaults]));
  const isConfigType = (type: string) => types.get(type)?.category === 'config';

  it('are found, and the definitions of every node type they use are read from the editor files', () => {
    assert.ok(files.length >= 7, files.join(', '));
    assert.ok(files.includes(`${DEMO}.json`));
    for (const t of ['cms-cdr-in', 'comx-cdr-fetch', 'inject', 'debug', 'sqlite', 'sqlitedb', 'http request', 'file']) assert.ok(defaults.get(t)?.length, `defaults of ${t}`);
    assert.ok(defaults.get('cms-cdr-in')!.includes('ack'), 'cms-cdr-in declares ack');
    for (const t of ['sqlitedb', 'cms-server', 'comx-pbx', 'webex-account', 'ccfs-account']) assert.ok(isConfigType(t), `${t} is a config node`);
    assert.ok(!isConfigType('cms-cdr-in'));
  });

  it('set every property of every node, as the editor would', () => {
    const missing: string[] = [];
    for (const file of files) {
      for (const n of loadExampleFile(file)) {
        if (n.type === 'tab') continue;
        const keys = defaults.get(n.type);
        if (!keys) {
          missing.push(`${file}: ${label(n)}: no editor definition found for type ${n.type}`);
          continue;
        }
        const lacking = keys.filter((k) => !(k in n));
        if (lacking.length) missing.push(`${file}: ${label(n)} lacks ${lacking.join(', ')}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('give every node that has a name property a name, one no other node of this package uses in any example', () => {
    const unnamed: string[] = [];
    for (const file of files) {
      for (const n of loadExampleFile(file)) {
        if ((defaults.get(n.type) ?? []).includes('name') && !(typeof n.name === 'string' && n.name.trim())) unnamed.push(`${file}: ${n.type} ${n.id}`);
      }
    }
    assert.deepEqual(unnamed, []);
    // imported together, a log line or a "path already in use" must still say which one
    const ours = packageTypes();
    const names = new Map<string, string>();
    for (const file of files) {
      for (const n of loadExampleFile(file).filter((x) => ours.has(x.type))) {
        assert.ok(!names.has(n.name), `${file}: ${label(n)}: the name is also used in ${names.get(n.name)}`);
        names.set(n.name, file);
      }
    }
  });

  it('have unique node ids, a tab of their own (the demo gets its tab from npm start), and every flow node on it', () => {
    const seen = new Map<string, string>();
    for (const file of files) {
      const flow = loadExampleFile(file);
      for (const n of flow) {
        assert.ok(!seen.has(n.id), `${file}: id ${n.id} is also used in ${seen.get(n.id)}`);
        seen.set(n.id, file);
      }
      const tabs = flow.filter((n) => n.type === 'tab');
      if (file === `${DEMO}.json`) {
        assert.deepEqual(tabs, [], 'the demo has no tab of its own (start.js and the install test put it on theirs)');
        continue;
      }
      assert.equal(tabs.length, 1, `${file} has one tab`);
      assert.equal(tabs[0].label, file.replace(/\.json$/, ''), `${file}: the tab is labelled like the example`);
      for (const n of flow) {
        if (n.type === 'tab' || isConfigType(n.type)) continue;
        assert.equal(n.z, tabs[0].id, `${file}: ${label(n)} is on the example's tab`);
      }
    }
  });

  it('give every receiver its own path: the demo keeps /cdr, no two examples share a route', () => {
    const routes = new Map<string, string>();
    for (const file of files) {
      for (const n of loadExampleFile(file)) {
        const route = n.type === 'http in' ? `${n.method.toUpperCase()} ${n.url}` : ['cms-cdr-in', 'ccfs-callback-in'].includes(n.type) ? `POST ${n.path}` : null;
        if (!route) continue;
        assert.ok(!routes.has(route), `${route}: ${file} and ${routes.get(route)}`);
        routes.set(route, file);
      }
    }
    assert.equal(routes.get('POST /cdr'), `${DEMO}.json`);
    assert.equal(routes.get('POST /cdr-db'), 'CMS CDRs to SQLite with API and admin page.json');
    assert.equal(routes.get('POST /cdr-all'), 'All CDR sources into one table, with alerts.json');
    assert.equal(routes.get('POST /ccfs/callback-all'), 'All CDR sources into one table, with alerts.json');
    assert.equal(routes.get('POST /ccfs/callback'), 'CC-FS daily CDR files.json');
    assert.equal(routes.get('GET /api/v1/records/:page?'), 'CMS CDRs to SQLite with API and admin page.json');
  });

  it('keep their data under CDRFLOW_DATA: each path is ${VAR} of a JSONata env variable of the tab built from $env("CDRFLOW_DATA")', () => {
    let paths = 0;
    for (const file of files) {
      const flow = loadExampleFile(file);
      const tab = flow.find((n) => n.type === 'tab');
      for (const n of flow) {
        for (const prop of PATH_PROPS[n.type] ?? []) {
          if (n[prop] === '' && n.type === 'comx-cdr-fetch' && n.format !== 'ziprec') continue; // nothing to save
          paths++;
          const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(n[prop]);
          assert.ok(m, `${file}: ${label(n)}.${prop} is \${VAR} (not a fixed or relative path): ${n[prop]}`);
          assert.equal(n.z, tab?.id, `${file}: ${label(n)} is scoped to the tab, where its \${${m![1]}} resolves`);
          const env = (tab.env ?? []).find((e: any) => e.name === m![1]);
          assert.ok(env, `${file}: the tab defines ${m![1]}`);
          assert.equal(env.type, 'jsonata', `${file}: ${m![1]} is a JSONata expression`);
          assert.match(env.value, /^\$env\("CDRFLOW_DATA"\) & "\/[^"]+"$/, `${file}: ${m![1]} is built from CDRFLOW_DATA`);
        }
      }
      const comment = flow.find((n) => n.type === 'comment');
      if (flow.some((n) => PATH_PROPS[n.type]?.some((p) => /^\$\{/.test(n[p] ?? '')))) assert.match(comment.info, /CDRFLOW_DATA/, `${file}: its comment says where the data goes`);
    }
    assert.ok(paths >= 5, `${paths} data paths checked`);
  });

  it('fire no inject at deploy at a source that needs credentials, and say in the comment how to run it', () => {
    const needsCredentials = ['comx-cdr-fetch', 'webex-cdr-pull', 'ccfs-bill-request', 'cms-call-message'];
    for (const file of files) {
      const flow = loadExampleFile(file);
      const byId = new Map(flow.map((n) => [n.id, n]));
      for (const inject of flow.filter((n) => n.type === 'inject')) {
        const targets = (inject.wires ?? []).flat().map((id: string) => byId.get(id)?.type);
        if (!targets.some((t: string) => needsCredentials.includes(t))) continue;
        assert.equal(inject.once, false, `${file}: ${label(inject)} does not fire at deploy`);
        const comment = flow.find((n) => n.type === 'comment');
        assert.ok(comment.info.includes(inject.name), `${file}: the comment tells how to run ${label(inject)}`);
      }
    }
  });
});

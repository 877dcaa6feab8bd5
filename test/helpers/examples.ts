/**
 * The examples under examples/ and what the editor knows of the node types they use: the literal
 * `defaults` of each registerType, parsed (acorn) from nodes/<type>.html, from the core .html files of
 * the Node-RED under test, and from node-red-node-sqlite's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as acorn from 'acorn';
import { coreNodesDir } from './red';

const root = path.resolve(__dirname, '..', '..');
const examplesDir = path.join(root, 'examples');
/** The demo `npm start` deploys: it keeps /cdr and lives on the tab start.js gives it. */
export const DEMO = 'CMS CDRs to the debug sidebar';

export function exampleFiles(): string[] {
  return fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json')).sort();
}

export function loadExampleFile(file: string): any[] {
  return JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
}

export interface EditorType {
  /** The properties the editor gives a new node (the keys of `defaults`). */
  defaults: string[];
  category?: string;
}

/** Every registerType('<type>', { defaults: {…} }) in the <script type="text/javascript"> blocks of an .html file. */
export function registeredTypes(htmlFile: string): Map<string, EditorType> {
  const out = new Map<string, EditorType>();
  const html = fs.readFileSync(htmlFile, 'utf8');
  for (const m of html.matchAll(/<script[^>]*type=["']text\/javascript["'][^>]*>([\s\S]*?)<\/script>/g)) {
    walk(acorn.parse(m[1], { ecmaVersion: 'latest' }), (n) => {
      if (n.type !== 'CallExpression' || n.callee.type !== 'MemberExpression' || n.callee.property.name !== 'registerType') return;
      const [name, def] = n.arguments;
      if (name?.type !== 'Literal' || def?.type !== 'ObjectExpression') return;
      const prop = (key: string) => def.properties.find((p: any) => (p.key?.name ?? p.key?.value) === key)?.value;
      const defaults = prop('defaults');
      const category = prop('category');
      out.set(name.value, {
        defaults: defaults?.type === 'ObjectExpression' ? defaults.properties.map((p: any) => p.key.name ?? p.key.value) : [],
        category: category?.type === 'Literal' ? category.value : undefined,
      });
    });
  }
  return out;
}

function walk(node: any, visit: (n: any) => void): void {
  if (!node || typeof node.type !== 'string') return;
  visit(node);
  for (const v of Object.values(node)) {
    if (Array.isArray(v)) v.forEach((c) => walk(c, visit));
    else if (v && typeof (v as any).type === 'string') walk(v, visit);
  }
}

function htmlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? htmlFiles(path.join(dir, e.name)) : e.name.endsWith('.html') ? [path.join(dir, e.name)] : []));
}

/** The .html files of the node sets a Node-RED node package declares (package.json `node-red.nodes`). */
function packageHtml(dir: string): string[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  return Object.values((manifest['node-red']?.nodes ?? {}) as Record<string, string>)
    .map((js) => path.join(dir, js.replace(/\.js$/, '.html')))
    .filter((f) => fs.existsSync(f));
}

/** The Node-RED node packages among this package's dependencies (node-red-node-sqlite, …), by folder. */
export function nodePackages(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  return Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })
    .map((name) => path.join(root, 'node_modules', name))
    .filter((dir) => fs.existsSync(path.join(dir, 'package.json')) && packageHtml(dir).length > 0);
}

/**
 * type -> what the editor knows of it: the core nodes of the Node-RED under test, the node packages
 * among the dependencies, and this package's own nodes.
 */
export function editorTypes(): Map<string, EditorType> {
  const all = new Map<string, EditorType>();
  const files = [...htmlFiles(path.join(coreNodesDir(), 'core')), ...nodePackages().flatMap(packageHtml), ...packageHtml(root)];
  for (const f of files) for (const [type, t] of registeredTypes(f)) all.set(type, t);
  return all;
}

/** The node types of this package. */
export function packageTypes(): Set<string> {
  return new Set(packageHtml(root).flatMap((f) => [...registeredTypes(f).keys()]));
}

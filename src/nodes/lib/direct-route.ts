/**
 * May a receiver answer its POSTs at the HTTP server (raw-capture.ts `serveDirect`) instead of through
 * Express? Only when nothing in front of its RED.httpNode route could answer or change such a request, so
 * that CMS gets the same answer either way. That is known only when Node-RED's own launcher (red.js)
 * built the server: an application embedding Node-RED may put its own middleware (auth, logging) first.
 * In front of RED.httpNode, red.js mounts the editor's app at httpAdminRoot, then httpNodeAuth; inside
 * the route come httpNodeMiddleware and httpNodeCors (the receiver applies the CORS headers itself).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalisePath, routerOf, type EndpointSettings } from './http-endpoint';

export interface DirectRouteSettings extends EndpointSettings {
  /** Set by red.js to the settings file it loaded; absent when Node-RED is embedded. */
  settingsFile?: string;
  httpAdminRoot?: string | false;
  httpAdminMiddleware?: unknown;
  httpAdminCors?: unknown;
  httpNodeAuth?: unknown;
  /** The old name of httpNodeAuth, still honoured by red.js. */
  httpAuth?: unknown;
  httpServerOptions?: Record<string, unknown>;
  /** settings.js: `cdrflowDirectRoutes: false` keeps every receiver on its Express route. */
  cdrflowDirectRoutes?: boolean;
}

// First segments of the editor's own POST routes under httpAdminRoot (@node-red/editor-api and core nodes).
const EDITOR_POST_ROUTES = new Set(['auth', 'flows', 'flow', 'nodes', 'settings', 'projects', 'library', 'inject', 'debug', 'context', 'credentials', 'plugins', 'diagnostics']);

/**
 * Why `fullPath` (httpNodeRoot included) must stay on its Express route, or null when it may be answered
 * at the server. `adminApp` is RED.httpAdmin, searched for routes that nodes added to the editor.
 */
export function directRouteBlocker(settings: DirectRouteSettings, adminApp: unknown, fullPath: string): string | null {
  if (settings.cdrflowDirectRoutes === false) return 'cdrflowDirectRoutes is false in settings';
  if (!settings.settingsFile) return 'Node-RED is embedded in another application, whose middleware may come first';
  if (settings.httpNodeAuth || settings.httpAuth) return 'httpNodeAuth is set';
  if (settings.httpNodeMiddleware) return 'httpNodeMiddleware is set';
  const serverOptions = Object.keys(settings.httpServerOptions ?? {}).filter((k) => k !== 'x-powered-by');
  if (serverOptions.length > 0) return `httpServerOptions sets ${serverOptions.join(', ')}`;
  if (settings.httpAdminRoot === false) return null;
  const adminRoot = normalisePath(typeof settings.httpAdminRoot === 'string' ? settings.httpAdminRoot : '/', '/');
  const rel = below(adminRoot, fullPath);
  if (rel === null) return null;
  // the editor's app sees this path first
  if (settings.httpAdminMiddleware) return 'httpAdminMiddleware is set';
  if (settings.httpAdminCors) return 'httpAdminCors is set';
  const first = rel.split('/')[1]?.toLowerCase() ?? '';
  if (EDITOR_POST_ROUTES.has(first)) return `the editor has routes under ${adminRoot === '/' ? '' : adminRoot}/${first}`;
  if (adminRouteMatches(adminApp, rel)) return 'a route of the editor answers this path';
  return null;
}

/** `path` relative to `root` ('/x' under '/' is '/x'; '/red/x' under '/red' is '/x'), or null when outside. */
function below(root: string, path: string): string | null {
  if (root === '/') return path;
  const r = root.toLowerCase();
  const p = path.toLowerCase();
  if (p === r) return '/';
  return p.startsWith(`${r}/`) ? path.slice(root.length) : null;
}

/** A POST route in the editor app's own router (where nodes add theirs with RED.httpAdmin.post) that matches. */
function adminRouteMatches(app: unknown, rel: string): boolean {
  return (routerOf(app as Parameters<typeof routerOf>[0])?.stack ?? []).some((layer) => {
    const methods = layer.route?.methods;
    return !!methods && (methods.post || methods._all) && typeof layer.match === 'function' && layer.match(rel);
  });
}

interface ExpressApp {
  request?: object;
  response?: object;
  enabled?(setting: string): boolean;
  get?(setting: string): unknown;
}

export function canInitExpress(app: unknown): boolean {
  const a = app as ExpressApp | null;
  return !!a && typeof a.request === 'object' && typeof a.response === 'object';
}

/**
 * What Express's query and init middleware do to every request it routes (express/lib/middleware): the
 * parsed query (res.jsonp reads it), the app's request and response prototypes (app.request /
 * app.response), which give res.status, set, send and the rest that the http response node calls, and
 * the links between the two.
 */
export function initExpress(app: unknown, req: IncomingMessage, res: ServerResponse): void {
  const a = app as ExpressApp;
  const parse = a.get?.('query parser fn');
  const at = (req.url ?? '').indexOf('?');
  (req as unknown as Record<string, unknown>).query = typeof parse === 'function' ? parse(at < 0 ? '' : req.url!.slice(at + 1)) : {};
  if (a.enabled?.('x-powered-by')) res.setHeader('X-Powered-By', 'Express');
  const q = req as unknown as Record<string, unknown>;
  const r = res as unknown as Record<string, unknown>;
  q.res = res;
  r.req = req;
  q.next = () => undefined;
  Object.setPrototypeOf(req, a.request as object);
  Object.setPrototypeOf(res, a.response as object);
  r.locals = r.locals ?? Object.create(null);
}

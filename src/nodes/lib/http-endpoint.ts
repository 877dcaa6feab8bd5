/**
 * Mounting a receiver on RED.httpNode the way core `http in` does (specs/nodered.md §6): settings'
 * httpNodeMiddleware and httpNodeCors, our own raw-body reading with a limit, one owner per path,
 * and removal of exactly our own route layers on close.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

type Next = (err?: unknown) => void;
export type Handler = (req: IncomingMessage & Record<string, any>, res: ServerResponse & Record<string, any>, next: Next) => void;

interface ExpressLike {
  get(path: string, ...h: Handler[]): unknown;
  post(path: string, ...h: Handler[]): unknown;
  _router?: { stack: Layer[] };
  router?: { stack: Layer[] };
}
interface Layer {
  route?: { path: string; stack: Array<{ handle: unknown }>; methods?: Record<string, boolean> };
  match?: (path: string) => boolean;
}

export interface EndpointSettings {
  httpNodeRoot?: string | false;
  httpNodeMiddleware?: Handler | Handler[];
  httpNodeCors?: CorsOptions;
}

export interface CorsOptions {
  origin?: boolean | string | RegExp | Array<string | RegExp>;
  methods?: string | string[];
  allowedHeaders?: string | string[];
  exposedHeaders?: string | string[];
  credentials?: boolean;
  maxAge?: number;
}

// Paths owned by receivers of this package, across node types: Express silently gives a request to
// the first matching route, so a second owner must be refused, not added.
const owners = new Map<string, string>();

export class PathInUseError extends Error {
  constructor(readonly path: string, readonly owner: string) {
    super(`path ${path} is already used by node ${owner}`);
  }
}

export function normalisePath(p: string | undefined, fallback: string): string {
  const trimmed = (p ?? '').trim() || fallback;
  const withSlash = trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
  return withSlash.length > 1 ? withSlash.replace(/\/+$/, '') : withSlash;
}

/** The URL a sender must use: httpNodeRoot joined with the node's path. */
export function effectivePath(settings: EndpointSettings, p: string): string {
  const root = typeof settings.httpNodeRoot === 'string' ? settings.httpNodeRoot : '/';
  return (root.replace(/\/+$/, '') + p) || '/';
}

export interface Endpoint {
  close(): void;
}

/**
 * Registers `post` (and `get`, for health probes) on each of `paths`. Throws PathInUseError when another
 * node of this package, or any other route, already answers POST on one of them.
 */
export function mountEndpoint(
  app: ExpressLike,
  settings: EndpointSettings,
  ownerId: string,
  paths: string[],
  handlers: { post: Handler; get?: Handler },
): Endpoint {
  for (const p of paths) {
    const owner = owners.get(p);
    if (owner !== undefined && owner !== ownerId) throw new PathInUseError(p, owner);
    if (owner === undefined && routeExists(app, p)) throw new PathInUseError(p, 'another node (an http in node?)');
  }
  for (const p of paths) owners.set(p, ownerId);

  const chain: Handler[] = [];
  const mw = settings.httpNodeMiddleware;
  if (typeof mw === 'function') chain.push(mw);
  else if (Array.isArray(mw)) chain.push(...mw.filter((f) => typeof f === 'function'));
  if (settings.httpNodeCors) chain.push(corsHandler(settings.httpNodeCors));
  // only our own handlers identify our layers: the middleware from settings is shared with core http in
  const ours = new Set<unknown>([handlers.post, handlers.get].filter(Boolean));
  for (const p of paths) {
    app.post(p, ...chain, handlers.post);
    if (handlers.get) app.get(p, ...chain, handlers.get);
  }
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      for (const p of paths) if (owners.get(p) === ownerId) owners.delete(p);
      const router = routerOf(app);
      if (!router) return;
      // filter, not forEach+splice: splicing while iterating skips the neighbour of a removed layer
      router.stack = router.stack.filter(
        (layer) => !(layer.route && paths.includes(layer.route.path) && layer.route.stack.some((s) => ours.has(s.handle))),
      );
    },
  };
}

/** Express 4 keeps its router in `_router` (created with the first route; its `router` getter throws); Express 5 in `router`. */
export function routerOf(app: ExpressLike | null | undefined): { stack: Layer[] } | undefined {
  if (!app) return undefined;
  if (app._router) return app._router;
  try {
    return app.router;
  } catch {
    return undefined;
  }
}

function routeExists(app: ExpressLike, p: string): boolean {
  const router = routerOf(app);
  return !!router?.stack.some((layer) => layer.route?.path === p && layer.route.stack.length > 0 && layer.route.methods?.post);
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body larger than ${limit} bytes`);
  }
}

/** Another middleware already read the body (the editor's JSON or form parser when it shares the root). */
export class BodyConsumedError extends Error {
  constructor(readonly contentType: string) {
    super(`the ${contentType || 'request'} body was already read by another parser`);
  }
}

/** How long, and how much beyond the limit, the rest of a refused body is read and thrown away. */
export const DISCARD_MS = 5000;
const DISCARD_FACTOR = 2;

/**
 * After a body was refused as too large: read and throw away the rest, so a client that sends its whole
 * body before reading the answer (Node's fetch) still gets the 413 instead of a reset. Past 2× the limit
 * or DISCARD_MS, the connection is closed: nobody uploads without end to a refusing endpoint.
 */
function discardRest(req: IncomingMessage, limit: number): void {
  const socket = req.socket;
  if (!socket || req.readableEnded) return;
  const start = socket.bytesRead;
  const stop = () => {
    clearInterval(watch);
    clearTimeout(timer);
  };
  const cut = () => {
    stop();
    if (!req.readableEnded) socket.destroy();
  };
  // Node's server throws away an unread request body once the answer is sent; this only bounds it
  const watch = setInterval(() => {
    if (socket.bytesRead - start > DISCARD_FACTOR * limit) cut();
  }, 100);
  const timer = setTimeout(cut, DISCARD_MS);
  watch.unref?.();
  timer.unref?.();
  req.once('end', stop);
  req.once('close', stop);
  req.resume();
}

/** Reads the raw body whatever its content type, refusing more than `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  // a consumed stream never emits 'end' again: answer at once instead of waiting forever
  if ((req as unknown as { _body?: boolean })._body === true || req.readableEnded) {
    return Promise.reject(new BodyConsumedError(String(req.headers['content-type'] ?? '')));
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    discardRest(req, limit);
    return Promise.reject(new BodyTooLargeError(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      req.removeListener('data', onData);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        finish(new BodyTooLargeError(limit));
        discardRest(req, limit);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(null));
    req.once('error', (err) => finish(err));
    req.once('aborted', () => finish(new Error('request aborted by the sender')));
  });
}

/** The subset of the `cors` package that httpNodeCors settings use. */
export function corsHandler(opts: CorsOptions): Handler {
  const list = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : v);
  return (req, res, next) => {
    const origin = req.headers.origin as string | undefined;
    const allowed = opts.origin ?? '*';
    let value: string | null = null;
    if (allowed === '*' || allowed === true) value = allowed === true ? origin ?? '*' : '*';
    else if (typeof allowed === 'string') value = allowed;
    else if (origin && (allowed instanceof RegExp ? allowed.test(origin) : Array.isArray(allowed) && allowed.some((a) => (a instanceof RegExp ? a.test(origin) : a === origin)))) value = origin;
    if (value) res.setHeader('Access-Control-Allow-Origin', value);
    if (value && value !== '*') res.setHeader('Vary', 'Origin');
    if (opts.credentials) res.setHeader('Access-Control-Allow-Credentials', 'true');
    if (opts.exposedHeaders) res.setHeader('Access-Control-Expose-Headers', list(opts.exposedHeaders)!);
    next();
  };
}

/** A short plain-text answer (or an empty one), with node:http's API only. */
export function answer(res: ServerResponse, code: number, text?: string): void {
  if (res.headersSent) return;
  res.statusCode = code;
  if (text === undefined) {
    res.end();
    return;
  }
  const body = Buffer.from(`${text}\n`);
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.end(body);
}

/** The query string as an object; a repeated name gives an array. The token is removed by the caller. */
export function queryOf(url: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const at = (url ?? '').indexOf('?');
  if (at < 0) return out;
  for (const [k, v] of new URLSearchParams(url!.slice(at + 1))) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/**
 * The one hook on the HTTP server, in front of Express: keeping a receiver's raw body away from the
 * editor's body parsers so a signature over the exact bytes can be checked. It answers nothing: every
 * request still goes through Express and RED.httpNode, so settings.js (auth, requireHttps, middleware)
 * holds for it.
 *
 * Node-RED mounts its editor/admin app, which runs bodyParser.json and .urlencoded on every request it
 * sees, in front of RED.httpNode; with the default settings both sit at "/", so a JSON POST to an httpNode
 * route arrives with its stream consumed and only the parsed `req.body` left, and a signature over the
 * raw bytes can no longer be checked. That app is not reachable from a node. So, for POSTs to our
 * paths only, this reads the raw body at the HTTP server, before Express runs, keeps it on the request
 * and marks the body as read (`req._body`, which body-parser honours), then hands the request on to the
 * server's original listeners unchanged. Every other request goes straight through.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { readBody, effectivePath, type EndpointSettings } from './http-endpoint';

const RAW = Symbol.for('cdrflow.rawBody');

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

interface Installed {
  original: Listener[];
  wrapper: Listener;
  /** full path (lowercase, no trailing slash) -> owners' limits */
  paths: Map<string, number[]>;
}

const installed = new WeakMap<Server, Installed>();

/** The raw body read at the server (or the error reading it), if the capture saw this request. */
export function capturedBody(req: IncomingMessage): Buffer | Error | undefined {
  return (req as unknown as Record<symbol, Buffer | Error | undefined>)[RAW];
}

// Express matches routes case-insensitively and ignores one trailing slash; so does this.
const key = (p: string) => (p.toLowerCase().replace(/\/+$/, '') || '/');

function install(server: Server): Installed {
  const existing = installed.get(server);
  if (existing) return existing;
  const state: Installed = { original: server.listeners('request') as Listener[], wrapper: () => undefined, paths: new Map() };
  state.wrapper = (req, res) => {
    const pass = () => {
      for (const l of state.original) l.call(server, req, res);
    };
    if (req.method !== 'POST') return pass();
    const pathname = (req.url ?? '/').split('?')[0];
    const limits = state.paths.get(key(pathname));
    if (!limits || limits.length === 0) return pass();
    readBody(req, Math.max(...limits)).then(
      (buf) => {
        (req as unknown as Record<symbol, unknown>)[RAW] = buf;
        (req as unknown as Record<string, unknown>)._body = true;
        pass();
      },
      (err: Error) => {
        (req as unknown as Record<symbol, unknown>)[RAW] = err;
        (req as unknown as Record<string, unknown>)._body = true;
        pass();
      },
    );
  };
  server.removeAllListeners('request');
  server.on('request', state.wrapper);
  installed.set(server, state);
  return state;
}

/** Gives the server its own listeners back once nothing is captured here, if ours is still the one installed. */
function uninstallIfIdle(server: Server, state: Installed): void {
  if (state.paths.size > 0) return;
  const now = server.listeners('request');
  if (now.length === 1 && now[0] === state.wrapper) {
    server.removeListener('request', state.wrapper);
    for (const l of state.original) server.on('request', l);
    installed.delete(server);
  }
}

const attachable = (server: Server | null | undefined): server is Server =>
  !!server && typeof server.listeners === 'function' && typeof server.on === 'function';

/**
 * Starts capturing POST bodies to `paths` (as given to mountEndpoint, under httpNodeRoot) on `server`.
 * Returns a remover, or null when there is no server to attach to (the body is then read in the route).
 */
export function captureRawBodies(server: Server | null | undefined, settings: EndpointSettings, paths: string[], limit: number): { close(): void } | null {
  if (!attachable(server)) return null;
  const state = install(server);
  const mine = paths.map((p) => key(effectivePath(settings, p)));
  for (const p of mine) state.paths.set(p, [...(state.paths.get(p) ?? []), limit]);
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      for (const p of mine) {
        const limits = state.paths.get(p) ?? [];
        limits.splice(limits.indexOf(limit), 1);
        if (limits.length === 0) state.paths.delete(p);
      }
      uninstallIfIdle(server, state);
    },
  };
}

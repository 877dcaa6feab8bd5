/**
 * A fake Cisco Meeting Server REST API (specs/cms.md §6): one real HTTP server on 127.0.0.1 per call
 * bridge, HTTP Basic auth (401 on a bad password), `PUT /api/v1/calls/<id>` with a form-urlencoded body,
 * 404 + `<failureDetails><callDoesNotExist/>` from a bridge that does not own the call, and every
 * request recorded in arrival order across bridges. Faults can be queued per bridge.
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault = number | 'hang' | 'reset';

export interface ApiRequest {
  bridge: string;
  method: string;
  path: string;
  callId: string | null;
  /** The form fields of a PUT, in the order sent. */
  form: Array<[string, string]>;
  contentType: string | undefined;
  status: number;
}

export interface Bridge {
  name: string;
  url: string;
  calls: Map<string, { messageText: string; messagePosition: string; messageDuration: string }>;
  faults: Fault[];
}

export class CmsApiSimulator {
  readonly bridges: Bridge[] = [];
  /** Every request, in the order the simulator received them. */
  readonly log: ApiRequest[] = [];
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(readonly user: string, readonly password: string) {}

  static async start(names: string[] = ['cb1'], user = 'apiuser', password = 'apipass'): Promise<CmsApiSimulator> {
    const sim = new CmsApiSimulator(user, password);
    for (const name of names) await sim.addBridge(name);
    return sim;
  }

  bridge(name: string): Bridge {
    const b = this.bridges.find((x) => x.name === name);
    if (!b) throw new Error(`no bridge ${name}`);
    return b;
  }

  /** The call now lives on this bridge (as after a callStart there). */
  addCall(bridge: string, callId: string): void {
    this.bridge(bridge).calls.set(callId, { messageText: '', messagePosition: 'bottom', messageDuration: '0' });
  }

  /** Successful PUTs, in order. */
  puts(): ApiRequest[] {
    return this.log.filter((r) => r.method === 'PUT' && r.status === 200);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  private async addBridge(name: string): Promise<void> {
    const bridge: Bridge = { name, url: '', calls: new Map(), faults: [] };
    const server = http.createServer((req, res) => this.handle(bridge, req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    bridge.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.servers.push(server);
    this.bridges.push(bridge);
  }

  private handle(bridge: Bridge, req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const m = /^\/api\/v1\/calls\/([^/]+)$/.exec(url.pathname);
      const entry: ApiRequest = {
        bridge: bridge.name,
        method: req.method ?? '',
        path: url.pathname,
        callId: m ? decodeURIComponent(m[1]) : null,
        form: [...new URLSearchParams(Buffer.concat(chunks).toString('utf8')).entries()],
        contentType: req.headers['content-type'],
        status: 0,
      };
      this.log.push(entry);
      const answer = (status: number, body = '', headers: Record<string, string> = {}) => {
        entry.status = status;
        res.writeHead(status, { 'content-type': 'text/xml', ...headers });
        res.end(body);
      };
      const expected = `Basic ${Buffer.from(`${this.user}:${this.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) return answer(401, '', { 'www-authenticate': 'Basic realm="CMS"' });
      const fault = bridge.faults.shift();
      if (fault === 'hang') return; // never answers: the client's timeout must fire
      if (fault === 'reset') {
        entry.status = -1;
        req.socket.destroy();
        return;
      }
      if (typeof fault === 'number') return answer(fault, '', fault === 503 ? { 'retry-after': '0' } : {});
      if (!m) return answer(404);
      const call = bridge.calls.get(entry.callId!);
      if (!call) return answer(404, '<?xml version="1.0"?><failureDetails><callDoesNotExist /></failureDetails>');
      if (req.method === 'GET') {
        return answer(200, `<?xml version="1.0"?><call id="${entry.callId}"><messageText>${call.messageText}</messageText><messagePosition>${call.messagePosition}</messagePosition><messageDuration>${call.messageDuration}</messageDuration></call>`);
      }
      if (req.method !== 'PUT') return answer(405);
      if (!/^application\/x-www-form-urlencoded/.test(entry.contentType ?? '')) return answer(400, '<?xml version="1.0"?><failureDetails><parametersMissing /></failureDetails>');
      const form = new Map(entry.form);
      const position = form.get('messagePosition');
      if (position !== undefined && !['top', 'middle', 'bottom'].includes(position)) {
        return answer(400, '<?xml version="1.0"?><failureDetails><invalidParameterValue parameter="messagePosition" /></failureDetails>');
      }
      if (form.has('messageText')) call.messageText = form.get('messageText')!;
      if (position) call.messagePosition = position;
      if (form.has('messageDuration')) call.messageDuration = form.get('messageDuration')!;
      answer(200);
    });
  }
}

/**
 * A fake Cisco Meeting Server REST API (specs/cms.md §6): one real HTTP server on 127.0.0.1 per call
 * bridge, HTTP Basic auth (401 on a bad user or password, which a test may change as an admin would on
 * CMS), text/xml answers as CMS writes them:
 * - `GET /api/v1/calls` → `<calls total="N"><call id><name/><coSpace/><callCorrelator/></call>…`, and
 *   `GET /api/v1/calls/<id>/callLegs` → `<callLegs total="N"><callLeg id><name/><remoteParty/>
 *   <originalRemoteParty/><call/></callLeg>…`, both paged with `offset` and `limit` (never more than
 *   `pageMax` items, whatever the limit), in the order the objects were made;
 * - `GET /api/v1/calls/<id>` with the message fields (`messageText` left out when there is none, as in
 *   Mividas' recorded answer), and `GET /api/v1/callLegs/<id>` with `type`, `subType`, `direction`;
 * - `PUT /api/v1/calls/<id>` with a form-urlencoded body;
 * - 404 + `<failureDetails><callDoesNotExist />` (`callLegDoesNotExist`) from a bridge that does not have
 *   the object.
 * Every request is recorded in arrival order across bridges. Faults can be queued per bridge.
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault = number | 'hang' | 'reset';

export interface ApiRequest {
  bridge: string;
  method: string;
  path: string;
  /** The query string as sent (`offset=0&limit=20`), '' for none. */
  query: string;
  callId: string | null;
  legId: string | null;
  /** The form fields of a PUT, in the order sent. */
  form: Array<[string, string]>;
  contentType: string | undefined;
  status: number;
}

export interface SimLeg {
  name: string | null;
  remoteParty: string | null;
  /** sip, acano (Web App and apps), lync, … */
  type: string;
  /** webApp, distributionLink, lync, … or null */
  subType: string | null;
  direction: 'incoming' | 'outgoing';
}

export interface SimCall {
  name: string | null;
  coSpace: string | null;
  callCorrelator: string | null;
  messageText: string;
  messagePosition: string;
  messageDuration: string;
  legs: Map<string, SimLeg>;
}

export interface Bridge {
  name: string;
  url: string;
  calls: Map<string, SimCall>;
  faults: Fault[];
}

export class CmsApiSimulator {
  readonly bridges: Bridge[] = [];
  /** Every request, in the order the simulator received them. */
  readonly log: ApiRequest[] = [];
  /** The most items one list answer carries. */
  pageMax = 10;
  /** Called with each request before it is answered (to change the calls between two pages). */
  onRequest: ((r: ApiRequest, bridge: Bridge) => void) | null = null;
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(private user: string, private password: string) {}

  static async start(names: string[] = ['cb1'], user = 'apiuser', password = 'apipass'): Promise<CmsApiSimulator> {
    const sim = new CmsApiSimulator(user, password);
    for (const name of names) await sim.addBridge(name);
    return sim;
  }

  /** The API account's user and password change on CMS (every bridge). */
  setCredentials(user: string, password: string): void {
    this.user = user;
    this.password = password;
  }

  bridge(name: string): Bridge {
    const b = this.bridges.find((x) => x.name === name);
    if (!b) throw new Error(`no bridge ${name}`);
    return b;
  }

  /** The call now lives on this bridge (as after a callStart there). */
  addCall(bridge: string, callId: string, info: { name?: string; coSpace?: string; callCorrelator?: string; messageText?: string } = {}): SimCall {
    const call: SimCall = {
      name: info.name ?? null, coSpace: info.coSpace ?? null, callCorrelator: info.callCorrelator ?? null,
      messageText: info.messageText ?? '', messagePosition: 'bottom', messageDuration: info.messageText ? 'permanent' : '0', legs: new Map(),
    };
    this.bridge(bridge).calls.set(callId, call);
    return call;
  }

  /** A participant (or a distribution link, recorder…) joins the call. */
  addLeg(bridge: string, callId: string, legId: string, info: Partial<SimLeg> = {}): void {
    const call = this.bridge(bridge).calls.get(callId);
    if (!call) throw new Error(`no call ${callId} on ${bridge}`);
    call.legs.set(legId, { name: info.name ?? null, remoteParty: info.remoteParty ?? null, type: info.type ?? 'sip', subType: info.subType ?? null, direction: info.direction ?? 'incoming' });
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
      const call = /^\/api\/v1\/calls\/([^/]+)(\/callLegs)?$/.exec(url.pathname);
      const leg = /^\/api\/v1\/callLegs\/([^/]+)$/.exec(url.pathname);
      const entry: ApiRequest = {
        bridge: bridge.name,
        method: req.method ?? '',
        path: url.pathname,
        query: url.search.replace(/^\?/, ''),
        callId: call ? decodeURIComponent(call[1]) : null,
        legId: leg ? decodeURIComponent(leg[1]) : null,
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
      this.onRequest?.(entry, bridge);
      const xml = (body: string) => answer(200, `<?xml version="1.0"?>\n${body}`);
      const missing = (what: string) => answer(404, `<?xml version="1.0"?><failureDetails><${what}DoesNotExist /></failureDetails>`);
      if (req.method === 'GET' && url.pathname === '/api/v1/calls') {
        return xml(this.page(url, 'calls', [...bridge.calls].map(([id, c]) =>
          `<call id="${id}">${el('name', c.name)}${el('coSpace', c.coSpace)}${el('callCorrelator', c.callCorrelator)}</call>`)));
      }
      if (leg) {
        if (req.method !== 'GET') return answer(405);
        for (const [callId, c] of bridge.calls) {
          const l = c.legs.get(entry.legId!);
          if (!l) continue;
          return xml(`<callLeg id="${entry.legId}">${el('name', l.name)}${el('remoteParty', l.remoteParty)}${el('originalRemoteParty', l.remoteParty)}<call>${callId}</call>`
            + `<type>${l.type}</type>${l.subType ? el('subType', l.subType) : ''}<direction>${l.direction}</direction><canMove>false</canMove>`
            + '<status><state>connected</state><durationSeconds>60</durationSeconds></status></callLeg>');
        }
        return missing('callLeg');
      }
      if (!call) return answer(404);
      const c = bridge.calls.get(entry.callId!);
      if (!c) return missing('call');
      if (call[2]) {
        if (req.method !== 'GET') return answer(405);
        return xml(this.page(url, 'callLegs', [...c.legs].map(([id, l]) =>
          `<callLeg id="${id}">${el('name', l.name)}${el('remoteParty', l.remoteParty)}${el('originalRemoteParty', l.remoteParty)}<call>${entry.callId}</call></callLeg>`)));
      }
      if (req.method === 'GET') {
        return xml(`<call id="${entry.callId}">${el('name', c.name)}${el('coSpace', c.coSpace)}${el('callCorrelator', c.callCorrelator)}`
          + `<durationSeconds>60</durationSeconds><numCallLegs>${c.legs.size}</numCallLegs><locked>false</locked><recording>false</recording><streaming>false</streaming>`
          + `${c.messageText === '' ? '' : el('messageText', c.messageText)}<messagePosition>${c.messagePosition}</messagePosition><messageDuration>${c.messageDuration}</messageDuration></call>`);
      }
      if (req.method !== 'PUT') return answer(405);
      if (!/^application\/x-www-form-urlencoded/.test(entry.contentType ?? '')) return answer(400, '<?xml version="1.0"?><failureDetails><parametersMissing /></failureDetails>');
      const form = new Map(entry.form);
      const position = form.get('messagePosition');
      if (position !== undefined && !['top', 'middle', 'bottom'].includes(position)) {
        return answer(400, '<?xml version="1.0"?><failureDetails><invalidParameterValue parameter="messagePosition" /></failureDetails>');
      }
      if (form.has('messageText')) c.messageText = form.get('messageText')!;
      if (position) c.messagePosition = position;
      if (form.has('messageDuration')) c.messageDuration = form.get('messageDuration')!;
      answer(200);
    });
  }

  /** One page of a list: `total` counts them all, at most min(limit, pageMax) items from `offset`. */
  private page(url: URL, root: string, items: string[]): string {
    const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0);
    const asked = Number(url.searchParams.get('limit') ?? this.pageMax) || this.pageMax;
    const shown = items.slice(offset, offset + Math.min(asked, this.pageMax));
    return `<${root} total="${items.length}">${shown.join('')}</${root}>`;
  }
}

/** `<name>text</name>`, `<name/>` when empty or unknown, as CMS writes them. */
function el(name: string, value: string | null): string {
  if (value === null || value === '') return `<${name}/>`;
  return `<${name}>${value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}</${name}>`;
}

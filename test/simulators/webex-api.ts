/**
 * A Webex Calling CDR API on 127.0.0.1 (port 0), speaking the wire protocol of specs/webex.md:
 * the OAuth token endpoint (refresh grant, rotation, expired or revoked refresh tokens), cdr_feed and
 * cdr_stream with the documented window rules (400 on violations), max clamped to 500–5000, paging
 * through Link rel="next" with a server cursor (a next-page request whose path and query are not, byte
 * for byte, a link it issued is refused with 400, as the real server refuses a cursor it did not
 * issue), late-written records, the rate limit (429 with
 * Retry-After), 451 naming the org's region, 404 "No CDRs…" for empty windows, 401 on expired access
 * tokens, and injectable faults (5xx bursts, 504, 423, hangs). Records are built from the real ones in
 * test/fixtures/shared/webex/. Time comes from a Clock, so tests run hours of API time in milliseconds.
 *
 * The integration's authorization as Webex does it: GET /v1/authorize checks the client id, the
 * registered redirect URIs (an unregistered one gets an error page, never a redirect) and the scopes
 * the integration has (else a redirect with error=invalid_scope), then consents at once (or declines,
 * `consent: 'deny'`) and redirects with a single-use code and the state; the authorization_code grant
 * on /v1/access_token refuses a wrong client or secret (401 invalid_client), an unknown, expired, reused
 * or other client's code, and a redirect_uri other than the one the code was issued for (400
 * invalid_grant). Every token carries the scopes it was granted: the CDR endpoints answer 403 without
 * spark-admin:calling_cdr_read, GET /v1/people/me (the authorizing user) 403 without spark:people_read.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { shared } from '../helpers/fixtures';
import type { Clock } from '../../src/webex/clock';

const MIN = 60_000;
const H = 60 * MIN;

/**
 * Time that moves only when someone sleeps: `sleep(ms)` jumps forward almost at once. It first lets
 * a couple of real milliseconds pass, so requests already sent over loopback arrive at the simulator
 * at the virtual time they were sent (as they would in real time), not after another sleeper's jump.
 */
export class VirtualClock implements Clock {
  /**
   * Whether every request a client booked at the current virtual time has reached the server. Time
   * jumps only then: a request booked at t and still on its way when another sleeper jumps to t + 61 s
   * would reach the server "late", which no real clock can do (and the strict simulator answers 429).
   */
  settled: () => boolean = () => true;

  constructor(public t: number, private readonly settleMs = 3) {}
  now(): number {
    return this.t;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    const target = this.t + Math.max(0, ms);
    await new Promise((r) => setTimeout(r, this.settleMs));
    // bounded: a booked request that was never sent (aborted) must not stop the clock for good
    for (const until = Date.now() + 3000; !this.settled() && Date.now() < until;) await new Promise((r) => setTimeout(r, 2));
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    this.t = Math.max(this.t, target);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface SimRecord {
  raw: Record<string, unknown>;
  id: string;
  /** When Webex wrote it (cdr_stream filters on this). */
  insertedAt: number;
  /** Its Report time (cdr_feed filters on this). */
  reportAt: number;
}

export interface Fault {
  /** Which requests: an endpoint, 'token', 'identity' (people/me), or the CDR endpoints (default). */
  on?: 'cdr_stream' | 'cdr_feed' | 'token' | 'identity' | 'cdr';
  /** Only initial requests, or only next-page requests. */
  kind?: 'initial' | 'page';
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Hold the request open until the server closes (a timeout). */
  hang?: boolean;
  /** How many matching requests get this answer (default 1). */
  times?: number;
  /** Let this many matching requests through first. */
  after?: number;
}

export interface SimUser {
  id: string;
  displayName: string;
  email: string;
}

/** One consent given at /v1/authorize, and what became of its code. */
export interface SimAuthorization {
  /** Names the token chain: every token issued from this code (and its refreshes) carries it. */
  id: string;
  code: string;
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state: string | null;
  expiresAt: number;
  /** Tokens issued for it (the code grant succeeded). */
  refreshToken?: string;
  accessToken?: string;
  exchanged: boolean;
}

export const CDR_SCOPE = 'spark-admin:calling_cdr_read';
export const PEOPLE_SCOPE = 'spark:people_read';
const SCOPE_403 = 'The server understood the request, but refused to fulfill it because the access token is missing required scopes or the user is missing required roles or licenses.';

export interface RequestLog {
  at: number;
  region: string;
  method: string;
  path: string;
  /** Path and query exactly as requested. */
  url: string;
  query: Record<string, string>;
  status: number;
  kind: 'initial' | 'page' | 'token' | 'authorize' | 'identity';
  items: number;
  /** Which authorization the bearer token descends from ('seed' for issued ones), when it was valid. */
  grant?: string;
}

export interface SimOptions {
  clock: Clock;
  regions?: string[];
  /** Where the org's data lives; requests to another region get 451. */
  orgRegion?: string;
  /** Link header style: RFC 8288, or the doubled brackets of the docs' example. */
  linkStyle?: 'rfc' | 'doc';
  enforceRateLimit?: boolean;
  accessTtlS?: number;
  refreshTtlS?: number;
  rotateRefreshTokens?: boolean;
  clientId?: string;
  clientSecret?: string;
  /** cdr_stream serves a record this long after it was written. */
  streamDelayMs?: number;
  /** How far back cdr_feed accepts a start (the docs say 30 days in one place, 48 h in another). */
  feedRetentionMs?: number;
  /** Redirect URIs registered with the integration (exact match, as Webex checks them). */
  redirectUris?: string[];
  /** Scopes the integration was created with. */
  scopes?: string[];
  /** What the user at the consent page does. */
  consent?: 'auto' | 'deny';
  /** Lifetime of an authorization code (Webex does not document it; OAuth advises at most 10 minutes). */
  codeTtlS?: number;
  /** The user who consents. */
  user?: SimUser;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function fixtureTemplates(): Array<Record<string, unknown>> {
  const lab = JSON.parse(shared('webex', 'real_webexone2026-lab_cdr_feed_2026-09-24.json')).items[0];
  const rsi = JSON.parse(shared('webex', 'real_rsi-git_webhook-relay_cdr_2025-08-15.json')).body.items[0];
  const doc = JSON.parse(shared('webex', 'official-doc-example_cdr_200.json')).items[0];
  return [lab, rsi, doc];
}

export class WebexApiSim {
  readonly clock: Clock;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly orgId = 'Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9zaW0';
  records: SimRecord[] = [];
  log: RequestLog[] = [];
  faults: Fault[] = [];
  /** Rate-limit 429s the simulator itself issued (a correct client causes none). */
  rateViolations = 0;
  refreshGrants = 0;
  /** Every access and refresh token issued, to check that none is stored where it must not be. */
  issuedTokens: string[] = [];
  /** The refresh token of each grant, in order. */
  presentedRefreshTokens: string[] = [];
  /** Real milliseconds the token endpoint takes to answer (a refresh in flight while Node-RED stops). */
  tokenDelayMs = 0;
  /** Held-open requests whose client went away (aborted or timed out). */
  hungClosed = 0;
  /** CDR requests (initial and page) that have arrived, counted as they arrive. */
  cdrArrivals = 0;
  /** Next-page requests refused because their URL was not one the simulator issued (a correct client causes none). */
  unknownLinks = 0;
  /** Path and query of every next-page link issued, exactly as sent in the Link header. */
  private issuedLinks = new Set<string>();
  /** Redirect URIs registered with the integration; add the editor's once its port is known. */
  redirectUris: string[];
  integrationScopes: string[];
  consent: 'auto' | 'deny';
  user: SimUser;
  /** Every consent given, in order. */
  authorizations: SimAuthorization[] = [];
  /** authorization_code grants answered 200. */
  codeGrants = 0;
  private servers = new Map<string, http.Server>();
  private urls = new Map<string, string>();
  private access = new Map<string, { expiresAt: number; scopes: string[]; grant: string }>();
  private refresh = new Map<string, { expiresAt: number; revoked: boolean; scopes: string[]; grant: string }>();
  private lastInitial = -Infinity;
  private pageTimes: number[] = [];
  private hung: http.ServerResponse[] = [];
  private seq = 0;

  constructor(readonly opts: SimOptions) {
    this.clock = opts.clock;
    this.clientId = opts.clientId ?? 'C0ffee-client-id';
    this.clientSecret = opts.clientSecret ?? 'sekrit-client-secret';
    this.redirectUris = [...(opts.redirectUris ?? [])];
    this.integrationScopes = opts.scopes ?? ['spark:kms', CDR_SCOPE, PEOPLE_SCOPE];
    this.consent = opts.consent ?? 'auto';
    this.user = opts.user ?? { id: 'Y2lzY29zcGFyazovL3VzL1BFT1BMRS9zaW0tYWRtaW4', displayName: 'Sim Admin', email: 'sim.admin@example.com' };
  }

  async start(): Promise<this> {
    for (const region of this.opts.regions ?? ['us']) {
      const server = http.createServer((req, res) => this.handle(region, req, res));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      this.servers.set(region, server);
      this.urls.set(region, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.hung = [];
    await Promise.all([...this.servers.values()].map((s) => new Promise<void>((r) => {
      s.closeAllConnections?.();
      s.close(() => r());
    })));
  }

  url(region = (this.opts.regions ?? ['us'])[0]): string {
    return this.urls.get(region)!;
  }

  get tokenUrl(): string {
    return `${this.url()}/v1/access_token`;
  }

  get authorizeUrl(): string {
    return `${this.url()}/v1/authorize`;
  }

  /** A refresh token as an admin's browser authorization would give. */
  issueRefreshToken(ttlS = this.opts.refreshTtlS ?? 7775999, scopes = [CDR_SCOPE], grant = 'seed'): string {
    const rt = `RT-${randomBytes(12).toString('hex')}`;
    this.refresh.set(rt, { expiresAt: this.clock.now() + ttlS * 1000, revoked: false, scopes, grant });
    this.issuedTokens.push(rt);
    return rt;
  }

  issueAccessToken(ttlS = this.opts.accessTtlS ?? 1209599, scopes = [CDR_SCOPE], grant = 'seed'): string {
    const at = `AT-${randomBytes(12).toString('hex')}`;
    this.access.set(at, { expiresAt: this.clock.now() + ttlS * 1000, scopes, grant });
    this.issuedTokens.push(at);
    return at;
  }

  /** Which authorization a token descends from ('seed' for issued ones), if it was issued here. */
  grantOf(token: string): string | undefined {
    return this.access.get(token)?.grant ?? this.refresh.get(token)?.grant;
  }

  revokeRefreshToken(rt: string): void {
    const r = this.refresh.get(rt);
    if (r) r.revoked = true;
  }

  expireAccessTokens(): void {
    for (const v of this.access.values()) v.expiresAt = 0;
  }

  /**
   * Adds `n` records whose report times are spread evenly over [from, to). Each is written
   * `writeDelayMs` after its report time; `late(i)` may return a longer delay for some.
   */
  generate(n: number, from: number, to: number, opts: { writeDelayMs?: number; late?: (i: number) => number | null } = {}): SimRecord[] {
    const templates = fixtureTemplates();
    const out: SimRecord[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.seq++;
      const reportAt = Math.floor(from + ((to - from) * i) / n);
      const late = opts.late?.(k) ?? null;
      const insertedAt = reportAt + (late ?? opts.writeDelayMs ?? 20_000);
      const raw: Record<string, unknown> = { ...templates[k % templates.length] };
      const id = `${hex(k, 8)}-5e1f-3${hex(k >> 8, 3)}-9${hex(k, 3)}-${hex(k * 2654435761, 12)}`;
      const duration = k % 97;
      const set = (key: string, value: unknown) => {
        const actual = Object.keys(raw).find((x) => x.toLowerCase() === key.toLowerCase()) ?? key;
        raw[actual] = value;
      };
      set('Report ID', id);
      set('Report time', new Date(reportAt).toISOString());
      set('Start time', new Date(reportAt - duration * 1000 - 5000).toISOString());
      set('Release time', new Date(reportAt).toISOString());
      set('Duration', duration);
      set('Correlation ID', `corr-${hex(k >> 1, 8)}`);
      const rec = { raw, id, insertedAt, reportAt };
      this.records.push(rec);
      out.push(rec);
    }
    return out;
  }

  inject(f: Fault): void {
    this.faults.push({ times: 1, ...f });
  }

  private takeFault(on: string, kind: RequestLog['kind']): Fault | null {
    for (const f of this.faults) {
      const target = f.on ?? 'cdr';
      const onOk = target === on || (target === 'cdr' && on !== 'token' && on !== 'identity');
      const kindOk = !f.kind || f.kind === kind;
      if (onOk && kindOk && (f.times ?? 1) > 0) {
        if ((f.after ?? 0) > 0) {
          f.after = (f.after ?? 0) - 1;
          continue;
        }
        f.times = (f.times ?? 1) - 1;
        this.faults = this.faults.filter((x) => (x.times ?? 1) > 0);
        return f;
      }
    }
    return null;
  }

  private handle(region: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      const query = Object.fromEntries(u.searchParams.entries());
      const entry: RequestLog = { at: this.clock.now(), region, method: req.method ?? '', path: u.pathname, url: req.url ?? '', query, status: 0, kind: 'initial', items: 0 };
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        entry.status = status;
        this.log.push(entry);
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        res.writeHead(status, { 'content-type': 'application/json', trackingid: `SIM_${this.log.length}`, ...headers });
        res.end(text);
      };
      if (u.pathname === '/v1/authorize' && req.method === 'GET') {
        entry.kind = 'authorize';
        return this.authorize(u.searchParams, res, entry);
      }
      if (u.pathname === '/v1/people/me' && req.method === 'GET') {
        entry.kind = 'identity';
        const tok = this.bearer(req, entry);
        if (!tok) return send(401, { message: 'The request requires a valid access token set in the Authorization request header.', trackingId: 'SIM' });
        if (!tok.scopes.includes(PEOPLE_SCOPE)) return send(403, { message: SCOPE_403, trackingId: 'SIM' });
        const fault = this.takeFault('identity', 'identity');
        if (fault) return send(fault.status ?? 500, fault.body ?? { message: `simulated ${fault.status ?? 500}`, trackingId: 'SIM' }, fault.headers);
        return send(200, {
          id: this.user.id, emails: [this.user.email], phoneNumbers: [], displayName: this.user.displayName, nickName: this.user.displayName.split(' ')[0],
          orgId: this.orgId, created: '2024-01-15T09:00:00.000Z', type: 'person',
        });
      }
      if (u.pathname === '/v1/access_token' && req.method === 'POST') {
        entry.kind = 'token';
        const answer = () => this.token(Buffer.concat(chunks).toString('utf8'), send, res, entry);
        if (this.tokenDelayMs > 0) return void setTimeout(answer, this.tokenDelayMs);
        return answer();
      }
      const m = /^\/v1\/(cdr_stream|cdr_feed)$/.exec(u.pathname);
      if (!m || req.method !== 'GET') return send(404, { message: 'The requested resource could not be found.', trackingId: 'SIM' });
      const endpoint = m[1] as 'cdr_stream' | 'cdr_feed';
      this.cdrArrivals++;
      entry.kind = query.startTimeForNextFetch ? 'page' : 'initial';
      if (entry.kind === 'page' && !this.issuedLinks.has(req.url ?? '')) {
        // a rebuilt or edited cursor link (another max, other encoding, reordered parameters)
        this.unknownLinks++;
        const text = 'The pagination link is invalid: follow the Link header as given';
        return send(400, { message: text, errors: [{ description: text }], trackingId: 'SIM' });
      }
      const fault = this.takeFault(endpoint, entry.kind);
      if (fault) {
        if (fault.hang) {
          entry.status = -1;
          this.log.push(entry);
          this.hung.push(res);
          res.on('close', () => this.hungClosed++);
          return;
        }
        return send(fault.status ?? 500, fault.body ?? { message: `simulated ${fault.status ?? 500}`, trackingId: 'SIM' }, fault.headers);
      }
      // auth
      const tok = this.bearer(req, entry);
      if (!tok) return send(401, { message: 'The request requires a valid access token set in the Authorization request header.', trackingId: 'SIM' });
      if (!tok.scopes.includes(CDR_SCOPE)) return send(403, { message: SCOPE_403, trackingId: 'SIM' });
      // region
      const home = this.opts.orgRegion ?? region;
      if (home !== region) {
        return send(451, { message: `The requested data is located in a different region. Request should go to URL: "${this.url(home)}"`, errors: [{ description: `Request should go to URL: "${this.url(home)}"` }], trackingId: 'SIM' });
      }
      // rate limit
      if (this.opts.enforceRateLimit !== false) {
        const now = this.clock.now();
        if (entry.kind === 'initial') {
          if (now - this.lastInitial < MIN) {
            this.rateViolations++;
            return send(429, { message: 'Request rate exceeds threshold', trackingId: 'SIM' }, { 'retry-after': String(Math.ceil((this.lastInitial + MIN - now) / 1000)) });
          }
          this.lastInitial = now;
        } else {
          this.pageTimes = this.pageTimes.filter((t) => t > now - MIN);
          if (this.pageTimes.length >= 10) {
            this.rateViolations++;
            return send(429, { message: 'Request rate exceeds threshold', trackingId: 'SIM' }, { 'retry-after': String(Math.ceil((this.pageTimes[0] + MIN - now) / 1000)) });
          }
          this.pageTimes.push(now);
        }
      }
      const bad = this.checkWindow(endpoint, query);
      if (bad) return send(400, { message: bad, errors: [{ description: bad }], trackingId: 'SIM' });
      const start = Date.parse(query.startTime);
      const end = Date.parse(query.endTime);
      const max = Math.min(5000, Math.max(500, Number(query.max ?? 5000) || 5000));
      const now = this.clock.now();
      const delay = this.opts.streamDelayMs ?? 30_000;
      const t = (r: SimRecord) => (endpoint === 'cdr_stream' ? r.insertedAt : r.reportAt);
      const matching = this.records
        .filter((r) => t(r) >= start && t(r) < end && (endpoint === 'cdr_stream' ? r.insertedAt + delay <= now : r.insertedAt <= now))
        .sort((a, b) => t(a) - t(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      let rest = matching;
      if (query.startTimeForNextFetch) {
        const after = Date.parse(query.startTimeForNextFetch);
        const afterId = query.afterId ?? '';
        rest = matching.filter((r) => t(r) > after || (t(r) === after && r.id > afterId));
      }
      if (rest.length === 0 && entry.kind === 'initial') return send(404, { message: 'No CDRs for requested time range and filters', errors: [{ description: 'No CDRs for requested time range and filters' }], trackingId: 'SIM' });
      const page = rest.slice(0, max);
      entry.items = page.length;
      const headers: Record<string, string> = {};
      if (rest.length > max) {
        const last = page[page.length - 1];
        // written as the docs' example shows it: times with literal ':' (a client that re-encodes them
        // to %3A sends a link the server did not issue)
        const enc = (v: string) => encodeURIComponent(v).replace(/%3A/gi, ':');
        const p = Object.entries({
          endTime: query.endTime, startTime: query.startTime, startTimeForNextFetch: new Date(t(last)).toISOString(),
          afterId: last.id, totalCount: String(matching.length), max: String(max), orgId: this.orgId,
        }).map(([k, v]) => `${k}=${enc(v)}`).join('&');
        const pathAndQuery = `/v1/${endpoint}?${p}`;
        this.issuedLinks.add(pathAndQuery);
        const next = `${this.url(region)}${pathAndQuery}`;
        headers.link = this.opts.linkStyle === 'doc' ? `<<${next}>;rel="next">` : `<${next}>; rel="next"`;
      }
      send(200, { items: page.map((r) => r.raw) }, headers);
    });
  }

  private checkWindow(endpoint: 'cdr_stream' | 'cdr_feed', q: Record<string, string>): string | null {
    if (!q.startTime || !q.endTime) return 'startTime and endTime are required';
    if (!ISO.test(q.startTime) || !ISO.test(q.endTime)) return 'startTime and endTime must be YYYY-MM-DDTHH:MM:SS.mmmZ';
    const start = Date.parse(q.startTime);
    const end = Date.parse(q.endTime);
    const now = this.clock.now();
    if (end <= start) return 'endTime must be later than startTime';
    if (endpoint === 'cdr_stream') {
      if (start < now - 12 * H) return 'startTime must be within the last 12 hours';
      if (end > now - MIN) return 'endTime must be at least 1 minute before the current time';
      if (end - start > 2 * H) return 'the time range must be at most 2 hours';
    } else {
      const keep = this.opts.feedRetentionMs ?? 30 * 24 * H;
      if (start < now - keep) return `startTime must be within the last ${keep >= 24 * H ? `${keep / (24 * H)} days` : `${keep / H} hours`}`;
      if (end > now - 5 * MIN) return 'endTime must be at least 5 minutes before the current time';
      if (end - start > 12 * H) return 'the time range must be at most 12 hours';
    }
    return null;
  }

  private token(body: string, send: (s: number, b: unknown, h?: Record<string, string>) => void, res: http.ServerResponse, entry: RequestLog): void {
    const fault = this.takeFault('token', 'token');
    if (fault) {
      if (fault.hang) {
        entry.status = -1;
        this.log.push(entry);
        this.hung.push(res);
        return;
      }
      return send(fault.status ?? 500, fault.body ?? { message: 'simulated' }, fault.headers);
    }
    const form = new URLSearchParams(body);
    const grantType = form.get('grant_type');
    if (grantType !== 'refresh_token' && grantType !== 'authorization_code') return send(400, { error: 'unsupported_grant_type' });
    if (form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) return send(401, { error: 'invalid_client', message: 'client authentication failed' });
    if (grantType === 'authorization_code') return this.codeGrant(form, send);
    this.refreshGrants++;
    const rt = form.get('refresh_token') ?? '';
    this.presentedRefreshTokens.push(rt);
    const known = this.refresh.get(rt);
    if (!known || known.revoked || known.expiresAt <= this.clock.now()) {
      return send(400, { error: 'invalid_grant', error_description: 'The refresh token provided is expired, revoked, malformed, or invalid.' });
    }
    let out = rt;
    if (this.opts.rotateRefreshTokens !== false) {
      known.revoked = true;
      out = this.issueRefreshToken(undefined, known.scopes, known.grant);
    }
    send(200, this.tokenAnswer(out, known.scopes, known.grant));
  }

  private tokenAnswer(rt: string, scopes: string[], grant: string): Record<string, unknown> {
    const ttl = this.opts.accessTtlS ?? 1209599;
    return {
      access_token: this.issueAccessToken(ttl, scopes, grant), expires_in: ttl, refresh_token: rt,
      refresh_token_expires_in: Math.round((this.refresh.get(rt)!.expiresAt - this.clock.now()) / 1000), token_type: 'Bearer', scope: scopes.join(' '),
    };
  }

  /** The access token of a request, while it is valid (and logs which authorization it descends from). */
  private bearer(req: http.IncomingMessage, entry: RequestLog): { scopes: string[]; grant: string } | null {
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const known = auth ? this.access.get(auth) : undefined;
    if (!known || known.expiresAt <= this.clock.now()) return null;
    entry.grant = known.grant;
    return known;
  }

  /** The consent page: checks as Webex does, then consents (or declines) at once and redirects. */
  private authorize(q: URLSearchParams, res: http.ServerResponse, entry: RequestLog): void {
    const page = (status: number, text: string) => {
      entry.status = status;
      this.log.push(entry);
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!DOCTYPE html><title>Webex</title><h1>Something went wrong</h1><p>${text}</p>`);
    };
    const redirectUri = q.get('redirect_uri') ?? '';
    if (q.get('client_id') !== this.clientId) return page(400, 'invalid_client: the client ID is not known');
    if (!this.redirectUris.includes(redirectUri)) return page(400, 'redirect_uri mismatch: the redirect URI is not registered with the integration');
    const state = q.get('state');
    const back = (params: Record<string, string>) => {
      const target = new URL(redirectUri);
      for (const [k, v] of Object.entries({ ...params, ...(state !== null ? { state } : {}) })) target.searchParams.set(k, v);
      entry.status = 302;
      this.log.push(entry);
      res.writeHead(302, { location: target.href });
      res.end();
    };
    if (q.get('response_type') !== 'code') return back({ error: 'unsupported_response_type', error_description: 'Only response_type=code is supported.' });
    const scopes = (q.get('scope') ?? '').split(' ').filter(Boolean);
    if (scopes.length === 0 || scopes.some((x) => !this.integrationScopes.includes(x))) return back({ error: 'invalid_scope', error_description: 'The requested scope is invalid.' });
    if (this.consent === 'deny') return back({ error: 'access_denied', error_description: 'The user denied the request.' });
    const code = `CODE-${randomBytes(16).toString('hex')}`;
    this.authorizations.push({
      id: `auth-${this.authorizations.length + 1}`, code, clientId: this.clientId, redirectUri, scopes, state,
      expiresAt: this.clock.now() + (this.opts.codeTtlS ?? 300) * 1000, exchanged: false,
    });
    back({ code });
  }

  /** grant_type=authorization_code: a known, fresh, unused code of this client, with its redirect_uri. */
  private codeGrant(form: URLSearchParams, send: (s: number, b: unknown) => void): void {
    const a = this.authorizations.find((x) => x.code === form.get('code'));
    const refuse = (text: string) => send(400, { error: 'invalid_grant', error_description: text });
    if (!a || a.clientId !== form.get('client_id')) return refuse('The authorization code is invalid.');
    if (a.exchanged) return refuse('The authorization code has already been used.');
    if (a.expiresAt <= this.clock.now()) return refuse('The authorization code has expired.');
    if (form.get('redirect_uri') !== a.redirectUri) return refuse('The redirect_uri does not match the one used in the authorization request.');
    a.exchanged = true;
    this.codeGrants++;
    a.refreshToken = this.issueRefreshToken(undefined, a.scopes, a.id);
    const answer = this.tokenAnswer(a.refreshToken, a.scopes, a.id);
    a.accessToken = answer.access_token as string;
    send(200, answer);
  }
}

function hex(n: number, width: number): string {
  return (Math.abs(Math.trunc(n)) % 16 ** width).toString(16).padStart(width, '0');
}

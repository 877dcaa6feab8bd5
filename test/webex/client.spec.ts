import { strict as assert } from 'node:assert';
import { CdrClient, RateLimiter, parseNextLink, baseUrlFor, clampMax, regionFromBody, smallerMax, WebexApiError, DEFAULT_LIMITS } from '../../src/webex/client';
import { TokenManager } from '../../src/webex/oauth';
import { request } from 'undici';
import { createAgent } from '../../src/common/http';
import { shared } from '../helpers/fixtures';
import { WebexApiSim, VirtualClock } from '../simulators/webex-api';

const H = 3_600_000;

describe('webex/client', () => {
  describe('pure parts', () => {
    it('parses the docs\' doubled-bracket Link and the RFC 8288 forms', () => {
      const feed = shared('webex', 'official-doc-example_link-header_cdr_feed.txt').trim();
      assert.equal(parseNextLink(feed), 'https://analytics-calling.webexapis.com/v1/cdr_feed?endTime=2025-08-15T10:00:00.000Z&startTime=2025-08-15T08:00:00.000Z&startTimeForNextFetch=2025-08-15T09:30:00.000Z&totalCount=20000&max=5000&orgId=zzzzzzzz-yyyy-zzzz-xxxx-yyyyyyyyyyyy');
      assert.match(parseNextLink(shared('webex', 'official-doc-example_link-header_cdr_stream.txt'))!, /\/v1\/cdr_stream\?/);
      assert.equal(parseNextLink('<https://a/x?b=1>; rel="next"'), 'https://a/x?b=1');
      assert.equal(parseNextLink('<https://a/p>; rel="prev", <https://a/n>; rel=next'), 'https://a/n');
      assert.equal(parseNextLink('<https://a/n>;rel="last next"'), 'https://a/n');
      assert.equal(parseNextLink(['<https://a/p>; rel="prev"', '<https://a/n>; rel="next"']), 'https://a/n');
      assert.equal(parseNextLink('<https://a/p>; rel="prev"'), null);
      assert.equal(parseNextLink(''), null);
      assert.equal(parseNextLink(undefined), null);
    });

    it('maps regions to hosts, clamps max, halves max on 504', () => {
      assert.equal(baseUrlFor('auto'), 'https://analytics-calling.webexapis.com');
      assert.equal(baseUrlFor('eu'), 'https://analytics-calling-eu.webexapis.com');
      assert.equal(baseUrlFor('gov'), 'https://analytics-calling-gov.webexapis.com');
      assert.equal(baseUrlFor('custom', 'http://127.0.0.1:9/'), 'http://127.0.0.1:9');
      assert.throws(() => baseUrlFor('custom', 'ftp://x'));
      assert.deepEqual([clampMax(1), clampMax(800), clampMax(99999), clampMax('x')], [500, 800, 5000, 5000]);
      assert.match(smallerMax('https://h/v1/cdr_feed?max=5000&x=1'), /max=2500/);
      assert.match(smallerMax('https://h/v1/cdr_feed?max=600'), /max=500/);
    });

    it('takes the region from a 451 body only when it is a Webex analytics host', () => {
      const body = JSON.stringify({ message: 'Request should go to URL: "https://analytics-calling-eu.webexapis.com"' });
      assert.equal(regionFromBody(body, 'https://analytics-calling.webexapis.com'), 'https://analytics-calling-eu.webexapis.com');
      assert.equal(regionFromBody('{"message":"go to https://evil.example.com/v1"}', 'https://analytics-calling.webexapis.com'), null);
      assert.equal(regionFromBody('{"message":"go to \\"http://127.0.0.1:9\\""}', 'http://127.0.0.1:8', '127.0.0.1'), 'http://127.0.0.1:9');
    });

    it('rate limiter: initial requests 61 s apart, at most 10 pages per minute, and Retry-After pauses', async () => {
      const clock = new VirtualClock(0);
      const lim = new RateLimiter(clock, DEFAULT_LIMITS);
      const at: number[] = [];
      for (let i = 0; i < 3; i++) {
        await lim.take('initial');
        at.push(clock.now());
      }
      assert.deepEqual(at, [0, 61_000, 122_000]);
      const pages: number[] = [];
      for (let i = 0; i < 25; i++) {
        await lim.take('page');
        pages.push(clock.now());
      }
      for (let i = 10; i < pages.length; i++) assert.ok(pages[i] - pages[i - 10] >= 60_000, `page ${i}`);
      lim.pause(clock.now() + 30_000);
      const before = clock.now();
      await lim.take('initial');
      assert.ok(clock.now() >= before + 30_000);
    });

    it('rate limiter: a page request does not queue behind an initial one waiting for its minute', async () => {
      const clock = new VirtualClock(0);
      const lim = new RateLimiter(clock, DEFAULT_LIMITS);
      assert.equal(await lim.take('initial'), 0);
      const initial = lim.take('initial');
      const page = lim.take('page');
      assert.equal(await page, 0, 'the page budget was free');
      assert.equal(await initial, 61_000);
      assert.equal(lim.booked, 3);
    });

    it('rate limiter: the next initial request waits its minute from the latest restored one, and for states still being read', async () => {
      const clock = new VirtualClock(100_000);
      const lim = new RateLimiter(clock, DEFAULT_LIMITS);
      lim.restoreInitial(90_000);
      lim.restoreInitial(70_000); // another node's older time changes nothing
      let read!: () => void;
      lim.whileRestoring(new Promise<void>((r) => (read = r)));
      const first = lim.take('initial');
      // a page does not wait for the restore
      assert.equal(await lim.take('page'), 100_000);
      setTimeout(() => {
        lim.restoreInitial(95_000); // a node whose state was read later saved a newer time
        read();
      }, 20);
      assert.equal(await first, 156_000);
      const future = new RateLimiter(clock, DEFAULT_LIMITS);
      const t = clock.now();
      future.restoreInitial(t + 3_600_000); // a clock set back: counts as now
      assert.equal(await future.take('initial'), t + 61_000);
    });
  });

  describe('against the simulator', () => {
    let clock: VirtualClock;
    let sim: WebexApiSim;
    const agent = createAgent({ timeoutMs: 300 });
    const now0 = Date.parse('2026-11-23T12:00:00.000Z');
    beforeEach(async () => {
      clock = new VirtualClock(now0);
    });
    afterEach(() => sim.stop());
    after(() => agent.close());

    async function setup(opts: Partial<ConstructorParameters<typeof WebexApiSim>[0]> = {}, clientOpts: Partial<ConstructorParameters<typeof CdrClient>[0]> = {}) {
      sim = await new WebexApiSim({ clock, ...opts }).start();
      const tokens = new TokenManager({ clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: sim.issueRefreshToken(), tokenUrl: sim.tokenUrl, dispatcher: agent, clock });
      const client = new CdrClient({ baseUrl: sim.url(), trustHostname: '127.0.0.1', tokens, limiter: new RateLimiter(clock), dispatcher: agent, clock, retryBaseMs: 1000, retries: 3, ...clientOpts });
      return { tokens, client };
    }
    const q = (over = {}) => ({ endpoint: 'cdr_stream' as const, start: now0 - 3 * H, end: now0 - 1 * H, max: 500, ...over });

    it('follows Link rel="next" verbatim through every page (doc-style header), within the rate limit', async () => {
      const { client } = await setup({ linkStyle: 'doc' });
      sim.generate(1234, now0 - 3 * H, now0 - 1 * H - 60_000);
      const ids: string[] = [];
      let pages = 0;
      for await (const p of client.pages(q())) {
        pages++;
        ids.push(...p.items.map((r) => r['Report ID'] as string));
      }
      assert.equal(pages, 3);
      assert.equal(ids.length, 1234);
      assert.equal(new Set(ids).size, 1234);
      const pageReqs = sim.log.filter((l) => l.kind === 'page');
      assert.equal(pageReqs.length, 2);
      assert.equal(pageReqs[0].query.orgId, sim.orgId, 'the server-built URL, not rebuilt');
      assert.equal(sim.rateViolations, 0);
    });

    it('404 "No CDRs…" is an empty page; another 404 is an error', async () => {
      const { client } = await setup();
      const p = await client.firstPage(q());
      assert.equal(p.empty, true);
      assert.equal(p.next, null);
      sim.inject({ status: 404, body: JSON.stringify({ message: 'The requested resource could not be found.' }) });
      clock.advance(61_000);
      await assert.rejects(client.firstPage(q()), (e: unknown) => e instanceof WebexApiError && e.kind === 'notFound');
    });

    it('429 and 423 wait Retry-After without using the failure budget', async () => {
      const { client } = await setup({}, { retries: 0 });
      sim.generate(10, now0 - 3 * H, now0 - 2 * H);
      sim.inject({ status: 429, headers: { 'retry-after': '7' }, times: 3 });
      sim.inject({ status: 423, headers: { 'retry-after': '2' } });
      const t0 = clock.now();
      const p = await client.firstPage(q());
      assert.equal(p.items.length, 10);
      assert.ok(clock.now() - t0 >= 23_000, 'waited the Retry-After values');
      assert.equal(p.apiCalls, 5);
    });

    it('401 on an expired access token refreshes once and retries', async () => {
      const { client, tokens } = await setup();
      sim.generate(3, now0 - 3 * H, now0 - 2 * H);
      await tokens.getToken();
      sim.expireAccessTokens();
      const p = await client.firstPage(q());
      assert.equal(p.items.length, 3);
      assert.equal(sim.refreshGrants, 2);
    });

    it('403 is a configuration error naming the scope and the admin role', async () => {
      const { client } = await setup();
      sim.inject({ status: 403, body: JSON.stringify({ message: 'Forbidden' }) });
      await assert.rejects(client.firstPage(q()), (e: unknown) => e instanceof WebexApiError && e.fatal && /spark-admin:calling_cdr_read/.test(e.message) && /Detailed Call History API access/.test(e.message));
    });

    it('451 switches to the region in the body and retries once', async () => {
      const changed: string[] = [];
      sim = await new WebexApiSim({ clock, regions: ['us', 'eu'], orgRegion: 'eu' }).start();
      const tokens = new TokenManager({ clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: sim.issueRefreshToken(), tokenUrl: sim.tokenUrl, dispatcher: agent, clock });
      const client = new CdrClient({ baseUrl: sim.url('us'), trustHostname: '127.0.0.1', tokens, limiter: new RateLimiter(clock), dispatcher: agent, clock, onRegionChange: (u) => changed.push(u) });
      sim.generate(700, now0 - 3 * H, now0 - 2 * H);
      let n = 0;
      for await (const p of client.pages(q())) n += p.items.length;
      assert.equal(n, 700);
      assert.deepEqual(changed, [sim.url('eu')]);
      assert.equal(client.baseUrl, sim.url('eu'));
      assert.deepEqual(sim.log.filter((l) => l.kind !== 'token').map((l) => [l.region, l.status]), [['us', 451], ['eu', 200], ['eu', 200]]);
    });

    it('5xx bursts back off and retry; too many fail', async () => {
      const { client } = await setup({}, { retries: 3 });
      sim.generate(5, now0 - 3 * H, now0 - 2 * H);
      sim.inject({ status: 502, times: 2 });
      assert.equal((await client.firstPage(q())).items.length, 5);
      sim.inject({ status: 500, times: 4 });
      clock.advance(61_000);
      await assert.rejects(client.firstPage(q()), (e: unknown) => e instanceof WebexApiError && e.kind === 'server' && e.status === 500);
    });

    it('504 retries with a smaller max', async () => {
      const { client } = await setup();
      sim.generate(5, now0 - 3 * H, now0 - 2 * H);
      sim.inject({ status: 504, times: 2 });
      await client.firstPage(q({ max: 5000 }));
      assert.deepEqual(sim.log.filter((l) => l.kind === 'initial').map((l) => l.query.max), ['5000', '2500', '1250']);
    });

    it('a 504 on a page link repeats that link byte for byte (no smaller max, no re-encoding) and the window completes', async () => {
      const { client } = await setup();
      sim.generate(1500, now0 - 3 * H, now0 - 2 * H);
      sim.inject({ status: 504, kind: 'page' });
      const ids: string[] = [];
      for await (const p of client.pages(q({ max: 1000 }))) ids.push(...p.items.map((r) => r['Report ID'] as string));
      assert.equal(new Set(ids).size, 1500);
      const pages = sim.log.filter((l) => l.kind === 'page');
      assert.deepEqual(pages.map((l) => l.status), [504, 200]);
      assert.equal(pages[0].url, pages[1].url, 'the same link again');
      assert.match(pages[1].url, /startTimeForNextFetch=\d{4}-\d\d-\d\dT\d\d:\d\d:/, 'as issued: times with a literal ":"');
      assert.equal(pages[1].query.max, '1000');
      assert.equal(sim.unknownLinks, 0);
    });

    it('the simulator refuses (400) a next-page link it did not issue: re-encoded, another max, reordered', async () => {
      const { client, tokens } = await setup();
      sim.generate(700, now0 - 3 * H, now0 - 2 * H);
      const next = (await client.firstPage(q({ max: 500 }))).next!;
      const get = async (url: string) => {
        const res = await request(url, { headers: { authorization: `Bearer ${await tokens.getToken()}` }, dispatcher: agent });
        await res.body.text();
        return res.statusCode;
      };
      const rebuilt = new URL(next);
      rebuilt.searchParams.set('max', '500'); // same value, but URLSearchParams writes ':' as %3A
      const other = new URL(next);
      other.searchParams.set('max', '600');
      const [first, ...rest] = new URL(next).search.slice(1).split('&');
      const reordered = `${next.slice(0, next.indexOf('?'))}?${[...rest, first].join('&')}`;
      assert.deepEqual([await get(rebuilt.toString()), await get(other.toString()), await get(reordered)], [400, 400, 400]);
      assert.equal(sim.unknownLinks, 3);
      assert.equal(await get(next), 200);
      assert.equal(await get(next), 200, 'an issued link may be fetched again (a retry, a resume)');
    });

    it('a hanging request times out and is retried', async () => {
      const { client } = await setup();
      sim.generate(5, now0 - 3 * H, now0 - 2 * H);
      sim.inject({ hang: true });
      assert.equal((await client.firstPage(q())).items.length, 5);
    });

    it('400 on a window the API refuses is not retried', async () => {
      const { client } = await setup();
      await assert.rejects(client.firstPage(q({ start: now0 - 13 * H, end: now0 - 12.5 * H })), (e: unknown) => e instanceof WebexApiError && e.kind === 'request' && e.status === 400 && /12 hours/.test(e.message));
      assert.equal(sim.log.filter((l) => l.kind === 'initial').length, 1);
    });

    it('aborts an in-flight request', async () => {
      const { client } = await setup();
      sim.inject({ hang: true });
      const ac = new AbortController();
      const p = client.firstPage(q(), ac.signal);
      setTimeout(() => ac.abort(new Error('closing')), 50);
      await assert.rejects(p, /closing|abort/i);
    });
  });
});

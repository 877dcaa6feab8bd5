import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { createAgent, parseRetryAfter, withRetry, HttpStatusError, isTransientNetworkError, backoffDelay, bodyText } from '../../src/common/http';

describe('common/http', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-11-23T10:00:00Z');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter('Mon, 23 Nov 2026 10:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter(undefined, now), null);
  });

  it('backs off exponentially within the cap', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1000, random: () => 1 };
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffDelay(3, { ...policy, random: () => 0 }), 400);
  });

  it('retries only what is retryable, honours Retry-After, and gives up after the budget', async () => {
    let calls = 0;
    const waits: number[] = [];
    const result = await withRetry(async () => {
      calls++;
      if (calls < 3) throw new HttpStatusError(503, 'busy', { 'retry-after': '0' });
      return 'ok';
    }, { retries: 5, baseDelayMs: 1, maxDelayMs: 2, retryable: (e) => e instanceof HttpStatusError && e.status >= 500, onRetry: (_e, _a, d) => waits.push(d) });
    assert.equal(result, 'ok');
    assert.equal(calls, 3);
    assert.equal(waits.length, 2);

    calls = 0;
    await assert.rejects(withRetry(async () => {
      calls++;
      throw new HttpStatusError(401, 'no');
    }, { retries: 5, baseDelayMs: 1, maxDelayMs: 1, retryable: (e) => (e as HttpStatusError).status >= 500 }), /no/);
    assert.equal(calls, 1, '401 is not retried');

    calls = 0;
    await assert.rejects(withRetry(async () => {
      calls++;
      throw new HttpStatusError(500, 'down');
    }, { retries: 2, baseDelayMs: 1, maxDelayMs: 1, retryable: () => true }), /down/);
    assert.equal(calls, 3);
  });

  it('classifies a reset connection as transient, through a real socket', async () => {
    const server = http.createServer((req) => req.socket.destroy()).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const agent = createAgent({ timeoutMs: 2000 });
    try {
      const err = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { dispatcher: agent }).then(() => null, (e) => e);
      assert.ok(err, 'request failed');
      assert.equal(isTransientNetworkError(err), true, String(err?.code));
      assert.equal(isTransientNetworkError(new Error('plain')), false);
    } finally {
      await agent.close();
      server.close();
    }
  });

  it('limits how much of a body it reads', async () => {
    const server = http.createServer((_req, res) => res.end('x'.repeat(5000))).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const agent = createAgent();
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      assert.equal((await bodyText(await request(url, { dispatcher: agent }))).length, 5000);
      await assert.rejects(bodyText(await request(url, { dispatcher: agent }), 100), /over 100 bytes/);
    } finally {
      await agent.close();
      server.close();
    }
  });
});

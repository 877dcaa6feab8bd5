import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { captureRawBodies, capturedBody } from '../../src/nodes/lib/raw-capture';

describe('nodes/lib/raw-capture', () => {
  it('reads POST bodies to its paths before the server’s own listener, and gives the server back on close', async () => {
    const seen: Array<{ path: string; raw: string | null; consumed: boolean }> = [];
    const server = http.createServer((req, res) => {
      const raw = capturedBody(req);
      seen.push({ path: req.url ?? '', raw: Buffer.isBuffer(raw) ? raw.toString() : null, consumed: (req as any)._body === true });
      // a body parser that honours _body, like body-parser
      if ((req as any)._body) return res.end('ok');
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c)).on('end', () => res.end(`parsed ${Buffer.concat(chunks).length}`));
    });
    const original = server.listeners('request')[0];
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const settings = { httpNodeRoot: '/red' };
    const a = captureRawBodies(server, settings, ['/ccfs/cb'], 1024)!;
    const b = captureRawBodies(server, settings, ['/other'], 1024)!;
    const post = async (p: string, body: string) => (await request(`${base}${p}`, { method: 'POST', body })).body.text();
    assert.equal(await post('/red/ccfs/cb?x=1', '{"a": 1}'), 'ok');
    assert.equal(await post('/red/elsewhere', 'abc'), 'parsed 3');
    assert.equal(await post('/red/other/', 'xyz'), 'ok');
    assert.deepEqual(seen.map((s) => [s.raw, s.consumed]), [['{"a": 1}', true], [null, false], ['xyz', true]]);
    a.close();
    assert.notEqual(server.listeners('request')[0], original, 'still needed for /other');
    b.close();
    assert.deepEqual(server.listeners('request'), [original], 'the server has its own listener back');
    assert.equal(await post('/red/ccfs/cb', 'abcd'), 'parsed 4');
    assert.equal(captureRawBodies(undefined, settings, ['/x'], 1), null);
    await new Promise((r) => server.close(r));
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import * as net from 'node:net';
import supertest from 'supertest';
import cmsCdrIn = require('../../src/nodes/cms-cdr-in');
import { helper, capture, collect, settle, useTempUserDir } from '../helpers/red';
import { mividasPosts, shared, own, envelope, sortKeys } from '../helpers/fixtures';

const XML = 'text/xml';


describe(`cms-cdr-in node, POSTs answered by its Express route`, () => {
  const { dir } = useTempUserDir('each');
  const { module: node, red } = capture(cmsCdrIn as any);
  const settings = (more: Record<string, unknown> = {}) => helper.settings({ userDir: dir(), ...more });
  beforeEach(() => settings());

  const flow = (props: Record<string, unknown> = {}): any[] => [
    { id: 'tab', type: 'tab' },
    { id: 'in', z: 'tab', type: 'cms-cdr-in', path: '/cdr', ...props, wires: [['out'], ['warn']] },
    { id: 'out', z: 'tab', type: 'helper' },
    { id: 'warn', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];
  const target = () => red.RED.httpNode;
  const post = (body: string | Buffer, url = '/cdr', type = XML) => supertest(target()).post(url).set('content-type', type).send(body);

  it('emits one message per record, in order, and answers 200 with an empty body', async () => {
    await helper.load(node, flow());
    const got = collect(helper.getNode('out'), 2);
    const res = await post(mividasPosts()[8]);
    assert.equal(res.status, 200);
    assert.equal(res.text ?? '', '');
    const [legEnd, callEnd] = await got;
    assert.equal(legEnd.topic, 'callLegEnd');
    assert.equal(callEnd.topic, 'callEnd');
    assert.equal(legEnd.payload.type, 'callLegEnd');
    assert.equal(legEnd.payload.recordIndex, 3553);
    assert.equal(legEnd.payload.session, '5552fc55-8d82-4963-8f99-d5a0be6e2f92');
    assert.equal(legEnd.payload.callLeg.durationSeconds, 3912);
    assert.equal(legEnd.payload.id, 'aa7c3c54-07d6-4af3-b853-a25fe676e554');
    assert.equal(legEnd.cms.receiver, 'in');
    assert.equal(legEnd.cms.recordIndex, 3553);
    assert.equal(legEnd.cms.objectType, 'callLeg');
    assert.match(legEnd.cms.remoteAddress, /127\.0\.0\.1|::1/);
  });

  it('works with a hand-written flow that sets only the path, and answers GET for probes', async () => {
    await helper.load(node, [{ id: 'in', type: 'cms-cdr-in', path: '/hand', wires: [['out']] }, { id: 'out', type: 'helper' }] as any[]);
    const got = collect(helper.getNode('out'), 1);
    assert.equal((await supertest(red.RED.httpNode).get('/hand')).status, 200);
    assert.equal((await post(mividasPosts()[0], '/hand')).status, 200);
    assert.equal((await got)[0].topic, 'callStart');
  });

  it('reads the body whatever the content type says', async () => {
    await helper.load(node, flow());
    const got = collect(helper.getNode('out'), 3);
    assert.equal((await post(mividasPosts()[0], '/cdr', 'application/json')).status, 200);
    assert.equal((await post(mividasPosts()[1], '/cdr', 'application/x-www-form-urlencoded')).status, 200);
    assert.equal((await post(Buffer.from(mividasPosts()[2]), '/cdr', 'application/octet-stream')).status, 200);
    const sent = mividasPosts().slice(0, 3).map((p) => Number(/recordIndex="(\d+)"/.exec(p)![1]));
    assert.deepEqual((await got).map((m) => m.payload.recordIndex), sent);
  });

  it('answers a resend with 200 and emits nothing new', async () => {
    await helper.load(node, flow());
    const out = helper.getNode('out');
    const seen: any[] = [];
    out.on('input', (m: any) => seen.push(m));
    for (const body of mividasPosts().slice(0, 9)) assert.equal((await post(body)).status, 200);
    for (const body of mividasPosts().slice(0, 9)) assert.equal((await post(body)).status, 200);
    await settle();
    assert.equal(seen.length, 10, 'nine posts, one with two records');
    assert.equal(new Set(seen.map((m) => m.payload.recordIndex)).size, 10);
  });

  for (const [name, body, reason] of [
    ['malformed XML (two documents in one body)', shared('cms', 'real-derived_mividas_2020-01-07_two-documents-one-body_MALFORMED.txt'), /malformed XML/],
    ['the doc example as printed (typographic quotes)', shared('cms', 'official-doc-example_cms-2.0-cdr-guide', 'post01_as-printed.txt'), /malformed XML/],
    ['a root that is not <records>', '<?xml version="1.0"?><cdrs><record type="callStart"/></cdrs>', /expected <records>/],
    ['an entity declaration', '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><records session="s"/>', /DTD or entity/],
    ['a truncated document', mividasPosts()[3].slice(0, 200), /malformed XML/],
    ['an empty body', '', /empty body/],
  ] as Array<[string, string, RegExp]>) {
    it(`refuses ${name} with 400, emits nothing and reports to Catch; the status stays short`, async () => {
      await helper.load(node, flow());
      const seen: any[] = [];
      helper.getNode('out').on('input', (m: any) => seen.push(m));
      const caught = collect(helper.getNode('caught'), 1);
      const res = await post(body);
      assert.equal(res.status, 400);
      assert.match(res.text, reason);
      const [err] = await caught;
      assert.match(err.error.message, reason);
      assert.equal(err.error.source.id, 'in');
      await settle();
      assert.equal(seen.length, 0);
      // a few human words and the time; the parser's detail is in the log and Catch only
      const last = ((helper.getNode('in') as any).status.getCalls() as any[]).map((c) => c.args[0].text).pop();
      assert.match(last, /^400: (malformed XML|not a <records> document|DTD refused|empty body) · \d\d:\d\d$/);
    });
  }

  it('refuses a body over the limit with 413 (declared or streamed) and takes the next POST', async () => {
    await helper.load(node, flow({ maxBodyMb: 1 }));
    const caught = collect(helper.getNode('caught'), 1);
    const big = `<records session="s">${'<record type="x"/>'.repeat(100_000)}</records>`;
    const res = await post(big);
    assert.equal(res.status, 413);
    assert.match((await caught)[0].error.message, /limit/);
    const got = collect(helper.getNode('out'), 1);
    assert.equal((await post(mividasPosts()[0])).status, 200);
    await got;
  });

  it('a client that sends its whole body before reading the answer still gets the 413, and an endless upload is cut', async () => {
    await helper.load(node, flow({ maxBodyMb: 0.0625 }));
    const server = http.createServer(red.RED.httpNode).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as any).port;
    // a raw client: writes the request and all of its body, waiting for each chunk to be taken, and only
    // then reads what came back (what a simple client, or Node's fetch on a slow link, does)
    const sendAll = (total: number, chunked: boolean) => new Promise<string>((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      sock.on('data', (d) => { got += d.toString('latin1'); });
      sock.on('error', (e: NodeJS.ErrnoException) => resolve(`${got}|${e.code}`));
      sock.on('close', () => resolve(got));
      sock.once('connect', async () => {
        sock.write(`POST /cdr HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`}\r\n\r\n`);
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        for (let sent = 0; sent < total && !sock.destroyed; sent += chunk.length) {
          const data = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
          if (!sock.write(data)) await new Promise((r) => sock.once('drain', r));
        }
        if (!sock.destroyed) sock.end(chunked ? '0\r\n\r\n' : '');
      });
    });
    try {
      for (const chunked of [false, true]) {
        const answer = await sendAll(100 * 1024, chunked);
        assert.match(answer, /^HTTP\/1.1 413 /, `${chunked ? 'streamed' : 'declared'}: ${answer.slice(0, 80)}`);
      }
      // twice the limit and more is not read for ever: the connection is closed
      const t0 = Date.now();
      const endless = await sendAll(64 * 1024 * 1024, true);
      assert.match(endless, /^HTTP\/1.1 413 /);
      assert.ok(Date.now() - t0 < 15_000);
    } finally {
      server.close();
    }
  });

  it('refuses 50 MB with the default 10 MB limit', async function () {
    await helper.load(node, flow());
    const res = await post(Buffer.alloc(50 * 1024 * 1024, 0x20));
    assert.equal(res.status, 413);
  });

  it('in xmltodict mode gives the records exactly as cdr-receiver-db stored them', async () => {
    await helper.load(node, flow({ values: 'xmltodict' }));
    const got = collect(helper.getNode('out'), 6);
    assert.equal((await post(own('cms', 'cdr-receiver-db-call.xml'))).status, 200);
    const payloads = (await got).map((m) => m.payload).reverse();
    assert.deepEqual(sortKeys({ records: payloads }), JSON.parse(shared('cms', 'real_ciscocms-cdr-receiver-db_readme_api_records_page1.json')));
    assert.equal((await got)[0].cms.session, '2f9a7c1e-0b7d-4a58-9b0e-6d1f5c3a8e21');
  });

  it('in per-POST mode sends one message holding the array', async () => {
    await helper.load(node, flow({ output: 'post' }));
    const got = collect(helper.getNode('out'), 1);
    assert.equal((await post(mividasPosts()[8])).status, 200);
    const [msg] = await got;
    assert.equal(msg.topic, 'records');
    assert.deepEqual(msg.payload.map((r: any) => r.type), ['callLegEnd', 'callEnd']);
    assert.equal(msg.cms.count, 2);
  });

  it('reports lost records, a call bridge restart and a gap on the second output', async () => {
    await helper.load(node, flow());
    const warns = collect(helper.getNode('warn'), 3);
    const rec = (i: number, extra = '') => `<record type="callStart" time="2026-01-01T00:00:00Z" recordIndex="${i}" correlatorIndex="${i}"${extra}><call id="c${i}"/></record>`;
    const bridge = '158ba4f7-70eb-4a35-982c-71d4f1674277';
    assert.equal((await post(envelope(rec(1) + rec(2), 'aaaaaaaa-0000-4000-8000-000000000001', bridge))).status, 200);
    assert.equal((await post(envelope(rec(3, ' numPreceedingRecordsMissing="40"'), 'aaaaaaaa-0000-4000-8000-000000000001', bridge))).status, 200);
    assert.equal((await post(envelope(rec(9), 'aaaaaaaa-0000-4000-8000-000000000001', bridge))).status, 200);
    assert.equal((await post(envelope(rec(1), 'bbbbbbbb-0000-4000-8000-000000000002', bridge))).status, 200);
    const [missing, gap, restart] = await warns;
    assert.equal(missing.topic, 'recordsMissing');
    assert.equal(missing.payload.count, 40);
    assert.equal(gap.topic, 'sequenceGap');
    assert.deepEqual([gap.payload.expected, gap.payload.received], [4, 9]);
    assert.equal(restart.topic, 'sessionChanged');
    assert.equal(restart.payload.sender, bridge);
  });

  describe('sender authentication', () => {
    it('requires the token in the path or the query and never passes it on', async () => {
      await helper.load(node, flow(), { in: { token: 's3cr3t' } });
      const got = collect(helper.getNode('out'), 2);
      assert.equal((await post(mividasPosts()[0])).status, 401);
      assert.equal((await post(mividasPosts()[0], '/cdr/wrong')).status, 401);
      assert.equal((await post(mividasPosts()[0], '/cdr/s3cr3t')).status, 200);
      assert.equal((await post(mividasPosts()[1], '/cdr?token=s3cr3t&system_id=acano1')).status, 200);
      const [, second] = await got;
      assert.deepEqual(second.cms.query, { system_id: 'acano1' });
      assert.ok(!JSON.stringify(await got).includes('s3cr3t'));
    });

    it('checks HTTP Basic credentials', async () => {
      await helper.load(node, flow(), { in: { user: 'cms', password: 'pw' } });
      const denied = await post(mividasPosts()[0]);
      assert.equal(denied.status, 401);
      assert.match(denied.headers['www-authenticate'], /Basic/);
      assert.equal((await post(mividasPosts()[0]).auth('cms', 'nope')).status, 401);
      assert.equal((await post(mividasPosts()[0]).auth('cms', 'pw')).status, 200);
    });

    it('refuses senders outside the allow-list with 403', async () => {
      await helper.load(node, flow({ allowFrom: '10.0.0.0/8, 192.0.2.7' }));
      assert.equal((await post(mividasPosts()[0])).status, 403);
      await helper.unload();
      await helper.load(node, flow({ allowFrom: '10.0.0.0/8, 127.0.0.0/8, ::1' }));
      assert.equal((await post(mividasPosts()[0])).status, 200);
    });
  });

  describe('routes and lifecycle', () => {
    it('removes its route on close', async () => {
      await helper.load(node, flow());
      assert.equal((await post(mividasPosts()[0])).status, 200);
      const app = red.RED.httpNode;
      await helper.unload();
      assert.equal((await supertest(app).post('/cdr').send(mividasPosts()[0])).status, 404);
      assert.equal((await post(mividasPosts()[0])).status, 404);
    });

    it('answers 503 to a POST still arriving while the node stops, and emits nothing into the stopped flow', async () => {
      await helper.load(node, flow());
      const seen: any[] = [];
      helper.getNode('out').on('input', (m: any) => seen.push(m));
      const server = http.createServer(red.RED.httpNode).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const port = (server.address() as any).port;
      try {
        const body = Buffer.from(mividasPosts()[0]);
        const answer = new Promise<number>((resolve, reject) => {
          const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/cdr', headers: { 'content-type': 'text/xml', 'content-length': body.length } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.write(body.subarray(0, 40)); // half a body: the node is reading it when it stops
          setTimeout(async () => {
            await helper.unload();
            req.end(body.subarray(40));
          }, 100);
        });
        assert.equal(await answer, 503);
        await settle();
        assert.deepEqual(seen, []);
      } finally {
        server.close();
      }
    });

    it('refuses a second node on the same path with a clear error and keeps the first working', async () => {
      await helper.load(node, [
        { id: 'tab', type: 'tab' },
        { id: 'a', z: 'tab', type: 'cms-cdr-in', path: '/cdr', wires: [['out']] },
        { id: 'b', z: 'tab', type: 'cms-cdr-in', path: '/cdr/', wires: [['out']] },
        { id: 'out', z: 'tab', type: 'helper' },
      ] as any[]);
      const b = helper.getNode('b');
      await settle();
      const errors = (b.error as any).getCalls().map((c: any) => String(c.args[0]));
      // the other node is named by its type and id when it has no name (by its name when it has one: lib/receiver.spec.ts)
      assert.ok(errors.some((e: string) => /already used by cms-cdr-in a: /.test(e)), errors.join('\n'));
      const got = collect(helper.getNode('out'), 1);
      assert.equal((await post(mividasPosts()[0])).status, 200);
      assert.equal((await got)[0].cms.receiver, 'a');
    });

    it('keeps its duplicate window across a restart', async () => {
      await helper.load(node, flow());
      let got = collect(helper.getNode('out'), 1);
      assert.equal((await post(mividasPosts()[0])).status, 200);
      await got;
      await helper.unload(); // close flushes the window to the userDir file
      assert.ok(fs.readdirSync(path.join(dir(), 'cdrflow-state')).some((f) => f.startsWith('cms-cdr-in-in')));
      await helper.load(node, flow());
      const seen: any[] = [];
      helper.getNode('out').on('input', (m: any) => seen.push(m));
      assert.equal((await post(mividasPosts()[0])).status, 200, 'the resend is acknowledged');
      got = collect(helper.getNode('out'), 1);
      assert.equal((await post(mividasPosts()[1])).status, 200);
      await got;
      assert.deepEqual(seen.map((m) => m.topic), ['callLegStart'], 'only the new record');
    });

    it('a resend after a kill right after the 200 is still dropped: the answer waited for the disk', async () => {
      await helper.load(node, flow());
      const got = collect(helper.getNode('out'), 1);
      assert.equal((await post(mividasPosts()[0])).status, 200);
      await got;
      // the disk as it is the instant the 200 went out (what a SIGKILL would leave)
      const frozen = fs.mkdtempSync(path.join(path.dirname(dir()), 'cdrflow-killed-'));
      fs.cpSync(path.join(dir(), 'cdrflow-state'), path.join(frozen, 'cdrflow-state'), { recursive: true });
      try {
        await helper.unload();
        await helper.stopServer();
        settings({ userDir: frozen });
        await helper.startServer();
        await helper.load(node, flow());
        const seen: any[] = [];
        helper.getNode('out').on('input', (m: any) => seen.push(m));
        assert.equal((await post(mividasPosts()[0])).status, 200, 'the resend is acknowledged');
        await settle(50);
        assert.deepEqual(seen, [], 'and not emitted again');
      } finally {
        await helper.unload(); // its close writes to the copy: remove the copy after it
        fs.rmSync(frozen, { recursive: true, force: true });
      }
    });

    for (const [what, content] of [
      ['an unreadable state file', '{"version":2,"own'],
      ['a state of the wrong shape', '{"version":1}'],
      ['a state with a wrong type inside', '{"version":2,"owners":[["ip",[["s",[[9,1]]]]]],"senders":[]}'],
      ['an empty state file', ''],
    ]) {
      it(`${what}: starts, warns naming both files, moves it aside, and takes CDRs`, async () => {
        const stateDir = path.join(dir(), 'cdrflow-state');
        fs.mkdirSync(stateDir, { recursive: true });
        const file = path.join(stateDir, 'cms-cdr-in-in.json');
        fs.writeFileSync(file, content);
        await helper.load(node, flow());
        const got = collect(helper.getNode('out'), 1);
        assert.equal((await post(mividasPosts()[0])).status, 200);
        await got;
        const warnings = (helper.getNode('in').warn as any).getCalls().map((c: any) => String(c.args[0]));
        const moved = fs.readdirSync(stateDir).find((f) => f.startsWith('cms-cdr-in-in.json.unreadable-'));
        assert.ok(moved, fs.readdirSync(stateDir).join(', '));
        assert.equal(fs.readFileSync(path.join(stateDir, moved), 'utf8'), content, 'kept as it was');
        assert.ok(warnings.some((w: string) => w.includes(file) && w.includes(moved)), warnings.join('\n'));
      });
    }

    it('without any sender check it says so: a warning at deploy and "open" in its status', async () => {
      await helper.load(node, flow());
      const n = helper.getNode('in');
      const warnings = (n.warn as any).getCalls().map((c: any) => String(c.args[0]));
      assert.ok(warnings.some((w: string) => /no sender check/.test(w)), warnings.join('\n'));
      const statuses = (n.status as any).getCalls().map((c: any) => c.args[0].text);
      assert.ok(statuses.some((t: string) => /open/.test(t)), statuses.join(', '));
      await helper.unload();
      await helper.load(node, flow(), { in: { token: 't0k' } });
      const quiet = (helper.getNode('in').warn as any).getCalls().map((c: any) => String(c.args[0]));
      assert.ok(!quiet.some((w: string) => /no sender check/.test(w)));
    });

    it('runs httpNodeMiddleware from settings before its handler', async () => {
      settings({ httpNodeMiddleware: (req: any, res: any, next: any) => (req.headers['x-deny'] ? res.status(418).end() : next()) });
      await helper.load(node, flow());
      const viaRoute = (body: string) => supertest(red.RED.httpNode).post('/cdr').set('content-type', XML).send(body);
      assert.equal((await viaRoute(mividasPosts()[0]).set('x-deny', '1')).status, 418);
      assert.equal((await viaRoute(mividasPosts()[0])).status, 200);
    });

    it('adds CORS headers when httpNodeCors is set', async () => {
      settings({ httpNodeCors: { origin: '*' } });
      await helper.load(node, flow());
      const res = await post(mividasPosts()[0]).set('origin', 'http://example.test');
      assert.equal(res.headers['access-control-allow-origin'], '*');
    });
  });
});

describe(`cms-cdr-in node under random input, answered by its Express route`, () => {
  const { module: node, red } = capture(cmsCdrIn as any);
  const { dir } = useTempUserDir('each');
  beforeEach(() => helper.settings({ userDir: dir() }));

  it('answers every mutated post with 200 or 400, and 200 only when every record was sent on', async () => {
    await helper.load(node, [{ id: 'in', type: 'cms-cdr-in', path: '/fuzz', wires: [['out']] }, { id: 'out', type: 'helper' }] as any[]);
    const emitted: string[] = [];
    helper.getNode('out').on('input', (m: any) => emitted.push(`${m.cms.session}:${m.cms.recordIndex}`));
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const posts = mividasPosts().slice(0, 9);
    const codes = new Map<number, number>();
    for (let i = 0; i < 150; i++) {
      const buf = Buffer.from(posts[i % posts.length]);
      for (let e = 0; e < 3; e++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
      const before = emitted.length;
      const res = await supertest(red.RED.httpNode).post('/fuzz').set('content-type', 'text/xml').send(buf);
      codes.set(res.status, (codes.get(res.status) ?? 0) + 1);
      assert.ok(res.status === 200 || res.status === 400, `status ${res.status}`);
      if (res.status === 400) {
        await settle(5);
        assert.equal(emitted.length, before, 'a refused post emits nothing');
      }
    }
    assert.ok((codes.get(400) ?? 0) > 0, JSON.stringify([...codes]));
  });
});

describe('cms-cdr-in behind a parser that already read the body', () => {
  const { module: node, red } = capture(cmsCdrIn as any);
  const { dir } = useTempUserDir('each');

  it('answers 415 at once instead of waiting for a body that will never come, and still takes XML', async () => {
    // what the editor's JSON parser does to JSON posts when httpAdminRoot and httpNodeRoot are both "/"
    helper.settings({ userDir: dir(), httpNodeMiddleware: require('express').json() });
    await helper.load(node, [{ id: 'in', type: 'cms-cdr-in', path: '/cdr', wires: [['out']] }, { id: 'out', type: 'helper' }] as any[]);
    const res = await supertest(red.RED.httpNode).post('/cdr').set('content-type', 'application/json').send('{"records":[]}').timeout(5000);
    assert.equal(res.status, 415);
    assert.match(res.text, /application\/json body is not a CDR document/);
    const got = collect(helper.getNode('out'), 1);
    assert.equal((await supertest(red.RED.httpNode).post('/cdr').set('content-type', 'text/xml').send(mividasPosts()[0])).status, 200);
    await got;
  });
});

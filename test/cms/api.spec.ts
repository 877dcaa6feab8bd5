import { strict as assert } from 'node:assert';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { CmsApiClient, CmsApiError, normaliseBaseUrl, baseUrlList, failureDetail } from '../../src/cms/api';
import { CmsApiSimulator } from '../simulators/cms-api';

const CALL = '6af88404-91a4-441a-b46e-b4c455c9959d';

describe('cms/api', () => {
  let sim: CmsApiSimulator;
  const clients: CmsApiClient[] = [];
  const client = (extra: Partial<ConstructorParameters<typeof CmsApiClient>[0]> = {}) => {
    const c = new CmsApiClient({ baseUrls: sim.bridges.map((b) => b.url), user: 'apiuser', password: 'apipass', retryBaseMs: 5, retryMaxMs: 20, timeoutMs: 2000, ...extra });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    sim = await CmsApiSimulator.start(['cb1', 'cb2', 'cb3']);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await sim.close();
  });

  it('sets and clears a message with the form fields CMS expects', async () => {
    sim.addCall('cb1', CALL);
    const c = client();
    const r = await c.setCallMessage(CALL, { text: 'External Participant(s) in Meeting', position: 'bottom', duration: 'permanent' });
    assert.equal(r.status, 200);
    assert.equal(r.baseUrl, sim.bridge('cb1').url);
    await c.clearCallMessage(CALL);
    assert.deepEqual(sim.puts().map((p) => p.form), [
      [['messageText', 'External Participant(s) in Meeting'], ['messagePosition', 'bottom'], ['messageDuration', 'permanent']],
      [['messageText', ''], ['messagePosition', 'bottom'], ['messageDuration', '0']],
    ]);
    assert.equal(sim.puts()[0].contentType, 'application/x-www-form-urlencoded');
    assert.equal(sim.puts()[0].path, `/api/v1/calls/${CALL}`);
    assert.equal(sim.bridge('cb1').calls.get(CALL)!.messageText, '');
  });

  it('finds the bridge that owns the call in a cluster and remembers it', async () => {
    sim.addCall('cb3', CALL);
    const c = client();
    const first = await c.setCallMessage(CALL, { text: 'hello', duration: 30, position: 'top' });
    assert.equal(first.baseUrl, sim.bridge('cb3').url);
    assert.equal(first.attempts, 3);
    assert.deepEqual(sim.log.map((r) => [r.bridge, r.status]), [['cb1', 404], ['cb2', 404], ['cb3', 200]]);
    assert.equal(c.ownerOf(CALL), sim.bridge('cb3').url);
    const second = await c.clearCallMessage(CALL);
    assert.equal(second.attempts, 1, 'goes straight to the owner');
    assert.equal(sim.log.length, 4);
    // the call moved (or ended there): the remembered owner says 404, the others are asked again
    sim.bridge('cb3').calls.delete(CALL);
    sim.addCall('cb2', CALL);
    const third = await c.setCallMessage(CALL, { text: 'again' });
    assert.equal(third.baseUrl, sim.bridge('cb2').url);
    assert.deepEqual(sim.log.slice(4).map((r) => [r.bridge, r.status]), [['cb3', 404], ['cb1', 404], ['cb2', 200]]);
  });

  it('says clearly when no bridge has the call', async () => {
    const c = client();
    await assert.rejects(c.setCallMessage(CALL, { text: 'x' }), (err: CmsApiError) => {
      assert.equal(err.code, 'notFound');
      assert.match(err.message, /not found on any of 3 call bridges/);
      return true;
    });
    assert.equal(sim.log.length, 3, '404 is never retried');
  });

  it('reports a wrong password as an auth error, without retrying', async () => {
    sim.addCall('cb1', CALL);
    const c = client({ password: 'wrong' });
    await assert.rejects(c.setCallMessage(CALL, { text: 'x' }), (err: CmsApiError) => err.code === 'auth' && err.status === 401 && /user and password/.test(err.message));
    assert.equal(sim.log.length, 3, 'one try per bridge');
    assert.ok(!sim.log.some((r) => r.status !== 401));
  });

  it('reports 403 and a refused parameter without retrying', async () => {
    sim.addCall('cb1', CALL);
    sim.bridge('cb1').faults.push(403);
    const c = client({ baseUrls: [sim.bridge('cb1').url] });
    await assert.rejects(c.setCallMessage(CALL, { text: 'x' }), (err: CmsApiError) => err.code === 'forbidden');
    await assert.rejects(c.setCallMessage(CALL, { text: 'x', position: 'sideways' as any }), (err: CmsApiError) =>
      err.code === 'badRequest' && err.status === 400 && err.failure === 'invalidParameterValue');
    assert.equal(sim.log.length, 2);
  });

  it('retries 5xx and connection resets, then succeeds', async () => {
    sim.addCall('cb1', CALL);
    sim.bridge('cb1').faults.push(503, 'reset', 502);
    const retries: number[] = [];
    const c = client({ baseUrls: [sim.bridge('cb1').url], retries: 3, onRetry: (_e, attempt) => retries.push(attempt) });
    const r = await c.setCallMessage(CALL, { text: 'x' });
    assert.equal(r.attempts, 4);
    assert.deepEqual(retries, [1, 2, 3]);
    assert.equal(sim.puts().length, 1);
  });

  it('gives up after the retries with a server error', async () => {
    sim.addCall('cb1', CALL);
    sim.bridge('cb1').faults.push(500, 500, 500);
    const c = client({ baseUrls: [sim.bridge('cb1').url], retries: 2 });
    await assert.rejects(c.setCallMessage(CALL, { text: 'x' }), (err: CmsApiError) => err.code === 'server' && err.status === 500);
  });

  it('times out on a bridge that does not answer and retries', async () => {
    sim.addCall('cb1', CALL);
    sim.bridge('cb1').faults.push('hang');
    const c = client({ baseUrls: [sim.bridge('cb1').url], timeoutMs: 200, retries: 1 });
    const r = await c.setCallMessage(CALL, { text: 'x' });
    assert.equal(r.attempts, 2);
    sim.bridge('cb1').faults.push('hang', 'hang');
    await assert.rejects(c.setCallMessage(CALL, { text: 'y' }), (err: CmsApiError) => err.code === 'network' && /TIMEOUT/.test(err.message));
  });

  it('refuses connection errors clearly', async () => {
    const c = client({ baseUrls: ['http://127.0.0.1:1'], retries: 0 });
    await assert.rejects(c.setCallMessage(CALL, { text: 'x' }), (err: CmsApiError) => err.code === 'network' && /ECONNREFUSED/.test(err.message));
  });

  it('verifies TLS certificates by default', async () => {
    // a self-signed certificate made for this test: the client must refuse it unless its CA is given
    const { key, cert } = selfSigned();
    const server = https.createServer({ key, cert }, (_req, res) => res.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `https://localhost:${(server.address() as AddressInfo).port}`;
      const strict = client({ baseUrls: [url], retries: 0 });
      await assert.rejects(strict.setCallMessage(CALL, { text: 'x' }), (err: CmsApiError) => err.code === 'tls' && /CA/.test(err.message));
      const trusting = client({ baseUrls: [url], retries: 0, ca: cert });
      assert.equal((await trusting.setCallMessage(CALL, { text: 'x' })).status, 200);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('normalises base URLs and reads failure details', () => {
    assert.equal(normaliseBaseUrl('https://cms1.example.com:8443/'), 'https://cms1.example.com:8443');
    assert.equal(normaliseBaseUrl('https://cms1.example.com:8443/api/v1/'), 'https://cms1.example.com:8443');
    assert.throws(() => normaliseBaseUrl('ftp://x'), /http/);
    assert.throws(() => normaliseBaseUrl('https://u:p@x'), /credentials/);
    assert.deepEqual(baseUrlList('https://a:8443, https://b:8443\nhttps://c'), ['https://a:8443', 'https://b:8443', 'https://c']);
    assert.equal(failureDetail('<?xml version="1.0"?><failureDetails><callDoesNotExist /></failureDetails>'), 'callDoesNotExist');
    assert.throws(() => new CmsApiClient({ baseUrls: [], user: 'u', password: 'p' }), /no CMS/);
  });

  describe('reading the live calls', () => {
    const A = '0a0a0a0a-1111-4222-8333-00000000000a';
    const B = '0b0b0b0b-1111-4222-8333-00000000000b';
    const CORR = 'cccccccc-1111-4222-8333-00000000000c';
    const legIds = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}-0000-4000-8000-000000000000`);

    it('reads every bridge page by page, with the message on screen and each leg\'s subType', async () => {
      sim.pageMax = 3; // CMS sends fewer than asked: the total decides when the list is done
      const calls = Array.from({ length: 7 }, (_, i) => `ca11${String(i).padStart(4, '0')}-0000-4000-8000-000000000000`);
      for (const id of calls) sim.addCall('cb1', id, { name: `Room ${id.slice(4, 8)}` });
      sim.addCall('cb2', A, { name: 'Restricted & <secret>', callCorrelator: CORR, messageText: 'External Participant(s) in Meeting' });
      const legs = legIds(5, 'aaaa');
      legs.forEach((id, i) => sim.addLeg('cb2', A, id, i === 0 ? { subType: 'webApp', type: 'acano', name: 'Visitor' } : { remoteParty: `p${i}@corp.example` }));
      sim.addLeg('cb2', A, legIds(1, 'dddd')[0], { subType: 'distributionLink' });
      const read = await client({ baseUrls: sim.bridges.slice(0, 2).map((b) => b.url) }).readActiveCalls({ pageSize: 20 });
      assert.equal(read.complete, true);
      assert.deepEqual(read.failures, []);
      assert.deepEqual(read.calls.map((c) => c.id).sort(), [...calls, A].sort());
      const a = read.calls.find((c) => c.id === A)!;
      assert.equal(a.baseUrl, sim.bridge('cb2').url);
      assert.equal(a.name, 'Restricted & <secret>');
      assert.equal(a.callCorrelator, CORR);
      assert.equal(a.messageText, 'External Participant(s) in Meeting');
      assert.equal(a.legsComplete, true);
      assert.deepEqual(a.legs.map((l) => [l.id.slice(0, 8), l.subType, l.type, l.detail]), [
        ['aaaa0000', 'webApp', 'acano', true], ['aaaa0001', null, 'sip', true], ['aaaa0002', null, 'sip', true],
        ['aaaa0003', null, 'sip', true], ['aaaa0004', null, 'sip', true], ['dddd0000', 'distributionLink', 'sip', true],
      ]);
      assert.equal(a.legs[1].remoteParty, 'p1@corp.example');
      assert.equal(read.calls.find((c) => c.id === calls[0])!.messageText, '', 'no messageText element: nothing shown');
      // pages as asked: offset moves by what came, limit as asked
      assert.deepEqual(sim.log.filter((r) => r.bridge === 'cb1' && r.path === '/api/v1/calls').map((r) => r.query),
        ['offset=0&limit=20', 'offset=3&limit=20', 'offset=6&limit=20']);
      assert.deepEqual(sim.log.filter((r) => r.path === `/api/v1/calls/${A}/callLegs`).map((r) => r.query), ['offset=0&limit=20', 'offset=3&limit=20']);
      assert.ok(sim.log.every((r) => r.method === 'GET'));
      // the owner of each call is known now: a PUT goes straight to it
      sim.log.length = 0;
      const c = clients[clients.length - 1];
      assert.equal(c.ownerOf(A), sim.bridge('cb2').url);
      assert.equal((await c.clearCallMessage(A)).attempts, 1);
    });

    it('reads the details of the legs it is asked for only', async () => {
      sim.addCall('cb1', A);
      const [known, unknown] = legIds(2, 'eeee');
      sim.addLeg('cb1', A, known, { subType: 'webApp' });
      sim.addLeg('cb1', A, unknown, { subType: 'webApp' });
      const read = await client({ baseUrls: [sim.bridge('cb1').url] }).readActiveCalls({ needLegDetail: (id) => id !== known });
      assert.deepEqual(read.calls[0].legs.map((l) => [l.id, l.detail, l.subType]), [[known, false, null], [unknown, true, 'webApp']]);
      assert.deepEqual(sim.log.filter((r) => r.legId).map((r) => r.legId), [unknown]);
    });

    it('is not complete when a list moves while it is paged, and skips what ended between list and details', async () => {
      sim.pageMax = 2;
      const calls = Array.from({ length: 5 }, (_, i) => `ca11${String(i).padStart(4, '0')}-0000-4000-8000-000000000000`);
      for (const id of calls) sim.addCall('cb1', id);
      const legs = legIds(3, 'ffff');
      for (const l of legs) sim.addLeg('cb1', calls[4], l);
      sim.onRequest = (r, bridge) => {
        // the first call ends while the second page is asked for: everything after it moves up by one
        if (r.path === '/api/v1/calls' && r.query.startsWith('offset=2')) bridge.calls.delete(calls[0]);
        // a call ends between the list and its details; a leg leaves between its call's leg list and its details
        if (r.path === `/api/v1/calls/${calls[1]}`) bridge.calls.delete(calls[1]);
        if (r.legId === legs[0]) bridge.calls.get(calls[4])!.legs.delete(legs[0]);
      };
      const read = await client({ baseUrls: [sim.bridge('cb1').url] }).readActiveCalls();
      assert.equal(read.complete, false, 'a call may have been skipped by the paging');
      assert.deepEqual(read.failures, []);
      assert.ok(!read.calls.some((c) => c.id === calls[1]), 'a call that ended meanwhile is left out');
      const last = read.calls.find((c) => c.id === calls[4]);
      assert.ok(last, 'listed');
      assert.deepEqual(last.legs.map((l) => l.id), legs.slice(1));
    });

    it('reports a bridge it cannot read (401 after the password changed) and keeps what the others said', async () => {
      sim.addCall('cb1', A);
      sim.addCall('cb2', B);
      const c = client({ baseUrls: sim.bridges.slice(0, 2).map((b) => b.url), retries: 1 });
      sim.bridge('cb2').faults.push(500, 500);
      const read = await c.readActiveCalls();
      assert.equal(read.complete, false);
      assert.deepEqual(read.calls.map((x) => x.id), [A]);
      assert.deepEqual(read.failures.map((f) => [f.code, f.baseUrl]), [['server', sim.bridge('cb2').url]]);
      sim.setCredentials('apiuser', 'changed');
      const denied = await c.readActiveCalls();
      assert.deepEqual(denied.failures.map((f) => f.code), ['auth', 'auth']);
      assert.match(denied.failures[0].message, /401 Unauthorized: check the API user and password/);
      assert.deepEqual(denied.calls, []);
      assert.equal(denied.complete, false);
    });

    it('refuses an answer that is not what CMS sends', async () => {
      const server = (await import('node:http')).createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(req.url?.startsWith('/api/v1/calls?') ? '<html><body>login</body></html>' : '');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      try {
        const read = await client({ baseUrls: [`http://127.0.0.1:${(server.address() as AddressInfo).port}`] }).readActiveCalls();
        assert.deepEqual(read.failures.map((f) => f.code), ['badAnswer']);
        assert.match(read.failures[0].message, /the call list: expected <calls>, got <html>/);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });
  });

  it('refuses a call id that is not one', async () => {
    const c = client();
    await assert.rejects(c.setCallMessage('../system/x', { text: 'x' }), (err: CmsApiError) => err.code === 'config');
    assert.equal(sim.log.length, 0);
  });
});

/** A throwaway self-signed certificate for localhost, made with openssl. */
function selfSigned(): { key: string; cert: string } {
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
  const fs = require('node:fs') as typeof import('node:fs');
  const os = require('node:os') as typeof import('node:os');
  const path = require('node:path') as typeof import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cms-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'),
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
    return { key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

import { strict as assert } from 'node:assert';
import { CcfsAccount, accountProblem, memoryState, type CcfsAccountConfig, type AccountKeeper, type AccountState } from '../../src/ccfs/account';
import { RequestRegistry, type RequestRecord } from '../../src/ccfs/callback';
import { CcfsSimulator } from '../simulators/ccfs-server';

const AK = 'globalaktest';
const SK = 'test-sk-0123456789abcdef';
const good: CcfsAccountConfig = {
  baseUrl: 'https://ccfs.example.com:28443', accessKey: AK, secretKey: SK, timeZone: 'America/Sao_Paulo',
  signedHeaders: 'standard', timeoutMs: 5000, rejectUnauthorized: true,
};
const rec = (id: string): RequestRecord => ({ responseId: id, billFileName: `20260414_${id}.zip`, requestedAt: new Date().toISOString(), node: 'req', msgBody: { dataType: 'call' } });

describe('ccfs/account', () => {
  it('says why a configuration cannot work, as a code with the value to name', () => {
    assert.equal(accountProblem(good), null);
    assert.equal(accountProblem({ ...good, baseUrl: 'http://10.0.0.5:8443/prefix' }), null, 'http and a path prefix are allowed');
    for (const [change, problem] of [
      [{ baseUrl: '' }, { code: 'baseUrlMissing' }],
      [{ baseUrl: 'ccfs.example.com:28443' }, { code: 'baseUrlScheme', baseUrl: 'ccfs.example.com:28443' }],
      [{ baseUrl: 'not a url' }, { code: 'baseUrlInvalid', baseUrl: 'not a url' }],
      [{ baseUrl: 'ftp://ccfs.example.com' }, { code: 'baseUrlScheme', baseUrl: 'ftp://ccfs.example.com' }],
      [{ accessKey: '' }, { code: 'accessKeyMissing' }],
      [{ secretKey: '' }, { code: 'secretKeyMissing' }],
      [{ timeZone: 'Mars/Olympus_Mons' }, { code: 'timeZone', timeZone: 'Mars/Olympus_Mons' }],
      [{ timeZone: '' }, { code: 'timeZone', timeZone: '' }],
    ] as Array<[Partial<CcfsAccountConfig>, unknown]>) {
      assert.deepEqual(accountProblem({ ...good, ...change }), problem, JSON.stringify(change));
    }
  });

  it('remembers a request through its keeper and resolves only once the keeper has it', async () => {
    const recorded: unknown[] = [];
    let release!: () => void;
    const keeper: AccountKeeper = {
      ready: Promise.resolve({ registry: new RequestRegistry(), lockout: null }),
      record: (entry) => {
        recorded.push(entry);
        return new Promise<void>((r) => { release = r; });
      },
    };
    const account = new CcfsAccount(good, keeper);
    let done = false;
    const request = rec('a1');
    const remembering = account.remember(request).then(() => { done = true; });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(recorded, [request], 'the journal entry is the request');
    assert.equal(done, false, 'still waiting for the keeper');
    release();
    await remembering;
    assert.equal((await account.find(null, '20260415_a1.zip'))?.node, 'req');
    assert.equal(await account.find('nope', 'x.zip'), null);
  });

  it('fails the remembering when the keeper cannot record, and waits for the registry to load', async () => {
    const failing = new CcfsAccount(good, { ready: Promise.resolve({ registry: new RequestRegistry(), lockout: null }), record: () => { throw new Error('disk full'); } });
    await assert.rejects(failing.remember(rec('a1')), /disk full/);
    let load!: (r: AccountState) => void;
    const slow = new CcfsAccount(good, { ready: new Promise((r) => { load = r; }), record: () => undefined });
    const found = slow.find('b2', 'x.zip');
    load({ registry: RequestRegistry.restore(undefined, [rec('b2')]), lockout: null });
    assert.equal((await found)?.responseId, 'b2');
  });

  it('makes one client at the first use, signs with the account, and releases it on close', async () => {
    const sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, timeZone: 'UTC', autoCallback: false }).start();
    try {
      const account = new CcfsAccount({ ...good, baseUrl: sim.url, timeZone: 'UTC', retries: 0 }, memoryState());
      assert.equal(account.client(), account.client());
      const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      const r = await account.client().queryBillData({ beginTime: `${day} 00:00:00`, endTime: `${day} 01:00:00`, dataType: 'call', callBackURL: 'https://nr.example/cb' });
      assert.match(r.responseId, /^[0-9a-f]{32}$/);
      assert.equal(sim.requests[0].status, 200);
      await account.close();
      await account.close();
    } finally {
      await sim.stop();
    }
  });
});

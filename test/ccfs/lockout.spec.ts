import { strict as assert } from 'node:assert';
import { SigningLock, CcfsLockedError, fingerprintOf, sameConfiguration, checkLockout, type Lockout, type SigningConfig } from '../../src/ccfs/lockout';
import { CcfsAccount, restoreAccountState, accountSnapshot, memoryState, type CcfsAccountConfig } from '../../src/ccfs/account';
import { CcfsAuthError } from '../../src/ccfs/client';
import { StateShapeError } from '../../src/common/persist';
import { CcfsSimulator } from '../simulators/ccfs-server';

const AK = 'globalaktest';
const SK = 'test-sk-0123456789abcdef';
const salt = '00112233445566778899aabbccddeeff';
const base: SigningConfig = { baseUrl: 'https://ccfs.example.com:28443', accessKey: AK, secretKey: SK, signedHeaders: 'standard' };
const roundTrip = <T>(v: T): T => JSON.parse(JSON.stringify(v));

describe('ccfs/lockout', () => {
  it('fingerprints the configuration that signs: any change to base URL, AK, SK, header set or Host gives another, and the keys are not in it', async () => {
    const f = await fingerprintOf(base, salt);
    assert.match(f, /^[0-9a-f]{64}$/);
    assert.equal(await fingerprintOf({ ...base }, salt), f, 'the same configuration, the same fingerprint');
    assert.notEqual(await fingerprintOf(base, 'ffeeddccbbaa99887766554433221100'), f, 'salted');
    for (const change of [{ baseUrl: 'https://ccfs.example.com:28444' }, { accessKey: 'other' }, { secretKey: `${SK}x` }, { signedHeaders: 'host' as const }, { hostHeader: '10.0.0.5' }]) {
      assert.notEqual(await fingerprintOf({ ...base, ...change }, salt), f, JSON.stringify(change));
    }
    const l: Lockout = { fingerprint: f, salt, at: '2026-04-14T12:00:00.000Z', status: 401, operation: 'queryBillData' };
    assert.equal(await sameConfiguration(l, base), true);
    assert.equal(await sameConfiguration(l, { ...base, secretKey: 'fixed' }), false);
    assert.ok(!JSON.stringify(l).includes(SK) && !JSON.stringify(l).includes(AK));
  });

  it('checks a saved lock-out', () => {
    const good = { fingerprint: 'a'.repeat(64), salt, at: '2026-04-14T12:00:00.000Z', status: 403, operation: 'downloadBillFile' };
    assert.deepEqual(checkLockout(good), good);
    assert.equal(checkLockout(undefined), null);
    assert.equal(checkLockout(null), null);
    for (const bad of [{ ...good, status: 500 }, { ...good, fingerprint: 'SK' }, { ...good, at: 'yesterday' }, { ...good, salt: undefined }, 'locked']) {
      assert.throws(() => checkLockout(bad), StateShapeError, JSON.stringify(bad));
    }
  });

  describe('in front of a client, against the CC-FS simulator', () => {
    let sim: CcfsSimulator;
    const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const q = { beginTime: `${day} 00:00:00`, endTime: `${day} 01:00:00`, dataType: 'call' as const, callBackURL: 'https://nr.example/cb' };
    const config = (o: Partial<CcfsAccountConfig> = {}): CcfsAccountConfig => ({ ...base, baseUrl: sim.url, timeZone: 'UTC', timeoutMs: 5000, rejectUnauthorized: true, retries: 0, ...o });
    beforeEach(async () => {
      sim = await new CcfsSimulator({ accessKey: AK, secretKey: SK, timeZone: 'UTC', autoCallback: false }).start();
    });
    afterEach(() => sim.stop());

    it('after one 401 signs nothing more, however many requests were waiting, and keeps the lock-out once', async () => {
      const saved: unknown[] = [];
      const account = new CcfsAccount(config({ secretKey: 'wrong' }), { ready: Promise.resolve({ registry: undefined as any, lockout: null }), record: (e) => { saved.push(e); } });
      const told: Array<Lockout | null> = [];
      account.lock.onChange((l) => told.push(l));
      const results = await Promise.allSettled([1, 2, 3, 4, 5, 6].map(() => account.client().queryBillData(q)));
      assert.equal(sim.requests.length, 1, 'one request reached CC-FS');
      assert.deepEqual(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).name : 'ok')), ['CcfsAuthError', ...Array(5).fill('CcfsLockedError')]);
      const l = account.lock.lockout!;
      assert.deepEqual([l.status, l.operation], [401, 'queryBillData']);
      assert.deepEqual(saved, [{ lockout: l }], 'journaled once');
      assert.deepEqual(told, [l]);
      const later = await account.client().downloadBillFile('20260414_a.zip', '/nonexistent/a.zip').catch((e) => e);
      assert.ok(later instanceof CcfsLockedError && later.lockout === l);
      assert.equal(sim.requests.length, 1);
      assert.equal(sim.isLocked(), false);
      await account.close();
    });

    it('honours a kept lock-out before the first request when the configuration is the same, and clears it when it changed', async () => {
      const first = new CcfsAccount(config({ signedHeaders: 'host' }));
      sim.queryQueue.push({ http: 403 });
      await assert.rejects(first.client().queryBillData(q), (e: unknown) => e instanceof CcfsAuthError && e.status === 403);
      const kept = roundTrip(first.lock.lockout!);
      await first.close();
      const records: unknown[] = [];
      const keeper = (l: Lockout) => ({ ready: Promise.resolve(restoreAccountState({ version: 2, requests: [], lockout: l }, [])), record: (e: unknown) => { records.push(e); } });
      const same = new CcfsAccount(config({ signedHeaders: 'host' }), keeper(kept), { describe: (l) => `refused (${l.status})` });
      await assert.rejects(same.client().queryBillData(q), (e: unknown) => e instanceof CcfsLockedError && e.message === 'refused (403)');
      assert.equal(sim.requests.length, 1, 'nothing sent after the restart');
      assert.deepEqual(records, []);
      const changed = new CcfsAccount(config(), keeper(kept));
      assert.match((await changed.client().queryBillData(q)).responseId, /^[0-9a-f]{32}$/);
      assert.deepEqual(records, [{ lockout: null }], 'the change clears it');
      assert.equal(changed.lock.lockout, null);
      await Promise.all([same.close(), changed.close()]);
    });

    it('lets requests through while CC-FS accepts them, and locks nothing', async () => {
      const account = new CcfsAccount(config(), memoryState());
      const got = await Promise.all([1, 2, 3].map(() => account.client().queryBillData(q)));
      assert.equal(new Set(got.map((r) => r.responseId)).size, 3);
      assert.equal(account.lock.lockout, null);
      assert.deepEqual(sim.requests.map((r) => r.status), [200, 200, 200]);
      await account.close();
    });
  });

  it('the account state keeps the lock-out beside the requests, in the snapshot and the journal', () => {
    const l = { fingerprint: 'b'.repeat(64), salt, at: '2026-04-14T12:00:00.000Z', status: 401 as const, operation: 'queryBillData' };
    const request = { responseId: 'a1', billFileName: '20260414_a1.zip', requestedAt: new Date().toISOString(), node: 'req', msgBody: {} };
    const s = restoreAccountState(undefined, [request, { lockout: l }]);
    assert.deepEqual(s.lockout, l);
    assert.equal(s.registry.find('a1', 'x.zip')?.node, 'req');
    const snap = roundTrip(accountSnapshot(s));
    assert.deepEqual(restoreAccountState(snap, []).lockout, l);
    assert.equal(restoreAccountState(snap, [{ lockout: null }]).lockout, null, 'cleared by a later entry');
    assert.equal('lockout' in accountSnapshot(restoreAccountState(snap, [{ lockout: null }])), false);
    assert.throws(() => restoreAccountState({ version: 2, requests: [], lockout: { status: 401 } }, []), StateShapeError);
    assert.throws(() => restoreAccountState(undefined, [{ lockout: 'yes' }]), StateShapeError);
  });
});

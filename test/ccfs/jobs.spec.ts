import { strict as assert } from 'node:assert';
import { JobRunner, jobVerdict, type JobEvent, type JobRunnerOptions } from '../../src/ccfs/jobs';
import { CcfsAuthError, CcfsResultError, CcfsValidationError, CcfsProtocolError } from '../../src/ccfs/client';
import { CcfsLockedError } from '../../src/ccfs/lockout';
import type { BillJob } from '../../src/ccfs/callback';

const job = (file: string, o: Partial<BillJob> = {}): BillJob => ({ file, responseId: null, accountId: null, version: '2.0', state: 'pending', attempts: 0, since: 1, meta: {}, ...o });

/** A runner whose work is scripted per file: each attempt takes the next outcome (an error to throw, or 'ok'). */
function scripted(outcomes: Record<string, Array<Error | 'ok'>>, o: Partial<JobRunnerOptions> = {}) {
  const saved: unknown[] = [];
  const events: JobEvent[] = [];
  const worked: string[] = [];
  let ended!: () => void;
  let endings = 0;
  const runner = new JobRunner({
    retries: 2, baseDelayMs: 5, maxDelayMs: 40, random: () => 1,
    async work(j) {
      worked.push(j.file);
      const next = outcomes[j.file].shift();
      if (next instanceof Error) throw next;
    },
    save: (change) => { saved.push(JSON.parse(JSON.stringify(change))); },
    onEvent: (e) => {
      events.push(e);
      if (e.type !== 'start' && e.type !== 'retry' && ++endings === until) ended();
    },
    ...o,
  });
  let until = 0;
  const settled = (n: number) => new Promise<void>((r) => { until = n; ended = r; if (endings >= n) r(); });
  return { runner, saved, events, worked, settled };
}

const notThere = () => new CcfsResultError('downloadBillFile', '0300011', 'file does not exist');

describe('ccfs/jobs', () => {
  it('takes CC-FS result codes by their table, holds a refused or locked-out account, and retries the rest', () => {
    const lock = { fingerprint: 'a'.repeat(64), salt: '0'.repeat(32), at: '2026-04-14T12:00:00.000Z', status: 401 as const, operation: 'queryBillData' };
    assert.equal(jobVerdict(notThere()), 'retry');
    assert.equal(jobVerdict(new CcfsResultError('downloadBillFile', '0300008', 'flow control')), 'retry');
    assert.equal(jobVerdict(new CcfsResultError('downloadBillFile', '0300018', 'not yours')), 'fail');
    assert.equal(jobVerdict(new CcfsValidationError('billFileName', 'bad')), 'fail');
    assert.equal(jobVerdict(new CcfsAuthError('downloadBillFile', 401, '')), 'hold');
    assert.equal(jobVerdict(new CcfsLockedError('locked', lock)), 'hold');
    assert.equal(jobVerdict(new CcfsProtocolError('not a zip')), 'retry');
    assert.equal(jobVerdict(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), 'retry');
  });

  it('runs jobs one at a time, in order, and journals each as delivered once done', async () => {
    const { runner, saved, events, settled } = scripted({ 'a.zip': ['ok'], 'b.zip': ['ok'] });
    runner.add(job('a.zip'));
    runner.add(job('b.zip'));
    runner.add(job('a.zip')); // already here: ignored
    assert.equal(runner.counts.running, 'a.zip');
    assert.equal(runner.counts.pending, 1);
    await settled(2);
    assert.deepEqual(events.map((e) => `${e.type} ${e.job.file}`), ['start a.zip', 'done a.zip', 'start b.zip', 'done b.zip']);
    assert.deepEqual(saved, [{ done: 'a.zip' }, { done: 'b.zip' }]);
    assert.deepEqual(runner.counts, { pending: 0, running: null, held: 0 });
  });

  it('retries with backoff up to the limit, journaling each failed attempt, then fails for good', async () => {
    const { runner, saved, events, worked, settled } = scripted({ 'a.zip': [notThere(), notThere(), notThere()], 'b.zip': [notThere(), 'ok'] });
    runner.add(job('a.zip'));
    runner.add(job('b.zip'));
    await settled(2);
    assert.deepEqual(worked.filter((f) => f === 'a.zip').length, 3, 'the first attempt and 2 retries');
    const retries = events.filter((e) => e.type === 'retry');
    assert.deepEqual(retries.filter((e) => e.job.file === 'a.zip').map((e) => e.delayMs), [5, 10], 'exponential: up to base·2^n (full jitter, here at its top)');
    const a = saved.filter((c: any) => c.job?.file === 'a.zip') as Array<{ job: BillJob }>;
    assert.deepEqual(a.map((c) => [c.job.state, c.job.attempts]), [['pending', 1], ['pending', 2], ['failed', 3]]);
    assert.match(a[2].job.error!, /0300011/);
    assert.deepEqual(saved.filter((c: any) => c.done), [{ done: 'b.zip' }]);
    const failed = events.find((e) => e.type === 'failed')!;
    assert.equal(failed.job.file, 'a.zip');
  });

  it('fails at once on what another attempt cannot mend, and holds a job the account cannot sign for, without counting it', async () => {
    const lock = { fingerprint: 'a'.repeat(64), salt: '0'.repeat(32), at: '2026-04-14T12:00:00.000Z', status: 401 as const, operation: 'downloadBillFile' };
    const { runner, saved, events, worked, settled } = scripted({
      'a.zip': [new CcfsResultError('downloadBillFile', '0300018', 'not yours')],
      'b.zip': [new CcfsLockedError('locked', lock)],
      'c.zip': ['ok'],
    });
    for (const f of ['a.zip', 'b.zip', 'c.zip']) runner.add(job(f));
    await settled(3);
    assert.deepEqual(worked, ['a.zip', 'b.zip', 'c.zip'], 'a held job does not stop the others');
    assert.deepEqual(events.filter((e) => e.type !== 'start').map((e) => `${e.type} ${e.job.file}`), ['failed a.zip', 'held b.zip', 'done c.zip']);
    assert.deepEqual(saved.map((c: any) => c.done ?? [c.job.file, c.job.state, c.job.attempts]), [['a.zip', 'failed', 1], ['b.zip', 'pending', 0], 'c.zip']);
    assert.deepEqual(runner.counts, { pending: 0, running: null, held: 1 });
    runner.add(job('b.zip'));
    assert.equal(worked.length, 3, 'held until the next start');
  });

  it('on close aborts the running job, which stays pending (nothing journaled), and cancels the waits', async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => { started = r; });
    const saved: unknown[] = [];
    const runner = new JobRunner({
      retries: 5, baseDelayMs: 60_000, maxDelayMs: 60_000,
      work: (j, signal) => new Promise((_resolve, reject) => {
        if (j.file === 'b.zip') return reject(notThere());
        started();
        signal.addEventListener('abort', () => reject(signal.reason));
      }),
      save: (c) => { saved.push(c); },
    });
    runner.add(job('b.zip')); // fails once: waits a minute for its retry
    runner.add(job('a.zip'));
    await running;
    assert.equal(runner.counts.running, 'a.zip');
    assert.equal(runner.counts.pending, 1, 'b.zip waits for its retry');
    await runner.close();
    assert.deepEqual(saved.map((c: any) => c.job?.file ?? c.done), ['b.zip'], 'only the failed attempt of b.zip');
    runner.add(job('c.zip'));
    assert.equal(runner.counts.running, null, 'closed: takes nothing more');
  });

  it('reports a job whose progress could not be journaled, and goes on', async () => {
    const events: JobEvent[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => { done = r; });
    const runner = new JobRunner({
      retries: 0, baseDelayMs: 1, maxDelayMs: 1,
      work: async () => undefined,
      save: () => { throw new Error('disk full'); },
      onEvent: (e) => { events.push(e); if (e.type === 'done') done(); },
    });
    runner.add(job('a.zip'));
    await finished;
    assert.deepEqual(events.map((e) => e.type), ['start', 'saveFailed', 'done']);
    assert.match(((events[1] as any).error as Error).message, /disk full/);
  });
});

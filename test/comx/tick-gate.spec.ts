import { strict as assert } from 'node:assert';
import { TickGate } from '../../src/comx/tick-gate';

describe('comx/tick-gate', () => {
  it('lets one through per tick, keeps a tick that came early during a run, and drops ticks from before it', async () => {
    const gate = new TickGate(5000, () => new Error('no tick'));
    gate.tick(); // no run yet: not kept
    gate.running(true);
    let passed = 0;
    const waiting = gate.wait().then(() => passed++);
    await Promise.resolve();
    assert.equal(passed, 0, 'the tick from before the run was not kept');
    gate.tick();
    await waiting;
    assert.equal(passed, 1);
    gate.tick(); // early: kept for the next wait
    await gate.wait();
  });

  it('gives up after its timeout, and a close fails the waiting run', async () => {
    const gate = new TickGate(20, () => new Error('no tick'));
    gate.running(true);
    await assert.rejects(gate.wait(), /no tick/);
    const long = new TickGate(60_000, () => new Error('no tick'));
    long.running(true);
    const waiting = long.wait();
    long.close(new Error('the node was stopped'));
    await assert.rejects(waiting, /the node was stopped/);
  });
});

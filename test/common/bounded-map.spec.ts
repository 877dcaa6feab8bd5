import { strict as assert } from 'node:assert';
import { BoundedMap } from '../../src/common/bounded-map';

describe('common/bounded-map', () => {
  it('keeps at most max entries, pushing out the least recently set, and says which', () => {
    const evicted: string[] = [];
    const m = new BoundedMap<string, number>({ max: 3, onEvict: (k) => evicted.push(k) });
    for (const k of ['a', 'b', 'c']) m.set(k, 1);
    m.set('a', 2); // a is newest now
    m.touch('b');
    m.set('d', 1);
    assert.deepEqual([...m.keys()], ['a', 'b', 'd']);
    assert.deepEqual(evicted, ['c']);
    assert.equal(m.get('a'), 2);
    m.delete('a');
    assert.deepEqual(evicted, ['c'], 'delete is not an eviction');
  });

  it('drops entries past their age and round-trips through a JSON snapshot with their times', () => {
    const m = new BoundedMap<string, number>({ max: 10, maxAgeMs: 1000 });
    m.set('old', 1, 1000);
    m.set('new', 2, 5000);
    assert.equal(m.prune(5500), 1);
    assert.deepEqual([...m.keys()], ['new']);
    const copy = new BoundedMap<string, number>({ max: 10, maxAgeMs: 1000 }).restore(JSON.parse(JSON.stringify(m.snapshot())), (k, v) => [String(k), Number(v)]);
    assert.equal(copy.timeOf('new'), 5000);
    assert.equal(copy.get('new'), 2);
  });

  it('restores with the cap applied and refuses entries its check refuses', () => {
    const m = new BoundedMap<string, number>({ max: 2 }).restore([['a', 1, 1], ['b', 2, 2], ['c', 3, 3]], (k, v) => [String(k), Number(v)]);
    assert.deepEqual([...m.keys()], ['b', 'c']);
    assert.throws(() => new BoundedMap({ max: 2 }).restore('x', (k, v) => [k, v]), /list of entries/);
    assert.throws(() => new BoundedMap({ max: 2 }).restore([['a']], (k, v) => [k, v]), /not \[key, value, time\]/);
    assert.throws(() => new BoundedMap({ max: 2 }).restore([['a', 'x', 1]], () => { throw new Error('not a number'); }), /not a number/);
  });

  it('deleteWhere removes by value', () => {
    const m = new BoundedMap<string, number>({ max: 10 });
    for (let i = 0; i < 6; i++) m.set(`k${i}`, i);
    assert.equal(m.deleteWhere((v) => v % 2 === 0), 3);
    assert.deepEqual([...m.values()], [1, 3, 5]);
  });
});

describe('common/bounded-map at large caps', () => {
  it('keeps finding the oldest entry with one long-lived iterator: after evictions, moves, deletes and clear', () => {
    const m = new BoundedMap<number, number>({ max: 100_000 });
    for (let i = 0; i < 300_000; i++) m.set(i, i);
    assert.equal(m.size, 100_000);
    assert.equal(m.oldest(), 200_000);
    m.set(200_000, -1); // moved to the end: no longer the oldest
    assert.equal(m.oldest(), 200_001);
    m.delete(200_001);
    assert.equal(m.oldest(), 200_002);
    m.clear();
    assert.equal(m.oldest(), undefined);
    m.set(1, 1);
    assert.equal(m.oldest(), 1);
  });
});

/**
 * Version vectors ({ replica -> highest contiguous seq }) and SeqSet, which tracks
 * what is held beyond a gap when changes arrive out of order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeqSet, replicaId, vv, type ReplicaId, type SeqRange, type VersionVector } from '@syncline/core/internal';

const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(replicaId) as [ReplicaId, ReplicaId, ReplicaId, ReplicaId];
const V = (entries: Record<string, number>): VersionVector => vv.vector(Object.entries(entries) as Array<[ReplicaId, number]>);
const entries = (v: VersionVector): Array<[string, number]> => vv.toEntries(v);

describe('version vectors', () => {
  it('vector() keeps positive entries, the highest per replica', () => {
    const v = vv.vector([
      [a, 3],
      [b, 0],
      [a, 1],
      [c, -2],
      [d, 5],
    ]);
    expect(entries(v)).toEqual([
      ['a', 3],
      ['d', 5],
    ]);
    expect(vv.get(v, a)).toBe(3);
    expect(vv.get(v, b)).toBe(0);
  });

  it('merge() is the pointwise maximum and does not mutate its inputs', () => {
    const x = V({ a: 3, b: 1 });
    const y = V({ b: 4, c: 2 });
    expect(entries(vv.merge(x, y))).toEqual([
      ['a', 3],
      ['b', 4],
      ['c', 2],
    ]);
    expect(entries(x)).toEqual([
      ['a', 3],
      ['b', 1],
    ]);
    expect(entries(y)).toEqual([
      ['b', 4],
      ['c', 2],
    ]);
    expect(entries(vv.merge(x, V({})))).toEqual(entries(x));
    expect(entries(vv.merge(V({}), y))).toEqual(entries(y));
  });

  it('compare() tells before, after, equal and concurrent apart', () => {
    expect(vv.compare(V({ a: 1 }), V({ a: 2 }))).toBe('before');
    expect(vv.compare(V({ a: 2 }), V({ a: 1 }))).toBe('after');
    expect(vv.compare(V({ a: 2, b: 1 }), V({ b: 1, a: 2 }))).toBe('equal');
    expect(vv.compare(V({ a: 2 }), V({ b: 1 }))).toBe('concurrent');
    expect(vv.compare(V({ a: 2, b: 1 }), V({ a: 1, b: 2 }))).toBe('concurrent');
    expect(vv.compare(V({}), V({}))).toBe('equal');
    expect(vv.compare(V({}), V({ c: 1 }))).toBe('before');
    expect(vv.compare(V({ a: 1, c: 1 }), V({ a: 1 }))).toBe('after');
    // A missing entry counts as 0, also in a Map built by hand with an explicit 0.
    expect(vv.compare(new Map([[a, 0]]), new Map())).toBe('equal');
    expect(vv.equals(V({ a: 1 }), V({ a: 1 }))).toBe(true);
    expect(vv.equals(V({ a: 1 }), V({ a: 2 }))).toBe(false);
  });

  it('dominates() and covers()', () => {
    expect(vv.dominates(V({ a: 2, b: 1 }), V({ a: 2 }))).toBe(true);
    expect(vv.dominates(V({ a: 2 }), V({ a: 2, b: 1 }))).toBe(false);
    expect(vv.dominates(V({ a: 1 }), V({ a: 1 }))).toBe(true);
    expect(vv.dominates(V({}), V({}))).toBe(true);
    expect(vv.dominates(V({ a: 5 }), V({ b: 1 }))).toBe(false);
    expect(vv.covers(V({ a: 3 }), a, 3)).toBe(true);
    expect(vv.covers(V({ a: 3 }), a, 4)).toBe(false);
    expect(vv.covers(V({ a: 3 }), b, 1)).toBe(false);
  });

  it('missing() lists what the other side holds beyond mine, as ranges sorted by replica', () => {
    expect(vv.missing(V({ a: 2, b: 5 }), V({ c: 3, a: 4, b: 5 }))).toEqual([
      { replica: 'a', from: 3, to: 4 },
      { replica: 'c', from: 1, to: 3 },
    ]);
    expect(vv.missing(V({ a: 4 }), V({ a: 2 }))).toEqual([]);
    expect(vv.missing(V({}), V({}))).toEqual([]);
  });

  it('toEntries() is sorted by replica', () => {
    expect(entries(V({ d: 1, a: 2, c: 3 }))).toEqual([
      ['a', 2],
      ['c', 3],
      ['d', 1],
    ]);
  });
});

describe('SeqSet', () => {
  it('tracks out-of-order adds; vector() is only the contiguous prefix', () => {
    const set = new SeqSet();
    expect(set.add(a, 3)).toBe(true);
    expect(set.add(a, 5)).toBe(true);
    expect(entries(set.vector())).toEqual([]);
    expect(set.gaps()).toEqual(new Map([[a, [3, 5]]]));
    expect(set.add(a, 1)).toBe(true);
    expect(entries(set.vector())).toEqual([['a', 1]]);
    expect(set.add(a, 2)).toBe(true);
    // 2 closes the gap up to 3; 4 is still missing, so 5 stays beyond.
    expect(entries(set.vector())).toEqual([['a', 3]]);
    expect(set.gaps()).toEqual(new Map([[a, [5]]]));
    expect(set.add(a, 4)).toBe(true);
    expect(entries(set.vector())).toEqual([['a', 5]]);
    expect(set.gaps()).toEqual(new Map());
  });

  it('add() returns false for a number already held, in the prefix or beyond a gap', () => {
    const set = new SeqSet();
    expect(set.add(b, 1)).toBe(true);
    expect(set.add(b, 1)).toBe(false);
    expect(set.add(b, 4)).toBe(true);
    expect(set.add(b, 4)).toBe(false);
    expect(set.has(b, 1)).toBe(true);
    expect(set.has(b, 2)).toBe(false);
    expect(set.has(b, 4)).toBe(true);
    expect(set.has(c, 1)).toBe(false);
    expect(entries(set.vector())).toEqual([['b', 1]]);
  });

  it('add() refuses numbers that are not positive integers', () => {
    const set = new SeqSet();
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => set.add(a, bad)).toThrow(RangeError);
  });

  it('missing() skips numbers held beyond a gap', () => {
    const set = new SeqSet();
    for (const seq of [1, 2, 5, 7, 8]) set.add(a, seq);
    set.add(b, 2);
    expect(set.missing(V({ a: 10, b: 3, c: 2 }))).toEqual([
      { replica: 'a', from: 3, to: 4 },
      { replica: 'a', from: 6, to: 6 },
      { replica: 'a', from: 9, to: 10 },
      { replica: 'b', from: 1, to: 1 },
      { replica: 'b', from: 3, to: 3 },
      { replica: 'c', from: 1, to: 2 },
    ]);
    // Only up to what the other side holds.
    expect(set.missing(V({ a: 6 }))).toEqual([
      { replica: 'a', from: 3, to: 4 },
      { replica: 'a', from: 6, to: 6 },
    ]);
    expect(set.missing(V({ a: 2 }))).toEqual([]);
  });

  it('from() starts from a contiguous vector', () => {
    const set = SeqSet.from(V({ a: 3 }));
    expect(set.has(a, 3)).toBe(true);
    expect(set.add(a, 2)).toBe(false);
    expect(set.add(a, 4)).toBe(true);
    expect(entries(set.vector())).toEqual([['a', 4]]);
  });
});

// ---------------------------------------------------------------------------
// Properties.

const REPLICAS = [a, b, c, d];
const arbVector: fc.Arbitrary<VersionVector> = fc
  .array(fc.tuple(fc.constantFrom(...REPLICAS), fc.nat({ max: 6 })), { maxLength: 6 })
  .map((list) => vv.vector(list));

describe('version vector properties', () => {
  it('merge is commutative, associative and idempotent, and dominates its inputs', () => {
    fc.assert(
      fc.property(arbVector, arbVector, arbVector, (x, y, z) => {
        expect(entries(vv.merge(x, y))).toEqual(entries(vv.merge(y, x)));
        expect(entries(vv.merge(vv.merge(x, y), z))).toEqual(entries(vv.merge(x, vv.merge(y, z))));
        expect(entries(vv.merge(x, x))).toEqual(entries(x));
        const m = vv.merge(x, y);
        expect(vv.dominates(m, x) && vv.dominates(m, y)).toBe(true);
        for (const r of REPLICAS) expect(vv.get(m, r)).toBe(Math.max(vv.get(x, r), vv.get(y, r)));
      }),
      { numRuns: 1000 },
    );
  });

  it('compare agrees with the pointwise order and is antisymmetric', () => {
    fc.assert(
      fc.property(arbVector, arbVector, (x, y) => {
        const le = REPLICAS.every((r) => vv.get(x, r) <= vv.get(y, r));
        const ge = REPLICAS.every((r) => vv.get(x, r) >= vv.get(y, r));
        const expected = le && ge ? 'equal' : le ? 'before' : ge ? 'after' : 'concurrent';
        expect(vv.compare(x, y)).toBe(expected);
        const mirror = { before: 'after', after: 'before', equal: 'equal', concurrent: 'concurrent' } as const;
        expect(vv.compare(y, x)).toBe(mirror[expected]);
        expect(vv.dominates(x, y)).toBe(ge);
      }),
      { numRuns: 1000 },
    );
  });

  it('missing(mine, theirs) is exactly what mine lacks of theirs', () => {
    fc.assert(
      fc.property(arbVector, arbVector, (mine, theirs) => {
        const ranges = vv.missing(mine, theirs);
        for (const r of REPLICAS) {
          const expected: number[] = [];
          for (let s = vv.get(mine, r) + 1; s <= vv.get(theirs, r); s++) expected.push(s);
          expect(expand(ranges.filter((x) => x.replica === r))).toEqual(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

function expand(ranges: readonly SeqRange[]): number[] {
  const out: number[] = [];
  for (const range of ranges) {
    expect(range.from).toBeLessThanOrEqual(range.to);
    for (let s = range.from; s <= range.to; s++) out.push(s);
  }
  return out;
}

describe('SeqSet properties', () => {
  const arbAdds = fc.array(fc.tuple(fc.constantFrom(a, b, c), fc.integer({ min: 1, max: 12 })), { maxLength: 40 });

  it('vector() equals the contiguous prefix computed naively; add() reports duplicates; has() and gaps() agree', () => {
    fc.assert(
      fc.property(arbAdds, (adds) => {
        const set = new SeqSet();
        const naive = new Map<ReplicaId, Set<number>>(REPLICAS.map((r) => [r, new Set<number>()]));
        for (const [r, seq] of adds) {
          const held = naive.get(r) as Set<number>;
          expect(set.add(r, seq)).toBe(!held.has(seq));
          held.add(seq);
        }
        const expectedVector: Array<[string, number]> = [];
        for (const r of REPLICAS) {
          const held = naive.get(r) as Set<number>;
          let top = 0;
          while (held.has(top + 1)) top++;
          if (top > 0) expectedVector.push([r, top]);
          for (let s = 1; s <= 13; s++) expect(set.has(r, s)).toBe(held.has(s));
          const beyond = [...held].filter((s) => s > top).sort((x, y) => x - y);
          expect(set.gaps().get(r)).toEqual(beyond.length > 0 ? beyond : undefined);
        }
        expect(entries(set.vector())).toEqual(expectedVector);
      }),
      { numRuns: 1000 },
    );
  });

  it('missing(theirs) lists exactly the numbers up to theirs that are not held', () => {
    fc.assert(
      fc.property(arbAdds, arbVector, (adds, theirs) => {
        const set = new SeqSet();
        for (const [r, seq] of adds) set.add(r, seq);
        const ranges = set.missing(theirs);
        // Sorted by replica, then by start; ranges of one replica never touch or overlap.
        for (let i = 1; i < ranges.length; i++) {
          const [p, q] = [ranges[i - 1] as SeqRange, ranges[i] as SeqRange];
          expect(p.replica < q.replica || (p.replica === q.replica && p.to + 1 < q.from)).toBe(true);
        }
        for (const r of REPLICAS) {
          const expected: number[] = [];
          for (let s = 1; s <= vv.get(theirs, r); s++) if (!set.has(r, s)) expected.push(s);
          expect(expand(ranges.filter((x) => x.replica === r))).toEqual(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

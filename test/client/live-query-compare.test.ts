/**
 * Live queries decide "the result changed" by comparing rows in place (sameJson),
 * not by serializing every row: a change to one record of a 2,000-row result must
 * call back once with the new value, an unchanged result must not call back, and
 * a callback that sorts its array in place must not hide the next change.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createReplica, type Row } from '@syncline/client';
import { canonicalJson, type Json } from '@syncline/core/internal';
import { sameJson } from '../../packages/client/src/live-query.js';
import { STORAGES, uniqueName } from './helpers.js';

describe('sameJson', () => {
  it('is canonical-JSON equality: key order does not matter, array order does', () => {
    expect(sameJson({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 })).toBe(true);
    expect(sameJson([1, 2], [2, 1])).toBe(false);
    expect(sameJson({ a: 1 }, { a: 1, b: null })).toBe(false);
    expect(sameJson({ a: '1' }, { a: 1 })).toBe(false);
    expect(sameJson([], {})).toBe(false);
    expect(sameJson(null, {})).toBe(false);
    expect(sameJson(0, -0)).toBe(true);
  });

  it('agrees with canonicalJson on random values', () => {
    const json = fc.jsonValue() as fc.Arbitrary<Json>;
    fc.assert(
      fc.property(json, json, (a, b) => {
        expect(sameJson(a, b)).toBe(canonicalJson(a) === canonicalJson(b));
        expect(sameJson(a, JSON.parse(JSON.stringify(a)) as Json)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe.each(STORAGES)('a large live result on %s storage', (_name, storage) => {
  it('calls back once per real change, never for an unchanged result', async () => {
    const r = await createReplica({ name: uniqueName('live-compare'), schema: { events: {} }, storage: storage(), tabs: false });
    await r.batch((b) => {
      for (let i = 0; i < 2000; i++) b.put('events', `e${String(i).padStart(4, '0')}`, { title: `t${i}`, n: i, tags: ['a', 'b'] });
    });
    const results: Row[][] = [];
    let wake: (() => void) | undefined;
    const stop = r.subscribe({ collection: 'events' }, (rows) => {
      results.push(rows);
      rows.sort((x, y) => (x.id < y.id ? 1 : -1)); // a careless callback: sorts the array it was given
      wake?.();
    });
    const next = () => new Promise<void>((resolve) => (wake = resolve));
    await next();
    expect(results).toHaveLength(1);

    await Promise.all([next(), r.patch('events', 'e0500', { title: 'changed' })]);
    expect(results).toHaveLength(2);
    expect(results[1]?.find((row) => row.id === 'e0500')?.value).toEqual({ title: 'changed', n: 500, tags: ['a', 'b'] });

    // Same visible value written again (a new state, same fields in another key order): no callback.
    await r.put('events', 'e0500', { tags: ['a', 'b'], n: 500, title: 'changed' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(results).toHaveLength(2);

    // A nested change deep in one row is seen.
    await Promise.all([next(), r.patch('events', 'e1999', { tags: ['a', 'c'] })]);
    expect(results).toHaveLength(3);
    expect(results[2]?.find((row) => row.id === 'e1999')?.value['tags']).toEqual(['a', 'c']);
    stop();
    await r.close();
  });
});

/**
 * Range queries over 10,000 records, on every storage, checked against a plain
 * in-memory filter and sort of the same data (with its own IndexedDB key order,
 * not the one under test): equality on a 2-field index, ranges, order, limit,
 * offset, cursor paging, space filters and counts.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fields } from '@syncline/core/internal';
import { createReplica, defineSchema, type Query, type Replica, type Row } from '@syncline/client';
import { STORAGES, uniqueName } from './helpers.js';

const N = 10_000;
const PER_TX = 1_000;
const CATS = ['a', 'b', 'c', 'd', 'e'] as const;
const INDEXES = { byCatN: ['cat', 'n'], byN: ['n'], byName: ['name'] } as const;
// `other` shares an index name: its records must never show up in `items` queries.
const schema = defineSchema({ items: { indexes: INDEXES }, other: { indexes: { byN: ['n'] } } });

type Part = number | string;

/** IndexedDB order for index values: numbers before strings, strings by UTF-16 code unit. */
function cmpPart(a: Part, b: Part): number {
  if (typeof a !== typeof b) return typeof a === 'number' ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
function cmpKey(a: readonly Part[], b: readonly Part[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = cmpPart(a[i] as Part, b[i] as Part);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}
const isPart = (v: unknown): v is Part => typeof v === 'string' || (typeof v === 'number' && !Number.isNaN(v));

/** Deterministic data: a small seeded generator (mulberry32). */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Item {
  readonly id: string;
  readonly space: string;
  value: Record<string, Fields[string]>;
}

function makeValue(random: () => number): Record<string, Fields[string]> {
  const value: Record<string, Fields[string]> = {};
  const r = random();
  if (r > 0.05) value.cat = CATS[Math.floor(random() * CATS.length)] as string;
  const kind = random();
  // Mostly integers with many duplicates; also fractions, negatives, strings and missing values.
  if (kind < 0.8) value.n = Math.floor(random() * 1_000);
  else if (kind < 0.85) value.n = Math.round(random() * 100_000) / 100;
  else if (kind < 0.9) value.n = -Math.floor(random() * 50);
  else if (kind < 0.95) value.n = `s${Math.floor(random() * 100)}`;
  if (random() < 0.9) value.name = `${String.fromCharCode(65 + Math.floor(random() * 58))}${Math.floor(random() * 1e6).toString(36)}`;
  if (random() < 0.02) value.cat = null; // present but not indexable
  return value;
}

/** What the replica should answer for a query: filter and sort the model. */
function expected(model: ReadonlyMap<string, Item>, q: Query): Item[] {
  let items = [...model.values()].filter((item) => q.space === undefined || item.space === q.space);
  let keyOf: (item: Item) => Part[];
  if (q.index === undefined) keyOf = (item) => [item.id, item.space];
  else {
    const fields = INDEXES[q.index as keyof typeof INDEXES];
    items = items.filter((item) => fields.every((f) => isPart(item.value[f])));
    keyOf = (item) => [...fields.map((f) => item.value[f] as Part), item.id, item.space];
    const eq = q.eq ?? [];
    items = items.filter((item) => eq.every((v, i) => cmpPart(keyOf(item)[i] as Part, v) === 0));
    const r = q.range ?? {};
    const at = (item: Item) => keyOf(item)[eq.length] as Part;
    if (r.gt !== undefined) items = items.filter((item) => cmpPart(at(item), r.gt as Part) > 0);
    if (r.gte !== undefined) items = items.filter((item) => cmpPart(at(item), r.gte as Part) >= 0);
    if (r.lt !== undefined) items = items.filter((item) => cmpPart(at(item), r.lt as Part) < 0);
    if (r.lte !== undefined) items = items.filter((item) => cmpPart(at(item), r.lte as Part) <= 0);
  }
  items.sort((a, b) => cmpKey(keyOf(a), keyOf(b)));
  if (q.order === 'desc') items.reverse();
  const offset = q.offset ?? 0;
  return items.slice(offset, q.limit === undefined ? undefined : offset + q.limit);
}

const view = (rows: readonly Row[]) => rows.map((r) => [r.id, r.space, r.value]);
const viewItems = (items: readonly Item[]) => items.map((i) => [i.id, i.space, i.value]);

describe.each(STORAGES)('queries over 10,000 records on %s storage', (_kind, makeStorage) => {
  let replica: Replica;
  const model = new Map<string, Item>();
  const key = (id: string, space: string) => `${id}\u0000${space}`;

  beforeAll(async () => {
    replica = (await createReplica({ name: uniqueName('queries'), schema, storage: makeStorage(), tabs: false })) as unknown as Replica;
    const random = prng(20_260_101);
    for (let start = 0; start < N; start += PER_TX) {
      const items: Item[] = [];
      for (let k = start; k < start + PER_TX; k++) {
        const id = `${Math.floor(random() * 36 ** 4).toString(36)}-${k}`;
        items.push({ id, space: random() < 0.1 ? 'other' : 'default', value: makeValue(random) });
      }
      await replica.batch((b) => {
        for (const item of items) b.put('items', item.id, item.value, { space: item.space });
      });
      for (const item of items) model.set(key(item.id, item.space), item);
    }
    // Index maintenance: patches that move records, unset indexed fields, and deletes.
    const all = [...model.values()];
    await replica.batch((b) => {
      for (let i = 0; i < 600; i++) {
        const item = all[Math.floor(random() * all.length)] as Item;
        if (!model.has(key(item.id, item.space))) continue;
        const choice = random();
        if (choice < 0.4) {
          const patch = { n: Math.floor(random() * 1_000), cat: CATS[Math.floor(random() * CATS.length)] as string };
          b.patch('items', item.id, patch, { space: item.space });
          item.value = { ...item.value, ...patch };
        } else if (choice < 0.6) {
          b.patch('items', item.id, { n: undefined }, { space: item.space });
          const { n: _n, ...rest } = item.value;
          item.value = rest;
        } else {
          b.delete('items', item.id, { space: item.space });
          model.delete(key(item.id, item.space));
        }
      }
      for (let i = 0; i < 50; i++) b.put('other', `o${i}`, { cat: 'a', n: i });
    });
  });
  afterAll(async () => {
    await replica.close();
  });

  const check = async (q: Query) => {
    expect(view(await replica.query(q)), JSON.stringify(q)).toEqual(viewItems(expected(model, q)));
  };

  it('the data set is what the test thinks it is', async () => {
    expect(model.size).toBeGreaterThan(9_500);
    expect(await replica.count({ collection: 'items' })).toBe(model.size);
    expect(await replica.count({ collection: 'other' })).toBe(50);
  });

  it('answers equality on a 2-field index, ranges, order, limit and offset', async () => {
    const queries: Query[] = [
      { collection: 'items', index: 'byCatN', eq: ['c', 500] },
      { collection: 'items', index: 'byCatN', eq: ['c', 500], order: 'desc' },
      { collection: 'items', index: 'byCatN', eq: ['b'] },
      { collection: 'items', index: 'byCatN', eq: ['b'], range: { gt: 100, lte: 200 } },
      { collection: 'items', index: 'byCatN', eq: ['b'], range: { gte: 100, lt: 200 }, order: 'desc', limit: 17, offset: 5 },
      { collection: 'items', index: 'byCatN', eq: ['e'], range: { gt: 990 } },
      { collection: 'items', index: 'byCatN', eq: ['e'], range: { gte: 's50' } },
      { collection: 'items', index: 'byCatN', eq: ['zzz'] },
      { collection: 'items', index: 'byCatN', range: { gte: 'b', lt: 'd' }, limit: 100 },
      { collection: 'items', index: 'byN' },
      { collection: 'items', index: 'byN', order: 'desc', limit: 250 },
      { collection: 'items', index: 'byN', range: { lt: 0 } },
      { collection: 'items', index: 'byN', range: { lte: 0 } },
      { collection: 'items', index: 'byN', range: { gt: 999 } },
      { collection: 'items', index: 'byN', range: { gte: 10, lte: 10 } },
      { collection: 'items', index: 'byN', range: { gt: 10, lt: 10 } },
      { collection: 'items', index: 'byN', range: { gt: 20, lt: 10 } },
      { collection: 'items', index: 'byN', range: { gte: 's', lt: 's5' }, order: 'desc' },
      { collection: 'items', index: 'byN', offset: 9_000 },
      { collection: 'items', index: 'byN', offset: 20_000 },
      { collection: 'items', index: 'byN', limit: 0 },
      { collection: 'items', index: 'byName', range: { gte: 'a', lt: 'b' } },
      { collection: 'items', index: 'byN', space: 'other' as Query['space'], range: { gte: 100, lt: 300 }, offset: 3, limit: 40 },
      { collection: 'items', index: 'byCatN', eq: ['a'], space: 'other' as Query['space'], order: 'desc' },
      { collection: 'items' },
      { collection: 'items', order: 'desc', offset: 10, limit: 30 },
      { collection: 'items', space: 'other' as Query['space'], limit: 50 },
    ];
    for (const q of queries) await check(q);
    // Another collection with an index of the same name holds only its own records.
    const others = await replica.query({ collection: 'other', index: 'byN', range: { gte: 10 }, order: 'desc' });
    expect(others.map((r) => r.id)).toEqual(Array.from({ length: 40 }, (_, i) => `o${49 - i}`));
    // Not vacuous: the answers above are not all empty.
    expect(expected(model, { collection: 'items', index: 'byCatN', eq: ['b'], range: { gt: 100, lte: 200 } }).length).toBeGreaterThan(50);
    expect(expected(model, { collection: 'items', index: 'byN', range: { lt: 0 } }).length).toBeGreaterThan(100);
  });

  it('answers random queries like the model', async () => {
    const part = fc.oneof(fc.integer({ min: -60, max: 1_050 }), fc.constantFrom('s', 's3', 's50', 's99', 'a', 'b', 'c', 'zz'));
    // At most one lower and one upper bound (which of gt/gte wins when both are given is not specified).
    const range = fc
      .tuple(fc.option(fc.tuple(fc.constantFrom('gt', 'gte'), part)), fc.option(fc.tuple(fc.constantFrom('lt', 'lte'), part)))
      .map(([lower, upper]) => ({ ...(lower ? { [lower[0]]: lower[1] } : {}), ...(upper ? { [upper[0]]: upper[1] } : {}) }) as Query['range'] & object);
    const query = fc.oneof(
      fc.record({ index: fc.constant('byCatN'), eq: fc.oneof(fc.tuple(fc.constantFrom(...CATS)), fc.tuple(fc.constantFrom(...CATS), fc.integer({ min: 0, max: 999 }))), range }),
      fc.record({ index: fc.constant('byN'), eq: fc.constant([]), range }),
    );
    await fc.assert(
      fc.asyncProperty(
        query,
        fc.constantFrom<'asc' | 'desc'>('asc', 'desc'),
        fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 2_000 }), { nil: undefined }),
        fc.option(fc.constantFrom('default', 'other'), { nil: undefined }),
        async (shape, order, limit, offset, space) => {
          const q: Query = {
            collection: 'items',
            index: shape.index,
            eq: shape.eq,
            // A range needs a field after the eq values.
            ...(shape.eq.length < INDEXES[shape.index as keyof typeof INDEXES].length ? { range: shape.range } : {}),
            order,
            ...(limit !== undefined ? { limit } : {}),
            ...(offset !== undefined ? { offset } : {}),
            ...(space !== undefined ? { space: space as Query['space'] } : {}),
          };
          await check(q);
          const { limit: _l, offset: _o, order: _d, ...countable } = q;
          expect(await replica.count(countable), `count ${JSON.stringify(countable)}`).toBe(expected(model, { ...countable }).length);
        },
      ),
      { numRuns: 40, seed: 7 },
    );
  });

  it('counts like the model', async () => {
    const counts: Array<Omit<Query, 'limit' | 'offset' | 'after' | 'order'>> = [
      { collection: 'items' },
      { collection: 'items', space: 'other' as Query['space'] },
      { collection: 'items', index: 'byN' },
      { collection: 'items', index: 'byCatN', eq: ['d'] },
      { collection: 'items', index: 'byCatN', eq: ['d', 7] },
      { collection: 'items', index: 'byCatN', eq: ['d'], range: { gte: 250, lt: 750 } },
      { collection: 'items', index: 'byName' },
      { collection: 'items', index: 'byN', range: { gt: 20, lt: 10 } },
    ];
    for (const q of counts) expect(await replica.count(q), JSON.stringify(q)).toBe(expected(model, q).length);
  });

  it('cursor paging visits every record exactly once, in order', async () => {
    const pagings: Query[] = [
      { collection: 'items', index: 'byN' },
      { collection: 'items', index: 'byN', order: 'desc' },
      { collection: 'items', index: 'byCatN', eq: ['a'] },
      { collection: 'items', index: 'byCatN', eq: ['c'], range: { gte: 100, lt: 900 }, order: 'desc' },
      { collection: 'items', index: 'byN', space: 'other' as Query['space'] },
      { collection: 'items' },
      { collection: 'items', order: 'desc', space: 'default' as Query['space'] },
    ];
    for (const q of pagings) {
      // Queries without an index read the whole collection per page: fewer, larger pages.
      const pageSize = q.index === undefined ? 2_500 : q.index === 'byN' && q.space === undefined ? 1_250 : 613;
      const seen: Row[] = [];
      let after: Row['cursor'] | undefined;
      for (let pages = 0; ; pages++) {
        expect(pages, `paging ${JSON.stringify(q)} does not end`).toBeLessThan(100);
        const page = await replica.query({ ...q, limit: pageSize, ...(after !== undefined ? { after } : {}) });
        seen.push(...page);
        if (page.length < pageSize) break;
        after = page[page.length - 1]?.cursor;
      }
      const want = expected(model, q);
      expect(want.length).toBeGreaterThan(pageSize);
      expect(new Set(seen.map((r) => key(r.id, r.space))).size).toBe(seen.length);
      expect(view(seen), JSON.stringify(q)).toEqual(viewItems(want));
    }
  });

  it('paging goes on after a cursor whose record was deleted in between', async () => {
    const small = (await createReplica({ name: uniqueName('paging-deletes'), schema, storage: makeStorage(), tabs: false })) as unknown as Replica;
    try {
      const ids = Array.from({ length: 100 }, (_, i) => `p${String(i).padStart(3, '0')}`);
      for (const q of [
        { collection: 'items' },
        { collection: 'items', order: 'desc' },
        { collection: 'items', index: 'byN' },
        { collection: 'items', index: 'byN', order: 'desc' },
      ] as Query[]) {
        await small.batch((b) => {
          for (const [i, id] of ids.entries()) b.put('items', id, { n: i });
        });
        const seen: string[] = [];
        let after: Row['cursor'] | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = await small.query({ ...q, limit: 10, ...(after !== undefined ? { after } : {}) });
          seen.push(...page.map((r) => r.id));
          if (page.length < 10) break;
          const last = page[page.length - 1] as Row;
          after = last.cursor;
          // The row under the cursor goes away before the next page is read.
          await small.delete('items', last.id);
        }
        expect(seen, JSON.stringify(q)).toEqual(q.order === 'desc' ? [...ids].reverse() : ids);
      }
    } finally {
      await small.close();
    }
  });
});

/**
 * Both stores count the records with a value per collection without reading them
 * (memory: a count kept per collection; IndexedDB: the `live` index), so that
 * `replica.count()` of a whole collection does not scan it. The count must agree
 * with a scan after any mix of puts, deletes (records kept without a value),
 * forgotten records, rewrites, aborted and failed transactions, and inside a
 * transaction with writes pending.
 */
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { spaceId, type SpaceId } from '@syncline/core/internal';
import { createReplica, indexedDbStorage, memoryStorage, type StorageFactory } from '@syncline/client';
import type { StorageTx, StoredRecord } from '@syncline/client/storage';

const SPACES: readonly SpaceId[] = [spaceId('s1'), spaceId('s2')];
const COLLECTIONS = ['events', 'tasks', 'events2'] as const;

type Write = { collection: (typeof COLLECTIONS)[number]; id: string; space: SpaceId; live: boolean; forget: boolean };
type Tx = { writes: Write[]; end: 'commit' | 'abort' | 'throw' };

const writeArb: fc.Arbitrary<Write> = fc.record({
  collection: fc.constantFrom(...COLLECTIONS),
  id: fc.constantFrom('a', 'b', 'c', 'd', ''),
  space: fc.constantFrom(...SPACES),
  live: fc.boolean(),
  forget: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
});
const txArb: fc.Arbitrary<Tx> = fc.record({ writes: fc.array(writeArb, { maxLength: 6 }), end: fc.constantFrom('commit', 'commit', 'commit', 'abort', 'throw') });

const record = (w: Write): StoredRecord => ({ collection: w.collection, id: w.id, space: w.space, state: {}, value: w.live ? { id: w.id } : undefined, ix: [] });

async function scanned(tx: StorageTx, collection: string, space?: SpaceId): Promise<number> {
  return (await tx.scanRecords(collection)).filter((r) => r.value !== undefined && (space === undefined || r.space === space)).length;
}

async function expectCounts(tx: StorageTx): Promise<void> {
  const countLive = tx.countLive?.bind(tx);
  if (!countLive) throw new Error('the store counts live records');
  for (const c of COLLECTIONS) {
    expect(await countLive(c), c).toBe(await scanned(tx, c));
    for (const space of SPACES) expect(await countLive(c, space), `${c} in ${space}`).toBe(await scanned(tx, c, space));
  }
}

const STORES: ReadonlyArray<[string, () => StorageFactory]> = [
  ['memory', () => memoryStorage()],
  ['indexeddb (fake-indexeddb)', () => indexedDbStorage({ indexedDB: new IDBFactory(), IDBKeyRange })],
];

describe.each(STORES)('%s store: count of records with a value', (_, factory) => {
  it('agrees with a scan after any sequence of transactions, and inside one with writes pending', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(txArb, { maxLength: 12 }), async (txs) => {
        const storage = await factory()(`db${++n}`);
        for (const { writes, end } of txs) {
          await storage
            .transaction('readwrite', async (tx) => {
              for (const w of writes) {
                if (w.forget) await tx.forgetRecords([w]);
                else await tx.putRecord(record(w));
                await expectCounts(tx);
              }
              if (end === 'abort') tx.abort();
              if (end === 'throw') throw new Error('the callback failed');
            })
            .catch((error: Error) => {
              if (end === 'commit') throw error;
            });
          await storage.transaction('readonly', expectCounts);
        }
        await storage.close();
      }),
      { numRuns: 150 },
    );
  });

  it('replica.count() of a whole collection follows writes, deletes and revivals', async () => {
    const replica = await createReplica({ name: 'count', schema: { events: {}, tasks: {} }, storage: factory(), tabs: false });
    try {
      await replica.batch((b) => {
        for (let i = 0; i < 50; i++) b.put('events', `e${i}`, { i });
        b.put('tasks', 't', { done: false });
      });
      expect(await replica.count({ collection: 'events' })).toBe(50);
      for (let i = 0; i < 10; i++) await replica.delete('events', `e${i}`);
      expect(await replica.count({ collection: 'events' })).toBe(40);
      await replica.put('events', 'e3', { i: 3, revived: true });
      await replica.patch('events', 'e4', { i: 4 });
      await replica.delete('events', 'e4');
      expect(await replica.count({ collection: 'events' })).toBe(41);
      expect(await replica.count({ collection: 'tasks' })).toBe(1);
      // In one space: the count of that space only.
      await replica.put('events', 'elsewhere', { i: -1 }, { space: 'other' });
      expect(await replica.count({ collection: 'events', space: 'other' })).toBe(1);
      expect(await replica.count({ collection: 'events', space: replica.defaultSpace })).toBe(41);
      expect(await replica.count({ collection: 'events' })).toBe(42);
      expect(await replica.count({ collection: 'events' })).toBe((await replica.query({ collection: 'events' })).length);
    } finally {
      await replica.close();
    }
  });
});

/**
 * Group commit: writes made while another commit runs, or in the same tick,
 * share one transaction, and each call still succeeds or fails on its own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import 'fake-indexeddb/auto';
import { createReplica, defineSchema, type Replica, type StorageFactory } from '@syncline/client';
import { instrumented, outboxOf, STORAGES, uniqueName } from './helpers.js';

const schema = defineSchema({ events: { indexes: { byStart: ['start'] } } });

describe.each(STORAGES)('group commit on %s storage', (_kind, makeStorage) => {
  const opened: Replica[] = [];
  afterEach(async () => {
    for (const replica of opened.splice(0)) await replica.close();
  });

  async function open(storage: StorageFactory): Promise<Replica> {
    const replica = (await createReplica({ name: uniqueName('group'), schema, storage, tabs: false })) as unknown as Replica;
    opened.push(replica);
    return replica;
  }

  /** A replica whose storage counts read-write transactions. */
  async function counting(): Promise<{ replica: Replica; writes: () => number }> {
    let writes = 0;
    const replica = await open(instrumented(makeStorage(), { onTx: (mode) => void (mode === 'readwrite' && writes++) }));
    const before = writes;
    return { replica, writes: () => writes - before };
  }

  /** A replica whose storage refuses to store the record `id`. */
  function refusing(id: string, message: string): Promise<Replica> {
    return open(
      instrumented(makeStorage(), {
        fault: (method, arg) => {
          if (method === 'putRecord' && (arg as { id: string }).id === id) throw new Error(message);
        },
      }),
    );
  }

  it('concurrent writes share a transaction, keep their call order and are all stored', async () => {
    const { replica, writes } = await counting();
    await Promise.all(Array.from({ length: 200 }, (_, i) => replica.put('events', `e${i}`, { start: i, title: `event ${i}` })));
    // One transaction for the whole burst (a second one at most, if the first commit started early).
    expect(writes()).toBeLessThanOrEqual(2);
    expect(await replica.count({ collection: 'events' })).toBe(200);
    const outbox = await outboxOf(replica);
    expect(outbox.map((c) => c.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(outbox.map((c) => c.id)).toEqual(Array.from({ length: 200 }, (_, i) => `e${i}`));
    // Timestamps follow the call order too.
    const hlcs = outbox.map((c) => c.hlc);
    expect([...hlcs].sort()).toEqual(hlcs);
  });

  it('writes made while a commit runs go together in the next one', async () => {
    const { replica, writes } = await counting();
    const first = replica.put('events', 'first', { start: 0 });
    // After the first commit has started: these queue behind it.
    await Promise.resolve();
    await Promise.resolve();
    const rest = Array.from({ length: 50 }, (_, i) => replica.put('events', `later${i}`, { start: i + 1 }));
    await Promise.all([first, ...rest]);
    expect(writes()).toBeLessThanOrEqual(3);
    expect(await replica.count({ collection: 'events' })).toBe(51);
  });

  it('a write that fails its transaction fails alone; the others of its group are stored', async () => {
    const replica = await refusing('bad', 'disk full for this one');
    const results = await Promise.allSettled([
      replica.put('events', 'a', { start: 1 }),
      replica.put('events', 'bad', { start: 2 }),
      replica.batch((b) => {
        b.put('events', 'c', { start: 3 });
        b.put('events', 'd', { start: 4 });
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/disk full for this one/);
    expect((await replica.query({ collection: 'events' })).map((r) => r.id)).toEqual(['a', 'c', 'd']);
    // Nothing of the failed write reached the outbox, and seqs have no gap.
    const outbox = await outboxOf(replica);
    expect(outbox.map((c) => [c.id, c.seq])).toEqual([
      ['a', 1],
      ['c', 2],
      ['d', 3],
    ]);
  });

  it('a batch stays all-or-nothing inside a group', async () => {
    const replica = await refusing('poison', 'refused');
    const results = await Promise.allSettled([
      replica.put('events', 'x', { start: 1 }),
      replica.batch((b) => {
        b.put('events', 'y', { start: 2 });
        b.put('events', 'poison', { start: 3 });
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect((await replica.query({ collection: 'events' })).map((r) => r.id)).toEqual(['x']);
  });
});

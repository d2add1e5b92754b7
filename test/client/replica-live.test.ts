/**
 * Live queries on every storage: a result now, a new one after each change that
 * alters it (local or remote), nothing for other collections, one callback per
 * transaction, none after unsubscribe. Query executions are counted through an
 * instrumented storage, so "not re-run" is observed, not inferred from silence.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createReplica, defineSchema, memoryStorage, type Replica, type Storage, type StorageFactory } from '@syncline/client';
import { instrumented, LiveLog, outboxOf, STORAGES, uniqueName } from './helpers.js';
import { portOf } from '../internals.js';

const schema = defineSchema({
  events: { indexes: { byStart: ['start'] } },
  tasks: {},
});

/** Holds read-only transactions (query runs) while a gate is set, to have a run in flight on purpose. */
interface Gate {
  gate: Promise<void> | undefined;
  /** Transactions that were held, to wait until they settled. */
  readonly held: Array<Promise<unknown>>;
}

function gated(inner: StorageFactory, state: Gate): StorageFactory {
  return async (name) => {
    const storage = await inner(name);
    const wrapped: Storage = {
      kind: storage.kind,
      transaction(mode, fn) {
        if (mode !== 'readonly' || !state.gate) return storage.transaction(mode, fn);
        const held = state.gate.then(() => storage.transaction(mode, fn));
        state.held.push(held.catch(() => undefined));
        return held;
      },
      close: () => storage.close(),
    };
    return wrapped;
  };
}

describe.each(STORAGES)('live queries on %s storage', (_kind, makeStorage) => {
  const opened: Replica[] = [];
  let reads = 0;
  async function open(storage: StorageFactory = makeStorage(), options: { onError?: (e: Error) => void } = {}): Promise<Replica> {
    const replica = await createReplica({
      name: uniqueName('live'),
      schema,
      tabs: false,
      storage: instrumented(storage, { onTx: (mode) => void (mode === 'readonly' && reads++) }),
      ...options,
    });
    opened.push(replica as unknown as Replica);
    return replica as unknown as Replica;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
  });

  it('reports a query that fails while running to its own onError, not to the replica', async () => {
    const replicaErrors: Error[] = [];
    const r = await open(makeStorage(), { onError: (e) => replicaErrors.push(e) });
    const failure = new Promise<Error>((resolve) => {
      // Two eq values on a one-field index: refused when the query runs, not when it subscribes.
      r.subscribe({ collection: 'events', index: 'byStart', eq: [1, 2] }, () => undefined, { onError: resolve });
    });
    const error = await Promise.race([failure, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no onError within 5 s')), 5000))]);
    expect((error as { code?: string }).code).toBe('invalid_argument');
    expect(replicaErrors).toEqual([]);
  });

  it('re-emits after an affecting change, not after a change to another collection or outside its range', async () => {
    const r = await open();
    await r.put('events', 'e1', { start: 1 });
    const all = new LiveLog();
    const late = new LiveLog();
    r.subscribe({ collection: 'events', index: 'byStart' }, all.callback);
    r.subscribe({ collection: 'events', index: 'byStart', range: { gte: 100 } }, late.callback);
    expect((await all.until((rows) => rows.length === 1, 'the initial result')).map((x) => x.id)).toEqual(['e1']);
    await late.until((rows) => rows.length === 0, 'the initial empty result');

    const before = reads;
    await r.put('tasks', 't1', { title: 'other collection' });
    await r.put('events', 'e2', { start: 2 });
    expect((await all.next((rows) => rows.length === 2, 'the result with e2')).map((x) => x.id)).toEqual(['e1', 'e2']);
    // One re-run per subscription for the events write, none for the tasks write.
    expect(reads - before).toBe(2);
    expect(all.calls).toHaveLength(2);
    // e2 is outside the range: that query re-ran but its result did not change, so no callback.
    await r.put('events', 'e3', { start: 150 });
    expect((await late.next((rows) => rows.length === 1, 'the in-range write')).map((x) => x.id)).toEqual(['e3']);
    expect(late.calls).toHaveLength(2);
    await all.until((rows) => rows.length === 3, 'e3 in the full query');
    expect(all.calls).toHaveLength(3);

    // Deletes and patches that move a record in the order re-emit too.
    await r.patch('events', 'e1', { start: 200 });
    expect((await all.next((rows) => rows[2]?.id === 'e1', 'e1 moved last')).map((x) => x.id)).toEqual(['e2', 'e3', 'e1']);
    await r.delete('events', 'e3');
    expect((await late.next((rows) => rows.length === 1 && rows[0]?.id === 'e1', 'e3 deleted')).map((x) => x.id)).toEqual(['e1']);
  });

  it('re-emits after a remote change', async () => {
    const writer = await createReplica({ name: uniqueName('writer'), schema, tabs: false, storage: memoryStorage() });
    opened.push(writer as unknown as Replica);
    await writer.put('events', 'remote', { start: 5 });
    const r = await open();
    const log = new LiveLog();
    r.subscribe({ collection: 'events', index: 'byStart' }, log.callback);
    await log.until((rows) => rows.length === 0, 'the initial empty result');
    await portOf(r).applyRemote(await outboxOf(writer));
    expect((await log.next((rows) => rows.length === 1, 'the remote record')).map((x) => [x.id, x.value])).toEqual([['remote', { start: 5 }]]);
  });

  it('coalesces: 100 writes in one batch give one callback and one re-run', async () => {
    const r = await open();
    const log = new LiveLog();
    r.subscribe({ collection: 'events', index: 'byStart' }, log.callback);
    await log.until((rows) => rows.length === 0, 'the initial empty result');
    const before = reads;
    await r.batch((b) => {
      for (let i = 0; i < 100; i++) b.put('events', `e${i}`, { start: i });
    });
    const rows = await log.next((x) => x.length === 100, 'all 100 records');
    expect(rows.map((x) => x.value.start)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(reads - before).toBe(1);
    // A later write is the next callback: nothing from the batch arrived after the first.
    await r.put('events', 'z', { start: 1_000 });
    await log.next((x) => x.length === 101, 'the write after the batch');
    expect(log.calls.map((x) => x.length)).toEqual([0, 100, 101]);
  });

  it('stops calling back after unsubscribe, even when the first result is still running', async () => {
    const r = await open();
    const witness = new LiveLog();
    const stopped = new LiveLog();
    const never = new LiveLog();
    r.subscribe({ collection: 'events' }, witness.callback);
    const unsubscribe = r.subscribe({ collection: 'events' }, stopped.callback);
    r.subscribe({ collection: 'events' }, never.callback)();
    await witness.until((rows) => rows.length === 0, 'the initial result');
    await stopped.until((rows) => rows.length === 0, 'the initial result');
    unsubscribe();
    unsubscribe();
    for (let i = 1; i <= 2; i++) {
      await r.put('events', `e${i}`, { start: i });
      await witness.next((rows) => rows.length === i, `write ${i}`);
    }
    expect(stopped.calls).toHaveLength(1);
    expect(never.calls).toHaveLength(0);
  });

  it('changes during a run in flight cause one more run, not one each, and no stale callback', async () => {
    const state: Gate = { gate: undefined, held: [] };
    const r = await open(gated(makeStorage(), state));
    const log = new LiveLog();
    r.subscribe({ collection: 'events', index: 'byStart' }, log.callback);
    await log.until((rows) => rows.length === 0, 'the initial result');
    let release: () => void = () => undefined;
    state.gate = new Promise<void>((resolve) => (release = resolve));
    const before = reads;
    await r.put('events', 'e0', { start: 0 });
    for (let i = 1; i <= 10; i++) await r.put('events', `e${i}`, { start: i });
    state.gate = undefined;
    release();
    await log.next((rows) => rows.length === 11, 'the result with all eleven writes');
    // The run held at the gate saw a stale state: it is dropped and run once more.
    expect(reads - before).toBe(2);
    expect(log.calls.map((rows) => rows.length)).toEqual([0, 11]);
  });

  it('closing the replica ends its live queries quietly, even with a run in flight', async () => {
    const state: Gate = { gate: undefined, held: [] };
    const errors: Error[] = [];
    const r = await open(gated(makeStorage(), state), { onError: (e) => errors.push(e) });
    const log = new LiveLog();
    r.subscribe({ collection: 'events' }, log.callback);
    await log.until((rows) => rows.length === 0, 'the initial result');
    let release: () => void = () => undefined;
    state.gate = new Promise<void>((resolve) => (release = resolve));
    const before = reads;
    await r.put('events', 'e1', { start: 1 });
    await r.close();
    release();
    // The held run reaches its closed storage; wait until it settled, then one macrotask for its handlers.
    expect(state.held).toHaveLength(1);
    await Promise.all(state.held);
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads - before).toBe(1);
    expect(errors).toEqual([]);
    expect(log.calls).toHaveLength(1);
  });
});

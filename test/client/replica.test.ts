/**
 * The replica without network sync, on every storage: persistence across reopen,
 * all-or-nothing writes, validation, prototype-safe names, typed errors and
 * schema upgrades in place.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { compareHlc, formatTimestamp, spaceId, SynclineError, type Change, type Fields, type HlcString } from '@syncline/core/internal';
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { createReplica, defineSchema, indexedDbStorage, ReplicaError, type CollectionSchema, type Replica, type ReplicaOptions, type Schema, type StorageFactory } from '@syncline/client';
import { instrumented, nextCommit, outboxCount, outboxOf, storedStates, STORAGES, uniqueName, within } from './helpers.js';
import { portOf, storageOf } from '../internals.js';

const schema = defineSchema({
  events: { indexes: { byStart: ['start'], byRoomStart: ['room', 'start'] }, crdt: { notes: 'text' } },
  tasks: {},
  docs: { policy: 'merge' },
});

/** Rejects with a ReplicaError of `code` (sync throws count too). */
async function expectCode(action: () => unknown, code: string): Promise<ReplicaError> {
  let error: unknown;
  try {
    await action();
  } catch (e) {
    error = e;
  }
  expect(error, `expected a ReplicaError "${code}"`).toBeInstanceOf(ReplicaError);
  expect((error as ReplicaError).code).toBe(code);
  expect((error as ReplicaError).name).toBe('ReplicaError');
  expect(error).toBeInstanceOf(SynclineError);
  return error as ReplicaError;
}

describe.each(STORAGES)('replica on %s storage', (_kind, makeStorage) => {
  const opened: Replica[] = [];
  async function open<S extends Schema>(options: Partial<ReplicaOptions<S>> & { storage: StorageFactory; name: string; schema: S }): Promise<Replica<S>> {
    const replica = await createReplica<S>({ tabs: false, ...options });
    opened.push(replica as unknown as Replica);
    return replica;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
  });

  describe('persistence', () => {
    it('keeps records, the outbox, the clock and the replica id across a reopen; the clock never goes back', async () => {
      const storage = makeStorage();
      const name = uniqueName('reopen');
      let time = 1_800_000_000_000;
      const now = () => time;
      const r1 = await open({ name, storage, schema, now });
      await r1.put('events', 'e1', { title: 'a', start: 1, room: 'x' });
      await r1.patch('events', 'e1', { title: 'b' });
      await r1.put('events', 'e2', { title: 'c', start: 2 });
      await r1.delete('events', 'e2');
      await r1.put('tasks', 't1', { done: false }, { space: 'work' });
      await r1.put('docs', 'd1', { v: 1 });
      const text = await r1.text('events', 'e1', 'notes');
      const written = nextCommit(r1, 'the text edit commit');
      text.insert(0, 'hello');
      await written;

      const outbox = await outboxOf(r1);
      const work = await outboxOf(r1, spaceId('work'));
      expect(outbox.map((c) => [c.seq, c.op])).toEqual([
        [1, 'put'],
        [2, 'patch'],
        [3, 'put'],
        [4, 'delete'],
        [5, 'version'],
        [6, 'crdt'],
      ]);
      expect(work.map((c) => c.seq)).toEqual([1]);
      const last = r1.lastTimestamp;
      const states = [...(await storedStates(r1, 'events')), ...(await storedStates(r1, 'tasks')), ...(await storedStates(r1, 'docs'))];
      await r1.close();

      time -= 3_600_000; // the device clock steps back an hour
      const r2 = await open({ name, storage, schema, now });
      expect(r2.id).toBe(r1.id);
      expect(r2.lastTimestamp).toBe(last);
      expect((await r2.get('events', 'e1'))?.value).toEqual({ title: 'b', start: 1, room: 'x', notes: 'hello' });
      expect(await r2.get('events', 'e2')).toBeUndefined();
      expect((await r2.get('tasks', 't1', { space: 'work' }))?.value).toEqual({ done: false });
      expect((await r2.query({ collection: 'events', index: 'byRoomStart', eq: ['x'] })).map((r) => r.id)).toEqual(['e1']);
      expect(await outboxOf(r2)).toEqual(outbox);
      expect(await outboxOf(r2, spaceId('work'))).toEqual(work);
      expect([...(await storedStates(r2, 'events')), ...(await storedStates(r2, 'tasks')), ...(await storedStates(r2, 'docs'))]).toEqual(states);
      expect((await r2.text('events', 'e1', 'notes')).toString()).toBe('hello');

      await r2.put('events', 'e3', { start: 3 });
      await r2.patch('events', 'e3', { start: 4 });
      await r2.put('tasks', 't2', { done: true }, { space: 'work' });
      const after = await outboxOf(r2);
      expect(after.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect((await outboxOf(r2, spaceId('work'))).map((c) => c.seq)).toEqual([1, 2]);
      const hlcs = [...after.map((c) => c.hlc), ...(await outboxOf(r2, spaceId('work'))).map((c) => c.hlc)];
      for (const hlc of after.slice(6).map((c) => c.hlc)) expect(compareHlc(hlc, last)).toBeGreaterThan(0);
      expect(new Set(hlcs).size).toBe(hlcs.length);
      for (let i = 1; i < after.length; i++) expect(compareHlc((after[i] as Change).hlc, (after[i - 1] as Change).hlc)).toBeGreaterThan(0);
    });

    it('keeps a clock advanced by a remote change across a reopen', async () => {
      const storage = makeStorage();
      const name = uniqueName('reopen-remote');
      let time = 1_800_000_000_000;
      const writer = await open({ name: uniqueName('writer'), storage: makeStorage(), schema, now: () => time + 120_000 });
      await writer.put('events', 'w', { start: 1 });
      const remote = await outboxOf(writer);
      const r1 = await open({ name, storage, schema, now: () => time });
      await portOf(r1).applyRemote(remote);
      expect(compareHlc(r1.lastTimestamp, (remote[0] as Change).hlc)).toBeGreaterThan(0);
      await r1.close();
      time -= 1_000;
      const r2 = await open({ name, storage, schema, now: () => time });
      await r2.put('events', 'mine', { start: 2 });
      const [mine] = await outboxOf(r2);
      expect(mine?.seq).toBe(1);
      expect(compareHlc(mine?.hlc as HlcString, (remote[0] as Change).hlc)).toBeGreaterThan(0);
      // The remote change is applied but never enters this replica's outbox.
      expect(await outboxCount(r2)).toBe(1);
      expect((await r2.get('events', 'w'))?.value).toEqual({ start: 1 });
    });
  });

  describe('outbox', () => {
    it('a large batch queues every change of each space in seq order, and updates the records it read', async () => {
      const r = await open({ name: uniqueName('big-batch'), storage: makeStorage(), schema });
      const id = (i: number) => `e${String(i).padStart(4, '0')}`;
      await r.batch((b) => {
        for (let i = 0; i < 2_500; i++) {
          b.put('events', id(i), { start: i, room: `r${i % 3}` });
          if (i % 1_000 === 999) b.put('tasks', `t${i}`, { done: false }, { space: 'work' });
        }
      });
      const queued = await outboxOf(r);
      expect(queued.map((c) => [c.seq, c.id])).toEqual(Array.from({ length: 2_500 }, (_, i) => [i + 1, id(i)]));
      expect((await outboxOf(r, spaceId('work'))).map((c) => [c.seq, c.id])).toEqual([
        [1, 't999'],
        [2, 't1999'],
      ]);
      expect([await outboxCount(r), await outboxCount(r, r.defaultSpace), await outboxCount(r, spaceId('work'))]).toEqual([2_502, 2_500, 2]);
      // A batch over existing records (and a few new ones) reads each of them: patches keep the other fields.
      await r.batch((b) => {
        for (let i = 100; i < 140; i++) b.patch('events', id(i), { room: 'moved' });
        b.put('events', 'new', { start: -1 });
      });
      expect((await r.get('events', id(120)))?.value).toEqual({ start: 120, room: 'moved' });
      expect((await r.query({ collection: 'events', index: 'byRoomStart', eq: ['moved'] })).map((x) => x.id)).toEqual(Array.from({ length: 40 }, (_, k) => id(100 + k)));
      expect((await outboxOf(r)).slice(2_500).map((c) => [c.seq, c.op])).toEqual([...Array.from({ length: 40 }, (_, k) => [2_501 + k, 'patch']), [2_541, 'put']]);
      // Acknowledging up to a seq inside the second batch's entries leaves the rest, in order.
      expect(await storageOf(r).transaction('readwrite', (tx) => tx.ackOutbox(r.defaultSpace, 1_500))).toBe(1_500);
      const left = await outboxOf(r);
      expect([left.length, left[0]?.seq, left[left.length - 1]?.seq, await outboxCount(r)]).toEqual([1_041, 1_501, 2_541, 1_043]);
    });
  });

  describe('all or nothing', () => {
    async function expectNothingStored(r: Replica, ids: string[]): Promise<void> {
      for (const id of ids) expect(await r.get('events', id)).toBeUndefined();
      expect(await r.query({ collection: 'events', index: 'byStart' })).toEqual([]);
      expect(await r.count({ collection: 'events' })).toBe(0);
      expect(await outboxCount(r)).toBe(0);
    }

    it('a batch whose callback throws after queuing writes stores nothing', async () => {
      const r = await open({ name: uniqueName('batch-throw'), storage: makeStorage(), schema });
      const boom = new Error('app bug');
      await expect(
        r.batch((b) => {
          b.put('events', 'a', { start: 1 });
          b.put('events', 'b', { start: 2 });
          throw boom;
        }),
      ).rejects.toBe(boom);
      await expectNothingStored(r, ['a', 'b']);
      // No sequence number was used.
      await r.put('events', 'c', { start: 3 });
      expect((await outboxOf(r)).map((c) => c.seq)).toEqual([1]);
    });

    it('a batch with an invalid write stores none of its valid writes', async () => {
      const r = await open({ name: uniqueName('batch-invalid'), storage: makeStorage(), schema });
      await expectCode(
        () =>
          r.batch((b) => {
            b.put('events', 'a', { start: 1 });
            b.patch('events', 'b', { start: 2 });
            // @ts-expect-error: refused by the type, and at run time for untyped callers
            b.put('nope', 'x', {});
            b.put('events', 'c', { start: 3 });
          }),
        'unknown_collection',
      );
      await expectNothingStored(r, ['a', 'b', 'c']);
      await expectCode(
        () =>
          r.batch((b) => {
            b.put('events', 'a', { start: 1 });
            b.put('events', 'b', { start: Number.NaN });
          }),
        'invalid_argument',
      );
      await expectNothingStored(r, ['a', 'b']);
    });

    it('a failure inside the storage transaction, after some writes, stores nothing and uses no sequence number', async () => {
      let fail: ((method: string, arg: unknown) => boolean) | undefined;
      const storage = instrumented(makeStorage(), {
        fault: (method, arg) => {
          if (fail?.(method, arg)) throw new Error('disk on fire');
        },
      });
      const r = await open({ name: uniqueName('tx-fault'), storage, schema });
      await r.put('events', 'before', { start: 0 });
      const clockBefore = await storageOf(r).transaction('readonly', (tx) => tx.getMeta('clock'));
      fail = (method, arg) => method === 'addOutbox' && (arg as Change[]).some((c) => c.id === 'b');
      const commits: unknown[] = [];
      const off = r.onCommit((e) => commits.push(e));
      await expect(
        r.batch((b) => {
          b.put('events', 'a', { start: 1 });
          b.put('events', 'b', { start: 2 });
          b.put('events', 'c', { start: 3 });
        }),
      ).rejects.toThrow('disk on fire');
      off();
      fail = undefined;
      expect(commits).toEqual([]);
      for (const id of ['a', 'b', 'c']) expect(await r.get('events', id)).toBeUndefined();
      expect((await r.query({ collection: 'events', index: 'byStart' })).map((x) => x.id)).toEqual(['before']);
      expect(await storageOf(r).transaction('readonly', (tx) => tx.getMeta('clock'))).toBe(clockBefore);
      await r.put('events', 'after', { start: 4 });
      expect((await outboxOf(r)).map((c) => [c.id, c.seq])).toEqual([
        ['before', 1],
        ['after', 2],
      ]);
    });

    it('an aborted storage transaction leaves neither a record nor an outbox entry', async () => {
      const r = await open({ name: uniqueName('tx-abort'), storage: makeStorage(), schema });
      const hlc = formatTimestamp({ wall: 1, counter: 0, replica: r.id });
      const change: Change = { space: r.defaultSpace, collection: 'events', id: 'x', replica: r.id, seq: 1, hlc, op: 'put', fields: { start: 1 } };
      await expect(
        storageOf(r).transaction('readwrite', async (tx) => {
          await tx.putRecord({ collection: 'events', id: 'x', space: r.defaultSpace, state: {}, value: { start: 1 }, ix: [] });
          await tx.addOutbox([change]);
          tx.abort();
        }),
      ).rejects.toThrow();
      await expectNothingStored(r, ['x']);
    });
  });

  describe('validation', () => {
    const titled = (calls: unknown[], delay = false): CollectionSchema['validate'] => ({
      '~standard': {
        version: 1,
        vendor: 'test',
        validate(value: unknown) {
          calls.push(value);
          const title = (value as { title?: unknown }).title;
          const result =
            typeof title === 'string' && title.length > 0
              ? { value }
              : { issues: [{ message: 'title must be a non-empty string', path: [{ key: 'title' }] }, { message: 'second issue' }] };
          return delay ? new Promise((resolve) => setTimeout(() => resolve(result), 1)) : result;
        },
      },
    });

    it.each([
      ['a synchronous', false],
      ['an asynchronous', true],
    ])('%s validator refusal stores nothing and says why', async (_what, delay) => {
      const calls: unknown[] = [];
      const s = defineSchema({ notes: { validate: titled(calls, delay), crdt: { body: 'text' } } });
      const r = await open({ name: uniqueName('validate'), storage: makeStorage(), schema: s });
      const refused = await expectCode(() => r.put('notes', 'n1', { title: '', extra: 1 }), 'validation_failed');
      expect(refused.issues).toEqual([{ message: 'title must be a non-empty string', path: ['title'] }, { message: 'second issue' }]);
      expect(refused.message).toContain('title: title must be a non-empty string');
      expect(refused.message).toContain('notes/n1');
      expect(calls).toEqual([{ title: '', extra: 1 }]);
      expect(await r.get('notes', 'n1')).toBeUndefined();
      expect(await outboxCount(r)).toBe(0);

      await r.put('notes', 'n1', { title: 'ok', extra: 1 });
      expect((await r.get('notes', 'n1'))?.value).toEqual({ title: 'ok', extra: 1 });
      // A patch is validated as the value it would produce; removing the title is refused.
      const patchRefused = await expectCode(() => r.patch('notes', 'n1', { title: undefined, more: 2 }), 'validation_failed');
      expect(patchRefused.issues[0]?.path).toEqual(['title']);
      expect(calls[calls.length - 1]).toEqual({ extra: 1, more: 2 });
      expect((await r.get('notes', 'n1'))?.value).toEqual({ title: 'ok', extra: 1 });
      expect(await outboxCount(r)).toBe(1);
      // crdt fields are not part of the validated value.
      const body = await r.text('notes', 'n1', 'body');
      const edited = nextCommit(r, 'the text edit');
      body.insert(0, 'text');
      await edited;
      await r.patch('notes', 'n1', { more: 3 });
      expect(calls[calls.length - 1]).toEqual({ title: 'ok', extra: 1, more: 3 });
      // One refused write in a batch refuses the batch.
      await expectCode(
        () =>
          r.batch((b) => {
            b.put('notes', 'n2', { title: 'fine' });
            b.put('notes', 'n3', { title: 7 });
          }),
        'validation_failed',
      );
      expect(await r.get('notes', 'n2')).toBeUndefined();
      expect(await outboxCount(r)).toBe(3);
    });
  });

  it('__proto__, constructor and toString are ordinary record ids, field, index and collection names', async () => {
    const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    const json = (text: string) => JSON.parse(text) as Fields;
    const s = defineSchema({
      things: { indexes: { byCtor: ['constructor'], toString: ['toString', '__proto__'] } },
      ['__proto__']: { indexes: { constructor: ['__proto__'] } },
      constructor: { policy: 'merge' },
    });
    const r = await open({ name: uniqueName('proto'), storage: makeStorage(), schema: s });
    const ids = ['__proto__', 'constructor', 'toString'];
    for (const [i, id] of ids.entries()) {
      await r.put('things', id, json(`{"__proto__": "p${i}", "constructor": "c${i}", "toString": ${i}, "hasOwnProperty": true}`));
    }
    const got = await r.get('things', '__proto__');
    expect(Object.getPrototypeOf(got?.value)).toBe(Object.prototype);
    expect(Object.keys(got?.value ?? {}).sort()).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
    expect(Object.getOwnPropertyDescriptor(got?.value, '__proto__')?.value).toBe('p0');
    expect(Object.getOwnPropertyDescriptor(got?.value, 'constructor')?.value).toBe('c0');

    await r.patch('things', '__proto__', json('{"constructor": "c9", "__proto__": "p9"}'));
    await r.patch('things', 'toString', { toString: undefined });
    const patched = await r.get('things', '__proto__');
    expect(Object.getOwnPropertyDescriptor(patched?.value, '__proto__')?.value).toBe('p9');
    expect((await r.query({ collection: 'things', index: 'byCtor', eq: ['c9'] })).map((x) => x.id)).toEqual(['__proto__']);
    expect((await r.query({ collection: 'things', index: 'byCtor', range: { gte: 'c0', lt: 'c9' } })).map((x) => x.id)).toEqual(['constructor', 'toString']);
    expect((await r.query({ collection: 'things', index: 'byCtor', order: 'desc' })).map((x) => x.id)).toEqual(['__proto__', 'toString', 'constructor']);
    // toString was unset on one record: it leaves the index on that field.
    expect((await r.query({ collection: 'things', index: 'toString' })).map((x) => [x.id, Object.getOwnPropertyDescriptor(x.value, '__proto__')?.value])).toEqual([
      ['__proto__', 'p9'],
      ['constructor', 'p1'],
    ]);
    expect((await r.query({ collection: 'things' })).map((x) => x.id)).toEqual(ids);
    expect(await r.count({ collection: 'things', index: 'toString', eq: [1] })).toBe(1);
    await r.delete('things', 'constructor');
    expect(await r.get('things', 'constructor')).toBeUndefined();
    expect((await r.query({ collection: 'things', index: 'byCtor' })).map((x) => x.id)).toEqual(['toString', '__proto__']);

    await r.put('__proto__', 'constructor', json('{"__proto__": "x"}'));
    expect((await r.query({ collection: '__proto__', index: 'constructor', eq: ['x'] })).map((x) => x.id)).toEqual(['constructor']);
    await r.put('constructor', 'toString', json('{"__proto__": 1}'));
    await r.patch('constructor', 'toString', json('{"constructor": 2}'));
    const merged = await r.get('constructor', 'toString');
    expect(Object.keys(merged?.value ?? {}).sort()).toEqual(['__proto__', 'constructor']);
    expect(await r.conflicts('constructor', 'toString')).toEqual([]);

    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
    const plain: Record<string, unknown> = {};
    expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
    expect(plain.constructor).toBe(Object);
    expect(typeof plain.toString).toBe('function');
    expect(Object.keys(Object.prototype)).toEqual([]);
    for (const leaked of ['p0', 'p9', 'c9', 'title']) expect(leaked in plain).toBe(false);
  });

  it('refuses bad calls with typed errors', async () => {
    const r = await open({ name: uniqueName('errors'), storage: makeStorage(), schema });
    await r.put('events', 'e1', { start: 1 });

    for (const call of [
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.put('nope', 'x', {}),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.patch('nope', 'x', {}),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.delete('nope', 'x'),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.get('nope', 'x'),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.query({ collection: 'nope' }),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.count({ collection: 'nope' }),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.conflicts('nope', 'x'),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.text('nope', 'x', 'notes'),
      // @ts-expect-error: refused by the type, and at run time for untyped callers
      () => r.subscribe({ collection: 'nope' }, () => undefined),
    ]) {
      await expectCode(call, 'unknown_collection');
    }
    // @ts-expect-error: refused by the type, and at run time for untyped callers
    await expectCode(() => r.query({ collection: 'events', index: 'nope' }), 'unknown_index');
    // @ts-expect-error: refused by the type, and at run time for untyped callers
    await expectCode(() => r.count({ collection: 'events', index: 'nope', eq: [1] }), 'unknown_index');
    // @ts-expect-error: refused by the type, and at run time for untyped callers
    await expectCode(() => r.subscribe({ collection: 'events', index: 'nope' }, () => undefined), 'unknown_index');

    class Point {
      x = 1;
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const value of [{ a: undefined }, { a: Number.NaN }, { a: Infinity }, { a: new Date() }, { a: () => 1 }, { a: 10n }, { a: new Point() }, { a: cyclic }, new Point(), [], null]) {
      await expectCode(() => r.put('events', 'bad', value as unknown as Fields), 'invalid_argument');
    }
    await expectCode(() => r.patch('events', 'e1', { start: Number.NaN }), 'invalid_argument');
    await expectCode(() => r.patch('events', 'e1', { start: { deep: Symbol('x') } as unknown as Fields }), 'invalid_argument');
    await expectCode(() => r.put('events', '', { start: 1 }), 'invalid_argument');
    await expectCode(() => r.put('events', 'x'.repeat(513), { start: 1 }), 'invalid_argument');
    await expectCode(() => r.put('events', 'x', { start: 1 }, { space: 'has space' }), 'invalid_argument');
    await expectCode(() => r.query({ collection: 'events', index: 'byStart', limit: -1 }), 'invalid_argument');
    await expectCode(() => r.query({ collection: 'events', index: 'byStart', eq: [1, 2, 3] }), 'invalid_argument');
    await expectCode(() => r.query({ collection: 'events', eq: [1] }), 'invalid_argument');
    await expectCode(() => r.query({ collection: 'events', index: 'byStart', range: { gt: { a: 1 } as unknown as number } }), 'invalid_argument');

    // crdt fields are edited through their Yjs type only.
    await expectCode(() => r.put('events', 'e1', { start: 1, notes: 'text' }), 'invalid_argument');
    await expectCode(() => r.patch('events', 'e1', { notes: 'text' }), 'invalid_argument');
    // @ts-expect-error: refused by the type, and at run time for untyped callers
    await expectCode(() => r.text('events', 'e1', 'title'), 'unknown_field');
    // @ts-expect-error: refused by the type, and at run time for untyped callers
    await expectCode(() => r.map('events', 'e1', 'notes'), 'invalid_argument');
    // @ts-expect-error: refused by the type, and at run time for untyped callers
    await expectCode(() => r.conflicts('events', 'e1'), 'wrong_policy');
    expect((await r.get('events', 'e1'))?.value).toEqual({ start: 1 });
    expect(await outboxCount(r)).toBe(1);

    await r.close();
    await r.close();
    expect(r.closed).toBe(true);
    for (const call of [
      () => r.put('events', 'x', { start: 1 }),
      () => r.patch('events', 'e1', { start: 2 }),
      () => r.delete('events', 'e1'),
      () => r.batch((b) => b.put('events', 'x', {})),
      () => r.get('events', 'e1'),
      () => r.query({ collection: 'events' }),
      () => r.count({ collection: 'events' }),
      () => r.conflicts('docs', 'x'),
      () => r.subscribe({ collection: 'events' }, () => undefined),
      () => r.text('events', 'e1', 'notes'),
      () => portOf(r).applyRemote([]),
    ]) {
      await expectCode(call, 'closed');
    }
  });

  it('upgrades the schema in place: a new collection and a new index see the old records', async () => {
    const storage = makeStorage();
    const name = uniqueName('upgrade');
    const v1 = defineSchema({ events: { indexes: { byStart: ['start'] } } });
    const r1 = await open({ name, storage, schema: v1 });
    await r1.batch((b) => {
      for (let i = 0; i < 60; i++) b.put('events', `e${String(i).padStart(2, '0')}`, { start: 100 - i, ...(i % 3 === 0 ? {} : { room: `r${i % 3}` }) });
    });
    await r1.delete('events', 'e01');
    await r1.close();

    const v2 = defineSchema({ events: { indexes: { byStart: ['start'], byRoom: ['room', 'start'] } }, rooms: { indexes: { byName: ['name'] } } });
    const r2 = await open({ name, storage, schema: v2 });
    expect(await r2.count({ collection: 'events' })).toBe(59);
    expect((await r2.get('events', 'e05'))?.value).toEqual({ start: 95, room: 'r2' });
    const byStart = await r2.query({ collection: 'events', index: 'byStart', limit: 3 });
    expect(byStart.map((r) => r.id)).toEqual(['e59', 'e58', 'e57']);
    const r1Room = await r2.query({ collection: 'events', index: 'byRoom', eq: ['r1'] });
    const expected = Array.from({ length: 60 }, (_, i) => i)
      .filter((i) => i % 3 === 1 && i !== 1)
      .sort((a, b) => 100 - a - (100 - b))
      .map((i) => `e${String(i).padStart(2, '0')}`);
    expect(r1Room.map((r) => r.id)).toEqual(expected);
    expect(await r2.count({ collection: 'events', index: 'byRoom' })).toBe(39);
    expect(await r2.count({ collection: 'events', index: 'byRoom', eq: ['r2'], range: { gte: 50 } })).toBe(17);
    await r2.put('rooms', 'big', { name: 'Big room' });
    expect((await r2.query({ collection: 'rooms', index: 'byName', eq: ['Big room'] })).map((r) => r.id)).toEqual(['big']);
    // New writes maintain the new index.
    await r2.patch('events', 'e00', { room: 'r1' });
    expect((await r2.query({ collection: 'events', index: 'byRoom', eq: ['r1'], order: 'desc', limit: 1 })).map((r) => r.id)).toEqual(['e00']);
    await r2.close();

    // Dropping the index and adding it back (with other fields) rebuilds it again.
    const r3 = await open({ name, storage, schema: v1 });
    await r3.patch('events', 'e02', { room: 'r1' });
    await r3.close();
    const v4 = defineSchema({ events: { indexes: { byStart: ['start'], byRoom: ['room'] } }, rooms: {} });
    const r4 = await open({ name, storage, schema: v4 });
    expect(await r4.count({ collection: 'events', index: 'byRoom', eq: ['r1'] })).toBe(expected.length + 2);
    expect((await r4.query({ collection: 'events', index: 'byRoom', eq: ['r1'], limit: 2 })).map((r) => r.id)).toEqual(['e00', 'e02']);
    expect(await r4.count({ collection: 'events', index: 'byStart' })).toBe(59);
    expect((await r4.get('rooms', 'big'))?.value).toEqual({ name: 'Big room' });
  });
});

describe('replica on indexeddb: another tab deletes or upgrades the database', () => {
  it('steps aside: closes, reports a coded error, and lets the deletion finish', async () => {
    const indexedDB = new IDBFactory();
    const name = uniqueName('deleted');
    const errors: Error[] = [];
    const r = await createReplica({ name, schema, storage: indexedDbStorage({ indexedDB }), tabs: false, onError: (e) => errors.push(e) });
    await r.put('events', 'e1', { start: 1 });
    const deleted = new Promise<void>((resolve, reject) => {
      const request = indexedDB.deleteDatabase(`syncline:${name}`);
      request.onsuccess = () => resolve();
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error('the replica blocked the deletion'));
    });
    await within(deleted, 5_000, 'the database deletion');
    expect(errors.map((e) => (e as ReplicaError).code)).toEqual(['closed']);
    await within(
      (async () => {
        while (!r.closed) await new Promise((resolve) => setImmediate(resolve));
      })(),
      5_000,
      'the replica to close',
    );
    await expectCode(() => r.put('events', 'e2', { start: 2 }), 'closed');
    // A new replica of that name starts empty.
    const again = await createReplica({ name, schema, storage: indexedDbStorage({ indexedDB }), tabs: false });
    expect(await again.get('events', 'e1')).toBeUndefined();
    expect(again.id).not.toBe(r.id);
    await again.close();
  });
});

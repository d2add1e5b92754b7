/**
 * The storage contract (packages/client/src/storage/types.ts), written once and run
 * against every adapter, like automerge-repo's storage-adapter-tests. Call
 * `storageConformance(name, makeFactory)` inside a test file; every call of
 * `makeFactory` must give a fresh, isolated namespace of databases.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { applyChange, formatTimestamp, replicaId, spaceId, type Change, type RecordState, type SpaceId } from '@syncline/core/internal';
import type { Key, Storage, StorageFactory, StoredRecord } from '@syncline/client/storage';

const S1 = spaceId('s1');
const S2 = spaceId('s2');
/** Shares a prefix with s1: a range over s1's keys must not reach it. */
const S10 = spaceId('s10');
const WRITER = replicaId('writer');

function change(space: SpaceId, seq: number, extra: Partial<Change> = {}): Change {
  return {
    space,
    collection: 'events',
    id: `e${seq}`,
    replica: WRITER,
    seq,
    hlc: formatTimestamp({ wall: 1_000 + seq, counter: 0, replica: WRITER }),
    op: 'put',
    fields: { n: seq },
    ...extra,
  } as Change;
}

/** A real record state with Maps (lww fields, merge contexts) and bytes (crdt), to check round-trips. */
function richState(): RecordState {
  let state = applyChange(undefined, change(S1, 1, { op: 'put', fields: { title: 'a', nested: { list: [1, 'x', null] } } } as Partial<Change>));
  state = applyChange(state, change(S1, 2, { op: 'patch', fields: { more: true }, unset: ['title'] } as Partial<Change>));
  state = applyChange(state, change(S1, 3, { op: 'version', value: { v: 1 }, context: new Map([[WRITER, 2]]) } as Partial<Change>));
  return state;
}

function record(collection: string, id: string, space: SpaceId, ix: readonly Key[] = [], value: Record<string, unknown> | undefined = { id }): StoredRecord {
  return { collection, id, space, state: {}, value: value as StoredRecord['value'], ix };
}

/** Changes of `space` with seqs from..to, as one addOutbox entry. */
function changes(space: SpaceId, from: number, to: number): Change[] {
  return Array.from({ length: to - from + 1 }, (_, i) => change(space, from + i));
}

const ids = (records: readonly StoredRecord[]): string[] => records.map((r) => `${r.id}@${r.space}`);

/**
 * The promise rejections no one handled while `fn` ran. Node reports them once the
 * microtask queue has drained, so this waits one macrotask turn (not a time). Where
 * there is no `process` (a browser), none are seen.
 */
async function unhandledDuring(fn: () => Promise<void>): Promise<unknown[]> {
  const proc = (globalThis as { process?: Pick<NodeJS.Process, 'on' | 'off'> }).process;
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => {
    seen.push(reason);
  };
  proc?.on('unhandledRejection', listener);
  try {
    await fn();
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  } finally {
    proc?.off('unhandledRejection', listener);
  }
  return seen;
}

export function storageConformance(name: string, makeFactory: () => StorageFactory): void {
  describe(`storage conformance: ${name}`, () => {
    const open: Storage[] = [];
    let factory: StorageFactory;
    let dbCount = 0;

    async function connect(db?: string): Promise<Storage> {
      factory ??= makeFactory();
      const storage = await factory(db ?? `db${dbCount}`);
      open.push(storage);
      return storage;
    }
    /** A fresh database (a new name in a fresh factory). */
    async function fresh(): Promise<Storage> {
      factory = makeFactory();
      dbCount++;
      return connect();
    }

    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });

    it('meta: the keys with a prefix that hold a value, in key order, the transaction’s own writes included', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        for (const key of ['seq\u0000b', 'seq\u0000a', 'seq', 'seqx', 'pos\u0000a', 'seq\u0000gone']) await tx.setMeta(key, 1);
      });
      await s.transaction('readwrite', async (tx) => {
        await tx.setMeta('seq\u0000gone', undefined);
        await tx.setMeta('seq\u0000c', 2);
        expect(await tx.metaKeys?.('seq\u0000')).toEqual(['seq\u0000a', 'seq\u0000b', 'seq\u0000c']);
      });
      expect(await s.transaction('readonly', async (tx) => tx.metaKeys?.('seq'))).toEqual(['seq', 'seq\u0000a', 'seq\u0000b', 'seq\u0000c', 'seqx']);
      expect(await s.transaction('readonly', async (tx) => tx.metaKeys?.('none'))).toEqual([]);
    });

    it('meta: missing keys are undefined; values round-trip by copy', async () => {
      const s = await fresh();
      const value = { list: [1, 'two', { three: 3 }], map: new Map([['k', 1]]), bytes: new Uint8Array([1, 2, 3]) };
      await s.transaction('readwrite', async (tx) => {
        expect(await tx.getMeta('nothing')).toBeUndefined();
        await tx.setMeta('obj', value);
        await tx.setMeta('num', 42);
        await tx.setMeta('str', 'x');
        await tx.setMeta('num', 43);
        // A transaction reads its own writes.
        expect(await tx.getMeta('num')).toBe(43);
      });
      value.list.push('mutated after the write');
      const read = await s.transaction('readonly', async (tx) => [await tx.getMeta<typeof value>('obj'), await tx.getMeta('num'), await tx.getMeta('str')] as const);
      expect(read).toEqual([{ list: [1, 'two', { three: 3 }], map: new Map([['k', 1]]), bytes: new Uint8Array([1, 2, 3]) }, 43, 'x']);
      (read[0] as typeof value).list.push('mutated after the read');
      expect(await s.transaction('readonly', (tx) => tx.getMeta<typeof value>('obj'))).toEqual({ list: [1, 'two', { three: 3 }], map: new Map([['k', 1]]), bytes: new Uint8Array([1, 2, 3]) });
    });

    it('forgetRecords: forgotten records read as never written, in scans, index scans and counts, and others stay', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.putRecord(record('events', 'live', S1, [[1, 'a', 'live', S1]], { v: 1 }));
        await tx.putRecord({ ...record('events', 'gone', S1), value: undefined });
        await tx.putRecord(record('events', 'shown', S1, [[1, 'b', 'shown', S1]], { v: 2 }));
        await tx.putRecord({ ...record('events', 'gone', S2), value: undefined });
      });
      await s.transaction('readwrite', (tx) =>
        tx.forgetRecords([
          { collection: 'events', id: 'gone', space: S1 },
          { collection: 'events', id: 'shown', space: S1 },
          { collection: 'events', id: 'never', space: S1 },
        ]),
      );
      await s.transaction('readonly', async (tx) => {
        expect(await tx.getRecord('events', 'gone', S1)).toBeUndefined();
        expect(await tx.getRecord('events', 'shown', S1)).toBeUndefined();
        expect((await tx.getRecord('events', 'gone', S2))?.id).toBe('gone');
        expect((await tx.scanRecords('events')).map((r) => [r.id, r.space])).toEqual([
          ['gone', S2],
          ['live', S1],
        ]);
        expect((await tx.scanIndex({ lower: [1], upper: [1, []] })).map((r) => r.id)).toEqual(['live']);
        expect(await tx.countIndex({ lower: [1], upper: [1, []] })).toBe(1);
        expect(await tx.countRecords('events')).toBe(2);
        if (tx.countLive) expect(await tx.countLive('events')).toBe(1);
      });
      // Written again, a forgotten record is an ordinary new one.
      await s.transaction('readwrite', (tx) => tx.putRecord(record('events', 'shown', S1, [[1, 'c', 'shown', S1]], { v: 3 })));
      expect((await s.transaction('readonly', (tx) => tx.getRecord('events', 'shown', S1)))?.value).toEqual({ v: 3 });
    });

    it('collectible: the records of a space whose dead stamp is at or below a horizon, kept current by puts and forgets', async () => {
      const s = await fresh();
      const stamp = (n: number) => formatTimestamp({ wall: 1_700_000_000_000 + n, counter: 0, replica: replicaId('conf') });
      const dead = (id: string, space: SpaceId, n: number): StoredRecord => ({ ...record('events', id, space, [], undefined), dead: stamp(n) });
      await s.transaction('readwrite', async (tx) => {
        await tx.putRecord(dead('d1', S1, 1));
        await tx.putRecord(dead('d3', S1, 3));
        await tx.putRecord(dead('d5', S1, 5));
        await tx.putRecord(dead('other', S2, 1));
        await tx.putRecord({ ...dead('task', S1, 2), collection: 'tasks' });
        await tx.putRecord(record('events', 'live', S1, [[1, 'a', 'live', S1]]));
        await tx.putRecord({ ...record('events', 'kept', S1, [], undefined) }); // deleted, not collectible (no dead stamp)
      });
      // Only adapters that have it; the client scans otherwise.
      if (!(await s.transaction('readonly', async (tx) => tx.collectible !== undefined))) return;
      const at = (space: SpaceId, n: number) => s.transaction('readonly', async (tx) => ids(await (tx.collectible as NonNullable<typeof tx.collectible>)(space, stamp(n))).sort());
      expect(await at(S1, 0)).toEqual([]);
      expect(await at(S1, 3)).toEqual(['d1@s1', 'd3@s1', 'task@s1']);
      expect(await at(S1, 9)).toEqual(['d1@s1', 'd3@s1', 'd5@s1', 'task@s1']);
      expect(await at(S2, 9)).toEqual(['other@s2']);
      expect(await at(S10, 9)).toEqual([]);
      // Written again live, forgotten, or stamped later: the index follows, also inside the transaction that does it.
      await s.transaction('readwrite', async (tx) => {
        await tx.putRecord(record('events', 'd1', S1));
        await tx.forgetRecords([{ collection: 'events', id: 'd3', space: S1 }]);
        await tx.putRecord(dead('d5', S1, 8));
        expect(ids(await (tx.collectible as NonNullable<typeof tx.collectible>)(S1, stamp(9))).sort()).toEqual(['d5@s1', 'task@s1']);
      });
      expect(await at(S1, 5)).toEqual(['task@s1']);
      expect(await at(S1, 9)).toEqual(['d5@s1', 'task@s1']);
    });

    it('records: put/get by (collection, id, space), overwrite, rich states round-trip', async () => {
      const s = await fresh();
      const state = richState();
      const a: StoredRecord = { collection: 'events', id: 'x', space: S1, state, value: { v: 1 }, ix: [[1, 'k', 'x', S1]] };
      await s.transaction('readwrite', async (tx) => {
        await tx.putRecord(a);
        await tx.putRecord(record('events', 'x', S2, [], { other: 'space' }));
        await tx.putRecord(record('tasks', 'x', S1, [], { other: 'collection' }));
        expect((await tx.getRecord('events', 'x', S1))?.value).toEqual({ v: 1 });
      });
      await s.transaction('readonly', async (tx) => {
        expect(await tx.getRecord('events', 'x', S1)).toEqual(a);
        expect((await tx.getRecord('events', 'x', S2))?.value).toEqual({ other: 'space' });
        expect((await tx.getRecord('tasks', 'x', S1))?.value).toEqual({ other: 'collection' });
        expect(await tx.getRecord('events', 'y', S1)).toBeUndefined();
        expect(await tx.getRecord('events', 'x', S10)).toBeUndefined();
        expect(await tx.countRecords('events')).toBe(2);
        expect(await tx.countRecords('tasks')).toBe(1);
        expect(await tx.countRecords('none')).toBe(0);
      });
      await s.transaction('readwrite', (tx) => tx.putRecord({ ...a, value: { v: 2 }, ix: [] }));
      const after = await s.transaction('readonly', async (tx) => [await tx.getRecord('events', 'x', S1), await tx.countRecords('events')] as const);
      expect(after[0]?.value).toEqual({ v: 2 });
      expect(after[0]?.ix).toEqual([]);
      expect(after[1]).toBe(2);
    });

    it('putRecords (where an adapter has it) stores like putRecord; handed-over records are kept frozen and unchanged', async () => {
      const s = await fresh();
      const records = [record('events', 'a', S1, [[1, 'k1', 'a', S1]]), record('events', 'b', S1, [[1, 'k0', 'b', S1]]), record('tasks', 'a', S2)];
      const handed = record('events', 'c', S1, [[1, 'k2', 'c', S1]], { nested: { deep: [1, 2] } });
      await s.transaction('readwrite', async (tx) => {
        if (tx.putRecords) {
          await tx.putRecords(records);
          await tx.putRecords([handed], { handOver: true });
        } else {
          for (const r of records) await tx.putRecord(r);
          await tx.putRecord(handed, { handOver: true });
        }
      });
      await s.transaction('readonly', async (tx) => {
        for (const r of [...records, handed]) expect(await tx.getRecord(r.collection, r.id, r.space)).toEqual(r);
        expect((await tx.scanIndex({ lower: [1], upper: [2] })).map((r) => r.id)).toEqual(['b', 'a', 'c']);
        const kept = await tx.getRecord('events', 'c', S1);
        // Whatever an adapter keeps (a frozen record, or a copy), a reader cannot change what is stored.
        try {
          (kept?.value as { nested: { deep: number[] } }).nested.deep[0] = 9;
        } catch {
          // frozen
        }
      });
      expect((await s.transaction('readonly', (tx) => tx.getRecord('events', 'c', S1)))?.value).toEqual({ nested: { deep: [1, 2] } });
    });

    it('getRecords: in the order asked, undefined where missing, for few or many, dense or sparse addresses', async () => {
      const s = await fresh();
      const id = (i: number) => `e${String(i).padStart(3, '0')}`;
      await s.transaction('readwrite', async (tx) => {
        for (let i = 0; i < 300; i++) await tx.putRecord(record('events', id(i), S1, [], { n: i }));
        await tx.putRecord(record('events', id(5), S2, [], { n: -5 }));
        await tx.putRecord(record('tasks', 't1', S1, [], { task: 1 }));
      });
      const at = (collection: string, i: number | string, space: SpaceId = S1) => ({ collection, id: typeof i === 'number' ? id(i) : i, space });
      const values = (records: ReadonlyArray<StoredRecord | undefined>) => records.map((r) => (r ? [r.id, r.space, r.value] : undefined));
      await s.transaction('readonly', async (tx) => {
        expect(await tx.getRecords([])).toEqual([]);
        // Few: one of each kind.
        expect(values(await tx.getRecords([at('events', 7), at('events', 'nope'), at('events', 5, S2), at('events', 5, S10)]))).toEqual([[id(7), 's1', { n: 7 }], undefined, [id(5), 's2', { n: -5 }], undefined]);
        // Many, spread over a span holding far more records than asked (sparse).
        const spread = Array.from({ length: 20 }, (_, k) => at('events', 299 - k * 15));
        expect(values(await tx.getRecords(spread))).toEqual(spread.map((a) => [a.id, 's1', { n: Number(a.id.slice(1)) }]));
        // Many that do not exist, in a span with no record, and in a span with some.
        const fresh20 = Array.from({ length: 20 }, (_, k) => at('events', `f${k}`));
        expect(await tx.getRecords(fresh20)).toEqual(fresh20.map(() => undefined));
        const mixed = Array.from({ length: 20 }, (_, k) => at('events', k % 2 === 0 ? 100 + k : `${id(100 + k)}x`));
        expect(values(await tx.getRecords(mixed))).toEqual(mixed.map((a, k) => (k % 2 === 0 ? [a.id, 's1', { n: 100 + k }] : undefined)));
        // Across collections and spaces, with an address asked twice.
        const across = [at('tasks', 't1'), at('events', 5, S2), ...Array.from({ length: 8 }, (_, k) => at('events', k)), at('tasks', 't2'), at('tasks', 't1')];
        expect(values(await tx.getRecords(across))).toEqual([['t1', 's1', { task: 1 }], [id(5), 's2', { n: -5 }], ...Array.from({ length: 8 }, (_, k) => [id(k), 's1', { n: k }]), undefined, ['t1', 's1', { task: 1 }]]);
      });
      // A transaction reads its own writes.
      await s.transaction('readwrite', async (tx) => {
        await tx.putRecord(record('events', 'f3', S1, [], { n: 'new' }));
        await tx.putRecord(record('events', id(4), S1, [], { n: 'changed' }));
        const asked = Array.from({ length: 10 }, (_, k) => at('events', `f${k}`));
        expect(values(await tx.getRecords(asked))).toEqual(asked.map((a) => (a.id === 'f3' ? ['f3', 's1', { n: 'new' }] : undefined)));
        expect(values(await tx.getRecords([...asked, at('events', 4)]))).toEqual([...asked.map((a) => (a.id === 'f3' ? ['f3', 's1', { n: 'new' }] : undefined)), [id(4), 's1', { n: 'changed' }]]);
      });
    });

    it('scanRecords: key order [collection, id, space], offset, limit, desc, space filter', async () => {
      const s = await fresh();
      // Inserted out of order; ids compare as strings by UTF-16 code unit.
      const keys: Array<[string, SpaceId]> = [
        ['b', S1],
        ['a', S2],
        ['a', S1],
        ['aa', S1],
        ['B', S1],
        ['10', S2],
        ['9', S1],
        ['\u00e9', S1],
        ['a', S10],
      ];
      await s.transaction('readwrite', async (tx) => {
        for (const [id, space] of keys) await tx.putRecord(record('events', id, space));
        await tx.putRecord(record('event', 'z', S1));
        await tx.putRecord(record('eventsX', 'a', S1));
      });
      const all = ['10@s2', '9@s1', 'B@s1', 'a@s1', 'a@s10', 'a@s2', 'aa@s1', 'b@s1', '\u00e9@s1'];
      await s.transaction('readonly', async (tx) => {
        expect(ids(await tx.scanRecords('events'))).toEqual(all);
        expect(ids(await tx.scanRecords('events', { direction: 'desc' }))).toEqual([...all].reverse());
        expect(ids(await tx.scanRecords('events', { offset: 2, limit: 3 }))).toEqual(all.slice(2, 5));
        expect(ids(await tx.scanRecords('events', { offset: 7 }))).toEqual(all.slice(7));
        expect(ids(await tx.scanRecords('events', { limit: 0 }))).toEqual([]);
        expect(ids(await tx.scanRecords('events', { offset: 100 }))).toEqual([]);
        expect(ids(await tx.scanRecords('events', { direction: 'desc', offset: 1, limit: 2 }))).toEqual([all[7], all[6]]);
        const s1 = all.filter((k) => k.endsWith('@s1'));
        expect(ids(await tx.scanRecords('events', { space: S1 }))).toEqual(s1);
        // offset and limit count records of the space only
        expect(ids(await tx.scanRecords('events', { space: S1, offset: 1, limit: 3 }))).toEqual(s1.slice(1, 4));
        expect(ids(await tx.scanRecords('events', { space: S1, direction: 'desc', offset: 1, limit: 2 }))).toEqual([...s1].reverse().slice(1, 3));
        expect(ids(await tx.scanRecords('events', { space: S1, direction: 'desc' }))).toEqual([...s1].reverse());
        expect(ids(await tx.scanRecords('events', { space: S1, offset: 2 }))).toEqual(s1.slice(2));
        expect(ids(await tx.scanRecords('events', { space: S1, direction: 'desc', offset: 2 }))).toEqual([...s1].reverse().slice(2));
        expect(ids(await tx.scanRecords('events', { space: S2 }))).toEqual(['10@s2', 'a@s2']);
        expect(ids(await tx.scanRecords('event'))).toEqual(['z@s1']);
        expect(ids(await tx.scanRecords('nothing'))).toEqual([]);
      });
    });

    describe('scanIndex and countIndex', () => {
      // Index values in IndexedDB key order: numbers < strings < arrays; arrays element by element, shorter first.
      const ordered: Key[] = [-Infinity, -5, 0, 2.5, 10, Infinity, '', '10', 'A', 'a', 'ab', 'b', [], [1], ['a'], ['a', 1], ['b']];

      async function seeded(): Promise<Storage> {
        const s = await fresh();
        await s.transaction('readwrite', async (tx) => {
          // Inserted in reverse order, with a second index (2) and a record carrying two keys.
          for (let i = ordered.length - 1; i >= 0; i--) {
            const id = `r${String(i).padStart(2, '0')}`;
            await tx.putRecord(record('events', id, S1, [[1, ordered[i] as Key, id, S1], [2, i, id, S1]]));
          }
          await tx.putRecord(record('events', 'twin', S2, [[1, 'a', 'twin', S2], [1, 'b', 'twin', S2]]));
          await tx.putRecord(record('events', 'gone', S1, []));
        });
        return s;
      }
      const idsOf = (indexes: number[]): string[] => indexes.map((i) => `r${String(i).padStart(2, '0')}@s1`);

      it('scans in key order, with ranges over array keys', async () => {
        const s = await seeded();
        const n = ordered.length;
        const seq = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, k) => from + k);
        const iA = ordered.indexOf('a');
        const iB = ordered.indexOf('b');
        const whole = [...seq(0, iA + 1), -1, ...seq(iA + 1, iB + 1), -2, ...seq(iB + 1, n)];
        const named = (xs: number[]) => xs.map((i) => (i === -1 || i === -2 ? 'twin@s2' : idsOf([i])[0]));
        await s.transaction('readonly', async (tx) => {
          expect(ids(await tx.scanIndex({ lower: [1], upper: [1, [[]]] }))).toEqual(named(whole));
          expect(await tx.countIndex({ lower: [1], upper: [1, [[]]] })).toBe(n + 2);
          // The whole index (both index numbers) without bounds.
          expect(await tx.countIndex({})).toBe(2 * n + 2);
          expect(ids(await tx.scanIndex({ lower: [2] }))).toEqual(idsOf(seq(0, n)));
          expect(ids(await tx.scanIndex({ upper: [2] }))).toEqual(named(whole));
          // Numbers only: [1, number, ...] sorts below [1, '', ...].
          expect(ids(await tx.scanIndex({ lower: [1], upper: [1, ''], upperOpen: true }))).toEqual(idsOf(seq(0, 6)));
          // Strings only.
          expect(ids(await tx.scanIndex({ lower: [1, ''], upper: [1, []], upperOpen: true }))).toEqual(named(whole.slice(6, 14)));
          // Arrays only.
          expect(ids(await tx.scanIndex({ lower: [1, []], upper: [1, [[]], [[]]] }))).toEqual(idsOf(seq(12, n)));
          // Open and closed bounds on an exact value: [1, 'a'] < [1, 'a', id, space].
          expect(ids(await tx.scanIndex({ lower: [1, 'a'], upper: [1, 'a', [[]]] }))).toEqual([...idsOf([iA]), 'twin@s2']);
          expect(ids(await tx.scanIndex({ lower: [1, 'a', [[]]], lowerOpen: true, upper: [1, 'b'], upperOpen: true }))).toEqual(named(whole.slice(iA + 2, iB + 1)));
          expect(await tx.countIndex({ lower: [1, 'a', 'r09', S1], lowerOpen: true, upper: [1, 'a', [[]]] })).toBe(1);
          expect(await tx.countIndex({ lower: [1, 'a', 'r09', S1], upper: [1, 'a', [[]]] })).toBe(2);
          // Empty ranges (lower above upper, or equal bounds with an open side) hold nothing.
          expect(await tx.countIndex({ lower: [1, 5], upper: [1, 1] })).toBe(0);
          expect(ids(await tx.scanIndex({ lower: [1, 5], upper: [1, 1] }))).toEqual([]);
          expect(ids(await tx.scanIndex({ lower: [1, 'a'], upper: [1, 'a'], upperOpen: true }, { direction: 'desc' }))).toEqual([]);
          expect(await tx.countIndex({ lower: [1, 'a'], upper: [1, 'a'], lowerOpen: true })).toBe(0);
          expect(await tx.countIndex({ lower: [1, 'a', 'r09', S1], upper: [1, 'a', 'r09', S1] })).toBe(1);
          expect(ids(await tx.scanIndex({ lower: [3] }))).toEqual([]);
        });
      });

      it('honours desc, offset and limit', async () => {
        const s = await seeded();
        const range = { lower: [2], upper: [2, [[]]] };
        const all = idsOf(Array.from({ length: ordered.length }, (_, i) => i));
        await s.transaction('readonly', async (tx) => {
          expect(ids(await tx.scanIndex(range, { direction: 'desc' }))).toEqual([...all].reverse());
          expect(ids(await tx.scanIndex(range, { offset: 3, limit: 4 }))).toEqual(all.slice(3, 7));
          expect(ids(await tx.scanIndex(range, { direction: 'desc', offset: 3, limit: 4 }))).toEqual([...all].reverse().slice(3, 7));
          expect(ids(await tx.scanIndex(range, { direction: 'desc', offset: 2 }))).toEqual([...all].reverse().slice(2));
          expect(ids(await tx.scanIndex(range, { limit: 0 }))).toEqual([]);
          expect(ids(await tx.scanIndex(range, { offset: 1_000 }))).toEqual([]);
          expect(ids(await tx.scanIndex(range, { offset: 1_000, direction: 'desc' }))).toEqual([]);
        });
      });

      it('large scans: every window of desc, offset and limit over 300 records', async () => {
        const s = await fresh();
        const n = 300;
        const id = (i: number) => `k${String(i).padStart(3, '0')}`;
        await s.transaction('readwrite', async (tx) => {
          for (let i = n - 1; i >= 0; i--) await tx.putRecord(record('big', id(i), S1, [[7, i % 10, id(i), S1]]));
        });
        const range = { lower: [7], upper: [7, [[]]] };
        await s.transaction('readonly', async (tx) => {
          const asc = ids(await tx.scanIndex(range));
          const byIndex = Array.from({ length: n }, (_, i) => i).sort((a, b) => a % 10 - (b % 10) || a - b);
          expect(asc).toEqual(byIndex.map((i) => `${id(i)}@s1`));
          const desc = [...asc].reverse();
          const records = Array.from({ length: n }, (_, i) => `${id(i)}@s1`);
          for (const [offset, limit] of [
            [0, undefined],
            [0, 10],
            [0, 64],
            [0, 65],
            [10, 5],
            [60, 10],
            [100, 50],
            [290, 50],
            [299, undefined],
            [300, 10],
            [1_000, undefined],
          ] as const) {
            const window = (all: string[]) => all.slice(offset, limit === undefined ? undefined : offset + limit);
            const options = { direction: 'desc' as const, offset, ...(limit === undefined ? {} : { limit }) };
            expect(ids(await tx.scanIndex(range, options)), `desc offset ${offset} limit ${limit}`).toEqual(window(desc));
            expect(ids(await tx.scanIndex(range, { ...options, direction: 'asc' })), `asc offset ${offset} limit ${limit}`).toEqual(window(asc));
            expect(ids(await tx.scanRecords('big', options)), `records desc offset ${offset} limit ${limit}`).toEqual(window([...records].reverse()));
          }
          // A narrower range inside the index, descending past the cursor window.
          expect(ids(await tx.scanIndex({ lower: [7, 3], upper: [7, 5, [[]]] }, { direction: 'desc', offset: 5, limit: 70 }))).toEqual(
            desc.filter((k) => [3, 4, 5].includes(Number(k.slice(1, 4)) % 10)).slice(5, 75),
          );
        });
      });

      it('replacing a record replaces its index keys; a record without keys is in no range', async () => {
        const s = await seeded();
        await s.transaction('readwrite', async (tx) => {
          await tx.putRecord(record('events', 'r00', S1, [[2, 1000, 'r00', S1]]));
          // Reads inside the transaction see the new keys.
          expect(ids(await tx.scanIndex({ lower: [2, 1000], upper: [2, 1000, [[]]] }))).toEqual(['r00@s1']);
          expect(await tx.countIndex({ lower: [1, -Infinity], upper: [1, -Infinity, [[]]] })).toBe(0);
        });
        await s.transaction('readonly', async (tx) => {
          expect(await tx.countIndex({ lower: [1, -Infinity], upper: [1, -Infinity, [[]]] })).toBe(0);
          expect(ids(await tx.scanIndex({ lower: [2], upper: [2, [[]]] }, { direction: 'desc', limit: 1 }))).toEqual(['r00@s1']);
          expect(await tx.countIndex({ lower: [2], upper: [2, [[]]] })).toBe(ordered.length);
          expect((await tx.scanIndex({})).some((r) => r.id === 'gone')).toBe(false);
        });
      });
    });

    it('outbox: add, read per space in seq order, ack, count', async () => {
      const s = await fresh();
      const crdt = change(S1, 2, { op: 'crdt', field: 'notes', type: 'text', update: new Uint8Array([1, 2, 3]) } as Partial<Change>);
      const version = change(S1, 4, { op: 'version', value: { a: 1 }, context: new Map([[WRITER, 3]]) } as Partial<Change>);
      await s.transaction('readwrite', async (tx) => {
        // One-change entries, added out of order.
        for (const c of [change(S1, 3), change(S2, 1), version, crdt, change(S10, 1), change(S1, 1), change(S2, 2)]) await tx.addOutbox([c]);
      });
      await s.transaction('readonly', async (tx) => {
        const s1 = await tx.readOutbox(S1, 100);
        expect(s1.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
        expect(s1[1]).toEqual(crdt);
        expect(s1[1]?.op === 'crdt' && s1[1].update).toBeInstanceOf(Uint8Array);
        expect(s1[3]).toEqual(version);
        expect((await tx.readOutbox(S1, 2)).map((c) => c.seq)).toEqual([1, 2]);
        expect((await tx.readOutbox(S2, 100)).map((c) => [c.space, c.seq])).toEqual([
          ['s2', 1],
          ['s2', 2],
        ]);
        expect((await tx.readOutbox(S10, 100)).map((c) => [c.space, c.seq])).toEqual([['s10', 1]]);
        expect(await tx.readOutbox(spaceId('s3'), 100)).toEqual([]);
        expect(await tx.countOutbox()).toBe(7);
        expect(await tx.countOutbox(S1)).toBe(4);
        expect(await tx.countOutbox(S10)).toBe(1);
      });
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 2))).toBe(2);
      await s.transaction('readwrite', async (tx) => {
        expect((await tx.readOutbox(S1, 100)).map((c) => c.seq)).toEqual([3, 4]);
        expect(await tx.ackOutbox(S1, 2)).toBe(0);
        // Acknowledging inside a transaction is visible to that transaction.
        expect(await tx.ackOutbox(S1, 3)).toBe(1);
        expect((await tx.readOutbox(S1, 100)).map((c) => c.seq)).toEqual([4]);
        await tx.addOutbox([change(S1, 5)]);
        expect((await tx.readOutbox(S1, 100)).map((c) => c.seq)).toEqual([4, 5]);
      });
      await s.transaction('readonly', async (tx) => {
        expect((await tx.readOutbox(S1, 100)).map((c) => c.seq)).toEqual([4, 5]);
        expect(await tx.countOutbox(S2)).toBe(2);
        expect(await tx.countOutbox(S10)).toBe(1);
        expect(await tx.countOutbox()).toBe(5);
      });
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 1_000))).toBe(2);
      expect(await s.transaction('readonly', (tx) => tx.countOutbox(S1))).toBe(0);
    });

    it('outbox entries: one per call; reads cut across and inside entries; partial acks keep the rest', async () => {
      const s = await fresh();
      const seqs = (cs: readonly Change[]) => cs.map((c) => c.seq);
      const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
      await s.transaction('readwrite', async (tx) => {
        // Added out of order: entries are read in seq order.
        await tx.addOutbox(changes(S1, 5, 9));
        await tx.addOutbox(changes(S1, 1, 3));
        await tx.addOutbox(changes(S10, 1, 3));
        await tx.addOutbox([change(S1, 4)]);
        await tx.addOutbox(changes(S2, 1, 2));
        await tx.addOutbox([]);
      });
      await s.transaction('readonly', async (tx) => {
        for (const limit of [0, 1, 2, 3, 4, 5, 7, 9, 10, 1_000]) expect(seqs(await tx.readOutbox(S1, limit)), `limit ${limit}`).toEqual(range(1, Math.min(limit, 9)));
        // The changes come back whole, in their own space.
        expect(await tx.readOutbox(S1, 100)).toEqual(changes(S1, 1, 9));
        expect(await tx.readOutbox(S10, 100)).toEqual(changes(S10, 1, 3));
        expect(await tx.readOutbox(S2, 1)).toEqual([change(S2, 1)]);
        expect([await tx.countOutbox(S1), await tx.countOutbox(S2), await tx.countOutbox(S10), await tx.countOutbox(spaceId('s3')), await tx.countOutbox()]).toEqual([9, 2, 3, 0, 14]);
      });
      // Inside the first entry: the rest (3) stays, in order.
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 2))).toBe(2);
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual(changes(S1, 3, 9));
        expect(seqs(await tx.readOutbox(S1, 1))).toEqual([3]);
        expect(seqs(await tx.readOutbox(S1, 2))).toEqual([3, 4]);
        expect([await tx.countOutbox(S1), await tx.countOutbox()]).toEqual([7, 12]);
      });
      // Nothing more to acknowledge below 3.
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 2))).toBe(0);
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 0))).toBe(0);
      // Across entries, ending inside one: 3, 4, 5, 6.
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 6))).toBe(4);
      await s.transaction('readwrite', async (tx) => {
        expect(seqs(await tx.readOutbox(S1, 100))).toEqual([7, 8, 9]);
        // Acks and adds inside one transaction are visible to it.
        expect(await tx.ackOutbox(S1, 7)).toBe(1);
        await tx.addOutbox(changes(S1, 10, 11));
        expect(seqs(await tx.readOutbox(S1, 100))).toEqual([8, 9, 10, 11]);
        expect(seqs(await tx.readOutbox(S1, 3))).toEqual([8, 9, 10]);
        expect(await tx.countOutbox(S1)).toBe(4);
      });
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual(changes(S1, 8, 11));
        expect([await tx.countOutbox(S1), await tx.countOutbox()]).toEqual([4, 9]);
      });
      // Beyond the end: everything of the space, nothing of the others (s10 shares s1's prefix).
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 1_000))).toBe(4);
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 1_000))).toBe(0);
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual([]);
        expect(await tx.readOutbox(S10, 100)).toEqual(changes(S10, 1, 3));
        expect([await tx.countOutbox(S1), await tx.countOutbox(S2), await tx.countOutbox(S10), await tx.countOutbox()]).toEqual([0, 2, 3, 5]);
      });
      // The space goes on after it was emptied.
      await s.transaction('readwrite', (tx) => tx.addOutbox(changes(S1, 12, 13)));
      expect(await s.transaction('readonly', async (tx) => [seqs(await tx.readOutbox(S1, 100)), await tx.countOutbox(S1)])).toEqual([[12, 13], 2]);
    });

    it('outbox: large entries and many small ones, read and acknowledged a batch at a time', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        for (let from = 1; from <= 1_200; from += 400) await tx.addOutbox(changes(S1, from, from + 399));
        for (let seq = 1; seq <= 300; seq++) await tx.addOutbox([change(S2, seq)]);
      });
      for (const space of [S1, S2]) {
        const total = space === S1 ? 1_200 : 300;
        let acked = 0;
        while (acked < total) {
          const batch = await s.transaction('readonly', (tx) => tx.readOutbox(space, 128));
          expect(batch.map((c) => c.seq)).toEqual(Array.from({ length: Math.min(128, total - acked) }, (_, i) => acked + 1 + i));
          const upTo = (batch[batch.length - 1] as Change).seq;
          expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(space, upTo))).toBe(batch.length);
          acked = upTo;
          expect(await s.transaction('readonly', (tx) => tx.countOutbox(space))).toBe(total - acked);
        }
      }
      expect(await s.transaction('readonly', (tx) => tx.countOutbox())).toBe(0);
    });

    it('outbox: entries with gaps between them are read and acknowledged by seq', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 20, 22));
        await tx.addOutbox(changes(S1, 1, 2));
        await tx.addOutbox([change(S1, 10)]);
      });
      await s.transaction('readonly', async (tx) => {
        expect((await tx.readOutbox(S1, 4)).map((c) => c.seq)).toEqual([1, 2, 10, 20]);
        expect((await tx.readOutbox(S1, 100)).map((c) => c.seq)).toEqual([1, 2, 10, 20, 21, 22]);
        expect(await tx.countOutbox(S1)).toBe(6);
      });
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 15))).toBe(3);
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 20))).toBe(1);
      expect(await s.transaction('readonly', async (tx) => [(await tx.readOutbox(S1, 100)).map((c) => c.seq), await tx.countOutbox(S1)])).toEqual([[21, 22], 2]);
    });

    it('addOutbox refuses changes that are not one contiguous run of one space, or already queued', async () => {
      const s = await fresh();
      await s.transaction('readwrite', (tx) => tx.addOutbox(changes(S1, 1, 2)));
      for (const bad of [
        [change(S1, 3), change(S2, 4)],
        [change(S1, 3), change(S1, 5)],
        [change(S1, 4), change(S1, 3)],
        [change(S1, 3), change(S1, 3)],
        [change(S1, 1)],
      ]) {
        await expect(s.transaction('readwrite', (tx) => tx.addOutbox(bad)), JSON.stringify(bad.map((c) => [c.space, c.seq]))).rejects.toThrow();
      }
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual(changes(S1, 1, 2));
        expect(await tx.readOutbox(S2, 100)).toEqual([]);
        expect(await tx.countOutbox()).toBe(2);
      });
    });

    it('readOutbox(undefined, limit): every space in [space, seq] order, cut at limit inside and across entries', async () => {
      const s = await fresh();
      // Spaces whose order is by code unit: "B" < "a" < "s1" < "s10" < "s2".
      const [B, A] = [spaceId('B'), spaceId('a')];
      await s.transaction('readwrite', async (tx) => {
        // Added out of order, entries of several changes and of one.
        await tx.addOutbox(changes(S2, 1, 2));
        await tx.addOutbox(changes(S1, 5, 9));
        await tx.addOutbox(changes(S10, 1, 3));
        await tx.addOutbox(changes(S1, 1, 3));
        await tx.addOutbox([change(A, 7)]);
        await tx.addOutbox([change(S1, 4)]);
        await tx.addOutbox(changes(B, 2, 3));
      });
      const all = [...changes(B, 2, 3), change(A, 7), ...changes(S1, 1, 9), ...changes(S10, 1, 3), ...changes(S2, 1, 2)];
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(undefined, 1_000)).toEqual(all);
        for (let limit = 0; limit <= all.length + 1; limit++) expect(await tx.readOutbox(undefined, limit), `limit ${limit}`).toEqual(all.slice(0, limit));
        expect(await tx.readOutbox(undefined, Number.MAX_SAFE_INTEGER)).toEqual(all);
        expect(await tx.countOutbox()).toBe(all.length);
      });
      // After a partial ack (the rest of the entry is rewritten) and a full one.
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 2))).toBe(2);
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(A, 7))).toBe(1);
      const rest = all.filter((c) => !(c.space === S1 && c.seq <= 2) && c.space !== A);
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(undefined, 1_000)).toEqual(rest);
        for (const limit of [0, 1, 2, 3, 4, 8, 9, 10, rest.length]) expect(await tx.readOutbox(undefined, limit), `limit ${limit} after acks`).toEqual(rest.slice(0, limit));
      });
      // A transaction's own acks and adds are visible to it; after commit too.
      await s.transaction('readwrite', async (tx) => {
        expect(await tx.ackOutbox(S1, 5)).toBe(3);
        await tx.addOutbox(changes(S1, 10, 11));
        await tx.addOutbox([change(A, 8)]);
        const expected = [...changes(B, 2, 3), change(A, 8), ...changes(S1, 6, 11), ...changes(S10, 1, 3), ...changes(S2, 1, 2)];
        expect(await tx.readOutbox(undefined, 1_000)).toEqual(expected);
        expect(await tx.readOutbox(undefined, 4)).toEqual(expected.slice(0, 4));
      });
      expect((await s.transaction('readonly', (tx) => tx.readOutbox(undefined, 1_000))).map((c) => [c.space, c.seq])).toEqual([
        ['B', 2],
        ['B', 3],
        ['a', 8],
        ...[6, 7, 8, 9, 10, 11].map((n) => ['s1', n]),
        ['s10', 1],
        ['s10', 2],
        ['s10', 3],
        ['s2', 1],
        ['s2', 2],
      ]);
      // An empty outbox.
      for (const space of [B, A, S1, S10, S2]) await s.transaction('readwrite', (tx) => tx.ackOutbox(space, 1_000));
      expect(await s.transaction('readonly', (tx) => tx.readOutbox(undefined, 1_000))).toEqual([]);
    });

    it('replaceOutbox: changes replaced in place (same space and seq, new HLC), visible in the transaction and after commit; entries keep their bounds', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 1, 5));
        await tx.addOutbox(changes(S1, 6, 7));
        await tx.addOutbox(changes(S2, 1, 3));
        await tx.addOutbox(changes(S10, 1, 1));
      });
      const restamped = (c: Change, wall = 900_000 + c.seq): Change => ({ ...c, hlc: formatTimestamp({ wall, counter: 0, replica: WRITER }) });
      const s1 = changes(S1, 1, 7).map((c) => ([2, 4, 6].includes(c.seq) ? restamped(c) : c));
      const s2 = changes(S2, 1, 3).map((c) => (c.seq === 3 ? restamped(c) : c));
      await s.transaction('readwrite', async (tx) => {
        await tx.replaceOutbox([restamped(change(S1, 4)), restamped(change(S2, 3)), restamped(change(S1, 2)), restamped(change(S1, 6))]);
        // Visible to the transaction that made it.
        expect(await tx.readOutbox(S1, 100)).toEqual(s1);
        expect(await tx.readOutbox(S2, 100)).toEqual(s2);
        expect(await tx.readOutbox(undefined, 100)).toEqual([...s1, ...changes(S10, 1, 1), ...s2]);
        expect([await tx.countOutbox(S1), await tx.countOutbox(S2), await tx.countOutbox()]).toEqual([7, 3, 11]);
        // A change replaced twice in one transaction: the last one stays. Nothing to replace: nothing happens.
        await tx.replaceOutbox([restamped(change(S10, 1), 1)]);
        await tx.replaceOutbox([restamped(change(S10, 1), 2)]);
        await tx.replaceOutbox([]);
      });
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual(s1);
        expect(await tx.readOutbox(S1, 3)).toEqual(s1.slice(0, 3));
        expect(await tx.readOutbox(S2, 100)).toEqual(s2);
        expect(await tx.readOutbox(S10, 100)).toEqual([restamped(change(S10, 1), 2)]);
        expect([await tx.countOutbox(S1), await tx.countOutbox(S2), await tx.countOutbox(S10), await tx.countOutbox()]).toEqual([7, 3, 1, 11]);
      });
      // Entries kept their bounds: a partial ack inside the first entry and across the second still counts right.
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 3))).toBe(3);
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual(s1.slice(3));
        expect([await tx.countOutbox(S1), await tx.countOutbox()]).toEqual([4, 8]);
      });
      // The rewritten rest of an entry can be replaced again, with changes added in the same transaction.
      const s1b = s1.slice(3).map((c) => (c.seq === 5 ? restamped(c, 5) : c));
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 8, 9));
        await tx.replaceOutbox([restamped(change(S1, 5), 5), restamped(change(S1, 9), 9)]);
        expect(await tx.readOutbox(S1, 100)).toEqual([...s1b, change(S1, 8), restamped(change(S1, 9), 9)]);
        expect(await tx.countOutbox(S1)).toBe(6);
      });
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 6))).toBe(3);
      await s.transaction('readonly', async (tx) => {
        expect(await tx.readOutbox(S1, 100)).toEqual([s1[6], change(S1, 8), restamped(change(S1, 9), 9)]);
        expect([await tx.countOutbox(S1), await tx.countOutbox()]).toEqual([3, 7]);
      });
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 1_000))).toBe(3);
      expect(await s.transaction('readonly', async (tx) => [await tx.readOutbox(S1, 100), await tx.countOutbox()])).toEqual([[], 4]);
    });

    it('replaceOutbox rejects a change that is not in the outbox, and the transaction fails as a whole', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 1, 3));
        await tx.addOutbox(changes(S1, 10, 11));
        await tx.addOutbox(changes(S2, 1, 2));
      });
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 1))).toBe(1);
      const snapshot = () => s.transaction('readonly', async (tx) => [await tx.readOutbox(undefined, 100), await tx.countOutbox(S1), await tx.countOutbox(), await tx.getMeta('other')]);
      const before = await snapshot();
      expect(before).toEqual([[...changes(S1, 2, 3), ...changes(S1, 10, 11), ...changes(S2, 1, 2)], 4, 6, undefined]);
      const moved = (space: SpaceId, seq: number): Change => ({ ...change(space, seq), hlc: formatTimestamp({ wall: 5_000_000, counter: seq, replica: WRITER }) });
      for (const [what, bad] of [
        ['acknowledged', [moved(S1, 1)]],
        ['in a gap between entries', [moved(S1, 5)]],
        ['after the last', [moved(S1, 12)]],
        ['of a space with nothing queued (sharing a prefix)', [moved(S10, 2)]],
        ['of a space never used', [moved(spaceId('s3'), 1)]],
        ['with queued ones of its space in the same call', [moved(S1, 2), moved(S1, 7), moved(S1, 10)]],
        ['with queued ones of another space in the same call', [moved(S2, 1), moved(S1, 4)]],
      ] as const) {
        await expect(
          s.transaction('readwrite', async (tx) => {
            // Other writes of the transaction, a valid replacement among them, go with it.
            await tx.replaceOutbox([moved(S2, 2)]);
            await tx.setMeta('other', what);
            await tx.addOutbox([change(S10, 1)]);
            await tx.replaceOutbox(bad);
          }),
          what,
        ).rejects.toThrow();
        expect(await snapshot(), what).toEqual(before);
      }
      // The outbox still works: replace, partial ack, counts.
      await s.transaction('readwrite', (tx) => tx.replaceOutbox([moved(S1, 3), moved(S1, 10)]));
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 3))).toBe(2);
      expect(await s.transaction('readonly', async (tx) => [await tx.readOutbox(S1, 100), await tx.countOutbox()])).toEqual([[moved(S1, 10), change(S1, 11)], 4]);
    });

    it('a replaceOutbox that rejects keeps none of its replacements, even when the caller catches the rejection', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 1, 2));
        await tx.addOutbox(changes(S2, 1, 1));
      });
      const before = await s.transaction('readonly', (tx) => tx.readOutbox(undefined, 100));
      const moved = (space: SpaceId, seq: number): Change => ({ ...change(space, seq), hlc: formatTimestamp({ wall: 5_000_000, counter: seq, replica: WRITER }) });
      // Queued changes first (of the same space and of another), then one that is not queued.
      for (const bad of [
        [moved(S1, 1), moved(S2, 5)],
        [moved(S1, 2), moved(S1, 3)],
      ]) {
        let refused = false;
        // Whether the transaction then fails or commits is the adapter's choice; a half-done call is not.
        await s
          .transaction('readwrite', async (tx) => {
            await tx.replaceOutbox(bad).catch(() => (refused = true));
          })
          .catch(() => undefined);
        expect(refused).toBe(true);
        expect(await s.transaction('readonly', (tx) => tx.readOutbox(undefined, 100)), JSON.stringify(bad.map((c) => [c.space, c.seq]))).toEqual(before);
      }
    });

    it('a replaceOutbox that rejects leaves no rejection unhandled (writes it already issued fail with the transaction)', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 1, 2));
        await tx.addOutbox(changes(S2, 1, 1));
      });
      const moved = (space: SpaceId, seq: number): Change => ({ ...change(space, seq), hlc: formatTimestamp({ wall: 5_000_000, counter: seq, replica: WRITER }) });
      const unhandled = await unhandledDuring(async () => {
        for (const bad of [
          [moved(S1, 1), moved(S2, 5)],
          [moved(S1, 2), moved(S1, 3)],
        ]) {
          await expect(s.transaction('readwrite', (tx) => tx.replaceOutbox(bad))).rejects.toThrow();
        }
      });
      expect(unhandled.map(String)).toEqual([]);
    });

    it('outbox writes of an aborted or failed transaction leave entries and counts as they were', async () => {
      const s = await fresh();
      await s.transaction('readwrite', async (tx) => {
        await tx.addOutbox(changes(S1, 1, 5));
        await tx.addOutbox(changes(S2, 1, 1));
      });
      const snapshot = () => s.transaction('readonly', async (tx) => [await tx.readOutbox(S1, 100), await tx.readOutbox(S2, 100), await tx.countOutbox(S1), await tx.countOutbox()]);
      const before = await snapshot();
      expect(before).toEqual([changes(S1, 1, 5), changes(S2, 1, 1), 5, 6]);
      // A partial ack (rewrites the entry), a full ack and new entries, then abort.
      await expect(
        s.transaction('readwrite', async (tx) => {
          expect(await tx.ackOutbox(S1, 3)).toBe(3);
          expect(await tx.ackOutbox(S2, 1)).toBe(1);
          await tx.addOutbox(changes(S1, 6, 8));
          await tx.addOutbox(changes(S10, 1, 2));
          expect(await tx.countOutbox()).toBe(7);
          tx.abort();
        }),
      ).rejects.toThrow();
      expect(await snapshot()).toEqual(before);
      await expect(
        s.transaction('readwrite', async (tx) => {
          await tx.ackOutbox(S1, 4);
          await tx.addOutbox(changes(S1, 6, 6));
          throw new Error('crash before commit');
        }),
      ).rejects.toThrow('crash before commit');
      expect(await snapshot()).toEqual(before);
      // And the outbox still works.
      expect(await s.transaction('readwrite', (tx) => tx.ackOutbox(S1, 4))).toBe(4);
      expect(await snapshot()).toEqual([changes(S1, 5, 5), changes(S2, 1, 1), 1, 2]);
    });

    it('a transaction returns its callback result; reads inside see the transaction writes', async () => {
      const s = await fresh();
      const result = await s.transaction('readwrite', async (tx) => {
        await tx.putRecord(record('events', 'x', S1, [[1, 'v', 'x', S1]]));
        await tx.addOutbox([change(S1, 1)]);
        return [
          ids(await tx.scanRecords('events')),
          ids(await tx.scanIndex({ lower: [1], upper: [1, [[]]] })),
          await tx.countIndex({ lower: [1], upper: [1, [[]]] }),
          await tx.countRecords('events'),
          await tx.countOutbox(S1),
        ];
      });
      expect(result).toEqual([['x@s1'], ['x@s1'], 1, 1, 1]);
    });

    describe('atomicity', () => {
      async function writeAll(tx: Parameters<Parameters<Storage['transaction']>[1]>[0]): Promise<void> {
        await tx.setMeta('seq', 1);
        await tx.putRecord(record('events', 'x', S1, [[1, 'v', 'x', S1]]));
        await tx.addOutbox(changes(S1, 1, 3));
        await tx.addOutbox(changes(S2, 1, 2));
        await tx.setMeta('seq', 2);
      }
      async function expectUntouched(s: Storage): Promise<void> {
        const seen = await s.transaction('readonly', async (tx) => [
          await tx.getMeta('seq'),
          await tx.getRecord('events', 'x', S1),
          await tx.countRecords('events'),
          await tx.countIndex({ lower: [1], upper: [1, [[]]] }),
          await tx.countOutbox(),
          await tx.getRecord('events', 'kept', S1),
          await tx.countOutbox(S1),
          await tx.readOutbox(S1, 10),
          await tx.readOutbox(S2, 10),
        ]);
        expect(seen).toEqual([undefined, undefined, 0, 0, 0, undefined, 0, [], []]);
      }

      it('an exception inside a read-write transaction leaves nothing and is rethrown', async () => {
        const s = await fresh();
        const boom = new Error('boom');
        await expect(
          s.transaction('readwrite', async (tx) => {
            await writeAll(tx);
            throw boom;
          }),
        ).rejects.toBe(boom);
        await expectUntouched(s);
        // The storage keeps working after a failed transaction.
        await s.transaction('readwrite', (tx) => tx.putRecord(record('events', 'y', S1)));
        expect(await s.transaction('readonly', (tx) => tx.countRecords('events'))).toBe(1);
      });

      it('tx.abort() inside a read-write transaction leaves nothing and rejects', async () => {
        const s = await fresh();
        await expect(
          s.transaction('readwrite', async (tx) => {
            await writeAll(tx);
            tx.abort();
            return 'finished';
          }),
        ).rejects.toThrow();
        await expectUntouched(s);
        await s.transaction('readwrite', (tx) => tx.setMeta('after', 1));
        expect(await s.transaction('readonly', (tx) => tx.getMeta('after'))).toBe(1);
      });

      it('an ack in a failed transaction leaves the outbox as it was', async () => {
        const s = await fresh();
        await s.transaction('readwrite', async (tx) => {
          await tx.addOutbox(changes(S1, 1, 3));
        });
        for (const upTo of [3, 2]) {
          await expect(
            s.transaction('readwrite', async (tx) => {
              expect(await tx.ackOutbox(S1, upTo)).toBe(upTo);
              throw new Error('crash before commit');
            }),
          ).rejects.toThrow('crash before commit');
          expect(await s.transaction('readonly', async (tx) => (await tx.readOutbox(S1, 10)).map((c) => c.seq))).toEqual([1, 2, 3]);
          expect(await s.transaction('readonly', (tx) => tx.countOutbox(S1))).toBe(3);
        }
      });

      it('a read-only transaction cannot write', async () => {
        const s = await fresh();
        await expect(s.transaction('readonly', (tx) => tx.setMeta('k', 1))).rejects.toThrow();
        await expect(s.transaction('readonly', (tx) => tx.putRecord(record('events', 'x', S1)))).rejects.toThrow();
        await expectUntouched(s);
      });

      it('a concurrent reader sees all of a transaction or none of it', async () => {
        const s = await fresh();
        const reads: Array<Promise<number>> = [];
        const readPair = () => s.transaction('readonly', async (tx) => ((await tx.getRecord('events', 'a', S1)) ? 1 : 0) + ((await tx.getRecord('events', 'b', S1)) ? 1 : 0));
        const write = s.transaction('readwrite', async (tx) => {
          await tx.putRecord(record('events', 'a', S1));
          reads.push(readPair());
          await tx.getMeta('anything');
          await tx.putRecord(record('events', 'b', S1));
          reads.push(readPair());
        });
        reads.push(readPair());
        await write;
        reads.push(readPair());
        const seen = await Promise.all(reads);
        for (const n of seen) expect([0, 2]).toContain(n);
        expect(seen[seen.length - 1]).toBe(2);
      });
    });

    it('two connections to one database see each other committed writes; other names are separate', async () => {
      const a = await fresh();
      const b = await connect();
      const other = await connect('another-db');
      await a.transaction('readwrite', async (tx) => {
        await tx.setMeta('from', 'a');
        await tx.putRecord(record('events', 'x', S1, [[1, 'k', 'x', S1]]));
        await tx.addOutbox([change(S1, 1)]);
      });
      await b.transaction('readonly', async (tx) => {
        expect(await tx.getMeta('from')).toBe('a');
        expect((await tx.getRecord('events', 'x', S1))?.value).toEqual({ id: 'x' });
        expect(await tx.countIndex({ lower: [1], upper: [1, [[]]] })).toBe(1);
        expect((await tx.readOutbox(S1, 10)).map((c) => c.seq)).toEqual([1]);
      });
      await b.transaction('readwrite', (tx) => tx.ackOutbox(S1, 1));
      expect(await a.transaction('readonly', (tx) => tx.countOutbox())).toBe(0);
      await other.transaction('readonly', async (tx) => {
        expect(await tx.getMeta('from')).toBeUndefined();
        expect(await tx.countRecords('events')).toBe(0);
      });
      // A database outlives its connections: reopen after closing both.
      await a.close();
      await b.close();
      const c = await connect();
      expect(await c.transaction('readonly', (tx) => tx.getMeta('from'))).toBe('a');
    });

    it('concurrent read-write transactions are serialized: no lost update, also across connections', async () => {
      const a = await fresh();
      const b = await connect();
      const increment = (s: Storage) =>
        s.transaction('readwrite', async (tx) => {
          const n = (await tx.getMeta<number>('counter')) ?? 0;
          // Another request between the read and the write widens the window for a lost update.
          await tx.getRecord('events', 'x', S1);
          await tx.setMeta('counter', n + 1);
          await tx.addOutbox([change(S1, n + 1)]);
          return n + 1;
        });
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => increment(i % 2 === 0 ? a : b)));
      expect([...results].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      await a.transaction('readonly', async (tx) => {
        expect(await tx.getMeta('counter')).toBe(50);
        expect(await tx.countOutbox(S1)).toBe(50);
      });
    });

    it('close is idempotent and later transactions are refused', async () => {
      const s = await fresh();
      await s.transaction('readwrite', (tx) => tx.setMeta('k', 1));
      await s.close();
      await s.close();
      // The same refusal from every adapter: a ReplicaError with code `closed`.
      await expect(s.transaction('readonly', (tx) => tx.getMeta('k'))).rejects.toMatchObject({ name: 'ReplicaError', code: 'closed' });
      await expect(s.transaction('readwrite', (tx) => tx.setMeta('k', 2))).rejects.toMatchObject({ name: 'ReplicaError', code: 'closed' });
      const again = await connect();
      expect(await again.transaction('readonly', (tx) => tx.getMeta('k'))).toBe(1);
    });
  });
}

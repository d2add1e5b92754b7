/**
 * Upgrading an IndexedDB database written by the v1 schema (one outbox row per
 * change, keyed [space, seq]) to v2 (one entry per transaction and space, keyed
 * [space, from], counts in meta): no unacknowledged change is lost, and the
 * upgraded replica pushes them in order.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';
import { applyChange, formatTimestamp, lwwEntries, materialize, replicaId, spaceId, type Change, type Fields, type RecordState, type SpaceId } from '@syncline/core/internal';
import { createReplica, indexedDbStorage, type Storage } from '@syncline/client';
import { cleanupStack, isSynced, startServer, sync, waitUntil } from '../sync/harness.js';
import { uniqueName } from './helpers.js';
import { storageOf } from '../internals.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const DEFAULT = spaceId('default');
const OTHER = spaceId('other');
const BULK = spaceId('bulk');
const WRITER = replicaId('v1writer');
const schema = { events: {} } as const;

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error('aborted'));
  });
}

let wall = Date.now() - 10_000;
function change(space: SpaceId, seq: number, id: string, op: 'put' | 'patch' | 'delete', fields: Fields = {}): Change {
  const header = { space, collection: 'events', id, replica: WRITER, seq, hlc: formatTimestamp({ wall: ++wall, counter: 0, replica: WRITER }) };
  if (op === 'delete') return { ...header, op };
  if (op === 'patch') return { ...header, op, fields, unset: [] };
  return { ...header, op, fields };
}

/** The changes a v1 replica left unacknowledged: two spaces, puts, a patch, a delete. */
function v1Changes(bulk = 0): Change[] {
  return [
    change(DEFAULT, 1, 'e1', 'put', { title: 'one' }),
    change(DEFAULT, 2, 'e2', 'put', { title: 'two' }),
    change(OTHER, 1, 'o1', 'put', { title: 'other' }),
    change(DEFAULT, 3, 'e1', 'patch', { title: 'one, edited' }),
    change(DEFAULT, 4, 'e3', 'put', { title: 'three' }),
    change(OTHER, 2, 'o1', 'patch', { done: true }),
    change(DEFAULT, 5, 'e2', 'delete'),
    ...Array.from({ length: bulk }, (_, i) => change(BULK, i + 1, `b${i}`, 'put', { n: i })),
  ];
}

/** A record state as v1 and v2 stored it: every lww field an entry of `fields` (no `stamped`). */
function entriesOnly(state: RecordState): RecordState {
  if (!state.lww) return state;
  const { cleared, deleted, touched } = state.lww;
  return { ...state, lww: { cleared, deleted, touched, fields: new Map(lwwEntries(state.lww)) } };
}

/**
 * A database exactly as the v1 adapter created and wrote it: stores meta, records
 * (keyPath [collection, id, space], multiEntry index ix) and outbox (keyPath
 * [space, seq], one change per row), with the records, sequence counters and clock
 * those changes produced.
 */
async function createV1(factory: IDBFactory, name: string, changes: readonly Change[]): Promise<void> {
  const open = factory.open(`syncline:${name}`, 1);
  open.onupgradeneeded = () => {
    const db = open.result;
    db.createObjectStore('meta');
    const records = db.createObjectStore('records', { keyPath: ['collection', 'id', 'space'] });
    records.createIndex('ix', 'ix', { multiEntry: true });
    db.createObjectStore('outbox', { keyPath: ['space', 'seq'] });
  };
  const db = await request(open);
  const tx = db.transaction(['meta', 'records', 'outbox'], 'readwrite');
  const states = new Map<string, { collection: string; id: string; space: SpaceId; state: RecordState }>();
  const seqs = new Map<SpaceId, number>();
  for (const c of changes) {
    const key = JSON.stringify([c.collection, c.id, c.space]);
    const prev = states.get(key);
    states.set(key, { collection: c.collection, id: c.id, space: c.space, state: entriesOnly(applyChange(prev?.state, c)) });
    seqs.set(c.space, Math.max(seqs.get(c.space) ?? 0, c.seq));
  }
  const meta = tx.objectStore('meta');
  meta.put(WRITER, 'replica');
  meta.put(changes.reduce((max, c) => (c.hlc > max ? c.hlc : max), ''), 'clock');
  for (const [space, seq] of seqs) meta.put(seq, `seq\u0000${space}`);
  for (const { collection, id, space, state } of states.values()) {
    const view = materialize(state);
    tx.objectStore('records').put({ collection, id, space, state, value: view.exists ? view.value : undefined, ix: [] });
  }
  // Rows written in commit order (the store keeps them in [space, seq] order).
  for (const c of changes) tx.objectStore('outbox').put(c);
  await done(tx);
  db.close();
}

const ofSpace = (changes: readonly Change[], space: SpaceId) => changes.filter((c) => c.space === space);

describe('IndexedDB upgrade from the v1 schema', () => {
  it('regroups the v1 outbox into entries and keeps every change, count and record', async () => {
    const factory = new IDBFactory();
    const name = uniqueName('v1-storage');
    const changes = v1Changes(2_500);
    await createV1(factory, name, changes);

    const storage: Storage = await indexedDbStorage({ indexedDB: factory })(name);
    cleanup.push(() => storage.close());
    await storage.transaction('readonly', async (tx) => {
      for (const space of [DEFAULT, OTHER, BULK]) {
        expect(await tx.readOutbox(space, 10_000), space).toEqual(ofSpace(changes, space));
        expect(await tx.countOutbox(space)).toBe(ofSpace(changes, space).length);
      }
      expect((await tx.readOutbox(DEFAULT, 2)).map((c) => c.seq)).toEqual([1, 2]);
      expect((await tx.readOutbox(BULK, 1_500)).map((c) => c.seq)).toEqual(Array.from({ length: 1_500 }, (_, i) => i + 1));
      expect(await tx.countOutbox()).toBe(2_507);
      expect((await tx.getRecord('events', 'e1', DEFAULT))?.value).toEqual({ title: 'one, edited' });
      expect((await tx.getRecord('events', 'e2', DEFAULT))?.value).toBeUndefined();
      expect(await tx.getMeta('replica')).toBe(WRITER);
      // v4: the deleted record is in the index of what garbage collection may forget, and only it.
      const above = formatTimestamp({ wall: wall + 1, counter: 0, replica: WRITER });
      expect((await tx.collectible?.(DEFAULT, above))?.map((r) => r.id)).toEqual(['e2']);
      expect(await tx.collectible?.(OTHER, above)).toEqual([]);
      const e2 = await tx.getRecord('events', 'e2', DEFAULT);
      expect(await tx.collectible?.(DEFAULT, (e2?.dead as string).replace(/-.*$/, '-0000-0') as never)).toEqual([]); // its own stamp's moment, before it
      // v5: the records that have a value are counted by the live index (e2 is deleted), and reads do not show `live`.
      const live = (await tx.scanRecords('events')).filter((r) => r.value !== undefined).length;
      expect(live).toBeGreaterThan(0);
      expect(await tx.countLive?.('events')).toBe(live);
      expect(Object.keys((await tx.getRecord('events', 'e1', DEFAULT)) ?? {})).not.toContain('live');
    });
    await storage.close();

    // The stored form: version 5, entries keyed [space, from] of at most 1,000 contiguous changes.
    const db = await request(factory.open(`syncline:${name}`));
    cleanup.push(() => db.close());
    expect(db.version).toBe(5);
    expect([...db.objectStoreNames].sort()).toEqual(['meta', 'outbox', 'records']);
    const tx = db.transaction(['outbox'], 'readonly');
    expect(tx.objectStore('outbox').keyPath).toEqual(['space', 'from']);
    const entries = (await request(tx.objectStore('outbox').getAll())) as Array<{ space: string; from: number; to: number; changes: Change[] }>;
    expect(entries.map((e) => [e.space, e.from, e.to, e.changes.length])).toEqual([
      ['bulk', 1, 1_000, 1_000],
      ['bulk', 1_001, 2_000, 1_000],
      ['bulk', 2_001, 2_500, 500],
      ['default', 1, 5, 5],
      ['other', 1, 2, 2],
    ]);
  });

  it('upgrades a v1 database with an empty outbox', async () => {
    const factory = new IDBFactory();
    const name = uniqueName('v1-empty');
    await createV1(factory, name, []);
    const storage = await indexedDbStorage({ indexedDB: factory })(name);
    cleanup.push(() => storage.close());
    expect(await storage.transaction('readonly', async (tx) => [await tx.countOutbox(), await tx.readOutbox(DEFAULT, 10), await tx.getMeta('replica')])).toEqual([0, [], WRITER]);
    await storage.transaction('readwrite', (tx) => tx.addOutbox([change(DEFAULT, 1, 'x', 'put', { a: 1 })]));
    expect(await storage.transaction('readonly', (tx) => tx.countOutbox(DEFAULT))).toBe(1);
  });

  it('the upgraded replica pushes the v1 changes in order, then its new ones', async () => {
    const factory = new IDBFactory();
    const name = uniqueName('v1-replica');
    const changes = v1Changes();
    await createV1(factory, name, changes);
    const server = await startServer();
    cleanup.push(() => server.close());

    const r = await createReplica({ name, schema, storage: indexedDbStorage({ indexedDB: factory }), tabs: false });
    cleanup.push(() => r.close());
    expect(r.id).toBe(WRITER);
    expect((await r.get('events', 'e1'))?.value).toEqual({ title: 'one, edited' });
    // Records stored in the v1 form take new writes: a patch keeps the put's fields, a put replaces them.
    await r.patch('events', 'e1', { place: 'lab' });
    expect((await r.get('events', 'e1'))?.value).toEqual({ place: 'lab', title: 'one, edited' });
    await r.put('events', 'e3', { title: 'three, replaced' });
    expect((await r.get('events', 'e3'))?.value).toEqual({ title: 'three, replaced' });
    // A write after the upgrade continues the space's sequence.
    await r.put('events', 'e4', { title: 'four' });
    const engine = sync(r, server.url, { spaces: ['default', 'other'], batchSize: 2 });
    cleanup.push(() => engine.close());
    await waitUntil(() => isSynced(engine), 10_000, () => `the v1 outbox to be pushed (status ${JSON.stringify(engine.status)})`);

    const pushed = async (space: SpaceId) => (await server.storage.readLog(space, 0, 100)).map((e) => [e.change.seq, e.change.id, e.change.op, e.change.replica]);
    expect(await pushed(DEFAULT)).toEqual([...ofSpace(changes, DEFAULT).map((c) => [c.seq, c.id, c.op, WRITER]), [6, 'e1', 'patch', WRITER], [7, 'e3', 'put', WRITER], [8, 'e4', 'put', WRITER]]);
    expect(await pushed(OTHER)).toEqual(ofSpace(changes, OTHER).map((c) => [c.seq, c.id, c.op, WRITER]));
    expect(await storageOf(r).transaction('readonly', (tx) => tx.countOutbox())).toBe(0);
  });
});

/**
 * Storage on IndexedDB through `idb`. One database per replica name:
 *   meta     out-of-line keys: replica id, clock, sequence counters, index numbers
 *   records  key [collection, id, space]; multiEntry index `ix` over index keys; index `dead`
 *            over [space, dead]: the deleted records garbage collection may forget; index
 *            `live` over `live`, [collection, space] on each record that has a value (count())
 *   outbox   key [space, from]: local changes not yet acknowledged by the server, one
 *            entry { space, from, to, changes } per transaction and space (storage/outbox.ts);
 *            meta `outbox` holds each space's count of changes, updated in the same transaction
 * Browser edge cases: another tab upgrading (versionchange) closes this connection
 * and tells the replica; a blocked upgrade and quota errors become coded errors.
 */
import { collectibleAt, type Change, type HlcString, type SpaceId } from '@syncline/core/internal';
import { wrap, type IDBPDatabase, type IDBPTransaction } from 'idb';
import { ReplicaError } from '../errors.js';
import { compareKeys, type Key, type KeyRange } from './keys.js';
import { groupOutbox, META_OUTBOX, outboxEntry, type OutboxCounts, type OutboxEntry } from './outbox.js';
import type { RecordAddress, ScanOptions, Storage, StorageFactory, StorageTx, StoredRecord, TxMode } from './types.js';

/**
 * 1: one outbox row per change. 2: one outbox entry per transaction and space, counts in meta.
 * 3: a record's lww state may hold a put's fields as one object (`stamped`); v2 states are
 * read as they are, and the version keeps code from before it, which would not see those
 * fields, from opening the database.
 * 4: records index `dead` over [space, dead]: the deleted records garbage collection may
 * forget (StoredRecord.dead), filled in for what the database held at the upgrade.
 * 5: records index `live` over `live`, [collection, space], which a record holds only while
 * it has a value: count() of a collection (in a space) counts index keys, without reading records.
 */
const DB_VERSION = 5;
/** The property (and index) that a record holds while it has a value: [collection, space]. */
const LIVE = 'live';
const OUTBOX_STORE = { keyPath: ['space', 'from'] };
/** The records index of what garbage collection may forget: records without `dead` are not in it. */
const DEAD_INDEX = ['space', 'dead'];
/** Changes per entry when a v1 outbox is regrouped (like the replica's largest entries). */
const MIGRATED_ENTRY_MAX = 1_000;
const STORES = ['meta', 'records', 'outbox'] as const;
/** getRecords of at least this many records first lists the keys present in their span... */
const PROBE_MIN = 8;
/** ...reading at most this many keys per record asked (more: one get per record instead). */
const PROBE_FACTOR = 2;
/** Descending scans up to this many rows (offset included) walk a cursor; larger ones read keys first. */
const CURSOR_WINDOW = 64;
type Tx = IDBPTransaction<unknown, ('meta' | 'records' | 'outbox')[], 'readwrite'>;

/**
 * Options of `indexedDbStorage()`. Each defaults to the global of the same name;
 * when one is neither given nor global, opening a database rejects with a
 * ReplicaError `storage_unavailable`.
 */
export interface IndexedDbOptions {
  /** The IDBFactory to use: `indexedDB` in browsers, fake-indexeddb's in Node tests. */
  readonly indexedDB?: IDBFactory;
  /** Matching IDBKeyRange constructor (fake-indexeddb ships its own). */
  readonly IDBKeyRange?: typeof IDBKeyRange;
}

/** A range no key can fall in: IDBKeyRange.bound throws DataError for it, the contract says "empty". */
function isEmptyRange(range: KeyRange): boolean {
  if (range.lower === undefined || range.upper === undefined) return false;
  const c = compareKeys(range.lower, range.upper);
  return c > 0 || (c === 0 && (range.lowerOpen === true || range.upperOpen === true));
}

function toIdbRange(Range: typeof IDBKeyRange, range: KeyRange): IDBKeyRange | undefined {
  const { lower, upper } = range;
  if (lower !== undefined && upper !== undefined) return Range.bound(lower, upper, range.lowerOpen ?? false, range.upperOpen ?? false);
  if (lower !== undefined) return Range.lowerBound(lower, range.lowerOpen ?? false);
  if (upper !== undefined) return Range.upperBound(upper, range.upperOpen ?? false);
  return undefined;
}

function mapError(error: unknown): unknown {
  if (error instanceof DOMException || (error instanceof Error && typeof (error as { name?: unknown }).name === 'string')) {
    if ((error as Error).name === 'QuotaExceededError') {
      return new ReplicaError('storage_quota', 'the browser refused to store more data (storage quota exceeded); free space or ask for persistent storage', { cause: error });
    }
  }
  return error;
}

class IdbTx implements StorageTx {
  /**
   * Read-write transactions: the pending counts, asked for with the transaction's
   * first request (an outbox write then needs no extra round trip to update them),
   * and kept current by this transaction's outbox writes.
   */
  readonly #counts: Promise<OutboxCounts> | undefined;

  constructor(
    readonly tx: Tx,
    readonly Range: typeof IDBKeyRange,
    mode: TxMode,
  ) {
    if (mode === 'readwrite') {
      this.#counts = tx.objectStore('meta').get(META_OUTBOX).then((counts) => (counts as OutboxCounts | undefined) ?? new Map());
      // Observed by the outbox methods; a transaction that never gets there must not leave it unhandled.
      this.#counts.catch(() => undefined);
    }
  }

  async #readCounts(): Promise<OutboxCounts> {
    return this.#counts ?? (((await this.tx.objectStore('meta').get(META_OUTBOX)) as OutboxCounts | undefined) ?? new Map());
  }

  /** Sets a space's count (in the transaction's copy) and writes every count back. */
  #writeCounts(counts: Map<string, number>, space: string, n: number): Promise<unknown> {
    if (n > 0) counts.set(space, n);
    else counts.delete(space);
    return this.tx.objectStore('meta').put(counts, META_OUTBOX);
  }

  async getMeta<T>(key: string): Promise<T | undefined> {
    return (await this.tx.objectStore('meta').get(key)) as T | undefined;
  }
  async setMeta(key: string, value: unknown): Promise<void> {
    await this.tx.objectStore('meta').put(value, key);
  }
  async metaKeys(prefix: string): Promise<string[]> {
    const store = this.tx.objectStore('meta');
    const keys = (await store.getAllKeys(this.Range.bound(prefix, `${prefix}\uffff`))) as string[];
    const values = await Promise.all(keys.map((key) => store.get(key)));
    return keys.filter((_, i) => values[i] !== undefined);
  }
  async getRecord(collection: string, id: string, space: SpaceId): Promise<StoredRecord | undefined> {
    return fromStore((await this.tx.objectStore('records').get([collection, id, space])) as StoredRecord | undefined);
  }
  async getRecords(addresses: readonly RecordAddress[]): Promise<Array<StoredRecord | undefined>> {
    const store = this.tx.objectStore('records');
    const keys = addresses.map((a): string[] => [a.collection, a.id, a.space]);
    const getEach = () => Promise.all(keys.map((key) => (store.get(key) as Promise<StoredRecord | undefined>).then(fromStore)));
    if (keys.length < PROBE_MIN) return getEach();
    // Which of them exist: the primary keys between the lowest and the highest asked, if
    // there are few (a batch of new records, or ids that sort together). A get of a
    // record that is not there costs about a third of a put; this is one request.
    let low = keys[0] as string[];
    let high = low;
    for (const key of keys) {
      if (compareKeys(key, low) < 0) low = key;
      else if (compareKeys(key, high) > 0) high = key;
    }
    const cap = PROBE_FACTOR * keys.length;
    const present = await store.getAllKeys(this.Range.bound(low, high), cap + 1);
    if (present.length > cap) return getEach();
    const existing = new Set(present.map((key) => JSON.stringify(key)));
    return Promise.all(keys.map((key) => (existing.has(JSON.stringify(key)) ? (store.get(key) as Promise<StoredRecord | undefined>).then(fromStore) : undefined)));
  }
  async putRecord(record: StoredRecord): Promise<void> {
    await this.tx.objectStore('records').put(withLive(record));
  }

  async forgetRecords(addresses: readonly RecordAddress[]): Promise<void> {
    const store = this.tx.objectStore('records');
    await Promise.all(addresses.map((a) => store.delete([a.collection, a.id, a.space])));
  }

  async collectible(space: SpaceId, horizon: HlcString): Promise<StoredRecord[]> {
    // '' sorts before every stamp.
    return allFromStore((await this.tx.objectStore('records').index('dead').getAll(this.Range.bound([space, ''], [space, horizon]))) as StoredRecord[]);
  }

  async #collect(source: IDBObjectStore | IDBIndex, query: IDBKeyRange | undefined, options: ScanOptions, filter?: (r: StoredRecord) => boolean): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    const direction = options.direction === 'desc' ? 'prev' : 'next';
    let skip = options.offset ?? 0;
    const limit = options.limit ?? Infinity;
    if (limit <= 0) return out;
    const bulk = source as unknown as { getAll(q?: IDBKeyRange, n?: number): Promise<StoredRecord[]>; getAllKeys(q?: IDBKeyRange): Promise<IDBValidKey[]> };
    // Cursors cost one request per row; whole ranges and large windows are read with getAll / getAllKeys.
    if (limit === Infinity) {
      const all = allFromStore(await bulk.getAll(query));
      if (direction === 'prev') all.reverse();
      return (filter ? all.filter(filter) : all).slice(skip);
    }
    if (!filter && direction === 'next') return allFromStore((await bulk.getAll(query, skip + limit)).slice(skip));
    // Descending over a large window: read the primary keys of the range at once (keys
    // only, in source order) and fetch the window's records with requests issued
    // together. Small windows keep the cursor, which does not read the whole range.
    if (!filter && skip + limit > CURSOR_WINDOW) {
      const keys = await bulk.getAllKeys(query);
      const end = keys.length - skip;
      if (end <= 0) return out;
      const window = keys.slice(Math.max(0, end - limit), end).reverse();
      const store = this.tx.objectStore('records');
      return allFromStore((await Promise.all(window.map((key) => store.get(key)))) as StoredRecord[]);
    }
    let cursor = await (source as unknown as { openCursor(q?: IDBKeyRange, d?: IDBCursorDirection): Promise<{ value: StoredRecord; continue(): Promise<unknown>; advance(n: number): Promise<unknown> } | null> }).openCursor(query, direction);
    while (cursor && out.length < limit) {
      if (filter && !filter(cursor.value)) {
        cursor = (await cursor.continue()) as typeof cursor;
        continue;
      }
      if (skip > 0 && !filter) {
        cursor = (await cursor.advance(skip)) as typeof cursor;
        skip = 0;
        continue;
      }
      if (skip > 0) skip--;
      else out.push(fromStore(cursor.value));
      cursor = (await cursor.continue()) as typeof cursor;
    }
    return out;
  }

  scanRecords(collection: string, options: ScanOptions & { space?: SpaceId } = {}): Promise<StoredRecord[]> {
    const range = this.Range.bound([collection], [collection, []]);
    const space = options.space;
    return this.#collect(this.tx.objectStore('records') as unknown as IDBObjectStore, range, options, space === undefined ? undefined : (r) => r.space === space);
  }
  async scanIndex(range: KeyRange, options: ScanOptions = {}): Promise<StoredRecord[]> {
    if (isEmptyRange(range)) return [];
    return this.#collect(this.tx.objectStore('records').index('ix') as unknown as IDBIndex, toIdbRange(this.Range, range), options);
  }
  async countIndex(range: KeyRange): Promise<number> {
    if (isEmptyRange(range)) return 0;
    return this.tx.objectStore('records').index('ix').count(toIdbRange(this.Range, range));
  }
  async countRecords(collection: string): Promise<number> {
    return this.tx.objectStore('records').count(this.Range.bound([collection], [collection, []]));
  }
  async countLive(collection: string, space?: SpaceId): Promise<number> {
    const range = space === undefined ? this.Range.bound([collection], [collection, []]) : this.Range.only([collection, space]);
    return this.tx.objectStore('records').index(LIVE).count(range);
  }
  async addOutbox(changes: readonly Change[]): Promise<void> {
    const entry = outboxEntry(changes);
    if (!entry) return;
    // add, not put: an entry already under [space, from] must fail the transaction, not be replaced.
    const added = this.tx.objectStore('outbox').add(entry);
    const counts = (await this.#readCounts()) as Map<string, number>;
    await Promise.all([added, this.#writeCounts(counts, entry.space, (counts.get(entry.space) ?? 0) + changes.length)]);
  }
  async readOutbox(space: SpaceId | undefined, limit: number): Promise<Change[]> {
    const out: Change[] = [];
    const store = this.tx.objectStore('outbox');
    if (space === undefined) {
      // Every space (re-stamping reads the whole outbox, rarely): entries in [space, from] order.
      for (const entry of (await store.getAll()) as OutboxEntry[]) {
        for (const change of entry.changes) {
          if (out.length === limit) return out;
          out.push(change);
        }
      }
      return out;
    }
    let lower: IDBValidKey = [space, -Infinity];
    let lowerOpen = false;
    while (out.length < limit) {
      const need = limit - out.length;
      // Keys first (no change is read): every entry holds at least one change, so `need` keys are enough.
      const keys = (await store.getAllKeys(this.Range.bound(lower, [space, Infinity], lowerOpen), need > 0xffff_ffff ? undefined : need)) as Array<[SpaceId, number]>;
      if (keys.length === 0) break;
      // Contiguous entries (the replica's are) up to the first that starts `need` seqs after
      // the first hold enough; after a gap between entries, the loop reads on.
      const first = (keys[0] as [SpaceId, number])[1];
      let k = 1;
      while (k < keys.length && (keys[k] as [SpaceId, number])[1] - first < need) k++;
      const last = keys[k - 1] as [SpaceId, number];
      const entries = (await store.getAll(this.Range.bound(keys[0] as [SpaceId, number], last))) as OutboxEntry[];
      for (const entry of entries) {
        for (const change of entry.changes) {
          if (out.length === limit) break;
          out.push(change);
        }
      }
      // Every key read: either they were all the space has, or `need` entries of at least one change each.
      if (k === keys.length) break;
      lower = last;
      lowerOpen = true;
    }
    return out;
  }
  async ackOutbox(space: SpaceId, acked: number): Promise<number> {
    const upTo = Math.floor(acked);
    const range = this.Range.bound([space, -Infinity], [space, upTo]);
    const store = this.tx.objectStore('outbox');
    const [entries, counts] = (await Promise.all([store.getAll(range), this.#readCounts()])) as [OutboxEntry[], Map<string, number>];
    if (entries.length === 0) return 0;
    let n = 0;
    for (const entry of entries) n += Math.min(entry.to, upTo) - entry.from + 1;
    const writes: Array<Promise<unknown>> = [store.delete(range)];
    const partial = entries[entries.length - 1] as OutboxEntry;
    if (partial.to > upTo) {
      // Acknowledged in part: the rest becomes an entry keyed by its first seq, in this transaction.
      writes.push(store.add({ space, from: upTo + 1, to: partial.to, changes: partial.changes.slice(upTo + 1 - partial.from) } satisfies OutboxEntry));
    }
    writes.push(this.#writeCounts(counts, space, (counts.get(space) ?? 0) - n));
    await Promise.all(writes);
    return n;
  }
  async replaceOutbox(changes: readonly Change[]): Promise<void> {
    if (changes.length === 0) return;
    const store = this.tx.objectStore('outbox');
    const bySpace = new Map<SpaceId, Map<number, Change>>();
    for (const change of changes) {
      let seqs = bySpace.get(change.space);
      if (!seqs) bySpace.set(change.space, (seqs = new Map()));
      seqs.set(change.seq, change);
    }
    // Every entry is read and checked before anything is written: a refusal writes nothing.
    const rewritten: OutboxEntry[] = [];
    for (const [space, seqs] of bySpace) {
      const high = Math.max(...seqs.keys());
      const low = Math.min(...seqs.keys());
      // Entries are keyed by their first seq, so the one holding `low` may start before it: read from the space's first.
      const entries = (await store.getAll(this.Range.bound([space, -Infinity], [space, high]))) as OutboxEntry[];
      let found = 0;
      for (const entry of entries) {
        if (entry.to < low) continue;
        let touched = false;
        const next = entry.changes.map((c) => {
          const replacement = seqs.get(c.seq);
          if (!replacement) return c;
          touched = true;
          found++;
          return replacement;
        });
        if (touched) rewritten.push({ ...entry, changes: next });
      }
      if (found !== seqs.size) throw new Error(`replaceOutbox: ${seqs.size - found} of the changes of space "${space}" are not in the outbox`);
    }
    await Promise.all(rewritten.map((entry) => store.put(entry)));
  }
  async countOutbox(space?: SpaceId): Promise<number> {
    const counts = await this.#readCounts();
    if (space !== undefined) return counts.get(space) ?? 0;
    let n = 0;
    for (const count of counts.values()) n += count;
    return n;
  }
  abort(): void {
    this.tx.abort();
  }
}

class IndexedDbStorage implements Storage {
  readonly kind = 'indexeddb';
  onVersionChange?: () => void;
  #closed = false;

  constructor(
    readonly db: IDBPDatabase,
    readonly Range: typeof IDBKeyRange,
  ) {}

  async transaction<T>(mode: TxMode, fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    if (this.#closed) throw new ReplicaError('closed', 'the replica storage is closed');
    let tx: Tx;
    try {
      tx = this.db.transaction([...STORES], mode) as unknown as Tx;
    } catch (error) {
      if ((error as Error).name === 'InvalidStateError') {
        throw new ReplicaError('closed', 'the database connection was closed (another tab upgraded or deleted it); reopen the replica', { cause: error });
      }
      throw error;
    }
    try {
      const result = await fn(new IdbTx(tx, this.Range, mode));
      await tx.done;
      return result;
    } catch (error) {
      try {
        tx.abort();
      } catch {
        // already finished or aborted
      }
      await tx.done.catch(() => undefined);
      throw mapError(error);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.db.close();
  }
}

/**
 * v1 -> v2: the v1 outbox held one change per row, keyed [space, seq]. Inside the
 * upgrade transaction (all of it or nothing: a failure leaves the v1 database as
 * it was), read every row, recreate the store with entries keyed [space, from],
 * and record each space's count of changes in meta.
 */
function migrateOutboxV1(database: IDBDatabase, upgrade: IDBTransaction): void {
  const read = upgrade.objectStore('outbox').getAll();
  read.onsuccess = () => {
    const changes = read.result as Change[];
    database.deleteObjectStore('outbox');
    const outbox = database.createObjectStore('outbox', OUTBOX_STORE);
    const counts = new Map<string, number>();
    for (const entry of groupOutbox(changes, MIGRATED_ENTRY_MAX)) {
      outbox.add(entry);
      counts.set(entry.space, (counts.get(entry.space) ?? 0) + entry.changes.length);
    }
    upgrade.objectStore('meta').put(counts, META_OUTBOX);
  };
}

/**
 * v3 -> v4: the `dead` index, and each deleted record garbage collection may
 * forget given its `dead` (a cursor over the records, inside the upgrade
 * transaction: all of it or nothing).
 */
function indexDeadRecords(upgrade: IDBTransaction): void {
  const store = upgrade.objectStore('records');
  store.createIndex('dead', DEAD_INDEX);
  const cursor = store.openCursor();
  cursor.onsuccess = () => {
    const at = cursor.result;
    if (!at) return;
    const record = at.value as StoredRecord;
    const dead = record.value === undefined ? collectibleAt(record.state) : undefined;
    if (dead !== undefined) at.update({ ...record, dead });
    at.continue();
  };
}

/** `record` as stored: with `live` ([collection, space]) while it has a value, without it once deleted. */
function withLive(record: StoredRecord): StoredRecord {
  return record.value === undefined ? record : ({ ...record, [LIVE]: [record.collection, record.space] } as StoredRecord);
}

/** A record as read: without `live`, which only the index uses (a fresh copy from IndexedDB: changed in place). */
function fromStore<T extends StoredRecord | undefined>(record: T): T {
  if (record !== undefined && LIVE in record) delete (record as { live?: string }).live;
  return record;
}

function allFromStore(records: StoredRecord[]): StoredRecord[] {
  for (const record of records) fromStore(record);
  return records;
}

/** v4 -> v5: the `live` index, and `live` on each record that has a value (a cursor inside the upgrade transaction). */
function indexLiveRecords(upgrade: IDBTransaction): void {
  const store = upgrade.objectStore('records');
  store.createIndex(LIVE, LIVE);
  const cursor = store.openCursor();
  cursor.onsuccess = () => {
    const at = cursor.result;
    if (!at) return;
    const record = at.value as StoredRecord;
    if (record.value !== undefined) at.update(withLive(record));
    at.continue();
  };
}

/** A StorageFactory for IndexedDB. In browsers the defaults are the global indexedDB and IDBKeyRange. */
export function indexedDbStorage(options: IndexedDbOptions = {}): StorageFactory {
  return async (name) => {
    const factory = options.indexedDB ?? globalThis.indexedDB;
    const Range = options.IDBKeyRange ?? globalThis.IDBKeyRange;
    if (!factory || !Range) {
      throw new ReplicaError('storage_unavailable', 'IndexedDB is not available here; pass indexedDbStorage({ indexedDB, IDBKeyRange }) or use memoryStorage()');
    }
    const request = factory.open(`syncline:${name}`, DB_VERSION);
    request.onupgradeneeded = (event) => {
      const database = request.result;
      if (event.oldVersion < 1) {
        database.createObjectStore('meta');
        const records = database.createObjectStore('records', { keyPath: ['collection', 'id', 'space'] });
        records.createIndex('ix', 'ix', { multiEntry: true });
        records.createIndex('dead', DEAD_INDEX);
        records.createIndex(LIVE, LIVE);
        database.createObjectStore('outbox', OUTBOX_STORE);
        return;
      }
      const upgrade = request.transaction as IDBTransaction;
      if (event.oldVersion < 2) migrateOutboxV1(database, upgrade);
      if (event.oldVersion < 4) indexDeadRecords(upgrade);
      if (event.oldVersion < 5) indexLiveRecords(upgrade);
    };
    const raw = await new Promise<IDBDatabase>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ReplicaError('upgrade_blocked', `database "syncline:${name}" is held open by another tab with an older version; close other tabs of this app`));
      }, 10_000);
      request.onblocked = () => undefined; // keep waiting until the timer decides
      request.onsuccess = () => {
        clearTimeout(timer);
        resolve(request.result);
      };
      request.onerror = () => {
        clearTimeout(timer);
        reject(new ReplicaError('storage_unavailable', `could not open IndexedDB database "syncline:${name}": ${String(request.error)}`, { cause: request.error }));
      };
    });
    const storage = new IndexedDbStorage(wrap(raw), Range);
    // Another tab wants a newer version or deletes the database: step aside instead of blocking it.
    raw.onversionchange = () => {
      raw.close();
      storage.onVersionChange?.();
    };
    raw.onclose = () => storage.onVersionChange?.();
    return storage;
  };
}

export type { Key };

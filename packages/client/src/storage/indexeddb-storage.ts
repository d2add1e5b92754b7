/**
 * Storage on IndexedDB through `idb`. One database per replica name:
 *   meta     out-of-line keys: replica id, clock, sequence counters, index numbers
 *   records  key [collection, id, space]; multiEntry index `ix` over index keys
 *   outbox   key [space, seq]: local changes not yet acknowledged by the server
 * Browser edge cases: another tab upgrading (versionchange) closes this connection
 * and tells the replica; a blocked upgrade and quota errors become coded errors.
 */
import type { Change, SpaceId } from '@syncline/core';
import { wrap, type IDBPDatabase, type IDBPTransaction } from 'idb';
import { ReplicaError } from '../errors.js';
import { compareKeys, type Key, type KeyRange } from './keys.js';
import type { ScanOptions, Storage, StorageFactory, StorageTx, StoredRecord, TxMode } from './types.js';

const DB_VERSION = 1;
const STORES = ['meta', 'records', 'outbox'] as const;
/** Descending scans up to this many rows (offset included) walk a cursor; larger ones read keys first. */
const CURSOR_WINDOW = 64;
type Tx = IDBPTransaction<unknown, ('meta' | 'records' | 'outbox')[], 'readwrite'>;

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
  constructor(
    readonly tx: Tx,
    readonly Range: typeof IDBKeyRange,
  ) {}

  async getMeta<T>(key: string): Promise<T | undefined> {
    return (await this.tx.objectStore('meta').get(key)) as T | undefined;
  }
  async setMeta(key: string, value: unknown): Promise<void> {
    await this.tx.objectStore('meta').put(value, key);
  }
  async getRecord(collection: string, id: string, space: SpaceId): Promise<StoredRecord | undefined> {
    return (await this.tx.objectStore('records').get([collection, id, space])) as StoredRecord | undefined;
  }
  async putRecord(record: StoredRecord): Promise<void> {
    await this.tx.objectStore('records').put(record);
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
      const all = await bulk.getAll(query);
      if (direction === 'prev') all.reverse();
      return (filter ? all.filter(filter) : all).slice(skip);
    }
    if (!filter && direction === 'next') return (await bulk.getAll(query, skip + limit)).slice(skip);
    // Descending over a large window: read the primary keys of the range at once (keys
    // only, in source order) and fetch the window's records with requests issued
    // together. Small windows keep the cursor, which does not read the whole range.
    if (!filter && skip + limit > CURSOR_WINDOW) {
      const keys = await bulk.getAllKeys(query);
      const end = keys.length - skip;
      if (end <= 0) return out;
      const window = keys.slice(Math.max(0, end - limit), end).reverse();
      const store = this.tx.objectStore('records');
      return (await Promise.all(window.map((key) => store.get(key)))) as StoredRecord[];
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
      else out.push(cursor.value);
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
  async addOutbox(change: Change): Promise<void> {
    await this.tx.objectStore('outbox').put(change);
  }
  async readOutbox(space: SpaceId, limit: number): Promise<Change[]> {
    return (await this.tx.objectStore('outbox').getAll(this.Range.bound([space, 0], [space, Infinity]), limit)) as Change[];
  }
  async ackOutbox(space: SpaceId, upTo: number): Promise<number> {
    const range = this.Range.bound([space, 0], [space, upTo]);
    const store = this.tx.objectStore('outbox');
    const n = await store.count(range);
    await store.delete(range);
    return n;
  }
  async countOutbox(space?: SpaceId): Promise<number> {
    const store = this.tx.objectStore('outbox');
    return space === undefined ? store.count() : store.count(this.Range.bound([space, 0], [space, Infinity]));
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
      const result = await fn(new IdbTx(tx, this.Range));
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
        database.createObjectStore('outbox', { keyPath: ['space', 'seq'] });
      }
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

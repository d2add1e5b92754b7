/**
 * Storage in memory. Databases live in a registry you create, so two replicas
 * (two "tabs") in one process can open the same database, and tests can reopen one.
 * Read-write transactions run one at a time and write into an overlay that is
 * applied only when the callback succeeds.
 */
import { setOwn, type Change, type HlcString, type Json, type SpaceId } from '@syncline/core/internal';
import BTreeModule from 'sorted-btree';
import { compareKeys, inRange, type Key, type KeyRange } from './keys.js';
import { ReplicaError } from '../errors.js';
import { outboxEntry } from './outbox.js';
import type { RecordAddress, ScanOptions, Storage, StorageFactory, StorageTx, StoredRecord, TxMode } from './types.js';

/** A record's place in [collection, id, space] order (IndexedDB's order for these strings). */
type Address = Pick<StoredRecord, 'collection' | 'id' | 'space'>;

/** An index key and the address of the record it points at (the record's own strings, no key built). */
interface IndexEntry extends Address {
  readonly key: Key;
}

/**
 * sorted-btree is CommonJS: Node's ESM loader hands its module.exports as the
 * default export, bundlers hand the class. Either way, this is the class.
 */
type BTreeClass = typeof BTreeModule.default;
const BTree: BTreeClass = (BTreeModule as unknown as { default?: BTreeClass }).default ?? (BTreeModule as unknown as BTreeClass);

function compareAddresses(a: Address, b: Address): number {
  if (a.collection !== b.collection) return a.collection < b.collection ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return a.space === b.space ? 0 : a.space < b.space ? -1 : 1;
}

const indexEntry = (key: Key, r: Address): IndexEntry => ({ key, collection: r.collection, id: r.id, space: r.space });

/** A record garbage collection may forget (StoredRecord.dead), in [space, dead, collection, id] order. */
interface DeadEntry extends Address {
  readonly dead: HlcString;
}

const deadEntry = (r: StoredRecord & { dead: HlcString }): DeadEntry => ({ space: r.space, dead: r.dead, collection: r.collection, id: r.id });

function compareDead(a: DeadEntry, b: DeadEntry): number {
  if (a.space !== b.space) return a.space < b.space ? -1 : 1;
  if (a.dead !== b.dead) return a.dead < b.dead ? -1 : 1;
  return compareAddresses(a, b);
}

const hasDead = (r: StoredRecord | undefined): r is StoredRecord & { dead: HlcString } => r?.dead !== undefined;

/** Index order: key, then record address. */
function compareEntries(a: IndexEntry, b: IndexEntry): number {
  return compareKeys(a.key, b.key) || compareAddresses(a, b);
}

/**
 * Records by collection, space and id in nested maps: a lookup builds no key string
 * (every record written or received is looked up, and the strings were garbage).
 */
class AddressMap {
  readonly #collections = new Map<string, Map<string, Map<string, StoredRecord>>>();
  size = 0;

  get(collection: string, id: string, space: string): StoredRecord | undefined {
    return this.#collections.get(collection)?.get(space)?.get(id);
  }

  /** Sets `record` at its address; returns the record it replaced. */
  set(record: StoredRecord): StoredRecord | undefined {
    let spaces = this.#collections.get(record.collection);
    if (!spaces) this.#collections.set(record.collection, (spaces = new Map()));
    let ids = spaces.get(record.space);
    if (!ids) spaces.set(record.space, (ids = new Map()));
    const old = ids.get(record.id);
    ids.set(record.id, record);
    if (old === undefined) this.size++;
    return old;
  }

  /** Removes the record at an address; returns it. */
  delete(collection: string, id: string, space: string): StoredRecord | undefined {
    const ids = this.#collections.get(collection)?.get(space);
    const old = ids?.get(id);
    if (old === undefined) return undefined;
    ids?.delete(id);
    this.size--;
    return old;
  }

  /** Every record, or every record of one collection. */
  forEach(fn: (record: StoredRecord) => void, collection?: string): void {
    if (collection !== undefined) this.#collections.get(collection)?.forEach((ids) => ids.forEach(fn));
    else this.#collections.forEach((spaces) => spaces.forEach((ids) => ids.forEach(fn)));
  }
}

class MemoryDatabase {
  readonly meta = new Map<string, unknown>();
  readonly records = new AddressMap();
  /** Index entries sorted by key, then record key (a B+ tree: a commit of k keys costs k log n, not n). */
  readonly index = new BTree<IndexEntry, undefined>(undefined, compareEntries);
  /**
   * Every record in [collection, id, space] order, the record itself as the key (a rewrite
   * replaces it): a scan reads a collection in order, without a sort.
   */
  readonly sorted = new BTree<Address, undefined>(undefined, compareAddresses);
  /** Records garbage collection may forget, by space and `dead` (StorageTx.collectible). */
  readonly dead = new BTree<DeadEntry, undefined>(undefined, compareDead);
  /** Unacknowledged changes by (space, seq), in that order: acks and reads take the lowest seqs of a space without a sort. */
  readonly outbox = new BTree<OutboxKey, Change>(undefined, compareOutboxKeys);
  /** How many changes each space has in the outbox: counted after every commit, without a scan. */
  readonly outboxCount = new Map<string, number>();
  /** Records with a value, per collection: count() of a whole collection without a scan. */
  readonly live = new Map<string, number>();
  /** The same per collection and space (key: liveKey). */
  readonly liveIn = new Map<string, number>();
  /** Serializes read-write transactions. */
  queue: Promise<unknown> = Promise.resolve();
}

type OutboxKey = readonly [space: string, seq: number];
const outboxKey = (space: string, seq: number): string => JSON.stringify([space, seq]);
const compareOutboxKeys = (a: OutboxKey, b: OutboxKey): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]);

/** A structured clone, as IndexedDB stores and reads values (a string or number is its own copy: most meta values). */
function clone<T>(value: T): T {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

/** Frozen all the way down (Maps and typed arrays cannot be frozen: never). */
function isDeepFrozen(value: object): boolean {
  if (!Object.isFrozen(value) || value instanceof Map || ArrayBuffer.isView(value)) return false;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'object' && v !== null && !isDeepFrozen(v)) return false;
  }
  return true;
}

/**
 * Records are copied once when written (like IndexedDB's structured clone) and
 * frozen, so reads can hand them out without copying and nobody can change
 * what is stored by mutating a row. One pass copies and freezes; the parts of a
 * record this function already sealed (the unchanged fields of a record state
 * read from this storage) are shared instead of copied again.
 */
function frozenCopy<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (isDeepFrozen(value)) return value;
  let out: object;
  if (ArrayBuffer.isView(value)) {
    // Typed arrays cannot be frozen: a copy nobody else holds (as before).
    return (value instanceof Uint8Array ? value.slice() : structuredClone(value)) as T;
  } else if (value instanceof Map) {
    const map = new Map<unknown, unknown>();
    for (const [k, v] of value) map.set(k, frozenCopy(v));
    out = map;
  } else if (Array.isArray(value)) {
    out = Object.freeze(value.map(frozenCopy));
  } else if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) {
    const obj: Record<string, unknown> = {};
    // setOwn: "__proto__" is a field name like any other (defined, not assigned).
    for (const key of Object.keys(value)) setOwn(obj, key, frozenCopy((value as Record<string, unknown>)[key]) as Json);
    out = Object.freeze(obj);
  } else {
    return deepFreeze(structuredClone(value));
  }
  return out as T;
}

/** Freezes in place, all the way down (Maps and typed arrays stay as they are; their contents are frozen). */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v);
    return value;
  }
  if (ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) deepFreeze(value[i]);
  } else {
    // for-in, not Object.keys: no array per object frozen (records are frozen by the thousand).
    for (const key in value) if (Object.hasOwn(value, key)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return Object.freeze(value);
}

function sameKeys(a: readonly Key[], b: readonly Key[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (compareKeys(a[i] as Key, b[i] as Key) !== 0) return false;
  return true;
}

/** The key of MemoryDatabase.liveIn. */
const liveKey = (collection: string, space: string): string => `${collection}\u0000${space}`;

/** Adds `by` to the counts of records with a value of `record`'s collection, and of it in its space. */
function countLive(db: MemoryDatabase, record: StoredRecord, by: number): void {
  db.live.set(record.collection, (db.live.get(record.collection) ?? 0) + by);
  const key = liveKey(record.collection, record.space);
  db.liveIn.set(key, (db.liveIn.get(key) ?? 0) + by);
}

/** How replacing `old` with `record` changes its collection's count of records with a value. */
function liveDelta(old: StoredRecord | undefined, record: StoredRecord): number {
  return (record.value !== undefined ? 1 : 0) - (old !== undefined && old.value !== undefined ? 1 : 0);
}

function window<T>(items: T[], options: ScanOptions): T[] {
  if (options.direction === 'desc') items.reverse();
  const offset = options.offset ?? 0;
  return items.slice(offset, options.limit === undefined ? undefined : offset + options.limit);
}

class MemoryTx implements StorageTx {
  readonly #db: MemoryDatabase;
  readonly #writable: boolean;
  readonly meta = new Map<string, unknown>();
  readonly records = new AddressMap();
  readonly outboxPut = new Map<string, Change>();
  /** Keys removed by this transaction (acknowledged), with their space and seq. */
  readonly outboxDel = new Map<string, OutboxKey>();
  /** Deleted records this transaction forgets at commit (forgetRecords). */
  readonly forgotten: RecordAddress[] = [];
  aborted = false;

  constructor(db: MemoryDatabase, writable: boolean) {
    this.#db = db;
    this.#writable = writable;
  }

  #checkWritable(): void {
    if (!this.#writable) throw new Error('write in a read-only transaction');
    if (this.aborted) throw new Error('transaction was aborted');
  }

  async getMeta<T>(key: string): Promise<T | undefined> {
    const value = this.meta.has(key) ? this.meta.get(key) : this.#db.meta.get(key);
    return value === undefined ? undefined : clone(value as T);
  }

  async setMeta(key: string, value: unknown): Promise<void> {
    this.#checkWritable();
    this.meta.set(key, clone(value));
  }

  async metaKeys(prefix: string): Promise<string[]> {
    const keys = new Set([...this.#db.meta.keys(), ...this.meta.keys()]);
    return [...keys].filter((key) => key.startsWith(prefix) && (this.meta.has(key) ? this.meta.get(key) : this.#db.meta.get(key)) !== undefined).sort();
  }

  #record(collection: string, id: string, space: string): StoredRecord | undefined {
    return this.records.get(collection, id, space) ?? this.#db.records.get(collection, id, space);
  }

  async getRecord(collection: string, id: string, space: SpaceId): Promise<StoredRecord | undefined> {
    return this.#record(collection, id, space);
  }

  async getRecords(addresses: readonly RecordAddress[]): Promise<Array<StoredRecord | undefined>> {
    return addresses.map((a) => this.#record(a.collection, a.id, a.space));
  }

  async putRecord(record: StoredRecord, options?: { readonly handOver?: boolean }): Promise<void> {
    this.#checkWritable();
    this.#put(record, options);
  }

  async forgetRecords(addresses: readonly RecordAddress[]): Promise<void> {
    this.#checkWritable();
    this.forgotten.push(...addresses);
  }

  async putRecords(records: readonly StoredRecord[], options?: { readonly handOver?: boolean }): Promise<void> {
    this.#checkWritable();
    for (const record of records) this.#put(record, options);
  }

  #put(record: StoredRecord, options?: { readonly handOver?: boolean }): void {
    const part = options?.handOver ? deepFreeze : frozenCopy;
    // Every stored record gets a top-level object of one shape: scans read them in a hot loop, and
    // records frozen as they came (spread objects of several shapes) made a 10,000-row scan 3× slower.
    const kept: StoredRecord = {
      space: record.space,
      collection: record.collection,
      id: record.id,
      state: part(record.state),
      value: part(record.value),
      ix: part(record.ix),
      dead: record.dead,
    };
    this.records.set(Object.freeze(kept));
  }

  /** Committed records overlaid with this transaction's writes (of one collection, or all), in no order. */
  #allRecords(collection?: string): StoredRecord[] {
    const out: StoredRecord[] = [];
    this.#db.records.forEach((record) => {
      if (this.records.get(record.collection, record.id, record.space) === undefined) out.push(record);
    }, collection);
    this.records.forEach((record) => out.push(record), collection);
    return out;
  }

  async scanRecords(collection: string, options: ScanOptions & { space?: SpaceId } = {}): Promise<StoredRecord[]> {
    if (this.records.size === 0) {
      const rows: StoredRecord[] = [];
      // Space ids are never empty: this sorts before every record of the collection.
      for (const record of this.#db.sorted.keys({ collection, id: '', space: '' as SpaceId })) {
        if (record.collection !== collection) break;
        if (options.space === undefined || record.space === options.space) rows.push(record as StoredRecord);
      }
      return window(rows, options);
    }
    // Inside a write transaction with pending writes: merge the overlay and sort (rare path).
    const out = this.#allRecords(collection).filter((record) => options.space === undefined || record.space === options.space);
    return window(out.sort(compareAddresses), options);
  }

  async collectible(space: SpaceId, horizon: HlcString): Promise<StoredRecord[]> {
    if (this.records.size === 0 && this.forgotten.length === 0) {
      const out: StoredRecord[] = [];
      for (const e of this.#db.dead.keys({ space, dead: '' as HlcString, collection: '', id: '' })) {
        if (e.space !== space || e.dead > horizon) break;
        const record = this.#db.records.get(e.collection, e.id, e.space);
        if (record) out.push(record);
      }
      return out;
    }
    // Inside a write transaction with pending writes (rare path).
    const gone = new Set(this.forgotten.map((a) => JSON.stringify([a.collection, a.id, a.space])));
    return this.#allRecords().filter((r) => r.space === space && r.dead !== undefined && r.dead <= horizon && !gone.has(JSON.stringify([r.collection, r.id, r.space])));
  }

  #indexEntries(range: KeyRange): IndexEntry[] {
    if (this.records.size === 0) {
      const out: IndexEntry[] = [];
      // From the first entry at or after the lower bound (collection names are never empty: this address sorts first).
      const from = range.lower === undefined ? undefined : { key: range.lower, collection: '', id: '', space: '' as SpaceId };
      for (const [e] of this.#db.index.entries(from)) {
        if (!inRange(e.key, range)) {
          if (range.upper !== undefined && compareKeys(e.key, range.upper) > 0) break;
          continue;
        }
        out.push(e);
      }
      return out;
    }
    // Inside a write transaction with pending writes: rebuild from the overlay (rare path).
    const out: IndexEntry[] = [];
    for (const record of this.#allRecords()) for (const ix of record.ix) if (inRange(ix, range)) out.push(indexEntry(ix, record));
    return out.sort(compareEntries);
  }

  async scanIndex(range: KeyRange, options: ScanOptions = {}): Promise<StoredRecord[]> {
    const entries = window(this.#indexEntries(range), options);
    return entries.map((e) => this.#record(e.collection, e.id, e.space) as StoredRecord);
  }

  async countIndex(range: KeyRange): Promise<number> {
    return this.#indexEntries(range).length;
  }

  async countLive(collection: string, space?: SpaceId): Promise<number> {
    let n = (space === undefined ? this.#db.live.get(collection) : this.#db.liveIn.get(liveKey(collection, space))) ?? 0;
    this.records.forEach((record) => {
      if (space === undefined || record.space === space) n += liveDelta(this.#db.records.get(record.collection, record.id, record.space), record);
    }, collection);
    return n;
  }

  async countRecords(collection: string): Promise<number> {
    return this.#allRecords(collection).length;
  }

  async addOutbox(changes: readonly Change[]): Promise<void> {
    this.#checkWritable();
    // The IndexedDB adapter keeps one entry per call; here one row per change behaves the same.
    if (!outboxEntry(changes)) return;
    const keys = changes.map((c) => outboxKey(c.space, c.seq));
    changes.forEach((c, i) => {
      const key = keys[i] as string;
      if (this.outboxPut.has(key) || (this.#db.outbox.has([c.space, c.seq]) && !this.outboxDel.has(key))) throw new Error(`addOutbox: ${key} is already in the outbox`);
    });
    // Copied and frozen like records (cheaper than a structured clone; nobody holds them to mutate them).
    const copies = changes.map(frozenCopy);
    keys.forEach((key, i) => {
      this.outboxDel.delete(key);
      this.outboxPut.set(key, copies[i] as Change);
    });
  }

  /**
   * Unacknowledged changes of `space` (all spaces when omitted), committed and
   * this transaction's, in (space, seq) order: at most `limit`, and with `upTo`,
   * only seqs up to it. Reads the committed ones in key order and stops early.
   */
  #outbox(space: SpaceId | undefined, limit = Number.POSITIVE_INFINITY, upTo = Number.POSITIVE_INFINITY): Change[] {
    const committed: Change[] = [];
    const from: OutboxKey = space === undefined ? ['', -Infinity] : [space, -Infinity];
    for (const [key, change] of this.#db.outbox.entries(from)) {
      if ((space !== undefined && key[0] !== space) || committed.length >= limit) break;
      if (key[1] > upTo) {
        if (space !== undefined) break;
        continue;
      }
      const k = outboxKey(key[0], key[1]);
      if (!this.outboxDel.has(k) && !this.outboxPut.has(k)) committed.push(change);
    }
    const mine = [...this.outboxPut.values()].filter((c) => (space === undefined || c.space === space) && c.seq <= upTo);
    const all = mine.length === 0 ? committed : [...committed, ...mine].sort((a, b) => compareOutboxKeys([a.space, a.seq], [b.space, b.seq]));
    return all.slice(0, limit);
  }

  async readOutbox(space: SpaceId | undefined, limit: number): Promise<Change[]> {
    // Frozen when stored (addOutbox): handed out as they are.
    return this.#outbox(space, limit);
  }

  async replaceOutbox(changes: readonly Change[]): Promise<void> {
    this.#checkWritable();
    const keys = changes.map((c) => outboxKey(c.space, c.seq));
    changes.forEach((c, i) => {
      const key = keys[i] as string;
      if (!this.outboxPut.has(key) && !(this.#db.outbox.has([c.space, c.seq]) && !this.outboxDel.has(key))) throw new Error(`replaceOutbox: ${key} is not in the outbox`);
    });
    const copies = changes.map(frozenCopy);
    keys.forEach((key, i) => this.outboxPut.set(key, copies[i] as Change));
  }

  async ackOutbox(space: SpaceId, upTo: number): Promise<number> {
    this.#checkWritable();
    const acked = this.#outbox(space, Number.POSITIVE_INFINITY, upTo);
    for (const change of acked) {
      const key = outboxKey(space, change.seq);
      this.outboxPut.delete(key);
      this.outboxDel.set(key, [space, change.seq]);
    }
    return acked.length;
  }

  async countOutbox(space?: SpaceId): Promise<number> {
    // Without a scan: the sync engine asks after every commit. The committed count, and what this
    // transaction added (new keys) and removed (committed keys).
    let n = 0;
    if (space === undefined) for (const count of this.#db.outboxCount.values()) n += count;
    else n = this.#db.outboxCount.get(space) ?? 0;
    for (const c of this.outboxPut.values()) if ((space === undefined || c.space === space) && !this.#db.outbox.has([c.space, c.seq])) n++;
    for (const key of this.outboxDel.values()) if ((space === undefined || key[0] === space) && this.#db.outbox.has(key)) n--;
    return n;
  }

  abort(): void {
    this.aborted = true;
  }

  commit(): void {
    const db = this.#db;
    // forEach, not for-of: no [key, value] array per entry of a large commit.
    this.meta.forEach((v, k) => db.meta.set(k, v));
    this.records.forEach((record) => {
      const old = db.records.set(record);
      const delta = liveDelta(old, record);
      if (delta !== 0) countLive(db, record, delta);
      db.sorted.set(record, undefined);
      if (hasDead(old) && old.dead !== record.dead) db.dead.delete(deadEntry(old));
      if (hasDead(record)) db.dead.set(deadEntry(record), undefined);
      if (old) {
        // Most rewrites leave the index keys as they were (an edit of fields no index covers).
        if (sameKeys(old.ix, record.ix)) return;
        for (const ix of old.ix) db.index.delete(indexEntry(ix, old));
      }
      for (const ix of record.ix) db.index.set(indexEntry(ix, record), undefined);
    });
    const count = (space: string, by: number): void => {
      const n = (db.outboxCount.get(space) ?? 0) + by;
      if (n === 0) db.outboxCount.delete(space);
      else db.outboxCount.set(space, n);
    };
    for (const a of this.forgotten) {
      const old = db.records.delete(a.collection, a.id, a.space);
      if (old === undefined) continue;
      db.sorted.delete(old);
      if (hasDead(old)) db.dead.delete(deadEntry(old));
      for (const ix of old.ix) db.index.delete(indexEntry(ix, old));
      if (old.value !== undefined) countLive(db, old, -1);
    }
    this.outboxDel.forEach((key) => {
      if (db.outbox.delete(key)) count(key[0], -1);
    });
    this.outboxPut.forEach((change) => {
      if (db.outbox.set([change.space, change.seq], change, true)) count(change.space, 1);
    });
  }
}

export class TransactionAbortedError extends Error {
  override name = 'AbortError';
}

class MemoryStorage implements Storage {
  readonly kind = 'memory';
  #closed = false;
  constructor(readonly db: MemoryDatabase) {}

  async transaction<T>(mode: TxMode, fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    if (this.#closed) throw new ReplicaError('closed', 'storage is closed');
    if (mode === 'readonly') return fn(new MemoryTx(this.db, false));
    const run = async (): Promise<T> => {
      const tx = new MemoryTx(this.db, true);
      const result = await fn(tx);
      if (tx.aborted) throw new TransactionAbortedError('transaction aborted');
      tx.commit();
      return result;
    };
    const next = this.db.queue.then(run, run);
    this.db.queue = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/**
 * A factory of in-memory databases. Replicas opened from the same factory with
 * the same name share a database (like two tabs of one origin).
 */
export function memoryStorage(): StorageFactory {
  const databases = new Map<string, MemoryDatabase>();
  return async (name) => {
    let db = databases.get(name);
    if (!db) databases.set(name, (db = new MemoryDatabase()));
    return new MemoryStorage(db);
  };
}

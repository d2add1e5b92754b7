/**
 * The storage interface a replica runs on. Two adapters implement it: IndexedDB
 * (idb) and memory; test/client/storage-conformance.ts checks both against the
 * same contract.
 *
 * Guarantees every adapter must give:
 *  - transaction(): atomic and isolated. Read-write transactions are serializable
 *    across every connection to the same database (other tabs included): nothing
 *    of a failed or aborted transaction is visible, ever.
 *  - Inside a transaction, only await the transaction's own methods (IndexedDB
 *    commits a transaction as soon as it has no pending request).
 *  - Ranges are IndexedDB key ranges (storage/keys.ts), scans are in key order.
 *  - close() is idempotent.
 *  - The outbox holds one entry per addOutbox call (a transaction's changes of
 *    one space), not one per change: per-request cost dominates IndexedDB writes.
 */
import type { Change, Fields, HlcString, RecordState, SpaceId } from '@syncline/core/internal';
import type { Key, KeyRange } from './keys.js';

/**
 * A record as a storage keeps it, keyed [collection, id, space]. A delete is
 * kept as a record without a value. Adapters store `state` as given (Maps and
 * Uint8Arrays included) and read only `value` (present or not) and `ix`.
 */
export interface StoredRecord {
  /** The space it lives in. */
  readonly space: SpaceId;
  /** Its collection's name. */
  readonly collection: string;
  /** Its id, unique within its collection and space. */
  readonly id: string;
  /** Its merge state: what every change applied to it left (the value and `ix` are derived from it). */
  readonly state: RecordState;
  /** Materialized: present when the record exists. */
  readonly value: Fields | undefined;
  /** Index keys: [indexNumber, ...values, id, space]; empty when deleted. */
  readonly ix: readonly Key[];
  /**
   * A deleted record that garbage collection may forget (`collectibleAt` of its
   * state, core): the horizon at or past which it goes. Absent otherwise.
   */
  readonly dead?: HlcString | undefined;
}

/** Where a record is: its key [collection, id, space]. */
export interface RecordAddress {
  /** The collection's name. */
  readonly collection: string;
  /** The record's id. */
  readonly id: string;
  /** The record's space. */
  readonly space: SpaceId;
}

/** Key order of a scan or query: 'asc' (ascending) or 'desc' (descending). */
export type Direction = 'asc' | 'desc';

/** Order and window of a scan. The window is taken in scan order: `offset` rows skipped, then up to `limit`. */
export interface ScanOptions {
  /** 'asc' (default) or 'desc'. */
  readonly direction?: Direction;
  /** Most records to return. Default: all. */
  readonly limit?: number;
  /** Records to skip first. Default 0. */
  readonly offset?: number;
}

/**
 * One transaction, handed to the callback of `Storage.transaction()`: use it
 * only inside that callback, awaiting nothing but its own methods. Every read
 * sees the transaction's own writes. In a 'readonly' transaction, writes reject.
 */
export interface StorageTx {
  /** The metadata value stored under `key`, or undefined when there is none. A copy: changing it changes nothing stored. */
  getMeta<T>(key: string): Promise<T | undefined>;
  /**
   * Stores `value` under `key`, replacing what was there. Stored as a structured
   * clone (Maps and typed arrays included): later changes to `value` do not reach it.
   */
  setMeta(key: string, value: unknown): Promise<void>;
  /**
   * The metadata keys that start with `prefix` and hold a value, in key order.
   * Optional: a replica reads it once, to note what a database written by an
   * older version holds.
   */
  metaKeys?(prefix: string): Promise<string[]>;
  /**
   * The record at [collection, id, space], deleted ones (without a value)
   * included; undefined when there is none. It may be the adapter's own
   * (frozen) object: callers do not change it.
   */
  getRecord(collection: string, id: string, space: SpaceId): Promise<StoredRecord | undefined>;
  /**
   * The records at `addresses` (undefined where there is none), in the order asked.
   * Every existing record is read; an adapter may learn which do not exist with
   * fewer requests than one per address.
   */
  getRecords(addresses: readonly RecordAddress[]): Promise<Array<StoredRecord | undefined>>;
  /**
   * Stores a record. With `handOver`, the caller gives the record up: neither it nor
   * anyone else will change any part of it later, so an adapter that keeps objects
   * (memory) may freeze and keep them instead of copying. Adapters may ignore it.
   */
  putRecord(record: StoredRecord, options?: { readonly handOver?: boolean }): Promise<void>;
  /** Optional: many putRecord calls in one (an adapter without it gets one call per record). */
  putRecords?(records: readonly StoredRecord[], options?: { readonly handOver?: boolean }): Promise<void>;
  /**
   * Forgets records: afterwards they read as never written (garbage collection
   * at the stability horizon; a snapshot that replaces what the replica held).
   * Whether the same transaction still reads them afterwards is the adapter's
   * choice (memory: until commit; IndexedDB: no), and a transaction must not
   * both write and forget one record.
   */
  forgetRecords(addresses: readonly RecordAddress[]): Promise<void>;
  /**
   * Optional: the records of `space` whose `dead` is at or below `horizon`, any
   * order (what garbage collection at that horizon forgets). An adapter without
   * it is scanned.
   */
  collectible?(space: SpaceId, horizon: HlcString): Promise<StoredRecord[]>;
  /** Records of a collection in [collection, id, space] order, optionally within an id range. */
  scanRecords(collection: string, options?: ScanOptions & { space?: SpaceId }): Promise<StoredRecord[]>;
  /** Records whose index keys fall in `range`, in index-key order. */
  scanIndex(range: KeyRange, options?: ScanOptions): Promise<StoredRecord[]>;
  /** How many index keys fall in `range` (a record counts once per key of it in the range); an empty range counts 0. */
  countIndex(range: KeyRange): Promise<number>;
  /** How many records a collection holds, deleted ones (kept without a value) included. */
  countRecords(collection: string): Promise<number>;
  /**
   * Optional: the records of a collection (in `space`, when given) that have a
   * value (deletes are kept as records without one), this transaction's writes
   * included. An adapter without it is counted by a scan.
   */
  countLive?(collection: string, space?: SpaceId): Promise<number>;
  /**
   * Appends local changes to the outbox as ONE entry, keyed [space, first seq].
   * The changes must be of one space with contiguous ascending seqs (rejects
   * otherwise), none of them already in the outbox; an empty list adds nothing.
   */
  addOutbox(changes: readonly Change[]): Promise<void>;
  /**
   * Up to `limit` of the oldest unacknowledged changes of a space, in seq order
   * (may end inside an entry); of every space, in [space, seq] order, when `space` is undefined.
   */
  readOutbox(space: SpaceId | undefined, limit: number): Promise<Change[]>;
  /**
   * Replaces changes in the outbox with these (same space and seq, another HLC:
   * re-stamping). Every one must be in the outbox (rejects otherwise); entries keep their bounds.
   */
  replaceOutbox(changes: readonly Change[]): Promise<void>;
  /**
   * Removes the changes of `space` with seq <= upTo; returns how many. An entry
   * acknowledged only in part is rewritten with its remaining changes.
   */
  ackOutbox(space: SpaceId, upTo: number): Promise<number>;
  /** Unacknowledged changes of a space (all spaces when omitted). Cheap: no change is read. */
  countOutbox(space?: SpaceId): Promise<number>;
  /** Makes the whole transaction fail; nothing it wrote is kept. */
  abort(): void;
}

/** 'readonly': reads only (a write rejects). 'readwrite': reads and writes, serializable with every other read-write transaction on the database. */
export type TxMode = 'readonly' | 'readwrite';

/** One open connection to a replica's database, as a StorageFactory opens it. */
export interface Storage {
  /** The adapter's name ('indexeddb', 'memory'), for diagnostics; the replica does not read it. */
  readonly kind: string;
  /**
   * Runs `fn` in one transaction and resolves with its result once the
   * transaction has committed. When `fn` rejects or calls `tx.abort()`, nothing
   * it wrote is kept and the call rejects (with `fn`'s error when it threw;
   * the IndexedDB adapter turns a quota error into a ReplicaError `storage_quota`).
   * Rejects after close() with a ReplicaError `closed` (every adapter; the conformance suite checks it).
   */
  transaction<T>(mode: TxMode, fn: (tx: StorageTx) => Promise<T>): Promise<T>;
  /** Called when another connection needs this one to close (IndexedDB versionchange). */
  onVersionChange?: () => void;
  /**
   * Closes this connection: later transactions reject; those already begun
   * finish. Idempotent. The database and its data stay for the next connection.
   */
  close(): Promise<void>;
}

/** Opens a storage for a replica database name. */
export type StorageFactory = (name: string) => Promise<Storage>;

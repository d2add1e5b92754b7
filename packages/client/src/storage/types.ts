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
import type { Change, Fields, RecordState, SpaceId } from '@syncline/core/internal';
import type { Key, KeyRange } from './keys.js';

export interface StoredRecord {
  readonly space: SpaceId;
  readonly collection: string;
  readonly id: string;
  readonly state: RecordState;
  /** Materialized: present when the record exists. */
  readonly value: Fields | undefined;
  /** Index keys: [indexNumber, ...values, id, space]; empty when deleted. */
  readonly ix: readonly Key[];
}

export interface RecordAddress {
  readonly collection: string;
  readonly id: string;
  readonly space: SpaceId;
}

export type Direction = 'asc' | 'desc';

export interface ScanOptions {
  readonly direction?: Direction;
  readonly limit?: number;
  readonly offset?: number;
}

export interface StorageTx {
  getMeta<T>(key: string): Promise<T | undefined>;
  setMeta(key: string, value: unknown): Promise<void>;
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
  /** Records of a collection in [collection, id, space] order, optionally within an id range. */
  scanRecords(collection: string, options?: ScanOptions & { space?: SpaceId }): Promise<StoredRecord[]>;
  /** Records whose index keys fall in `range`, in index-key order. */
  scanIndex(range: KeyRange, options?: ScanOptions): Promise<StoredRecord[]>;
  countIndex(range: KeyRange): Promise<number>;
  countRecords(collection: string): Promise<number>;
  /**
   * Optional: the records of a collection that have a value (deletes are kept as
   * records without one), this transaction's writes included. An adapter without it
   * is counted by a scan.
   */
  countLive?(collection: string): Promise<number>;
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

export type TxMode = 'readonly' | 'readwrite';

export interface Storage {
  readonly kind: string;
  transaction<T>(mode: TxMode, fn: (tx: StorageTx) => Promise<T>): Promise<T>;
  /** Called when another connection needs this one to close (IndexedDB versionchange). */
  onVersionChange?: () => void;
  close(): Promise<void>;
}

/** Opens a storage for a replica database name. */
export type StorageFactory = (name: string) => Promise<Storage>;

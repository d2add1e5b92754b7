/**
 * `@syncline/client/storage`: for authors of storage adapters. The `Storage`
 * interface a replica keeps its records, outbox and metadata in, with the
 * guarantees each method must give (types.ts), and the index key order.
 * Apps do not need this entry: they pass `indexedDbStorage()` or
 * `memoryStorage()` from `@syncline/client`.
 *
 * @packageDocumentation
 * @module @syncline/client/storage
 */
export type { Direction, RecordAddress, ScanOptions, Storage, StorageFactory, StorageTx, StoredRecord, TxMode } from './types.js';
export { compareKeys, type Key, type KeyRange } from './keys.js';
export { memoryStorage } from './memory-storage.js';
export { indexedDbStorage, type IndexedDbOptions } from './indexeddb-storage.js';

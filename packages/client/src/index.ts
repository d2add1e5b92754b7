/**
 * @syncline/client: the local replica. Every read and write is local and instant,
 * online or not; the sync engine carries changes to and from the sync server.
 */
export { createReplica, Replica, type ReplicaOptions, type WriteOptions, type Batch, type CommitEvent } from './replica.js';
export { defineSchema, type Schema, type CollectionSchema, type CollectionDef, type IndexDef } from './schema.js';
export type { Query, Range, Row, Cursor, KeyPart } from './query.js';
export type { QueryCallback } from './live-query.js';
export { ReplicaError, type ReplicaErrorCode, type ValidationIssue } from './errors.js';
export { memoryStorage } from './storage/memory-storage.js';
export { indexedDbStorage, type IndexedDbOptions } from './storage/indexeddb-storage.js';
export type { Storage, StorageFactory, StorageTx, StoredRecord, RecordAddress, TxMode, ScanOptions, Direction } from './storage/types.js';
export { compareKeys, type Key, type KeyRange } from './storage/keys.js';
export { localLocks, type LocksLike, type ChannelLike, type TabsOptions } from './tabs.js';
export { startSync, SyncEngine, type SyncOptions, type SyncStatus, type SyncState, type SyncErrorInfo, type SocketLike, type SocketFactory } from './sync/sync-engine.js';

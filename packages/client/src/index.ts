/**
 * `@syncline/client`: the local replica. Every read and write is local and instant,
 * online or not; the sync engine carries changes to and from the sync server.
 *
 * Storage adapter authors: the `Storage` interface is on the `@syncline/client/storage` entry.
 *
 * @packageDocumentation
 * @module @syncline/client
 */
export { createReplica, startSync, Replica, type ReplicaOptions, type ReplicaStats, type WriteOptions, type Batch, type CommitEvent } from './replica.js';
export { defineSchema, type Schema, type CollectionSchema, type CollectionDef, type IndexDef } from './schema.js';
export { typed, type Typed } from './value-type.js';
export {
  type CollectionName,
  type IndexName,
  type CrdtFieldName,
  type MergeCollectionName,
  type WriteValue,
  type PatchValue,
  type ReadValue,
  type Sibling,
} from './typed.js';
export type { Query, Range, Row, Cursor, KeyPart } from './query.js';
export type { QueryCallback } from './live-query.js';
export { ReplicaError, SyncError, type ReplicaErrorCode, type SyncErrorCode, type ValidationIssue } from './errors.js';
export type { UndoHistory, UndoOptions } from './undo.js';
export type { Presence, PresenceOptions, PresencePeer } from './presence.js';
export { MAX_CHANGE_BYTES, MAX_PRESENCE_BYTES, MAX_RECORD_BYTES, MIN_FRAME_BYTES } from '@syncline/core';
export type { Fields, Json, ReplicaId, SpaceId, HlcString, Version, Resolver, CrdtType } from '@syncline/core';
export { memoryStorage } from './storage/memory-storage.js';
export { indexedDbStorage, type IndexedDbOptions } from './storage/indexeddb-storage.js';
export type { Direction, Storage, StorageFactory } from './storage/types.js';
export type { Key } from './storage/keys.js';
export { localLocks, type LocksLike, type ChannelLike, type TabsOptions } from './tabs.js';
export type { RejoinInfo, SyncEngine, SyncOptions, SyncStatus, SyncState, SyncErrorInfo } from './sync/sync-engine.js';
export type { BackoffOptions } from './sync/backoff.js';
export type { Connect, Connection, ConnectionHandlers, SocketLike, SocketFactory } from './sync/connection.js';

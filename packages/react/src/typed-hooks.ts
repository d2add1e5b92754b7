/**
 * The hooks typed by an app's schema. React context cannot carry a type, so the
 * app names its schema once: `export const { useQuery, useRecord } = createHooks<typeof schema>()`.
 * The functions are the same hooks; only their types differ.
 */
import type { CollectionName, MergeCollectionName, Query, ReadValue, Replica, Schema, Sibling, SyncStatus, WriteOptions, WriteValue } from '@syncline/client';
import { useReplica } from './context.js';
import { useConflicts } from './use-conflicts.js';
import { useQuery, type QueryResult } from './use-query.js';
import { useRecord, type RecordResult } from './use-record.js';
import { useSyncStatus } from './use-sync-status.js';

/** The Syncline hooks, typed by schema `S` (from createHooks). */
export interface TypedHooks<S extends Schema> {
  /** The replica of the nearest SynclineProvider, typed by the schema. */
  useReplica(): Replica<S>;
  /** A live query: a misspelt collection or index is a compile error; rows carry the collection's value type. */
  useQuery<C extends CollectionName<S>>(query: Query<S, C>): QueryResult<ReadValue<S, C>>;
  /** One record, live, with the collection's value type. */
  useRecord<C extends CollectionName<S>>(collection: C, id: string, options?: WriteOptions): RecordResult<ReadValue<S, C>>;
  /** The siblings of a record of a merge collection (only merge collections are accepted). */
  useConflicts<C extends MergeCollectionName<S>>(collection: C, id: string, options?: WriteOptions): readonly Sibling<WriteValue<S, C>>[];
  /** The sync status, or undefined for a replica created without `sync`. */
  useSyncStatus(): SyncStatus | undefined;
}

/**
 * The hooks, typed by the schema `S` (`typeof schema`, a schema written with
 * `defineSchema` or `as const`). Call it once at module level; the provider's
 * replica must be one created with that schema.
 */
export function createHooks<S extends Schema>(): TypedHooks<S> {
  return { useReplica, useQuery, useRecord, useConflicts, useSyncStatus } as unknown as TypedHooks<S>;
}

/**
 * The server's storage interface. SQLite (embedded default) implements it, and
 * so does PostgreSQL, which several server instances can share: nothing in the
 * sync logic assumes one process.
 *
 * Guarantees:
 *  - append() returns only after every change it reports stored is durable
 *    (committed and synced to disk). Each request either stores all of its new
 *    changes or none; requests are independent of each other.
 *  - A change already held (same space, replica, seq) is not stored twice.
 *  - Positions of a space are 1, 2, 3 … in commit order with no gaps, and a
 *    reader never sees position n+1 before position n.
 *  - Record states always include every change up to the space's head, so a
 *    snapshot is valid as of any head read before it.
 */
import type { Change, ReplicaId, SnapshotRecord, SpaceId } from '@syncline/core/internal';
import type { SpaceQuotas } from './quota.js';

export interface LoggedChange {
  readonly pos: number;
  readonly change: Change;
}

export interface AppendRequest {
  readonly space: SpaceId;
  readonly replica: ReplicaId;
  /** In seq order, contiguous; may start at or below what is already held. */
  readonly changes: readonly Change[];
}

export interface AppendResult {
  /** The changes newly stored, with their positions. */
  readonly stored: readonly LoggedChange[];
  /** The highest seq of this replica now held in this space. */
  readonly upTo: number;
}

export interface ServerStorage {
  /**
   * Stores the requests; per request, an AppendResult or the error that refused
   * it. With `quotas`, a request that would grow its space past one is refused
   * with a QuotaError (quota.ts) and stores nothing.
   */
  append(requests: readonly AppendRequest[], quotas?: SpaceQuotas): Promise<Array<AppendResult | Error>>;
  /** A space's usage: bytes of its records' stored states, and records that exist. */
  usage(space: SpaceId): Promise<{ readonly bytes: number; readonly records: number }>;
  /**
   * Log entries of a space after `after`, in position order: at most `limit`,
   * and with `maxBytes`, no more than fit in that many bytes of stored changes
   * (at least one): a page costs bounded memory whatever its changes' sizes.
   */
  readLog(space: SpaceId, after: number, limit: number, maxBytes?: number): Promise<LoggedChange[]>;
  /** Highest position of a space (0: empty). */
  head(space: SpaceId): Promise<number>;
  /** Entries at or below the horizon were compacted away (0: none). */
  horizon(space: SpaceId): Promise<number>;
  /**
   * Record states of a space in (collection, id) order, after the given key: at
   * most `limit`, and with `maxBytes`, no more than fit in that many bytes of
   * stored states (at least one).
   */
  snapshotPage(space: SpaceId, after: readonly [string, string] | undefined, limit: number, maxBytes?: number): Promise<SnapshotRecord[]>;
  countRecords(space: SpaceId): Promise<number>;
  /** Drops log entries so that at most `keepLast` remain; returns how many were removed. */
  compact(space: SpaceId, keepLast: number): Promise<number>;
  spaces(): Promise<SpaceId[]>;
  /**
   * Optional, for storage shared by several server instances (PostgreSQL): calls
   * back with (space, head) after commits that stored changes through another
   * storage object (another instance); reporting its own commits too is harmless.
   * It may skip intermediate heads, never the latest; after a lost connection it
   * reports every space's head. Returns unsubscribe.
   */
  watch?(listener: (space: SpaceId, head: number) => void): () => void;
  close(): Promise<void>;
}

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
 *  - Every log entry keeps the region it entered through (its origin: '' for
 *    this server's own clients, a peer's name for changes received over a
 *    region link) and its position in that region's log (its origin position:
 *    its own position for origin ''), set when it is first stored and never
 *    changed. The entries of one origin are stored in the order of their
 *    origin positions, so "every entry of origin O up to origin position p" is
 *    a prefix of this log too: that is what origin vectors (originVector,
 *    resumeAfter) rest on. Compaction remembers, per origin, the highest origin
 *    position it dropped.
 *  - A link position (how far this region has read a peer's log of a space)
 *    never moves back, and is durable once setLinkPosition() resolves.
 *  - Stability (DESIGN.md, "Stability and bounded growth"): each space has a
 *    refusal level, a timestamp that never moves back. A request holding a
 *    change not yet held and stamped at or below it is refused with
 *    SynclineError `below_horizon`, and one from a retired replica with
 *    `replica_retired`. Requests with an origin other than '' (a region
 *    link's) are not refused either way: their region accepted them, under
 *    its own refusal level. Each space also has a collection horizon, never
 *    above the refusal level and never moving back: without peers the two are
 *    equal, so every change stored after the horizon was raised is stamped
 *    after it; with peers the server lowers it to what every peer region
 *    refuses at (advanceHorizon's `peers`), which makes the same true of the
 *    changes their links bring. collect() forgets the records collectibleAt()
 *    puts at or below it, and mergeState() does not bring them back.
 */
import type { Change, HlcString, RecordState, ReplicaId, SnapshotRecord, SpaceId } from '@syncline/core/internal';
import type { SpaceQuotas } from './quota.js';

/** A change in a space's log, at its position. */
export interface LoggedChange {
  /** Its log position in the space: 1, 2, 3 … in commit order. */
  readonly pos: number;
  /** The change as pushed. */
  readonly change: Change;
  /** The region the change entered through ('' : this region's own clients). */
  readonly origin: string;
  /** Its position in the log of the region it entered through (`pos` for origin ''). */
  readonly originPos: number;
}

/** Which log entries readLog() returns. */
export interface ReadLogFilter {
  /**
   * Only entries of this origin ('' : entries from this region's own clients);
   * `after` is then an origin position (the same as a position for origin '').
   */
  readonly origin?: string;
}

/** What a server's storage holds, over every space (ServerStorage.stats). */
export interface StorageStats {
  /** Spaces that hold anything. */
  readonly spaces: number;
  /** Records that exist (not deleted). */
  readonly records: number;
  /** Deleted records whose state is kept (a tombstone each). */
  readonly tombstones: number;
  /** Bytes of stored record states, tombstones included. */
  readonly recordBytes: number;
  /** Log entries kept (compaction removes them). */
  readonly logEntries: number;
}

/** A space's stability horizon (ServerStorage.stability). */
export interface Stability {
  /**
   * The collection horizon: every change stored after position `upTo` is
   * stamped after this, so collect() forgets what collectibleAt() puts at or
   * below it; undefined: no horizon yet.
   */
  readonly hlc: HlcString | undefined;
  /** The head when the horizon was last raised (0: never). */
  readonly upTo: number;
  /**
   * With peers, when it is later than `hlc`: the level at or below which this
   * region's own clients' changes are refused (`below_horizon`), and the head
   * when it was last raised. Without it, that level is `hlc` (at `upTo`).
   */
  readonly refused?: {
    /** The refusal level. */
    readonly hlc: HlcString;
    /** The head when it was last raised. */
    readonly upTo: number;
  };
}

/** One writer of a space (ServerStorage.writers). */
export interface WriterInfo {
  /** The replica's id. */
  readonly replica: ReplicaId;
  /** The highest seq of it the space holds, with every one before it (0: none). */
  readonly seq: number;
  /** When it was last seen (ms since the epoch: a hello, floor or push). */
  readonly seen: number;
  /** Retired (see retire()). */
  readonly retired: boolean;
  /** Its floor (noteWriter), if it told one. */
  readonly floor: HlcString | undefined;
  /** It said hello here (noteWriter): it holds this region's refusal level (one known only by a region link's changes does not). */
  readonly local: boolean;
}

/** A page of ServerStorage.retiredList. */
export interface RetiredPage {
  /** Retired replicas, in the order they were retired. */
  readonly replicas: ReplicaId[];
  /** How many replicas are retired in all. */
  readonly total: number;
}

/** How far ServerStorage.trimRetired has gone in a space: the next call starts from it. */
export interface TrimMark {
  /** The space's head when the call began: every record changed since has a later position. */
  readonly head: number;
  /** How many replicas were retired then (retirement is for good: a larger number means new ones). */
  readonly retired: number;
}

/** What one ServerStorage.trimRetired call did. */
export interface TrimResult extends TrimMark {
  /** Records rewritten without entries. */
  readonly records: number;
}

/** What the last part of a merged state covers (ServerStorage.mergeState). */
export interface MergeFinal {
  /** Per replica, the highest seq the state holds (with every seq before it). */
  readonly progress: ReadonlyMap<ReplicaId, number>;
  /** Per origin region, the origin position up to which the state holds every entry. */
  readonly floors: ReadonlyMap<string, number>;
}

/** One push to store: one replica's changes of one space. */
export interface AppendRequest {
  /** The space the changes belong to. */
  readonly space: SpaceId;
  /** The replica that wrote (and pushed) them. */
  readonly replica: ReplicaId;
  /** In seq order, contiguous; may start at or below what is already held. */
  readonly changes: readonly Change[];
  /**
   * The region the changes entered through: a peer's name for changes received
   * over a region link (any characters but NUL); '' or absent for this
   * server's own clients. Stored with each new log entry. A change already
   * held keeps the origin it was first stored with (dedupe by space, replica
   * and seq, whatever the origin).
   */
  readonly origin?: string;
  /**
   * With an origin: each change's position in that region's log (the same
   * length as `changes`, ascending). Required with an origin other than ''.
   */
  readonly originPositions?: readonly number[];
  /**
   * An idempotency key (the backend API's `Idempotency-Key`), scoped to the
   * space. When a request with the same key was stored in the space less than
   * IDEMPOTENCY_TTL_MS before `at`, nothing of this one is stored and the
   * result carries that request's `response` as `replayed`. Otherwise the key
   * is stored with `response` in the same transaction as the changes (and
   * keys of the space older than the TTL are dropped), so a retry after a
   * crash finds it exactly when the changes were stored.
   */
  readonly idempotency?: IdempotencyKey;
}

/** How long a stored idempotency key is kept (24 hours). */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

/** AppendRequest.idempotency. */
export interface IdempotencyKey {
  /** The key: any string of 1-255 characters. */
  readonly key: string;
  /** When the request was made (ms since the epoch). */
  readonly at: number;
  /** What to answer a retry with (opaque to storage). */
  readonly response: string;
}

/** What append() did with one request. */
export interface AppendResult {
  /** The changes newly stored, with their positions and origin ('' for a request without one). */
  readonly stored: readonly LoggedChange[];
  /** The highest seq of this replica now held in this space. */
  readonly upTo: number;
  /** The `response` stored with the request's idempotency key by an earlier request: nothing was stored. */
  readonly replayed?: string;
}

/** The server's storage (see the guarantees at the top of storage/types.ts): sqliteStorage, postgresStorage, or your own. */
export interface ServerStorage {
  /**
   * Stores the requests; per request, an AppendResult or the error that refused
   * it. With `quotas`, a request that would grow its space past one is refused
   * with a QuotaError (quota.ts) and stores nothing. A request that does not
   * continue what the replica has stored (a seq missing) is refused with a
   * SynclineError `sequence_gap`. Rejects when the storage itself fails
   * (closed, a database error that is not one request's).
   */
  append(requests: readonly AppendRequest[], quotas?: SpaceQuotas): Promise<Array<AppendResult | Error>>;
  /** A space's usage: bytes of its records' stored states, and records that exist. */
  usage(space: SpaceId): Promise<{
    /** Bytes of the space's record states as stored. */
    readonly bytes: number;
    /** Records of the space that exist (not deleted). */
    readonly records: number;
  }>;
  /**
   * Log entries of a space after `after`, in position order, each with its
   * origin: at most `limit`, and with `maxBytes`, no more than fit in that many
   * bytes of stored changes (at least one): a page costs bounded memory whatever
   * its changes' sizes.
   *
   * With `filter.origin`, only entries of that origin, still in position order
   * and with their own positions (the result may skip positions); `limit` and
   * `maxBytes` count the entries returned. Efficient when most entries have
   * another origin (indexed by space, origin and position).
   */
  readLog(space: SpaceId, after: number, limit: number, maxBytes?: number, filter?: ReadLogFilter): Promise<LoggedChange[]>;
  /** Highest position of a space (0: empty). */
  head(space: SpaceId): Promise<number>;
  /** The stored state of one record (a deleted one's too, until it is collected); undefined when there is none. */
  record(space: SpaceId, collection: string, id: string): Promise<RecordState | undefined>;
  /**
   * Clients at or below the horizon take a snapshot: entries up to it were
   * compacted away, or a peer state was merged there (mergeState; entries
   * below it may then remain). 0: none.
   */
  horizon(space: SpaceId): Promise<number>;
  /**
   * Record states of a space in (collection, id) order, after the given key: at
   * most `limit`, and with `maxBytes`, no more than fit in that many bytes of
   * stored states (at least one).
   */
  snapshotPage(space: SpaceId, after: readonly [string, string] | undefined, limit: number, maxBytes?: number): Promise<SnapshotRecord[]>;
  /** Records stored in a space, deleted ones included (what a snapshot sends). */
  countRecords(space: SpaceId): Promise<number>;
  /** What the whole store holds, over every space (the `syncline_stored_*` metrics). */
  stats(): Promise<StorageStats>;
  /** Drops log entries (of every origin) so that at most `keepLast` remain; returns how many were removed. */
  compact(space: SpaceId, keepLast: number): Promise<number>;
  /** Every space that holds changes, in id order. */
  spaces(): Promise<SpaceId[]>;
  /** How far this region has read peer `peer`'s log, per space (positions in the peer's log); spaces never read are absent. */
  linkPositions(peer: string): Promise<Map<SpaceId, number>>;
  /**
   * Records that this region has stored everything of peer `peer`'s log of
   * `space` up to `pos`. Never lowers a stored position (a lower pos is
   * ignored). Durable when it resolves.
   * @throws RangeError (rejects) when `pos` is not a non-negative safe integer.
   */
  setLinkPosition(peer: string, space: SpaceId, pos: number): Promise<void>;
  /** Every peer key that has a link position, in order (the peers of linkPositions). */
  linkPeers(): Promise<string[]>;
  /**
   * The highest seq held of each of these replicas in `space` (replicas with
   * none are absent); without `replicas`, of every replica that wrote to it.
   */
  replicaProgress(space: SpaceId, replicas?: readonly ReplicaId[]): Promise<Map<ReplicaId, number>>;
  /**
   * Merges another region's state of `space` into this one (a link catching up
   * below that region's compaction horizon): joins each record's state into
   * the stored one (states are joins, so a record merged twice, or merged and
   * then reached by its changes, is unchanged). With `final` (the last part of
   * that state), also holds what the state covers: each replica's progress is
   * raised to `final.progress` (so its changes in the state are not stored
   * again, and its next ones follow without a gap), each origin's compaction
   * floor to `final.floors` (a client that resumes by origin positions below
   * them takes a snapshot), and the head moves one position, which stands for
   * the merge and becomes the horizon: every client at an earlier position
   * takes a snapshot, which includes the merged records. The log entries are
   * kept (the horizon then has entries below it): links read this region's
   * own entries by the floor of origin '', which a merge does not move, so a
   * merge never sends this region's followers a state of their own. Usage
   * counts are updated; quotas do not apply. Resolves to the head.
   */
  mergeState(space: SpaceId, records: readonly SnapshotRecord[], final?: MergeFinal): Promise<number>;
  /**
   * The origin vector of the log up to position `upTo`: per origin ('' for this
   * region's own), the highest origin position of an entry at or below `upTo`,
   * compacted entries included. Origins with no such entry are absent.
   */
  originVector(space: SpaceId, upTo: number): Promise<Map<string, number>>;
  /**
   * Where a reader that holds `held` (per origin, every entry up to that origin
   * position) resumes: the highest position P, at most the head, such that it
   * holds every entry up to P (its next entry to read is P + 1); undefined when
   * an entry it lacks was compacted away (it needs a snapshot).
   */
  resumeAfter(space: SpaceId, held: ReadonlyMap<string, number>): Promise<number | undefined>;
  /**
   * Optional, for storage shared by several server instances (PostgreSQL): calls
   * back with (space, head) after commits that stored changes through another
   * storage object (another instance); reporting its own commits too is harmless.
   * It may skip intermediate heads, never the latest; after a lost connection it
   * reports every space's head. Returns unsubscribe.
   */
  watch?(listener: (space: SpaceId, head: number) => void): () => void;
  /**
   * Notes that `replica` may write to `space`: that it was seen at `now` (ms),
   * and with `floor`, that every change of it the storage does not hold yet is
   * stamped after `floor` (a floor never moves back). A writer holds the
   * horizon back at the later of its floor and the stamp of the last change
   * stored from it, until it is retired.
   */
  noteWriter(space: SpaceId, replica: ReplicaId, floor: HlcString | undefined, now: number): Promise<void>;
  /**
   * Floors that writers told another region (link protocol 5, `floors`): of
   * each one that is local here and not retired, raises the floor to the one
   * given (never lowers it) and notes it seen at `now`. A writer not local here
   * is left alone (no row is made).
   */
  raiseFloors(space: SpaceId, floors: readonly { readonly replica: ReplicaId; readonly hlc: HlcString }[], now: number): Promise<void>;
  /** The stability horizon of a space (see the guarantees at the top). */
  stability(space: SpaceId): Promise<Stability>;
  /**
   * Raises the refusal level of `space` to the earliest point every local
   * writer that is not retired holds it back at (a writer is local once
   * noteWriter named it: one known only by a region link's changes is bounded
   * by its own region), but never past `cap` (the server's clock) and never
   * back. A writer known only by an old database (no stamp, no floor) holds it
   * where it is. Then raises the collection horizon: to the refusal level
   * without `peers`; with peers, to the lower of it and `peers` (the lowest
   * level every peer region refuses at, as this region has read their logs),
   * and not at all when `peers` is false (some peer's level is not known).
   * Both never move back. Resolves to the horizon then.
   */
  advanceHorizon(space: SpaceId, cap: HlcString, peers?: HlcString | false): Promise<Stability>;
  /** Forgets the records of `space` that collectibleAt() puts at or below its horizon; resolves to how many. */
  collect(space: SpaceId): Promise<number>;
  /**
   * Drops the merge-context entries of retired replicas that hold no sibling
   * (core withoutRetired) from the records of `space`: those changed after
   * `since.head`, or every record when replicas were retired since `since`
   * (or without it). Rewrites a record only when something goes, keeping its
   * position; a record changed meanwhile is left to the next call. Never for
   * a server with peers (regions join states, which counts on the entries).
   */
  trimRetired(space: SpaceId, since: TrimMark | undefined): Promise<TrimResult>;
  /**
   * Retires replicas: they no longer hold any horizon back, and their pushes
   * are refused with `replica_retired`, for good. Resolves to the replicas
   * newly retired. `now` is when (ms).
   */
  retire(replicas: readonly ReplicaId[], now: number): Promise<ReplicaId[]>;
  /** Writers (of any space) last seen before `before` (ms), except `keep`: the candidates for retirement by inactivity. */
  inactiveWriters(before: number, keep: ReadonlySet<ReplicaId>): Promise<ReplicaId[]>;
  /**
   * Retired replicas in the order they were retired (by time, then id),
   * skipping the first `after`, at most `limit`; and how many there are.
   * A retirement made at an earlier time than one already listed may be
   * missed by a reader that had passed it: the list tells who may be
   * forgotten, never who may not.
   */
  retiredList(after: number, limit: number): Promise<RetiredPage>;
  /** True when `replica` was retired. */
  isRetired(replica: ReplicaId): Promise<boolean>;
  /** The writers a space knows (said hello to write, or stored a change), by id: for operators (`syncline-server inspect`). */
  writers(space: SpaceId): Promise<WriterInfo[]>;
  /** Closes the storage; later calls reject with SynclineError `closed`. Idempotent. */
  close(): Promise<void>;
}

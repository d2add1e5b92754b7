/**
 * The sync engine's view of a replica: everything the protocol needs and
 * nothing else. The replica implements it (replica.ts); the engine never sees
 * the replica's storage, so reading, acknowledging and counting the outbox,
 * applying what the server sends and keeping the clock stay the replica's job,
 * each in its own transaction.
 */
import type { Change, HlcString, ReplicaId, SnapshotRecord, SpaceId } from '@syncline/core/internal';
import type { PresenceStore } from '../presence.js';
import type { LogCursor } from '../meta.js';
import type { LogAdvance } from '../remote-apply.js';
import type { SpaceChange } from '../tabs.js';

/** What changed in one committed transaction. */
export interface CommitEvent {
  /** True for this replica's own writes (this tab's). */
  readonly local: boolean;
  /** [collection, id, space] of every record written. */
  readonly records: ReadonlyArray<readonly [string, string, string]>;
  /** Spaces whose outbox grew. */
  readonly outbox: readonly string[];
}

/** What a welcome taught the replica about its clock. */
export interface ClockReport {
  /** server - device clock, ms. */
  readonly offset: number;
  /** Outbox changes re-stamped (client README, "Clocks"). */
  readonly restamped: number;
}

/** Which chunk of a snapshot this is, and how it applies (remote-apply.ts, applySnapshot). */
export interface SnapshotChunk {
  /** 0 for the first chunk. */
  readonly index: number;
  /** The snapshot replaces what the replica held (a server without a region), rather than joining it. */
  readonly replace: boolean;
  /**
   * A joined snapshot (regions): the server region's collection horizon, told
   * before the last chunk (remote-apply.ts, applySnapshot).
   */
  readonly horizon?: HlcString;
}

/** What rejoining under a new id did (ReplicaPort.rejoin). */
export interface Rejoined {
  /** The retired id. */
  readonly previousId: ReplicaId;
  /** The id the replica goes on under. */
  readonly id: ReplicaId;
  /** Unsynced changes set aside, to be applied again as new writes once their space has caught up (in place: moved to the new id at once). */
  readonly aside: number;
  /** Rejoined in place (with regions: ReplicaPort.rejoinInPlace): nothing is set aside, no space starts over. */
  readonly inPlace?: boolean;
}

/** What applying a space's set-aside changes again did (ReplicaPort.reapply). */
export interface Reapplied {
  /** Changes written again (new seqs, new stamps). */
  readonly reapplied: number;
  /** Not written, as "collection/id": patches and crdt updates of records that no longer exist, and changes the schema refuses now. */
  readonly dropped: readonly string[];
}

export interface ReplicaPort {
  /** The replica's id now: a replica that rejoined after being retired has a new one. */
  readonly id: ReplicaId;
  readonly defaultSpace: SpaceId;
  readonly closed: boolean;
  /** True in the one tab that may hold the connection. */
  readonly isLeader: boolean;
  onLeaderChange(listener: (leader: boolean) => void): () => void;
  /** Committed transactions, local and remote. Returns unsubscribe. */
  onCommit(listener: (event: CommitEvent) => void): () => void;
  /** The device clock (createReplica's `now`): what `hello.time` and `lastSyncedAt` report. */
  now(): number;
  /** This replica's presence (presence.ts): the engine carries it over a protocol 8 connection. */
  readonly presence: PresenceStore;
  /** Non-fatal problems, for the app's onError. */
  report(error: Error): void;

  // ---- outbox ----
  /** The oldest `limit` unacknowledged changes of `space`, in seq order. */
  readOutbox(space: SpaceId, limit: number): Promise<Change[]>;
  /**
   * Removes the changes of `space` up to seq `upTo` (the server holds them) and
   * notes the last one's timestamp (`hlc`, when the caller knows it) as accepted.
   */
  ackOutbox(space: SpaceId, upTo: number, hlc: HlcString | undefined): Promise<void>;
  /** Unacknowledged changes in these spaces, set-aside ones (a rejoin) included. */
  countOutbox(spaces: readonly SpaceId[]): Promise<number>;
  /** The seq of the latest change written in `space` (0: none). */
  lastSeq(space: SpaceId): Promise<number>;

  // ---- what the server sends ----
  /** Applies changes of other replicas; with `position`, the space's log is applied up to it. */
  applyRemote(changes: readonly Change[], position?: LogAdvance & { readonly space: SpaceId }): Promise<void>;
  /** Joins snapshot records; with `position` (the last chunk), the space's log is applied up to it. */
  applySnapshot(records: readonly SnapshotRecord[], space: SpaceId, position: LogAdvance | undefined, chunk: SnapshotChunk): Promise<void>;
  /** Where this replica is in the log of `space` (upTo 0: nowhere yet). */
  position(space: SpaceId): Promise<LogCursor>;

  // ---- retirement ----
  /**
   * The server retired this replica's id: take a new one, set aside the
   * unsynced changes of `spaces` and start them over at position 0 (so each
   * bootstraps from a snapshot), in one transaction.
   */
  rejoin(spaces: readonly SpaceId[]): Promise<Rejoined>;
  /**
   * A region retired this replica's id: it goes on under a new id in place, its
   * unsynced changes moved to it (new seqs, stamped after `horizons`, the levels
   * refused at per space), its records and positions kept.
   */
  rejoinInPlace(spaces: readonly SpaceId[], horizons: ReadonlyMap<SpaceId, HlcString>): Promise<Rejoined>;
  /** Reads the replica's id from storage (another tab may have rejoined under a new one). */
  refreshId(): Promise<void>;
  /** Set-aside changes of `space` not written again yet (0 but after a rejoin). */
  countAside(space: SpaceId): Promise<number>;
  /** Once `space` has caught up after a rejoin: its set-aside changes written again as new ones (undefined: none were set aside). */
  reapply(space: SpaceId): Promise<Reapplied | undefined>;

  // ---- clock ----
  /**
   * A welcome's clock: `serverTime` read `roundTrip` ms after the hello left,
   * and the server's tolerance for timestamps ahead of it. Re-stamps what the
   * device clock put out of line, before anything is pushed.
   */
  welcomeClock(serverTime: number, roundTrip: number, maxClockDrift: number): Promise<ClockReport>;
  /** After a `clock_drift` refusal: re-stamps outbox changes too far ahead. Returns how many moved. */
  restamp(maxClockDrift: number): Promise<number>;

  // ---- retired replicas (retired.ts, protocol 7) ----
  /** How many retirements the replica has heard of (hello `retired`). */
  retiredHeard(): Promise<number>;
  /** A `retired` message: drops the replicas' merge-context entries that no sibling needs from every record held. */
  retired(replicas: readonly ReplicaId[], upTo: number): Promise<void>;
  // ---- stability (horizon.ts) ----
  /** The replica's floor in `space` (hello, `floor` messages): every change of it the server lacks is stamped after it. */
  floor(space: SpaceId): Promise<HlcString | undefined>;
  /**
   * A `horizon` message: forgets deleted records at or below `hlc` once the
   * space's log is applied up to `upTo` (of the log of `region`, the server's
   * region, undefined without one).
   */
  horizon(space: SpaceId, hlc: HlcString, upTo: number, region: string | undefined): Promise<void>;
  /** After a `below_horizon` refusal: re-stamps the outbox changes of `space` from the first one at or below `hlc` on. Returns how many moved. */
  restampBelow(space: SpaceId, hlc: HlcString): Promise<number>;

  // ---- spaces ----
  /**
   * An engine tells the replica which spaces it syncs (read at every write):
   * while any engine is attached, a write to a space none of them syncs is
   * refused (`unsynced_space`). Returns detach.
   */
  syncsSpaces(spaces: () => ReadonlySet<SpaceId>): () => void;
  /** The app changed the synced spaces in this tab: tells the other tabs. */
  shareSpaces(change: SpaceChange): void;
  /** Another tab changed the synced spaces. Returns unsubscribe. */
  onSharedSpaces(listener: (change: SpaceChange) => void): () => void;
}

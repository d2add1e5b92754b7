/**
 * The keys of a replica's meta store, in one place. Values are plain data
 * (structured-cloneable); each key says what it holds.
 */

/** The replica's id, chosen at creation. */
export const META_REPLICA = 'replica';
/** The HLC's last timestamp issued or received (an HlcString): the clock never goes below it across restarts. */
export const META_CLOCK = 'clock';
/** server - device clock, ms, measured at the last welcome. Absent until the replica first reached a server. */
export const META_CLOCK_OFFSET = 'clockOffset';
/** True from the replica's creation until its first welcome: its writes so far were stamped by the device clock alone. */
export const META_CLOCK_UNSYNCED = 'clockUnsynced';
/** The latest timestamp the replica knows the server accepted: remote changes and snapshots applied, own changes acknowledged. */
export const META_CLOCK_ACCEPTED = 'clockAccepted';
/** The spaces this replica has written in (SpaceId[]; from the first write in each): a rejoin starts every one over. */
export const META_WRITTEN = 'writtenSpaces';
/**
 * Replicas the server retired (ReplicaId[], `retired` messages, protocol 7):
 * their merge-context entries that no sibling needs are dropped from what the
 * replica stores (retired.ts).
 */
export const META_RETIRED = 'retiredWriters';
/** How many retirements the replica has heard of (a number: the last `retired` message's `upTo`), said in hello. */
export const META_RETIRED_HEARD = 'retiredHeard';
/** Per space: the seq of the latest change written (a number). */
export const seqKey = (space: string): string => `seq\u0000${space}`;
/**
 * Per space: the changes a retired replica had not synced when it rejoined
 * under a new id (Change[] of the old id), applied again as new writes once the
 * space has caught up (replica.ts, #reapply).
 */
export const asideKey = (space: string): string => `aside\u0000${space}`;
/** Per space: where the replica is in the space's log (a LogCursor; a number, its `upTo`, before protocol 5). */
export const positionKey = (space: string): string => `pos\u0000${space}`;

/**
 * Where a replica is in a space's log: the last position applied (`upTo`), the
 * region whose log that position is in (absent: a server without a region),
 * and per origin region the position of that region's own log up to which it
 * holds every entry (its origin vector, protocol 5): what it resumes by in
 * another region.
 */
export interface LogCursor {
  readonly upTo: number;
  readonly region?: string;
  readonly origins?: Readonly<Record<string, number>>;
}

/** A stored cursor, read from what earlier versions stored too. */
export function readCursor(stored: unknown): LogCursor {
  if (typeof stored === 'number') return { upTo: stored };
  if (stored && typeof stored === 'object' && typeof (stored as LogCursor).upTo === 'number') return stored as LogCursor;
  return { upTo: 0 };
}

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
/** Per space: the seq of the latest change written (a number). */
export const seqKey = (space: string): string => `seq\u0000${space}`;
/** Per space: the last log position applied (a number). */
export const positionKey = (space: string): string => `pos\u0000${space}`;

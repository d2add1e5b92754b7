/**
 * Region links: the messages between sync servers of different regions (the
 * `/link` endpoint), versioned apart from the client protocol, so that a new
 * link message never changes what clients speak.
 *
 * A follower region dials a peer and sends `follow` (its region name, the peer
 * credential, and how far it has read the peer's log per space). The peer
 * answers `linked` (its region name and every space's head), then sends, per
 * space, `entries`: the changes that entered the peer through its own clients
 * (never those it received from other regions), in log order. After storing
 * them, the follower has read the peer's log of that space up to `upTo` (the
 * peer's positions; entries of other origins in between are skipped).
 *
 *   1: follow / read, linked / entries, error, ping / pong (never released).
 *   2: `entries` carries each change's position in the peer's log (`positions`),
 *      which the follower stores with it: clients resume by origin positions
 *      (protocol 5) in any region. A version 1 follower is refused.
 *   3: anti-entropy. `repair` (follower to peer) says how far the follower holds
 *      each origin of a space; the peer sends what it holds beyond that of the
 *      origins the follower does not exclude, as `entries` naming their
 *      `origin` (positions are then that origin's). It repairs what a follower
 *      cannot get from the origin itself: a region that is down, partitioned
 *      or destroyed, whose changes reached only some of the others. And `state`:
 *      a follower whose position is below the peer's compaction horizon gets
 *      the peer's record states instead of its log. A version 2 follower is
 *      refused.
 *   4: the error codes of client protocol 6 (`below_horizon`, `replica_retired`),
 *      which links share. A version 3 follower is refused.
 *   5: stability across regions. The peer tells a follower, per space, the level
 *      at or below which it refuses its own clients' changes (`horizon`: every
 *      entry of its own that it stores after its log position `upTo` is stamped
 *      after `hlc`) and the regions it counts as members (itself and its peers).
 *      A region collects below the lowest level of all members, each counted
 *      once it has read that member's log up to the level's `upTo` (server
 *      README, "Bounded growth"). And `floors`: what this region's own writers
 *      said of themselves (each one's floor, or that it was retired), which the
 *      follower takes for those writers that also said hello there: a writer
 *      that moved on holds no region it left, and one retired anywhere (an
 *      operator, inactivity, or a push refused below a level) is retired
 *      everywhere. A version 5 peer serves version 4 followers, without
 *      `horizon` and `floors`; a version 4 peer refuses a version 5 follower.
 */
import { compactChanges } from './changes.js';
import { MAX_CHANGES_PER_MESSAGE, hlc, originVector, position, regionName, replicaId, spaceId, versionVector } from './common.js';
import { snapshotRecords } from './state.js';

export { isRegionName } from './common.js';
import { encodeWith, decodeWith } from './codec.js';
import { error, type ErrorMessage } from './downstream.js';
import { array, boolean, int, literal, object, optional, string, variants, type Infer, type Schema } from './schema.js';
import { ping, pong, type Ping, type Pong } from './upstream.js';

/** The link protocol's version, which a follower says in `follow`. */
export const LINK_PROTOCOL_VERSION = 5;
/** The oldest `follow.protocol` a peer serves (version 4: without `horizon`). */
export const MIN_LINK_PROTOCOL_VERSION = 4;

/** Most spaces one `follow` or `linked` names. */
export const MAX_LINK_SPACES = 1_000_000;


/** Opens a link: who follows, with which credential, from where in each space's log. */
export const follow = object({
  type: literal('follow'),
  protocol: int(1, 65535),
  region: regionName,
  credential: optional(string('credential', (c) => c.length <= 4096)),
  /** How far the follower has read this peer's log, per space (spaces it never read are absent: from the start). */
  positions: array(object({ space: spaceId, after: position }), MAX_LINK_SPACES),
  /** The largest frame the follower reads. */
  maxFrameBytes: int(1),
});

/**
 * The follower has stored the peer's log of `space` up to `upTo` (at most one
 * per space every 100 ms, the latest): the peer keeps its log above the lowest
 * such position of its followers when it compacts.
 */
export const read = object({ type: literal('read'), space: spaceId, upTo: position });

/**
 * Anti-entropy: the follower holds, of `space`, every entry of each origin in
 * `held` up to that origin position (origins absent: none). The peer answers
 * with `entries` (naming `origin`) of every origin it holds further, except the
 * follower's own region, the peer's own (the link carries those) and `skip`
 * (origins the follower gets from the origin region itself).
 */
export const repair = object({
  type: literal('repair'),
  space: spaceId,
  held: array(object({ origin: regionName, pos: position }), 1_000),
  skip: array(regionName, 1_000),
});

/** The answer to follow: the peer's region name and each space's head. */
export const linked = object({
  type: literal('linked'),
  region: regionName,
  heads: array(object({ space: spaceId, head: position }), MAX_LINK_SPACES),
});

/**
 * Changes that entered the peer through its own clients, in log order, each at
 * the position of the same index in `positions` (ascending); the follower has
 * then read the space's log up to `upTo`.
 */
export const entries = object({
  type: literal('entries'),
  space: spaceId,
  changes: compactChanges(MAX_CHANGES_PER_MESSAGE),
  positions: array(int(1), MAX_CHANGES_PER_MESSAGE),
  upTo: position,
  /**
   * Absent: the peer's own entries, at positions of its log. Present (an answer
   * to `repair`): entries of that origin region, at that origin's positions, in
   * their order; `upTo` is then an origin position too.
   */
  origin: optional(regionName),
});

/**
 * Version 3: the peer's state of `space` in place of its log, for a follower
 * whose position is below the peer's compaction horizon: record states in
 * (collection, id) order over several messages, the last with `done` (per
 * replica the highest seq the state holds, with every one before it, and per
 * origin region the origin position up to which it holds every entry). The
 * state holds at least every entry of the peer's log up to `upTo`; after
 * `done`, the follower has read the peer's log up to `upTo`.
 */
export const state = object({
  type: literal('state'),
  space: spaceId,
  upTo: position,
  records: snapshotRecords,
  done: optional(object({ progress: versionVector, origins: originVector })),
});

/**
 * Version 5: the peer refuses its own clients' changes to `space` stamped at or
 * below `hlc`, so every entry of its own origin it stores after its log
 * position `upTo` is stamped after `hlc` (a follower that has read the peer's
 * log up to `upTo` can count on it). `members`: the regions the peer counts
 * (itself and each peer it follows); a region uses the level only when its own
 * members are the same. Sent after `linked` and whenever the level moves.
 */
export const horizon = object({
  type: literal('horizon'),
  space: spaceId,
  hlc,
  upTo: position,
  members: array(regionName, 1_000),
});

/** Most writers one `floors` names. */
export const MAX_LINK_FLOORS = 1_000;

/**
 * Version 5: what writers that said hello to the peer said of themselves in
 * `space`: each one's floor (every change of it that the peer lacks, and every
 * one it will write, is stamped after `hlc`; so every one it will push to any
 * region is), or that it is retired (it writes no more under its id). Sent
 * after `linked` for every such writer, then for those whose floor moved or
 * that were retired since. A follower raises the floor it keeps of a writer
 * that also said hello to it (never lowers it), and counts the writer as
 * seen; it retires a writer the peer retired.
 */
export const floors = object({
  type: literal('floors'),
  space: spaceId,
  writers: array(object({ replica: replicaId, hlc: optional(hlc), retired: optional(boolean) }), MAX_LINK_FLOORS),
});

const linkUpstream = variants('type', { follow, read, repair, ping, pong });
const linkDownstream = variants('type', { linked, entries, state, horizon, floors, error, ping, pong });

/** `follow`: `protocol` (LINK_PROTOCOL_VERSION), `region`, `credential?`, `positions: [{space, after}]`, `maxFrameBytes`. */
export type Follow = Infer<typeof follow>;
/** `read`: `space`, `upTo` (a position of the peer's log the follower has stored everything up to). */
export type Read = Infer<typeof read>;
/** `repair`: `space`, `held: [{origin, pos}]`, `skip: [origin]`. */
export type Repair = Infer<typeof repair>;
/** `linked`: `region` and `heads: [{space, head}]`. */
export type Linked = Infer<typeof linked>;
/** `entries`: `space`, `changes` (in the peer's log order), `positions` (each change's position in the peer's log), `upTo` (a position of the peer's log); with `origin`, an answer to `repair` (positions of that origin). */
export type Entries = Infer<typeof entries>;
/** `state`: `space`, `upTo`, `records` (as in a snapshot), `done?: {progress, origins}` on the last. */
export type LinkStateMessage = Infer<typeof state>;
/** A message from a follower region to the peer it follows. */
export type LinkUpstreamMessage = Follow | Read | Repair | Ping | Pong;
/** `horizon` (version 5): `space`, `hlc`, `upTo` (a position of the peer's log), `members` (region names). */
export type LinkHorizon = Infer<typeof horizon>;
/** `floors` (version 5): `space`, `writers: [{replica, hlc?, retired?}]`. */
export type LinkFloors = Infer<typeof floors>;
/** A message from a peer region to a follower. */
export type LinkDownstreamMessage = Linked | Entries | LinkStateMessage | LinkHorizon | LinkFloors | ErrorMessage | Ping | Pong;

/** Encodes a follower's message. */
export function encodeLinkUpstream(message: LinkUpstreamMessage): Uint8Array {
  return encodeWith(linkUpstream as Schema<LinkUpstreamMessage>, message);
}
/** Decodes a follower's message. @throws ProtocolError `malformed_frame` or `invalid_message`. */
export function decodeLinkUpstream(frame: Uint8Array): LinkUpstreamMessage {
  return decodeWith(linkUpstream as Schema<LinkUpstreamMessage>, frame);
}
/** Encodes a peer's message to a follower. */
export function encodeLinkDownstream(message: LinkDownstreamMessage): Uint8Array {
  return encodeWith(linkDownstream as Schema<LinkDownstreamMessage>, message);
}
/** Decodes a peer's message. @throws ProtocolError `malformed_frame` or `invalid_message`. */
export function decodeLinkDownstream(frame: Uint8Array): LinkDownstreamMessage {
  return decodeWith(linkDownstream as Schema<LinkDownstreamMessage>, frame);
}

/** The wire shape of the link protocol, for its version-guard test. */
export function describeLinkProtocol(): string {
  return `link:${LINK_PROTOCOL_VERSION};up:${linkUpstream.describe};down:${linkDownstream.describe}`;
}

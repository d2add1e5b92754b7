/** Messages from the server to a client. */
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import { MAX_CHANGES_PER_MESSAGE, MAX_ORIGINS, MAX_RETIRED_PER_MESSAGE, MAX_SPACES_PER_HELLO, hlc, originVector, position, regionName, replicaId, seq, spaceId } from './common.js';
import { snapshotRecords } from './state.js';
import { compactChanges } from './changes.js';
import { ping, pong } from './upstream.js';
import { array, boolean, int, json, literal, nullable, object, oneOf, optional, string, variants, type Infer } from './schema.js';

/** The access a server grants to a space: 'read' (receive changes) or 'write' (also push). */
export const ACCESS_LEVELS = ['read', 'write'] as const;
/** 'read' or 'write': see ACCESS_LEVELS. */
export type Access = (typeof ACCESS_LEVELS)[number];

/** What a server enforces (protocol 3); its clients fit their pushes and pace under it. See limits.ts. */
export const limits = object({
  maxFrameBytes: int(1),
  maxBatch: int(1),
  messagesPerSecond: int(1),
  maxClockDrift: int(0),
});

/**
 * Answers hello: the server's identity, clock and limits, and per space the
 * access granted and the log head. `limits` is absent from protocol 2 servers.
 */
export const welcome = object({
  type: literal('welcome'),
  protocol: int(1, 65535),
  server: string('serverId', (s) => s.length > 0 && s.length <= 128),
  /** The server's wall clock (ms) when it answered: replicas judge clock drift against it. */
  time: int(0),
  spaces: array(object({ space: spaceId, access: oneOf(ACCESS_LEVELS), head: position }), MAX_SPACES_PER_HELLO),
  limits: optional(limits),
  /** Protocol 5: the server's region, when it has one; its log positions are that region's. */
  region: optional(regionName),
  /** Protocol 5: the /sync URLs of the region's peers, where a client can fail over. */
  peers: optional(array(string('peer', (u) => u.length <= 2048), MAX_ORIGINS)),
});

/**
 * Every change of this replica up to `upTo` in `space` is durably stored; with
 * `stable` (protocol 5, when the client asked for a durability beyond its
 * region), every change up to `stable` is held by as many regions as it asked.
 */
export const ack = object({ type: literal('ack'), space: spaceId, upTo: seq, stable: optional(int(0)) });

/**
 * Changes of other replicas, in log order. After applying them the client has
 * everything in the space's log up to `upTo` (its own changes are not echoed).
 */
export const changes = object({
  type: literal('changes'),
  space: spaceId,
  changes: compactChanges(MAX_CHANGES_PER_MESSAGE),
  upTo: position,
  /** Protocol 5: per origin region, the position of its own log the client then holds every entry up to. */
  origins: optional(originVector),
});

/**
 * One chunk of a space's materialized state as of log position `position`.
 * Chunks are numbered 0..chunks-1; `records` counts the records of all chunks.
 */
export const snapshot = object({
  type: literal('snapshot'),
  space: spaceId,
  position,
  chunk: int(0),
  chunks: int(1),
  total: int(0),
  records: snapshotRecords,
  /** Protocol 5: per origin region, the position of its own log up to which the snapshot holds every entry. */
  origins: optional(originVector),
});

/**
 * Protocol 6: the stability horizon of `space`. Every change stored after log
 * position `upTo` is stamped after `hlc`, and the server refuses a change
 * stamped at or below it (`below_horizon`). A replica that has applied up to
 * `upTo` can forget its records that collectibleAt() puts at or below `hlc`.
 */
export const horizon = object({ type: literal('horizon'), space: spaceId, hlc, upTo: position });

/**
 * Protocol 7: replicas the server retired, for good (server README, "Bounded
 * growth"). The client drops their merge-context entries that no sibling
 * needs. `upTo`: how many retirements the client has heard of once it has
 * this one, which its next hello says (`retired`), so that it hears each once.
 */
export const retired = object({ type: literal('retired'), replicas: array(replicaId, MAX_RETIRED_PER_MESSAGE), upTo: int(0) });

/** The most presence entries in one `presence` message; a longer list goes in several. */
export const MAX_PRESENCE_PEERS = 10_000;

/**
 * Protocol 8: presence of the other clients of `space` (upstream `presence`).
 * `full`: the list is everyone there now, replacing what the client knew
 * (sent when its subscription starts, in several messages when large: the
 * first is full, the rest add to it); else each entry is a change: a state, or
 * null when that replica left. Never logged or stored.
 */
export const presenceList = object({
  type: literal('presence'),
  space: spaceId,
  full: optional(boolean),
  peers: array(object({ replica: replicaId, state: nullable(json) }), MAX_PRESENCE_PEERS),
});

/** Catch-up of `space` is complete up to `upTo`; live changes follow. */
export const synced = object({ type: literal('synced'), space: spaceId, upTo: position });

/**
 * A refusal. `fatal`: the server closes the connection after sending it.
 * `retryAfter` (ms, protocol 3): wait at least this long before sending again.
 */
export const error = object({
  type: literal('error'),
  /** Listed, not just checked, so a new code changes the protocol hash. */
  code: oneOf(Object.keys(ERROR_CODES) as ErrorCode[]),
  message: string('message', (m) => m.length <= 4096),
  fatal: boolean,
  space: optional(spaceId),
  retryAfter: optional(int(0)),
});

export const downstream = variants('type', { welcome, ack, changes, snapshot, synced, horizon, retired, presence: presenceList, error, ping, pong });

/**
 * `welcome`, the answer to hello: `protocol` (the server's PROTOCOL_VERSION),
 * `server` (its id), `time` (its clock, ms), `spaces: [{space, access, head}]`
 * for the spaces granted (`head`: the space's latest log position),
 * `limits?` (protocol 3: what the server enforces), and, from a server with a
 * region (protocol 5), `region?` (its name) and `peers?` (its peer regions'
 * /sync URLs).
 */
export type Welcome = Infer<typeof welcome>;
/** The `limits` of a welcome: `maxFrameBytes` (bytes), `maxBatch` (changes per push), `messagesPerSecond`, `maxClockDrift` (ms). See ServerLimits. */
export type WelcomeLimits = Infer<typeof limits>;
/**
 * `ack`: `space` and `upTo`: every change of this replica in the space up to
 * seq `upTo` is durably stored; `stable?` (protocol 5): every change up to it is
 * held by the regions the hello's `durability` asked for (absent: `upTo` is).
 */
export type Ack = Infer<typeof ack>;
/**
 * `changes`: other replicas' changes of `space`, in log order; once they are
 * applied, the client holds the space's log up to position `upTo` (its own
 * changes are not echoed, so `changes` may be empty). `origins?` (protocol 5,
 * servers with a region): `[{region, upTo}]`, per origin region the position
 * of that region's own log up to which the client then holds every entry.
 */
export type Changes = Infer<typeof changes>;
/**
 * `snapshot`: chunk `chunk` (from 0) of `chunks` of a space's materialized
 * records as of log position `position`; `total` counts the records of every
 * chunk. The log after `position` follows. `origins?` (protocol 5): the
 * snapshot's origin vector, as in `changes`.
 */
export type Snapshot = Infer<typeof snapshot>;
/** `horizon` (protocol 6): `space`, `hlc` and `upTo`; every change stored after position `upTo` is stamped after `hlc`. */
export type Horizon = Infer<typeof horizon>;
/** `retired` (protocol 7): `replicas` retired for good; `upTo`: how many retirements the client has then heard of. */
export type Retired = Infer<typeof retired>;
/** `presence` (protocol 8): `space`, `peers: [{replica, state}]` (state null: left) and `full?` (the list replaces what the client knew). */
export type PresenceList = Infer<typeof presenceList>;
/** `synced`: catch-up of `space` is complete up to log position `upTo`; live changes follow. */
export type Synced = Infer<typeof synced>;
/**
 * `error`: a refusal with a `code` (ERROR_CODES) and a `message`; `fatal`: the
 * server closes the connection after it; `space?`: the space it is about;
 * `retryAfter?` (ms, protocol 3): wait at least this long before sending again.
 */
export type ErrorMessage = Infer<typeof error>;
/** Any message from the server to a client. */
export type DownstreamMessage = Welcome | Ack | Changes | Snapshot | Synced | Horizon | Retired | PresenceList | ErrorMessage | Infer<typeof ping> | Infer<typeof pong>;

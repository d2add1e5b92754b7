/** Messages from a client (replica) to the server. */
import { MAX_CHANGES_PER_MESSAGE, MAX_SPACES_PER_HELLO, change, hlc, originVector, position, regionName, replicaId, spaceId } from './common.js';
import { array, int, json, literal, nullable, object, optional, string, variants, type Infer } from './schema.js';

/**
 * How many regions must hold a change before the server calls it stable:
 * 'region' (the one that stored it: the default), `quorum:k` (k regions, 1 to
 * 64; more than there are means all of them), or 'all' (every region).
 */
export type Durability = 'region' | 'all' | `quorum:${number}`;

/** True for 'region', 'all' and 'quorum:k' with k from 1 to 64. */
export function isDurability(value: unknown): value is Durability {
  if (value === 'region' || value === 'all') return true;
  const k = typeof value === 'string' && /^quorum:([1-9][0-9]?)$/.exec(value);
  return Boolean(k) && Number((k as RegExpExecArray)[1]) <= 64;
}

/** The number of regions a durability asks for, among `regions` (at least 1). */
export function regionsFor(durability: Durability | undefined, regions: number): number {
  if (durability === undefined || durability === 'region') return 1;
  if (durability === 'all') return regions;
  return Math.min(regions, Number(durability.slice('quorum:'.length)));
}

/** Opens a session: who is asking, for which spaces, resuming after which log position. */
export const hello = object({
  type: literal('hello'),
  protocol: int(1, 65535),
  replica: replicaId,
  token: optional(string('token', (t) => t.length <= 16_384)),
  /**
   * `after`: the last log position the client fully applied (0: nothing yet);
   * protocol 5: `region`, the region whose log `after` is a position of (absent:
   * a server without a region), and `origins`, the client's origin vector.
   */
  spaces: array(object({ space: spaceId, after: position, region: optional(regionName), origins: optional(originVector), floor: optional(hlc) }), MAX_SPACES_PER_HELLO),
  /** The client's wall clock (ms), so the server can report skew. */
  time: int(0),
  /** The largest frame the client reads (protocol 4); the server's frames stay within it. At least MIN_FRAME_BYTES. */
  maxFrameBytes: optional(int(1)),
  /** Protocol 5: how many regions must hold a change before `ack.stable` covers it (see Durability). */
  durability: optional(string<Durability>('durability', isDurability)),
  /** Protocol 7: how many retirements the client has heard of (the last `retired` message's `upTo`; absent: none). */
  retired: optional(int(0)),
});

/** Local changes of this replica, oldest first, in one space. */
export const push = object({
  type: literal('push'),
  space: spaceId,
  changes: array(change, MAX_CHANGES_PER_MESSAGE),
});

/**
 * Protocol 6: per space, every change of this replica there that the server
 * does not hold yet, and every change it will write there, is stamped after
 * `hlc`. The server's stability horizon can then pass this replica's earlier
 * stamps. At most MAX_SPACES_PER_HELLO entries.
 */
export const floor = object({ type: literal('floor'), floors: array(object({ space: spaceId, hlc }), MAX_SPACES_PER_HELLO) });

/**
 * Protocol 8: this replica's presence in `space` (any JSON of at most
 * MAX_PRESENCE_BYTES, or null: none), for the other clients of the space to
 * see while this connection lasts. Never logged or stored.
 */
export const presence = object({ type: literal('presence'), space: spaceId, state: nullable(json) });

/** A liveness probe, either direction; answered with a pong of the same id. */
export const ping = object({ type: literal('ping'), id: int(0) });
/** The answer to a ping: `id` is the ping's. */
export const pong = object({ type: literal('pong'), id: int(0) });

export const upstream = variants('type', { hello, push, floor, presence, ping, pong });

/**
 * `hello`, the first message of a connection: `protocol` (the client's
 * PROTOCOL_VERSION), `replica`, `token?` (at most 16,384 characters),
 * `spaces: [{space, after, region?, origins?}]` (at most 1,000; `after`: the
 * last log position of the space the client applied, 0 for none; protocol 5:
 * `region`, whose log `after` is in, and `origins`, the client's origin vector
 * `[{region, upTo}]`; protocol 6: `floor`, as in a `floor` message), `time` (the client's clock, ms) and
 * `maxFrameBytes?` (protocol 4: the largest frame the client reads, at least MIN_FRAME_BYTES)
 * and `durability?` (protocol 5: see Durability; 'region' when absent).
 */
export type Hello = Infer<typeof hello>;
/** `push`: `space` and `changes`, this replica's unacknowledged changes of that space, oldest first, seqs contiguous. */
export type Push = Infer<typeof push>;
/** `floor` (protocol 6): `floors: [{space, hlc}]`; every change of the replica in `space` that the server lacks is stamped after `hlc`. */
export type Floor = Infer<typeof floor>;
/** `presence` (protocol 8): `space` and `state`, this replica's presence there (JSON, or null for none); ephemeral. */
export type PresenceUpdate = Infer<typeof presence>;
/** `ping`: `id`, an integer >= 0 the pong echoes. Either direction. */
export type Ping = Infer<typeof ping>;
/** `pong`: `id`, the id of the ping it answers. Either direction. */
export type Pong = Infer<typeof pong>;
/** Any message from a client to the server. */
export type UpstreamMessage = Hello | Push | Floor | PresenceUpdate | Ping | Pong;

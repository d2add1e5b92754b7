/** Messages from a client (replica) to the server. */
import { MAX_CHANGES_PER_MESSAGE, MAX_SPACES_PER_HELLO, change, position, replicaId, spaceId } from './common.js';
import { array, int, literal, object, optional, string, variants, type Infer } from './schema.js';

/** Opens a session: who is asking, for which spaces, resuming after which log position. */
export const hello = object({
  type: literal('hello'),
  protocol: int(1, 65535),
  replica: replicaId,
  token: optional(string('token', (t) => t.length <= 16_384)),
  /** `after`: the last log position the client fully applied (0: nothing yet). */
  spaces: array(object({ space: spaceId, after: position }), MAX_SPACES_PER_HELLO),
  /** The client's wall clock (ms), so the server can report skew. */
  time: int(0),
  /** The largest frame the client reads (protocol 4); the server's frames stay within it. At least MIN_FRAME_BYTES. */
  maxFrameBytes: optional(int(1)),
});

/** Local changes of this replica, oldest first, in one space. */
export const push = object({
  type: literal('push'),
  space: spaceId,
  changes: array(change, MAX_CHANGES_PER_MESSAGE),
});

export const ping = object({ type: literal('ping'), id: int(0) });
export const pong = object({ type: literal('pong'), id: int(0) });

export const upstream = variants('type', { hello, push, ping, pong });

export type Hello = Infer<typeof hello>;
export type Push = Infer<typeof push>;
export type Ping = Infer<typeof ping>;
export type Pong = Infer<typeof pong>;
export type UpstreamMessage = Hello | Push | Ping | Pong;

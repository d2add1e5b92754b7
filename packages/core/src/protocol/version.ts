/**
 * Protocol versions. Bump PROTOCOL_VERSION whenever a message or the frame layout
 * changes; test/core/protocol-version.test.ts fails until the new wire shape's
 * hash is recorded for the new version.
 *
 *   1: first version: hello/welcome handshake, push/ack, changes, snapshot, synced, error, ping/pong.
 *   2: compact snapshots and changes: records grouped by collection, lww states with shared
 *      timestamps written once, relayed changes as rows, timestamps as integers of a
 *      per-message clock table. A version 1 client could not read them, so the server
 *      refuses it (unsupported_protocol).
 *   3: welcome announces the server's limits (frame bytes, changes per push, messages per
 *      second, clock drift) so that clients fit them, and an error may say how long to wait
 *      (`retryAfter`). Both are optional fields that a version 2 client drops when reading,
 *      so a version 3 server still serves version 2 clients.
 *   4: a client says in hello the largest frame it reads (`maxFrameBytes`), and the server's
 *      frames, snapshots and catch-up included, stay within it and its own limit; error codes
 *      too_large and quota_exceeded. A server sends older clients invalid_message instead of
 *      the new codes (errorCodeFor), so it still serves versions 2 and 3.
 *   5: regions. welcome names the server's `region` and its `peers`; `changes` and `snapshot`
 *      carry `origins`, per origin region how far the client then holds that region's own log;
 *      hello says per space which region `after` is a position of and the client's origin
 *      vector, so a client resumes in another region without a snapshot. All are optional
 *      fields: a version 5 server serves versions 2 to 4 (a client that fails over between
 *      regions without them is sent a snapshot), and a server without a region sends none.
 *   6: stability. A client says per space in hello, and later in `floor` messages, that every
 *      change of it the server lacks is stamped after a timestamp; the server announces each
 *      space's stability horizon (`horizon`) and refuses changes stamped at or below it
 *      (`below_horizon`); a retired replica id is refused (`replica_retired`). A version 6
 *      server serves versions 2 to 5: it sends them no horizon, and `invalid_message` for the
 *      new codes; such a replica holds the horizon back at its last stored change.
 *   7: retired replicas. The server tells a client which replicas it retired (`retired`),
 *      and the client drops their merge-context entries that no sibling needs; hello says
 *      how many retirements the client has heard of (`retired`), so it hears each once. A
 *      version 7 server sends older clients no `retired` (they keep the entries).
 *   8: presence. A client says its ephemeral state in a space (`presence`, upstream), and the
 *      server relays it to the space's other clients of version 8 (`presence`, downstream: the
 *      full list when a subscription starts, then each change; a replica that disconnects
 *      leaves with state null). Nothing of it is logged or stored. A client sends presence only
 *      to a server whose welcome says version 8; a version 8 server sends older clients none.
 */
export const PROTOCOL_VERSION = 8;
/** The oldest version a peer may speak and still be served. */
export const MIN_PROTOCOL_VERSION = 2;

/** True when a peer speaking `version` can be served: an integer from MIN_PROTOCOL_VERSION to PROTOCOL_VERSION. */
export function isSupportedProtocol(version: number): boolean {
  return Number.isInteger(version) && version >= MIN_PROTOCOL_VERSION && version <= PROTOCOL_VERSION;
}

/**
 * Every refusal Syncline can make has a stable `code`. Codes travel on the wire
 * (protocol `error` messages) and are what apps switch on; messages are for people.
 */
/**
 * Every error code of the protocol, with a sentence for people. The keys are
 * the wire's `error.code` values (a new key changes the protocol hash); the
 * comment on each says when the sync server sends it, and whether the error is
 * fatal (the server closes the connection after sending it).
 */
export const ERROR_CODES = {
  /** Fatal: the frame is not a Syncline frame (not binary, no marker, lengths that do not add up, not UTF-8 JSON). */
  malformed_frame: 'The frame could not be decoded (truncated, bad lengths, not JSON).',
  /**
   * Fatal when the frame itself is bad (a field missing or mistyped, hello twice, a space listed
   * twice); for one space (not fatal) when a push's changes are refused. Also what a peer speaking an
   * older protocol receives in place of a code it cannot decode (`errorCodeFor`).
   */
  invalid_message: 'The frame decoded but a message field is missing or has the wrong type.',
  /** Fatal: the hello's `protocol` is outside MIN_PROTOCOL_VERSION..PROTOCOL_VERSION. */
  unsupported_protocol: "The peer's protocol version is outside the supported range.",
  /** Fatal: the frame is larger than the server's `maxFrameBytes`. */
  frame_too_large: 'The frame is larger than the configured maximum.',
  /** For one space, not fatal: the push carried more than the server's `maxBatch` changes; nothing of it was stored. */
  batch_too_large: 'A push carried more changes than the configured maximum.',
  /** Fatal: the hello's token is missing, invalid or expired, or it expired on an open connection. */
  unauthenticated: 'No valid credentials were presented (missing, malformed or expired token).',
  /**
   * For one space, not fatal: no access to a space named in hello, or a push to a space not granted
   * or granted read-only. Fatal when none of the spaces in hello is granted, or when the
   * server's `authenticate` hook refuses with it.
   */
  forbidden: 'The credentials do not grant this access to the space.',
  /** For one space, not fatal: a pushed change is stamped further ahead of the server's clock than its `maxClockDrift`. */
  clock_drift: 'A timestamp is further ahead of the receiver clock than maxClockDrift allows.',
  /** Thrown by `Hlc` when its wall time reached the largest value the timestamp format holds. */
  clock_overflow: 'The hybrid logical clock cannot advance any further.',
  /**
   * Not fatal: the frame was dropped unread because the connection is over the server's
   * `messagesPerSecond`; `retryAfter` says when to send again. Fatal for a connection that floods.
   */
  rate_limited: 'Too many messages per second on this connection.',
  /** Fatal: the connection stayed paused (its send buffer over `maxBufferedBytes`) for longer than `slowConsumerTimeoutMs`. */
  slow_consumer: 'The connection did not read fast enough; its send buffer overflowed.',
  /** Fatal, with `retryAfter`: the server is at one of its connection limits (close code 1013). */
  too_many_connections: 'The server is at its connection limit.',
  /** Fatal: a push before the handshake completed, or no hello within `helloTimeoutMs`. */
  not_ready: 'A message arrived before the handshake completed.',
  /** For one space, not fatal: the push does not continue the replica's changes held by the server (a seq is missing). */
  sequence_gap: "A replica's changes must arrive in sequence order without gaps.",
  /** Fatal: the server is closing (close code 1013); reconnect to another instance or later. */
  shutting_down: 'The server is shutting down; reconnect later.',
  /** Fatal: the server failed unexpectedly; nothing of the request that failed was stored. */
  internal: 'An unexpected server error; nothing from the failed request was stored.',
  /** For one space, not fatal (protocol 4): a pushed change is larger than MAX_CHANGE_BYTES. */
  too_large: 'A change is larger than the protocol allows (MAX_CHANGE_BYTES).',
  /** For one space, not fatal (protocol 4): the push would grow the space past `maxSpaceBytes` or `maxSpaceRecords`; nothing of it was stored. */
  quota_exceeded: "The space is at one of the server's quotas (stored bytes or records).",
  /**
   * For one space, not fatal (protocol 6): a pushed change is stamped at or below the space's
   * stability horizon, below which the server may have forgotten deleted records; nothing of the
   * push was stored. The server sends the space's `horizon` message first: the client re-stamps its
   * unacknowledged changes stamped at or below it and pushes them again.
   */
  below_horizon: "A change is stamped at or below the space's stability horizon; re-stamp it and push again.",
  /**
   * Fatal (protocol 6): the replica id was retired (by an operator, or after being away longer than
   * the server's `retireAfterMs`) and no longer holds the stability horizon back. The replica takes a
   * new id, bootstraps from a snapshot, and applies its unsynced writes again as new writes.
   */
  replica_retired: 'This replica was retired; it must start again under a new id.',
} as const;

/** A code of ERROR_CODES: the stable `code` of a protocol error. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes that older protocol versions cannot decode (an unknown code fails the whole message): the version that added them. */
const ERROR_CODE_SINCE: Readonly<Partial<Record<ErrorCode, number>>> = { too_large: 4, quota_exceeded: 4, below_horizon: 6, replica_retired: 6 };

/** The code to send a peer speaking `protocol`: one it can decode (`invalid_message` stands in for newer ones). */
export function errorCodeFor(code: ErrorCode, protocol: number): ErrorCode {
  return (ERROR_CODE_SINCE[code] ?? 0) > protocol ? 'invalid_message' : code;
}

/** True when `value` is one of the protocol's error codes (a key of ERROR_CODES). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/**
 * Base class of every error Syncline throws on purpose. Switch on `code` (stable),
 * not on `message` (for people) or the class.
 */
export class SynclineError extends Error {
  /** The class name, for logs: 'SynclineError' here, the subclass's name in subclasses. */
  override name = 'SynclineError';
  /**
   * @param code - Stable code: an ErrorCode, or another code named where the error is thrown.
   * @param message - What happened and what to do, for people.
   * @param options - `cause`: the error this one wraps.
   */
  constructor(
    /** Stable code: an ErrorCode for protocol errors, or another code documented where it is thrown (`invalid_change`, `invalid_timestamp`, …). */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A frame or message that breaks the wire protocol. `path` points at the offending field. */
export class ProtocolError extends SynclineError {
  /** 'ProtocolError'. */
  override name = 'ProtocolError';
  /**
   * @param code - The protocol error code.
   * @param message - What is wrong; `path`, when given, is appended to it.
   * @param path - The offending field, e.g. `$.changes[3].seq` (default '': the whole frame).
   * @param options - `cause`: the error this one wraps.
   */
  constructor(
    /** The protocol error code (`malformed_frame`, `invalid_message`, …). */
    override readonly code: ErrorCode,
    message: string,
    /** Where in the message the problem is, e.g. `$.changes[3].seq`; '' for the frame as a whole. */
    readonly path: string = '',
    options?: { cause?: unknown },
  ) {
    super(code, path ? `${message} (at ${path})` : message, options);
  }
}

/** A remote timestamp too far ahead of the local physical clock (see Hlc.receive). */
export class ClockDriftError extends SynclineError {
  /** 'ClockDriftError'. */
  override name = 'ClockDriftError';
  /** Always 'clock_drift'. */
  override readonly code = 'clock_drift';
  constructor(
    /** The remote timestamp's wall time, ms since the epoch. */
    readonly remoteWall: number,
    /** The local physical clock when it was judged, ms since the epoch. */
    readonly localWall: number,
    /** The tolerance it exceeded, ms. */
    readonly maxDrift: number,
  ) {
    super(
      'clock_drift',
      `remote timestamp is ${remoteWall - localWall} ms ahead of the local clock (max ${maxDrift} ms); check the device clock`,
    );
  }
}

/** A change or value that Syncline refuses to apply or store; its code is `invalid_change`. */
export class InvalidChangeError extends SynclineError {
  /** 'InvalidChangeError'. */
  override name = 'InvalidChangeError';
  constructor(
    message: string,
    /** The offending field of the change, e.g. `fields.title`; '' for the change as a whole. */
    readonly path = '',
  ) {
    super('invalid_change', path ? `${message} (at ${path})` : message);
  }
}

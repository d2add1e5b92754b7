/**
 * Every refusal Syncline can make has a stable `code`. Codes travel on the wire
 * (protocol `error` messages) and are what apps switch on; messages are for people.
 */
export const ERROR_CODES = {
  malformed_frame: 'The frame could not be decoded (truncated, bad lengths, not JSON).',
  invalid_message: 'The frame decoded but a message field is missing or has the wrong type.',
  unsupported_protocol: "The peer's protocol version is outside the supported range.",
  frame_too_large: 'The frame is larger than the configured maximum.',
  batch_too_large: 'A push carried more changes than the configured maximum.',
  unauthenticated: 'No valid credentials were presented (missing, malformed or expired token).',
  forbidden: 'The credentials do not grant this access to the space.',
  clock_drift: 'A timestamp is further ahead of the receiver clock than maxClockDrift allows.',
  clock_overflow: 'The hybrid logical clock cannot advance any further.',
  rate_limited: 'Too many messages per second on this connection.',
  slow_consumer: 'The connection did not read fast enough; its send buffer overflowed.',
  too_many_connections: 'The server is at its connection limit.',
  not_ready: 'A message arrived before the handshake completed.',
  sequence_gap: "A replica's changes must arrive in sequence order without gaps.",
  shutting_down: 'The server is shutting down; reconnect later.',
  internal: 'An unexpected server error; nothing from the failed request was stored.',
  too_large: 'A change is larger than the protocol allows (MAX_CHANGE_BYTES).',
  quota_exceeded: "The space is at one of the server's quotas (stored bytes or records).",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes that older protocol versions cannot decode (an unknown code fails the whole message): the version that added them. */
const ERROR_CODE_SINCE: Readonly<Partial<Record<ErrorCode, number>>> = { too_large: 4, quota_exceeded: 4 };

/** The code to send a peer speaking `protocol`: one it can decode (`invalid_message` stands in for newer ones). */
export function errorCodeFor(code: ErrorCode, protocol: number): ErrorCode {
  return (ERROR_CODE_SINCE[code] ?? 0) > protocol ? 'invalid_message' : code;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Base class of every error Syncline throws on purpose. */
export class SynclineError extends Error {
  override name = 'SynclineError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A frame or message that breaks the wire protocol. `path` points at the offending field. */
export class ProtocolError extends SynclineError {
  override name = 'ProtocolError';
  constructor(
    override readonly code: ErrorCode,
    message: string,
    readonly path: string = '',
    options?: { cause?: unknown },
  ) {
    super(code, path ? `${message} (at ${path})` : message, options);
  }
}

/** A remote timestamp too far ahead of the local physical clock (see Hlc.receive). */
export class ClockDriftError extends SynclineError {
  override name = 'ClockDriftError';
  override readonly code = 'clock_drift';
  constructor(
    readonly remoteWall: number,
    readonly localWall: number,
    readonly maxDrift: number,
  ) {
    super(
      'clock_drift',
      `remote timestamp is ${remoteWall - localWall} ms ahead of the local clock (max ${maxDrift} ms); check the device clock`,
    );
  }
}

/** A change or value that Syncline refuses to apply or store. */
export class InvalidChangeError extends SynclineError {
  override name = 'InvalidChangeError';
  constructor(message: string, readonly path = '') {
    super('invalid_change', path ? `${message} (at ${path})` : message);
  }
}

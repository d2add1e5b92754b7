/**
 * Encoders and decoders for every message, in both directions. Decoding is the
 * one way in: bytes -> frame -> schema-checked typed message. Anything else
 * becomes a ProtocolError with a code; no other exception escapes.
 */
import { ProtocolError } from '../errors.js';
import { downstream, type DownstreamMessage } from './downstream.js';
import { readFrame, writeFrame } from './frame.js';
import type { Schema } from './schema.js';
import { upstream, type UpstreamMessage } from './upstream.js';
import { FRAME_MARKER } from './frame.js';
import { PROTOCOL_VERSION } from './version.js';

/** Encodes a value with its schema into a frame (messages, stored changes and states). */
export function encodeWith<T>(schema: Schema<T>, message: T): Uint8Array {
  const attachments: Uint8Array[] = [];
  const json = schema.write(message, { attachments });
  return writeFrame(json, attachments);
}

/** Decodes a frame with a schema; every failure is a ProtocolError. */
export function decodeWith<T>(schema: Schema<T>, frame: Uint8Array): T {
  try {
    const raw = readFrame(frame);
    return schema.read(raw.json, raw, '$');
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    // A schema bug must still surface as the protocol's own error type.
    throw new ProtocolError('invalid_message', `could not decode message: ${String(error)}`, '', { cause: error });
  }
}

/** Encodes a client-to-server message (hello, push, ping, pong) into one frame. */
export function encodeUpstream(message: UpstreamMessage): Uint8Array {
  return encodeWith(upstream as Schema<UpstreamMessage>, message);
}

/**
 * Decodes and checks a frame from a client. Unknown object keys are dropped.
 * @throws ProtocolError `malformed_frame` (not a frame) or `invalid_message` (a field missing or invalid; `path` says which).
 */
export function decodeUpstream(frame: Uint8Array): UpstreamMessage {
  return decodeWith(upstream as Schema<UpstreamMessage>, frame);
}

/** Encodes a server-to-client message (welcome, ack, changes, snapshot, synced, error, ping, pong) into one frame. */
export function encodeDownstream(message: DownstreamMessage): Uint8Array {
  return encodeWith(downstream as Schema<DownstreamMessage>, message);
}

/**
 * Decodes and checks a frame from a server. Unknown object keys are dropped.
 * @throws ProtocolError `malformed_frame` (not a frame) or `invalid_message` (a field missing or invalid; `path` says which).
 */
export function decodeDownstream(frame: Uint8Array): DownstreamMessage {
  return decodeWith(downstream as Schema<DownstreamMessage>, frame);
}

/** The wire shape of the whole protocol, for the version-guard test. */
export function describeProtocol(): string {
  return `frame:${FRAME_MARKER};up:${upstream.describe};down:${downstream.describe}`;
}

export { PROTOCOL_VERSION };

/**
 * Frame layout (all integers unsigned LEB128 varints):
 *
 *   0x53 ('S')                  frame format marker
 *   attachment count  N         at most MAX_ATTACHMENTS
 *   N attachment lengths
 *   JSON length
 *   JSON text (UTF-8)           the message; bytes fields hold an attachment index
 *   N attachments, in order
 *
 * JSON keeps user keys such as `__proto__` as own properties and is parsed by the
 * engine's native parser; binary payloads (Yjs updates) ride beside it unencoded.
 * Any inconsistency is a ProtocolError('malformed_frame'), never a raw exception.
 */
import { ProtocolError } from '../errors.js';

export const FRAME_MARKER = 0x53;
export const MAX_ATTACHMENTS = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * A frame read but not yet checked: its JSON, and its attachments, which are
 * copied out of the frame only when asked for (a field pointing to one), so a
 * frame of junk attachments costs no copies before its message is checked.
 */
export interface RawFrame {
  readonly json: unknown;
  readonly attachmentCount: number;
  /** A fresh copy of attachment `index`: a stored update never pins the frame's memory. */
  attachment(index: number): Uint8Array;
  /** Every attachment, copied (tools and tests; decoding uses `attachment`). */
  readonly attachments: Uint8Array[];
}

/**
 * JSON bytes a message needs per attachment it carries: each is referenced by a
 * field of an object (a crdt change, a crdt field of a state) that takes far
 * more than this. More attachments than the JSON could reference is junk.
 */
export const JSON_BYTES_PER_ATTACHMENT = 16;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[offset++] = n;
  return offset;
}

/** The bytes of a frame whose JSON takes `jsonBytes` bytes of UTF-8, with these attachments. */
export function frameSize(jsonBytes: number, attachments: readonly Uint8Array[]): number {
  let size = 1 + varintSize(attachments.length) + varintSize(jsonBytes) + jsonBytes;
  for (const a of attachments) size += varintSize(a.length) + a.length;
  return size;
}

export function writeFrame(json: unknown, attachments: readonly Uint8Array[]): Uint8Array {
  const text = encoder.encode(JSON.stringify(json));
  const out = new Uint8Array(frameSize(text.length, attachments));
  out[0] = FRAME_MARKER;
  let offset = writeVarint(out, 1, attachments.length);
  for (const a of attachments) offset = writeVarint(out, offset, a.length);
  offset = writeVarint(out, offset, text.length);
  out.set(text, offset);
  offset += text.length;
  for (const a of attachments) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/**
 * Cuts `items` into frames of at most `maxBytes` bytes, in order: a slice whose
 * frame is larger is halved until it fits, and one item goes alone whatever
 * its size (the caller decides whether such a frame may go). `encode(slice,
 * last)` builds a slice's frame; `last` is true for the slice that ends
 * `items`. Lazy: a caller may take only the first frame, or wait between
 * frames. The one rule for both directions: the client's pushes, the server's
 * changes messages and snapshot chunks.
 */
export function fitFrames<T>(
  items: readonly T[],
  encode: (slice: readonly T[], last: boolean) => Uint8Array,
  maxBytes: number,
): Generator<{ readonly items: readonly T[]; readonly frame: Uint8Array }> {
  function* fit(slice: readonly T[], last: boolean): Generator<{ readonly items: readonly T[]; readonly frame: Uint8Array }> {
    const frame = encode(slice, last);
    if (frame.length <= maxBytes || slice.length <= 1) {
      yield { items: slice, frame };
      return;
    }
    const mid = slice.length >> 1;
    yield* fit(slice.slice(0, mid), false);
    yield* fit(slice.slice(mid), last);
  }
  return fit(items, true);
}

function malformed(message: string): never {
  throw new ProtocolError('malformed_frame', message);
}

/** A varint of `frame` at `at.offset` (advanced past it). */
function readVarint(frame: Uint8Array, at: { offset: number }): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 7; i++) {
    if (at.offset >= frame.length) malformed('truncated frame header');
    const byte = frame[at.offset++] as number;
    n += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return n;
    scale *= 128;
  }
  return malformed('varint too long');
}

const NO_ATTACHMENTS = new Float64Array(0);

export function readFrame(frame: Uint8Array): RawFrame {
  if (!(frame instanceof Uint8Array)) malformed('a frame must be binary');
  if (frame.length === 0 || frame[0] !== FRAME_MARKER) malformed('missing frame marker');
  // Most frames (stored states, changes of lww records) have no attachment and a one-byte JSON length
  // prefix or two: read without allocating anything but the JSON.
  const at = { offset: 1 };
  const count = readVarint(frame, at);
  // Cheap bounds first, before reading a length: each attachment needs a length byte and
  // JSON_BYTES_PER_ATTACHMENT bytes of JSON to be referenced.
  if (count > MAX_ATTACHMENTS || count * (JSON_BYTES_PER_ATTACHMENT + 1) > frame.length) malformed('too many attachments');
  const starts = count === 0 ? NO_ATTACHMENTS : new Float64Array(count);
  const lengths = count === 0 ? NO_ATTACHMENTS : new Float64Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const length = readVarint(frame, at);
    lengths[i] = length;
    total += length;
  }
  const jsonLength = readVarint(frame, at);
  let offset = at.offset;
  if (offset + jsonLength + total !== frame.length) malformed('frame lengths do not add up');
  if (count * JSON_BYTES_PER_ATTACHMENT > jsonLength) malformed('more attachments than the message could refer to');
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(frame.subarray(offset, offset + jsonLength)));
  } catch (cause) {
    throw new ProtocolError('malformed_frame', 'frame body is not UTF-8 JSON', '', { cause });
  }
  offset += jsonLength;
  for (let i = 0; i < count; i++) {
    starts[i] = offset;
    offset += lengths[i] as number;
  }
  // Copies into a plain Uint8Array, so a stored update never pins the whole frame
  // buffer. (Buffer#slice, what `ws` delivers, returns a view into a shared pool.)
  const attachment = (index: number): Uint8Array => new Uint8Array(frame.subarray(starts[index], (starts[index] as number) + (lengths[index] as number)));
  return {
    json,
    attachmentCount: count,
    attachment,
    get attachments() {
      return Array.from({ length: count }, (_, i) => attachment(i));
    },
  };
}

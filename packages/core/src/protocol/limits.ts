/**
 * Limits: what a server enforces, what it announces in `welcome`, and what the
 * protocol promises every client whatever a server is configured with.
 *
 * The promise is what makes an honest client live: a replica refuses at write
 * time any change whose push would be larger than MAX_CHANGE_BYTES, and every
 * server accepts frames of at least that size and pushes of at least one change,
 * so every change in an outbox can always be pushed, alone if need be. A server
 * refuses to start with limits below the promise (`checkServerLimits`).
 */
import type { Change } from '../change.js';
import { jsonBytesBound } from '../json.js';
import type { RecordState } from '../record-state.js';
import { change as changeSchema } from './common.js';
import { frameSize } from './frame.js';
import { encodeRecordState } from './stored.js';

/** The limits a server announces in `welcome` (protocol 3) and that its clients fit. */
export interface ServerLimits {
  /** Largest frame the server reads, in bytes (larger: fatal `frame_too_large`). */
  readonly maxFrameBytes: number;
  /** Most changes in one push (more: `batch_too_large`). */
  readonly maxBatch: number;
  /** Messages per second per connection, a token bucket of the same burst (more: `rate_limited`). */
  readonly messagesPerSecond: number;
  /** How far ahead of the server's clock a change may be stamped, ms (more: `clock_drift`). */
  readonly maxClockDrift: number;
}

/**
 * The largest change a replica writes: the bytes of a push frame carrying that
 * change alone. 256 KiB: records are meant to be small (a calendar event with
 * notes is a few KB); large files belong in blob storage, referenced by URL.
 */
export const MAX_CHANGE_BYTES = 256 * 1024;

/**
 * The largest record a replica makes: the bytes of its stored state
 * (`encodeRecordState`). A record grows by patches of other fields, crdt edits
 * and versions; a write that would make it larger on the replica is refused
 * there (`too_large`). Concurrent writes of several replicas can still join
 * into a larger record: the server does not refuse those (an honest write must
 * never be wedged), and sends such a record alone in a frame of its own size.
 */
export const MAX_RECORD_BYTES = 512 * 1024;

/**
 * The most bytes a presence state may take (its JSON, UTF-8; protocol 8): a
 * cursor, a selection, a name and a colour, not a document. The client
 * refuses a larger one (`too_large`), and so does the server.
 */
export const MAX_PRESENCE_BYTES = 4 * 1024;

/** The most presence updates the server takes from one connection per second (protocol 8); the client sends at most 20. */
export const PRESENCE_UPDATES_PER_SECOND = 20;

/** Room a frame keeps around one record or change: envelope, clock table, ids. */
const FRAME_ENVELOPE_BYTES = 64 * 1024;

/** The smallest frame either side must accept: one record of MAX_RECORD_BYTES with its envelope. */
export const MIN_FRAME_BYTES = MAX_RECORD_BYTES + FRAME_ENVELOPE_BYTES;

/** The lowest limits a server may run with: what every client can count on. */
export const PROMISED_LIMITS: ServerLimits = {
  maxFrameBytes: MIN_FRAME_BYTES,
  maxBatch: 1,
  messagesPerSecond: 5,
  maxClockDrift: 60_000,
};

/** The limits of a server that announces none (protocol 2): the defaults servers shipped with. */
export const UNANNOUNCED_LIMITS: ServerLimits = {
  maxFrameBytes: 1024 * 1024,
  maxBatch: 1000,
  messagesPerSecond: 200,
  maxClockDrift: 5 * 60_000,
};

/** The ways `limits` breaks the protocol's promise (empty: none). */
export function checkServerLimits(limits: ServerLimits): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(PROMISED_LIMITS) as Array<keyof ServerLimits>) {
    const value = limits[key];
    if (!Number.isFinite(value) || value < PROMISED_LIMITS[key]) {
      problems.push(`${key} is ${value}; the protocol promises every client at least ${PROMISED_LIMITS[key]}`);
    }
  }
  return problems;
}

/** Bytes of UTF-8 that `text` encodes to. */
function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // A pair: 4 bytes for its 2 units (JSON.stringify escapes lone surrogates to ASCII).
      n += 2;
      i++;
    }
    else n += 2;
  }
  return n;
}

/**
 * The exact bytes of a push frame carrying `change` alone (the frame layout of
 * frame.ts around `{"changes":[change],"space":…,"type":"push"}`), without
 * building the frame. Compared with MAX_CHANGE_BYTES at write time.
 */
export function changeBytes(change: Change): number {
  const attachments: Uint8Array[] = [];
  const json = utf8Length(JSON.stringify(changeSchema.write(change, { attachments })));
  // {"changes":[ ... ],"space":<space>,"type":"push"}: 37 bytes around the change and the quoted space
  // (printable ASCII, where JSON escapes `"` and `\`).
  return frameSize(json + 37 + JSON.stringify(change.space).length, attachments);
}

/** Bytes a change's header can take at most, escapes included: ids, names, the HLC, the JSON around them. */
const HEADER_BOUND = 10_000;

/**
 * False when `change` is certainly within MAX_CHANGE_BYTES, by a cheap bound
 * (jsonBytesBound of its payload, a walk that builds no string, plus the
 * largest header); true when it may not be, and changeBytes must
 * tell. Most writes are far below the limit and skip the exact measure.
 */
export function mayExceedChangeLimit(change: Change): boolean {
  let payload: number;
  switch (change.op) {
    case 'put':
      payload = jsonBytesBound(change.fields);
      break;
    case 'patch':
      payload = jsonBytesBound(change.fields) + jsonBytesBound(change.unset);
      break;
    case 'delete':
      payload = 0;
      break;
    case 'version':
      // A context entry: a replica id of at most 64 ASCII characters and a seq, in brackets.
      payload = jsonBytesBound(change.value) + change.context.size * 300;
      break;
    case 'crdt':
      return change.update.length + HEADER_BOUND > MAX_CHANGE_BYTES;
  }
  return payload + HEADER_BOUND > MAX_CHANGE_BYTES;
}

/** The exact bytes of a record's stored state (what MAX_RECORD_BYTES bounds). */
export function recordBytes(state: RecordState): number {
  return encodeRecordState(state).length;
}

/**
 * False when a record's state is certainly within MAX_RECORD_BYTES, by a cheap
 * bound (jsonBytesBound of its values, a walk that builds no string,
 * generous room for every stamp, name and context); true when it may not be,
 * and recordBytes must tell.
 */
export function mayExceedRecordLimit(state: RecordState): boolean {
  let bound = 1_000;
  const { lww, merge, crdt } = state;
  if (lww) {
    if (lww.stamped) bound += jsonBytesBound(lww.stamped);
    for (const [name, field] of lww.fields) bound += name.length * 6 + jsonBytesBound(field.value) + 200;
  }
  if (merge) {
    bound += merge.seen.size * 100;
    for (const version of merge.siblings) bound += jsonBytesBound(version.value) + version.context.size * 100 + 300;
  }
  if (crdt) for (const [name, field] of crdt) bound += field.update.length + name.length * 3 + 200;
  return bound > MAX_RECORD_BYTES;
}

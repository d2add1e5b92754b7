/**
 * Encodings for storing changes and record states (server log, snapshots): the
 * same frame layout and schemas as the wire, so there is one codec to trust.
 */
import type { Change } from '../change.js';
import { ProtocolError } from '../errors.js';
import type { RecordState } from '../record-state.js';
import { change, recordState } from './common.js';
import { readFrame, writeFrame } from './frame.js';
import type { Schema } from './schema.js';

function encodeWith<T>(schema: Schema<T>, value: T): Uint8Array {
  const attachments: Uint8Array[] = [];
  return writeFrame(schema.write(value, { attachments }), attachments);
}

function decodeWith<T>(schema: Schema<T>, bytes: Uint8Array): T {
  try {
    const raw = readFrame(bytes);
    return schema.read(raw.json, raw, '$');
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError('invalid_message', `could not decode stored value: ${String(error)}`, '', { cause: error });
  }
}

export const encodeChange = (value: Change): Uint8Array => encodeWith(change, value);
export const decodeChange = (bytes: Uint8Array): Change => decodeWith(change, bytes);
export const encodeRecordState = (value: RecordState): Uint8Array => encodeWith(recordState, value);
export const decodeRecordState = (bytes: Uint8Array): RecordState => decodeWith(recordState, bytes);

/**
 * Encodings for storing changes and record states (server log, snapshots): the
 * same frame layout and schemas as the wire, so there is one codec to trust.
 */
import type { Change } from '../change.js';
import type { RecordState } from '../record-state.js';
import { decodeWith, encodeWith } from './codec.js';
import { change } from './common.js';
import { recordState } from './state.js';

export const encodeChange = (value: Change): Uint8Array => encodeWith(change, value);
export const decodeChange = (bytes: Uint8Array): Change => decodeWith(change, bytes);
export const encodeRecordState = (value: RecordState): Uint8Array => encodeWith(recordState, value);
export const decodeRecordState = (bytes: Uint8Array): RecordState => decodeWith(recordState, bytes);

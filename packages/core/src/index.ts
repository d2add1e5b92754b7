/**
 * `@syncline/core`: the parts of Syncline with no I/O that apps, adapter authors
 * and other implementations of the protocol use: ids, JSON values, hybrid
 * logical clocks, changes, merge versions, the wire protocol's messages, codec
 * and limits, and the error codes.
 *
 * Every name here is exported by name, so this file is the package's API. What
 * the Syncline packages share beyond it (record states, the frame layer) is in
 * `@syncline/core/internal`, which carries no compatibility promise.
 *
 * @packageDocumentation
 * @module @syncline/core
 */
export { ERROR_CODES, isErrorCode, SynclineError, ProtocolError, type ErrorCode } from './errors.js';
export {
  MAX_NAME_LENGTH,
  MAX_RECORD_ID_LENGTH,
  isName,
  isRecordId,
  isReplicaId,
  isSpaceId,
  replicaId,
  spaceId,
  type ReplicaId,
  type SpaceId,
} from './ids.js';
export { isFields, isJson, type Fields, type Json } from './json.js';
export {
  DEFAULT_MAX_CLOCK_DRIFT,
  Hlc,
  compareHlc,
  formatTimestamp,
  isHlcString,
  parseTimestamp,
  type HlcOptions,
  type HlcString,
  type Timestamp,
} from './hlc.js';
export * as vv from './version-vector.js';
export { SeqSet, type Ordering, type SeqRange, type VersionVector } from './version-vector.js';
export type { Change, ChangeHeader, ChangeOp, CrdtOp, CrdtType, DeleteOp, OpKind, PatchOp, PutOp, VersionOp } from './change.js';
export { latestWins, type MergeState, type Resolver, type Version } from './merge.js';
export type { LwwField, LwwState } from './lww.js';
export type { CrdtField } from './crdt.js';
export {
  EMPTY_RECORD,
  applyChange,
  applyChanges,
  canonicalState,
  joinRecordStates,
  materialize,
  recordExists,
  type MaterializeOptions,
  type RecordState,
  type RecordView,
} from './record-state.js';
export {
  ACCESS_LEVELS,
  MAX_CHANGES_PER_MESSAGE,
  MAX_RETIRED_PER_MESSAGE,
  MAX_SPACES_PER_HELLO,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  decodeDownstream,
  decodeUpstream,
  encodeDownstream,
  encodeUpstream,
  isSupportedProtocol,
  isDurability,
  type Access,
  type Durability,
  type Ack,
  type Changes,
  type DownstreamMessage,
  type ErrorMessage,
  type Floor,
  type Hello,
  type Horizon,
  type Ping,
  type Pong,
  type PresenceList,
  type PresenceUpdate,
  type Push,
  type Retired,
  type Snapshot,
  type SnapshotRecord,
  type Synced,
  type UpstreamMessage,
  type Welcome,
  type WelcomeLimits,
} from './protocol/index.js';
export { MAX_CHANGE_BYTES, MAX_RECORD_BYTES, MAX_PRESENCE_BYTES, MIN_FRAME_BYTES, PRESENCE_UPDATES_PER_SECOND, PROMISED_LIMITS, type ServerLimits } from './protocol/limits.js';

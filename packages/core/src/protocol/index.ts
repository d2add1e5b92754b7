export * from './codec.js';
export * from './version.js';
export * from './frame.js';
export type { SnapshotRecord } from './state.js';
export { MAX_CHANGES_PER_MESSAGE, MAX_ORIGINS, MAX_RETIRED_PER_MESSAGE, MAX_SPACES_PER_HELLO } from './common.js';
export type { Hello, Push, Floor, Ping, Pong, UpstreamMessage, Durability } from './upstream.js';
export { isDurability, regionsFor } from './upstream.js';
export { ACCESS_LEVELS } from './downstream.js';
export type { Access, Welcome, WelcomeLimits, Ack, Changes, Snapshot, Synced, Horizon, Retired, ErrorMessage, DownstreamMessage } from './downstream.js';
export * from './stored.js';
export { MAX_CHANGE_BYTES, MAX_RECORD_BYTES, MIN_FRAME_BYTES, PROMISED_LIMITS, UNANNOUNCED_LIMITS, checkServerLimits, changeBytes, mayExceedChangeLimit, recordBytes, mayExceedRecordLimit, type ServerLimits } from './limits.js';
export {
  LINK_PROTOCOL_VERSION,
  MIN_LINK_PROTOCOL_VERSION,
  MAX_LINK_SPACES,
  MAX_LINK_FLOORS,
  isRegionName,
  encodeLinkUpstream,
  decodeLinkUpstream,
  encodeLinkDownstream,
  decodeLinkDownstream,
  describeLinkProtocol,
  type Follow,
  type Read,
  type Repair,
  type Linked,
  type Entries,
  type LinkStateMessage,
  type LinkHorizon,
  type LinkFloors,
  type LinkUpstreamMessage,
  type LinkDownstreamMessage,
} from './link.js';

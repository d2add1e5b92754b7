export * from './codec.js';
export * from './version.js';
export * from './frame.js';
export type { SnapshotRecord } from './state.js';
export { MAX_CHANGES_PER_MESSAGE, MAX_ORIGINS, MAX_RETIRED_PER_MESSAGE, MAX_SPACES_PER_HELLO } from './common.js';
export type { Hello, Push, Floor, PresenceUpdate, Ping, Pong, UpstreamMessage, Durability } from './upstream.js';
export { isDurability, regionsFor } from './upstream.js';
export { ACCESS_LEVELS, MAX_PRESENCE_PEERS } from './downstream.js';
export type { Access, Welcome, WelcomeLimits, Ack, Changes, Snapshot, Synced, Horizon, Retired, PresenceList, ErrorMessage, DownstreamMessage } from './downstream.js';
export * from './stored.js';
export { MAX_CHANGE_BYTES, MAX_RECORD_BYTES, MAX_PRESENCE_BYTES, PRESENCE_UPDATES_PER_SECOND, MIN_FRAME_BYTES, PROMISED_LIMITS, UNANNOUNCED_LIMITS, checkServerLimits, changeBytes, mayExceedChangeLimit, recordBytes, mayExceedRecordLimit, type ServerLimits } from './limits.js';
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

export * from './codec.js';
export * from './version.js';
export * from './frame.js';
export type { SnapshotRecord } from './state.js';
export { MAX_CHANGES_PER_MESSAGE, MAX_SPACES_PER_HELLO } from './common.js';
export type { Hello, Push, Ping, Pong, UpstreamMessage } from './upstream.js';
export { ACCESS_LEVELS } from './downstream.js';
export type { Access, Welcome, Ack, Changes, Snapshot, Synced, ErrorMessage, DownstreamMessage } from './downstream.js';
export * from './stored.js';

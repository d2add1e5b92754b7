/**
 * `@syncline/server`: the sync server (createSyncServer, and `syncline-server` on the command line), its storage adapters (SQLite, PostgreSQL), auth and limits.
 *
 * @packageDocumentation
 * @module @syncline/server
 */
export { createSyncServer, type SyncServer, type ConnectionEvents, type LinkState } from './server.js';
export type { PeerSocket } from './links/link.js';
export type { Connection } from './session.js';
export { DEFAULT_LIMITS, type Limits, type SyncServerOptions, type CompactionOptions, type GcOptions } from './options.js';
export { DEFAULT_GC_INTERVAL_MS, DEFAULT_RETIRE_AFTER_MS, type GcResult } from './gc.js';
export { jwtAuth, openAccess, grantFromClaim, AuthError, type Authenticate, type AuthRequest, type Grant, type JwtOptions } from './auth.js';
export { sqliteStorage, type SqliteOptions } from './storage/sqlite-storage.js';
export { postgresStorage, type PostgresOptions, type PostgresStorage } from './storage/postgres-storage.js';
export type { Inspection, SpaceInspection, ConnectionInspection } from './inspect.js';
export { IDEMPOTENCY_TTL_MS } from './storage/types.js';
export type { ServerStorage, AppendRequest, AppendResult, IdempotencyKey, LoggedChange, MergeFinal, ReadLogFilter, Stability, StorageStats, TrimMark, TrimResult, RetiredPage, WriterInfo } from './storage/types.js';
export { QuotaError, type SpaceQuotas } from './storage/quota.js';

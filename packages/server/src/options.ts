import { checkServerLimits, DEFAULT_MAX_CLOCK_DRIFT, SynclineError, type ServerLimits } from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Authenticate, JwtOptions } from './auth.js';
import type { ServerStorage } from './storage/types.js';

export interface Limits {
  /** Largest frame accepted, in bytes. Default 1 MiB. */
  readonly maxFrameBytes: number;
  /** Most changes in one push. Default 1,000. */
  readonly maxBatch: number;
  /** Bytes queued to one socket before it is paused (served from the log when it drains). Default 4 MiB. */
  readonly maxBufferedBytes: number;
  /** How long a paused (slow) connection may stay paused before it is dropped. Default 30 s. */
  readonly slowConsumerTimeoutMs: number;
  /** Messages per second per connection (token bucket, burst of the same size). Default 200. */
  readonly messagesPerSecond: number;
  /** Authenticated sessions. Default 10,000. Connections still waiting to authenticate count in the next three. */
  readonly maxConnections: number;
  /** Connections that have not yet authenticated (no hello, or one being checked), in all. Default 1,000. */
  readonly maxPendingConnections: number;
  /** Connections not yet authenticated from one address. Default 50. */
  readonly maxPendingPerAddress: number;
  /** New connections a second from one address (a bucket of one second's worth). Default 50. */
  readonly connectionsPerSecondPerAddress: number;
  /** Ping interval; a socket that misses two pongs is closed. Default 30 s. */
  readonly pingIntervalMs: number;
  /** A connection that sends no hello within this time is closed. Default 5 s. */
  readonly helloTimeoutMs: number;
  /** Bytes of one space's records (stored states; the log is bounded by compaction instead). Default 1 GiB. */
  readonly maxSpaceBytes: number;
  /** Records that exist in one space (deleted ones do not count). Default 1,000,000. */
  readonly maxSpaceRecords: number;
  /** Changes per relay or catch-up message. Default 500. */
  readonly relayBatch: number;
  /** Records per snapshot chunk. Default 2,000. */
  readonly snapshotChunk: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 1024 * 1024,
  maxBatch: 1000,
  maxBufferedBytes: 4 * 1024 * 1024,
  slowConsumerTimeoutMs: 30_000,
  messagesPerSecond: 200,
  maxConnections: 10_000,
  maxPendingConnections: 1_000,
  maxPendingPerAddress: 50,
  connectionsPerSecondPerAddress: 50,
  pingIntervalMs: 30_000,
  helloTimeoutMs: 5_000,
  maxSpaceBytes: 1024 ** 3,
  maxSpaceRecords: 1_000_000,
  relayBatch: 500,
  snapshotChunk: 2000,
};

/**
 * The limits a server announces in welcome (what its clients fit), from its
 * options; throws `invalid_limits` when they are below what the protocol
 * promises every client (an honest client could hold a change it can never push).
 */
export function announcedLimits(limits: Partial<Limits> | undefined, maxClockDrift: number | undefined): ServerLimits {
  const merged = { ...DEFAULT_LIMITS, ...limits };
  const announced: ServerLimits = {
    maxFrameBytes: merged.maxFrameBytes,
    maxBatch: merged.maxBatch,
    messagesPerSecond: Math.floor(merged.messagesPerSecond),
    maxClockDrift: maxClockDrift ?? DEFAULT_MAX_CLOCK_DRIFT,
  };
  const problems = checkServerLimits(announced);
  if (problems.length > 0) throw new SynclineError('invalid_limits', `the server's limits are below what the protocol promises every client: ${problems.join('; ')}`);
  return announced;
}

export interface CompactionOptions {
  /** Log entries kept per space; older ones are dropped (their effect lives in the snapshot). */
  readonly keepLast: number;
  /** How often compaction runs. Default 60 s. */
  readonly intervalMs?: number;
}

export interface SyncServerOptions {
  /** Storage adapter; default SQLite at ./data/syncline.db. */
  readonly storage?: ServerStorage;
  /** Port to listen on (0: a random free port). Default 8787. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Who may do what; without it (and without jwt) the server is open and says so. */
  readonly authenticate?: Authenticate;
  /** Built-in JWT auth (see auth.ts and the README's "Auth"): a key, and what a token must carry. */
  readonly jwt?: Omit<JwtOptions, 'now'>;
  readonly limits?: Partial<Limits>;
  /** Log compaction; default keeps every entry. */
  readonly compaction?: CompactionOptions;
  /** Remote HLC timestamps further ahead of the server clock are refused. Default 5 minutes. */
  readonly maxClockDrift?: number;
  /** Physical clock (ms). Default Date.now. */
  readonly now?: () => number;
  /** Folder served at / (the calendar's build). */
  readonly staticDir?: string;
  /**
   * Browser origins allowed to open /sync (e.g. 'https://app.example.com'), or
   * '*'. Requests without an Origin (not from a web page) are always allowed.
   * Default: any origin when authentication is on; only pages of the server's
   * own host when it is off.
   */
  readonly allowedOrigins?: readonly string[] | '*';
  /**
   * Take a connection's address from the first X-Forwarded-For entry (set by
   * your reverse proxy) for the per-address limits. Default false: the
   * socket's address (behind a proxy, every client has the proxy's).
   */
  readonly trustProxy?: boolean;
  /** Content-Security-Policy of static responses. Default: DEFAULT_CSP (the calendar's needs, no framing). */
  readonly contentSecurityPolicy?: string;
  /** pino logger; default JSON to stdout at info (silent when NODE_ENV=test). */
  readonly logger?: Logger;
  /** Server id reported in welcome. Default random. */
  readonly serverId?: string;
}

import { checkServerLimits, DEFAULT_MAX_CLOCK_DRIFT, isRegionName, SynclineError, type ServerLimits } from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Authenticate, JwtOptions } from './auth.js';
import type { ServerStorage } from './storage/types.js';
import type { PeerSocket } from './links/link.js';

/**
 * A server's protective limits (SyncServerOptions.limits). `maxFrameBytes`,
 * `maxBatch` and `messagesPerSecond` are announced to clients in welcome, and
 * createSyncServer refuses (`invalid_limits`) values of them below what the
 * protocol promises every client (PROMISED_LIMITS: 589,824 bytes, 1 change,
 * 5 messages per second).
 */
export interface Limits {
  /** Largest frame accepted, in bytes; a larger one is refused with a fatal `frame_too_large`. Also caps the frames the server sends. Default 1 MiB; at least MIN_FRAME_BYTES (589,824). */
  readonly maxFrameBytes: number;
  /** Most changes in one push (more: `batch_too_large`). Default 1,000; at least 1. */
  readonly maxBatch: number;
  /** Bytes queued to one socket before it is paused (served from the log when it drains). Default 4 MiB. */
  readonly maxBufferedBytes: number;
  /** How long a paused (slow) connection may stay paused before it is dropped. Default 30 s. */
  readonly slowConsumerTimeoutMs: number;
  /** Messages per second per connection (token bucket, burst of the same size; more: `rate_limited`). Default 200; at least 5. */
  readonly messagesPerSecond: number;
  /** Authenticated sessions. Default 10,000. Connections still waiting to authenticate count in the next three. */
  readonly maxConnections: number;
  /** Connections that have not yet authenticated (no hello, or one being checked), in all. Default 1,000. */
  readonly maxPendingConnections: number;
  /** Connections not yet authenticated from one address. Default 50. */
  readonly maxPendingPerAddress: number;
  /** New connections a second from one address (a bucket of one second's worth). Default 50. */
  readonly connectionsPerSecondPerAddress: number;
  /** WebSocket ping interval, ms; a socket that has not answered one ping by the next is terminated. Default 30 s. */
  readonly pingIntervalMs: number;
  /** A connection that sends no hello within this time (ms) is closed with `not_ready`. Default 5 s. */
  readonly helloTimeoutMs: number;
  /** Bytes of one space's records (stored states; the log is bounded by compaction instead); a push past it: `quota_exceeded`. Default 1 GiB. */
  readonly maxSpaceBytes: number;
  /** Records that exist in one space (deleted ones do not count); a push past it: `quota_exceeded`. Default 1,000,000. */
  readonly maxSpaceRecords: number;
  /** Changes per relay or catch-up message. Default 500. */
  readonly relayBatch: number;
  /** Records per snapshot chunk. Default 2,000. */
  readonly snapshotChunk: number;
}

/** Every limit's default (see Limits for each one). */
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

/**
 * Log compaction (SyncServerOptions.compaction). A replica whose position is
 * older than what was dropped is sent a snapshot of the space instead of the log.
 */
export interface CompactionOptions {
  /** Log entries kept per space (required); older ones are dropped (their effect lives in the record states). */
  readonly keepLast: number;
  /** How often compaction runs. Default 60 s. */
  readonly intervalMs?: number;
}

/**
 * Garbage collection at the stability horizon (SyncServerOptions.gc; the
 * server README's "Bounded growth"). Every `intervalMs`, each space's horizon
 * moves up to where every writer that is not retired has passed, deleted
 * records at or below it are forgotten, and writers not seen for
 * `retireAfterMs` are retired.
 */
export interface GcOptions {
  /** How often horizons move and records are collected (ms). Default 60,000; 0 turns collection off. */
  readonly intervalMs?: number;
  /**
   * Retire a replica not seen (no connection, push or floor) for this long (ms), so that it
   * no longer holds horizons back. Default 90 days; 0: never (only `retire()` retires).
   */
  readonly retireAfterMs?: number;
}

/** Options of createSyncServer. Every one is optional. */
export interface SyncServerOptions {
  /** Storage adapter; default SQLite at ./data/syncline.db. */
  readonly storage?: ServerStorage;
  /** Port to listen on (0: a random free port). Default 8787. */
  readonly port?: number;
  /** Address to listen on. Default 127.0.0.1 (this machine only). */
  readonly host?: string;
  /**
   * A second, private listener for operators: with it, `/metrics` is served
   * there (with `/healthz`) and no longer on `port`, which sync clients and
   * browsers reach. 0: a random free port. Default: none (`/metrics` on `port`).
   */
  readonly adminPort?: number;
  /** Address of the admin listener. Default 127.0.0.1. */
  readonly adminHost?: string;
  /**
   * Who may do what; it wins over `jwt`. Without either, every client may read
   * and write every space (openAccess), and the server logs a warning saying so.
   */
  readonly authenticate?: Authenticate;
  /** Built-in JWT auth (jwtAuth; see the README's "Auth"): a key, and what a token must carry. The server's `now` is its clock. */
  readonly jwt?: Omit<JwtOptions, 'now'>;
  /** Limits to change; each one left out keeps its DEFAULT_LIMITS value. */
  readonly limits?: Partial<Limits>;
  /** Log compaction; default keeps every entry. */
  readonly compaction?: CompactionOptions;
  /** Garbage collection at the stability horizon and retirement of replicas long away; on by default (see GcOptions). */
  readonly gc?: GcOptions;
  /**
   * How far ahead of the server clock (ms) a pushed change may be stamped; further is refused
   * with `clock_drift`. Announced in welcome. Default 300,000 (5 minutes); at least 60,000.
   */
  readonly maxClockDrift?: number;
  /** Physical clock (ms since the epoch): welcome's time, clock drift, rate limits, token expiry. Default Date.now. */
  readonly now?: () => number;
  /**
   * Folder served at / (the calendar's build): precompressed `.br` / `.gz`
   * siblings when the browser accepts them, hashed file names cached for good,
   * `index.html` for paths without an extension (README, "Endpoints").
   * Default: none (no static files).
   */
  readonly staticDir?: string;
  /** Serve the static folder's source maps (`.map`); default false (404). */
  readonly staticSourceMaps?: boolean;
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
  /** Server id reported in welcome (1-128 characters). Default: a random UUID. */
  readonly serverId?: string;
  /**
   * This deployment's region name (1-64 letters, digits, '.', '_', '-'): it
   * serves region links (`/link`) to its peers under this name, and follows
   * `peers`. Default: none (no links either way). See the README's "Several regions".
   */
  readonly region?: string;
  /**
   * The other regions this one follows, by URL (`ws://host:port`, with or
   * without `/sync`): every change that entered a peer through its own clients
   * is stored here too. Needs `region`. Default: none.
   */
  readonly peers?: readonly string[];
  /**
   * The peer credential: links to this server must present it, and this
   * server's links to its peers present it. Required for links when the server
   * has client auth (`jwt` or `authenticate`); without client auth and without
   * it, links need no credential (the development default). A client token
   * never opens a link.
   */
  readonly peerSecret?: string;
  /**
   * How links dial a peer: given the peer's `/link` URL, a socket in the
   * browser WebSocket's shape (PeerSocket). Default: a `ws` WebSocket. For
   * links over another transport (the simulation's in-memory network); the
   * peer serves it with `acceptLink`. With it, links start when the server is
   * created (without it, at `listen()`).
   */
  readonly connectPeer?: (url: string) => PeerSocket;
}

/**
 * Checks the region options before anything starts: a valid region name, and
 * peers only with one, each a ws:// or wss:// URL.
 * @throws SynclineError `invalid_region`.
 */
export function checkRegionOptions(options: Pick<SyncServerOptions, 'region' | 'peers' | 'peerSecret'>): void {
  if (options.region !== undefined && !isRegionName(options.region)) {
    throw new SynclineError('invalid_region', `region must be 1-64 letters, digits, '.', '_' or '-'; got ${JSON.stringify(options.region)}`);
  }
  const peers = options.peers ?? [];
  if (peers.length > 0 && options.region === undefined) throw new SynclineError('invalid_region', 'peers need a region name for this server (region / --region NAME)');
  for (const peer of peers) {
    let url: URL | undefined;
    try {
      url = new URL(peer);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'ws:' && url.protocol !== 'wss:')) throw new SynclineError('invalid_region', `a peer must be a ws:// or wss:// URL; got ${JSON.stringify(peer)}`);
  }
  if (options.peerSecret !== undefined && options.peerSecret.length === 0) throw new SynclineError('invalid_region', 'the peer credential is empty');
}

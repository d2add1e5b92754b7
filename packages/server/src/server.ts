/**
 * createSyncServer: HTTP + WebSocket (path /sync) sync server. Stores every
 * change durably before acknowledging it and relays it to every other replica
 * of its space.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeDownstream, type HlcString, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { jwtAuth, openAccess, type Authenticate } from './auth.js';
import { Admission } from './admission.js';
import { Committer } from './committer.js';
import { handleApi, type ApiContext } from './api.js';
import { DEFAULT_CSP, handleHttp, staticFiles } from './http.js';
import { Gc, type GcResult } from './gc.js';
import { ServerWriter } from './writer.js';
import { RemoteRelay } from './remote-relay.js';
import { PresenceRooms } from './presence.js';
import { compactSpaces } from './storage/compact.js';
import { inspectStorage, type Inspection } from './inspect.js';
import { Hub } from './hub.js';
import { createMetrics, type Metrics } from './metrics.js';
import { Link, syncUrl } from './links/link.js';
import { Stability } from './links/stability.js';
import { LinkSession } from './links/link-session.js';
import { announcedLimits, checkRegionOptions, DEFAULT_LIMITS, type Limits, type SyncServerOptions } from './options.js';
import { Session, type Connection } from './session.js';
import { sqliteStorage } from './storage/sqlite-storage.js';
import type { ServerStorage } from './storage/types.js';

/** A sync server made by createSyncServer. Nothing listens until `listen()`. */
export interface SyncServer {
  /**
   * Starts listening on `options.port` and `options.host`; resolves with the
   * bound port. Rejects with the listen error (e.g. EADDRINUSE).
   */
  listen(): Promise<number>;
  /**
   * Stops accepting, sends every session `shutting_down` (fatal), waits for
   * commits in flight, closes the sockets, the HTTP server and the storage. Idempotent.
   */
  close(): Promise<void>;
  /** The bound port; 0 until `listen()` resolves. */
  readonly port: number;
  /** The admin listener's bound port (`adminPort`); 0 until `listen()` resolves, and without one. */
  readonly adminPort: number;
  /** ws://host:port/sync */
  readonly url: string;
  /** The storage adapter in use (closed by `close()`). */
  readonly storage: ServerStorage;
  /** This server's Prometheus metrics (served at /metrics with the process's). */
  readonly metrics: Metrics;
  /** The pino logger in use. */
  readonly logger: Logger;
  /** Open sessions. */
  readonly connections: number;
  /** This server's region, if it has one. */
  readonly region: string | undefined;
  /** The links to `peers`, one per peer URL, in the order given. */
  links(): LinkState[];
  /**
   * What an operator looks at: per space its head, horizons, sizes and
   * writers; the open connections; the links; the retired replicas. Served as
   * JSON at `/inspect` on the admin listener; `syncline-server inspect` prints it.
   */
  inspect(): Promise<Inspection>;
  /** Runs log compaction for every space now; returns entries removed. */
  compact(keepLast?: number): Promise<number>;
  /**
   * Runs garbage collection now (as the `gc` timer does): retires replicas away
   * longer than `gc.retireAfterMs`, moves every space's stability horizon, and
   * forgets deleted records at or below it. See the README's "Bounded growth".
   */
  collect(): Promise<GcResult>;
  /**
   * Retires replicas for good: they stop holding stability horizons back, and
   * their connections and later hellos and pushes are refused with
   * `replica_retired`. Resolves to those newly retired.
   */
  retire(...replicas: ReplicaId[]): Promise<ReplicaId[]>;
  /**
   * Serves a connection from another transport (the simulation's in-memory
   * network, or a WebSocket server of your own). Call the returned handlers
   * for what the transport receives. `address` (the peer's) enables the
   * per-address limits on connections waiting to authenticate.
   */
  accept(connection: Connection, address?: string): ConnectionEvents;
  /**
   * Serves a region link (what arrives at `/link`) from another transport:
   * the counterpart of `accept` for links, with `connectPeer` on the dialing side.
   */
  acceptLink(connection: Connection): ConnectionEvents;
}

/** One region link this server follows (SyncServer.links()). */
export interface LinkState {
  /** The peer's URL as configured. */
  readonly url: string;
  /** The peer's region name, once a connection said it. */
  readonly region: string | undefined;
  /** True while connected and following. */
  readonly up: boolean;
  /** Positions of the peer's logs not yet read, summed over spaces (as of the peer's last report). */
  readonly lag: number;
}

/** What a transport reports to the server about an accepted connection. */
export interface ConnectionEvents {
  /** A frame arrived; `isBinary` false for a text frame (refused). */
  receive(frame: Uint8Array, isBinary?: boolean): void;
  /** A ping was answered. */
  pong(): void;
  /** The connection is gone (with the close frame's code and reason, when the transport has them: logged). */
  closed(code?: number, reason?: string): void;
}

/**
 * Creates a sync server: HTTP on `options.port` with the WebSocket endpoint
 * /sync, /healthz, /metrics and, with `staticDir`, static files. Call
 * `listen()` to start it. Every option has a default (SyncServerOptions).
 *
 * @throws SynclineError with code `invalid_limits` when `options.limits` or
 * `maxClockDrift` are below what the protocol promises every client
 * (PROMISED_LIMITS from `@syncline/core`); without `options.storage`, what
 * sqliteStorage throws for ./data/syncline.db.
 */
export function createSyncServer(options: SyncServerOptions = {}): SyncServer {
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  // Refuses to start below what the protocol promises every client.
  const announced = announcedLimits(options.limits, options.maxClockDrift);
  checkRegionOptions(options);
  const { maxClockDrift } = announced;
  const logger = options.logger ?? pino({ level: process.env['NODE_ENV'] === 'test' ? 'silent' : 'info' });
  const storage = options.storage ?? sqliteStorage({ path: './data/syncline.db' });
  const now = options.now ?? (() => Date.now());
  const metrics = createMetrics(() => storage.stats());
  const hub = new Hub(options.region);
  const stability = new Stability(storage, (error) => logger.error({ err: error }, 'reading follower positions for quorum acks failed'));
  const peerSyncUrls = (options.peers ?? []).map(syncUrl);
  const sessions = new Set<Session>();
  const admission = new Admission(limits, now);
  const presence = new PresenceRooms();
  const remote = new RemoteRelay(storage, hub, limits.relayBatch, limits.maxFrameBytes, (error) => logger.error({ err: error }, 'reading commits of other instances failed'));
  const committer = new Committer(
    storage,
    { maxSpaceBytes: limits.maxSpaceBytes, maxSpaceRecords: limits.maxSpaceRecords },
    (stored) => {
      const bySpace = new Map<SpaceId, Array<(typeof stored)[number]['result']['stored'][number]>>();
      for (const { request, result } of stored) {
        let list = bySpace.get(request.space);
        if (!list) bySpace.set(request.space, (list = []));
        list.push(...result.stored);
      }
      for (const [space, entries] of bySpace) {
        entries.sort((a, b) => a.pos - b.pos);
        hub.relay(space, entries, limits.relayBatch);
        const last = entries[entries.length - 1];
        if (last) remote.stored(space, last.pos);
      }
    },
    (seconds) => metrics.commitSeconds.observe(seconds),
  );
  // Storage shared with other instances (PostgreSQL) reports heads they committed: this instance reads
  // the new entries once and relays them to its followers from memory (remote-relay.ts).
  const unwatch = storage.watch?.((space, head) => remote.advanced(space, head));

  let authenticate: Authenticate;
  if (options.authenticate) authenticate = options.authenticate;
  else if (options.jwt) authenticate = jwtAuth({ ...options.jwt, now });
  else {
    authenticate = openAccess;
    logger.warn('AUTH IS OFF: every client can read and write every space. Pass authenticate or jwt (--jwt-secret) in production.');
  }

  const serverId = options.serverId ?? randomUUID();
  const linkSessions = new Set<LinkSession>();
  const links: Link[] = (options.peers ?? []).map(
    (url) =>
      new Link({
        url,
        region: options.region as string,
        credential: options.peerSecret,
        storage,
        committer,
        limits,
        maxClockDrift,
        metrics,
        logger,
        now,
        onMerged: (space, head) => hub.resyncBehind(space, head),
        following: (): string[] => links.flatMap((link) => (link.up && link.peer !== undefined ? [link.peer] : [])),
        retire: (replicas) => gc.retire(replicas, 'peer'),
        ...(options.connectPeer ? { connect: options.connectPeer } : {}),
      }),
  );
  /** This region and each peer, sorted (undefined while a peer's name is not known): what link protocol 5 calls members. */
  const members = (): string[] | undefined => {
    if (options.region === undefined) return undefined;
    const names = links.map((link) => link.peer);
    return names.every((name) => name !== undefined) ? [...new Set([options.region, ...(names as string[])])].sort() : undefined;
  };
  /**
   * The lowest refusal level of the peers for `space`, as this region has read
   * their logs (Link.level), when every peer told one and counts the same
   * members as this region; false otherwise (the collection horizon stays).
   */
  const peerLevel = (space: SpaceId): HlcString | false => {
    const own = members()?.join(' ');
    if (own === undefined) return false;
    let lowest: HlcString | undefined;
    for (const link of links) {
      const level = link.level(space);
      if (level === undefined || [...level.members].sort().join(' ') !== own) return false;
      if (lowest === undefined || level.hlc < lowest) lowest = level.hlc;
    }
    return lowest ?? false;
  };
  let closing = false;
  let closed: Promise<void> | undefined;
  let port = 0;
  // Links start when the server listens; with connectPeer (another transport) the server may never listen, so at once.
  if (options.connectPeer) for (const link of links) link.start();

  const serveStatic =
    options.staticDir === undefined ? undefined : staticFiles(options.staticDir, { contentSecurityPolicy: options.contentSecurityPolicy ?? DEFAULT_CSP, sourceMaps: options.staticSourceMaps ?? false });
  let adminPort = 0;
  const linkStates = (): LinkState[] => links.map((link, i) => ({ url: (options.peers ?? [])[i] as string, region: link.peer, up: link.up, lag: link.lag }));
  const inspect = async (): Promise<Inspection> => ({
    region: options.region,
    connections: [...sessions].map((s) => s.inspection()),
    links: linkStates(),
    ...(await inspectStorage(storage, { maxBytes: limits.maxSpaceBytes, maxRecords: limits.maxSpaceRecords })),
  });
  /** Answers a request with `handle`; a fault of the server is logged and answered 500. */
  const answer = (handle: Promise<void>, res: ServerResponse, what: string): void => {
    handle.catch((error: unknown) => {
      logger.error({ err: error }, `${what} error`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
  /** The admin listener (options.adminPort): /metrics, /inspect and /healthz only. */
  const adminContext = { registry: metrics.registry, metricsText: metrics.text, static: undefined, healthy: () => !closing, metrics: true, inspect };
  const admin: Server | undefined = options.adminPort === undefined ? undefined : createServer((req, res) => answer(handleHttp(adminContext, req, res), res, 'admin http'));
  const closeListeners = new Set<() => void>();
  const writer = new ServerWriter({ storage, committer, now });
  const api: ApiContext = {
    writer,
    maxBodyBytes: limits.maxFrameBytes,
    maxBatch: limits.maxBatch,
    region: options.region,
    storage,
    hub,
    authenticate,
    logger,
    closing: () => closing,
    onClose: (listener) => {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
  };
  const httpContext = { registry: metrics.registry, metricsText: metrics.text, static: serveStatic, healthy: () => !closing, metrics: options.adminPort === undefined };
  const http: Server = createServer((req, res) =>
    req.url?.startsWith('/api/') ? answer(handleApi(api, req, res), res, 'api') : answer(handleHttp(httpContext, req, res), res, 'http'),
  );
  // ws enforces a hard cap well above the limit; frames between the two get a coded error first.
  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxFrameBytes * 4 });

  const originAllowed = originPolicy(options.allowedOrigins, options.authenticate === undefined && options.jwt === undefined);
  http.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if ((path !== '/sync' && path !== '/link') || closing) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    if (!originAllowed(req.headers.origin, req.headers.host)) {
      // A web page of another site: refused before any socket or session exists.
      metrics.errors.inc({ code: 'forbidden' });
      logger.debug({ origin: req.headers.origin }, 'upgrade refused: origin not allowed');
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\norigin not allowed');
      return;
    }
    const forwarded = options.trustProxy ? req.headers['x-forwarded-for'] : undefined;
    const address = (typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim() : undefined) || req.socket.remoteAddress;
    wss.handleUpgrade(req, socket, head, (ws) => {
      const events = path === '/link' ? acceptLink(wsConnection(ws)) : accept(wsConnection(ws), address);
      ws.on('message', (data, isBinary) => events.receive(toBytes(data), isBinary));
      ws.on('pong', () => events.pong());
      ws.on('close', (code, reason) => events.closed(code, reason.toString('utf8')));
      ws.on('error', (error) => logger.debug({ err: error }, 'socket error'));
    });
  });

  function accept(connection: Connection, address?: string): ConnectionEvents {
    const refusal = closing ? { message: 'the server is shutting down; reconnect later', retryAfter: 1_000 } : admission.admit(address);
    if (refusal) {
      const code = closing ? 'shutting_down' : 'too_many_connections';
      metrics.errors.inc({ code });
      connection.send(encodeDownstream({ type: 'error', code, message: refusal.message, fatal: true, retryAfter: refusal.retryAfter }));
      connection.close(1013, code);
      return { receive: () => undefined, pong: () => undefined, closed: () => undefined };
    }
    const session = new Session(connection, {
      serverId,
      address,
      region: options.region,
      peers: peerSyncUrls,
      stability,
      storage,
      hub,
      presence,
      committer,
      authenticate,
      limits,
      metrics,
      logger,
      now,
      maxClockDrift,
      announced,
      onAuthenticated: () => admission.authenticate(address),
      ...(links.length > 0 ? { retireRefused: async (replica: ReplicaId) => void (await gc.retire([replica], 'below_horizon')) } : {}),
      onClose: (s) => {
        sessions.delete(s);
        admission.closed(address, s.authenticated);
        metrics.connections.set(sessions.size);
      },
    });
    sessions.add(session);
    metrics.connections.set(sessions.size);
    return { receive: (frame, isBinary = true) => session.receive(frame, isBinary), pong: () => session.pong(), closed: (code, reason) => session.closed(code, reason) };
  }

  /** A region following this one (links/link-session.ts). */
  function acceptLink(connection: Connection): ConnectionEvents {
    const session = new LinkSession(connection, {
      region: options.region,
      peerSecret: options.peerSecret,
      open: options.authenticate === undefined && options.jwt === undefined,
      storage,
      hub,
      limits,
      metrics,
      logger,
      now,
      members,
      onStored: () => stability.noted(),
      onClose: (s) => {
        linkSessions.delete(s);
        metrics.linksServed.set(linkSessions.size);
      },
    });
    linkSessions.add(session);
    metrics.linksServed.set(linkSessions.size);
    return { receive: (frame, isBinary = true) => session.receive(frame, isBinary), pong: () => session.pong(), closed: () => session.closed() };
  }

  // Liveness: a socket that did not answer the previous ping is gone.
  const pinger = setInterval(() => {
    for (const session of [...sessions, ...linkSessions]) {
      if (!session.alive) {
        session.socket.terminate();
        continue;
      }
      session.alive = false;
      session.socket.ping();
    }
  }, limits.pingIntervalMs);
  pinger.unref();

  const compactAll = async (keepLast: number): Promise<number> => [...(await compactSpaces(storage, keepLast)).values()].reduce((a, b) => a + b, 0);
  const gc = new Gc({
    storage,
    options: options.gc,
    peerLevel: links.length > 0 ? peerLevel : undefined,
    now,
    logger,
    metrics,
    connected: () => new Set([...sessions].map((s) => s.replica).concat(writer.replica ?? [])),
    beforePass: () => writer.noteFloors(),
    announce: (space, stable) => {
      for (const session of sessions) session.announceHorizon(space, stable);
    },
    announceLevel: async (space, stable) => {
      if (linkSessions.size === 0) return;
      const writers = await storage.writers(space);
      for (const session of linkSessions) {
        session.announceLevel(space, stable);
        session.announceFloors(space, writers);
      }
    },
    retired: (replicas) => {
      const gone = new Set(replicas);
      for (const session of sessions) {
        if (gone.has(session.replica)) session.fail('replica_retired', `replica ${session.replica} was retired; start again under a new replica id`, true);
        else session.tellRetired();
      }
    },
  });

  let compactor: NodeJS.Timeout | undefined;
  if (options.compaction) {
    const { keepLast, intervalMs = 60_000 } = options.compaction;
    compactor = setInterval(() => {
      compactAll(keepLast).catch((error: unknown) => logger.error({ err: error }, 'compaction failed'));
    }, intervalMs);
    compactor.unref();
  }

  return {
    get adminPort() {
      return adminPort;
    },
    get port() {
      return port;
    },
    get url() {
      return `ws://${options.host ?? '127.0.0.1'}:${port}/sync`;
    },
    get connections() {
      return sessions.size;
    },
    region: options.region,
    links: linkStates,
    inspect,
    storage,
    metrics,
    logger,
    compact: (keepLast = options.compaction?.keepLast ?? 0) => compactAll(keepLast),
    collect: () => gc.run(),
    retire: (...replicas) => gc.retire(replicas),
    accept,
    acceptLink,
    async listen() {
      // The admin listener first: a server whose operators cannot see it does not take clients.
      if (admin) {
        await new Promise<void>((resolve, reject) => {
          admin.once('error', reject);
          admin.listen(options.adminPort, options.adminHost ?? '127.0.0.1', () => {
            adminPort = (admin.address() as AddressInfo).port;
            logger.info({ adminPort, adminHost: options.adminHost ?? '127.0.0.1' }, 'admin listener (/metrics, /healthz)');
            resolve();
          });
        });
      }
      return new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen(options.port ?? 8787, options.host ?? '127.0.0.1', () => {
          port = (http.address() as AddressInfo).port;
          logger.info({ port, host: options.host ?? '127.0.0.1', region: options.region }, 'syncline server listening');
          for (const link of links) link.start();
          resolve(port);
        });
      });
    },
    close() {
      closed ??= (async () => {
        closing = true;
        for (const listener of closeListeners) listener();
        clearInterval(pinger);
        clearInterval(compactor);
        gc.close();
        const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
        for (const session of sessions) session.fail('shutting_down', 'the server is shutting down; reconnect later', true);
        for (const session of linkSessions) session.fail('shutting_down', 'the server is shutting down', true);
        await Promise.all(links.map((link) => link.close()));
        stability.close();
        await writer.settle();
        await committer.flush();
        // This process's writer writes no more: it holds no horizon back from now on.
        if (writer.replica !== undefined) {
          await gc.retire([writer.replica]).catch((error: unknown) => logger.error({ err: error }, "retiring the server's writer failed"));
        }
        unwatch?.();
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        http.closeAllConnections();
        await httpClosed;
        if (admin?.listening) {
          const adminClosed = new Promise<void>((resolve) => admin.close(() => resolve()));
          admin.closeAllConnections();
          await adminClosed;
        }
        await storage.close();
        logger.info('syncline server stopped');
      })();
      return closed;
    },
  };
}

/**
 * Which browser origins may open a sync connection. A request without an
 * Origin header is not from a web page (Node, native apps) and is always
 * allowed. `allowed`: a list of origins, or '*'. Without it, a server with
 * authentication allows any origin (a page cannot use a token it does not
 * have), and one without allows only pages of its own host: with auth off,
 * any site a developer visits could otherwise read and write every space.
 */
function originPolicy(allowed: readonly string[] | '*' | undefined, open: boolean): (origin: string | undefined, host: string | undefined) => boolean {
  return (origin, host) => {
    if (origin === undefined || allowed === '*') return true;
    if (allowed !== undefined) return allowed.includes(origin);
    if (!open) return true;
    try {
      return new URL(origin).host === host;
    } catch {
      return false;
    }
  };
}

function wsConnection(ws: WebSocket): Connection {
  return {
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    get open() {
      return ws.readyState === ws.OPEN;
    },
    send: (frame) => ws.send(frame, { binary: true }),
    close: (code, reason) => ws.close(code, reason),
    terminate: () => ws.terminate(),
    ping: () => ws.ping(),
  };
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

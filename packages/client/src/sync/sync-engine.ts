/**
 * The sync engine: the protocol's state machine, over one connection at a time,
 * in the tab that holds the connection. Per connection (a session): hello,
 * welcome (the server's limits and clock), catch-up and live changes, pushes of
 * the outbox (pusher.ts), pings. Across connections: when to dial (a backoff
 * from a floor, never while the browser is offline, never after an error that
 * retrying cannot fix), pause and resume, and the status the app sees.
 *
 * Liveness is the rule here: every push ends (acknowledged, refused, or its
 * connection dropped), every error has a defined recovery (recovery.ts), and a
 * connection that stops answering is dropped.
 */
import {
  isDurability,
  isSpaceId,
  decodeDownstream,
  encodeUpstream,
  MAX_CHANGE_BYTES,
  MIN_FRAME_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  spaceId as toSpaceId,
  UNANNOUNCED_LIMITS,
  type DownstreamMessage,
  type ErrorMessage,
  type HlcString,
  type ServerLimits,
  type SpaceId,
  type UpstreamMessage,
} from '@syncline/core/internal';
import type { Durability } from '@syncline/core';
import { SyncError } from '../errors.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { webSocketConnect, type Connect, type Connection, type SocketFactory } from './connection.js';
import { FlushWaiters } from './flushed.js';
import { Pacer } from './pacer.js';
import type { ReplicaPort } from './port.js';
import { Pusher } from './pusher.js';
import { recoveryFor } from './recovery.js';
import { StatusBoard, type SyncErrorInfo, type SyncStatus } from './status.js';
import type { SpaceChange } from '../tabs.js';

export type { RejoinInfo, SyncState, SyncStatus, SyncErrorInfo } from './status.js';

/**
 * How a replica syncs (createReplica's `sync`, or startSync()). An invalid space
 * id in `spaces`, a `maxFrameBytes` under MIN_FRAME_BYTES, or, without
 * `connect`, no URL or no WebSocket implementation throws a TypeError when the
 * engine is made.
 */
export interface SyncOptions {
  /** ws:// or wss:// URL of the sync server's /sync endpoint; several to fail over in turn. */
  readonly url: string | readonly string[];
  /** Spaces to sync. Default: the replica's default space. */
  readonly spaces?: readonly string[];
  /** Auth token, or a function that returns a fresh one for each connection (then an auth refusal is retried). */
  readonly token?: string | (() => string | Promise<string>);
  /** WebSocket implementation; default globalThis.WebSocket (in Node: the `ws` package's WebSocket). */
  readonly WebSocket?: SocketFactory;
  /** A transport of your own instead of WebSocket (one connection attempt per call); `url` is then unused. */
  readonly connect?: Connect;
  /** Most changes per push. Default 500; the server's announced maximum when lower. */
  readonly batchSize?: number;
  /** Reconnect backoff. Default: first wait 250-500 ms, doubling up to 15-30 s. */
  readonly backoff?: BackoffOptions;
  /**
   * Client ping interval, ms. A connection silent for 2-3 intervals, or with a
   * push unanswered for 3, is dropped and dialed again. Default 20 s.
   */
  readonly pingIntervalMs?: number;
  /** Random source for jitter. Default Math.random. */
  readonly random?: () => number;
  /**
   * The largest frame this client reads, bytes; told to the server, which keeps
   * its frames within it (a larger one is refused). Only a record that
   * concurrent writes joined past it could not be sent. Default 16 MiB; at least
   * MIN_FRAME_BYTES (576 KiB).
   */
  readonly maxFrameBytes?: number;
  /**
   * When a change may leave the outbox: 'region' (once the server that
   * received it stored it durably: the default), `quorum:k` (once k regions
   * hold it) or 'all' (every region). A region that acknowledged a change and
   * then lost its disk cannot take it along under `quorum:2`: the change stays
   * on the device until a second region holds it, and is pushed to the region
   * it fails over to. `pending`, `synced` and `flushed()` wait for it. Servers
   * without regions count as one region.
   */
  readonly durability?: Durability;
  /**
   * Dial the peer regions a server names in its welcome (their /sync URLs)
   * after the URLs given, when those go away. Default true; false: only `url`.
   */
  readonly learnPeers?: boolean;
}

const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

const urlsOf = (options: SyncOptions): readonly string[] => (typeof options.url === 'string' ? [options.url] : [...(options.url ?? [])]);
const socketOf = (options: SyncOptions): SocketFactory | undefined => options.WebSocket ?? (globalThis as { WebSocket?: SocketFactory }).WebSocket;

/**
 * Refuses sync options no engine could run with (TypeError): an invalid space
 * id, no URL or no WebSocket class (without `connect`), a `maxFrameBytes` under
 * MIN_FRAME_BYTES. createReplica calls it before it opens anything, so a bad
 * option leaves no storage, lock or channel behind.
 */
export function checkSyncOptions(options: SyncOptions): void {
  for (const space of options.spaces ?? []) {
    if (!isSpaceId(space)) throw new TypeError(`sync.spaces: invalid space id ${JSON.stringify(space)}`);
  }
  if (options.durability !== undefined && !isDurability(options.durability)) {
    throw new TypeError(`sync.durability must be 'region', 'all' or 'quorum:k' with k from 1 to 64; got ${JSON.stringify(options.durability)}`);
  }
  if (options.maxFrameBytes !== undefined && !(options.maxFrameBytes >= MIN_FRAME_BYTES)) {
    throw new TypeError(`sync.maxFrameBytes must be at least ${MIN_FRAME_BYTES} (one record of MAX_RECORD_BYTES in a frame); got ${options.maxFrameBytes}`);
  }
  if (options.connect) return;
  if (urlsOf(options).length === 0) throw new TypeError('sync.url needs at least one URL');
  if (!socketOf(options)) throw new TypeError('no WebSocket implementation: pass sync.WebSocket (the `ws` package in Node)');
}

/** What the replica passes along that is not a sync option. */
export interface EngineSettings {
  /** How far the device clock may be from the server's before the status reports `clockSkew`. */
  readonly maxClockDrift: number;
}

/** Repeated clock_drift refusals that re-stamping did not cure: a fresh welcome re-measures the clock. */
const DRIFT_REFUSALS_BEFORE_RECONNECT = 3;
const DRIFT_RETRY_MS = 10_000;
/** After sequence_gap from a region (recovery 'wait'): the first wait's ceiling, doubling to the last (ms, with jitter). */
const GAP_WAIT_FIRST_MS = 500;
const GAP_WAIT_MAX_MS = 30_000;
/** Ticks of the ping interval a push may go unanswered on a live connection. */
const PUSH_TICKS = 3;
/** Most changes of consecutive `changes` frames applied as one (#drain). */
const MAX_COALESCED = 5_000;

type ChangesMessage = Extract<DownstreamMessage, { type: 'changes' }>;

/**
 * Two consecutive `changes` frames of one space as one: the changes in order,
 * the later position, and per origin region the highest position either covers.
 */
function mergeChanges(a: ChangesMessage, b: ChangesMessage): ChangesMessage {
  const changes = a.changes.length === 0 ? b.changes : b.changes.length === 0 ? a.changes : [...a.changes, ...b.changes];
  if (!a.origins || !b.origins) return { ...b, changes, ...(a.origins || b.origins ? { origins: a.origins ?? b.origins } : {}) };
  const origins = new Map(a.origins.map((o) => [o.region, o.upTo]));
  for (const o of b.origins) origins.set(o.region, Math.max(origins.get(o.region) ?? 0, o.upTo));
  return { ...b, changes, origins: [...origins].map(([region, upTo]) => ({ region, upTo })) };
}

const monotonic = (): number => globalThis.performance.now();
/** The browser says it has no network (navigator.onLine); elsewhere, never. */
const isOffline = (): boolean => (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false;

/** One connection's protocol state. */
class Session {
  ready = false;
  limits: ServerLimits = UNANNOUNCED_LIMITS;
  /** The welcome carried the server's limits (protocol 3). */
  announced = false;
  /** The server's region (protocol 5; absent without regions): the positions it sends are in its log. */
  region: string | undefined;
  readonly pacer = new Pacer(UNANNOUNCED_LIMITS.messagesPerSecond);
  readonly synced = new Set<SpaceId>();
  /** The fatal error the server sent before closing, if any. */
  fatal: SyncErrorInfo | undefined;
  /** A wait the server asked for before the next attempt (ms). */
  retryAfter = 0;
  /** Acknowledged or caught up at least once: the connection was worth something. */
  progressed = false;
  helloAt = 0;
  /** The hello carried a token from the app's token function (a fresh one may fix an auth refusal). */
  freshToken = false;
  silentTicks = 0;
  pushTicks = 0;
  driftRefusals = 0;
  /** sequence_gap refusals from a region since the last ack: the next wait doubles. */
  gapWaits = 0;
  ping: ReturnType<typeof setInterval> | undefined;
  /** Spaces the server granted write access to (welcome): this replica's floor holds their horizons. */
  readonly writable = new Set<SpaceId>();
  /** The latest stability horizon the server announced, per space (re-stamping after `below_horizon`). */
  readonly horizons = new Map<SpaceId, HlcString>();
  /** The latest collection horizon (a `horizon` at a log position: not a refusal level) per space, for joined snapshots. */
  readonly collected = new Map<SpaceId, HlcString>();
  /** The floor last told the server, per space (hello, then `floor` messages). */
  readonly floors = new Map<SpaceId, HlcString>();
  queue: Promise<void> = Promise.resolve();
  /** Frames received and not handled yet, in order (SyncEngine #drain). */
  readonly inbox: Uint8Array[] = [];
  /** A task to drain the inbox is queued or running. */
  draining = false;
  /** A message decoded ahead of its turn (#drain), handled before the inbox. */
  peeked: DownstreamMessage | undefined;
  connection!: Connection;
  pusher!: Pusher;
}

/**
 * A replica's sync engine (`replica.sync`, or startSync()): the connection to a
 * Syncline server, its status, and the controls the app has over it.
 */
export class SyncEngine {
  readonly #port: ReplicaPort;
  readonly #options: SyncOptions;
  readonly #settings: EngineSettings;
  /** The spaces this engine syncs (options.spaces, then addSpace / removeSpace), in the order added. */
  readonly #syncing: Set<SpaceId>;
  /** The largest frame this client reads (told to the server in hello). */
  readonly #maxFrameBytes: number;
  readonly #connect: Connect;
  readonly #backoff: Backoff;
  readonly #board = new StatusBoard();
  readonly #stoppedSpaces = new Map<SpaceId, SyncErrorInfo>();
  readonly #flushed: FlushWaiters;
  readonly #cleanups: Array<() => void> = [];
  #session: Session | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #paused = false;
  #closed = false;
  /** The error that stopped the engine (state `stopped`). */
  #stopped: SyncErrorInfo | undefined;
  #token: string | undefined;
  /** Learned from `frame_too_large` / `batch_too_large`: stay under them even if a welcome announces more. */
  #frameCap = Number.POSITIVE_INFINITY;
  #batchCap = Number.POSITIVE_INFINITY;
  /** The rate a server that announces no limits held this client to (learned from rate_limited). */
  #rateCap = Number.POSITIVE_INFINITY;
  /** Peer regions' /sync URLs that welcomes named (options.learnPeers), dialed after the configured ones. */
  readonly #learned: string[] = [];
  #bootstrapReceived = 0;
  /** A rejoin under a new id is being stored: no dialing meanwhile (a hello would name the retired id). */
  #rejoining = false;
  /** Spaces whose set-aside changes (a rejoin) were looked for since the engine started or last rejoined. */
  readonly #asideChecked = new Set<SpaceId>();
  #refreshQueued: Promise<void> | undefined;
  #refreshTail: Promise<void> = Promise.resolve();

  /** @internal Made by createReplica's `sync` option or startSync(); not part of the published types. */
  constructor(port: ReplicaPort, options: SyncOptions, settings: EngineSettings) {
    this.#port = port;
    this.#options = options;
    this.#settings = settings;
    checkSyncOptions(options);
    this.#syncing = new Set((options.spaces ?? [port.defaultSpace]).map((s) => toSpaceId(s)));
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const configured = urlsOf(options);
    this.#connect =
      options.connect ?? webSocketConnect(() => (options.learnPeers === false ? configured : [...configured, ...this.#learned.filter((u) => !configured.includes(u))]), socketOf(options) as SocketFactory);
    this.#backoff = new Backoff(options.backoff ?? {}, options.random ?? Math.random);
    this.#flushed = new FlushWaiters(port, this.#syncing, this.#stoppedSpaces);
    this.#cleanups.push(
      port.onCommit((event) => {
        if (event.outbox.length === 0) return;
        void this.#refreshPending();
        for (const space of event.outbox) this.#session?.pusher.next(toSpaceId(space));
      }),
      port.onLeaderChange((leader) => (leader ? this.#start() : this.#stop())),
      port.syncsSpaces(() => this.#syncing),
      port.onSharedSpaces((change) => this.#changeSpaces(change)),
    );
    // The browser knows before a ping times out: drop the socket, and dial as soon as it is back.
    const target = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
    const online = () => this.#wake();
    const offline = () => {
      if (!this.#session && this.#timer === undefined) return;
      this.#dropSession();
      clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#running && !this.#paused && !this.#stopped) this.#board.set({ state: 'offline', retryAt: undefined });
    };
    target.addEventListener?.('online', online);
    target.addEventListener?.('offline', offline);
    this.#cleanups.push(
      () => target.removeEventListener?.('online', online),
      () => target.removeEventListener?.('offline', offline),
    );
    if (port.isLeader) this.#start();
    void this.#refreshPending();
  }

  // ---- public --------------------------------------------------------------------

  /** The status now (`onStatus` reports each change). */
  get status(): SyncStatus {
    return this.#board.current;
  }

  /** Calls back on every status change. Returns unsubscribe. */
  onStatus(listener: (status: SyncStatus) => void): () => void {
    return this.#board.onChange(listener);
  }

  /** Resolves when the status satisfies `predicate` (or rejects after `timeoutMs`). */
  waitFor(predicate: (status: SyncStatus) => boolean, timeoutMs = 10_000): Promise<SyncStatus> {
    return this.#board.waitFor(predicate, timeoutMs);
  }

  /**
   * Dials now: skips the backoff wait, and leaves the `stopped` state and the
   * stopped spaces (after the app fixed what stopped them).
   */
  reconnectNow(): void {
    if (this.#closed) return;
    this.#stopped = undefined;
    this.#stoppedSpaces.clear();
    this.#board.set({ stoppedSpaces: undefined });
    this.#backoff.reset();
    if (!this.#session) return this.#wake();
    for (const space of this.#syncing) this.#session.pusher.next(space);
  }

  /** The spaces this engine syncs, in the order they were added. */
  get spaces(): readonly string[] {
    return [...this.#syncing];
  }

  /**
   * Syncs one more space from now on, in this tab and the replica's other tabs:
   * the connection is made again with it (one reconnect), its changes are
   * pulled and writes to it are accepted. Throws a TypeError for an invalid space id.
   */
  addSpace(space: string): void {
    if (!isSpaceId(space)) throw new TypeError(`addSpace: invalid space id ${JSON.stringify(space)}`);
    if (this.#changeSpaces({ add: space })) this.#port.shareSpaces({ add: space });
  }

  /**
   * Stops syncing a space, in this tab and the others: the connection is made
   * again without it and writes to it are refused (`unsynced_space`). Its records
   * stay on the device, and so do its changes not yet acknowledged (they are
   * pushed if the space is added again): call `flushed()` first to have them on
   * the server. `flushed()` calls waiting for it reject with `space_removed`.
   */
  removeSpace(space: string): void {
    if (!isSpaceId(space)) throw new TypeError(`removeSpace: invalid space id ${JSON.stringify(space)}`);
    if (this.#changeSpaces({ remove: space })) this.#port.shareSpaces({ remove: space });
  }

  /** The stopped spaces as the status shows them: undefined when there are none. */
  #stoppedList(): SyncErrorInfo[] | undefined {
    return this.#stoppedSpaces.size > 0 ? [...this.#stoppedSpaces.values()] : undefined;
  }

  /** Applies a change of the synced spaces (from this tab or another); false when it changed nothing. */
  #changeSpaces(change: SpaceChange): boolean {
    if (this.#closed) return false;
    let changed = false;
    if (change.add !== undefined && isSpaceId(change.add) && !this.#syncing.has(change.add)) {
      this.#syncing.add(change.add);
      changed = true;
    }
    if (change.remove !== undefined && isSpaceId(change.remove) && this.#syncing.delete(change.remove)) {
      this.#stoppedSpaces.delete(change.remove);
      this.#board.set({ stoppedSpaces: this.#stoppedList() });
      changed = true;
    }
    if (!changed) return false;
    // The hello names the spaces: a new connection with the new set (the protocol has no message to change them).
    if (this.#session) {
      this.#dropSession();
      this.#backoff.reset();
      this.#wake();
    }
    void this.#refreshPending();
    void this.#flushed.check();
    return true;
  }

  /** A new auth token (a static one was refused, or expired); dials with it now. */
  setToken(token: string): void {
    this.#token = token;
    this.#dropSession();
    this.reconnectNow();
  }

  /** Stops syncing: closes the connection and dials no more until resume(). Writes go on locally. */
  pause(): void {
    if (this.#closed || this.#paused) return;
    this.#paused = true;
    clearTimeout(this.#timer);
    this.#dropSession();
    this.#board.set({ state: 'paused', retryAt: undefined });
  }

  /** Syncs again after pause(), dialing at once. */
  resume(): void {
    if (this.#closed || !this.#paused) return;
    this.#paused = false;
    this.#backoff.reset();
    this.#board.set({ state: 'offline' });
    this.#wake();
  }

  /**
   * Resolves once every change written before the call (in the spaces this
   * engine syncs) is acknowledged by the server: it is stored durably there.
   * Waits across disconnects and pauses; rejects with a SyncError when the
   * engine stops, a space stops, the replica closes, or after `timeoutMs`.
   */
  async flushed(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    if (this.#closed) throw new SyncError('closed', 'the sync engine is closed');
    return this.#flushed.wait(options.timeoutMs, () => `pending ${this.status.pending}, state ${this.status.state}`);
  }

  /** Closes the connection for good. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    this.#stop();
    this.#flushed.fail(new SyncError('closed', 'the sync engine closed before the changes were acknowledged'));
  }

  // ---- when to dial ---------------------------------------------------------------

  #start(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    this.#wake();
  }

  #stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#dropSession();
    if (!this.#paused) this.#board.set({ state: 'offline', retryAt: undefined });
  }

  /** Dials now if the engine may (running, not paused or stopped, the browser online). */
  #wake(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dial();
  }

  #dial(): void {
    if (!this.#running || this.#paused || this.#stopped || this.#rejoining || this.#closed || this.#session || this.#port.closed) return;
    if (isOffline()) {
      // The 'online' event dials; nothing is scheduled meanwhile.
      this.#board.set({ state: 'offline', retryAt: undefined });
      return;
    }
    const session = new Session();
    this.#session = session;
    session.pusher = new Pusher(this.#port, session.pacer, {
      canPush: (space) => this.#session === session && session.ready && !this.#stoppedSpaces.has(space) && this.#syncing.has(space),
      budget: () => ({
        frameBytes: Math.max(MAX_CHANGE_BYTES, Math.min(session.limits.maxFrameBytes, this.#frameCap)),
        changes: Math.max(1, Math.min(this.#options.batchSize ?? 500, session.limits.maxBatch, this.#batchCap)),
      }),
      send: (frame) => session.connection.send(frame),
      stuck: (space, message) => this.#stopSpace({ code: 'frame_too_large', message, space, fatal: false }),
      failed: (_space, error) => this.#sessionFailed(session, error),
    });
    this.#board.set({ state: 'connecting', retryAt: undefined });
    // Liveness from the first moment: a dial that never opens, a hello never answered, a server
    // that stops answering, a push never answered all end the session. Only timers: a device
    // clock that steps does not fake or hide silence.
    let pingId = 0;
    session.ping = setInterval(() => {
      if (session.silentTicks >= 2 || session.pushTicks >= PUSH_TICKS) {
        const why = !session.ready ? 'no welcome from the server in time' : session.silentTicks >= 2 ? 'the server stopped answering' : 'a push went unanswered';
        this.#board.set({ error: { code: 'internal', message: `connection dropped: ${why}`, fatal: true } });
        this.#endSession(session);
        return;
      }
      session.silentTicks++;
      session.pushTicks = session.pusher.pushing > 0 ? session.pushTicks + 1 : 0;
      if (session.helloAt === 0) return;
      session.pacer.spend();
      this.#send(session, { type: 'ping', id: pingId++ });
      // With each ping (when the pace allows), the floors that moved: what lets the stability horizon pass a replica that stays connected without writing.
      if (session.ready) this.#enqueue(session, () => this.#sendFloors(session, [...session.writable]));
    }, this.#options.pingIntervalMs ?? 20_000);
    const closed = () => {
      if (this.#session === session) this.#endSession(session);
    };
    try {
      session.connection = this.#connect({
        open: () => this.#enqueue(session, () => this.#hello(session)),
        frame: (bytes) => {
          session.silentTicks = 0;
          // Frames wait in the inbox; one task drains what has arrived, so changes that arrived together are
          // applied together (#drain).
          session.inbox.push(bytes);
          if (!session.draining) {
            session.draining = true;
            this.#enqueue(session, () => this.#drain(session));
          }
        },
        closed,
      });
    } catch (error) {
      // A transport that cannot even try: a failed attempt, like a refused connection.
      session.connection = { send: () => undefined, close: () => undefined };
      this.#board.set({ error: { code: 'internal', message: `could not connect: ${String(error)}`, fatal: true } });
      queueMicrotask(closed);
    }
  }

  /** Ends the current session (closing its connection): nothing of it runs after this. */
  #dropSession(): void {
    const session = this.#session;
    if (!session) return;
    this.#session = undefined;
    this.#port.presence.detach();
    clearInterval(session.ping);
    session.pusher.close();
    session.connection.close();
    // A snapshot cut off mid-way starts over on the next connection: its progress is no longer true.
    if (this.#board.current.bootstrap) this.#board.set({ bootstrap: undefined });
  }

  /** Ends `session` and decides what comes next from how it ended; `refusal`: the fatal error that ended it (recovery.ts). */
  #endSession(session: Session, refusal?: SyncErrorInfo): void {
    if (refusal) {
      session.fatal = refusal;
      this.#board.set({ error: refusal });
    }
    this.#dropSession();
    if (!this.#running || this.#paused || this.#closed) return;
    const fatal = session.fatal;
    if (fatal) {
      // A token function that gave no token is a missing token: asking it again at once will not help.
      const recovery = recoveryFor(fatal, session.freshToken);
      if (recovery === 'rejoin') return this.#rejoin(fatal, session.region !== undefined ? session.horizons : undefined);
      if (recovery === 'stop') return this.#stopWith(fatal);
      if (recovery === 'shrink-frame') this.#frameCap = Math.max(MAX_CHANGE_BYTES, Math.floor(Math.min(session.limits.maxFrameBytes, this.#frameCap) / 2));
      // A token that expired on a connection that was working: dial again soon, with a fresh token.
      if (session.progressed && fatal.code === 'unauthenticated' && session.freshToken) this.#backoff.reset();
    } else if (session.progressed) {
      this.#backoff.reset();
    }
    this.#idle(Math.max(this.#backoff.next(), session.retryAfter));
  }

  /**
   * The server retired this replica's id: it goes on under a new one (the
   * replica sets its unsynced changes aside and starts each space over), tells
   * the app, and dials again at once; each space's set-aside changes are written
   * again once it has caught up (#reapply). Should storing the rejoin fail, the
   * engine stops with the refusal.
   */
  #rejoin(fatal: SyncErrorInfo, inPlace: ReadonlyMap<SpaceId, HlcString> | undefined): void {
    this.#rejoining = true;
    this.#board.set({ state: 'connecting', retryAt: undefined });
    // With regions, in place: the region that retired the id may lack some of what it wrote (another region
    // stored it, and the link has not brought it yet), so its snapshot is no base to write them again on.
    const rejoining = inPlace ? this.#port.rejoinInPlace([...this.#syncing], inPlace) : this.#port.rejoin([...this.#syncing]);
    rejoining.then(
      (rejoined) => {
        this.#rejoining = false;
        this.#asideChecked.clear();
        this.#flushed.rejoined();
        const reapplied = rejoined.inPlace ? rejoined.aside : 0;
        this.#board.set({ rejoined: { previousId: rejoined.previousId, id: rejoined.id, at: this.#port.now(), aside: rejoined.aside, reapplied, dropped: [] } });
        this.#port.report(
          new SyncError(
            'replica_retired',
            rejoined.inPlace
              ? `${fatal.message}; it goes on as ${rejoined.id}, and its ${rejoined.aside} unsynced changes are written again as new ones of it now`
              : `${fatal.message}; it goes on as ${rejoined.id}, and its ${rejoined.aside} unsynced changes are written again as new ones once each space has caught up`,
          ),
        );
        void this.#refreshPending();
        this.#wake();
      },
      (error: unknown) => {
        this.#rejoining = false;
        this.#port.report(error instanceof Error ? error : new Error(String(error)));
        this.#stopWith(fatal);
      },
    );
  }

  /** State `stopped` with the refusal that retrying cannot fix; flushed() waiters fail with it. */
  #stopWith(fatal: SyncErrorInfo): void {
    this.#stopped = fatal;
    this.#board.set({ state: 'stopped', error: fatal, retryAt: undefined });
    this.#flushed.fail(new SyncError(fatal.code, `sync stopped: ${fatal.message}`));
  }

  /** A space caught up: the changes a rejoin set aside in it, if any, are written again now. */
  async #reapply(space: SpaceId): Promise<void> {
    if (this.#asideChecked.has(space)) return;
    this.#asideChecked.add(space);
    let done;
    try {
      done = await this.#port.reapply(space);
    } catch (error) {
      // Storage failed: the next catch-up of the space tries again (the session drops and dials again).
      this.#asideChecked.delete(space);
      throw error;
    }
    if (!done) return;
    const info = this.#board.current.rejoined;
    if (info) this.#board.set({ rejoined: { ...info, reapplied: info.reapplied + done.reapplied, dropped: [...info.dropped, ...done.dropped] } });
    if (done.dropped.length > 0) {
      const shown = done.dropped.slice(0, 10).join(', ');
      this.#port.report(
        new SyncError(
          'replica_retired',
          `after rejoining under a new id, ${done.dropped.length} unsynced change(s) in space "${space}" were not written again: their records no longer exist, or the schema refuses them now (${shown}${done.dropped.length > 10 ? ', …' : ''})`,
        ),
      );
    }
    void this.#flushed.check();
  }

  /** Offline until the next attempt, in `delay` ms (or when the browser comes online, if it is offline). */
  #idle(delay: number): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (isOffline()) {
      this.#board.set({ state: 'offline', retryAt: undefined });
      return;
    }
    this.#board.set({ state: 'offline', retryAt: this.#port.now() + delay });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#dial();
    }, delay);
  }

  /** Something failed while handling the session's messages (storage): drop it and dial again later. */
  #sessionFailed(session: Session, error: unknown): void {
    if (this.#session !== session || this.#port.closed) return;
    this.#board.set({ error: { code: 'internal', message: `sync failed: ${String(error)}`, fatal: true } });
    this.#endSession(session);
  }

  // ---- one session -------------------------------------------------------------

  /**
   * Messages are handled one at a time, in arrival order. When one fails (a
   * storage error while applying changes), the connection is dropped: applying
   * the messages after it would move the log position past changes that were
   * never applied. The next connection resumes from the last applied position.
   */
  #enqueue(session: Session, task: () => Promise<void>): void {
    session.queue = session.queue.then(() => (this.#session === session ? task() : undefined)).catch((error: unknown) => this.#sessionFailed(session, error));
  }

  #send(session: Session, message: UpstreamMessage): void {
    if (this.#session === session) session.connection.send(encodeUpstream(message));
  }

  async #hello(session: Session): Promise<void> {
    const fromFunction = this.#token === undefined && typeof this.#options.token === 'function';
    const token = this.#token ?? (typeof this.#options.token === 'function' ? await this.#options.token() : this.#options.token);
    session.freshToken = fromFunction && Boolean(token);
    // Another tab may have rejoined under a new id since this one last wrote.
    await this.#port.refreshId();
    const spaces = [];
    for (const space of [...this.#syncing]) {
      // Protocol 5: a server of another region resumes this replica by its origin vector, not by `after`.
      const { upTo, region, origins } = await this.#port.position(space);
      const floor = await this.#port.floor(space);
      if (floor !== undefined) session.floors.set(space, floor);
      spaces.push({
        space,
        after: upTo,
        ...(region !== undefined ? { region } : {}),
        ...(origins ? { origins: Object.entries(origins).map(([r, at]) => ({ region: r, upTo: at })) } : {}),
        ...(floor !== undefined ? { floor } : {}),
      });
    }
    const retired = await this.#port.retiredHeard();
    session.helloAt = monotonic();
    session.pacer.spend();
    this.#send(session, {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replica: this.#port.id,
      ...(token ? { token } : {}),
      spaces,
      // Whole ms: a `now` option may give fractions (performance.timeOrigin + performance.now()), which the wire refuses.
      time: Math.max(0, Math.floor(this.#port.now())),
      maxFrameBytes: this.#maxFrameBytes,
      ...(this.#options.durability !== undefined && this.#options.durability !== 'region' ? { durability: this.#options.durability } : {}),
      ...(retired > 0 ? { retired } : {}),
    });
  }

  /**
   * Handles the frames in the inbox, in order, until it is empty (frames that
   * arrive meanwhile join it). Consecutive `changes` of one space are applied
   * as one (one transaction instead of one per frame: a busy space relays many
   * small frames), up to MAX_COALESCED changes: the same changes in the same
   * order, the position and origins of the last.
   */
  async #drain(session: Session): Promise<void> {
    try {
      while ((session.peeked !== undefined || session.inbox.length > 0) && this.#session === session) {
        const message = session.peeked ?? this.#decode(session, session.inbox.shift() as Uint8Array);
        session.peeked = undefined;
        if (message === undefined) return;
        if (message.type !== 'changes') {
          await this.#dispatch(session, message);
          continue;
        }
        let merged = message;
        while (session.inbox.length > 0 && merged.changes.length < MAX_COALESCED) {
          const next = this.#decode(session, session.inbox.shift() as Uint8Array);
          if (next === undefined) return;
          if (next.type !== 'changes' || next.space !== merged.space) {
            session.peeked = next;
            break;
          }
          merged = mergeChanges(merged, next);
        }
        await this.#dispatch(session, merged);
      }
    } finally {
      session.draining = false;
      // A frame that arrived after the loop looked (or one decoded ahead): drain again.
      if ((session.peeked !== undefined || session.inbox.length > 0) && this.#session === session) {
        session.draining = true;
        this.#enqueue(session, () => this.#drain(session));
      }
    }
  }

  /** A frame's message, or undefined when it cannot be read or trusted (the session then ends). */
  #decode(session: Session, bytes: Uint8Array): DownstreamMessage | undefined {
    try {
      if (bytes.length > this.#maxFrameBytes) throw new ProtocolError('invalid_message', `a frame of ${bytes.length} bytes; this client reads at most ${this.#maxFrameBytes}`);
      const message = decodeDownstream(bytes);
      if ((message.type === 'changes' || message.type === 'snapshot' || message.type === 'synced' || message.type === 'ack') && !this.#syncing.has(message.space)) {
        // A compromised or misrouted server: nothing of a space this replica did not ask for is stored.
        throw new ProtocolError('invalid_message', `the server sent ${message.type} for space "${message.space}", which this replica does not sync; refused`);
      }
      return message;
    } catch (error) {
      // A server this client cannot read (another protocol version?), or one it must not trust: stop
      // rather than read the same frames again.
      session.inbox.length = 0;
      this.#endSession(session, { code: (error as ProtocolError).code ?? 'invalid_message', message: `bad message from server: ${(error as Error).message}`, fatal: true });
      return undefined;
    }
  }

  async #dispatch(session: Session, message: DownstreamMessage): Promise<void> {
    switch (message.type) {
      case 'welcome':
        return this.#welcome(session, message);
      case 'ack':
        session.progressed = true;
        session.pushTicks = 0;
        session.driftRefusals = 0;
        session.gapWaits = 0;
        await session.pusher.ack(message.space, message.upTo, message.stable);
        await this.#refreshPending();
        return this.#flushed.check();
      case 'changes':
        return this.#port.applyRemote(message.changes, { space: message.space, upTo: message.upTo, region: session.region, origins: message.origins });
      case 'snapshot': {
        // The server answers pushes once the snapshot under way has sent its last chunk (PROTOCOL.md, Catch-up):
        // a push is not unanswered while chunks arrive.
        session.pushTicks = 0;
        const last = message.chunk === message.chunks - 1;
        this.#bootstrapReceived = message.chunk === 0 ? message.records.length : this.#bootstrapReceived + message.records.length;
        await this.#port.applySnapshot(message.records, message.space, last ? { upTo: message.position, region: session.region, origins: message.origins } : undefined, {
          index: message.chunk,
          replace: session.region === undefined,
          ...(session.region !== undefined && session.collected.has(message.space) ? { horizon: session.collected.get(message.space) as HlcString } : {}),
        });
        this.#board.set({ bootstrap: last ? undefined : { space: message.space, received: this.#bootstrapReceived, total: message.total } });
        return;
      }
      case 'synced':
        session.synced.add(message.space);
        session.progressed = true;
        await this.#reapply(message.space);
        return this.#refreshPending();
      case 'horizon':
        if (!this.#syncing.has(message.space)) return;
        session.horizons.set(message.space, message.hlc);
        if (message.upTo < Number.MAX_SAFE_INTEGER) session.collected.set(message.space, message.hlc);
        return this.#port.horizon(message.space, message.hlc, message.upTo, session.region);
      case 'presence':
        if (this.#syncing.has(message.space)) this.#port.presence.received(message.space, message.full ?? false, message.peers, this.#port.id);
        return;
      case 'retired':
        // Only from a server without a region (which joins no snapshot): see retired.ts.
        if (session.region !== undefined) return;
        return this.#port.retired(message.replicas, message.upTo);
      case 'error':
        return this.#refused(session, message);
      case 'ping':
        session.pacer.spend();
        return this.#send(session, { type: 'pong', id: message.id });
      case 'pong':
        return;
    }
  }

  async #welcome(session: Session, message: Extract<DownstreamMessage, { type: 'welcome' }>): Promise<void> {
    session.announced = message.limits !== undefined;
    session.region = message.region;
    for (const peer of message.peers ?? []) if (!this.#learned.includes(peer)) this.#learned.push(peer);
    session.limits = message.limits ?? { ...UNANNOUNCED_LIMITS, messagesPerSecond: Math.min(UNANNOUNCED_LIMITS.messagesPerSecond, this.#rateCap) };
    session.pacer.setRate(session.limits.messagesPerSecond);
    // The clock first: changes a wrong clock stamped are re-stamped before anything is pushed.
    const clock = await this.#port.welcomeClock(message.time, monotonic() - session.helloAt, session.limits.maxClockDrift);
    if (this.#session !== session) return;
    session.ready = true;
    // A space this replica did not ask for is ignored (nothing of it is pushed or stored).
    const granted = new Set<SpaceId>(message.spaces.map((s) => s.space).filter((space) => this.#syncing.has(space)));
    for (const s of message.spaces) if (s.access === 'write' && granted.has(s.space)) session.writable.add(s.space);
    // The floors, now that the clock follows the server's (the hello had none before a first welcome).
    this.#enqueue(session, () => this.#sendFloors(session, [...session.writable]));
    for (const [space, info] of this.#stoppedSpaces) if (info.code === 'forbidden' && granted.has(space)) this.#stoppedSpaces.delete(space);
    const skewed = Math.abs(clock.offset) > this.#settings.maxClockDrift;
    this.#board.set({
      state: 'syncing',
      clockOffset: clock.offset,
      clockSkew: skewed
        ? { code: 'clock_skew', offsetMs: clock.offset, message: `the device clock is ${Math.round(Math.abs(clock.offset) / 1000)} s ${clock.offset > 0 ? 'behind' : 'ahead of'} the server's; writes are stamped with the server's time` }
        : undefined,
      stoppedSpaces: this.#stoppedList(),
    });
    for (const space of granted) session.pusher.next(space);
    // Presence (protocol 8): this replica's states go out now, and peers' arrive with each space's subscription.
    if (message.protocol >= 8) this.#port.presence.attach({ send: (space, state) => this.#send(session, { type: 'presence', space, state }) }, granted);
  }

  /** Tells the server this replica's floors in these spaces, those that moved since last told (protocol 6). */
  async #sendFloors(session: Session, spaces: readonly SpaceId[]): Promise<void> {
    const floors = [];
    for (const space of spaces) {
      if (!session.writable.has(space) || !this.#syncing.has(space)) continue;
      const floor = await this.#port.floor(space);
      if (floor === undefined || (session.floors.get(space) ?? '') >= floor) continue;
      session.floors.set(space, floor);
      floors.push({ space, hlc: floor });
    }
    // A floor may wait for the next ping: it never takes a token a push could use, nor goes over the pace.
    if (floors.length === 0 || session.pacer.take() > 0) {
      for (const { space } of floors) session.floors.delete(space);
      return;
    }
    this.#send(session, { type: 'floor', floors });
  }

  /** An error from the server: end what it refused and recover (recovery.ts). */
  async #refused(session: Session, message: ErrorMessage): Promise<void> {
    const info: SyncErrorInfo = { code: message.code, message: message.message, fatal: message.fatal, ...(message.space ? { space: message.space } : {}) };
    session.pushTicks = 0;
    if (message.fatal) {
      session.retryAfter = message.retryAfter ?? 0;
      return this.#endSession(session, info);
    }
    this.#board.set({ error: info });
    const recovery = recoveryFor(info, session.freshToken, session.region !== undefined);
    const space = message.space;
    switch (recovery) {
      case 'resend': {
        // The frame was dropped unread; which one is unknown: every push in flight goes again, later.
        session.pusher.end();
        session.pacer.slowDown();
        if (!session.announced) this.#rateCap = Math.min(this.#rateCap, session.pacer.messagesPerSecond);
        for (const s of this.#syncing) session.pusher.later(s, message.retryAfter ?? 1_000);
        return;
      }
      case 'shrink-batch': {
        if (space === undefined) return;
        const sent = session.pusher.size(space);
        this.#batchCap = Math.max(1, Math.floor((sent > 0 ? sent : Math.min(this.#batchCap, session.limits.maxBatch)) / 2));
        session.pusher.end(space);
        session.pusher.next(space);
        return;
      }
      case 'restamp': {
        if (space === undefined) return;
        session.pusher.end(space);
        const moved = await this.#port.restamp(session.limits.maxClockDrift);
        if (moved > 0) return session.pusher.next(space);
        // Nothing was far enough ahead to re-stamp safely: the server's clock catches up within
        // RESTAMP_MARGIN_MS, or this replica's estimate of it is stale (a fresh welcome re-measures).
        if (++session.driftRefusals >= DRIFT_REFUSALS_BEFORE_RECONNECT) return this.#endSession(session);
        session.pusher.later(space, DRIFT_RETRY_MS);
        return;
      }
      case 'push-again': {
        if (space === undefined) return;
        session.pusher.end(space);
        // The server acknowledged what it holds and announced the horizon before refusing.
        const horizon = session.horizons.get(space);
        if (horizon !== undefined) await this.#port.restampBelow(space, horizon);
        session.pusher.next(space);
        return;
      }
      case 'stop-space':
        if (space !== undefined) this.#stopSpace(info);
        return;
      case 'wait': {
        if (space === undefined) return;
        session.pusher.end(space);
        const ceiling = Math.min(GAP_WAIT_MAX_MS, GAP_WAIT_FIRST_MS * 2 ** session.gapWaits++);
        session.pusher.later(space, ceiling / 2 + Math.random() * (ceiling / 2));
        return;
      }
      default:
        // Fatal recoveries arrive with fatal errors only.
        return;
    }
  }

  #stopSpace(info: SyncErrorInfo): void {
    const space = info.space as SpaceId;
    this.#session?.pusher.end(space);
    this.#stoppedSpaces.set(space, info);
    this.#board.set({ error: info, stoppedSpaces: [...this.#stoppedSpaces.values()] });
    void this.#refreshPending();
    void this.#flushed.check();
  }

  // ---- status --------------------------------------------------------------------

  /**
   * Updates `pending` (and `synced`). Requests made before a refresh starts share
   * it, since it reads the outbox after all of them: a burst of commits costs one
   * read, not one each.
   */
  #refreshPending(): Promise<void> {
    if (this.#refreshQueued) return this.#refreshQueued;
    const next = this.#refreshTail.then(() => {
      this.#refreshQueued = undefined;
      return this.#countPending();
    });
    this.#refreshQueued = next;
    this.#refreshTail = next.catch(() => undefined);
    return next;
  }

  async #countPending(): Promise<void> {
    if (this.#port.closed) return;
    // Only the spaces this engine syncs: changes of a local-only space never leave the outbox.
    const moving = [...this.#syncing].filter((s) => !this.#stoppedSpaces.has(s));
    // (Stopped spaces are rare: their count costs a read only when there are some.)
    const stopped = [...this.#stoppedSpaces.keys()];
    const [pending, stuck] = await Promise.all([this.#port.countOutbox(moving), stopped.length > 0 ? this.#port.countOutbox(stopped) : 0]).catch(() => [this.status.pending, 0]);
    const session = this.#session;
    if (!session?.ready) {
      this.#board.set({ pending: pending + stuck });
      return;
    }
    // Synced means every local change is on the server: changes held by a stopped space are not.
    const caughtUp = moving.every((s) => session.synced.has(s));
    if (caughtUp && pending + stuck === 0) this.#board.set({ state: 'synced', pending: 0, lastSyncedAt: this.#port.now() });
    else this.#board.set({ state: 'syncing', pending: pending + stuck });
  }
}

/**
 * The sync engine: one WebSocket to the sync server, held by the leader tab.
 * Pushes the outbox oldest first (one batch in flight per space; a change leaves
 * the outbox only when acknowledged), applies incoming changes and snapshots
 * through the replica, resumes from the last applied log position, reconnects
 * with backoff and jitter, and at once when the browser comes back online.
 */
import {
  decodeDownstream,
  encodeUpstream,
  PROTOCOL_VERSION,
  ProtocolError,
  spaceId as toSpaceId,
  type DownstreamMessage,
  type ErrorCode,
  type SpaceId,
  type UpstreamMessage,
} from '@syncline/core';
import type { Replica } from '../replica.js';
import { Backoff, type BackoffOptions } from './backoff.js';

/** The part of the WebSocket API the engine uses (browser WebSocket, or `ws` in Node). */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
}
export type SocketFactory = new (url: string) => SocketLike;

export interface SyncOptions {
  /** ws:// or wss:// URL of the sync server's /sync endpoint; several to fail over in turn. */
  readonly url: string | readonly string[];
  /** Spaces to sync. Default: the replica's default space. */
  readonly spaces?: readonly string[];
  /** Auth token, or a function that returns a fresh one for each connection. */
  readonly token?: string | (() => string | Promise<string>);
  /** WebSocket implementation; default globalThis.WebSocket. */
  readonly WebSocket?: SocketFactory;
  /** Changes per push. Default 500. */
  readonly batchSize?: number;
  readonly backoff?: BackoffOptions;
  /** Client ping interval; the connection is dropped after 2.5 intervals of silence. Default 20 s. */
  readonly pingIntervalMs?: number;
  /** Random source for jitter. Default Math.random. */
  readonly random?: () => number;
}

export type SyncState = 'offline' | 'connecting' | 'syncing' | 'synced';

export interface SyncErrorInfo {
  readonly code: ErrorCode;
  readonly message: string;
  readonly space?: SpaceId;
  readonly fatal: boolean;
}

export interface SyncStatus {
  readonly state: SyncState;
  /** Local changes not yet acknowledged by the server. */
  readonly pending: number;
  /** While a snapshot downloads: records received of the total. */
  readonly bootstrap?: { readonly space: SpaceId; readonly received: number; readonly total: number };
  /** Wall time of the last moment everything was synced. */
  readonly lastSyncedAt?: number;
  /** The last refusal from the server (auth, clock skew, protocol mismatch…). */
  readonly error?: SyncErrorInfo;
  /** server clock - local clock, in ms, measured at the handshake. */
  readonly clockOffset?: number;
}

const OPEN = 1;

export class SyncEngine {
  readonly #replica: Replica;
  readonly #options: SyncOptions;
  readonly #urls: readonly string[];
  readonly #spaces: readonly SpaceId[];
  readonly #backoff: Backoff;
  readonly #listeners = new Set<(status: SyncStatus) => void>();
  readonly #inflight = new Set<SpaceId>();
  readonly #synced = new Set<SpaceId>();
  readonly #blocked = new Set<SpaceId>();
  #socket: SocketLike | undefined;
  #urlIndex = 0;
  #status: SyncStatus = { state: 'offline', pending: 0 };
  #queue: Promise<void> = Promise.resolve();
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #lastHeard = 0;
  #running = false;
  #ready = false;
  #bootstrapReceived = 0;
  #refreshQueued: Promise<void> | undefined;
  #refreshTail: Promise<void> = Promise.resolve();
  readonly #cleanups: Array<() => void> = [];

  constructor(replica: Replica, options: SyncOptions) {
    this.#replica = replica;
    this.#options = options;
    this.#urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (this.#urls.length === 0) throw new TypeError('sync.url needs at least one URL');
    this.#spaces = (options.spaces ?? [replica.defaultSpace]).map((s) => toSpaceId(s));
    this.#backoff = new Backoff(options.backoff ?? {}, options.random ?? Math.random);
    this.#cleanups.push(
      replica.onCommit((event) => {
        if (event.outbox.length > 0) {
          void this.#refreshPending();
          for (const space of event.outbox) this.#pushNext(toSpaceId(space));
        }
      }),
      replica.onLeaderChange((leader) => (leader ? this.#start() : this.#stop())),
    );
    const online = () => this.reconnectNow();
    // The browser knows before a ping times out: drop the socket and wait for `online` (or the backoff).
    const offline = () => {
      if (!this.#socket) return;
      this.#dropSocket();
      this.#setStatus({ state: 'offline' });
      this.#scheduleReconnect();
    };
    const target = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
    target.addEventListener?.('online', online);
    target.addEventListener?.('offline', offline);
    this.#cleanups.push(
      () => target.removeEventListener?.('online', online),
      () => target.removeEventListener?.('offline', offline),
    );
    if (replica.isLeader) this.#start();
    void this.#refreshPending();
  }

  get status(): SyncStatus {
    return this.#status;
  }

  /** Calls back on every status change. Returns unsubscribe. */
  onStatus(listener: (status: SyncStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves when the status satisfies `predicate` (or rejects after `timeoutMs`). */
  waitFor(predicate: (status: SyncStatus) => boolean, timeoutMs = 10_000): Promise<SyncStatus> {
    if (predicate(this.#status)) return Promise.resolve(this.#status);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`sync status did not reach the expected state within ${timeoutMs} ms (now ${JSON.stringify(this.#status)})`));
      }, timeoutMs);
      const off = this.onStatus((status) => {
        if (!predicate(status)) return;
        clearTimeout(timer);
        off();
        resolve(status);
      });
    });
  }

  /** Skips the backoff wait (the browser came back online). */
  reconnectNow(): void {
    if (!this.#running || this.#socket) return;
    clearTimeout(this.#reconnectTimer);
    this.#connect();
  }

  /** Closes the connection for good. */
  close(): void {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    this.#stop();
  }

  // ---- connection -------------------------------------------------------------

  #start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#connect();
  }

  #stop(): void {
    this.#running = false;
    clearTimeout(this.#reconnectTimer);
    this.#dropSocket();
    this.#setStatus({ state: 'offline' });
  }

  #connect(): void {
    if (!this.#running || this.#socket || this.#replica.closed) return;
    const Socket = this.#options.WebSocket ?? (globalThis as { WebSocket?: SocketFactory }).WebSocket;
    if (!Socket) throw new TypeError('no WebSocket implementation: pass sync.WebSocket (the `ws` package in Node)');
    this.#setStatus({ state: 'connecting' });
    const url = this.#urls[this.#urlIndex % this.#urls.length] as string;
    let socket: SocketLike;
    try {
      socket = new Socket(url);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.#socket = socket;
    socket.onopen = () => this.#enqueue(socket, () => this.#hello(socket));
    socket.onmessage = (event) => {
      this.#lastHeard = performance.now();
      const data = event.data;
      if (!(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) return;
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.#enqueue(socket, () => this.#handle(socket, bytes));
    };
    socket.onerror = () => undefined; // onclose follows
    socket.onclose = () => {
      if (this.#socket !== socket) return;
      this.#dropSocket();
      this.#urlIndex++; // fail over to the next URL, if there is one
      this.#setStatus({ state: 'offline' });
      this.#scheduleReconnect();
    };
  }

  #scheduleReconnect(): void {
    if (!this.#running) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#connect(), this.#backoff.next());
  }

  #dropSocket(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#ready = false;
    this.#inflight.clear();
    this.#synced.clear();
    this.#blocked.clear();
    clearInterval(this.#pingTimer);
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onopen = null;
      try {
        socket.close(1000);
      } catch {
        // already closed
      }
    }
  }

  #send(socket: SocketLike, message: UpstreamMessage): void {
    if (socket !== this.#socket || socket.readyState !== OPEN) return;
    socket.send(encodeUpstream(message));
  }

  /**
   * Messages are handled one at a time, in arrival order. When one fails (a
   * storage error while applying changes), the connection is dropped: applying
   * the messages after it would move the log position past changes that were
   * never applied. The next connection resumes from the last applied position.
   */
  #enqueue(socket: SocketLike, task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((error: unknown) => {
      if (this.#replica.closed) return;
      this.#fail({ code: 'internal', message: `sync failed: ${String(error)}`, fatal: true });
      if (socket !== this.#socket) return;
      this.#dropSocket();
      this.#setStatus({ state: 'offline' });
      this.#scheduleReconnect();
    });
  }

  async #hello(socket: SocketLike): Promise<void> {
    const token = typeof this.#options.token === 'function' ? await this.#options.token() : this.#options.token;
    const spaces = [];
    for (const space of this.#spaces) spaces.push({ space, after: await this.#replica.position(space) });
    this.#send(socket, { type: 'hello', protocol: PROTOCOL_VERSION, replica: this.#replica.id, ...(token ? { token } : {}), spaces, time: this.#replica.clockNow() });
    const interval = this.#options.pingIntervalMs ?? 20_000;
    this.#lastHeard = performance.now();
    let pingId = 0;
    this.#pingTimer = setInterval(() => {
      if (performance.now() - this.#lastHeard > interval * 2.5) {
        socket.onclose?.({ code: 4000, reason: 'ping timeout' });
        return;
      }
      this.#send(socket, { type: 'ping', id: pingId++ });
    }, interval);
  }

  // ---- messages ---------------------------------------------------------------

  async #handle(socket: SocketLike, bytes: Uint8Array): Promise<void> {
    if (socket !== this.#socket) return;
    let message: DownstreamMessage;
    try {
      message = decodeDownstream(bytes);
    } catch (error) {
      this.#fail({ code: (error as ProtocolError).code ?? 'invalid_message', message: `bad message from server: ${(error as Error).message}`, fatal: true });
      socket.close(1002);
      return;
    }
    switch (message.type) {
      case 'welcome': {
        this.#backoff.reset();
        this.#ready = true;
        const clockOffset = message.time - this.#replica.clockNow();
        // A space refused just before the welcome keeps its error: the app must be able to show it.
        const granted = new Set<SpaceId>(message.spaces.map((s) => s.space));
        const refused = this.#status.error?.space !== undefined && !granted.has(this.#status.error.space) ? this.#status.error : undefined;
        for (const space of this.#spaces) if (!granted.has(space)) this.#blocked.add(space);
        this.#setStatus({ state: 'syncing', clockOffset, error: refused });
        for (const { space } of message.spaces) this.#pushNext(space);
        return;
      }
      case 'ack':
        await this.#replica.storage.transaction('readwrite', (tx) => tx.ackOutbox(message.space, message.upTo));
        this.#inflight.delete(message.space);
        await this.#refreshPending();
        this.#pushNext(message.space);
        return;
      case 'changes':
        await this.#replica.applyRemote(message.changes, { space: message.space, upTo: message.upTo });
        return;
      case 'snapshot': {
        const last = message.chunk === message.chunks - 1;
        this.#bootstrapReceived = message.chunk === 0 ? message.records.length : this.#bootstrapReceived + message.records.length;
        await this.#replica.applySnapshot(message.records, message.space, last ? message.position : undefined);
        this.#setStatus({ bootstrap: last ? undefined : { space: message.space, received: this.#bootstrapReceived, total: message.total } });
        return;
      }
      case 'synced':
        this.#synced.add(message.space);
        await this.#refreshPending();
        return;
      case 'error':
        if (message.space) {
          this.#inflight.delete(message.space);
          this.#blocked.add(message.space);
        }
        this.#fail({ code: message.code, message: message.message, fatal: message.fatal, ...(message.space ? { space: message.space } : {}) });
        return;
      case 'ping':
        this.#send(socket, { type: 'pong', id: message.id });
        return;
      case 'pong':
        return;
    }
  }

  #pushNext(space: SpaceId): void {
    const socket = this.#socket;
    if (!socket || !this.#ready || this.#inflight.has(space) || this.#blocked.has(space) || !this.#spaces.includes(space)) return;
    this.#inflight.add(space);
    this.#replica.storage
      .transaction('readonly', (tx) => tx.readOutbox(space, this.#options.batchSize ?? 500))
      .then((changes) => {
        if (changes.length === 0 || socket !== this.#socket) {
          this.#inflight.delete(space);
          return;
        }
        this.#send(socket, { type: 'push', space, changes });
      })
      .catch((error: unknown) => {
        this.#inflight.delete(space);
        if (!this.#replica.closed) this.#fail({ code: 'internal', message: `could not read the outbox: ${String(error)}`, fatal: false });
      });
  }

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
    if (this.#replica.closed) return;
    // Only the spaces this engine syncs: changes of a local-only space never leave the outbox.
    const pending = await this.#replica.storage
      .transaction('readonly', async (tx) => {
        let n = 0;
        for (const space of this.#spaces) n += await tx.countOutbox(space);
        return n;
      })
      .catch(() => this.#status.pending);
    const allSynced = this.#ready && this.#spaces.every((s) => this.#synced.has(s) || this.#blocked.has(s));
    if (allSynced && pending === 0) this.#setStatus({ state: 'synced', pending, lastSyncedAt: this.#replica.clockNow() });
    else this.#setStatus({ pending, ...(this.#ready ? { state: 'syncing' as const } : {}) });
  }

  #fail(error: SyncErrorInfo): void {
    this.#setStatus({ error });
  }

  #setStatus(patch: Partial<SyncStatus>): void {
    const next = { ...this.#status, ...patch } as SyncStatus;
    this.#status = next;
    for (const listener of this.#listeners) listener(next);
  }
}

/** Starts syncing a replica. The engine follows leadership: only the leader tab connects. */
export function startSync(replica: Replica, options: SyncOptions): SyncEngine {
  return new SyncEngine(replica, options);
}

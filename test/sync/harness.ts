/**
 * Shared setup of the end-to-end suites (test/sync, test/server): real servers
 * on 127.0.0.1 port 0, real `ws` sockets, replicas on memory or fake-indexeddb
 * storage, sockets that record what they receive, raw protocol clients, and
 * waits that end on a condition or a bounded timeout (never a sleep).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server, type Socket } from 'node:net';
// idb (inside the IndexedDB adapter) needs the IDB* classes as globals.
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import {
  canonicalState,
  decodeDownstream,
  decodeUpstream,
  encodeDownstream,
  encodeUpstream,
  formatTimestamp,
  PROTOCOL_VERSION,
  type Change,
  type DownstreamMessage,
  type Fields,
  type ReplicaId,
  type SpaceId,
  type UpstreamMessage,
} from '@syncline/core/internal';
import {
  createReplica,
  indexedDbStorage,
  memoryStorage,
  startSync,
  type Replica,
  type Schema,
  type SocketFactory,
  type StorageFactory,
  type SyncEngine,
  type SyncOptions,
} from '@syncline/client';
import { createSyncServer, sqliteStorage, type ServerStorage, type SyncServer, type SyncServerOptions } from '@syncline/server';
import { storageOf } from '../internals.js';

export const silent = pino({ level: 'silent' });
export const WS = WebSocket as unknown as SocketFactory;

/** Cleanups run in reverse order after each test (register with `cleanup.push`). */
export function cleanupStack(): { push: (...fns: Array<() => unknown>) => void; run: () => Promise<void> } {
  const fns: Array<() => unknown> = [];
  return {
    push: (...more) => fns.push(...more),
    run: async () => {
      for (const fn of fns.splice(0).reverse()) {
        try {
          await fn();
        } catch (error) {
          console.warn('cleanup failed:', error);
        }
      }
    },
  };
}

/** Polls `condition` every 15 ms; rejects with `what` (evaluated then) after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what: string | (() => string) = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}

/** Resolves with the value of `promise`, or rejects after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function tempDir(prefix = 'syncline-e2e-'): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A listening server (SQLite in memory unless `storage` is given), silent logs. */
export async function startServer(options: SyncServerOptions = {}): Promise<SyncServer> {
  const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: silent, ...options });
  await server.listen();
  return server;
}

/** `storage` with some of its methods replaced (a gate, a delay, a tap); every other method is its own. */
export function withOverrides(storage: ServerStorage, overrides: Partial<ServerStorage>): ServerStorage {
  return Object.assign(Object.create(storage) as ServerStorage, overrides);
}

let nameCounter = 0;
/** A name no other test uses (fake-indexeddb and BroadcastChannel are process-wide). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${++nameCounter}`;
}

export function idbStorage(): StorageFactory {
  return indexedDbStorage({ indexedDB: new IDBFactory(), IDBKeyRange });
}

/** A physical clock the test moves by hand (ms), close to real time so no drift check trips. */
export class ManualClock {
  value: number;
  constructor(start = Date.now() - 60_000) {
    this.value = start;
  }
  readonly now = (): number => this.value;
}

export interface ReplicaOpts<S extends Schema> {
  readonly name?: string;
  readonly schema: S;
  readonly storage?: StorageFactory;
  readonly now?: () => number;
}

export async function replica<S extends Schema>(options: ReplicaOpts<S>): Promise<Replica<S>> {
  return createReplica({
    name: options.name ?? uniqueName('r'),
    schema: options.schema,
    storage: options.storage ?? memoryStorage(),
    tabs: false,
    onError: (error) => console.warn('replica error:', error),
    ...(options.now ? { now: options.now } : {}),
  });
}

/** Starts a sync engine with fast reconnects; `WebSocket` defaults to plain `ws`. */
export function sync(r: Replica, url: string | readonly string[], options: Partial<SyncOptions> = {}): SyncEngine {
  return startSync(r as unknown as Replica, { url, WebSocket: WS, backoff: { initialMs: 20, maxMs: 200 }, ...options });
}

export const isSynced = (engine: SyncEngine): boolean => engine.status.state === 'synced' && engine.status.pending === 0;

/** What one recording socket received, decoded. */
export interface Received {
  /** Index of the socket (in `sockets`) it arrived on. */
  readonly socket: number;
  readonly message: DownstreamMessage;
  readonly bytes: number;
  readonly at: number;
}

/**
 * A `ws` WebSocket class that records every frame it receives (`log`) and sends
 * (`sent`), decoded, and every socket it opens, for assertions on the traffic.
 * `onMessage` sees each message as it arrives (before the engine handles it).
 */
export function recordingSocket(onMessage?: (message: DownstreamMessage) => void): {
  factory: SocketFactory;
  log: Received[];
  sent: Array<{ socket: number; message: UpstreamMessage }>;
  sockets: WebSocket[];
  /** Messages of `type` received on sockets opened at or after socket index `fromSocket`. */
  of: <T extends DownstreamMessage['type']>(type: T, fromSocket?: number) => Array<Extract<DownstreamMessage, { type: T }>>;
} {
  const log: Received[] = [];
  const sent: Array<{ socket: number; message: UpstreamMessage }> = [];
  const sockets: WebSocket[] = [];
  class Recording extends WebSocket {
    constructor(url: string) {
      super(url);
      const socket = sockets.push(this) - 1;
      this.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
        const bytes = toBytes(data);
        const message = decodeDownstream(bytes);
        log.push({ socket, message, bytes: bytes.length, at: Date.now() });
        onMessage?.(message);
      });
    }
    override send(data: Uint8Array, ...rest: unknown[]): void {
      sent.push({ socket: sockets.indexOf(this), message: decodeUpstream(data) });
      (super.send as (data: Uint8Array, ...rest: unknown[]) => void)(data, ...rest);
    }
  }
  return {
    factory: Recording as unknown as SocketFactory,
    log,
    sent,
    sockets,
    of: (type, fromSocket = 0) => log.filter((r) => r.socket >= fromSocket).map((r) => r.message).filter((m): m is Extract<DownstreamMessage, { type: typeof type }> => m.type === type),
  };
}

/** A Prometheus counter's value (unlabelled, or summed over every label). */
export async function counter(metric: { get(): Promise<{ values: ReadonlyArray<{ value: number; labels: Record<string, unknown> }> }> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((sum, v) => sum + v.value, 0);
}

export function toBytes(data: Buffer | ArrayBuffer | Buffer[]): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A protocol client by hand: sends exactly the frames a test builds, records every message. */
export class RawClient {
  readonly messages: DownstreamMessage[] = [];
  /** The frame size of each of `messages`, bytes. */
  readonly sizes: number[] = [];
  /** Frames that did not decode (a server must never send one). */
  readonly undecodable: Uint8Array[] = [];
  closed: { code: number; reason: string } | undefined;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const bytes = toBytes(data);
      try {
        this.messages.push(decodeDownstream(bytes));
        this.sizes.push(bytes.length);
      } catch {
        this.undecodable.push(bytes);
      }
    });
    this.ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static async open(url: string): Promise<RawClient> {
    const client = new RawClient(url);
    await within(client.opened, 5_000, 'the socket to open');
    return client;
  }

  send(message: UpstreamMessage): void {
    this.ws.send(encodeUpstream(message));
  }

  sendBytes(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** Sends hello and waits for welcome. */
  async hello(replica: ReplicaId, spaces: ReadonlyArray<{ space: string; after?: number }>, token?: string): Promise<void> {
    this.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replica,
      ...(token ? { token } : {}),
      spaces: spaces.map((s) => ({ space: s.space as SpaceId, after: s.after ?? 0 })),
      time: Date.now(),
    });
    await this.next('welcome');
  }

  of<T extends DownstreamMessage['type']>(type: T): Array<Extract<DownstreamMessage, { type: T }>> {
    return this.messages.filter((m): m is Extract<DownstreamMessage, { type: T }> => m.type === type);
  }

  /** Waits for a message of `type` (matching `match`) received at or after index `since`. */
  async next<T extends DownstreamMessage['type']>(type: T, match: (m: Extract<DownstreamMessage, { type: T }>) => boolean = () => true, since = 0, timeoutMs = 5_000): Promise<Extract<DownstreamMessage, { type: T }>> {
    let found: Extract<DownstreamMessage, { type: T }> | undefined;
    await waitUntil(
      () => {
        found = this.messages.slice(since).find((m): m is Extract<DownstreamMessage, { type: T }> => m.type === type && match(m as Extract<DownstreamMessage, { type: T }>));
        return found !== undefined;
      },
      timeoutMs,
      () => `a "${type}" message (got ${this.messages.map((m) => (m.type === 'error' ? `error:${m.code}` : m.type)).join(', ') || 'nothing'})`,
    );
    return found as Extract<DownstreamMessage, { type: T }>;
  }

  async error(code: string, since = 0, timeoutMs = 5_000): Promise<Extract<DownstreamMessage, { type: 'error' }>> {
    return this.next('error', (m) => m.code === code, since, timeoutMs);
  }

  async waitClosed(timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
    await waitUntil(() => this.closed !== undefined, timeoutMs, 'the socket to close');
    return this.closed as { code: number; reason: string };
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A well-formed lww `put` change written by `replica` (its HLC wall is `wall`). */
export function putChange(replica: ReplicaId, space: string, seq: number, fields: Fields, options: { id?: string; wall?: number; collection?: string } = {}): Change {
  return {
    space: space as SpaceId,
    collection: options.collection ?? 'events',
    id: options.id ?? `${replica}-${seq}`,
    replica,
    seq,
    hlc: formatTimestamp({ wall: options.wall ?? Date.now(), counter: seq % 0xffff, replica }),
    op: 'put',
    fields,
  } as Change;
}

/** Every visible record of the given collections, comparable across replicas. */
export async function visibleState(r: Replica, collections: readonly string[], space?: string): Promise<string[]> {
  const out: string[] = [];
  for (const collection of collections) {
    const records = await storageOf(r).transaction('readonly', (tx) => tx.scanRecords(collection));
    for (const record of records) {
      if (space !== undefined && record.space !== space) continue;
      out.push(JSON.stringify([collection, record.space, record.id, record.value ?? null, canonicalState(record.state)]));
    }
  }
  return out;
}

/** Count of visible (non-deleted) records. */
export function countOf(r: Replica, collection: string): Promise<number> {
  return r.count({ collection });
}

export function outboxCount(r: Replica, space?: SpaceId): Promise<number> {
  return storageOf(r).transaction('readonly', (tx) => tx.countOutbox(space));
}

/**
 * A `ws` WebSocket class that counts its dials (`dials`) and, with
 * `protocol2`, strips the limits from every welcome: the client then talks to
 * what looks like a protocol 2 server, which announces nothing. `drop` loses
 * the messages it picks before the client sees them.
 */
export function dialingSocket(options: { protocol2?: boolean; onMessage?: (message: DownstreamMessage) => void; drop?: (message: DownstreamMessage) => boolean } = {}): {
  factory: SocketFactory;
  dials: () => number;
  received: DownstreamMessage[];
  sentBytes: number[];
  sent: UpstreamMessage[];
} {
  let dials = 0;
  const received: DownstreamMessage[] = [];
  const sent: UpstreamMessage[] = [];
  const sentBytes: number[] = [];
  class Counting {
    readonly #ws: WebSocket;
    onopen: ((event: unknown) => void) | null = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    onmessage: ((event: { data: unknown }) => void) | null = null;
    constructor(url: string) {
      dials++;
      this.#ws = new WebSocket(url);
      this.#ws.binaryType = 'arraybuffer';
      this.#ws.onopen = (event) => this.onopen?.(event);
      this.#ws.onerror = (event) => this.onerror?.(event);
      this.#ws.onclose = (event) => this.onclose?.({ code: event.code, reason: event.reason.toString() });
      this.#ws.onmessage = (event) => {
        let data: Uint8Array = new Uint8Array(event.data as ArrayBuffer);
        const message = decodeDownstream(data);
        if (options.protocol2 && message.type === 'welcome') {
          const { limits: _limits, ...old } = message;
          data = encodeDownstream({ ...old, protocol: 2 });
        }
        received.push(message);
        options.onMessage?.(message);
        // A message lost on the way (it was received above, never handed to the client).
        if (options.drop?.(message)) return;
        this.onmessage?.({ data: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) });
      };
    }
    get binaryType(): string {
      return 'arraybuffer';
    }
    set binaryType(_value: string) {
      // always arraybuffer
    }
    get readyState(): number {
      return this.#ws.readyState;
    }
    send(data: Uint8Array): void {
      sent.push(decodeUpstream(data));
      sentBytes.push(data.length);
      this.#ws.send(data);
    }
    close(code?: number, reason?: string): void {
      this.#ws.close(code, reason);
    }
  }
  return { factory: Counting as unknown as SocketFactory, dials: () => dials, received, sentBytes, sent };
}

/** A free port on 127.0.0.1, for a server that must come back on the same port. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A TCP proxy to 127.0.0.1:target that can cut every connection through it and refuse new ones until healed. */
export async function tcpProxy(target: number): Promise<{ port: number; cut(): void; heal(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((inbound) => {
    if (cut) return inbound.destroy();
    const outbound = connect(target, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    // Either side gone: both go (a target that is down looks like a refused connection).
    for (const [s, other] of [[inbound, outbound], [outbound, inbound]] as const) {
      s.on('close', () => {
        sockets.delete(s);
        other.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    heal() {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

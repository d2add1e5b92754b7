/**
 * The simulated network between the replicas' sync engines and the server: a
 * WebSocket per connection, each direction FIFO (as over TCP) with a random
 * delay per frame. Faults: a frame delivered twice, connections cut hard (frames
 * in flight lost, each side told late or never: a half-open connection is found
 * only by ping timeouts), cut softly (frames already sent still arrive, after the
 * replica has reconnected: reordering across connections), partitions of any set
 * of replicas, and the server being down.
 */
import type { SocketFactory, SocketLike } from '@syncline/client';
import type { Connection, ConnectionEvents } from '@syncline/server';
import type { Rng } from './rng.js';

export interface NetworkParams {
  /** Per-frame delay range, ms. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** Probability that a frame is delivered twice. */
  readonly duplicate: number;
}

export type CutMode = 'hard' | 'half-open' | 'soft';

export interface FrameEvent {
  readonly dir: 'up' | 'down';
  readonly client: string;
  readonly bytes: Uint8Array;
}

/** The server as the network sees it: absent while down. */
export interface ServerEndpoint {
  accept(connection: Connection): ConnectionEvents;
  /** What arrives at `/link` (a region link), when the server serves it. */
  acceptLink?(connection: Connection): ConnectionEvents;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

class Link {
  upAt = 0;
  downAt = 0;
  /** Frames still travel (false: cut, everything in flight is lost). */
  alive = true;
  /** The server side was closed or the client closed: no new frames that way. */
  upClosed = false;
  downClosed = false;
  events: ConnectionEvents | undefined;
  inflightDown = 0;
  serverNotified = false;
  constructor(
    readonly client: string,
    readonly socket: SimSocket,
    readonly epoch: number,
  ) {}
}

export class SimSocket implements SocketLike {
  binaryType = 'arraybuffer';
  readyState = CONNECTING;
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  link: Link | undefined;

  constructor(
    private readonly network: SimNetwork,
    readonly client: string,
    /** The URL dialed: its path says which endpoint (`/sync`, `/link`). */
    readonly url = '',
  ) {}

  send(data: Uint8Array): void {
    if (this.readyState !== OPEN || !this.link) throw new Error('send on a socket that is not open');
    this.network.sendUp(this.link, data.slice());
  }

  close(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    if (this.link) this.network.clientClosed(this.link);
  }

  /** Tells the socket's owner it closed, once. */
  fireClose(code: number, reason: string): void {
    if (this.readyState === CLOSED && !this.onclose) return;
    this.readyState = CLOSED;
    const onclose = this.onclose;
    this.onclose = null;
    onclose?.({ code, reason });
  }
}

export class SimNetwork {
  server: ServerEndpoint | undefined;
  /** Bumped when the server crashes or restarts: links of an older server are dead. */
  epoch = 0;
  readonly partitioned = new Set<string>();
  readonly links = new Set<Link>();
  onFrame: ((event: FrameEvent) => void) | undefined;
  /** Rewrites frames on their way down to a client (a proxy in between); identity when unset. */
  transformDown: ((client: string, bytes: Uint8Array) => Uint8Array) | undefined;
  readonly stats = { connections: 0, refused: 0, frames: 0, duplicated: 0, cuts: 0 };

  constructor(
    private readonly rng: Rng,
    private readonly params: NetworkParams,
  ) {}

  /** The WebSocket class a replica's sync engine uses. */
  socketFactory(client: string): SocketFactory {
    const open = (url: string): SimSocket => this.open(client, url);
    return class {
      constructor(url: string) {
        return open(url);
      }
    } as unknown as SocketFactory;
  }

  /** A socket of `client` dialing `url` on this network. */
  open(client: string, url: string): SimSocket {
    const socket = new SimSocket(this, client, url);
    this.#connect(socket);
    return socket;
  }

  #delay(): number {
    return this.rng.between(this.params.minDelayMs, this.params.maxDelayMs);
  }

  #connect(socket: SimSocket): void {
    const delay = this.#delay() * 2;
    setTimeout(() => {
      if (socket.readyState === CLOSED) return;
      const server = this.server;
      if (!server || this.partitioned.has(socket.client)) {
        this.stats.refused++;
        // A refused or timed-out connection: the client hears after a while.
        setTimeout(() => socket.fireClose(1006, 'connection failed'), this.rng.between(1, 3000));
        return;
      }
      const link = new Link(socket.client, socket, this.epoch);
      socket.link = link;
      this.links.add(link);
      this.stats.connections++;
      const toLink = socket.url !== '' && new URL(socket.url).pathname === '/link';
      link.events = toLink && server.acceptLink ? server.acceptLink(this.#serverSide(link)) : server.accept(this.#serverSide(link));
      socket.readyState = OPEN;
      socket.onopen?.({});
    }, delay);
  }

  #serverSide(link: Link): Connection {
    return {
      get bufferedAmount() {
        return link.inflightDown;
      },
      get open() {
        return link.alive && !link.downClosed;
      },
      send: (frame) => this.#sendDown(link, frame.slice()),
      close: (code, reason) => this.#serverClosed(link, code, reason),
      terminate: () => {
        this.cut(link, 'hard');
        setTimeout(() => this.#notifyServer(link), 1);
      },
      ping: () => {
        if (!link.alive) return;
        const rtt = this.#delay() * 2;
        setTimeout(() => {
          if (link.alive && !link.upClosed) link.events?.pong();
        }, rtt);
      },
    };
  }

  sendUp(link: Link, bytes: Uint8Array): void {
    if (!link.alive || link.upClosed) return;
    const copies = this.rng.chance(this.params.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (i > 0) this.stats.duplicated++;
      link.upAt = Math.max(link.upAt, Date.now() + this.#delay());
      setTimeout(() => {
        if (!link.alive || link.downClosed) return;
        this.stats.frames++;
        this.onFrame?.({ dir: 'up', client: link.client, bytes });
        link.events?.receive(bytes, true);
      }, link.upAt - Date.now());
    }
  }

  #sendDown(link: Link, bytes: Uint8Array): void {
    if (!link.alive || link.downClosed) return;
    const copies = this.rng.chance(this.params.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (i > 0) this.stats.duplicated++;
      link.inflightDown += bytes.length;
      link.downAt = Math.max(link.downAt, Date.now() + this.#delay());
      setTimeout(() => {
        link.inflightDown -= bytes.length;
        if (!link.alive || link.socket.readyState !== OPEN) return;
        this.stats.frames++;
        this.onFrame?.({ dir: 'down', client: link.client, bytes });
        const delivered = this.transformDown ? this.transformDown(link.client, bytes) : bytes;
        link.socket.onmessage?.({ data: delivered.buffer.slice(delivered.byteOffset, delivered.byteOffset + delivered.byteLength) });
      }, link.downAt - Date.now());
    }
  }

  /** The replica closed its socket: frames it sent still arrive, then the server hears the close. */
  clientClosed(link: Link): void {
    if (link.upClosed) return;
    link.upClosed = true;
    link.downClosed = true;
    const at = Math.max(link.upAt, Date.now()) + 1;
    setTimeout(() => this.#finish(link), at - Date.now());
  }

  /** The server closed: frames it sent still arrive, then the replica hears the close. */
  #serverClosed(link: Link, code: number, reason: string): void {
    if (link.downClosed) return;
    link.downClosed = true;
    const at = Math.max(link.downAt, Date.now()) + 1;
    setTimeout(() => {
      link.socket.fireClose(code, reason);
      this.#finish(link);
    }, at - Date.now());
  }

  #finish(link: Link): void {
    link.alive = false;
    link.upClosed = true;
    link.downClosed = true;
    this.links.delete(link);
    this.#notifyServer(link);
  }

  #notifyServer(link: Link): void {
    if (link.serverNotified || link.epoch !== this.epoch) return;
    link.serverNotified = true;
    link.events?.closed();
  }

  /**
   * Cuts a connection. hard: everything in flight is lost, each side hears after
   * a random delay; half-open: lost and nobody is told (ping timeouts find it);
   * soft: the replica's frames in flight still arrive at the server (after the
   * replica may have reconnected), the replica is told at once.
   */
  cut(link: Link, mode: CutMode): void {
    if (!link.alive) return;
    this.stats.cuts++;
    if (mode === 'soft') {
      link.downClosed = true;
      link.socket.fireClose(1006, 'connection lost');
      this.clientClosed(link);
      return;
    }
    link.alive = false;
    link.upClosed = true;
    link.downClosed = true;
    this.links.delete(link);
    if (mode === 'hard') {
      setTimeout(() => link.socket.fireClose(1006, 'connection lost'), this.rng.between(1, 5000));
      setTimeout(() => this.#notifyServer(link), this.rng.between(1, 5000));
    }
  }

  cutClient(client: string, mode: CutMode): void {
    for (const link of [...this.links]) if (link.client === client) this.cut(link, mode);
  }

  /** The server process died: every connection is gone at once, nothing in flight arrives. */
  serverDied(): void {
    this.server = undefined;
    this.epoch++;
    for (const link of [...this.links]) {
      link.alive = false;
      link.upClosed = true;
      link.downClosed = true;
      this.links.delete(link);
      setTimeout(() => link.socket.fireClose(1006, 'server gone'), this.rng.between(1, 2000));
    }
  }

  partition(clients: readonly string[], mode: CutMode): void {
    for (const client of clients) {
      this.partitioned.add(client);
      this.cutClient(client, mode);
    }
  }

  heal(): void {
    this.partitioned.clear();
  }
}

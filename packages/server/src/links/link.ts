/**
 * The following side of a region link: this server dials a peer region's
 * `/link`, says how far it has read the peer's log per space (persisted with
 * storage.setLinkPosition after each stored message, so a restart or a kill
 * resumes where it was), and stores the changes the peer sends through the same
 * group-commit path as client pushes, with the peer's region as their origin:
 * a change already held is not stored twice, new ones get local positions and
 * reach local clients in local log order.
 *
 * A link never gives up: on any error (a dropped socket, a refusal, a change
 * this region cannot store yet, such as one stamped beyond this server's clock
 * drift) it closes, backs off (250 ms doubling to 5 s, with jitter) and
 * resumes from the persisted positions. At a gap (a change whose earlier seqs
 * have not arrived) it asks for a repair and resumes from the gap after 1 s.
 *
 * Anti-entropy: on linking and every REPAIR_EVERY_MS, the link tells the peer
 * how far this region holds each other origin (`repair`), and stores the
 * entries of third regions the peer sends back (`entries` with `origin`).
 */
import {
  LINK_PROTOCOL_VERSION,
  decodeLinkDownstream,
  encodeLinkUpstream,
  hlcWall,
  type Change,
  type Entries,
  type HlcString,
  type LinkFloors,
  type LinkHorizon,
  type LinkDownstreamMessage,
  type LinkStateMessage,
  type LinkUpstreamMessage,
  type Linked,
  type ReplicaId,
  type SpaceId,
} from '@syncline/core/internal';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { Committer } from '../committer.js';
import { capFloor } from '../gc.js';
import type { Metrics } from '../metrics.js';
import type { Limits } from '../options.js';
import type { AppendRequest, ServerStorage } from '../storage/types.js';

export interface LinkOptions {
  /** The peer's URL as configured (ws://host:port, with or without /sync); also the key its positions are kept under. */
  readonly url: string;
  /** This server's region name (told to the peer). */
  readonly region: string;
  /** The peer credential sent in `follow`. */
  readonly credential: string | undefined;
  readonly storage: ServerStorage;
  readonly committer: Committer;
  readonly limits: Limits;
  readonly maxClockDrift: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
  readonly random?: () => number;
  /** A peer's state was merged into `space` (its head is now `head`): clients must take a snapshot. */
  readonly onMerged?: (space: SpaceId, head: number) => void;
  /** The regions this server's links are following right now (anti-entropy leaves them to their own links). */
  readonly following?: () => readonly string[];
  /** Dials the peer's /link URL; default: a `ws` WebSocket (wsPeerSocket). */
  readonly connect?: (url: string) => PeerSocket;
  /** The peer retired these writers (link protocol 5, `floors`): retire them here too. */
  readonly retire?: (replicas: ReplicaId[]) => Promise<unknown>;
}

/**
 * The socket a link dials a peer with, in the browser WebSocket's shape (the
 * `ws` WebSocket has it too): binary frames arrive as ArrayBuffers once
 * `binaryType` is 'arraybuffer'. `terminate`, when there is one, drops the
 * connection without a closing handshake.
 */
export interface PeerSocket {
  /** Set to 'arraybuffer' by the link. */
  binaryType: string;
  /** 1 while open (WebSocket.OPEN). */
  readonly readyState: number;
  /** Called once the connection is open. */
  onopen: ((event: unknown) => void) | null;
  /** Called with each frame received: binary as an ArrayBuffer (or a view), text as a string (refused). */
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  /** Called once when the connection closes, whoever closed it. */
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  /** Called on a transport error (logged; onclose follows). */
  onerror: ((event: unknown) => void) | null;
  /** Sends one binary frame. */
  send(data: Uint8Array): void;
  /** Closes the connection. */
  close(code?: number, reason?: string): void;
  /** Drops the connection without a closing handshake, when the transport can. */
  terminate?(): void;
}

/** The default dialer: a `ws` WebSocket whose handshake must finish within HANDSHAKE_TIMEOUT_MS. */
export function wsPeerSocket(maxPayload: number): (url: string) => PeerSocket {
  return (url) => new WebSocket(url, { maxPayload, handshakeTimeout: HANDSHAKE_TIMEOUT_MS }) as unknown as PeerSocket;
}

const OPEN = 1;

const FIRST_RETRY_MS = 250;
/** How often a link asks its peer for other origins' entries this region lacks (anti-entropy), and once on linking. */
export const REPAIR_EVERY_MS = 10_000;
/** After a gap, how long a link waits for repairs before it follows again from the gap (ms). */
const GAP_PAUSE_MS = 1_000;
/** How often a link reports how far it has stored (`read`), at most. */
const READ_EVERY_MS = 100;
/** A dial, WebSocket handshake and `linked` answer must each come within this (ms). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
// Links are few (one per peer), so they can afford to look often: a healed partition is noticed within 5 s.
const MAX_RETRY_MS = 5_000;

/** The peer's `/sync` URL (where its clients connect) from the URL an operator gives. */
export function syncUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/sync';
  return u.toString();
}

/** The peer's `/link` URL from the URL an operator gives (its /sync URL, or just ws://host:port). */
export function linkUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/link';
  return u.toString();
}

/** A peer region's refusal level of a space, as a follower counts it (Link.level). */
export interface PeerLevel {
  /** Every entry of the peer's own that this region has not stored yet is stamped after this. */
  readonly hlc: HlcString;
  /** The regions the peer counts as members (itself and its peers). */
  readonly members: readonly string[];
}

/** Levels of one space heard and not yet counted that a link keeps (the oldest go first). */
const MAX_LEVELS_WAITING = 16;

export class Link {
  readonly #options: LinkOptions;
  #socket: PeerSocket | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ping: ReturnType<typeof setInterval> | undefined;
  #attempt = 0;
  #closed = false;
  /** The peer's region (from the last `linked`). */
  #peer: string | undefined;
  /** The current connection got its `linked`. */
  #following = false;
  /** Messages are stored one after the other, in the order they came. */
  #queue: Promise<void> = Promise.resolve();
  /** The peer's heads (from `linked`, raised by every `entries`) and how far this region has read, per space: the lag. */
  readonly #heads = new Map<SpaceId, number>();
  readonly #read = new Map<SpaceId, number>();
  /** Positions stored and not yet reported to the peer (`read`), per space. */
  readonly #reads = new Map<SpaceId, number>();
  #readTimer: ReturnType<typeof setTimeout> | undefined;
  #repairTimer: ReturnType<typeof setInterval> | undefined;
  /** Spaces whose entries on this connection stopped at a gap, and the timer that follows again from there. */
  readonly #stalled = new Set<SpaceId>();
  #resume: ReturnType<typeof setTimeout> | undefined;
  /** Per space, the peer's refusal levels heard (link protocol 5) that this region has not read the peer's log up to yet. */
  readonly #heard = new Map<SpaceId, LinkHorizon[]>();
  /** Per space, the latest refusal level of the peer whose position this region has read its log up to. */
  readonly #levels = new Map<SpaceId, PeerLevel>();

  constructor(options: LinkOptions) {
    this.#options = options;
  }

  /** The peer's region name, once a connection said it. */
  get peer(): string | undefined {
    return this.#peer;
  }

  /** True while connected and following. */
  get up(): boolean {
    return this.#following && this.#socket?.readyState === OPEN;
  }

  /**
   * The peer's level for `space` (link protocol 5, `horizon`) once this region
   * has read the peer's log up to the position it was announced at: every
   * entry of the peer's own that this region has not stored yet is stamped
   * after it. Undefined until then, and from a peer older than version 5.
   */
  level(space: SpaceId): PeerLevel | undefined {
    return this.#levels.get(space);
  }

  /** Log positions of the peer not yet read, summed over its spaces. */
  get lag(): number {
    let lag = 0;
    for (const [space, head] of this.#heads) lag += Math.max(0, head - (this.#read.get(space) ?? 0));
    return lag;
  }

  start(): void {
    if (!this.#closed && !this.#socket && this.#timer === undefined) this.#dial();
  }

  /** Closes the link for good; resolves once what was received is stored. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop();
    await this.#queue;
  }

  #dial(): void {
    this.#timer = undefined;
    const { url, limits, logger } = this.#options;
    let socket: PeerSocket;
    try {
      socket = (this.#options.connect ?? wsPeerSocket(limits.maxFrameBytes * 4))(linkUrl(url));
      socket.binaryType = 'arraybuffer';
    } catch (error) {
      logger.error({ err: error, peer: url }, 'region link: cannot dial');
      return this.#retry();
    }
    this.#socket = socket;
    // A peer (or a proxy in front of it) that accepts TCP but never answers, or opens and never says
    // `linked`, must not hold the link.
    const unanswered = setTimeout(() => {
      if (this.#socket === socket && !this.#following) this.#failed(socket, new Error(`no answer to follow within ${HANDSHAKE_TIMEOUT_MS} ms`));
    }, HANDSHAKE_TIMEOUT_MS);
    unanswered.unref?.();
    // Keepalive in the link protocol (ping / pong), so that any transport carries it: a connection that
    // said nothing for a whole ping interval is dropped.
    let heard = true;
    let pings = 0;
    socket.onopen = () => {
      this.#queue = this.#queue.then(() => this.#follow(socket)).catch((error: unknown) => this.#failed(socket, error));
      this.#ping = setInterval(() => {
        if (!heard) return this.#failed(socket, new Error(`no word from the peer within ${limits.pingIntervalMs} ms`));
        heard = false;
        this.#send(socket, { type: 'ping', id: ++pings });
      }, limits.pingIntervalMs);
      this.#ping.unref?.();
    };
    socket.onmessage = ({ data }) => {
      if (this.#socket !== socket) return;
      heard = true;
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
      if (!bytes) return this.#failed(socket, new Error('a text frame from the peer'));
      let message: LinkDownstreamMessage;
      try {
        message = decodeLinkDownstream(bytes);
      } catch (error) {
        return this.#failed(socket, error);
      }
      this.#queue = this.#queue.then(() => this.#handle(socket, message)).catch((error: unknown) => this.#failed(socket, error));
    };
    socket.onclose = ({ code, reason }) => {
      if (this.#socket !== socket) return;
      logger.warn({ peer: url, region: this.#peer, code, reason }, 'region link dropped');
      this.#lost();
    };
    socket.onerror = (error) => logger.debug({ err: error, peer: url }, 'region link socket error');
  }

  /** The peer's refusal level of a space (link protocol 5): counted once this region has read up to its position. */
  #horizon(message: LinkHorizon): void {
    if (this.#peer === undefined || !this.#following) throw new Error('horizon before linked');
    const heard = this.#heard.get(message.space) ?? [];
    heard.push(message);
    // Levels only rise: a later one counted makes every earlier one useless, so few are ever waiting.
    if (heard.length > MAX_LEVELS_WAITING) heard.shift();
    this.#heard.set(message.space, heard);
    this.#count(message.space);
  }

  /**
   * What the peer's own writers said of themselves (link protocol 5): a floor
   * holds in every region (every change a writer will push anywhere is stamped
   * after it), so a writer that also said hello here and moved on holds this
   * region's level no further back than it; one the peer retired writes no more
   * under its id, anywhere.
   */
  async #floors(message: LinkFloors): Promise<void> {
    if (this.#peer === undefined || !this.#following) throw new Error('floors before linked');
    const { storage, now, retire } = this.#options;
    const at = now();
    const floors = message.writers.flatMap((w) => (w.hlc !== undefined && w.retired !== true ? [{ replica: w.replica, hlc: capFloor(w.hlc, at) as HlcString }] : []));
    if (floors.length > 0) await storage.raiseFloors(message.space, floors, at);
    const retired = message.writers.filter((w) => w.retired === true).map((w) => w.replica);
    if (retired.length > 0) await retire?.(retired);
  }

  /** Counts the latest level heard for `space` whose position this region has read the peer's log up to. */
  #count(space: SpaceId): void {
    const heard = this.#heard.get(space);
    if (!heard) return;
    const read = this.#read.get(space) ?? 0;
    let latest: LinkHorizon | undefined;
    while (heard.length > 0 && (heard[0] as LinkHorizon).upTo <= read) latest = heard.shift();
    if (heard.length === 0) this.#heard.delete(space);
    const counted = this.#levels.get(space);
    if (latest && (counted === undefined || latest.hlc > counted.hlc)) this.#levels.set(space, { hlc: latest.hlc, members: latest.members });
  }

  async #follow(socket: PeerSocket): Promise<void> {
    const { url, region, credential, storage, limits } = this.#options;
    const positions = await storage.linkPositions(url);
    for (const [space, pos] of positions) {
      this.#read.set(space, pos);
      this.#count(space);
    }
    this.#send(socket, {
      type: 'follow',
      protocol: LINK_PROTOCOL_VERSION,
      region,
      ...(credential !== undefined ? { credential } : {}),
      positions: [...positions].map(([space, after]) => ({ space, after })),
      maxFrameBytes: limits.maxFrameBytes,
    });
  }

  async #handle(socket: PeerSocket, message: LinkDownstreamMessage): Promise<void> {
    if (this.#socket !== socket) return;
    switch (message.type) {
      case 'linked':
        return this.#linked(socket, message);
      case 'entries':
        return this.#entries(socket, message);
      case 'state':
        return this.#state(message);
      case 'horizon':
        return this.#horizon(message);
      case 'floors':
        return this.#floors(message);
      case 'error':
        this.#options.logger.warn({ peer: this.#options.url, code: message.code, fatal: message.fatal }, `region link refused: ${message.message}`);
        return;
      case 'ping':
        return this.#send(socket, { type: 'pong', id: message.id });
      case 'pong':
        return;
    }
  }

  #linked(socket: PeerSocket, message: Linked): void {
    const { url, region, logger, metrics } = this.#options;
    if (message.region === region) {
      logger.error({ peer: url }, `region link: ${url} is this region ("${region}") itself; not following it`);
      this.#closed = true;
      this.#drop();
      return;
    }
    this.#peer = message.region;
    this.#following = true;
    for (const { space, head } of message.heads) this.#heads.set(space, head);
    this.#attempt = 0;
    metrics.linkUp.set({ peer: url }, 1);
    metrics.linkLagChanges.set({ peer: url }, this.lag);
    logger.info({ peer: url, region: message.region, lag: this.lag }, 'region link up');
    const repair = (): void => {
      this.#queue = this.#queue.then(() => this.#askRepair(socket)).catch((error: unknown) => this.#failed(socket, error));
    };
    repair();
    this.#repairTimer = setInterval(repair, REPAIR_EVERY_MS);
    this.#repairTimer.unref?.();
  }

  /**
   * Anti-entropy: tells the peer, per space, how far this region holds each
   * origin, leaving out the regions it follows itself right now; the peer sends
   * what it holds beyond that (link protocol 3, `repair`). This is how a change
   * that reached only some regions before its own region went down (or was
   * destroyed, or stays partitioned) reaches the rest: links carry only each
   * peer's own entries.
   */
  async #askRepair(socket: PeerSocket): Promise<void> {
    if (this.#socket !== socket || !this.#following) return;
    const { storage, region, following } = this.#options;
    const skip = [...new Set([...(following?.() ?? []), region])];
    for (const space of this.#heads.keys()) {
      const vector = await storage.originVector(space, await storage.head(space));
      const held = [...vector].filter(([origin]) => origin !== '').map(([origin, pos]) => ({ origin, pos }));
      this.#send(socket, { type: 'repair', space, held, skip });
    }
  }

  /**
   * Stores one message's changes, then records how far the peer's log was read
   * (the peer's own entries), or how far the repair of another origin went.
   */
  async #entries(socket: PeerSocket, message: Entries): Promise<void> {
    const { url, storage, committer, maxClockDrift, metrics, now, logger } = this.#options;
    const peer = this.#peer;
    if (peer === undefined || !this.#following) throw new Error('entries before linked');
    const { space, upTo } = message;
    const repair = message.origin !== undefined;
    const origin = message.origin ?? peer;
    // After a gap, the rest of this connection's entries of the space are left alone (see below).
    if (!repair && this.#stalled.has(space)) return;
    if (repair && (origin === this.#options.region || origin === peer)) throw new Error(`a repair of origin ${origin}, which is not a third region`);
    const ahead = message.changes.find((c) => hlcWall(c.hlc) > now() + maxClockDrift);
    if (ahead) {
      const why = `a change of ${ahead.replica} is stamped more than ${maxClockDrift} ms ahead of this server's clock; waiting for the clock`;
      if (!repair) throw new Error(why);
      return logger.debug({ peer: url, origin }, `region link repair: ${why}`);
    }
    const { changes, positions } = message;
    if (positions.length !== changes.length || positions.some((p, i) => p > upTo || (i > 0 && p <= (positions[i - 1] as number)))) {
      throw new Error('entries whose positions do not fit their changes');
    }
    // Submitted together and in order, they are stored in the peer's order: an origin's entries are a prefix
    // of this log too (storage/types.ts), which is what clients' origin vectors rest on. So the message is
    // stored only up to a run that would leave a gap: a replica that moved between regions may have earlier
    // changes this region has not received yet (they come over another link). Storing past it would put
    // this origin's entries out of order; refusing the whole message could wait forever on a link that
    // waits for this one. What comes before it is stored, and the link reads on from there after a pause.
    // A repair goes the same way, from this region's prefix of the origin; it keeps no position (the log
    // itself says how far this region holds each origin), and a gap just ends it until the next pass.
    const runs = requests(space, origin, changes, positions);
    const held = await storage.replicaProgress(space, [...new Set(runs.map((run) => run.replica))]);
    let take = 0;
    for (const run of runs) {
      const have = held.get(run.replica) ?? 0;
      if ((run.changes[0] as Change).seq > have + 1) break;
      held.set(run.replica, Math.max(have, (run.changes[run.changes.length - 1] as Change).seq));
      take++;
    }
    const results = await Promise.all(runs.slice(0, take).map((request) => committer.submit(request)));
    const stored = results.reduce((n, r) => n + r.stored.length, 0);
    if (stored > 0) metrics.linkChanges.inc({ peer: url }, stored);
    const gap = runs[take];
    if (repair) {
      if (stored > 0) logger.info({ peer: url, origin, space, stored }, 'region link repair: stored entries of another origin this region lacked');
      return;
    }
    const readUpTo = gap ? (gap.originPositions[0] as number) - 1 : upTo;
    await storage.setLinkPosition(url, space, readUpTo);
    // Tell the peer, so that its compaction keeps what this region has not stored: at most one `read`
    // per space every READ_EVERY_MS, the latest position (a link stays far under the peer's message rate).
    this.#reads.set(space, readUpTo);
    this.#readTimer ??= setTimeout(() => this.#sendReads(), READ_EVERY_MS);
    const newest = message.changes[message.changes.length - 1];
    if (newest) metrics.linkLagSeconds.set({ peer: url }, Math.max(0, (now() - hlcWall(newest.hlc)) / 1000));
    this.#read.set(space, readUpTo);
    this.#count(space);
    if ((this.#heads.get(space) ?? 0) < upTo) this.#heads.set(space, upTo);
    metrics.linkLagChanges.set({ peer: url }, this.lag);
    if (gap) {
      // The missing changes may come over another link, or only by repair from this peer (their region is
      // down or gone): ask for a repair now, and follow again from the gap after a pause. Dropping the
      // connection at once would lose the repair's answer, and with it the only way forward.
      this.#stalled.add(space);
      logger.info({ peer: url, space, replica: gap.replica, seq: (gap.changes[0] as Change).seq }, 'region link: changes before these have not reached this region yet; reading on after a pause');
      await this.#askRepair(socket);
      this.#resume ??= setTimeout(() => this.#failed(socket, new Error(`space ${space}: following again from position ${readUpTo} after a gap`)), GAP_PAUSE_MS);
    }
  }

  /**
   * The peer's state of a space, in place of the log it compacted: merged part
   * by part (joins: a part merged twice changes nothing), and with the last
   * part, what it covers (storage.mergeState), then the position it stands for.
   */
  async #state(message: LinkStateMessage): Promise<void> {
    const { url, storage, region, logger, onMerged } = this.#options;
    const peer = this.#peer;
    if (peer === undefined || !this.#following) throw new Error('state before linked');
    const { space, upTo, records, done } = message;
    if (!done) {
      await storage.mergeState(space, records);
      return;
    }
    const floors = new Map(done.origins.filter((o) => o.region !== region).map((o) => [o.region, o.upTo]));
    const head = await storage.mergeState(space, records, { progress: done.progress, floors });
    await storage.setLinkPosition(url, space, upTo);
    this.#read.set(space, upTo);
    this.#count(space);
    this.#reads.set(space, upTo);
    this.#readTimer ??= setTimeout(() => this.#sendReads(), READ_EVERY_MS);
    logger.info({ peer: url, region: peer, space, upTo }, 'region link: merged the peer\'s state (its log below this position was compacted); clients of this region take a snapshot');
    onMerged?.(space, head);
  }

  #sendReads(): void {
    this.#readTimer = undefined;
    const socket = this.#socket;
    if (socket) for (const [space, upTo] of this.#reads) this.#send(socket, { type: 'read', space, upTo });
    this.#reads.clear();
  }

  #send(socket: PeerSocket, message: LinkUpstreamMessage): void {
    if (socket.readyState === OPEN) socket.send(encodeLinkUpstream(message));
  }

  /** Something went wrong on this connection: drop it and dial again after a pause. */
  #failed(socket: PeerSocket, error: unknown): void {
    if (this.#socket !== socket) return;
    this.#options.logger.warn({ err: error, peer: this.#options.url, region: this.#peer }, 'region link: dropping the connection after an error');
    this.#lost();
  }

  /** The connection is gone (dropped, or given up on): retry unless the link was closed. */
  #lost(): void {
    this.#drop();
    this.#retry();
  }

  #drop(): void {
    clearInterval(this.#ping);
    clearInterval(this.#repairTimer);
    this.#repairTimer = undefined;
    clearTimeout(this.#resume);
    this.#resume = undefined;
    this.#stalled.clear();
    // Positions not reported yet are not lost: the next follow carries every stored position, and the peer keeps them.
    clearTimeout(this.#readTimer);
    this.#readTimer = undefined;
    this.#reads.clear();
    this.#following = false;
    this.#ping = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#options.metrics.linkUp.set({ peer: this.#options.url }, 0);
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      if (socket.terminate) socket.terminate();
      else socket.close(1000, 'dropped');
    }
  }

  #retry(): void {
    if (this.#closed) return;
    const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.#attempt++);
    const wait = ceiling / 2 + (this.#options.random ?? Math.random)() * (ceiling / 2);
    this.#timer = setTimeout(() => this.#dial(), wait);
    this.#timer.unref?.();
  }
}

/**
 * The message's changes as append requests in the peer's log order: one per
 * run of consecutive seqs of one replica (an append request holds one
 * replica's, without gaps).
 */
function requests(space: SpaceId, origin: string, changes: readonly Change[], positions: readonly number[]): Array<AppendRequest & { readonly changes: Change[]; readonly originPositions: number[] }> {
  const out: Array<{ space: SpaceId; replica: ReplicaId; changes: Change[]; origin: string; originPositions: number[] }> = [];
  changes.forEach((change, i) => {
    let run = out[out.length - 1];
    const last = run?.changes[run.changes.length - 1];
    if (run?.replica !== change.replica || change.seq !== (last as Change).seq + 1) out.push((run = { space, replica: change.replica, changes: [], origin, originPositions: [] }));
    run.changes.push(change);
    run.originPositions.push(positions[i] as number);
  });
  return out;
}

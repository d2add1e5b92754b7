/**
 * The serving side of a region link: another region follows this server's log.
 * After a `follow` (checked: link protocol, region name, peer credential), it
 * sends `linked` (this region's name and every space's head), then, per space,
 * the log entries that entered through this region's own clients (origin ''),
 * in log order, from where the follower said it had read. Entries from other
 * regions are skipped: no cascading, each region follows every other.
 *
 * A version 5 follower also hears, per space, the level at or below which
 * this region refuses its own clients' changes (`horizon`, with the regions
 * this one counts as members): after `linked`, and whenever the server's
 * collection pass sees it moved (announceLevel); and what this region's own
 * writers said of themselves, their floors and retirements (`floors`,
 * announceFloors), after `linked` and after each collection pass.
 *
 * Like a client session, it never holds more than one page of the log in
 * memory: it reads the log again whenever a space grows (hub.onAdvance), and
 * waits while the socket's send buffer is over the limit.
 */
import { timingSafeEqual } from 'node:crypto';
import {
  LINK_PROTOCOL_VERSION,
  MIN_LINK_PROTOCOL_VERSION,
  MAX_LINK_FLOORS,
  decodeLinkUpstream,
  encodeLinkDownstream,
  fitFrames,
  type ErrorCode,
  type Follow,
  type HlcString,
  type LinkDownstreamMessage,
  type Repair,
  type ReplicaId,
  type SpaceId,
} from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Hub } from '../hub.js';
import type { Metrics } from '../metrics.js';
import type { Limits } from '../options.js';
import type { Connection } from '../session.js';
import { refusalLevel } from '../storage/horizon.js';
import type { LoggedChange, ServerStorage, Stability, WriterInfo } from '../storage/types.js';

export interface LinkSessionContext {
  /** This server's region name; a server without one serves no links. */
  readonly region: string | undefined;
  /** The peer credential links must present; undefined: none is needed if `open`. */
  readonly peerSecret: string | undefined;
  /** The server has no client auth either (the development default): links need no credential. */
  readonly open: boolean;
  readonly storage: ServerStorage;
  readonly hub: Hub;
  readonly limits: Limits;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The server's clock (ms). */
  readonly now: () => number;
  /** The regions this one counts as members (itself and each peer), or undefined while a peer's name is not known yet. */
  readonly members: () => readonly string[] | undefined;
  /** A follower's stored position was recorded (quorum acks may be due: stability.ts). */
  readonly onStored: () => void;
  readonly onClose: (session: LinkSession) => void;
}

const CLOSE_POLICY = 1008;
const CLOSE_GOING_AWAY = 1001;
/** How often a link waiting for its send buffer to drain looks again (ms). */
const DRAIN_POLL_MS = 20;
/** Room left in a `state` frame for all but its records (space, positions, framing). */
const STATE_OVERHEAD_BYTES = 4_096;
/** Pages of one origin sent per `repair` at most (the follower asks again on its next pass). */
const REPAIR_PAGES = 20;

/**
 * The key under which a follower region's read positions are stored
 * (storage.setLinkPosition), apart from the peer URLs this region follows:
 * a region name has no ':'.
 */
export const FOLLOWER_PREFIX = 'follower:';
export const followerKey = (region: string): string => `${FOLLOWER_PREFIX}${region}`;

/** Constant-time comparison of two credentials. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class LinkSession {
  /** Answered the last ping (the server's pinger). */
  alive = true;
  /** The follower's region, once it followed. */
  follower: string | undefined;
  #state: 'follow' | 'ready' | 'closed' = 'follow';
  /** The follower's link protocol version. */
  #protocol = 0;
  /** Per space, the level (and members) last told to the follower. */
  readonly #toldLevels = new Map<SpaceId, string>();
  /** Per space, per writer, what the follower was told of it (its floor, or 'retired'). */
  readonly #toldFloors = new Map<SpaceId, Map<ReplicaId, string>>();
  readonly #sent = new Map<SpaceId, number>();
  readonly #dirty = new Set<SpaceId>();
  #pumping = false;
  #repairs: Promise<void> = Promise.resolve();
  #budget: number;
  readonly #timer: ReturnType<typeof setTimeout>;
  #unsubscribe: () => void = () => undefined;
  #windowStart = 0;
  #inWindow = 0;

  constructor(
    readonly socket: Connection,
    private readonly ctx: LinkSessionContext,
  ) {
    this.#budget = ctx.limits.maxFrameBytes;
    this.#timer = setTimeout(() => this.fail('not_ready', 'no follow received in time', true), ctx.limits.helloTimeoutMs);
  }

  receive(frame: Uint8Array, isBinary: boolean): void {
    if (this.#state === 'closed') return;
    if (!isBinary) return this.fail('malformed_frame', 'text frames are not part of the protocol', true);
    if (frame.length > this.ctx.limits.maxFrameBytes) return this.fail('frame_too_large', `a frame of ${frame.length} bytes; the limit is ${this.ctx.limits.maxFrameBytes}`, true);
    // A peer holds the peer credential, but a flood is still refused: more than two seconds' worth of the
    // client message rate (at least 200) within one second closes the link, as it closes a client.
    const now = this.ctx.now();
    if (now - this.#windowStart > 1_000) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (++this.#inWindow > Math.max(2 * this.ctx.limits.messagesPerSecond, 200)) return this.fail('rate_limited', `${this.#inWindow} link messages within a second: closed`, true);
    let message;
    try {
      message = decodeLinkUpstream(frame);
    } catch (error) {
      const code = (error as { code?: ErrorCode }).code ?? 'invalid_message';
      return this.fail(code, `bad link message: ${(error as Error).message}`, true);
    }
    switch (message.type) {
      case 'follow':
        this.#onFollow(message).catch((error: unknown) => this.#internal(error));
        return;
      case 'read':
        if (this.#state !== 'ready') return this.fail('not_ready', 'read before follow', true);
        // Where this follower has stored up to: compaction keeps the log above the lowest of them.
        this.ctx.storage
          .setLinkPosition(followerKey(this.follower as string), message.space, message.upTo)
          .then(() => this.ctx.onStored())
          .catch((error: unknown) => this.#internal(error));
        return;
      case 'repair':
        if (this.#state !== 'ready') return this.fail('not_ready', 'repair before follow', true);
        // One at a time, after what the pump is sending: a follower asks again on its next pass.
        this.#repairs = this.#repairs.then(() => this.#repair(message)).catch((error: unknown) => this.#internal(error));
        return;
      case 'ping':
        return this.#send({ type: 'pong', id: message.id });
      case 'pong':
        return;
    }
  }

  /**
   * Anti-entropy: sends the follower the entries of other origins this region
   * holds beyond what the follower holds of them (at most REPAIR_PAGES pages per
   * origin per request), in their origin order, so that they extend the
   * follower's prefix of each. When the next entries of one were compacted
   * here, the follower gets this region's state instead (`state`).
   */
  async #repair(message: Repair): Promise<void> {
    const { storage, limits, logger } = this.ctx;
    const { space } = message;
    const held = new Map(message.held.map(({ origin, pos }) => [origin, pos]));
    const skip = new Set([...message.skip, this.follower as string, '']);
    const mine = await storage.originVector(space, await storage.head(space));
    for (const [origin, pos] of mine) {
      let after = held.get(origin) ?? 0;
      if (skip.has(origin) || pos <= after) continue;
      if ((await storage.resumeAfter(space, new Map([...mine, [origin, after]]))) === undefined) {
        // What the follower lacks of that origin was compacted here: it gets this region's state instead,
        // which holds everything this region has (of every origin).
        logger.info({ follower: this.follower, space, origin, after }, 'region link: repair of an origin whose entries this region compacted: sending its state');
        return this.#sendState(space);
      }
      for (let pages = 0; pages < REPAIR_PAGES && after < pos; pages++) {
        await this.#drained();
        if (this.#isClosed()) return;
        const page = await storage.readLog(space, after, limits.relayBatch, this.#budget, { origin });
        const last = page[page.length - 1];
        if (!last) break;
        const encode = (slice: readonly LoggedChange[]): Uint8Array =>
          encodeLinkDownstream({ type: 'entries', space, origin, changes: slice.map((e) => e.change), positions: slice.map((e) => e.originPos), upTo: (slice[slice.length - 1] as LoggedChange).originPos });
        for (const { frame } of fitFrames(page, encode, this.#budget)) this.#sendFrame(frame);
        after = last.originPos;
      }
    }
  }

  pong(): void {
    this.alive = true;
  }

  closed(): void {
    this.#close();
  }

  async #onFollow(follow: Follow): Promise<void> {
    if (this.#state !== 'follow') return this.fail('invalid_message', 'follow sent twice', true);
    clearTimeout(this.#timer);
    const { region, peerSecret, open, storage } = this.ctx;
    if (follow.protocol < MIN_LINK_PROTOCOL_VERSION || follow.protocol > LINK_PROTOCOL_VERSION) {
      return this.fail('unsupported_protocol', `link protocol ${follow.protocol} is not supported; this server speaks ${MIN_LINK_PROTOCOL_VERSION} to ${LINK_PROTOCOL_VERSION}`, true);
    }
    if (region === undefined) return this.fail('forbidden', 'this server is not a region: start it with a region name (--region NAME) to serve links', true);
    if (follow.region === region) return this.fail('forbidden', `region "${region}" cannot follow itself (a --peer URL points back at this server)`, true);
    if (peerSecret !== undefined) {
      if (follow.credential === undefined || !sameSecret(follow.credential, peerSecret)) return this.fail('unauthenticated', 'wrong or missing peer credential', true);
    } else if (!open) {
      return this.fail('unauthenticated', 'this server has client auth and no peer credential (--peer-secret): it serves no links', true);
    }
    this.#protocol = follow.protocol;
    this.#budget = Math.min(this.ctx.limits.maxFrameBytes, follow.maxFrameBytes);
    // A follower that has read further than this region's log goes: this region lost its data (it restarted
    // on an empty or older store), and its log now is another one. The follower reads it from the start;
    // what it holds already is not stored twice.
    const positions = await Promise.all(
      follow.positions.map(async ({ space, after }) => {
        const head = await storage.head(space);
        if (after <= head) return { space, after };
        this.ctx.logger.warn({ follower: follow.region, space, after, head }, 'region link: the follower has read past this region\'s log (its data was lost?); sending the log from the start');
        return { space, after: 0 };
      }),
    );
    for (const { space, after } of positions) this.#sent.set(space, after);
    this.follower = follow.region;
    // What the follower says it has stored counts as read (compaction keeps the log above it), like a `read`.
    await Promise.all(positions.map(({ space, after }) => storage.setLinkPosition(followerKey(follow.region), space, after)));
    this.ctx.onStored();
    if (this.#isClosed()) return;
    this.#state = 'ready';
    const spaces = await storage.spaces();
    const heads = await Promise.all(spaces.map(async (space) => ({ space, head: await storage.head(space) })));
    if (this.#isClosed()) return;
    this.#send({ type: 'linked', region, heads });
    this.ctx.logger.info({ follower: follow.region }, 'region link served');
    this.#unsubscribe = this.ctx.hub.onAdvance((space) => this.#mark(space));
    for (const space of spaces) this.#mark(space);
    if (this.#protocol >= 5) {
      for (const space of spaces) {
        this.announceLevel(space, await storage.stability(space));
        this.announceFloors(space, await storage.writers(space));
      }
    }
  }

  /**
   * Tells a version 5 follower what this region's own writers of `space` said
   * of themselves (link protocol 5, `floors`): each one's floor, and which
   * writers it knows were retired, for those it was not told already.
   */
  announceFloors(space: SpaceId, writers: readonly WriterInfo[]): void {
    if (this.#protocol < 5 || this.#state !== 'ready') return;
    const told = this.#toldFloors.get(space) ?? new Map<ReplicaId, string>();
    this.#toldFloors.set(space, told);
    const news: { replica: ReplicaId; hlc?: HlcString; retired?: boolean }[] = [];
    for (const w of writers) {
      // Floors of this region's own writers; retirements of any writer it knows (an operator may retire here a
      // device known here only by its changes).
      if (!w.retired && (!w.local || w.floor === undefined)) continue;
      const said = w.retired ? 'retired' : (w.floor as string);
      if (told.get(w.replica) === said) continue;
      told.set(w.replica, said);
      news.push(w.retired ? { replica: w.replica, retired: true } : { replica: w.replica, hlc: w.floor as HlcString });
    }
    for (let i = 0; i < news.length; i += MAX_LINK_FLOORS) this.#send({ type: 'floors', space, writers: news.slice(i, i + MAX_LINK_FLOORS) });
  }

  /**
   * Tells a version 5 follower this region's refusal level of `space` (link
   * protocol 5, `horizon`) unless it was told that one with the same members;
   * nothing while a peer's name is not known (the members would be wrong).
   */
  announceLevel(space: SpaceId, stability: Stability): void {
    if (this.#protocol < 5 || this.#state !== 'ready') return;
    const level = refusalLevel(stability);
    const members = this.ctx.members();
    if (level.hlc === undefined || members === undefined) return;
    const told = `${level.hlc} ${members.join(' ')}`;
    if (this.#toldLevels.get(space) === told) return;
    this.#toldLevels.set(space, told);
    this.#send({ type: 'horizon', space, hlc: level.hlc, upTo: level.upTo, members: [...members] });
  }

  #mark(space: SpaceId): void {
    this.#dirty.add(space);
    if (!this.#pumping) void this.#pump();
  }

  /** Sends what each marked space has that the follower has not read, one space at a time. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#dirty.size > 0 && this.#state === 'ready') {
        const space = this.#dirty.values().next().value as SpaceId;
        this.#dirty.delete(space);
        await this.#catchUp(space);
      }
    } catch (error) {
      this.#internal(error);
    } finally {
      this.#pumping = false;
    }
  }

  async #catchUp(space: SpaceId): Promise<void> {
    const { storage, limits } = this.ctx;
    for (;;) {
      await this.#drained();
      if (this.#isClosed()) return;
      const after = this.#sent.get(space) ?? 0;
      // How far this region's own entries were compacted (the horizon may also stand for a merged state,
      // which a follower does not need: it follows this region's own entries only). The floor is never above
      // the horizon, so it is read (per origin, dearer) only for a follower below the horizon (one row).
      const below = after < (await storage.horizon(space)) && after < ((await storage.originVector(space, 0)).get('') ?? 0);
      if (below) {
        // The log the follower needs was compacted: it gets this region's state instead, then the log from there.
        await this.#sendState(space);
        continue;
      }
      const head = await storage.head(space);
      const page = await storage.readLog(space, after, limits.relayBatch, this.#budget, { origin: '' });
      const last = page[page.length - 1];
      // A short page saw every local entry up to the head read before it (positions become visible in order).
      const upTo = page.length < limits.relayBatch ? Math.max(head, last?.pos ?? 0) : (last as LoggedChange).pos;
      if (upTo <= after) return;
      if (page.length === 0) this.#send({ type: 'entries', space, changes: [], positions: [], upTo });
      else {
        const encode = (slice: readonly LoggedChange[], isLast: boolean): Uint8Array =>
          encodeLinkDownstream({ type: 'entries', space, changes: slice.map((e) => e.change), positions: slice.map((e) => e.pos), upTo: isLast ? upTo : (slice[slice.length - 1] as LoggedChange).pos });
        for (const { frame } of fitFrames(page, encode, this.#budget)) this.#sendFrame(frame);
      }
      this.#sent.set(space, upTo);
      if (page.length < limits.relayBatch) return;
    }
  }

  /**
   * Sends this region's state of `space` (link protocol 3, `state`) and moves
   * the follower's position to the head it covers. Progress and the origin
   * vector are read before the records, so the records hold at least what they
   * claim; records read later may hold more, which the follower's joins absorb.
   */
  async #sendState(space: SpaceId): Promise<void> {
    const { storage, limits, logger, region } = this.ctx;
    const upTo = await storage.head(space);
    const [progress, vector] = await Promise.all([storage.replicaProgress(space), storage.originVector(space, upTo)]);
    const origins = [...vector].map(([origin, pos]) => ({ region: origin === '' ? (region as string) : origin, upTo: pos }));
    logger.info({ follower: this.follower, space, upTo }, 'region link: the follower is below the compaction horizon; sending this region\'s state');
    let after: readonly [string, string] | undefined;
    for (;;) {
      await this.#drained();
      if (this.#isClosed()) return;
      const page = await storage.snapshotPage(space, after, limits.snapshotChunk, Math.max(1, this.#budget - STATE_OVERHEAD_BYTES));
      const last = page[page.length - 1];
      if (!last || page.length < limits.snapshotChunk) {
        if (page.length > 0) this.#send({ type: 'state', space, upTo, records: page });
        break;
      }
      this.#send({ type: 'state', space, upTo, records: page });
      after = [last.collection, last.id];
    }
    this.#send({ type: 'state', space, upTo, records: [], done: { progress, origins } });
    this.#sent.set(space, upTo);
  }

  /** Waits while the socket holds more than the send buffer limit. */
  async #drained(): Promise<void> {
    while (this.socket.open && this.socket.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }

  #send(message: LinkDownstreamMessage): void {
    this.#sendFrame(encodeLinkDownstream(message));
  }

  #sendFrame(frame: Uint8Array): void {
    if (this.#state !== 'closed' && this.socket.open) this.socket.send(frame);
  }

  fail(code: ErrorCode, message: string, fatal: boolean): void {
    this.ctx.metrics.errors.inc({ code });
    this.ctx.logger.warn({ follower: this.follower, code }, `region link: ${message}`);
    try {
      this.#send({ type: 'error', code, message: message.slice(0, 4000), fatal });
    } catch {
      // the socket is gone
    }
    if (fatal) this.close(CLOSE_POLICY, code);
  }

  #internal(error: unknown): void {
    this.ctx.logger.error({ err: error, follower: this.follower }, 'region link error');
    if (this.#state !== 'closed') this.fail('internal', 'internal server error', true);
  }

  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  close(code = CLOSE_GOING_AWAY, reason = ''): void {
    if (this.#state === 'closed') return;
    this.#close();
    try {
      this.socket.close(code, reason);
    } catch {
      this.socket.terminate();
    }
  }

  #close(): void {
    if (this.#state === 'closed') return;
    const followed = this.#state === 'ready';
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#unsubscribe();
    if (followed) this.ctx.logger.info({ follower: this.follower }, 'region link closed');
    this.ctx.onClose(this);
  }
}

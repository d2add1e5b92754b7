/**
 * One WebSocket connection: handshake, pushes, catch-up and live relay for each
 * space it follows. Every inbound frame is decoded into a typed message before
 * anything else touches it; a bad one gets a coded error. Nothing here throws
 * out of the socket's event handlers.
 */
import {
  decodeUpstream,
  encodeDownstream,
  hlcWall,
  InvalidChangeError,
  isSupportedProtocol,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  ProtocolError,
  SynclineError,
  errorCodeFor,
  fitFrames,
  regionsFor,
  MIN_FRAME_BYTES,
  MAX_PRESENCE_BYTES,
  MAX_RETIRED_PER_MESSAGE,
  PRESENCE_UPDATES_PER_SECOND,
  type Access,
  type DownstreamMessage,
  type ErrorCode,
  type Hello,
  type HlcString,
  type Json,
  type Push,
  type ReplicaId,
  type ServerLimits,
  type SnapshotRecord,
  type SpaceId,
} from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Authenticate, Grant } from './auth.js';
import { checkChange } from './change-checks.js';
import type { Committer } from './committer.js';
import { encodeChanges, originList, type Follower, type Hub } from './hub.js';
import { capFloor } from './gc.js';
import type { PresenceMember, PresenceRooms } from './presence.js';
import type { Metrics } from './metrics.js';
import type { Limits } from './options.js';
import type { ServerStorage, Stability as StorageStability } from './storage/types.js';
import type { Stability } from './links/stability.js';

export interface SessionContext {
  readonly serverId: string;
  /** The peer's address (for logs; `X-Forwarded-For` with trustProxy), when the transport knows it. */
  readonly address?: string | undefined;
  /** This server's region (protocol 5 clients resume by origin vectors in it), if it has one. */
  readonly region: string | undefined;
  /** The /sync URLs of its peer regions, told to clients in welcome. */
  readonly peers: readonly string[];
  /** When changes are held by enough regions (quorum durability). */
  readonly stability: Stability;
  readonly storage: ServerStorage;
  readonly hub: Hub;
  /** Presence of the spaces' clients (protocol 8): presence.ts. */
  readonly presence: PresenceRooms;
  readonly committer: Committer;
  readonly authenticate: Authenticate;
  readonly limits: Limits;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
  readonly maxClockDrift: number;
  /** The limits announced in welcome (what clients fit). */
  readonly announced: ServerLimits;
  /** The hello authenticated: may the session become ready (false: the authenticated sessions are at their cap)? */
  readonly onAuthenticated: (session: Session) => boolean;
  readonly onClose: (session: Session) => void;
  /**
   * With peer regions: retires a replica whose push this region refused as
   * below its refusal level (the server then ends its sessions with
   * `replica_retired`). Another region may hold the refused change, stored
   * there with an acknowledgement the replica never got, so the replica may not
   * stamp it again under its old identity: it rejoins under a new id and
   * writes its unsynced changes again as new ones (server README, "Regions").
   */
  readonly retireRefused?: (replica: ReplicaId) => Promise<void>;
}

/**
 * A client connection as a session sees it: a `ws` socket in the server, an
 * in-memory pipe in the simulation (test/sim). The transport calls the session's
 * `receive`, `pong` and `closed` for what arrives.
 */
export interface Connection {
  /** Bytes queued for sending and not yet written (backpressure). */
  readonly bufferedAmount: number;
  /** True while frames can be sent. */
  readonly open: boolean;
  /** Sends one binary frame (one message). Frames must arrive in the order sent. */
  send(frame: Uint8Array): void;
  /** Closes with a closing handshake. */
  close(code: number, reason: string): void;
  /** Drops the transport at once. */
  terminate(): void;
  /** Liveness probe: the transport calls `pong()` when it is answered. */
  ping(): void;
}

interface Subscription {
  readonly access: Access;
  sentUpTo: number;
  /**
   * The client's origin vector by storage origin ('' : this region's own), when
   * it sent one: entries it holds are not sent again (it may come from a region
   * that is ahead of this one).
   */
  readonly held: Map<string, number> | undefined;
  /**
   * Catch up from the log even from position 0 (a client from another region that holds part of it, or one
   * that has caught up once, at an empty log); else 0 means a snapshot.
   */
  fromLog: boolean;
  live: boolean;
  catchingUp: boolean;
  /** A catch-up was asked for since the last one started. */
  dirty: boolean;
  /** A snapshot of the space is on its way: acks wait for its last chunk (#ack). */
  snapshotting?: boolean;
  /** The ack held back while it is. */
  heldAck?: number;
  /** The horizon last announced to this session (a catch-up does not repeat it). */
  toldHorizon?: HlcString;
}

/** The rate limiter's bucket, in seconds of messagesPerSecond (see #takeToken). */
const BURST_SECONDS = 2;

/** Close codes: 1008 policy violation (protocol errors), 1001 going away, 1013 try again later. */
const CLOSE_POLICY = 1008;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TRY_LATER = 1013;

export class Session implements Follower, PresenceMember {
  replica: ReplicaId = '' as ReplicaId;
  #grant: Grant | undefined;
  #state: 'hello' | 'authenticating' | 'ready' | 'closed' = 'hello';
  /** Counted among the authenticated sessions (admission.ts). */
  authenticated = false;
  /** The peer's protocol version (from hello; the oldest served until then): which error codes it can read. */
  #protocol = MIN_PROTOCOL_VERSION;
  /** For the disconnect log line: when the connection opened, who it was, and how it ended. */
  readonly #openedAt: number;
  #subject: string | undefined;
  #spaceNames: readonly string[] = [];
  #ending: { readonly code: number | undefined; readonly reason: string; readonly by: 'server' | 'client' } | undefined;
  /** Protocol 7, a server without a region: how many retirements this client has heard of (tellRetired); undefined: it hears none. */
  #retiredHeard: number | undefined;
  /** A tellRetired waits for the catch-ups under way. */
  #retiredWaiting = false;
  /** The tellRetired calls, one after another: each reads what the one before did not send. */
  #tellingRetired: Promise<void> = Promise.resolve();
  /** The largest frame this session sends: the server's limit, and the client's when it said (protocol 4). */
  #budget: number;
  readonly #subs = new Map<SpaceId, Subscription>();
  /** Regions that must hold a change before `ack.stable` covers it (hello `durability`; 1: this one). */
  #regions = 1;
  /** Per space, the highest seq acknowledged as stable at that durability. */
  readonly #stable = new Map<SpaceId, number>();
  /** Cancels the waits for stability in progress. */
  readonly #waits = new Set<() => void>();
  #tokens: number;
  /** Presence updates this connection may still send now (a bucket of PRESENCE_UPDATES_PER_SECOND). */
  #presenceTokens = PRESENCE_UPDATES_PER_SECOND;
  #presenceRefill = 0;
  #lastRefill: number;
  /** Rate limiting: until when further drops go unanswered, how many since the last notice, and in the current second. */
  #quietUntil = Number.NEGATIVE_INFINITY;
  #droppedSinceError = 0;
  #floodSince = Number.NEGATIVE_INFINITY;
  #flood = 0;
  #pausedSince: number | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
  readonly #helloTimer: NodeJS.Timeout;
  #expiryTimer: NodeJS.Timeout | undefined;
  alive = true;

  constructor(
    readonly socket: Connection,
    private readonly ctx: SessionContext,
  ) {
    this.#budget = ctx.limits.maxFrameBytes;
    this.#tokens = ctx.limits.messagesPerSecond;
    this.#lastRefill = ctx.now();
    this.#presenceRefill = ctx.now();
    this.#helloTimer = setTimeout(() => this.fail('not_ready', 'no hello received in time', true), ctx.limits.helloTimeoutMs);
    this.#openedAt = ctx.now();
  }

  // ---- transport events -------------------------------------------------------

  /** A frame arrived. */
  receive(bytes: Uint8Array, isBinary = true): void {
    this.#onFrame(bytes, isBinary);
  }

  /** The transport answered a ping. */
  pong(): void {
    this.alive = true;
  }

  /** What `server.inspect()` shows of this connection. */
  inspection(): { replica: ReplicaId | undefined; subject: string | undefined; spaces: readonly string[]; address: string | undefined; openMs: number } {
    return { replica: this.replica || undefined, subject: this.#subject, spaces: this.#spaceNames, address: this.ctx.address, openMs: this.ctx.now() - this.#openedAt };
  }

  /** The transport closed (with the close frame's code and reason, when there was one). */
  closed(code?: number, reason?: string): void {
    this.#ending ??= { code, reason: reason ?? '', by: 'client' };
    this.#closed();
  }

  // ---- Follower -------------------------------------------------------------

  get budget(): number {
    return this.#budget;
  }

  sentUpTo(space: SpaceId): number {
    return this.#subs.get(space)?.sentUpTo ?? 0;
  }

  held(space: SpaceId): ReadonlyMap<string, number> | undefined {
    return this.#subs.get(space)?.held;
  }

  isLive(space: SpaceId): boolean {
    return this.#state === 'ready' && (this.#subs.get(space)?.live ?? false);
  }

  deliver(space: SpaceId, frame: Uint8Array | undefined, upTo: number, count: number): void {
    const sub = this.#subs.get(space);
    if (!sub) return;
    sub.sentUpTo = upTo;
    if (frame) {
      this.#sendFrame(frame);
      this.ctx.metrics.changesRelayed.inc(count);
    }
  }

  resync(space: SpaceId): void {
    void this.#catchUp(space);
  }

  // ---- inbound --------------------------------------------------------------

  #onFrame(bytes: Uint8Array, isBinary: boolean): void {
    if (this.#state === 'closed') return;
    if (!isBinary) return this.fail('malformed_frame', 'frames must be binary', true);
    if (bytes.length > this.ctx.limits.maxFrameBytes) {
      return this.fail('frame_too_large', `frame of ${bytes.length} bytes exceeds the limit of ${this.ctx.limits.maxFrameBytes}`, true);
    }
    if (!this.#takeToken()) return this.#rateLimited();
    let message;
    try {
      message = decodeUpstream(bytes);
    } catch (error) {
      const e = error as ProtocolError;
      return this.fail(e.code ?? 'invalid_message', e.message, true);
    }
    switch (message.type) {
      case 'hello':
        if (this.#state !== 'hello') return this.fail('invalid_message', 'hello sent twice', true);
        this.#state = 'authenticating';
        clearTimeout(this.#helloTimer);
        this.#onHello(message).catch((error: unknown) => this.#internal(error));
        return;
      case 'push':
        if (this.#state !== 'ready') return this.fail('not_ready', 'push before the handshake completed', true);
        this.#onPush(message).catch((error: unknown) => this.#internal(error));
        return;
      case 'floor': {
        if (this.#state !== 'ready') return this.fail('not_ready', 'floor before the handshake completed', true);
        const now = this.ctx.now();
        for (const { space, hlc } of message.floors) {
          if (this.#subs.get(space)?.access !== 'write') continue;
          this.ctx.storage.noteWriter(space, this.replica, capFloor(hlc, now), now).catch((error: unknown) => this.#internal(error));
        }
        return;
      }
      case 'presence':
        if (this.#state !== 'ready') return this.fail('not_ready', 'presence before the handshake completed', true);
        return this.#onPresence(message.space, message.state);
      case 'ping':
        this.#send({ type: 'pong', id: message.id });
        return;
      case 'pong':
        return;
    }
  }

  /**
   * This replica's presence in a space it follows (read access is enough):
   * relayed to the space's other protocol 8 clients, never stored. A state over
   * MAX_PRESENCE_BYTES is refused (too_large), as are updates over
   * PRESENCE_UPDATES_PER_SECOND (rate_limited, dropped): neither ends the
   * connection.
   */
  #onPresence(space: SpaceId, state: Json | null): void {
    if (!this.#subs.has(space)) return this.fail('forbidden', `space "${space}" was not granted to this connection`, false, space);
    const bytes = state === null ? 0 : Buffer.byteLength(JSON.stringify(state));
    if (bytes > MAX_PRESENCE_BYTES) return this.fail('too_large', `a presence state of ${bytes} bytes; at most ${MAX_PRESENCE_BYTES} (MAX_PRESENCE_BYTES)`, false, space);
    const now = this.ctx.now();
    this.#presenceTokens = Math.min(PRESENCE_UPDATES_PER_SECOND, this.#presenceTokens + ((now - this.#presenceRefill) / 1000) * PRESENCE_UPDATES_PER_SECOND);
    this.#presenceRefill = now;
    if (this.#presenceTokens < 1) {
      this.ctx.metrics.framesDropped.inc({ reason: 'presence_rate' });
      const retryAfter = Math.ceil(((1 - this.#presenceTokens) / PRESENCE_UPDATES_PER_SECOND) * 1000);
      return this.fail('rate_limited', `more than ${PRESENCE_UPDATES_PER_SECOND} presence updates per second: this one was dropped`, false, space, retryAfter);
    }
    this.#presenceTokens -= 1;
    this.ctx.presence.set(space, this, state);
  }

  sendPresence(frame: Uint8Array): void {
    if (this.#state === 'ready') this.#sendFrame(frame);
  }

  /**
   * Tells a protocol 6 client the stability horizon of a space it follows
   * (after its catch-up, and whenever the horizon moves), unless it was told
   * that one already; `always`: before a below_horizon refusal, which the
   * client answers by re-stamping past it.
   */
  announceHorizon(space: SpaceId, stability: StorageStability, always = false): void {
    const sub = this.#subs.get(space);
    if (this.#protocol < 6 || this.#state !== 'ready' || stability.hlc === undefined || !sub) return;
    if (!always && stability.hlc === sub.toldHorizon) return;
    // Entries the client wrote itself are never sent back, so its position may lag what it holds: say how far it is.
    if (sub.live && sub.sentUpTo >= stability.upTo && sub.sentUpTo > 0) this.#send({ type: 'changes', space, changes: [], upTo: sub.sentUpTo });
    this.#send({ type: 'horizon', space, hlc: stability.hlc, upTo: stability.upTo });
    // Told for good only once the client has been sent the log that far (it forgets nothing before): else the next catch-up tells it again.
    if (sub.sentUpTo >= stability.upTo) sub.toldHorizon = stability.hlc;
  }

  /**
   * A frame over the rate is dropped unread. One error tells the client when
   * to send again (`retryAfter`) and how many were dropped since the previous
   * one; frames dropped before that time are counted (metric
   * `syncline_frames_dropped_total`), not answered or logged one by one: a
   * client that waits as told sends nothing in between, so every push it sent
   * before the notice is ended by it, and one sent after is answered. A
   * connection that has two seconds' worth of messages (200 at least) dropped
   * within a second is flooding: it is closed.
   */
  #rateLimited(): void {
    this.ctx.metrics.framesDropped.inc({ reason: 'rate' });
    const rate = this.ctx.limits.messagesPerSecond;
    const now = this.ctx.now();
    const retryAfter = Math.ceil(((1 - this.#tokens) / rate) * 1000);
    if (now - this.#floodSince > 1_000) {
      this.#floodSince = now;
      this.#flood = 0;
    }
    if (++this.#flood >= Math.max(2 * rate, 200)) {
      this.fail('rate_limited', `${this.#flood} frames over the rate of ${rate} messages per second within a second: closed`, true, undefined, Math.max(retryAfter, 1_000));
      return;
    }
    if (now < this.#quietUntil) {
      this.#droppedSinceError++;
      return;
    }
    const dropped = this.#droppedSinceError;
    this.#droppedSinceError = 0;
    this.#quietUntil = now + retryAfter;
    const more = dropped > 0 ? ` (${dropped} more dropped since the last notice)` : '';
    this.fail('rate_limited', `more than ${rate} messages per second; this frame was dropped, send it again in ${retryAfter} ms${more}`, false, undefined, retryAfter);
  }

  #takeToken(): boolean {
    const now = this.ctx.now();
    const rate = this.ctx.limits.messagesPerSecond;
    // The bucket holds two seconds' worth: frames are counted when the server gets to them, so after the
    // event loop was busy for a while, the frames a well-paced client sent meanwhile are all counted at once.
    this.#tokens = Math.min(BURST_SECONDS * rate, this.#tokens + ((now - this.#lastRefill) / 1000) * rate);
    this.#lastRefill = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /**
   * Tells a protocol 7 client of a server without a region the replicas
   * retired that it has not heard of (`retired`, in pages), so that it drops
   * their merge-context entries. After welcome, and after each retirement.
   * With regions nothing is told: regions join states, which needs them.
   */
  tellRetired(): void {
    if (this.#retiredHeard === undefined) return;
    // Only to a client that holds the log of each of its spaces as far as it is live: a retired replica's last
    // changes may still be on their way to it (a catch-up under way), and it must apply them before it drops
    // that replica's merge-context entries, or it would drop entries that a version still to come needs, and
    // hold another state than every replica that heard in time. The end of each catch-up asks again.
    if (this.#subs.size === 0 || [...this.#subs.values()].some((sub) => !sub.live || sub.catchingUp)) {
      this.#retiredWaiting = true;
      return;
    }
    this.#retiredWaiting = false;
    this.#tellingRetired = this.#tellingRetired.then(() => this.#tellRetired()).catch((error: unknown) => this.#internal(error));
  }

  async #tellRetired(): Promise<void> {
    while (this.#state === 'ready') {
      const heard = this.#retiredHeard ?? 0;
      const { replicas, total } = await this.ctx.storage.retiredList(heard, MAX_RETIRED_PER_MESSAGE);
      if (this.#state !== 'ready' || replicas.length === 0) return;
      this.#retiredHeard = heard + replicas.length;
      this.#send({ type: 'retired', replicas, upTo: this.#retiredHeard });
      if (this.#retiredHeard >= total) return;
    }
  }

  async #onHello(hello: Hello): Promise<void> {
    if (!isSupportedProtocol(hello.protocol)) {
      return this.fail('unsupported_protocol', `protocol ${hello.protocol} is not supported; this server speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`, true);
    }
    this.#protocol = hello.protocol;
    this.#regions = regionsFor(hello.durability, this.ctx.region === undefined ? 1 : this.ctx.peers.length + 1);
    if (hello.maxFrameBytes !== undefined) {
      if (hello.maxFrameBytes < MIN_FRAME_BYTES) return this.fail('invalid_message', `a client must read frames of at least ${MIN_FRAME_BYTES} bytes (one record of MAX_RECORD_BYTES); hello says ${hello.maxFrameBytes}`, true);
      this.#budget = Math.min(this.#budget, hello.maxFrameBytes);
    }
    // One subscription per space: a second entry would start a second catch-up
    // whose position never advances, resending the log forever.
    if (new Set(hello.spaces.map((s) => s.space)).size !== hello.spaces.length) {
      return this.fail('invalid_message', 'a space is listed twice in hello', true);
    }
    this.replica = hello.replica;
    let grant: Grant;
    try {
      grant = await this.ctx.authenticate({ token: hello.token, replica: hello.replica, spaces: hello.spaces.map((s) => s.space) });
    } catch (error) {
      const code = error instanceof SynclineError && (error.code === 'forbidden' || error.code === 'unauthenticated') ? error.code : 'unauthenticated';
      return this.fail(code, error instanceof Error ? error.message : 'authentication failed', true);
    }
    if (this.#isClosed()) return;
    if (await this.ctx.storage.isRetired(hello.replica)) {
      return this.fail('replica_retired', `replica ${hello.replica} was retired; start again under a new replica id`, true);
    }
    if (this.#isClosed()) return;
    this.#grant = grant;
    const granted: Array<{ space: SpaceId; access: Access; head: number; after: number; region: string | undefined; origins: Hello['spaces'][number]['origins'] }> = [];
    const now = this.ctx.now();
    for (const { space, after, region, origins, floor } of hello.spaces) {
      const access = grant.access(space);
      if (!access) {
        this.fail('forbidden', `no access to space "${space}"`, false, space);
        continue;
      }
      // A replica that may write holds the space's horizon back (at its floor, or its last stored change).
      if (access === 'write') await this.ctx.storage.noteWriter(space, hello.replica, capFloor(floor, now), now);
      granted.push({ space, access, head: await this.ctx.storage.head(space), after, region, origins });
    }
    if (this.#isClosed()) return;
    if (granted.length === 0) return this.fail('forbidden', 'none of the requested spaces is granted', true);
    this.authenticated = this.ctx.onAuthenticated(this);
    if (!this.authenticated) return this.fail('too_many_connections', 'the server is at its connection limit; retry later', true, undefined, 5_000);
    this.#state = 'ready';
    this.#send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      server: this.ctx.serverId,
      time: Math.max(0, Math.floor(this.ctx.now())),
      spaces: granted.map(({ space, access, head }) => ({ space, access, head })),
      limits: this.ctx.announced,
      ...(this.ctx.region !== undefined ? { region: this.ctx.region, peers: [...this.ctx.peers] } : {}),
    });
    this.#subject = grant.subject;
    this.#spaceNames = granted.map((g) => g.space);
    this.ctx.logger.info({ replica: this.replica, subject: grant.subject, spaces: logSpaces(this.#spaceNames), address: this.ctx.address, protocol: this.#protocol }, 'client connected');
    if (this.#protocol >= 7 && this.ctx.region === undefined) this.#retiredHeard = hello.retired ?? 0;
    if (grant.expiresAt !== undefined) this.#expireAt(grant.expiresAt);
    for (const { space, access, after, head, region, origins } of granted) {
      const held = origins && this.ctx.region !== undefined ? new Map(origins.map((o) => [o.region === this.ctx.region ? '' : o.region, o.upTo])) : undefined;
      // Marked as catching up until #start knows where to begin: a resync meanwhile only marks it dirty.
      const sub: Subscription = { access, sentUpTo: 0, held, fromLog: false, live: false, catchingUp: true, dirty: false };
      this.#subs.set(space, sub);
      this.ctx.hub.follow(space, this);
      if (this.#protocol >= 8) this.ctx.presence.join(space, this);
      void this.#start(space, sub, after, head, region);
    }
    // Told once the catch-ups end (tellRetired).
    this.tellRetired();
  }

  /**
   * Where the catch-up of a space starts. A position of this region's log
   * (`region` is this server's; both absent without regions) resumes as it is,
   * unless it is beyond the head (the client saw another deployment's log). A
   * client that comes from another region resumes by its origin vector: from
   * the first entry it does not hold, told to it as an empty `changes` frame, so
   * that its position is this region's from then on. Without a vector, or when
   * an entry it lacks was compacted away, it is sent a snapshot.
   */
  async #start(space: SpaceId, sub: Subscription, after: number, head: number, region: string | undefined): Promise<void> {
    try {
      // Clients before protocol 5 name no region: their positions are taken as this region's, as before.
      if (region === this.ctx.region || this.#protocol < 5) sub.sentUpTo = after > head ? 0 : after;
      else if (sub.held && sub.held.size > 0) {
        const resumed = await this.ctx.storage.resumeAfter(space, sub.held);
        if (this.#state !== 'ready') return;
        if (resumed !== undefined) {
          sub.fromLog = true;
          sub.sentUpTo = resumed;
          if (resumed > 0) this.#send({ type: 'changes', space, changes: [], upTo: resumed });
        }
      }
    } catch (error) {
      return this.#internal(error);
    } finally {
      sub.catchingUp = false;
    }
    await this.#catchUp(space);
  }

  async #onPush(push: Push): Promise<void> {
    const { space, changes } = push;
    const sub = this.#subs.get(space);
    if (!sub || this.#grant?.access(space) === undefined) return this.fail('forbidden', `space "${space}" was not granted to this connection`, false, space);
    if (sub.access !== 'write') return this.fail('forbidden', `read-only access to space "${space}"`, false, space);
    if (changes.length > this.ctx.limits.maxBatch) {
      return this.fail('batch_too_large', `push of ${changes.length} changes exceeds the limit of ${this.ctx.limits.maxBatch}`, false, space);
    }
    const now = this.ctx.now();
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i] as Push['changes'][number];
      try {
        if (change.space !== space) throw new ProtocolError('invalid_message', 'change belongs to another space', `changes[${i}].space`);
        if (change.replica !== this.replica) throw new ProtocolError('invalid_message', 'change was written by another replica', `changes[${i}].replica`);
        if (i > 0 && change.seq !== (changes[i - 1] as { seq: number }).seq + 1) throw new ProtocolError('sequence_gap', 'changes must be in seq order without gaps', `changes[${i}].seq`);
        checkChange(change);
      } catch (error) {
        const code: ErrorCode = error instanceof ProtocolError ? error.code : 'invalid_message';
        return this.fail(code, `change ${i} refused: ${(error as Error).message}`, false, space);
      }
      const ahead = hlcWall(change.hlc) - now;
      if (ahead > this.ctx.maxClockDrift) {
        return this.fail('clock_drift', `change ${i} is stamped ${ahead} ms ahead of the server clock (max ${this.ctx.maxClockDrift} ms); check the device clock`, false, space);
      }
    }
    if (changes.length === 0) return;
    let result;
    try {
      result = await this.ctx.committer.submit({ space, replica: this.replica, changes });
    } catch (error) {
      if (error instanceof SynclineError && (error.code === 'sequence_gap' || error.code === 'quota_exceeded')) return this.fail(error.code, error.message, false, space);
      if (error instanceof SynclineError && error.code === 'below_horizon') {
        // First what is held already (an ack the client may have missed: those changes keep their stamps),
        // then the horizon, so that the client re-stamps past it only what the server does not hold.
        const held = (await this.ctx.storage.replicaProgress(space, [this.replica])).get(this.replica) ?? 0;
        if (held > 0) this.#ack(space, held);
        const stability = await this.ctx.storage.stability(space);
        this.announceHorizon(space, stability, true);
        // With peers the refusal level may be above the collection horizon (gc.ts): it goes out as a horizon at
        // a position no log reaches, so the client stamps past it and collects nothing there.
        if (stability.refused) this.announceHorizon(space, { hlc: stability.refused.hlc, upTo: Number.MAX_SAFE_INTEGER }, true);
        if (this.ctx.retireRefused) {
          // Told first, naming the space and the change: the retirement then ends every other session of the id.
          this.fail('replica_retired', `${error.message}; another region may hold it, so this region retired the replica: go on under a new replica id`, true, space);
          return this.ctx.retireRefused(this.replica);
        }
        return this.fail('below_horizon', error.message, false, space);
      }
      if (error instanceof SynclineError && error.code === 'replica_retired') return this.fail('replica_retired', error.message, true);
      // Storage refused a change it could not apply: nothing of the push was stored; the connection stays.
      if (error instanceof InvalidChangeError) return this.fail('invalid_message', `push refused: ${error.message}`, false, space);
      throw error;
    }
    this.ctx.metrics.changesStored.inc(result.stored.length);
    if (result.upTo === 0) return;
    if (this.#regions <= 1) return this.#ack(space, result.upTo);
    // Stored here: the push is answered now, and `stable` follows once enough regions hold it. Changes
    // held already (a push again after a reconnect) may not be stable yet: wait for the whole log so far.
    const upTo = result.upTo;
    const pos = result.stored.length > 0 ? Math.max(...result.stored.map((e) => e.pos)) : await this.ctx.storage.head(space);
    this.#send({ type: 'ack', space, upTo, stable: this.#stable.get(space) ?? 0 });
    if (this.#state !== 'ready') return;
    const cancel = this.ctx.stability.wait(space, pos, this.#regions, () => {
      this.#waits.delete(cancel);
      const stable = Math.max(upTo, this.#stable.get(space) ?? 0);
      this.#stable.set(space, stable);
      if (this.#state === 'ready') this.#send({ type: 'ack', space, upTo, stable });
    });
    this.#waits.add(cancel);
  }

  /**
   * Acks a push. While a snapshot of the space is being sent, the ack waits
   * until its last chunk has gone: a client applies each chunk as the server's
   * state plus its own unacknowledged changes, and a change stored after the
   * chunk's records were read is in neither once its ack has arrived (nor does
   * the log bring it back: a replica's own changes are not sent to it).
   */
  #ack(space: SpaceId, upTo: number): void {
    const sub = this.#subs.get(space);
    // Clients before protocol 6, and those of a server with a region, join snapshots: nothing to hold for them.
    if (sub?.snapshotting && this.#protocol >= 6 && this.ctx.region === undefined) sub.heldAck = Math.max(sub.heldAck ?? 0, upTo);
    else this.#send({ type: 'ack', space, upTo });
  }

  /**
   * Credentials are checked at hello; their expiry closes the connection, so a
   * shorter token lifetime revokes what is connected too. A client with a token
   * function reconnects with a fresh token and resumes from its position.
   */
  #expireAt(expiresAt: number): void {
    const wait = expiresAt - this.ctx.now();
    if (wait <= 0) return this.fail('unauthenticated', 'the token has expired; reconnect with a fresh one', true);
    // setTimeout holds at most 2^31 - 1 ms (24.8 days): a longer wait is taken in steps.
    this.#expiryTimer = setTimeout(() => this.#expireAt(expiresAt), Math.min(wait, 2 ** 31 - 1));
    this.#expiryTimer.unref?.();
  }

  // ---- catch-up ---------------------------------------------------------------

  /**
   * Reads what the session missed from the log (or a snapshot when its position
   * is 0 or below the compaction horizon), then turns live relay on. `dirty`
   * records resync requests that arrive while a catch-up runs, so none is lost.
   */
  async #catchUp(space: SpaceId): Promise<void> {
    const sub = this.#subs.get(space);
    if (!sub) return;
    sub.dirty = true;
    if (sub.catchingUp) return;
    sub.catchingUp = true;
    const { storage, limits } = this.ctx;
    try {
      while (sub.dirty && this.#state === 'ready' && !this.#paused()) {
        sub.dirty = false;
        sub.live = false;
        for (;;) {
          if (this.#state !== 'ready' || this.#paused()) return;
          const horizon = await storage.horizon(space);
          if (((sub.sentUpTo === 0 && !sub.fromLog) || sub.sentUpTo < horizon) && (await storage.head(space)) > 0) {
            await this.#sendSnapshot(space, sub);
            continue;
          }
          const entries = await storage.readLog(space, sub.sentUpTo, limits.relayBatch, this.#budget);
          if (entries.length === 0) break;
          if ((entries[0] as { pos: number }).pos !== sub.sentUpTo + 1) {
            // Compacted while we read: the snapshot covers what was dropped.
            await this.#sendSnapshot(space, sub);
            continue;
          }
          for (const part of encodeChanges(space, entries, { exclude: this.replica, held: sub.held, region: this.ctx.region }, limits.relayBatch, this.#budget)) {
            this.deliver(space, part.frame, part.upTo, part.count);
          }
        }
        // Live first, then look at the head: a commit is either relayed or seen here.
        sub.live = true;
        // It holds the log up to sentUpTo now, even at 0 (an empty log): what follows is read from the log, not
        // sent as a snapshot, whose records newer than its position the log would send again.
        sub.fromLog = true;
        if ((await storage.head(space)) > sub.sentUpTo) sub.dirty = true;
      }
      if (sub.live && this.#state === 'ready') {
        this.#send({ type: 'synced', space, upTo: sub.sentUpTo });
        // Once per horizon (announceHorizon): a catch-up ends every time another instance stores something.
        if (this.#protocol >= 6) this.announceHorizon(space, await storage.stability(space));
      }
    } catch (error) {
      this.#internal(error);
    } finally {
      sub.catchingUp = false;
    }
    if (this.#retiredWaiting && sub.live) this.tellRetired();
    // A resync asked for after the loop above ended (while `synced` and the horizon went out) only marked
    // the subscription dirty: nobody else reads what it was for.
    if (sub.dirty && this.#state === 'ready' && !this.#paused() && this.#subs.get(space) === sub) void this.#catchUp(space);
  }

  /**
   * Sends the materialized state of a space in chunks, each frame within the
   * byte budget. Its position is the head read first: every record state
   * already includes every change up to it, and changes after it follow from
   * the log. Pages are read by stored bytes too, so a space of large records
   * costs one page of memory at a time, and the session waits for its socket
   * to drain after every chunk.
   */
  async #sendSnapshot(space: SpaceId, sub: Subscription): Promise<void> {
    // Before the head is read: an ack sent earlier is for a change at or below it, which every chunk holds.
    sub.snapshotting = true;
    try {
      await this.#sendSnapshotChunks(space, sub);
    } finally {
      sub.snapshotting = false;
      const held = sub.heldAck;
      sub.heldAck = undefined;
      if (held !== undefined && this.#state === 'ready') this.#send({ type: 'ack', space, upTo: held });
    }
  }

  async #sendSnapshotChunks(space: SpaceId, sub: Subscription): Promise<void> {
    const { storage, limits } = this.ctx;
    const budget = this.#budget;
    const position = await storage.head(space);
    const total = await storage.countRecords(space);
    const origins = this.ctx.region === undefined ? undefined : originList(await storage.originVector(space, position), this.ctx.region);
    let chunk = 0;
    let sent = 0;
    /** A chunk's frame; `chunks` is estimated from the records per chunk so far, and exact on the last one. */
    const encode = (records: readonly SnapshotRecord[], lastOfSnapshot: boolean): Uint8Array => {
      const perChunk = Math.max(1, (sent + records.length) / (chunk + 1));
      const chunks = lastOfSnapshot ? chunk + 1 : Math.max(chunk + 2, Math.ceil(total / perChunk));
      return encodeDownstream({ type: 'snapshot', space, position, chunk, chunks, total: Math.max(total, sent + records.length), records: records as SnapshotRecord[], ...(origins ? { origins } : {}) });
    };
    let page = await storage.snapshotPage(space, undefined, limits.snapshotChunk, budget);
    do {
      const last = page[page.length - 1];
      // One page of look-ahead: records created meanwhile extend the snapshot instead of being skipped.
      const next = last ? await storage.snapshotPage(space, [last.collection, last.id], limits.snapshotChunk, budget) : [];
      const final = next.length === 0;
      // Regions: the collection horizon, read after every page, goes out before the last chunk: the client joins
      // the snapshot and keeps of what it holds only what is after it (client remote-apply.ts, applySnapshot).
      if (final && this.ctx.region !== undefined) this.announceHorizon(space, await storage.stability(space), true);
      for (const { items, frame } of fitFrames(page, (records, lastOfPage) => encode(records, lastOfPage && final), budget)) {
        this.#sendFrame(frame);
        chunk++;
        sent += items.length;
        if (this.#state !== 'ready') return;
        await this.#waitForDrain();
        if (this.#state !== 'ready') return;
      }
      page = next;
    } while (page.length > 0);
    sub.sentUpTo = position;
    this.ctx.metrics.snapshots.inc();
  }

  // ---- outbound, backpressure ------------------------------------------------------

  #send(message: DownstreamMessage): void {
    this.#sendFrame(encodeDownstream(message));
  }

  #sendFrame(frame: Uint8Array): void {
    if (!this.socket.open) return;
    this.socket.send(frame);
    if (this.socket.bufferedAmount > this.ctx.limits.maxBufferedBytes) this.#pause();
  }

  #paused(): boolean {
    return this.#pausedSince !== undefined;
  }

  /** Stops live relay; the session reads from the log again once its socket drains. */
  #pause(): void {
    if (this.#pausedSince !== undefined) return;
    this.#pausedSince = this.ctx.now();
    for (const sub of this.#subs.values()) sub.live = false;
    this.#drainTimer = setInterval(() => {
      if (this.socket.bufferedAmount <= this.ctx.limits.maxBufferedBytes / 2) {
        this.#resume();
      } else if (this.ctx.now() - (this.#pausedSince as number) > this.ctx.limits.slowConsumerTimeoutMs) {
        this.fail('slow_consumer', 'the connection did not read its changes in time', true);
      }
    }, 25);
  }

  #resume(): void {
    clearInterval(this.#drainTimer);
    this.#drainTimer = undefined;
    this.#pausedSince = undefined;
    for (const space of this.#subs.keys()) void this.#catchUp(space);
  }

  async #waitForDrain(): Promise<void> {
    const deadline = this.ctx.now() + this.ctx.limits.slowConsumerTimeoutMs;
    while (this.#state === 'ready' && this.socket.bufferedAmount > this.ctx.limits.maxBufferedBytes / 2) {
      if (this.ctx.now() > deadline) return this.fail('slow_consumer', 'the connection did not read the snapshot in time', true);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  // ---- errors, lifecycle ------------------------------------------------------------

  /** Sends a coded error; fatal ones close the connection. Never throws. */
  fail(code: ErrorCode, message: string, fatal: boolean, space?: SpaceId, retryAfter?: number): void {
    this.ctx.metrics.errors.inc({ code });
    // A refusal: info; a connection dropped for not reading what it is sent: warn.
    this.ctx.logger[code === 'slow_consumer' ? 'warn' : 'info']({ replica: this.replica || undefined, subject: this.#subject, address: this.ctx.address, code, space, fatal }, message);
    try {
      this.#send({ type: 'error', code: errorCodeFor(code, this.#protocol), message: message.slice(0, 4000), fatal, ...(space ? { space } : {}), ...(retryAfter !== undefined ? { retryAfter } : {}) });
    } catch {
      // the socket is gone; nothing more to tell
    }
    if (fatal) this.close(code === 'too_many_connections' || code === 'shutting_down' ? CLOSE_TRY_LATER : CLOSE_POLICY, code);
  }

  #internal(error: unknown): void {
    this.ctx.logger.error({ err: error, replica: this.replica }, 'session error');
    if (this.#state !== 'closed') this.fail('internal', 'internal server error; nothing from the failed request was stored', true);
  }

  /** The state can change across an await; TypeScript's narrowing does not know that. */
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  close(code = CLOSE_GOING_AWAY, reason = ''): void {
    if (this.#state === 'closed') return;
    this.#ending ??= { code, reason, by: 'server' };
    this.#closed();
    try {
      this.socket.close(code, reason);
    } catch {
      this.socket.terminate();
    }
  }

  #closed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#expiryTimer);
    clearInterval(this.#drainTimer);
    for (const cancel of this.#waits) cancel();
    this.#waits.clear();
    for (const space of this.#subs.keys()) {
      this.ctx.hub.unfollow(space, this);
      if (this.#protocol >= 8) this.ctx.presence.leave(space, this);
    }
    this.ctx.onClose(this);
    const ending = this.#ending;
    this.ctx.logger.info(
      {
        replica: this.replica || undefined,
        subject: this.#subject,
        spaces: logSpaces(this.#spaceNames),
        address: this.ctx.address,
        durationMs: this.ctx.now() - this.#openedAt,
        code: ending?.code,
        reason: ending?.reason || undefined,
        by: ending?.by ?? 'client',
      },
      'client disconnected',
    );
  }
}

/** The spaces of a log line: their names, at most 20 (and how many more). */
function logSpaces(spaces: readonly string[]): string[] {
  return spaces.length <= 20 ? [...spaces] : [...spaces.slice(0, 20), `… ${spaces.length - 20} more`];
}

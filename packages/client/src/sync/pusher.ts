/**
 * Pushes the outbox over one connection: oldest changes first, one push in
 * flight per space, each push fitted to the server's limits by count and by
 * bytes, and paced under its message rate. A push ends with an ack that covers
 * it or with an error; either way the next one follows, so the outbox drains
 * whatever its changes' sizes (every change fits a frame on its own: the
 * protocol's promise, kept at write time).
 */
import { encodeUpstream, fitFrames, type Change, type HlcString, type SpaceId } from '@syncline/core/internal';
import type { Pacer } from './pacer.js';
import type { ReplicaPort } from './port.js';

/** What a push may hold now. */
export interface PushBudget {
  readonly frameBytes: number;
  readonly changes: number;
}

interface InFlight {
  readonly first: number;
  readonly hlcs: readonly HlcString[];
}

export interface PusherHooks {
  /** May `space` push now (connected, welcomed, not stopped)? */
  canPush(space: SpaceId): boolean;
  budget(): PushBudget;
  send(frame: Uint8Array): void;
  /** A change no frame can carry: the space must stop. */
  stuck(space: SpaceId, message: string): void;
  /** The outbox could not be read. */
  failed(space: SpaceId, error: unknown): void;
}

export class Pusher {
  readonly #inflight = new Map<SpaceId, InFlight | 'reading'>();
  /**
   * Per space, the highest seq the server holds and the highest it called
   * stable (quorum durability): changes in between stay in the outbox, but are
   * not pushed again on this connection.
   */
  readonly #held = new Map<SpaceId, { upTo: number; stable: number }>();
  readonly #timers = new Map<SpaceId, { readonly at: number; readonly timer: ReturnType<typeof setTimeout> }>();
  /** Spaces asked to push while a read of their outbox ran: that read may not have seen the newest changes. */
  readonly #again = new Set<SpaceId>();
  /** Bytes per change of the last push, to size the next read. */
  #bytesPerChange = 0;
  #closed = false;

  constructor(
    private readonly port: ReplicaPort,
    private readonly pacer: Pacer,
    private readonly hooks: PusherHooks,
  ) {}

  /** True while a push of `space` waits for its ack. */
  inFlight(space: SpaceId): boolean {
    return this.#inflight.has(space);
  }

  /** How many spaces have a push waiting for its ack. */
  get pushing(): number {
    return [...this.#inflight.values()].filter((f) => f !== 'reading').length;
  }

  /** Pushes the next changes of `space`, unless a push is in flight or waiting. */
  next(space: SpaceId): void {
    if (this.#inflight.get(space) === 'reading') this.#again.add(space);
    if (this.#closed || this.#inflight.has(space) || this.#timers.has(space) || !this.hooks.canPush(space)) return;
    this.#again.delete(space);
    this.#inflight.set(space, 'reading');
    this.#push(space).catch((error: unknown) => {
      this.#inflight.delete(space);
      if (!this.#closed) this.hooks.failed(space, error);
    });
  }

  async #push(space: SpaceId): Promise<void> {
    const { frameBytes, changes: most } = this.hooks.budget();
    const guess = this.#bytesPerChange > 0 ? Math.floor((frameBytes * 0.9) / this.#bytesPerChange) : most;
    const held = this.#held.get(space);
    const retained = held ? held.upTo - held.stable : 0;
    const read = await this.port.readOutbox(space, Math.max(1, Math.min(most, guess)) + retained);
    const changes = held ? read.filter((c) => c.seq > held.upTo) : read;
    if (this.#closed || changes.length === 0 || !this.hooks.canPush(space)) {
      this.#inflight.delete(space);
      if (this.#again.delete(space)) this.next(space);
      return;
    }
    const wait = this.pacer.take();
    if (wait > 0) {
      this.#inflight.delete(space);
      this.later(space, wait);
      return;
    }
    const fitted = this.fit(space, changes, frameBytes);
    if (fitted === undefined) {
      this.#inflight.delete(space);
      const change = changes[0] as Change;
      this.hooks.stuck(space, `change ${change.seq} of space "${space}" does not fit in a frame of ${frameBytes} bytes, the most the server reads`);
      return;
    }
    const { frame, count } = fitted;
    this.#bytesPerChange = frame.length / count;
    const sent = changes.slice(0, count);
    this.#inflight.set(space, { first: (sent[0] as Change).seq, hlcs: sent.map((c) => c.hlc) });
    this.hooks.send(frame);
  }

  /**
   * The push frame of a prefix of `changes` within `frameBytes`, halved until it
   * fits (fitFrames: the rule the server's frames follow too); undefined when
   * not even the first change fits.
   */
  fit(space: SpaceId, changes: readonly Change[], frameBytes: number): { readonly frame: Uint8Array; readonly count: number } | undefined {
    const encode = (slice: readonly Change[]): Uint8Array => encodeUpstream({ type: 'push', space, changes: slice as Change[] });
    const first = fitFrames(changes, encode, frameBytes).next();
    if (first.done || first.value.frame.length > frameBytes) return undefined;
    return { frame: first.value.frame, count: first.value.items.length };
  }

  /**
   * The server holds this replica's changes of `space` up to `upTo`, and (with
   * `stable`, quorum durability) as many regions as asked hold them up to
   * `stable`: those leave the outbox (without `stable`, up to `upTo`). The push
   * in flight ends when the ack covers it (a duplicate or stale ack does not end it).
   */
  async ack(space: SpaceId, upTo: number, stable?: number): Promise<void> {
    const flight = this.#inflight.get(space);
    if (stable !== undefined) {
      const held = this.#held.get(space) ?? { upTo: 0, stable: 0 };
      this.#held.set(space, { upTo: Math.max(held.upTo, upTo), stable: Math.max(held.stable, stable) });
    }
    const leaves = stable ?? upTo;
    const known = flight !== undefined && flight !== 'reading' && leaves >= flight.first && leaves < flight.first + flight.hlcs.length;
    if (leaves > 0) await this.port.ackOutbox(space, leaves, known ? flight.hlcs[leaves - flight.first] : undefined);
    if (flight !== undefined && flight !== 'reading' && this.#inflight.get(space) === flight && upTo >= flight.first + flight.hlcs.length - 1) {
      this.#inflight.delete(space);
    }
    this.next(space);
  }

  /** The push in flight of `space` (every space's when undefined) was refused or dropped: it is over. */
  end(space?: SpaceId): SpaceId[] {
    const ended: SpaceId[] = [];
    for (const [s, flight] of this.#inflight) {
      if (flight === 'reading' || (space !== undefined && s !== space)) continue;
      this.#inflight.delete(s);
      ended.push(s);
    }
    return ended;
  }

  /** The number of changes the push in flight of `space` carried (0: none). */
  size(space: SpaceId): number {
    const flight = this.#inflight.get(space);
    return flight === undefined || flight === 'reading' ? 0 : flight.hlcs.length;
  }

  /** Pushes `space` again in `ms` (or later, if already asked to). */
  later(space: SpaceId, ms: number): void {
    const at = globalThis.performance.now() + ms;
    const existing = this.#timers.get(space);
    if (this.#closed || (existing && existing.at >= at)) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(space);
      this.next(space);
    }, ms);
    this.#timers.set(space, { at, timer });
  }

  close(): void {
    this.#closed = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#inflight.clear();
  }
}

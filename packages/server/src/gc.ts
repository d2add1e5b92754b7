/**
 * Garbage collection at the stability horizon (DESIGN.md, "Stability and
 * bounded growth"; the server README's "Bounded growth").
 *
 * One pass: retire the writers not seen for `retireAfterMs` (none that is
 * connected), then per space raise the horizon to where every writer that is
 * not retired has passed (never past the server's clock), drop retired
 * replicas' merge-context entries that no sibling needs (from the records
 * changed since the last pass, or from all when someone was retired since),
 * forget the deleted records at or below the horizon, and, when it moved
 * since this server last told them, tell the connected replicas. A replica says
 * hello before it pushes, and its floor then holds the horizon, so the cap
 * only matters for a space whose writers are all retired: a new replica's
 * writes made offline before that moment are re-stamped (client README).
 *
 * A region with peers keeps two levels per space. Its refusal level is what
 * its own writers (those that said hello here) hold back, as above: its own
 * clients' changes at or below it are refused, and its peers hear it over
 * their links (link protocol 5, `horizon`, with the position it was raised
 * at). Changes of other regions arrive over links with their own stamps, which
 * that level does not bound, so its collection horizon (what it forgets below
 * and tells its clients) is the lower of its refusal level and every peer's,
 * each counted once this region has read that peer's log up to where it was
 * raised, and only when every peer counts the same regions as members (a
 * federation where every region follows every other). Until every peer has
 * told one, it stays where it is. Retired replicas' merge-context entries stay
 * with peers (regions join states, which counts on them; a replica retired
 * here may still write in another region).
 */
import { formatTimestamp, hlcWall, type HlcString, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import type { GcOptions } from './options.js';
import type { ServerStorage, Stability, TrimMark } from './storage/types.js';

/** The default of GcOptions.retireAfterMs: 90 days. */
export const DEFAULT_RETIRE_AFTER_MS = 90 * 24 * 3_600_000;
/** The default of GcOptions.intervalMs. */
export const DEFAULT_GC_INTERVAL_MS = 60_000;

/**
 * How far below the server's clock a replica's floor is held (ms). A floor is
 * the replica's own statement; one ahead of the server's time comes from a
 * device clock that is ahead, and the replica's changes stamped that far ahead
 * are refused (`clock_drift`) and stamped again at about the server's time.
 * So the server never takes a floor later than its own clock less this.
 */
export const FLOOR_CAP_MS = 60_000;

/** `floor` as the server records it: at most its clock (`now`) less FLOOR_CAP_MS. */
export function capFloor(floor: HlcString | undefined, now: number): HlcString | undefined {
  if (floor === undefined) return undefined;
  const cap = formatTimestamp({ wall: Math.max(0, now - FLOOR_CAP_MS), counter: 0, replica: '0' as ReplicaId });
  return floor < cap ? floor : cap;
}

/**
 * Why replicas were retired (the `reason` label of syncline_replicas_retired_total):
 * an operator's decision, inactivity, a push this region refused below its
 * refusal level (with peers: the replica rejoins under a new id), or a peer
 * region that retired them.
 */
export type RetireReason = 'operator' | 'inactive' | 'below_horizon' | 'peer';

/** What one collection pass did (SyncServer.collect). */
export interface GcResult {
  /** Replicas retired for inactivity in this pass. */
  readonly retired: readonly ReplicaId[];
  /** Records forgotten, over every space. */
  readonly collected: number;
  /** Merge records rewritten without the context entries of retired replicas, over every space. */
  readonly trimmed: number;
  /** Each space's horizon after the pass (spaces with none are absent). */
  readonly horizons: ReadonlyMap<SpaceId, HlcString>;
}

export interface GcContext {
  readonly storage: ServerStorage;
  readonly options: GcOptions | undefined;
  /**
   * With peer regions: per space, the lowest level the peers refuse at, as
   * this region has read their logs, or false when one is not known (see the
   * top). Undefined without peers.
   */
  readonly peerLevel: ((space: SpaceId) => HlcString | false) | undefined;
  readonly now: () => number;
  readonly logger: Logger;
  /** Replicas with an open session: never retired for inactivity. */
  readonly connected: () => ReadonlySet<ReplicaId>;
  /** A space's horizon moved: tell its sessions. */
  readonly announce: (space: SpaceId, stability: Stability) => void;
  /** Run at the start of each pass (the server's own writer notes its floors). */
  readonly beforePass?: () => Promise<void>;
  /**
   * A space's refusal level as it stands after a pass, and what its own
   * writers said of themselves: tell the regions that follow this one (they
   * skip what they were told).
   */
  readonly announceLevel: (space: SpaceId, stability: Stability) => Promise<void>;
  /** Replicas were retired: close their sessions. */
  readonly retired: (replicas: readonly ReplicaId[]) => void;
  readonly metrics: Metrics;
}

export class Gc {
  readonly #ctx: GcContext;
  readonly #timer: NodeJS.Timeout | undefined;
  #running: Promise<GcResult> | undefined;
  /** Per space, the horizon this server last announced to its sessions. */
  readonly #announced = new Map<SpaceId, HlcString>();
  /** The pass that follows the running one, shared by every run() made while it runs. */
  #next: Promise<GcResult> | undefined;
  /** Per space, how far this server has trimmed retired replicas' merge-context entries (storage.trimRetired). */
  readonly #trimmed = new Map<SpaceId, TrimMark>();

  constructor(ctx: GcContext) {
    this.#ctx = ctx;
    const interval = ctx.options?.intervalMs ?? DEFAULT_GC_INTERVAL_MS;
    if (interval > 0) {
      this.#timer = setInterval(() => {
        if (this.#running) return; // the timer's pass is due, and one is under way
        this.run().catch((error: unknown) => ctx.logger.error({ err: error }, 'garbage collection failed'));
      }, interval);
      this.#timer.unref();
    }
  }

  /**
   * One pass that starts now or, when one is running, right after it: a pass
   * that began before this call read the horizon before the caller's latest
   * writes, so its result would not cover them. Passes never overlap.
   */
  run(): Promise<GcResult> {
    if (this.#running) {
      this.#next ??= this.#running
        .then(noop, noop)
        .then(() => {
          this.#next = undefined;
          return this.run();
        });
      return this.#next;
    }
    this.#running = this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Retires replicas now (an operator's decision, or inactivity); resolves to those newly retired. */
  async retire(replicas: readonly ReplicaId[], reason: RetireReason = 'operator'): Promise<ReplicaId[]> {
    const retired = await this.#ctx.storage.retire(replicas, this.#ctx.now());
    if (retired.length > 0) {
      this.#ctx.logger.info({ replicas: retired, reason }, 'replicas retired');
      this.#ctx.metrics.replicasRetired.inc({ reason }, retired.length);
      this.#ctx.retired(retired);
    }
    return retired;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #pass(): Promise<GcResult> {
    const { storage, options, now } = this.#ctx;
    await this.#ctx.beforePass?.();
    const retireAfter = options?.retireAfterMs ?? DEFAULT_RETIRE_AFTER_MS;
    let retired: ReplicaId[] = [];
    // Only local writers (storage.inactiveWriters): those of other regions are known here only by their changes.
    if (retireAfter > 0) {
      const inactive = await storage.inactiveWriters(now() - retireAfter, this.#ctx.connected());
      if (inactive.length > 0) retired = await this.retire(inactive, 'inactive');
    }
    const horizons = new Map<SpaceId, HlcString>();
    let collected = 0;
    let trimmed = 0;
    let oldest: HlcString | undefined;
    const cap = formatTimestamp({ wall: Math.max(0, now()), counter: 0, replica: '0' as ReplicaId });
    const { peerLevel } = this.#ctx;
    for (const space of await storage.spaces()) {
      const after = await storage.advanceHorizon(space, cap, peerLevel?.(space));
      await this.#ctx.announceLevel(space, after);
      if (!peerLevel) {
        // Retired replicas' merge-context entries go (not with peers: regions join states, which needs them).
        const mark = await storage.trimRetired(space, this.#trimmed.get(space));
        this.#trimmed.set(space, mark);
        trimmed += mark.records;
      }
      if (after.hlc === undefined) continue;
      horizons.set(space, after.hlc);
      if (oldest === undefined || after.hlc < oldest) oldest = after.hlc;
      const n = await storage.collect(space);
      collected += n;
      // Replicas forget what the server forgot: tell them whenever the horizon moved since this server last
      // did, also when another instance sharing the database did the forgetting (this pass then forgets
      // nothing, and its clients would hear of it only at a catch-up, which their own writes never cause).
      if (after.hlc !== this.#announced.get(space)) {
        this.#announced.set(space, after.hlc);
        this.#ctx.announce(space, after);
      }
    }
    this.#ctx.metrics.gcCollected.inc(collected);
    if (oldest !== undefined) this.#ctx.metrics.gcHorizonLag.set(Math.max(0, (now() - hlcWall(oldest)) / 1000));
    if (collected > 0 || trimmed > 0 || retired.length > 0) this.#ctx.logger.info({ collected, trimmed, retired: retired.length }, 'garbage collection');
    return { retired, collected, trimmed, horizons };
  }
}

function noop(): void {}

/**
 * Commits of other instances sharing the storage (PostgreSQL), relayed from
 * one read of the log per instance: when storage.watch says a space's head
 * moved, this instance reads the new entries once and hands them to the hub,
 * which relays them from memory to every follower at the position before
 * them, as it does for its own commits. Without it each follower would run its
 * own catch-up per remote commit (five statements each), so a hot space would
 * cost the database in proportion to its readers on other instances.
 *
 * Safety rests on the hub: it delivers entries only to a live follower whose
 * position is just before them, and tells any other follower behind them to
 * read the log itself. So a read that falls behind (a local commit relayed
 * first, entries compacted meanwhile) costs catch-ups, never a lost change.
 */
import type { SpaceId } from '@syncline/core/internal';
import type { Hub } from './hub.js';
import type { ServerStorage } from './storage/types.js';

export class RemoteRelay {
  /** Per space, the position up to which this instance has relayed (or left followers to read) the log. */
  readonly #relayed = new Map<SpaceId, number>();
  /** Per space, the highest head notified and not read yet. */
  readonly #pending = new Map<SpaceId, number>();
  readonly #reading = new Set<SpaceId>();

  constructor(
    private readonly storage: ServerStorage,
    private readonly hub: Hub,
    /** Entries per read and per `changes` frame (limits.relayBatch), and the bytes one read may take. */
    private readonly batch: number,
    private readonly maxBytes: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** This instance stored and relayed entries of `space` up to `upTo`. */
  stored(space: SpaceId, upTo: number): void {
    if (this.hub.followers(space) === 0) this.#relayed.delete(space);
    else if (upTo > (this.#relayed.get(space) ?? 0)) this.#relayed.set(space, upTo);
  }

  /** Another instance's commits took `space` to `head` (storage.watch). */
  advanced(space: SpaceId, head: number): void {
    // Nobody follows the space here: nothing is kept for it (every instance hears every commit of the
    // database, of spaces it may never serve).
    if (this.hub.followers(space) === 0) {
      this.#relayed.delete(space);
      this.hub.resyncBehind(space, head);
      return;
    }
    // Nothing relayed here yet: start where the lowest live follower is, not with a catch-up of every
    // follower at once. With none live yet, they are catching up and read the log themselves.
    let relayed = this.#relayed.get(space);
    if (relayed === undefined) {
      relayed = this.hub.lowestLive(space);
      this.#relayed.set(space, relayed ?? head);
      if (relayed === undefined) return this.hub.resyncBehind(space, head);
    }
    if (head <= relayed) return;
    this.#pending.set(space, Math.max(this.#pending.get(space) ?? 0, head));
    if (!this.#reading.has(space)) void this.#read(space);
  }

  async #read(space: SpaceId): Promise<void> {
    this.#reading.add(space);
    let target = 0;
    try {
      for (;;) {
        target = this.#pending.get(space) ?? 0;
        const from = this.#relayed.get(space);
        // Its last follower here left meanwhile (stored() forgot the space).
        if (from === undefined || target <= from) break;
        const entries = await this.storage.readLog(space, from, this.batch, this.maxBytes);
        // Compacted meanwhile, or nothing to read: the followers behind read the log themselves.
        if (entries[0]?.pos !== from + 1) {
          this.#relayed.set(space, Math.max(target, this.#relayed.get(space) ?? 0));
          this.hub.resyncBehind(space, target);
          break;
        }
        this.stored(space, (entries[entries.length - 1] as { pos: number }).pos);
        this.hub.relay(space, entries, this.batch);
      }
    } catch (error) {
      const head = Math.max(target, this.#pending.get(space) ?? 0);
      this.#relayed.set(space, Math.max(head, this.#relayed.get(space) ?? 0));
      this.hub.resyncBehind(space, head);
      this.onError(error);
    } finally {
      this.#pending.delete(space);
      this.#reading.delete(space);
    }
  }
}

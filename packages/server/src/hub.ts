/**
 * The relay: which sessions follow which space, and fan-out of newly stored
 * changes to every other replica of the space, in log order. A session that is
 * not live (catching up, or paused because it reads slowly) is skipped: it reads
 * what it missed from the durable log instead, so no queue grows in memory.
 */
import { encodeDownstream, fitFrames, type Change, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { LoggedChange } from './storage/types.js';

export interface Follower {
  readonly replica: ReplicaId;
  /** The largest frame it may be sent (bytes). */
  readonly budget: number;
  /** Position up to which this follower has been sent the log. */
  sentUpTo(space: SpaceId): number;
  isLive(space: SpaceId): boolean;
  /** Sends an encoded `changes` message covering the log up to `upTo`. */
  deliver(space: SpaceId, frame: Uint8Array | undefined, upTo: number, count: number): void;
  /** The follower missed entries: it must read them from the log. */
  resync(space: SpaceId): void;
}

export class Hub {
  readonly #followers = new Map<SpaceId, Set<Follower>>();
  readonly #advance = new Set<(space: SpaceId) => void>();

  /**
   * Calls back whenever a space's log grew: entries stored here (relay) or by
   * another instance sharing the storage (resyncBehind). Region links use it to
   * read what is new. Returns unsubscribe.
   */
  onAdvance(listener: (space: SpaceId) => void): () => void {
    this.#advance.add(listener);
    return () => this.#advance.delete(listener);
  }

  #advanced(space: SpaceId): void {
    for (const listener of this.#advance) listener(space);
  }

  follow(space: SpaceId, follower: Follower): void {
    let set = this.#followers.get(space);
    if (!set) this.#followers.set(space, (set = new Set()));
    set.add(follower);
  }

  unfollow(space: SpaceId, follower: Follower): void {
    const set = this.#followers.get(space);
    set?.delete(follower);
    if (set?.size === 0) this.#followers.delete(space);
  }

  followers(space: SpaceId): number {
    return this.#followers.get(space)?.size ?? 0;
  }

  /**
   * Entries up to `head` were stored by another server instance sharing the
   * storage: followers behind it read them from the log (in log order).
   */
  resyncBehind(space: SpaceId, head: number): void {
    this.#advanced(space);
    for (const follower of this.#followers.get(space) ?? []) {
      if (follower.sentUpTo(space) < head) follower.resync(space);
    }
  }

  /** Relays entries just stored in `space` (contiguous positions, ascending). */
  relay(space: SpaceId, entries: readonly LoggedChange[], batch: number): number {
    if (entries.length > 0) this.#advanced(space);
    const set = this.#followers.get(space);
    if (!set || entries.length === 0) return 0;
    const first = (entries[0] as LoggedChange).pos;
    const upTo = (entries[entries.length - 1] as LoggedChange).pos;
    const writers = new Set(entries.map((e) => e.change.replica));
    // One encoding for everyone who wrote none of these entries, one per writer otherwise (and per frame budget).
    const frames = new Map<string, Array<{ frame: Uint8Array | undefined; upTo: number; count: number }>>();
    const framesFor = (exclude: ReplicaId | '', budget: number): Array<{ frame: Uint8Array | undefined; upTo: number; count: number }> => {
      const key = `${budget} ${exclude}`;
      let out = frames.get(key);
      if (!out) frames.set(key, (out = encodeChanges(space, entries, exclude, batch, budget)));
      return out;
    };
    let sent = 0;
    for (const follower of set) {
      if (!follower.isLive(space)) continue;
      if (follower.sentUpTo(space) !== first - 1) {
        if (follower.sentUpTo(space) < upTo) follower.resync(space);
        continue;
      }
      for (const part of framesFor(writers.has(follower.replica) ? follower.replica : '', follower.budget)) {
        // A frame can fill the follower's send buffer and pause it: the rest of a
        // large commit group then waits in the log, not in the socket's memory.
        if (!follower.isLive(space)) break;
        follower.deliver(space, part.frame, part.upTo, part.count);
        sent += part.count;
      }
    }
    return sent;
  }
}

/**
 * Splits entries into `changes` frames of at most `batch` changes and at most
 * `maxBytes` bytes (halving a slice until it fits; one change always does),
 * leaving out one replica's own. A slice of only the replica's own changes
 * still gets a frame (with no changes): its `upTo` is how a writer learns its
 * log position, and a writer whose position stayed at 0 would be sent a whole
 * snapshot on every reconnect.
 */
export function encodeChanges(
  space: SpaceId,
  entries: readonly LoggedChange[],
  exclude: ReplicaId | '',
  batch: number,
  maxBytes: number,
): Array<{ frame: Uint8Array | undefined; upTo: number; count: number }> {
  const out: Array<{ frame: Uint8Array | undefined; upTo: number; count: number }> = [];
  const ownless = (slice: readonly LoggedChange[]): Change[] => slice.filter((e) => e.change.replica !== exclude).map((e) => e.change);
  const encode = (slice: readonly LoggedChange[]): Uint8Array => encodeDownstream({ type: 'changes', space, changes: ownless(slice), upTo: (slice[slice.length - 1] as LoggedChange).pos });
  for (let i = 0; i < entries.length; i += batch) {
    for (const { items, frame } of fitFrames(entries.slice(i, i + batch), encode, maxBytes)) {
      out.push({ frame, upTo: (items[items.length - 1] as LoggedChange).pos, count: items.reduce((n, e) => (e.change.replica === exclude ? n : n + 1), 0) });
    }
  }
  return out;
}

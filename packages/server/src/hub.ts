/**
 * The relay: which sessions follow which space, and fan-out of newly stored
 * changes to every other replica of the space, in log order. A session that is
 * not live (catching up, or paused because it reads slowly) is skipped: it reads
 * what it missed from the durable log instead, so no queue grows in memory.
 */
import { encodeDownstream, fitFrames, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { LoggedChange } from './storage/types.js';

export interface Follower {
  readonly replica: ReplicaId;
  /** The largest frame it may be sent (bytes). */
  readonly budget: number;
  /** Position up to which this follower has been sent the log. */
  sentUpTo(space: SpaceId): number;
  /** The entries it holds already, per origin ('' : this region's own) up to an origin position; not sent again. */
  held(space: SpaceId): ReadonlyMap<string, number> | undefined;
  isLive(space: SpaceId): boolean;
  /** Sends an encoded `changes` message covering the log up to `upTo`. */
  deliver(space: SpaceId, frame: Uint8Array | undefined, upTo: number, count: number): void;
  /** The follower missed entries: it must read them from the log. */
  resync(space: SpaceId): void;
}

export class Hub {
  /** This server's region: `changes` frames then carry origin vectors (protocol 5). */
  constructor(private readonly region?: string) {}

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

  /** The lowest position a live follower of `space` has been sent up to (undefined: none is live). */
  lowestLive(space: SpaceId): number | undefined {
    let lowest: number | undefined;
    for (const follower of this.#followers.get(space) ?? []) {
      if (follower.isLive(space) && (lowest === undefined || follower.sentUpTo(space) < lowest)) lowest = follower.sentUpTo(space);
    }
    return lowest;
  }

  /**
   * Relays entries just stored in `space` (contiguous positions, ascending). A
   * live follower at the position before them gets them all; one part-way into
   * them (it read some from the log itself, ahead of this relay) gets the rest;
   * one behind them missed some and reads the log.
   */
  relay(space: SpaceId, entries: readonly LoggedChange[], batch: number): number {
    if (entries.length > 0) this.#advanced(space);
    const set = this.#followers.get(space);
    if (!set || entries.length === 0) return 0;
    const first = (entries[0] as LoggedChange).pos;
    const upTo = (entries[entries.length - 1] as LoggedChange).pos;
    const writers = new Set(entries.map((e) => e.change.replica));
    // One encoding per starting point, per writer among the entries (everyone else shares one) and per frame budget.
    const frames = new Map<string, Array<{ frame: Uint8Array | undefined; upTo: number; count: number }>>();
    const framesFor = (rest: readonly LoggedChange[], exclude: ReplicaId | '', budget: number): Array<{ frame: Uint8Array | undefined; upTo: number; count: number }> => {
      const key = `${budget} ${rest.length} ${exclude}`;
      let out = frames.get(key);
      if (!out) frames.set(key, (out = encodeChanges(space, rest, { exclude, region: this.region }, batch, budget)));
      return out;
    };
    let sent = 0;
    for (const follower of set) {
      if (!follower.isLive(space)) continue;
      const at = follower.sentUpTo(space);
      if (at >= upTo) continue;
      if (at < first - 1) {
        follower.resync(space);
        continue;
      }
      const rest = at === first - 1 ? entries : entries.slice(at - first + 1);
      const exclude = writers.has(follower.replica) ? follower.replica : '';
      const held = follower.held(space);
      // A follower that came from a region ahead of this one holds some of these already: its own frames.
      const parts = held && rest.some((e) => isHeld(held, e)) ? encodeChanges(space, rest, { exclude, held, region: this.region }, batch, follower.budget) : framesFor(rest, exclude, follower.budget);
      for (const part of parts) {
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

/** An entry the holder of `held` has already. */
const isHeld = (held: ReadonlyMap<string, number> | undefined, entry: LoggedChange): boolean => held !== undefined && (held.get(entry.origin) ?? 0) >= entry.originPos;

/** A storage origin vector as the wire names it: this region's own entries ('') under `region`. */
export function originList(vector: ReadonlyMap<string, number>, region: string): Array<{ region: string; upTo: number }> {
  return [...vector].map(([origin, upTo]) => ({ region: origin === '' ? region : origin, upTo }));
}

/** Who a `changes` frame is for. */
export interface Recipient {
  /** A replica whose own changes are left out ('' : nobody's). */
  readonly exclude: ReplicaId | '';
  /** Entries it holds already (Follower.held), left out too. */
  readonly held?: ReadonlyMap<string, number> | undefined;
  /** This server's region: each frame says, per origin, how far the recipient then holds it (protocol 5). */
  readonly region?: string | undefined;
}

/**
 * Splits entries into `changes` frames of at most `batch` changes and at most
 * `maxBytes` bytes (halving a slice until it fits; one change always does),
 * leaving out one replica's own and what the recipient holds. A slice of only
 * such changes still gets a frame (with no changes): its `upTo` is how a writer
 * learns its log position, and a writer whose position stayed at 0 would be
 * sent a whole snapshot on every reconnect. With a region, each frame carries
 * per origin the highest origin position of its slice (`origins`).
 */
export function encodeChanges(
  space: SpaceId,
  entries: readonly LoggedChange[],
  to: Recipient,
  batch: number,
  maxBytes: number,
): Array<{ frame: Uint8Array | undefined; upTo: number; count: number }> {
  const out: Array<{ frame: Uint8Array | undefined; upTo: number; count: number }> = [];
  const sent = (e: LoggedChange): boolean => e.change.replica !== to.exclude && !isHeld(to.held, e);
  const origins = (slice: readonly LoggedChange[]): { origins?: Array<{ region: string; upTo: number }> } => {
    if (to.region === undefined) return {};
    const vector = new Map<string, number>();
    for (const e of slice) vector.set(e.origin, Math.max(vector.get(e.origin) ?? 0, e.originPos));
    return { origins: originList(vector, to.region) };
  };
  const encode = (slice: readonly LoggedChange[]): Uint8Array =>
    encodeDownstream({ type: 'changes', space, changes: slice.filter(sent).map((e) => e.change), upTo: (slice[slice.length - 1] as LoggedChange).pos, ...origins(slice) });
  for (let i = 0; i < entries.length; i += batch) {
    for (const { items, frame } of fitFrames(entries.slice(i, i + batch), encode, maxBytes)) {
      out.push({ frame, upTo: (items[items.length - 1] as LoggedChange).pos, count: items.reduce((n, e) => (sent(e) ? n + 1 : n), 0) });
    }
  }
  return out;
}

/**
 * Quorum durability (hello `durability`, protocol 5): when the changes a client
 * pushed are held by as many regions as it asked. Every region that follows
 * this one reports how far it has stored this region's log (link `read`, kept
 * in storage under `follower:<region>`); a position is held by this region and
 * by each follower that stored past it. The reports are read from storage, so
 * every instance of a region on one PostgreSQL database sees them whichever
 * instance a follower's link reached; a report to this process is looked at
 * at once (`noted`), the others within POLL_MS.
 */
import type { SpaceId } from '@syncline/core/internal';
import { FOLLOWER_PREFIX } from './link-session.js';
import type { ServerStorage } from '../storage/types.js';

/** How often positions are read from storage while something waits. */
const POLL_MS = 100;

interface Waiter {
  readonly space: SpaceId;
  readonly pos: number;
  readonly regions: number;
  readonly stable: () => void;
}

export class Stability {
  #waiters: Waiter[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #checking = false;
  #again = false;

  constructor(
    private readonly storage: ServerStorage,
    private readonly onError: (error: unknown) => void,
  ) {}

  /**
   * Calls `stable` once `regions` regions (this one included) hold this
   * region's log of `space` up to `pos`. Waiters of a space are answered in the
   * order they came. Returns cancel.
   */
  wait(space: SpaceId, pos: number, regions: number, stable: () => void): () => void {
    const waiter: Waiter = { space, pos, regions, stable };
    this.#waiters.push(waiter);
    this.#schedule(0);
    return () => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
    };
  }

  /** A follower of this process reported a position: look now. */
  noted(): void {
    if (this.#waiters.length > 0) this.#schedule(0);
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#waiters = [];
  }

  #schedule(ms: number): void {
    if (this.#checking) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined && ms > 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#check(), ms);
    this.#timer.unref?.();
  }

  async #check(): Promise<void> {
    this.#timer = undefined;
    this.#checking = true;
    try {
      const spaces = new Set(this.#waiters.map((w) => w.space));
      const followers = (await this.storage.linkPeers()).filter((key) => key.startsWith(FOLLOWER_PREFIX));
      const stored = await Promise.all(followers.map((key) => this.storage.linkPositions(key)));
      for (const waiter of [...this.#waiters]) {
        if (!spaces.has(waiter.space)) continue;
        const holders = 1 + stored.filter((positions) => (positions.get(waiter.space) ?? 0) >= waiter.pos).length;
        if (holders < waiter.regions) {
          spaces.delete(waiter.space); // later waiters of the space wait behind this one
          continue;
        }
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        waiter.stable();
      }
    } catch (error) {
      this.onError(error);
    } finally {
      this.#checking = false;
    }
    if (this.#again) {
      this.#again = false;
      this.#schedule(0);
    } else if (this.#waiters.length > 0) this.#schedule(POLL_MS);
  }
}

/**
 * `sync.flushed()`: waiters for "everything written before now is on the
 * server". A waiter holds, per space, the seq of the last change written when
 * it began; it is done once the oldest change left in each space's outbox is
 * past that seq (the outbox keeps a change until the server acknowledges it).
 */
import type { SpaceId } from '@syncline/core/internal';
import { SyncError } from '../errors.js';
import type { ReplicaPort } from './port.js';
import type { SyncErrorInfo } from './status.js';

interface Waiter {
  /** Per space, the seq of the last change written when it began. */
  readonly targets: Map<SpaceId, number>;
  /** Spaces whose set-aside changes (a rejoin) are not written again yet: their target is the last seq once they are. */
  readonly aside: Set<SpaceId>;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout> | undefined;
}

export class FlushWaiters {
  readonly #waiters = new Set<Waiter>();

  constructor(
    private readonly port: ReplicaPort,
    /** The spaces the engine syncs now (it changes with addSpace / removeSpace). */
    private readonly spaces: ReadonlySet<SpaceId>,
    /** The spaces stopped for good, with their refusal: a waiter they hold cannot finish. */
    private readonly stopped: ReadonlyMap<SpaceId, SyncErrorInfo>,
  ) {}

  /** Waits for the changes written so far; `describe` explains a timeout. */
  async wait(timeoutMs: number | undefined, describe: () => string): Promise<void> {
    const spaces = [...this.spaces];
    const [seqs, aside] = await Promise.all([Promise.all(spaces.map((space) => this.port.lastSeq(space))), Promise.all(spaces.map((space) => this.port.countAside(space)))]);
    const targets = new Map(spaces.map((space, i) => [space, seqs[i] as number]));
    await new Promise<void>((resolve, reject) => {
      const timer =
        timeoutMs === undefined ? undefined : setTimeout(() => this.#finish(waiter, new SyncError('timeout', `changes were not all acknowledged within ${timeoutMs} ms (${describe()})`)), timeoutMs);
      const waiter: Waiter = { targets, aside: new Set(spaces.filter((_, i) => (aside[i] as number) > 0)), resolve, reject, timer };
      this.#waiters.add(waiter);
      void this.check();
    });
  }

  /** Resolves the waiters whose changes are all acknowledged; rejects those a stopped space holds. Call after acks and stops. */
  async check(): Promise<void> {
    if (this.#waiters.size === 0) return;
    const oldest = new Map<SpaceId, number>();
    const asideLeft = new Map<SpaceId, number>();
    const waitingAside = new Set([...this.#waiters].flatMap((w) => [...w.aside]));
    for (const space of this.spaces) {
      const [first] = await this.port.readOutbox(space, 1).catch(() => []);
      oldest.set(space, first ? first.seq : Number.POSITIVE_INFINITY);
      if (waitingAside.has(space)) asideLeft.set(space, await this.port.countAside(space).catch(() => 1));
    }
    for (const waiter of this.#waiters) {
      // Set-aside changes written again since: they are what this waiter waits for in that space now.
      for (const space of waiter.aside) {
        if (asideLeft.get(space) !== 0) continue;
        waiter.aside.delete(space);
        waiter.targets.set(space, await this.port.lastSeq(space).catch(() => Number.POSITIVE_INFINITY));
      }
      if (waiter.aside.size > 0) continue;
      const targets = [...waiter.targets];
      const removed = targets.find(([space, seq]) => !this.spaces.has(space) && seq > 0);
      if (removed) {
        this.#finish(waiter, new SyncError('space_removed', `space "${removed[0]}" was removed from sync before its changes were acknowledged; they stay on the device`));
        continue;
      }
      const blocked = targets.find(([space, seq]) => this.stopped.has(space) && (oldest.get(space) as number) <= seq);
      if (blocked) {
        const info = this.stopped.get(blocked[0]) as SyncErrorInfo;
        this.#finish(waiter, new SyncError(info.code, `space "${blocked[0]}" stopped: ${info.message}`));
      } else if (targets.every(([space, seq]) => (oldest.get(space) as number) > seq)) {
        this.#finish(waiter);
      }
    }
  }

  /**
   * The replica rejoined under a new id: what each waiter waited for was set
   * aside, and it waits for those changes, written again, instead.
   */
  rejoined(): void {
    for (const waiter of this.#waiters) {
      for (const space of waiter.targets.keys()) {
        waiter.targets.set(space, 0);
        waiter.aside.add(space);
      }
    }
  }

  /** Rejects every waiter (the engine stopped or closed). */
  fail(error: Error): void {
    for (const waiter of [...this.#waiters]) this.#finish(waiter, error);
  }

  #finish(waiter: Waiter, error?: Error): void {
    if (!this.#waiters.delete(waiter)) return;
    clearTimeout(waiter.timer);
    if (error) waiter.reject(error);
    else waiter.resolve();
  }
}

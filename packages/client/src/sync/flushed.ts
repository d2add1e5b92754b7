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
  readonly targets: ReadonlyArray<readonly [SpaceId, number]>;
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
    const targets = await Promise.all([...this.spaces].map(async (space) => [space, await this.port.lastSeq(space)] as const));
    await new Promise<void>((resolve, reject) => {
      const timer =
        timeoutMs === undefined ? undefined : setTimeout(() => this.#finish(waiter, new SyncError('timeout', `changes were not all acknowledged within ${timeoutMs} ms (${describe()})`)), timeoutMs);
      const waiter: Waiter = { targets, resolve, reject, timer };
      this.#waiters.add(waiter);
      void this.check();
    });
  }

  /** Resolves the waiters whose changes are all acknowledged; rejects those a stopped space holds. Call after acks and stops. */
  async check(): Promise<void> {
    if (this.#waiters.size === 0) return;
    const oldest = new Map<SpaceId, number>();
    for (const space of this.spaces) {
      const [first] = await this.port.readOutbox(space, 1).catch(() => []);
      oldest.set(space, first ? first.seq : Number.POSITIVE_INFINITY);
    }
    for (const waiter of this.#waiters) {
      const removed = waiter.targets.find(([space, seq]) => !this.spaces.has(space) && seq > 0);
      if (removed) {
        this.#finish(waiter, new SyncError('space_removed', `space "${removed[0]}" was removed from sync before its changes were acknowledged; they stay on the device`));
        continue;
      }
      const blocked = waiter.targets.find(([space, seq]) => this.stopped.has(space) && (oldest.get(space) as number) <= seq);
      if (blocked) {
        const info = this.stopped.get(blocked[0]) as SyncErrorInfo;
        this.#finish(waiter, new SyncError(info.code, `space "${blocked[0]}" stopped: ${info.message}`));
      } else if (waiter.targets.every(([space, seq]) => (oldest.get(space) as number) > seq)) {
        this.#finish(waiter);
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

/**
 * Group commit for a replica's writes. Calls made while another commit runs,
 * or in the same tick, share one storage transaction: a burst of writes costs
 * one transaction, not one each. Each call stays atomic on its own: a group
 * whose transaction fails is retried one call at a time, so a call fails only
 * for its own reasons. A task (re-stamping) runs alone, between groups: no
 * write is stamped while it moves the clock.
 */
import type { Change } from '@syncline/core/internal';
import type { WriteOp } from './write.js';

interface QueuedWrite {
  readonly kind: 'write';
  readonly ops: readonly WriteOp[];
  readonly resolve: (changes: Change[]) => void;
  readonly reject: (error: unknown) => void;
}

interface QueuedTask {
  readonly kind: 'task';
  readonly run: () => Promise<void>;
}

/** The most writes one group commit takes; a call larger than this still commits whole. */
const GROUP_COMMIT_MAX_OPS = 5_000;

export class CommitQueue {
  readonly #queued: Array<QueuedWrite | QueuedTask> = [];
  #draining = false;

  /** `commit` writes a group of ops in one transaction and returns their changes in order. */
  constructor(private readonly commit: (ops: readonly WriteOp[]) => Promise<Change[]>) {}

  /** Queues one call's writes; resolves with its changes once they are committed. */
  write(ops: readonly WriteOp[]): Promise<Change[]> {
    const done = new Promise<Change[]>((resolve, reject) => this.#queued.push({ kind: 'write', ops, resolve, reject }));
    this.#kick();
    return done;
  }

  /** Runs `task` alone, after the writes queued before it and before those queued after. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queued.push({ kind: 'task', run: () => task().then(resolve, reject) });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queued.length > 0) {
        const head = this.#queued[0] as QueuedWrite | QueuedTask;
        if (head.kind === 'task') {
          this.#queued.shift();
          await head.run();
          continue;
        }
        let size = 0;
        let n = 0;
        for (; n < this.#queued.length; n++) {
          const entry = this.#queued[n] as QueuedWrite | QueuedTask;
          if (entry.kind !== 'write' || (n > 0 && size + entry.ops.length > GROUP_COMMIT_MAX_OPS)) break;
          size += entry.ops.length;
        }
        const group = this.#queued.splice(0, n) as QueuedWrite[];
        if (group.length > 1) {
          try {
            const changes = await this.commit(group.flatMap((entry) => entry.ops));
            let at = 0;
            for (const entry of group) {
              entry.resolve(changes.slice(at, at + entry.ops.length));
              at += entry.ops.length;
            }
            continue;
          } catch {
            // One call's writes may have failed the group: each call alone, in order.
          }
        }
        for (const entry of group) await this.commit(entry.ops).then(entry.resolve, entry.reject);
      }
    } finally {
      this.#draining = false;
    }
  }
}

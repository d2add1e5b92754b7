/**
 * What both simulations (simulation.ts, one server; regions.ts, several
 * regions) run the same way: failures that are checks, driving virtual time
 * until a promise settles, each replica's queue of operations, the background
 * tasks a run waits for, and the workload's crdt edits.
 */
import type { Replica } from '@syncline/client';
import { expect } from 'vitest';
import type { VirtualTime } from './virtual-time.js';
import type { Op } from './workload.js';

/** A check that failed: its message is the run's failure (not a crash, whose stack would be). */
export class Failure extends Error {}

/** Runs virtual time until the promise settles (bounded by `limitMs` of virtual time). */
export async function drive<T>(time: VirtualTime, promise: Promise<T>, limitMs = 60_000): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => (settled = true));
  watched.catch(() => undefined);
  for (let waited = 0; !settled; waited += 5) {
    if (waited > limitMs) throw new Failure(`an operation did not finish within ${limitMs} ms of virtual time`);
    await time.runFor(5);
  }
  return watched;
}

/** A replica slot's queue: its operations run one after the other; `busy` counts those not finished. */
export interface ReplicaQueue {
  readonly index: number;
  replica: Replica | undefined;
  chain: Promise<void>;
  busy: number;
}

/** Queues a task on the slot's replica; a task that throws is a failure naming the replica and `what`. */
export function enqueue(slot: ReplicaQueue, what: string, task: (replica: Replica) => Promise<void>, fail: (message: string) => void): void {
  slot.busy++;
  slot.chain = slot.chain
    .then(async () => {
      if (!slot.replica) throw new Failure('replica is not open');
      await task(slot.replica);
    })
    .catch((error: unknown) => fail(`r${slot.index} ${what} failed: ${error instanceof Error ? error.message : String(error)}`))
    .finally(() => slot.busy--);
}

/** Tasks a run started and must see end (server closes, restarts): one that rejects is a failure. */
export class Background {
  readonly #tasks = new Set<Promise<void>>();
  constructor(private readonly fail: (message: string) => void) {}

  track(promise: Promise<void>): void {
    const p = promise.catch((error: unknown) => this.fail(`background task failed: ${String(error)}`)).finally(() => this.#tasks.delete(p));
    this.#tasks.add(p);
  }

  /** Tasks not finished. */
  get size(): number {
    return this.#tasks.size;
  }
}

/** A workload edit of a crdt field: Y.Text in notes.body, Y.Map in boards.cells. */
export async function editCrdt(replica: Replica, space: string, op: Op & { readonly kind: 'text' | 'map' }): Promise<void> {
  if (op.kind === 'text') {
    const text = await replica.text('notes', op.id, 'body', { space });
    const at = Math.floor(op.at * (text.length + 1));
    text.doc?.transact(() => {
      if (op.remove > 0 && at < text.length) text.delete(at, Math.min(op.remove, text.length - at));
      if (op.insert) text.insert(Math.min(at, text.length), op.insert);
    });
    return;
  }
  const map = await replica.map('boards', op.id, 'cells', { space });
  if (op.value === null) map.delete(op.key);
  else map.set(op.key, op.value);
}

/** What a planted-bug check needs of a run. */
interface RunOutcome {
  readonly seed: number;
  readonly ok: boolean;
  readonly failures: readonly string[];
}

/**
 * A planted bug is found within 40 seeds, with a failure that `finds` matches,
 * and the same seed without the bug passes (the failure is the bug's).
 */
export async function expectPlantedBugFound<B>(run: (seed: number, bug?: B) => Promise<RunOutcome>, bug: B, finds: RegExp): Promise<void> {
  let found: RunOutcome | undefined;
  for (let seed = 1; seed <= 40 && !found; seed++) {
    const result = await run(seed, bug);
    if (!result.ok) found = result;
  }
  expect(found, `${String(bug)} was not found in 40 seeds`).toBeDefined();
  const failure = found as RunOutcome;
  expect(failure.failures.join('\n')).toMatch(finds);
  expect((await run(failure.seed)).ok).toBe(true);
  console.log(`${String(bug)}: found at seed ${failure.seed}: ${failure.failures[0]}`);
}

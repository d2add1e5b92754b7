/**
 * Re-reads something derived from one record (its row, its conflicts) now and
 * after every committed transaction that touches the record: local, another
 * tab's, or remote (replica.onCommit sees all three).
 */
import type { Replica } from '@syncline/client';
import { toError } from './live-value.js';

export interface RecordTarget {
  readonly collection: string;
  readonly id: string;
  readonly space: string;
}

/**
 * One read at a time: commits that arrive during a read cause one more read
 * after it (not one each), and a read that such a commit made stale is not
 * delivered, so results arrive in commit order and never go back in time.
 * Returns the function that stops watching.
 */
export function watchRecord<T>(
  replica: Replica,
  target: RecordTarget,
  read: () => Promise<T>,
  deliver: (value: T) => void,
  fail: (error: Error) => void,
): () => void {
  let active = true;
  let dirty = true;
  let running = false;

  const run = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      while (dirty && active) {
        dirty = false;
        try {
          const value = await read();
          if (active && !dirty) deliver(value);
        } catch (error) {
          if (active && !dirty) fail(toError(error));
        }
      }
    } finally {
      running = false;
    }
  };

  const off = replica.onCommit((event) => {
    if (!event.records.some(([collection, id, space]) => collection === target.collection && id === target.id && space === target.space)) return;
    dirty = true;
    void run();
  });
  void run();
  return () => {
    active = false;
    off();
  };
}

/**
 * Live queries. A subscription re-runs its query after a change to its collection
 * (local, another tab's, or remote) and calls back only when the result differs.
 * Re-runs are coalesced: any number of changes in one microtask cause one run.
 */
import { canonicalJson } from '@syncline/core';
import type { Query, Row } from './query.js';

export type QueryCallback = (rows: Row[]) => void;

interface Subscription {
  readonly query: Query;
  readonly callback: QueryCallback;
  /** Where errors of this query's runs go; default: the replica's onError. */
  readonly onError: ((error: unknown) => void) | undefined;
  signature: string | undefined;
  dirty: boolean;
  /** A run is in flight; changes meanwhile make it run again instead of starting another. */
  running: boolean;
  active: boolean;
}

function signature(rows: readonly Row[]): string {
  let out = '';
  for (const row of rows) out += `${row.space}\u0000${row.id}\u0000${canonicalJson(row.value)}\u0001`;
  return out;
}

export class LiveQueries {
  readonly #byCollection = new Map<string, Set<Subscription>>();
  #scheduled = false;

  constructor(
    private readonly execute: (query: Query) => Promise<Row[]>,
    private readonly onError: (error: unknown) => void,
  ) {}

  subscribe(query: Query, callback: QueryCallback, onError?: (error: unknown) => void): () => void {
    const sub: Subscription = { query, callback, onError, signature: undefined, dirty: true, running: false, active: true };
    let set = this.#byCollection.get(query.collection);
    if (!set) this.#byCollection.set(query.collection, (set = new Set()));
    set.add(sub);
    this.#schedule();
    return () => {
      sub.active = false;
      const subs = this.#byCollection.get(query.collection);
      subs?.delete(sub);
      if (subs?.size === 0) this.#byCollection.delete(query.collection);
    };
  }

  /** Marks every subscription on these collections for a re-run. */
  invalidate(collections: Iterable<string>): void {
    let any = false;
    for (const collection of collections) {
      for (const sub of this.#byCollection.get(collection) ?? []) {
        sub.dirty = true;
        any = true;
      }
    }
    if (any) this.#schedule();
  }

  /** Ends every subscription (the replica closed): no more runs, callbacks or errors. */
  close(): void {
    for (const set of this.#byCollection.values()) for (const sub of set) sub.active = false;
    this.#byCollection.clear();
  }

  get size(): number {
    let n = 0;
    for (const set of this.#byCollection.values()) n += set.size;
    return n;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      for (const set of this.#byCollection.values()) for (const sub of set) if (sub.dirty) void this.#run(sub);
    });
  }

  /**
   * One run at a time per subscription: changes that arrive while a run is in
   * flight cause one more run after it, not one run each (a burst of commits
   * from another tab would otherwise start a query per commit). A result that a
   * change made stale before it arrived is not delivered.
   */
  async #run(sub: Subscription): Promise<void> {
    if (sub.running) return;
    sub.running = true;
    try {
      while (sub.dirty && sub.active) {
        sub.dirty = false;
        let rows: Row[];
        try {
          rows = await this.execute(sub.query);
        } catch (error) {
          if (sub.active) (sub.onError ?? this.onError)(error);
          continue;
        }
        if (!sub.active || sub.dirty) continue;
        const sig = signature(rows);
        if (sig === sub.signature) continue;
        sub.signature = sig;
        try {
          sub.callback(rows);
        } catch (error) {
          this.onError(error);
        }
      }
    } finally {
      sub.running = false;
    }
  }
}

/**
 * Live queries. A subscription re-runs its query after a change to its collection
 * (local, another tab's, or remote) and calls back only when the result differs.
 * Re-runs are coalesced: any number of changes in one microtask cause one run.
 */
import type { Fields, Json } from '@syncline/core/internal';
import type { Query, Row } from './query.js';

/** Receives a live query's rows: the result now, then each new result. */
export type QueryCallback<T = Fields> = (rows: Row<T>[]) => void;

interface Subscription {
  readonly query: Query;
  readonly callback: QueryCallback;
  /** Where errors of this query's runs go; default: the replica's onError. */
  readonly onError: ((error: unknown) => void) | undefined;
  /** The rows last delivered (undefined: none yet). */
  last: Row[] | undefined;
  dirty: boolean;
  /** A run is in flight; changes meanwhile make it run again instead of starting another. */
  running: boolean;
  active: boolean;
}

/**
 * Whether two results hold the same rows with equal values. Compares in place
 * instead of serializing every row: a row whose value is the same object (the
 * memory storage hands out its stored, frozen records) costs nothing, so a change
 * to one record of a large result costs one value comparison, not a JSON string
 * per row (that was most of a 10,000-row live query's time).
 */
function sameRows(a: readonly Row[] | undefined, b: readonly Row[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Row;
    const y = b[i] as Row;
    if (x.id !== y.id || x.space !== y.space || !sameJson(x.value as Json, y.value as Json)) return false;
  }
  return true;
}

/** JSON equality; object key order does not matter. */
export function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return Object.is(a, b) || (a === 0 && b === 0);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.prototype.hasOwnProperty.call(b, key)) return false;
    if (!sameJson((a as Record<string, Json>)[key], (b as Record<string, Json>)[key])) return false;
  }
  return true;
}

export class LiveQueries {
  readonly #byCollection = new Map<string, Set<Subscription>>();
  #scheduled = false;

  constructor(
    private readonly execute: (query: Query) => Promise<Row[]>,
    private readonly onError: (error: unknown) => void,
  ) {}

  subscribe(query: Query, callback: QueryCallback, onError?: (error: unknown) => void): () => void {
    const sub: Subscription = { query, callback, onError, last: undefined, dirty: true, running: false, active: true };
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
        if (sameRows(sub.last, rows)) continue;
        sub.last = rows.slice(); // our own copy: a callback may sort its array in place
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

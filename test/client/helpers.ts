/**
 * Shared helpers of the @syncline/client suites: the storages every behaviour runs
 * on, unique database names, outbox reads, and waits that end on an event or a
 * bounded timeout (never a sleep).
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { canonicalState, type Change, type SpaceId } from '@syncline/core/internal';
import { indexedDbStorage, memoryStorage, type Replica, type Row, type Storage, type StorageFactory } from '@syncline/client';
import type { StorageTx } from '@syncline/client/storage';
import { storageOf } from '../internals.js';

/** Every storage a replica behaviour is checked on; each call gives an isolated namespace. */
export const STORAGES: ReadonlyArray<readonly [string, () => StorageFactory]> = [
  ['memory', () => memoryStorage()],
  ['indexeddb', () => indexedDbStorage({ indexedDB: new IDBFactory() })],
];

let counter = 0;
/**
 * A database name no other test uses: BroadcastChannel reaches every worker of
 * the process, so two tests must never share a channel name.
 */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
}

/** Rejects when `promise` does not settle within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Every change in a replica's outbox for one space (default: its default space), in seq order. */
export function outboxOf(replica: Replica, space: SpaceId = replica.defaultSpace): Promise<Change[]> {
  return storageOf(replica).transaction('readonly', (tx) => tx.readOutbox(space, 1_000_000));
}

export function outboxCount(replica: Replica, space?: SpaceId): Promise<number> {
  return storageOf(replica).transaction('readonly', (tx) => tx.countOutbox(space));
}

/** The stored records of a collection as comparable strings: key, canonical state, value, index keys. */
export async function storedStates(replica: Replica, collection: string): Promise<string[]> {
  const records = await storageOf(replica).transaction('readonly', (tx) => tx.scanRecords(collection));
  return records.map((r) => JSON.stringify([r.id, r.space, canonicalState(r.state), r.value ?? null, r.ix]));
}

/** Resolves on the next committed transaction of `replica` that matches. */
export function nextCommit(replica: Replica, what = 'a commit', ms = 5_000, match: (e: { local: boolean }) => boolean = () => true): Promise<void> {
  let off: () => void = () => undefined;
  const event = new Promise<void>((resolve) => {
    off = replica.onCommit((e) => {
      if (match(e)) resolve();
    });
  });
  return within(event, ms, what).finally(() => off());
}

/** Records every callback of a live query and lets a test wait for a result it expects. */
export class LiveLog {
  readonly calls: Row[][] = [];
  #waiters: Array<{ test: (rows: Row[]) => boolean; resolve: (rows: Row[]) => void }> = [];

  readonly callback = (rows: Row[]): void => {
    this.calls.push(rows);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(rows)) return true;
      w.resolve(rows);
      return false;
    });
  };

  get last(): Row[] | undefined {
    return this.calls[this.calls.length - 1];
  }

  /** The first callback (already received or coming) whose rows pass `test`. */
  until(test: (rows: Row[]) => boolean, what: string, ms = 5_000): Promise<Row[]> {
    const seen = this.calls.find(test);
    if (seen) return Promise.resolve(seen);
    return within(new Promise<Row[]>((resolve) => this.#waiters.push({ test, resolve })), ms, what);
  }

  /** The next callback after now whose rows pass `test`. */
  next(test: (rows: Row[]) => boolean, what: string, ms = 5_000): Promise<Row[]> {
    return within(new Promise<Row[]>((resolve) => this.#waiters.push({ test, resolve })), ms, what);
  }
}

/**
 * Wraps a storage factory to observe or break transactions: `onTx` sees every
 * transaction's mode, `fault` may throw to make a read-write transaction's
 * addOutbox / putRecord / setMeta reject (a crash in the middle of a write).
 */
export function instrumented(
  inner: StorageFactory,
  hooks: { onTx?: (mode: 'readonly' | 'readwrite') => void; fault?: (method: 'addOutbox' | 'putRecord' | 'setMeta', arg: unknown) => void },
): StorageFactory {
  return async (name) => {
    const storage = await inner(name);
    const wrapped: Storage = {
      kind: `instrumented-${storage.kind}`,
      transaction(mode, fn) {
        hooks.onTx?.(mode);
        return storage.transaction(mode, (tx) => {
          // Delegate by binding: the adapters keep their state in private fields.
          const faulty = {} as Record<string, unknown>;
          for (const method of ['getMeta', 'setMeta', 'getRecord', 'getRecords', 'putRecord', 'scanRecords', 'scanIndex', 'countIndex', 'countRecords', 'addOutbox', 'readOutbox', 'ackOutbox', 'countOutbox', 'abort'] as const) {
            const original = (tx[method] as (...args: unknown[]) => unknown).bind(tx);
            faulty[method] =
              method === 'addOutbox' || method === 'putRecord' || method === 'setMeta'
                ? async (...args: unknown[]) => {
                    // Like the adapters' own methods, a fault is a rejection, never a synchronous throw.
                    hooks.fault?.(method, args[0]);
                    return original(...args);
                  }
                : original;
          }
          return fn(faulty as unknown as StorageTx);
        });
      },
      close: () => storage.close(),
    };
    // The replica installs onVersionChange on what it gets; forward it to the real storage.
    Object.defineProperty(wrapped, 'onVersionChange', {
      get: () => storage.onVersionChange,
      set: (f: (() => void) | undefined) => (storage.onVersionChange = f),
    });
    return wrapped;
  };
}

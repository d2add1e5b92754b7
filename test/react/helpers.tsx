/**
 * Shared setup of the @syncline/react suites: real replicas on memory storage
 * (no tabs), a provider wrapper, render counters, and spies that count the live
 * subscriptions a hook holds, so a test can see that unmount released them.
 */
import type { ReactNode } from 'react';
import { render, type RenderResult } from '@testing-library/react';
import { vi } from 'vitest';
import type { Change } from '@syncline/core/internal';
import { createReplica, defineSchema, memoryStorage, type Replica } from '@syncline/client';
import { SynclineProvider } from '@syncline/react';
import { storageOf } from '../internals.js';

export const schema = defineSchema({
  notes: { indexes: { byRank: ['rank'] } },
  tags: {},
  docs: { policy: 'merge' },
});

let counter = 0;
/** A replica name no other test uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

export async function memoryReplica(prefix = 'react', byte?: number): Promise<Replica> {
  return createReplica({
    name: uniqueName(prefix),
    schema,
    storage: memoryStorage(),
    tabs: false,
    // A fixed replica id when asked: tests that order siblings need it stable.
    ...(byte === undefined ? {} : { randomBytes: (n: number) => new Uint8Array(n).fill(byte) }),
  });
}

export function renderWith(replica: Replica, ui: ReactNode): RenderResult {
  return render(<SynclineProvider replica={replica}>{ui}</SynclineProvider>);
}

/** Counts the renders of the components that call `tick()` in their body. */
export class Renders {
  count = 0;
  readonly tick = (): void => {
    this.count++;
  };
}

/** Every change in a replica's outbox for its default space, in seq order. */
export function outboxOf(replica: Replica): Promise<Change[]> {
  return storageOf(replica).transaction('readonly', (tx) => tx.readOutbox(replica.defaultSpace, 1_000_000));
}

/** Live subscriptions a replica has handed out and not yet taken back, and the callbacks they made. */
export interface Held {
  queries: number;
  commitListeners: number;
  statusListeners: number;
  /** Callbacks of every kind delivered to the counted subscriptions so far. */
  callbacks: number;
  /** While true, new subscriptions are counted; a test turns it off for its own (and the client's) listeners. */
  counting: boolean;
}

type Kind = 'queries' | 'commitListeners' | 'statusListeners';

/**
 * Wraps a replica's subscribe / onCommit (and its sync engine's onStatus) to count
 * what is held. Install before rendering; set `counting = false` before the test
 * subscribes on its own (sync.waitFor subscribes through onStatus too).
 */
export function holdings(replica: Replica): Held {
  const held: Held = { queries: 0, commitListeners: 0, statusListeners: 0, callbacks: 0, counting: true };
  /** Registers `listener` through `register`, counting it and its callbacks when `counting` is on. */
  function counted<A extends unknown[]>(kind: Kind, register: (listener: (...args: A) => void) => () => void, listener: (...args: A) => void): () => void {
    if (!held.counting) return register(listener);
    held[kind]++;
    const off = register((...args) => {
      held.callbacks++;
      listener(...args);
    });
    let released = false;
    return () => {
      if (!released) held[kind]--;
      released = true;
      off();
    };
  }
  const subscribe = replica.subscribe.bind(replica);
  vi.spyOn(replica, 'subscribe').mockImplementation((query, callback) => counted('queries', (cb) => subscribe(query, cb), callback));
  const onCommit = replica.onCommit.bind(replica);
  vi.spyOn(replica, 'onCommit').mockImplementation((listener) => counted('commitListeners', onCommit, listener));
  const sync = replica.sync;
  if (sync) {
    const onStatus = sync.onStatus.bind(sync);
    vi.spyOn(sync, 'onStatus').mockImplementation((listener) => counted('statusListeners', onStatus, listener));
  }
  return held;
}

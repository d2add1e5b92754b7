/**
 * A message the replica fails to apply (a storage error: quota, an aborted
 * transaction) must not be skipped: later messages would move the replica's log
 * position past it and the change would be lost to that replica for good. The
 * engine reports the error and resumes from its last applied position.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { memoryStorage, type Storage, type StorageFactory } from '@syncline/client';
import type { StorageTx } from '@syncline/client/storage';
import type { SpaceId } from '@syncline/core/internal';
import { cleanupStack, countOf, isSynced, replica, startServer, sync, uniqueName, waitUntil } from './harness.js';
import { portOf } from '../internals.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;

/** Memory storage whose next write of a log position fails once, when armed. */
function faultyStorage(): { factory: StorageFactory; arm: () => void; fired: () => boolean } {
  const inner = memoryStorage();
  let armed = false;
  let fired = false;
  const factory: StorageFactory = async (name) => {
    const storage = await inner(name);
    const wrapped: Storage = {
      kind: storage.kind,
      close: () => storage.close(),
      transaction: (mode, fn) =>
        storage.transaction(mode, (tx) =>
          fn(
            new Proxy(tx, {
              get(target, key) {
                if (key !== 'setMeta') {
                  const value = Reflect.get(target, key) as unknown;
                  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
                }
                return async (k: string, value: unknown) => {
                  if (armed && k.startsWith('pos\u0000')) {
                    armed = false;
                    fired = true;
                    throw new Error('injected storage failure');
                  }
                  return target.setMeta(k, value);
                };
              },
            }) as StorageTx,
          ),
        ),
    };
    return wrapped;
  };
  return { factory, arm: () => (armed = true), fired: () => fired };
}

describe('a remote message that fails to apply', () => {
  it('is received again instead of being skipped', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const faulty = faultyStorage();
    const a = await replica({ name: uniqueName('apply-writer'), schema });
    const b = await replica({ name: uniqueName('apply-reader'), schema, storage: faulty.factory });
    cleanup.push(() => a.close(), () => b.close());
    const space = a.defaultSpace as SpaceId;
    const sa = sync(a, server.url);
    const sb = sync(b, server.url);
    cleanup.push(() => sa.close(), () => sb.close());
    const errors: string[] = [];
    sb.onStatus((s) => {
      if (s.error) errors.push(s.error.code);
    });

    await a.put('events', 'x1', { n: 1 });
    await waitUntil(async () => isSynced(sa) && isSynced(sb) && (await countOf(b, 'events')) === 1, 5_000, 'x1 to reach B');

    faulty.arm();
    await a.put('events', 'x2', { n: 2 });
    await waitUntil(() => faulty.fired(), 5_000, 'B to fail applying x2');
    await a.put('events', 'x3', { n: 3 });

    await waitUntil(async () => (await countOf(b, 'events')) === 3, 5_000, 'B to hold x1, x2 and x3');
    expect((await b.get('events', 'x2'))?.value).toEqual({ n: 2 });
    expect((await portOf(b).position(space)).upTo).toBe(3);
    await waitUntil(() => isSynced(sb), 5_000, 'B to be synced again');
    expect(errors).toContain('internal'); // the failure was reported, not hidden
  });
});

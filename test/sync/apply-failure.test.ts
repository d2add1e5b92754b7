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

/** Memory storage whose next write of a meta key starting with `prefix` (a log position by default) fails once, when armed. */
function faultyStorage(prefix = 'pos\u0000'): { factory: StorageFactory; arm: () => void; fired: () => boolean } {
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
                  if (armed && k.startsWith(prefix)) {
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

describe('set-aside changes that fail to be written again (a rejoin)', () => {
  it('are written at the next catch-up, not left set aside', async () => {
    const server = await startServer({ gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    // Fails the transaction that writes them again (it forgets them with the same write).
    const faulty = faultyStorage('aside\u0000');
    const a = await replica({ name: uniqueName('reapply-reader'), schema });
    const c = await replica({ name: uniqueName('reapply-writer'), schema, storage: faulty.factory });
    cleanup.push(() => a.close(), () => c.close());
    const sa = sync(a, server.url);
    const sc = sync(c, server.url);
    cleanup.push(() => sa.close(), () => sc.close());
    await c.put('events', 'c0', { n: 0 });
    await sc.flushed();
    sc.pause();
    await c.put('events', 'c1', { n: 1 });
    const oldId = c.id;
    await server.retire(oldId);
    // The rejoin stores the set-aside changes (a write of the key: let it pass), then the rewrite fails once.
    let armed = false;
    sc.onStatus((status) => {
      if (status.rejoined && !armed) {
        armed = true;
        faulty.arm();
      }
    });
    sc.resume();
    await waitUntil(() => faulty.fired(), 10_000, 'the first rewrite to fail');
    await waitUntil(async () => (await a.get('events', 'c1')) !== undefined, 10_000, 'c1, written again after the failure, to reach A');
    await waitUntil(() => isSynced(sc), 10_000, 'C synced');
    expect(sc.status.rejoined).toMatchObject({ previousId: oldId, id: c.id, aside: 1, reapplied: 1, dropped: [] });
  });
});

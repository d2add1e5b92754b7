/**
 * The space rule and run-time space changes, against a real server: a replica
 * that syncs refuses writes to spaces it does not sync (they would never leave
 * the device), its default space is the first synced one, and `addSpace` /
 * `removeSpace` change what it syncs without reopening it, in every tab.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createReplica, localLocks, memoryStorage, ReplicaError, SyncError, type Replica, type SyncEngine } from '@syncline/client';
import { cleanupStack, isSynced, outboxCount, startServer, uniqueName, waitUntil, WS } from './harness.js';
import type { SpaceId } from '@syncline/core/internal';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: { crdt: { notes: 'text' } } } as const;
type R = Replica<typeof schema>;

async function open(url: string, spaces: readonly string[] | undefined, extra: { name?: string; storage?: ReturnType<typeof memoryStorage>; tabs?: Parameters<typeof createReplica>[0]['tabs'] } = {}): Promise<R> {
  const r = await createReplica({
    name: extra.name ?? uniqueName('spaces-rt'),
    schema,
    storage: extra.storage ?? memoryStorage(),
    tabs: extra.tabs ?? false,
    onError: (error) => console.warn('replica error:', error),
    sync: { url, WebSocket: WS, backoff: { initialMs: 20, maxMs: 200 }, ...(spaces ? { spaces } : {}) },
  });
  cleanup.push(() => r.close());
  return r;
}

const engine = (r: R): SyncEngine => r.sync as SyncEngine;
const has = async (r: R, id: string, space: string): Promise<boolean> => (await r.get('events', id, { space })) !== undefined;

async function refusal(fn: () => Promise<unknown>): Promise<ReplicaError> {
  const error = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ReplicaError);
  return error as ReplicaError;
}

describe('the space rule', () => {
  it('writes without a space go to the first synced space and arrive; a write to another space is refused and nothing is written', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await open(server.url, ['team', 'personal']);
    const b = await open(server.url, ['team']);
    expect(a.defaultSpace).toBe('team');

    await a.put('events', 'e1', { title: 'Standup' });
    await waitUntil(() => has(b, 'e1', 'team'), 5_000, 'the write to reach B');

    const error = await refusal(() => a.put('events', 'e2', { title: 'Elsewhere' }, { space: 'other' }));
    expect(error.code).toBe('unsynced_space');
    expect(error.message).toContain('addSpace');
    // Every kind of write is refused the same way, and nothing of them is stored or queued.
    expect((await refusal(() => a.patch('events', 'e2', { title: 'x' }, { space: 'other' }))).code).toBe('unsynced_space');
    expect((await refusal(() => a.delete('events', 'e1', { space: 'other' }))).code).toBe('unsynced_space');
    expect((await refusal(() => a.text('events', 'e1', 'notes', { space: 'other' }))).code).toBe('unsynced_space');
    expect((await refusal(() => a.batch((w) => w.put('events', 'e3', {}, { space: 'other' })))).code).toBe('unsynced_space');
    expect(await a.get('events', 'e2', { space: 'other' })).toBeUndefined();
    expect(await outboxCount(a as unknown as Replica, 'other' as SpaceId)).toBe(0);
    await engine(a).flushed({ timeoutMs: 5_000 });
    expect(engine(a).status.pending).toBe(0);
  });

  it('a replica created without sync.spaces syncs and writes its `space` (or "default")', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await open(server.url, undefined);
    expect(a.defaultSpace).toBe('default');
    expect(engine(a).spaces).toEqual(['default']);
    await a.put('events', 'e1', { n: 1 });
    await engine(a).flushed({ timeoutMs: 5_000 });
    expect(await server.storage.head('default' as SpaceId)).toBe(1);
  });

  it('refuses to open with a default space that sync.spaces leaves out', async () => {
    const attempt = createReplica({ name: uniqueName('bad-space'), schema, storage: memoryStorage(), tabs: false, space: 'other', sync: { url: 'ws://127.0.0.1:1/sync', WebSocket: WS, spaces: ['team'] } });
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ReplicaError);
    expect((error as ReplicaError).code).toBe('invalid_argument');
    expect((error as ReplicaError).message).toContain('sync.spaces');
  });

  it('a replica without sync writes to any space', async () => {
    const local = await createReplica({ name: uniqueName('local'), schema, storage: memoryStorage(), tabs: false });
    cleanup.push(() => local.close());
    await local.put('events', 'x', { n: 1 }, { space: 'anything' });
    expect(await has(local, 'x', 'anything')).toBe(true);
  });
});

describe('spaces at run time', () => {
  it('addSpace pulls the space, accepts writes to it and pushes them, over one new connection', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await open(server.url, ['one']);
    const b = await open(server.url, ['two']);
    await b.put('events', 'b1', { n: 1 });
    await engine(b).flushed({ timeoutMs: 5_000 });
    await waitUntil(() => isSynced(engine(a)), 5_000, 'A synced');
    let connects = 0;
    let last = engine(a).status.state;
    const off = engine(a).onStatus((s) => {
      if (s.state === 'connecting' && last !== 'connecting') connects++;
      last = s.state;
    });
    cleanup.push(off);

    engine(a).addSpace('two');
    expect(engine(a).spaces).toEqual(['one', 'two']);
    await waitUntil(() => has(a, 'b1', 'two'), 5_000, 'A to pull what B wrote in two');
    await a.put('events', 'a1', { n: 2 }, { space: 'two' });
    await waitUntil(() => has(b, 'a1', 'two'), 5_000, 'A’s write in two to reach B');
    await waitUntil(() => isSynced(engine(a)), 5_000, 'A synced');
    expect(connects).toBe(1);
  });

  it('removeSpace stops the space: its writes are refused, others’ no longer arrive, the rest syncs on', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await open(server.url, ['one', 'two']);
    const b = await open(server.url, ['one', 'two']);
    await waitUntil(() => isSynced(engine(a)) && isSynced(engine(b)), 5_000, 'both synced');

    engine(a).removeSpace('two');
    expect(engine(a).spaces).toEqual(['one']);
    expect((await refusal(() => a.put('events', 'x', {}, { space: 'two' }))).code).toBe('unsynced_space');
    await b.put('events', 'b2', { n: 1 }, { space: 'two' });
    await b.put('events', 'b1', { n: 1 }, { space: 'one' });
    await waitUntil(() => has(a, 'b1', 'one'), 5_000, 'space one to go on');
    await engine(b).flushed({ timeoutMs: 5_000 });
    await waitUntil(() => isSynced(engine(a)), 5_000, 'A synced');
    expect(await has(a, 'b2', 'two')).toBe(false);
  });

  it('changes left in a removed space stay on the device and go out when it is added again; flushed() says so', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await open(server.url, ['one', 'two']);
    const b = await open(server.url, ['two']);
    engine(a).pause();
    await a.put('events', 'kept', { n: 1 }, { space: 'two' });
    const waiting = engine(a).flushed({ timeoutMs: 10_000 });
    engine(a).removeSpace('two');
    const error = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).code).toBe('space_removed');
    expect(await outboxCount(a as unknown as Replica, 'two' as SpaceId)).toBe(1);

    engine(a).resume();
    await waitUntil(() => isSynced(engine(a)), 5_000, 'A synced without space two');
    expect(await has(b, 'kept', 'two')).toBe(false);
    engine(a).addSpace('two');
    await waitUntil(() => has(b, 'kept', 'two'), 5_000, 'the kept change to arrive once two is synced again');
    await engine(a).flushed({ timeoutMs: 5_000 });
    expect(await outboxCount(a as unknown as Replica, 'two' as SpaceId)).toBe(0);
  });

  it('a space added in a tab that does not hold the connection is synced by the tab that does', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const storage = memoryStorage();
    const name = uniqueName('tabs');
    const locks = localLocks();
    const tabs = { locks, channel: (n: string) => new BroadcastChannel(n) };
    const leader = await open(server.url, ['one'], { name, storage, tabs });
    await waitUntil(() => leader.isLeader, 5_000, 'the first tab to lead');
    const follower = await open(server.url, ['one'], { name, storage, tabs });
    expect(follower.isLeader).toBe(false);
    const other = await open(server.url, ['two']);
    await other.put('events', 'o1', { n: 1 });

    engine(follower).addSpace('two');
    await waitUntil(() => engine(leader).spaces.includes('two'), 5_000, 'the leader tab to follow');
    await follower.put('events', 'f1', { n: 1 }, { space: 'two' });
    await waitUntil(() => has(other, 'f1', 'two'), 5_000, 'the follower’s write to go out through the leader');
    await waitUntil(() => has(follower, 'o1', 'two'), 5_000, 'the follower to see what the leader pulled');
  });

  it('a bad sync option fails createReplica before it takes the tab lock or opens anything', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const storage = memoryStorage();
    const name = uniqueName('bad-option');
    const tabs = { locks: localLocks(), channel: (n: string) => new BroadcastChannel(n) };
    for (const sync of [{ url: server.url, WebSocket: WS, spaces: ['has space'] }, { url: [], WebSocket: WS }, { url: server.url, WebSocket: WS, maxFrameBytes: 1_000 }]) {
      const error = await createReplica({ name, schema, storage, tabs, sync }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TypeError);
    }
    // The lock was never taken: the next replica of that database leads and syncs.
    const good = await open(server.url, ['one'], { name, storage, tabs });
    await waitUntil(() => good.isLeader && isSynced(engine(good)), 5_000, 'the replica opened after the failures to lead and sync');
  });

  it('refuses invalid space ids', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await open(server.url, ['one']);
    expect(() => engine(a).addSpace('has space')).toThrow(TypeError);
    expect(() => engine(a).removeSpace('')).toThrow(TypeError);
    expect(engine(a).spaces).toEqual(['one']);
  });
});

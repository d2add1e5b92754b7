/**
 * replica.presence between real replicas through a real server: each sees the
 * other's state, updates and leaving; a replica whose connection drops sees no
 * one until it is back, and then its own state goes out again and the others'
 * come back; set() is sent at most 20 times a second with the latest state
 * winning; a state past MAX_PRESENCE_BYTES is refused where it is set.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_PRESENCE_BYTES, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { createReplica, localLocks, memoryStorage, ReplicaError, type PresencePeer, type Replica } from '@syncline/client';
import { cleanupStack, isSynced, RawClient, replica, startServer, sync, tcpProxy, uniqueName, waitUntil, WS } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;
const TEAM = 'team' as SpaceId;

async function device(url: string): Promise<Replica<typeof schema>> {
  const r = await replica({ schema });
  const engine = sync(r as unknown as Replica, url, { spaces: [TEAM] });
  cleanup.push(() => r.close(), () => engine.close());
  await waitUntil(() => isSynced(engine), 10_000, 'the device to sync');
  return r;
}

/** The latest list a subscription saw. */
function watch(r: Replica<typeof schema>): { readonly last: readonly PresencePeer[]; readonly calls: number } {
  const seen = { last: [] as readonly PresencePeer[], calls: 0 };
  const off = r.presence.subscribe((peers) => {
    seen.last = peers;
    seen.calls++;
  }, { space: TEAM });
  cleanup.push(off);
  return seen;
}

describe('replica.presence', () => {
  it('two devices see each other: join, update, leave', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await device(server.url);
    const b = await device(server.url);
    const seenByB = watch(b);
    const seenByA = watch(a);

    a.presence.set({ week: '2026-W49', name: 'Ann' }, { space: TEAM });
    await waitUntil(() => seenByB.last.length === 1, 5_000, 'B to see A');
    expect(seenByB.last).toEqual([{ replica: a.id, state: { week: '2026-W49', name: 'Ann' } }]);
    expect(a.presence.mine({ space: TEAM })).toEqual({ week: '2026-W49', name: 'Ann' });
    expect(seenByA.last).toEqual([]);

    b.presence.set({ editing: 'standup' }, { space: TEAM });
    await waitUntil(() => seenByA.last.length === 1, 5_000, 'A to see B');
    a.presence.set({ week: '2026-W50', name: 'Ann' }, { space: TEAM });
    await waitUntil(() => (seenByB.last[0]?.state as { week?: string } | undefined)?.week === '2026-W50', 5_000, 'B to see the update');

    a.presence.set(null, { space: TEAM });
    await waitUntil(() => seenByB.last.length === 0, 5_000, 'A to clear its state');
    a.presence.set({ back: true }, { space: TEAM });
    await waitUntil(() => seenByB.last.length === 1, 5_000, 'A to be back');
    await a.close();
    await waitUntil(() => seenByB.last.length === 0, 5_000, 'A to leave when it closes');
    expect(b.presence.peers({ space: TEAM })).toEqual([]);
  });

  it('a dropped connection shows no one until it is back; then its own state goes out again', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const proxy = await tcpProxy(Number(new URL(server.url).port));
    cleanup.push(() => proxy.close());
    const a = await device(`ws://127.0.0.1:${proxy.port}/sync`);
    const b = await device(server.url);
    const seenByA = watch(a);
    const seenByB = watch(b);
    a.presence.set({ name: 'Ann' }, { space: TEAM });
    b.presence.set({ name: 'Bob' }, { space: TEAM });
    await waitUntil(() => seenByA.last.length === 1 && seenByB.last.length === 1, 5_000, 'both to see each other');

    proxy.cut();
    await waitUntil(() => seenByA.last.length === 0 && seenByB.last.length === 0, 5_000, 'both to see the other gone');
    proxy.heal();
    await waitUntil(() => seenByA.last.length === 1 && seenByB.last.length === 1, 10_000, 'both to see each other again');
    expect(seenByB.last).toEqual([{ replica: a.id, state: { name: 'Ann' } }]);
  });

  it("tabs of one replica share its presence: a tab without the connection sets it through the leader and sees the leader's peers; a new leader takes over", async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const name = uniqueName('presence-tabs');
    const storage = memoryStorage();
    const tabs = { locks: localLocks(), channel: (n: string) => new BroadcastChannel(n) };
    const open = async () => {
      const r = await createReplica({ name, schema, storage, tabs, sync: { url: server.url, WebSocket: WS, spaces: [TEAM], backoff: { initialMs: 20, maxMs: 200 } } });
      cleanup.push(() => r.close());
      return r;
    };
    const leader = await open();
    await waitUntil(() => leader.isLeader, 5_000, 'the first tab to lead');
    const follower = await open();
    expect(follower.isLeader).toBe(false);
    const other = await device(server.url);
    const seenByOther = watch(other);
    const seenByFollower = watch(follower as unknown as Replica<typeof schema>);

    follower.presence.set({ tab: 'follower' }, { space: TEAM });
    await waitUntil(() => seenByOther.last.length === 1, 5_000, 'the other device to see the follower tab’s state');
    expect(seenByOther.last).toEqual([{ replica: leader.id, state: { tab: 'follower' } }]);
    other.presence.set({ name: 'Olga' }, { space: TEAM });
    await waitUntil(() => seenByFollower.last.length === 1, 5_000, 'the follower tab to see the other device');

    // The leader tab closes: the follower leads, and its state goes out on its own connection.
    await leader.close();
    await waitUntil(() => follower.isLeader, 5_000, 'the follower to lead');
    await waitUntil(() => seenByOther.last.length === 1 && seenByFollower.last.length === 1, 10_000, 'both to see each other again');
    expect(seenByOther.last).toEqual([{ replica: follower.id, state: { tab: 'follower' } }]);
  });

  it('sends at most 20 updates a second; the latest state wins', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await device(server.url);
    const watcher = await RawClient.open(server.url);
    cleanup.push(() => watcher.close());
    await watcher.hello('watcher' as ReplicaId, [{ space: TEAM }]);
    for (let n = 0; n < 200; n++) a.presence.set({ n }, { space: TEAM });
    await watcher.next('presence', (m) => m.peers.some((p) => (p.state as { n?: number } | null)?.n === 199));
    const updates = watcher.of('presence').flatMap((m) => m.peers).filter((p) => p.replica === a.id);
    expect(updates.length).toBeLessThanOrEqual(3);
    expect(watcher.of('error')).toEqual([]);
  });

  it('refuses a state past MAX_PRESENCE_BYTES, or one that is not JSON, where it is set', async () => {
    const a = await replica({ schema });
    cleanup.push(() => a.close());
    expect(() => a.presence.set({ blob: 'x'.repeat(MAX_PRESENCE_BYTES) })).toThrow(ReplicaError);
    try {
      a.presence.set({ blob: 'x'.repeat(MAX_PRESENCE_BYTES) });
    } catch (error) {
      expect((error as ReplicaError).code).toBe('too_large');
    }
    expect(a.presence.mine()).toBeNull();
    expect(() => a.presence.set({ n: Number.NaN })).toThrow(/must be JSON/);
    // Without sync there is nobody to see.
    a.presence.set({ alone: true });
    expect([a.presence.mine(), a.presence.peers()]).toEqual([{ alone: true }, []]);
  });
});

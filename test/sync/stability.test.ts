/**
 * Garbage collection at the stability horizon, end to end (DESIGN.md,
 * "Stability and bounded growth"): a real server and replicas over real
 * sockets, every clock one the test moves. Deleted records are forgotten on
 * the server and on the replicas once every writer has passed them, with the
 * visible state unchanged; a replica away with unsent writes holds the horizon
 * and its writes keep their stamps; a new replica whose offline writes fall
 * below the horizon has them re-stamped, stored, and seen everywhere; a retired
 * replica stops holding the horizon and is refused with `replica_retired`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createReplica, indexedDbStorage, localLocks, memoryStorage, type Replica, type Schema, type SyncEngine } from '@syncline/client';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { formatTimestamp, type HlcString, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { sqliteStorage, type ServerStorage, type SyncServer } from '@syncline/server';
import { portOf, storageOf } from '../internals.js';
import { cleanupStack, counter, idbStorage, isSynced, ManualClock, outboxCount, RawClient, replica, startServer, sync, uniqueName, visibleState as everyRecord, waitUntil, withOverrides, WS } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;
const MINUTE = 60_000;

/** One clock for the server and every replica, so that no drift check trips when it moves. */
function sharedClock(): ManualClock {
  return new ManualClock(Date.now() - 60 * MINUTE);
}

/** The records that exist, with their values and states: what collection must leave as it was. */
async function visibleState(r: Replica, collections: readonly string[]): Promise<string[]> {
  return (await everyRecord(r, collections)).filter((row) => (JSON.parse(row) as unknown[])[3] !== null);
}

/** Runs gc passes (what the server's timer does) until the server holds no tombstone. */
async function collectUntilNoTombstones(server: SyncServer, what: string): Promise<void> {
  await waitUntil(
    async () => {
      await server.collect();
      return (await server.storage.stats()).tombstones === 0;
    },
    10_000,
    what,
  );
}

async function tombstones(r: Replica): Promise<number> {
  return (await r.stats()).tombstones;
}

describe('garbage collection at the stability horizon', () => {
  it('forgets deleted records on the server and on every replica once every writer has passed them, and nothing visible changes', async () => {
    const clock = sharedClock();
    const server = await startServer({ now: clock.now, gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('gc-a'), schema, now: clock.now });
    const b = await replica({ name: uniqueName('gc-b'), schema, now: clock.now, storage: idbStorage() });
    cleanup.push(() => a.close(), () => b.close());
    const space = a.defaultSpace as SpaceId;
    const sa = sync(a, server.url, { pingIntervalMs: 100 });
    const sb = sync(b, server.url, { pingIntervalMs: 100 });
    cleanup.push(() => sa.close(), () => sb.close());

    for (let i = 0; i < 50; i++) {
      clock.value += 10;
      await a.put('events', `e${i}`, { n: i });
    }
    for (let i = 0; i < 40; i++) {
      clock.value += 10;
      await a.delete('events', `e${i}`);
    }
    clock.value += 10;
    await b.patch('events', 'e45', { by: 'b' });
    await waitUntil(async () => isSynced(sa) && isSynced(sb) && (await tombstones(b)) === 40, 10_000, 'both replicas to hold every change');
    const before = await visibleState(a, ['events']);
    expect(await visibleState(b, ['events'])).toEqual(before);
    expect((await server.storage.stats()).tombstones).toBe(40);

    // Time passes; the replicas' floors follow it with their pings, and a pass moves the horizon past every delete.
    clock.value += 5 * MINUTE;
    await collectUntilNoTombstones(server, 'the server to forget the deleted records');
    const horizon = (await server.storage.stability(space)).hlc;
    expect(horizon).toBeDefined();
    await waitUntil(async () => (await tombstones(a)) === 0 && (await tombstones(b)) === 0, 10_000, 'the replicas to forget them too');
    expect(await visibleState(a, ['events'])).toEqual(before);
    expect(await visibleState(b, ['events'])).toEqual(before);
    expect((await server.storage.stats()).records).toBe(10);
    expect(await counter(server.metrics.gcCollected)).toBe(40);

    // A forgotten id written again is an ordinary new record everywhere.
    clock.value += 10;
    await b.put('events', 'e3', { n: 3, again: true });
    await waitUntil(async () => (await a.get('events', 'e3'))?.value['again'] === true, 10_000, 'the new e3 to reach A');
    expect(await visibleState(a, ['events'])).toEqual(await visibleState(b, ['events']));
  });

  it('a replica away with unsent writes holds the horizon: its writes keep their stamps, and what was deleted meanwhile stays deleted', async () => {
    const clock = sharedClock();
    const server = await startServer({ now: clock.now, gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('hold-a'), schema, now: clock.now });
    const c = await replica({ name: uniqueName('hold-c'), schema, now: clock.now });
    cleanup.push(() => a.close(), () => c.close());
    const space = a.defaultSpace as SpaceId;
    const sa = sync(a, server.url, { pingIntervalMs: 100 });
    const sc = sync(c, server.url, { pingIntervalMs: 100 });
    cleanup.push(() => sa.close(), () => sc.close());
    for (let i = 0; i < 10; i++) await a.put('events', `e${i}`, { n: i });
    await waitUntil(async () => isSynced(sa) && isSynced(sc) && (await c.query({ collection: 'events' })).length === 10, 10_000, 'C to hold the events');

    // C goes away and edits e0 (before A deletes it) and e9.
    sc.pause();
    clock.value += 10;
    await c.patch('events', 'e0', { title: 'C edit, made before the delete' });
    await c.patch('events', 'e9', { title: 'C edit' });
    const offline = (await c.stats()).pending;
    expect(offline).toBe(2);
    clock.value += 10;
    await a.delete('events', 'e0');
    for (let round = 0; round < 5; round++) {
      clock.value += 5 * MINUTE;
      await a.put('events', `late${round}`, { round });
      await a.delete('events', `late${round}`);
      await server.collect();
    }
    await waitUntil(() => isSynced(sa), 10_000, 'A to be synced');
    // C's floor (just before its first unsent write) holds the horizon: e0's delete and the later ones stay.
    await server.collect();
    const held = (await server.storage.stability(space)).hlc;
    const stamps = (await c.stats()).pending === 2 ? await pendingStamps(c) : [];
    expect(held === undefined || held < (stamps[0] as string)).toBe(true);
    expect((await server.storage.stats()).tombstones).toBe(6);

    // C comes back: its writes are stored with the stamps they were written with, e0 stays deleted.
    sc.resume();
    await waitUntil(async () => isSynced(sc) && isSynced(sa) && (await outboxCount(c, space)) === 0, 10_000, 'C to push its writes');
    const stored = (await server.storage.readLog(space, 0, 1000)).filter((e) => e.change.replica === c.id).map((e) => e.change.hlc);
    expect(stored).toEqual(stamps);
    expect(await a.get('events', 'e0')).toBeUndefined();
    expect(await c.get('events', 'e0')).toBeUndefined();
    expect((await a.get('events', 'e9'))?.value['title']).toBe('C edit');

    // Now nobody holds the horizon back: everything deleted is forgotten everywhere.
    clock.value += 5 * MINUTE;
    await waitUntil(
      async () => {
        await server.collect();
        return (await server.storage.stats()).tombstones === 0 && (await tombstones(a)) === 0 && (await tombstones(c)) === 0;
      },
      10_000,
      'every tombstone to be collected once C is back',
    );
    expect(await visibleState(a, ['events'])).toEqual(await visibleState(c, ['events']));
  });

  it('a new replica whose offline writes fall below the horizon has them re-stamped past it, stored and seen everywhere', async () => {
    const clock = sharedClock();
    const server = await startServer({ now: clock.now, gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('new-a'), schema, now: clock.now });
    const d = await replica({ name: uniqueName('new-d'), schema, now: clock.now });
    cleanup.push(() => a.close(), () => d.close());
    const space = a.defaultSpace as SpaceId;
    // D writes before it ever syncs.
    await d.put('events', 'd1', { title: 'written offline by a new device' });
    await d.put('events', 'gone', { title: 'D wrote this before A deleted it' });
    const sa = sync(a, server.url, { pingIntervalMs: 100 });
    cleanup.push(() => sa.close());
    clock.value += 10;
    await a.put('events', 'gone', { title: 'A' });
    clock.value += 10;
    await a.delete('events', 'gone');
    await waitUntil(async () => isSynced(sa) && (await server.storage.stats()).tombstones === 1, 10_000, 'A’s delete to be stored');
    clock.value += 5 * MINUTE;
    await collectUntilNoTombstones(server, 'the horizon to pass A’s delete');
    const horizon = (await server.storage.stability(space)).hlc as string;
    expect((await pendingStamps(d)).every((hlc) => hlc <= horizon)).toBe(true);

    const sd = sync(d, server.url, { pingIntervalMs: 100 });
    cleanup.push(() => sd.close());
    await waitUntil(async () => isSynced(sd) && (await outboxCount(d, space)) === 0, 10_000, 'D’s writes to be stored');
    const stored = (await server.storage.readLog(space, 0, 1000)).filter((e) => e.change.replica === d.id);
    expect(stored.map((e) => e.change.id)).toEqual(['d1', 'gone']);
    for (const e of stored) expect(e.change.hlc > horizon).toBe(true);
    // Re-stamped past A's delete, D's put is a new write: it wins, on both replicas alike.
    await waitUntil(async () => (await a.get('events', 'd1')) !== undefined && (await a.get('events', 'gone')) !== undefined, 10_000, 'D’s writes to reach A');
    expect(await visibleState(a, ['events'])).toEqual(await visibleState(d, ['events']));
  });

  it('a replica that missed a delete the server forgot, and whose log was compacted away, drops the record with the snapshot', async () => {
    const clock = sharedClock();
    const server = await startServer({ now: clock.now, gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('snap-a'), schema, now: clock.now });
    const r = await replica({ name: uniqueName('snap-r'), schema, now: clock.now, storage: idbStorage() });
    cleanup.push(() => a.close(), () => r.close());
    const space = a.defaultSpace as SpaceId;
    const sa = sync(a, server.url, { pingIntervalMs: 100 });
    const sr = sync(r, server.url, { pingIntervalMs: 100 });
    cleanup.push(() => sa.close(), () => sr.close());
    for (const id of ['x', 'y', 'z']) await a.put('events', id, { id });
    await waitUntil(async () => isSynced(sa) && isSynced(sr) && (await r.query({ collection: 'events' })).length === 3, 10_000, 'R to hold x, y, z');

    // A deletes x while away; R's floor moves past that delete's stamp before it goes away too.
    sa.pause();
    clock.value += 10;
    await a.delete('events', 'x');
    clock.value += 5 * MINUTE;
    const floorPassed = async (): Promise<boolean> => {
      const pending = await portOf(r).floor(space);
      return pending !== undefined && (await portOf(a).readOutbox(space, 10)).every((c) => c.hlc < pending);
    };
    await waitUntil(floorPassed, 10_000, 'R’s floor to pass A’s delete');
    await new Promise((resolve) => setTimeout(resolve, 300)); // and to reach the server, with R's pings
    sr.pause();
    await r.patch('events', 'y', { by: 'r, offline' });
    sa.resume();
    await waitUntil(async () => isSynced(sa) && (await server.storage.stats()).tombstones === 1, 10_000, 'x’s delete to be stored');
    await collectUntilNoTombstones(server, 'the server to forget x');
    await server.compact(0);
    expect(await r.get('events', 'x')).toBeDefined();

    // R comes back below the compaction horizon: the snapshot, not a join, decides; its own edit stays.
    sr.resume();
    await waitUntil(async () => isSynced(sr) && (await outboxCount(r, space)) === 0, 10_000, 'R to sync again');
    expect(await r.get('events', 'x')).toBeUndefined();
    expect((await r.get('events', 'y'))?.value['by']).toBe('r, offline');
    await waitUntil(async () => (await a.get('events', 'y'))?.value['by'] === 'r, offline', 10_000, 'R’s edit to reach A');
    expect(await visibleState(r, ['events'])).toEqual(await visibleState(a, ['events']));
  });

  it('a device offline past the horizon holds it until retired, then rejoins under a new id: its unsynced writes are written again, and nothing deleted comes back', async () => {
    const clock = sharedClock();
    const server = await startServer({ now: clock.now, gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('ret-a'), schema, now: clock.now });
    const errors: Error[] = [];
    const c = await createReplica({ name: uniqueName('ret-c'), schema, storage: idbStorage(), tabs: false, now: clock.now, onError: (e) => errors.push(e) });
    cleanup.push(() => a.close(), () => c.close());
    const space = a.defaultSpace as SpaceId;
    const sa = sync(a, server.url, { pingIntervalMs: 100 });
    const sc = sync(c, server.url, { pingIntervalMs: 100 });
    cleanup.push(() => sa.close(), () => sc.close());
    await c.put('events', 'c1', { n: 1 });
    await a.put('events', 'x', { n: 1 });
    await waitUntil(async () => isSynced(sc) && isSynced(sa) && (await c.get('events', 'x')) !== undefined, 10_000, 'both synced');

    // C goes offline and writes: an edit, a new record, and an edit of x, which A deletes meanwhile.
    sc.pause();
    const oldId = c.id;
    clock.value += 10;
    await c.patch('events', 'c1', { n: 2 });
    await c.put('events', 'c2', { n: 1 });
    await c.patch('events', 'x', { by: 'c' });
    clock.value += 10;
    await a.delete('events', 'x');
    await a.put('events', 'a1', { n: 1 });
    clock.value += 5 * MINUTE;
    await waitUntil(() => isSynced(sa), 10_000, 'A synced');
    // C holds the horizon: x's tombstone stays, however often the server collects.
    await server.collect();
    await server.collect();
    expect((await server.storage.stats()).tombstones).toBe(1);

    expect(await server.retire(oldId as ReplicaId)).toEqual([oldId]);
    expect(await server.retire(oldId as ReplicaId)).toEqual([]);
    expect(await counter(server.metrics.replicasRetired, { reason: 'operator' })).toBe(1);
    await collectUntilNoTombstones(server, 'the horizon to pass C once retired');

    // C comes back: refused as retired, it goes on under a new id and writes its two edits again.
    sc.resume();
    await waitUntil(() => (sc.status.rejoined?.reapplied ?? 0) > 0 && isSynced(sc), 10_000, 'C to rejoin and sync');
    expect(c.id).not.toBe(oldId);
    expect(sc.status.rejoined).toMatchObject({ previousId: oldId, id: c.id, aside: 3, reapplied: 2, dropped: ['events/x'] });
    await sc.flushed({ timeoutMs: 10_000 });
    expect((await c.get('events', 'c1'))?.value).toEqual({ n: 2 });
    expect((await c.get('events', 'c2'))?.value).toEqual({ n: 1 });
    expect(await c.get('events', 'x')).toBeUndefined(); // deleted, and the edit made offline does not bring it back
    expect((await c.get('events', 'a1'))?.value).toEqual({ n: 1 });
    await waitUntil(async () => (await a.get('events', 'c2')) !== undefined && (await a.get('events', 'c1'))?.value['n'] === 2, 10_000, 'C’s writes to reach A');
    expect(await a.get('events', 'x')).toBeUndefined();
    expect(await visibleState(c, ['events'])).toEqual(await visibleState(a, ['events']));
    // The app heard of both: the rejoin, and the edit that was not written again.
    expect(errors).toEqual([
      expect.objectContaining({ name: 'SyncError', code: 'replica_retired', message: expect.stringContaining(String(c.id)) }),
      expect.objectContaining({ name: 'SyncError', code: 'replica_retired', message: expect.stringContaining('events/x') }),
    ]);
    // The new id is an ordinary writer: it holds the horizon from now on, and the old one holds nothing.
    expect(await server.storage.isRetired(c.id as ReplicaId)).toBe(false);
    expect(await server.storage.stability(space)).toMatchObject({ hlc: expect.any(String) });
  });

  it('a replica closed between its rejoin and writing its set-aside changes again writes them once it is opened again, dropping one its new schema refuses', async () => {
    const clock = sharedClock();
    const server = await startServer({ now: clock.now, gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('rejoin-a'), schema, now: clock.now });
    cleanup.push(() => a.close());
    const sa = sync(a, server.url);
    cleanup.push(() => sa.close());
    // C's database outlives the replica object: the device restarts.
    const factory = new IDBFactory();
    const name = uniqueName('rejoin-c');
    const errors: Error[] = [];
    const open = (s: Schema = schema) => createReplica({ name, schema: s, storage: indexedDbStorage({ indexedDB: factory, IDBKeyRange }), tabs: false, now: clock.now, onError: (e) => errors.push(e) });
    let c = await open();
    let sc = sync(c, server.url);
    await c.put('events', 'c0', { n: 0 });
    await sc.flushed();
    sc.pause();
    const oldId = c.id;
    await c.put('events', 'c1', { n: 1 });
    await c.patch('events', 'c0', { n: 2 });
    await c.put('events', 'c2', { n: -1 }); // refused by the schema of the app's next version
    await server.retire(oldId as ReplicaId);

    // The rejoin is stored, and the replica closes before the space has caught up (no dial happens in between).
    const rejoined = new Promise<void>((resolve) => sc.onStatus((status) => status.rejoined && resolve()));
    sc.resume();
    await rejoined;
    const newId = c.id;
    expect(newId).not.toBe(oldId);
    sc.close();
    await c.close();
    expect(await server.storage.head(a.defaultSpace as SpaceId)).toBe(1);

    // The app's next version refuses negative numbers: that write cannot be written again, and is not tried forever.
    const positive: Schema['events'] = {
      validate: {
        '~standard': {
          version: 1,
          vendor: 'test',
          validate: (value: unknown) => ((value as { n?: number }).n ?? 0) >= 0 ? { value } : { issues: [{ message: 'n must not be negative' }] },
        },
      },
    };
    c = await open({ events: positive });
    cleanup.push(() => c.close());
    expect(c.id).toBe(newId);
    sc = sync(c, server.url);
    cleanup.push(() => sc.close());
    await waitUntil(() => isSynced(sc), 10_000, 'C to sync after reopening');
    await sc.flushed();
    await waitUntil(async () => (await a.get('events', 'c1')) !== undefined && (await a.get('events', 'c0'))?.value['n'] === 2, 10_000, 'C’s set-aside writes to reach A');
    expect(await visibleState(c, ['events'])).toEqual(await visibleState(a, ['events']));
    const log = await server.storage.readLog(a.defaultSpace as SpaceId, 0, 100);
    expect(log.map((e) => `${e.change.replica === oldId ? 'old' : e.change.replica === newId ? 'new' : '?'}:${e.change.seq}:${e.change.op}`)).toEqual(['old:1:put', 'new:1:put', 'new:2:patch']);
    expect(await c.get('events', 'c2')).toBeUndefined();
    expect(errors.at(-1)).toMatchObject({ name: 'SyncError', code: 'replica_retired', message: expect.stringContaining('events/c2') });
  });

  it('a rejoin made by the tab that holds the connection: the other tab writes under the new id from its next write', async () => {
    const server = await startServer({ gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const storage = memoryStorage();
    const name = uniqueName('rejoin-tabs');
    const tabs = { locks: localLocks(), channel: (n: string) => new BroadcastChannel(n) };
    const tab = () => createReplica({ name, schema, storage, tabs, onError: () => undefined, sync: { url: server.url, WebSocket: WS, backoff: { initialMs: 20, maxMs: 200 } } });
    const leader = await tab();
    cleanup.push(() => leader.close());
    await waitUntil(() => leader.isLeader, 5_000, 'the first tab to lead');
    const follower = await tab();
    cleanup.push(() => follower.close());
    const other = await replica({ name: uniqueName('rejoin-tabs-other'), schema });
    cleanup.push(() => other.close());
    const so = sync(other, server.url);
    cleanup.push(() => so.close());
    const engine = leader.sync as NonNullable<typeof leader.sync>;

    await follower.put('events', 'f0', { n: 0 });
    await waitUntil(async () => (await other.get('events', 'f0')) !== undefined, 10_000, 'f0 to go out through the leader tab');
    engine.pause();
    const oldId = leader.id;
    await follower.put('events', 'f1', { n: 1 }); // unsynced when the id is retired
    await server.retire(oldId as ReplicaId);
    engine.resume();
    await waitUntil(async () => (await other.get('events', 'f1')) !== undefined, 10_000, 'f1, written again by the leader tab, to reach the other replica');
    expect(leader.id).not.toBe(oldId);
    expect(follower.id).toBe(oldId); // it has not written since

    await follower.put('events', 'f2', { n: 2 });
    expect(follower.id).toBe(leader.id);
    await waitUntil(async () => (await other.get('events', 'f2')) !== undefined, 10_000, 'the follower’s next write to reach the other replica');
    const log = await server.storage.readLog(leader.defaultSpace as SpaceId, 0, 100);
    expect(log.map((e) => `${e.change.replica === oldId ? 'old' : e.change.replica === leader.id ? 'new' : '?'}:${e.change.seq}:${e.change.id}`)).toEqual(['old:1:f0', 'new:1:f1', 'new:2:f2']);
    expect(engine.status.state).toBe('synced');
  });

  it.each([
    ['', false],
    [' (a database from before the replica noted the spaces it writes in: it notes them when it opens)', true],
  ])('a space that was not synced when the replica rejoined starts over too: written in once it is added again, its changes are stored%s', async (_, older) => {
    const server = await startServer({ gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const other = await replica({ name: uniqueName('rejoin-spaces-other'), schema });
    cleanup.push(() => other.close());
    const so = sync(other, server.url, { spaces: ['two'] });
    cleanup.push(() => so.close());
    const storage = memoryStorage();
    const name = uniqueName('rejoin-spaces');
    const open = () => createReplica({ name, schema, storage, tabs: false, onError: () => undefined, sync: { url: server.url, WebSocket: WS, spaces: ['one', 'two'], backoff: { initialMs: 20, maxMs: 200 } } });
    let c = await open();
    cleanup.push(() => c.close());
    let engine = c.sync as NonNullable<typeof c.sync>;
    await c.put('events', 'one-1', { n: 1 }, { space: 'one' });
    await c.put('events', 'two-1', { n: 1 }, { space: 'two' });
    await engine.flushed();
    if (older) {
      await storageOf(c).transaction('readwrite', (tx) => tx.setMeta('writtenSpaces', undefined));
      await c.close();
      c = await open();
      engine = c.sync as NonNullable<typeof c.sync>;
      await waitUntil(() => isSynced(engine), 10_000, 'C to sync again');
    }
    engine.removeSpace('two'); // its seq stays where the old id left it
    await waitUntil(() => isSynced(engine) && !engine.spaces.includes('two'), 10_000, 'C to sync without two');

    const oldId = c.id;
    await server.retire(oldId as ReplicaId);
    await waitUntil(() => engine.status.rejoined !== undefined && isSynced(engine), 10_000, 'C to rejoin');
    engine.addSpace('two');
    await c.put('events', 'two-2', { n: 2 }, { space: 'two' });
    await waitUntil(async () => (await other.get('events', 'two-2', { space: 'two' })) !== undefined, 10_000, 'C’s new write in two to reach the other replica');
    expect(engine.status.stoppedSpaces).toBeUndefined();
    const log = await server.storage.readLog('two' as SpaceId, 0, 100);
    expect(log.map((e) => `${e.change.replica === oldId ? 'old' : e.change.replica === c.id ? 'new' : '?'}:${e.change.seq}:${e.change.id}`)).toEqual(['old:1:two-1', 'new:1:two-2']);
  });

  it('a merge record written by many replicas in turn drops the retired ones’ context entries: at the next pass on the server, at once on the replicas told, and a newcomer gets it small; writes still supersede', async () => {
    const mergeSchema = { meetings: { policy: 'merge' } } as const;
    const server = await startServer({ gc: { intervalMs: 0 } });
    cleanup.push(() => server.close());
    const writers = await Promise.all(Array.from({ length: 8 }, (_, i) => replica({ name: uniqueName(`mc-${i}`), schema: mergeSchema })));
    const engines = writers.map((w) => sync(w, server.url));
    cleanup.push(...writers.map((w) => () => w.close()), ...engines.map((e) => () => e.close()));
    const space = writers[0]?.defaultSpace as SpaceId;
    const stored = async () => (await server.storage.snapshotPage(space, undefined, 10))[0]?.state.merge;
    const held = async (r: Replica<typeof mergeSchema>) => (await storageOf(r).transaction('readonly', (tx) => tx.scanRecords('meetings', { space })))[0]?.state.merge;
    const names = (v: ReadonlyMap<string, number> | undefined) => [...(v?.keys() ?? [])].sort();
    // Each writes after holding the one before's version, so each supersedes it.
    for (const [i, w] of writers.entries()) {
      if (i > 0) await waitUntil(async () => (await w.get('meetings', 'standup'))?.value['by'] === i - 1, 10_000, `writer ${i} to hold writer ${i - 1}'s version`);
      await w.put('meetings', 'standup', { by: i });
    }
    await waitUntil(async () => (await stored())?.siblings[0]?.value?.['by'] === 7 && (await Promise.all(engines.map(isSynced))).every(Boolean), 10_000, 'every version stored');
    const ids = writers.map((w) => w.id as string);
    const live = ids.slice(6).sort();
    expect(names((await stored())?.seen)).toEqual([...ids].sort());
    expect(names((await held(writers[7] as Replica<typeof mergeSchema>))?.seen)).toEqual([...ids].sort());
    const bytesBefore = (await server.storage.stats()).recordBytes;

    // Six of them are gone for good: retired. The replica still connected is told and drops the entries at once;
    // the server's pass drops them from what it stores (the sibling is writer 7's). Writer 7 is offline meanwhile.
    for (const e of engines.slice(0, 6)) e.close();
    const [six, seven] = [writers[6], writers[7]] as [Replica<typeof mergeSchema>, Replica<typeof mergeSchema>];
    const sevenSync = engines[7] as SyncEngine;
    sevenSync.pause();
    expect((await server.retire(...(ids.slice(0, 6) as ReplicaId[]))).length).toBe(6);
    await waitUntil(async () => names((await held(six))?.seen).join() === live.join(), 10_000, 'writer 6 to drop the entries');
    expect(names((await held(seven))?.seen)).toEqual([...ids].sort());
    expect((await server.collect()).trimmed).toBe(1);
    expect(names((await stored())?.seen)).toEqual(live);
    expect(names((await stored())?.siblings[0]?.context)).toEqual(ids.slice(6, 7));
    expect((await server.storage.stats()).recordBytes).toBeLessThan(bytesBefore);

    // Writer 7 writes offline, naming every entry, and comes back: it hears of the retirements at its hello and
    // drops them; the server stores its write as it came (the next pass trims it), and writer 6 drops them as it applies it.
    await seven.put('meetings', 'standup', { by: '7 offline' });
    sevenSync.resume();
    await waitUntil(async () => (await six.get('meetings', 'standup'))?.value['by'] === '7 offline' && isSynced(sevenSync), 10_000, 'writer 7’s write to reach writer 6');
    await waitUntil(async () => names((await held(seven))?.seen).join() === live.join(), 10_000, 'writer 7 to drop the entries');
    expect(names((await held(six))?.seen)).toEqual(live);
    expect(names((await held(six))?.siblings[0]?.context)).toEqual(live);
    expect(names((await stored())?.seen)).toEqual([...ids].sort());
    expect((await server.collect()).trimmed).toBe(1);
    expect(names((await stored())?.seen)).toEqual(live);

    // A newcomer bootstraps the small state: same value, no conflict; it heard of the retirements too.
    const newcomer = await replica({ name: uniqueName('mc-new'), schema: mergeSchema });
    const sn = sync(newcomer, server.url);
    cleanup.push(() => newcomer.close(), () => sn.close());
    await waitUntil(async () => isSynced(sn) && (await newcomer.get('meetings', 'standup')) !== undefined, 10_000, 'the newcomer to bootstrap');
    expect((await newcomer.get('meetings', 'standup'))?.value).toEqual({ by: '7 offline' });
    expect(await newcomer.conflicts('meetings', 'standup')).toEqual([]);
    expect(names((await held(newcomer))?.seen)).toEqual(live);

    // Writer 6 writes from its trimmed state: its write supersedes writer 7's everywhere, and nothing grows back.
    await six.put('meetings', 'standup', { by: 'six again' });
    for (const r of [seven, newcomer]) await waitUntil(async () => (await r.get('meetings', 'standup'))?.value['by'] === 'six again', 10_000, 'the write to arrive');
    for (const r of [six, seven, newcomer]) {
      expect(await r.conflicts('meetings', 'standup')).toEqual([]);
      expect(names((await held(r))?.seen)).toEqual(live);
    }
    expect(names((await stored())?.seen)).toEqual(live);
    expect((await server.collect()).trimmed).toBe(0);

    // And the newcomer's write supersedes writer 6's for everyone.
    await newcomer.put('meetings', 'standup', { by: 'newcomer' });
    for (const r of [six, seven]) await waitUntil(async () => (await r.get('meetings', 'standup'))?.value['by'] === 'newcomer', 10_000, 'the newcomer’s write to arrive');
    for (const r of [six, seven, newcomer]) expect(await r.conflicts('meetings', 'standup')).toEqual([]);
  });

  it("tells a client of retirements only once its catch-ups ended: a retired replica's last versions reach it before it drops that replica's entries", async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const space = 'retire-late' as SpaceId;
    // A writer stores versions of a merge record, one superseding the other, then is retired.
    const w = await RawClient.open(server.url);
    cleanup.push(() => w.close());
    await w.hello('gone' as ReplicaId, [{ space }]);
    const hlc = (n: number) => formatTimestamp({ wall: Date.now() - 60_000 + n, counter: 0, replica: 'gone' as ReplicaId });
    w.send({ type: 'push', space, changes: [{ space, collection: 'meetings', id: 'm', replica: 'gone' as ReplicaId, seq: 1, hlc: hlc(1), op: 'version', value: { v: 1 }, context: new Map() }] });
    await w.next('ack', (m) => m.upTo === 1);
    w.close();
    expect(await server.retire('gone' as ReplicaId)).toEqual(['gone']);

    // A client of protocol 8 that syncs two spaces from nothing: `retired` comes after both catch-ups ended.
    const r = await RawClient.open(server.url);
    cleanup.push(() => r.close());
    await r.hello('late' as ReplicaId, [{ space }, { space: 'other' }]);
    await r.next('retired');
    const types = r.messages.map((m) => (m.type === 'synced' ? `synced:${m.space}` : m.type));
    const told = types.indexOf('retired');
    expect(types.indexOf(`synced:${space}`)).toBeGreaterThan(-1);
    expect(types.indexOf(`synced:${space}`)).toBeLessThan(told);
    expect(types.indexOf('synced:other')).toBeLessThan(told);
    expect(r.messages.findIndex((m) => m.type === 'snapshot')).toBeLessThan(told);
  });

  it('collect() called while a pass is under way runs another after it, which covers every write stored before the call', async () => {
    // The storage's first horizon computation waits until the test lets it go: a pass under way.
    const storage = sqliteStorage({ path: ':memory:' });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const gated: ServerStorage = withOverrides(storage, {
      advanceHorizon: async (space: SpaceId, cap: HlcString) => {
        if (calls++ === 0) await gate;
        return storage.advanceHorizon(space, cap);
      },
    });
    const clock = sharedClock();
    const server = await startServer({ storage: gated, gc: { intervalMs: 0 }, now: clock.now });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('gc-overlap'), schema, now: clock.now });
    cleanup.push(() => a.close());
    const sa = sync(a, server.url);
    cleanup.push(() => sa.close());
    await a.put('events', 'kept', { n: 0 });
    await sa.flushed();

    const first = server.collect(); // reads the horizon before the delete below is stored
    await waitUntil(() => calls === 1, 5_000, 'the first pass to reach the horizon');
    await a.put('events', 'gone', { n: 1 });
    await a.delete('events', 'gone');
    await sa.flushed();
    clock.value += 10; // the server's clock past the delete's stamp (a horizon never passes it)
    const second = server.collect();
    expect(server.collect()).toBe(second); // calls made during one pass share the pass after it
    release();
    expect((await first).collected).toBe(0);
    expect((await second).collected).toBe(1);
    expect((await server.storage.stats()).tombstones).toBe(0);
    expect(calls).toBe(2);
  });
});

/** The stamps of a replica's unacknowledged changes, in seq order. */
async function pendingStamps(r: Replica): Promise<string[]> {
  return (await portOf(r).readOutbox(r.defaultSpace as SpaceId, 1000)).map((c) => c.hlc);
}

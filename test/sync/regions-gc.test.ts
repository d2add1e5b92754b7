/**
 * Garbage collection with regions (issue 19; server README, "Bounded growth"):
 * real region servers following each other over real sockets, replicas on
 * each, one clock the test moves. A region refuses its own clients' changes at
 * or below its refusal level and tells its peers (link protocol 5); it forgets
 * deleted records, and tells its clients to, only below the lowest level of
 * every region, each counted once it has read that region's log far enough.
 * So a writer away in one region holds every region's collection, and what
 * it wrote meanwhile cannot bring a forgotten record back anywhere.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startSync, type Replica, type SyncEngine } from '@syncline/client';
import type { HlcString, SpaceId } from '@syncline/core/internal';
import { createSyncServer, sqliteStorage, type SyncServer } from '@syncline/server';
import { storageOf } from '../internals.js';
import { cleanupStack, dialingSocket, freePort, isSynced, ManualClock, outboxCount, replica, silent, sync, tcpProxy, uniqueName, visibleState, waitUntil } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {}, tasks: { policy: 'merge' } } as const;
const SPACE = 'team' as SpaceId;
const MINUTE = 60_000;

/** Regions named a, b, … on free ports, each following every other, sharing `clock`; gc only when the test runs it. */
async function regions(clock: ManualClock, count: number, peersOf?: (ports: number[], i: number) => number[]): Promise<SyncServer[]> {
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const servers = ports.map((port, i) =>
    createSyncServer({
      port,
      storage: sqliteStorage({ path: ':memory:' }),
      logger: silent,
      now: clock.now,
      gc: { intervalMs: 0 },
      region: String.fromCharCode(97 + i),
      peers: (peersOf?.(ports, i) ?? ports.filter((_, j) => j !== i)).map((p) => `ws://127.0.0.1:${p}`),
    }),
  );
  await Promise.all(servers.map((s) => s.listen()));
  cleanup.push(...servers.map((s) => () => s.close()));
  return servers;
}

async function client(server: SyncServer, name: string, clock: ManualClock): Promise<{ r: Replica<typeof schema>; engine: SyncEngine }> {
  const r = await replica({ name: uniqueName(name), schema, now: clock.now });
  const engine = sync(r, server.url, { spaces: [SPACE], pingIntervalMs: 100 });
  cleanup.push(() => engine.close(), () => r.close());
  return { r, engine };
}

/** The records that exist, with their values: what collection must leave as it was. */
async function visible(r: Replica<typeof schema>): Promise<string[]> {
  return (await visibleState(r as never, ['events'], SPACE)).filter((row) => (JSON.parse(row) as unknown[])[3] !== null);
}

/** The level a space's own clients' changes are refused at or below. */
const refusalOf = (s: { hlc?: HlcString; refused?: { hlc: HlcString } }): HlcString | undefined => s.refused?.hlc ?? s.hlc;

const hlcWallOf = (hlc: HlcString | undefined): number => (hlc === undefined ? 0 : Number.parseInt(hlc.slice(0, 12), 16));

const tombstones = async (server: SyncServer): Promise<number> => (await server.storage.stats()).tombstones;

/** Gc passes on every region (what their timers do) until `done`. */
async function collectUntil(servers: readonly SyncServer[], done: () => Promise<boolean>, what: string): Promise<void> {
  await waitUntil(
    async () => {
      for (const s of servers) await s.collect();
      return done();
    },
    15_000,
    what,
  );
}

describe('garbage collection with regions', () => {
  it("each region forgets a deleted record once every region's level has passed it, as it has read their logs, and so do its clients", async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const [a, b] = (await regions(clock, 2)) as [SyncServer, SyncServer];
    const ca = await client(a, 'rgc-a', clock);
    const cb = await client(b, 'rgc-b', clock);
    for (let i = 0; i < 20; i++) {
      clock.value += 10;
      await ca.r.put('events', `e${i}`, { n: i }, { space: SPACE });
    }
    for (let i = 0; i < 10; i++) {
      clock.value += 10;
      await (i % 2 === 0 ? ca : cb).r.delete('events', `e${i}`, { space: SPACE });
    }
    await waitUntil(
      async () => isSynced(ca.engine) && isSynced(cb.engine) && (await tombstones(a)) === 10 && (await tombstones(b)) === 10 && (await cb.r.stats()).tombstones === 10 && (await ca.r.stats()).tombstones === 10,
      10_000,
      'both regions and both replicas to hold every change',
    );
    const before = await visible(ca.r);
    expect(await visible(cb.r)).toEqual(before);

    // Before time passes, a pass raises each region's refusal level to its own writers' floors, which are behind every delete.
    await a.collect();
    await b.collect();
    expect(await tombstones(a)).toBe(10);

    clock.value += 5 * MINUTE;
    await collectUntil([a, b], async () => (await tombstones(a)) === 0 && (await tombstones(b)) === 0, 'both regions to forget the deleted records');
    for (const server of [a, b]) {
      const { hlc, refused } = await server.storage.stability(SPACE);
      expect(hlc).toBeDefined();
      // Never above its own refusal level.
      if (refused) expect((hlc as HlcString) < refused.hlc).toBe(true);
    }
    await waitUntil(async () => (await ca.r.stats()).tombstones === 0 && (await cb.r.stats()).tombstones === 0, 10_000, 'the replicas of both regions to forget them too');
    expect(await visible(ca.r)).toEqual(before);
    expect(await visible(cb.r)).toEqual(before);

    // A forgotten id written again is an ordinary new record everywhere.
    clock.value += 10;
    await cb.r.put('events', 'e3', { n: 3, again: true }, { space: SPACE });
    await waitUntil(async () => (await ca.r.get('events', 'e3', { space: SPACE }))?.value['again'] === true, 10_000, 'the new e3 to reach region a');
  });

  it("a writer away in one region holds every region's collection: what it wrote before a delete it had not seen cannot bring the record back", async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const [a, b] = (await regions(clock, 2)) as [SyncServer, SyncServer];
    const ca = await client(a, 'hold-a', clock);
    const cb = await client(b, 'hold-b', clock);
    await ca.r.put('events', 'x', { title: 'first' }, { space: SPACE });
    await ca.r.put('events', 'y', { title: 'kept' }, { space: SPACE });
    await waitUntil(async () => isSynced(ca.engine) && isSynced(cb.engine) && (await cb.r.get('events', 'x', { space: SPACE })) !== undefined, 10_000, 'x to reach B');

    // B goes away and edits x; A, not knowing, deletes x later.
    await cb.engine.close();
    clock.value += 1_000;
    await cb.r.patch('events', 'x', { by: 'b' }, { space: SPACE });
    clock.value += 1_000;
    await ca.r.delete('events', 'x', { space: SPACE });
    await waitUntil(async () => isSynced(ca.engine) && (await tombstones(b)) === 1, 10_000, 'the delete to reach region b');

    // Much later: region a's own writers are long past the delete, but region b's level is held by B's floor.
    clock.value += 10 * MINUTE;
    for (let round = 0; round < 5; round++) {
      await a.collect();
      await b.collect();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await tombstones(a)).toBe(1);
    const stable = await a.storage.stability(SPACE);
    expect(stable.refused, 'region a refuses well past the delete').toBeDefined();
    const deleted = (await ca.r.stats()).tombstones;
    expect(deleted).toBe(1);

    // B comes back: its edit, stamped before the delete, loses to it in both regions.
    const back = sync(cb.r, b.url, { spaces: [SPACE], pingIntervalMs: 100 });
    cleanup.push(() => back.close());
    await waitUntil(async () => isSynced(back) && isSynced(ca.engine) && (await outboxCount(cb.r as never, SPACE)) === 0, 10_000, 'B’s edit to be stored');
    await waitUntil(async () => (await a.storage.readLog(SPACE, 0, 1000)).some((e) => e.change.replica === cb.r.id), 10_000, 'B’s edit to reach region a');
    for (const r of [ca.r, cb.r]) expect(await r.get('events', 'x', { space: SPACE })).toBeUndefined();
    for (const server of [a, b]) expect((await server.storage.snapshotPage(SPACE, undefined, 100)).map((p) => p.id).sort()).toEqual(['x', 'y']);

    // Then both regions forget it, and nothing comes back.
    clock.value += 5 * MINUTE;
    await collectUntil([a, b], async () => (await tombstones(a)) === 0 && (await tombstones(b)) === 0, 'both regions to forget x');
    await waitUntil(async () => (await ca.r.stats()).tombstones === 0 && (await cb.r.stats()).tombstones === 0, 10_000, 'both replicas to forget x');
    expect(await visible(ca.r)).toEqual(await visible(cb.r));
    expect((await visible(ca.r)).map((row) => (JSON.parse(row) as unknown[])[2])).toEqual(['y']);
  });

  it('a replica that moves to a region with offline writes at or below that region’s refusal level is retired there and in every region, and rejoins under a new id with the writes written again', async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const [a, b] = (await regions(clock, 2)) as [SyncServer, SyncServer];
    const ca = await client(a, 'lvl-a', clock);
    const cb = await client(b, 'lvl-b', clock);
    // M syncs with region b (its clock is measured there), then goes offline.
    const m = await client(b, 'lvl-m', clock);
    await ca.r.put('events', 'e0', { n: 0 }, { space: SPACE });
    await waitUntil(
      async () => isSynced(ca.engine) && isSynced(cb.engine) && isSynced(m.engine) && (await m.r.get('events', 'e0', { space: SPACE })) !== undefined,
      10_000,
      'e0 to reach region b',
    );
    await m.engine.close();
    // B goes away with an unsent write: region b's level stays behind it, and so does region a's collection horizon.
    await cb.engine.close();
    await cb.r.put('events', 'b1', { by: 'b' }, { space: SPACE });
    // M writes offline a minute later, then time passes: region a refuses its own clients' changes well past M's write.
    clock.value += MINUTE;
    await m.r.put('events', 'm1', { by: 'm' }, { space: SPACE });
    const [written] = await storageOf(m.r as never).transaction('readonly', (tx) => tx.readOutbox(SPACE, 10));
    clock.value += 10 * MINUTE;
    await collectUntil(
      [a, b],
      async () => {
        const { hlc, refused } = await a.storage.stability(SPACE);
        return hlc !== undefined && refused !== undefined && hlc < (written?.hlc as string) && (written?.hlc as string) <= refused.hlc;
      },
      'region a to refuse past M’s write, its collection horizon held below it by region b',
    );
    const { hlc, refused } = await a.storage.stability(SPACE);

    // M connects to region a: its write is refused at a's refusal level, above the horizon it was told. Another
    // region might hold it (stored there, the acknowledgement lost), so it may not be stamped again under its old
    // identity: a retires M's id, and M rejoins under a new one and writes m1 again as a new change.
    const old = m.r.id;
    const moved = sync(m.r, a.url, { spaces: [SPACE], pingIntervalMs: 100 });
    cleanup.push(() => moved.close());
    const fromM = async () => (await a.storage.readLog(SPACE, 0, 1000)).filter((e) => e.change.id === 'm1' && e.origin === '');
    await waitUntil(async () => m.r.id !== old && isSynced(moved) && (await outboxCount(m.r as never, SPACE)) === 0 && (await fromM()).length > 0, 10_000, 'M to rejoin and m1 to be stored in region a');
    expect(moved.status.rejoined).toMatchObject({ previousId: old, id: m.r.id, aside: 1, reapplied: 1 });
    expect(await a.storage.isRetired(old)).toBe(true);
    const stored = await fromM();
    expect(stored.map((e) => e.change.replica)).toEqual([m.r.id]);
    expect((stored[0]?.change.hlc as string) > (refused?.hlc as string)).toBe(true);
    expect((hlc as string) < (refused?.hlc as string)).toBe(true);
    // Region b hears of the retirement over the link (floors), after a's next pass: the old id writes nowhere any more.
    await collectUntil([a, b], () => b.storage.isRetired(old), 'region b to retire M’s old id');
    await waitUntil(async () => (await ca.r.get('events', 'm1', { space: SPACE })) !== undefined, 10_000, 'm1 to reach A');
  });

  it('a replica whose acknowledgement was lost fails over to a region that has not read its change: retired and rejoined, never stamped again under its old identity, and every region converges', async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    // Region b follows a through a proxy the test cuts; a follows b directly.
    const [portA, portB] = await Promise.all([freePort(), freePort()]);
    const proxy = await tcpProxy(portA);
    cleanup.push(() => proxy.close());
    const [a, b] = [
      [portA, 'a', portB],
      [portB, 'b', proxy.port],
    ].map(([port, region, peer]) =>
      createSyncServer({ port: port as number, storage: sqliteStorage({ path: ':memory:' }), logger: silent, now: clock.now, gc: { intervalMs: 0 }, region: region as string, peers: [`ws://127.0.0.1:${peer}`] }),
    ) as [SyncServer, SyncServer];
    await Promise.all([a.listen(), b.listen()]);
    cleanup.push(() => a.close(), () => b.close());
    const ca = await client(a, 'lost-a', clock);
    const cb = await client(b, 'lost-b', clock);
    await ca.r.put('events', 'e0', { n: 0 }, { space: SPACE });
    await waitUntil(async () => isSynced(ca.engine) && isSynced(cb.engine) && (await cb.r.get('events', 'e0', { space: SPACE })) !== undefined, 10_000, 'e0 to reach region b');
    proxy.cut();

    // M writes m1 through region a, which stores it; the acknowledgement is lost on the way.
    const m = await replica({ name: uniqueName('lost-m'), schema, now: clock.now });
    cleanup.push(() => m.close());
    const lossy = dialingSocket({ drop: (message) => message.type === 'ack' });
    const first = startSync(m, { url: a.url, spaces: [SPACE], WebSocket: lossy.factory, pingIntervalMs: 100 });
    await waitUntil(() => first.status.state === 'synced', 10_000, 'M to sync with region a');
    await m.put('events', 'm1', { by: 'm' }, { space: SPACE });
    await m.put('tasks', 't1', { by: 'm' }, { space: SPACE });
    const old = m.id;
    await waitUntil(async () => (await a.storage.readLog(SPACE, 0, 1000)).some((e) => e.change.replica === old), 10_000, 'region a to store m1');
    await waitUntil(async () => (await a.storage.readLog(SPACE, 0, 1000)).filter((e) => e.change.replica === old).length === 2, 10_000, 'region a to store t1');
    await first.close();
    expect(await outboxCount(m as never, SPACE)).toBe(2);
    // A writes m1 later in region a; b, cut off from a, sees neither.
    clock.value += MINUTE;
    await ca.r.put('events', 'm1', { by: 'a' }, { space: SPACE });
    await waitUntil(() => isSynced(ca.engine), 10_000, 'A’s write to be stored');
    // Region b's refusal level passes M's change (M never said hello there).
    clock.value += 10 * MINUTE;
    const [held] = await storageOf(m as never).transaction('readonly', (tx) => tx.readOutbox(SPACE, 10));
    await collectUntil([b], async () => (refusalOf(await b.storage.stability(SPACE)) ?? '') >= (held?.hlc as string), 'region b’s refusal level to pass m1');

    // M fails over to b. Stamping m1 again as (M, 1) would leave a and b with two changes of one identity, each
    // region keeping its own; b retires M instead, and M writes m1 again under a new id.
    const second = sync(m, b.url, { spaces: [SPACE], pingIntervalMs: 100 });
    cleanup.push(() => second.close());
    await waitUntil(async () => isSynced(second) && (await outboxCount(m as never, SPACE)) === 0 && (await b.storage.readLog(SPACE, 0, 1000)).some((e) => e.change.id === 'm1'), 10_000, 'm1 to be stored in region b');

    // The link heals: every region and replica holds one state, in which M's write (written again, last) wins.
    proxy.heal();
    const states = async () => Promise.all([a, b].map(async (s) => JSON.stringify(await s.storage.snapshotPage(SPACE, undefined, 1000))));
    await collectUntil(
      [a, b],
      async () => {
        const [sa, sb] = await states();
        return sa === sb && isSynced(ca.engine) && isSynced(cb.engine) && isSynced(second) && (await visible(ca.r)).join() === (await visible(m)).join() && (await visible(cb.r)).join() === (await visible(m)).join();
      },
      'the regions and replicas to converge',
    );
    expect(m.id).not.toBe(old);
    expect(await b.storage.isRetired(old)).toBe(true);
    expect((await b.storage.readLog(SPACE, 0, 1000)).filter((e) => e.origin === '' && e.change.replica === old)).toEqual([]);
    expect((await m.get('events', 'm1', { space: SPACE }))?.value).toEqual({ by: 'm' });
    expect((await ca.r.get('events', 'm1', { space: SPACE }))?.value).toEqual({ by: 'm' });
    // The merge write went again as a version that supersedes the one region a stored: no conflict anywhere.
    for (const r of [m, ca.r, cb.r]) {
      expect((await r.get('tasks', 't1', { space: SPACE }))?.value).toEqual({ by: 'm' });
      expect(await r.conflicts('tasks', 't1', { space: SPACE })).toEqual([]);
    }
    // Region a hears of the retirement over the link (floors), after b's next pass.
    await collectUntil([a, b], () => a.storage.isRetired(old), 'region a to retire M’s old id');
  });

  it('a writer that moved to another region and only reads there holds no level of the region it left: its floors come over the link', async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const [a, b] = (await regions(clock, 2)) as [SyncServer, SyncServer];
    const ca = await client(a, 'move-a', clock);
    const w = await client(a, 'move-w', clock);
    await w.r.put('events', 'w1', { by: 'w' }, { space: SPACE });
    await waitUntil(() => isSynced(w.engine), 10_000, 'W’s write to be stored in region a');
    await w.engine.close();
    const left = (await a.storage.writers(SPACE)).find((x) => x.replica === w.r.id);
    expect(left?.local).toBe(true);
    // W goes on in region b, reading only (its pings carry its floor there).
    const moved = sync(w.r, b.url, { spaces: [SPACE], pingIntervalMs: 100 });
    cleanup.push(() => moved.close());
    await waitUntil(() => isSynced(moved), 10_000, 'W to sync with region b');
    const leftAt = clock.value;
    // Time passes; A keeps writing in a. Region a's level passes where W left it, as b tells a W's floors.
    for (let i = 0; i < 5; i++) {
      clock.value += 2 * MINUTE;
      await ca.r.put('events', `a${i}`, { n: i }, { space: SPACE });
    }
    await collectUntil([a, b], async () => hlcWallOf(refusalOf(await a.storage.stability(SPACE))) > leftAt + 5 * MINUTE, 'region a’s level to follow W’s floors told in region b');
    expect(((await a.storage.writers(SPACE)).find((x) => x.replica === w.r.id)?.floor ?? '') > (left?.floor ?? '')).toBe(true);
    expect(await a.storage.isRetired(w.r.id)).toBe(false);
  });

  it('a reader away while a region forgot a deleted record and compacted its log gets a joined snapshot without it', async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const ports = await Promise.all([freePort(), freePort()]);
    // A token 'reader' may only read: such a replica holds no level anywhere.
    const authenticate = async ({ token }: { token: string | undefined }) => ({ subject: token ?? 'writer', access: () => (token === 'reader' ? ('read' as const) : ('write' as const)) });
    const [a, b] = ports.map((port, i) =>
      createSyncServer({ port, storage: sqliteStorage({ path: ':memory:' }), logger: silent, now: clock.now, gc: { intervalMs: 0 }, authenticate, peerSecret: 'peers', region: String.fromCharCode(97 + i), peers: [`ws://127.0.0.1:${ports[1 - i]}`] }),
    ) as [SyncServer, SyncServer];
    await Promise.all([a.listen(), b.listen()]);
    cleanup.push(() => a.close(), () => b.close());
    const ca = await client(a, 'snap-a', clock);
    const cb = await client(b, 'snap-b', clock);
    const v = await replica({ name: uniqueName('snap-v'), schema, now: clock.now });
    cleanup.push(() => v.close());
    await ca.r.put('events', 'x', { n: 1 }, { space: SPACE });
    await ca.r.put('events', 'y', { n: 2 }, { space: SPACE });
    const first = sync(v, a.url, { spaces: [SPACE], token: 'reader', pingIntervalMs: 100 });
    await waitUntil(async () => isSynced(first) && (await visible(v)).length === 2, 10_000, 'V to see x and y');
    await first.close();
    // While V is away: x is deleted in region b, both regions forget it, and a compacts its log past V's position.
    await waitUntil(async () => (await cb.r.get('events', 'x', { space: SPACE })) !== undefined, 10_000, 'x to reach B');
    await cb.r.delete('events', 'x', { space: SPACE });
    clock.value += 10 * MINUTE;
    await collectUntil([a, b], async () => (await tombstones(a)) === 0 && (await tombstones(b)) === 0 && (await a.storage.stats()).records === 1, 'both regions to forget x');
    await a.compact(0);
    // V comes back to a: a snapshot (its position was compacted), joined with what it holds, and x goes.
    const again = sync(v, a.url, { spaces: [SPACE], token: 'reader', pingIntervalMs: 100 });
    cleanup.push(() => again.close());
    await waitUntil(async () => isSynced(again) && (await v.get('events', 'x', { space: SPACE })) === undefined, 10_000, 'V to forget x');
    expect(await visible(v)).toEqual(await visible(ca.r));
  });

  it('an operator retires a device at any region that knows it: every region retires it, and the device goes on under a new id in place', async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const [a, b] = (await regions(clock, 2)) as [SyncServer, SyncServer];
    const w = await client(b, 'op-w', clock);
    await w.r.put('events', 'w1', { by: 'w' }, { space: SPACE });
    const old = w.r.id;
    // Region a knows W only by its change, which came over the link.
    await waitUntil(async () => (await a.storage.writers(SPACE)).some((x) => x.replica === old && !x.local), 10_000, 'W’s change to reach region a');
    expect(await a.retire(old)).toEqual([old]);
    await collectUntil([a, b], () => b.storage.isRetired(old), 'region b to retire W');
    await waitUntil(async () => w.r.id !== old && isSynced(w.engine), 10_000, 'W to go on under a new id');
    expect(w.engine.status.rejoined).toMatchObject({ previousId: old, id: w.r.id, dropped: [] });
    // It writes on under the new id, and every region takes it.
    await w.r.put('events', 'w2', { by: 'w' }, { space: SPACE });
    await waitUntil(async () => (await a.storage.readLog(SPACE, 0, 1000)).some((e) => e.change.id === 'w2' && e.change.replica === w.r.id), 10_000, 'w2 to reach region a');
    expect((await w.r.get('events', 'w1', { space: SPACE }))?.value).toEqual({ by: 'w' });
  });

  it('a region with a peer it never reached collects nothing, and still refuses below its own level', async () => {
    const clock = new ManualClock(Date.now() - 60 * MINUTE);
    const dead = await freePort();
    const [a] = (await regions(clock, 1, () => [dead])) as [SyncServer];
    const ca = await client(a, 'lone-a', clock);
    await ca.r.put('events', 'x', { n: 1 }, { space: SPACE });
    await ca.r.delete('events', 'x', { space: SPACE });
    await waitUntil(async () => isSynced(ca.engine) && (await tombstones(a)) === 1, 10_000, 'the delete to be stored');
    clock.value += 10 * MINUTE;
    for (let round = 0; round < 3; round++) await a.collect();
    const stable = await a.storage.stability(SPACE);
    expect(stable.hlc).toBeUndefined();
    expect(stable.refused?.hlc).toBeDefined();
    expect(await tombstones(a)).toBe(1);
    expect((await ca.r.stats()).tombstones).toBe(1);
  });
});

/**
 * Regions (issue 18, first part): sync servers that follow each other's logs
 * all-to-all over `/link`. Real servers, real sockets, default limits; each
 * client syncs with one region. Checks what a user of several regions cares
 * about: every write reaches every client of every region, each region's log
 * holds each change exactly once (with the region it entered through), links
 * resume after a restart from where they were, and only peers open links.
 */
import { createServer } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignJWT } from 'jose';
import { createSyncServer, sqliteStorage, type SyncServer, type SyncServerOptions } from '@syncline/server';
import { canonicalState, decodeLinkDownstream, encodeLinkUpstream, LINK_PROTOCOL_VERSION, type LinkDownstreamMessage, type SpaceId, type UpstreamMessage } from '@syncline/core/internal';
import { cleanupStack, counter, freePort, isSynced, outboxCount, recordingSocket, replica, silent, sync, tcpProxy, tempDir, toBytes, uniqueName, visibleState, waitUntil } from './harness.js';
import { portOf } from '../internals.js';
import { Pusher } from '../../packages/client/src/sync/pusher.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;
const SPACE = 'team' as SpaceId;

async function region(name: string, port: number, peers: number[], options: SyncServerOptions = {}): Promise<SyncServer> {
  const server = createSyncServer({
    port,
    storage: sqliteStorage({ path: ':memory:' }),
    logger: silent,
    region: name,
    peers: peers.map((p) => `ws://127.0.0.1:${p}`),
    ...options,
  });
  await server.listen();
  return server;
}

/** Every (replica, seq) in a region's log of SPACE, with how often it is there and the origins it has. */
async function logOf(server: SyncServer): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const entry of await server.storage.readLog(SPACE, 0, 1_000_000)) {
    const key = `${entry.change.replica}:${entry.change.seq}`;
    out.set(key, [...(out.get(key) ?? []), entry.origin]);
  }
  return out;
}

async function client(server: SyncServer, name: string) {
  const r = await replica({ name: uniqueName(name), schema });
  const engine = sync(r, server.url, { spaces: [SPACE] });
  cleanup.push(() => engine.close(), () => r.close());
  return { r, engine };
}

describe('regions', () => {
  it('two regions following each other: every write reaches the clients of both, and each log holds each change once, with its origin', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    const b = await region('b', pb, [pa]);
    cleanup.push(() => a.close(), () => b.close());
    const ca = await client(a, 'ra');
    const cb = await client(b, 'rb');

    // Writes one at a time, as apps make them, on both sides at once.
    await Promise.all([
      (async () => {
        for (let i = 0; i < 30; i++) await ca.r.put('events', `a${i}`, { n: i }, { space: SPACE });
      })(),
      (async () => {
        for (let i = 0; i < 30; i++) await cb.r.put('events', `b${i}`, { n: i }, { space: SPACE });
      })(),
    ]);
    await ca.r.patch('events', 'b3', { by: 'a' }, { space: SPACE });
    await cb.r.delete('events', 'a4', { space: SPACE });

    const rows = async (r: typeof ca.r) => (await r.query({ collection: 'events', space: SPACE })).length;
    await waitUntil(async () => (await rows(ca.r)) === 59 && (await rows(cb.r)) === 59 && isSynced(ca.engine) && isSynced(cb.engine), 10_000, 'both clients to hold 59 events');
    expect(await visibleState(ca.r as never, ['events'], SPACE)).toEqual(await visibleState(cb.r as never, ['events'], SPACE));
    expect((await ca.r.get('events', 'b3', { space: SPACE }))?.value).toEqual({ n: 3, by: 'a' });

    await waitUntil(async () => (await logOf(a)).size === 62 && (await logOf(b)).size === 62, 10_000, 'both logs to hold all 62 changes');
    for (const [server, own, other] of [
      [a, ca, cb],
      [b, cb, ca],
    ] as const) {
      const log = await logOf(server);
      for (const [key, origins] of log) {
        expect(origins, `${key} in region ${server.region}`).toHaveLength(1);
        expect(origins[0], `${key}'s origin in region ${server.region}`).toBe(key.startsWith(own.r.id) ? '' : other === cb ? 'b' : 'a');
      }
    }
    expect(a.links()).toEqual([{ url: `ws://127.0.0.1:${pb}`, region: 'b', up: true, lag: 0 }]);
    expect(await counter(a.metrics.linkChanges, { peer: `ws://127.0.0.1:${pb}` })).toBe(31);
    expect(await counter(b.metrics.linkChanges, { peer: `ws://127.0.0.1:${pa}` })).toBe(31);
  });

  it('three regions all-to-all: no change cascades, and every region holds every change once', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const names = ['a', 'b', 'c'];
    const servers = await Promise.all(names.map((n, i) => region(n, ports[i] as number, ports.filter((_, j) => j !== i))));
    cleanup.push(...servers.map((s) => () => s.close()));
    const clients = await Promise.all(servers.map((s, i) => client(s, `r${names[i]}`)));
    await Promise.all(clients.map(async (c, i) => {
      for (let k = 0; k < 20; k++) await c.r.put('events', `${names[i]}${k}`, { k }, { space: SPACE });
    }));
    await waitUntil(async () => {
      for (const s of servers) if ((await logOf(s)).size !== 60) return false;
      for (const c of clients) if ((await c.r.query({ collection: 'events', space: SPACE })).length !== 60) return false;
      return true;
    }, 10_000, 'every region and client to hold 60 changes');
    for (const [i, s] of servers.entries()) {
      for (const [key, origins] of await logOf(s)) {
        expect(origins).toHaveLength(1);
        const writer = clients.findIndex((c) => key.startsWith(`${c.r.id}:`));
        // A change from region j's client entered region i through j's link, never through a third region.
        expect(origins[0]).toBe(writer === i ? '' : names[writer]);
      }
    }
  });

  it('a region that restarts resumes its links where they were: nothing missed, nothing stored twice', async () => {
    const dir = await tempDir('syncline-regions-');
    cleanup.push(() => dir.remove());
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    cleanup.push(() => a.close());
    const bOptions = { storage: sqliteStorage({ path: `${dir.path}/b.db` }) };
    let b = await region('b', pb, [pa], bOptions);
    const ca = await client(a, 'ra');
    for (let i = 0; i < 20; i++) await ca.r.put('events', `before${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await logOf(b)).size === 20, 10_000, 'B to follow A');
    await b.close();

    // A goes on while B is down.
    for (let i = 0; i < 20; i++) await ca.r.put('events', `during${i}`, { i }, { space: SPACE });
    b = await region('b', pb, [pa], { storage: sqliteStorage({ path: `${dir.path}/b.db` }) });
    cleanup.push(() => b.close());
    const cb = await client(b, 'rb');
    await waitUntil(async () => (await cb.r.query({ collection: 'events', space: SPACE })).length === 40, 15_000, 'B’s client to see all 40 events after the restart');
    const log = await logOf(b);
    expect(log.size).toBe(40);
    for (const origins of log.values()) expect(origins).toEqual(['a']);
    // Resumed, not replayed: the link read only what was new (20 changes) after the restart.
    expect(await counter(b.metrics.linkChanges, { peer: `ws://127.0.0.1:${pa}` })).toBe(20);
  });

  it('a link whose peer is down keeps retrying and catches up when it comes back', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await region('b', pb, [pa]);
    cleanup.push(() => b.close());
    expect(b.links()[0]?.up).toBe(false);
    const a = await region('a', pa, [pb]);
    cleanup.push(() => a.close());
    const ca = await client(a, 'ra');
    await ca.r.put('events', 'late', { n: 1 }, { space: SPACE });
    await waitUntil(async () => (await logOf(b)).size === 1 && b.links()[0]?.up === true, 15_000, 'B’s link to reach A once A is up');
  });
});

describe('clients failing over between regions', () => {
  it('a client resumes in another region by its origin vector: no snapshot, only what it lacked, nothing twice, its writes go on', async () => {
    // Three regions all-to-all; B reaches C through a proxy, so that B can fall behind C.
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const cToB = await tcpProxy(pc);
    cleanup.push(() => cToB.close());
    const a = await region('a', pa, [pb, pc]);
    const b = await region('b', pb, [pa, cToB.port]);
    const c = await region('c', pc, [pa, pb]);
    cleanup.push(() => b.close(), () => c.close());
    const [cb, cc] = [await client(b, 'rb'), await client(c, 'rc')];
    // X syncs with A first, and knows B's URL to fail over to.
    const rec = recordingSocket();
    const x = await replica({ name: uniqueName('x'), schema });
    const engine = sync(x, [a.url, b.url], { spaces: [SPACE], WebSocket: rec.factory });
    cleanup.push(() => engine.close(), () => x.close());

    const write = async (r: typeof x, prefix: string, n: number) => {
      for (let i = 0; i < n; i++) await r.put('events', `${prefix}${i}`, { i }, { space: SPACE });
    };
    await Promise.all([write(x, 'x', 10), write(cb.r, 'b', 30), write(cc.r, 'c', 30)]);
    const rows = async (r: typeof x) => (await r.query({ collection: 'events', space: SPACE })).length;
    await waitUntil(async () => (await rows(x)) === 70 && isSynced(engine), 15_000, 'X to hold all 70 events through A');
    expect(rec.of('welcome')[0]).toMatchObject({ region: 'a', peers: [`ws://127.0.0.1:${pb}/sync`, `ws://127.0.0.1:${pc}/sync`] });

    // B loses C; C's clients go on writing, and X gets their writes through A.
    cToB.cut();
    await write(cc.r, 'late-c', 10);
    await waitUntil(async () => (await rows(x)) === 80 && (await logOf(a)).size === 80, 15_000, "X to get C's late writes through A");
    expect((await logOf(b)).size).toBe(70);

    // A goes down: X fails over to B, which is behind C. Meanwhile B's client writes.
    const fromSocket = rec.sockets.length;
    const ownHeadOfA = (await a.storage.readLog(SPACE, 0, 1_000, undefined, { origin: '' })).at(-1)?.pos;
    await a.close();
    await write(cb.r, 'late-b', 10);
    await waitUntil(async () => (await rows(x)) === 90 && isSynced(engine) && rec.sockets.length > fromSocket, 15_000, "X to get B's late writes from B");
    expect(rec.of('welcome', fromSocket).map((w) => w.region)).toEqual(['b']);
    // No snapshot: X said what it holds per origin, and B sent only what X lacked (B's 10 late writes).
    expect(rec.of('snapshot', fromSocket)).toEqual([]);
    const hello = rec.sent.find((m) => m.socket >= fromSocket && m.message.type === 'hello')?.message as Extract<UpstreamMessage, { type: 'hello' }>;
    expect(hello.spaces[0]).toMatchObject({ region: 'a' });
    // Per region, the position in that region's own log of the last change that entered through it.
    const ownHead = async (server: SyncServer) => (await server.storage.readLog(SPACE, 0, 1_000, undefined, { origin: '' })).at(-1)?.pos;
    const heldBefore = { a: ownHeadOfA, b: (await b.storage.readLog(SPACE, 0, 1_000, undefined, { origin: '' })).filter((e) => e.change.seq <= 30).at(-1)?.pos, c: await ownHead(c) };
    expect(new Map(hello.spaces[0]?.origins?.map((o) => [o.region, o.upTo]))).toEqual(new Map(Object.entries(heldBefore)));
    const received = () => rec.of('changes', fromSocket).flatMap((m) => m.changes.map((ch) => `${ch.replica}:${ch.seq}`));
    expect(received().sort()).toEqual(Array.from({ length: 10 }, (_, i) => `${cb.r.id}:${31 + i}`).sort());

    // X writes on B; B catches up with C: C's late writes, which X holds, are not sent to X again.
    await write(x, 'x-on-b', 5);
    cToB.heal();
    await waitUntil(async () => (await logOf(b)).size === 95 && (await logOf(c)).size === 95 && (await rows(cc.r)) === 95 && (await rows(cb.r)) === 95 && isSynced(engine), 20_000, 'B and C and their clients to hold all 95 changes');
    expect(received().filter((k) => k.startsWith(`${cc.r.id}:`))).toEqual([]);
    expect(new Set(received()).size).toBe(received().length);
    for (const r of [cb.r, cc.r]) expect(await visibleState(r as never, ['events'], SPACE)).toEqual(await visibleState(x as never, ['events'], SPACE));
    for (const server of [b, c]) for (const origins of (await logOf(server)).values()) expect(origins).toHaveLength(1);
    // X's position is B's from now on, and its vector grew with what B sent.
    const cursor = await portOf(x).position(SPACE);
    expect(cursor).toMatchObject({ upTo: await b.storage.head(SPACE), region: 'b' });
    expect(cursor.origins).toEqual({ a: ownHeadOfA, b: await ownHead(b), c: await ownHead(c) });
  });

  it('a client whose acknowledged changes have not reached the region it fails over to waits for them (sequence_gap), and its later writes arrive', async () => {
    const dir = await tempDir('syncline-regions-');
    cleanup.push(() => dir.remove());
    const [pa, pb] = [await freePort(), await freePort()];
    const bToA = await tcpProxy(pa);
    cleanup.push(() => bToA.close());
    const aOptions = () => ({ storage: sqliteStorage({ path: `${dir.path}/a.db` }) });
    let a = await region('a', pa, [pb], aOptions());
    const b = await region('b', pb, [bToA.port]);
    cleanup.push(() => b.close());
    bToA.cut(); // B will not hear of what A's clients write until healed
    const rec = recordingSocket();
    const x = await replica({ name: uniqueName('x'), schema });
    const engine = sync(x, [a.url, b.url], { spaces: [SPACE], WebSocket: rec.factory });
    cleanup.push(() => engine.close(), () => x.close());
    for (let i = 0; i < 5; i++) await x.put('events', `x${i}`, { i }, { space: SPACE });
    await waitUntil(() => isSynced(engine), 10_000, 'A to acknowledge X’s 5 writes');
    expect((await logOf(b)).size).toBe(0);

    // A goes down with X's changes; X moves to B and writes on.
    await a.close();
    for (let i = 5; i < 8; i++) await x.put('events', `x${i}`, { i }, { space: SPACE });
    await waitUntil(() => engine.status.error?.code === 'sequence_gap', 10_000, 'B to refuse X’s push with sequence_gap');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // Waiting, not stopped: the space keeps trying, paced.
    expect(engine.status.stoppedSpaces ?? []).toEqual([]);
    expect(engine.status.pending).toBe(3);
    const pushes = () => rec.sent.filter((m) => m.message.type === 'push').length;
    const before = pushes();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(pushes() - before).toBeLessThanOrEqual(3);

    // A comes back and B's link reaches it: B gets X's first 5, then X's waiting push goes through.
    a = await region('a', pa, [pb], aOptions());
    cleanup.push(() => a.close());
    bToA.heal();
    await waitUntil(async () => isSynced(engine) && (await logOf(b)).size === 8 && (await logOf(a)).size === 8, 40_000, 'X’s 8 writes to be in both regions');
    for (const server of [a, b]) for (const origins of (await logOf(server)).values()) expect(origins).toHaveLength(1);
  });

  it("a client given one region's URL learns the peers from its welcome and fails over to one of them", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    const b = await region('b', pb, [pa]);
    cleanup.push(() => b.close());
    const cb = await client(b, 'rb');
    const rec = recordingSocket();
    const x = await replica({ name: uniqueName('x'), schema });
    const engine = sync(x, a.url, { spaces: [SPACE], WebSocket: rec.factory });
    cleanup.push(() => engine.close(), () => x.close());
    await x.put('events', 'x0', { n: 0 }, { space: SPACE });
    await waitUntil(() => isSynced(engine), 10_000, 'X to sync with A');
    await a.close();
    await x.put('events', 'x1', { n: 1 }, { space: SPACE });
    await cb.r.put('events', 'b0', { n: 0 }, { space: SPACE });
    await waitUntil(async () => isSynced(engine) && (await x.query({ collection: 'events', space: SPACE })).length === 3 && (await cb.r.get('events', 'x1', { space: SPACE })) !== undefined, 15_000, 'X to reach B, which A named');
    expect(rec.sockets.map((s) => s.url)).toContain(`ws://127.0.0.1:${pb}/sync`);
    // learnPeers: false keeps to the URLs given.
    const y = await replica({ name: uniqueName('y'), schema });
    const only = recordingSocket();
    const pinned = sync(y, b.url, { spaces: [SPACE], WebSocket: only.factory, learnPeers: false });
    cleanup.push(() => pinned.close(), () => y.close());
    await waitUntil(() => isSynced(pinned), 10_000, 'Y to sync with B');
    await b.close();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(new Set(only.sockets.map((s) => s.url))).toEqual(new Set([b.url]));
  });

  it("a region receiving a moving client's changes from two links stores each link's up to the gap the other fills: no deadlock, each origin in order", async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const cToA = await tcpProxy(pa);
    const cToB = await tcpProxy(pb);
    cleanup.push(() => cToA.close(), () => cToB.close());
    cToA.cut();
    cToB.cut();
    const a = await region('a', pa, [pb, pc]);
    const b = await region('b', pb, [pa, pc]);
    const c = await region('c', pc, [cToA.port, cToB.port]);
    cleanup.push(() => a.close(), () => b.close(), () => c.close());
    const rec = recordingSocket();
    const x = await replica({ name: uniqueName('x'), schema });
    const engine = sync(x, [a.url, b.url], { spaces: [SPACE], WebSocket: rec.factory, learnPeers: false });
    cleanup.push(() => engine.close(), () => x.close());
    const has = async (server: SyncServer, n: number) => [...(await logOf(server)).keys()].filter((k) => k.startsWith(`${x.id}:`)).length === n;
    const moveTo = async (server: SyncServer, held: number) => {
      await waitUntil(() => has(server, held), 10_000, `${server.region} to hold X's first ${held}`);
      const sockets = rec.sockets.length;
      rec.sockets.at(-1)?.terminate();
      await waitUntil(() => rec.sockets.length > sockets && isSynced(engine) && rec.of('welcome', sockets).some((w) => w.region === server.region), 10_000, `X to move to ${server.region}`);
    };
    // X writes 1 and 2 through A, 3 through B, 4 through A: A's own entries of X are 1, 2, 4.
    for (const n of [1, 2]) await x.put('events', `x${n}`, { n }, { space: SPACE });
    await waitUntil(() => isSynced(engine), 10_000, 'A to acknowledge 1 and 2');
    await moveTo(b, 2);
    await x.put('events', 'x3', { n: 3 }, { space: SPACE });
    await waitUntil(() => isSynced(engine), 10_000, 'B to acknowledge 3');
    await moveTo(a, 3);
    await x.put('events', 'x4', { n: 4 }, { space: SPACE });
    await waitUntil(() => isSynced(engine), 10_000, 'A to acknowledge 4');
    // C has heard from neither. Its link from A brings 1, 2, 4 (4 needs 3); its link from B brings 3 (needs 1, 2).
    cToA.heal();
    cToB.heal();
    await waitUntil(() => has(c, 4), 20_000, 'C to hold all of X’s 4 changes');
    // Each origin's entries are stored in their origin order.
    const log = await c.storage.readLog(SPACE, 0, 1_000);
    for (const origin of ['a', 'b']) {
      const of = log.filter((e) => e.origin === origin).map((e) => e.originPos);
      expect(of, origin).toEqual([...of].sort((p, q) => p - q));
    }
    expect(log.filter((e) => e.change.replica === x.id).map((e) => [e.change.seq, e.origin])).toEqual(
      expect.arrayContaining([
        [1, 'a'],
        [2, 'a'],
        [3, 'b'],
        [4, 'a'],
      ]),
    );
  });

  it('a client that lacks entries the new region compacted away is sent a snapshot, and holds everything after it', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    const b = await region('b', pb, [pa]);
    cleanup.push(() => b.close());
    const cb = await client(b, 'rb');
    const rec = recordingSocket();
    const x = await replica({ name: uniqueName('x'), schema });
    const engine = sync(x, [a.url, b.url], { spaces: [SPACE], WebSocket: rec.factory });
    cleanup.push(() => engine.close(), () => x.close());
    for (let i = 0; i < 5; i++) await cb.r.put('events', `b${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await x.query({ collection: 'events', space: SPACE })).length === 5 && isSynced(engine), 15_000, 'X to hold 5 events');
    // X stops; B's client writes 20 more, and B compacts all but the last 3 (A has stored them all).
    engine.pause();
    for (let i = 5; i < 25; i++) await cb.r.put('events', `b${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await logOf(a)).size === 25, 10_000, 'A to follow B');
    await new Promise((resolve) => setTimeout(resolve, 300)); // A's read report reaches B
    await b.compact();
    expect(await b.storage.horizon(SPACE)).toBeGreaterThan(5);
    const fromSocket = rec.sockets.length;
    await a.close();
    engine.resume();
    await waitUntil(async () => (await x.query({ collection: 'events', space: SPACE })).length === 25 && isSynced(engine) && rec.of('welcome', fromSocket).some((w) => w.region === 'b'), 15_000, 'X to hold all 25 from B');
    expect(rec.of('snapshot', fromSocket).length).toBeGreaterThan(0);
    expect(await visibleState(x as never, ['events'], SPACE)).toEqual(await visibleState(cb.r as never, ['events'], SPACE));
  });
});

/**
 * Regions A (on a file, a1.db, that a test can destroy) and B, where B reaches A through a proxy that
 * stays cut: what A's clients write reaches B only through the clients themselves.
 */
async function aCutOffFromB() {
  const dir = await tempDir('syncline-regions-');
  cleanup.push(() => dir.remove());
  const [pa, pb] = [await freePort(), await freePort()];
  const bToA = await tcpProxy(pa);
  cleanup.push(() => bToA.close());
  bToA.cut();
  const a = await region('a', pa, [pb], { storage: sqliteStorage({ path: `${dir.path}/a1.db` }) });
  const b = await region('b', pb, [bToA.port]);
  cleanup.push(() => b.close());
  return { dir, pa, pb, a, b };
}

describe('durability across regions', () => {
  it("quorum:2 keeps a change on the device until a second region holds it: a region that acknowledged it and lost its disk cannot take it along, while 'region' durability loses it", async () => {
    const setup = await aCutOffFromB();
    const { dir, pa, pb, b } = setup;
    let a = setup.a;
    const device = async (name: string, durability: 'region' | 'quorum:2') => {
      const rec = recordingSocket();
      const r = await replica({ name: uniqueName(name), schema });
      const engine = sync(r, [a.url, b.url], { spaces: [SPACE], WebSocket: rec.factory, durability });
      cleanup.push(() => engine.close(), () => r.close());
      return { r, engine, rec };
    };
    const q = await device('quorum', 'quorum:2');
    const one = await device('region', 'region');
    for (let i = 0; i < 3; i++) {
      await q.r.put('events', `q${i}`, { i }, { space: SPACE });
      await one.r.put('events', `o${i}`, { i }, { space: SPACE });
    }
    // A holds both devices' changes; only the 'region' device counts them as done.
    await waitUntil(async () => (await logOf(a)).size === 6 && isSynced(one.engine), 10_000, 'A to store and acknowledge all 6');
    expect(q.rec.of('ack').at(-1)).toMatchObject({ upTo: 3, stable: 0 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(q.engine.status.pending).toBe(3);
    expect(await outboxCount(q.r, SPACE)).toBe(3);
    expect(await outboxCount(one.r, SPACE)).toBe(0);

    // A's disk is destroyed before anything reached B. Both devices fail over to B.
    await a.close();
    await rm(`${dir.path}/a1.db`, { force: true });
    await waitUntil(async () => (await logOf(b)).size === 3, 10_000, "the quorum device's 3 changes to reach B from the device");
    await new Promise((resolve) => setTimeout(resolve, 300));
    // B holds them, but B alone is one region: they stay on the device.
    expect(q.engine.status.pending).toBe(3);
    // A comes back on a new disk and follows B: now two regions hold them, and they leave the outbox.
    a = await region('a', pa, [pb], { storage: sqliteStorage({ path: `${dir.path}/a2.db` }) });
    cleanup.push(() => a.close());
    await waitUntil(async () => isSynced(q.engine) && (await outboxCount(q.r, SPACE)) === 0, 15_000, 'the quorum device to see its changes held by two regions');
    const keys = (log: Map<string, string[]>) => [...log.keys()].filter((k) => k.startsWith(`${q.r.id}:`)).sort();
    expect(keys(await logOf(a))).toEqual([1, 2, 3].map((seq) => `${q.r.id}:${seq}`));
    expect(keys(await logOf(b))).toEqual([1, 2, 3].map((seq) => `${q.r.id}:${seq}`));
    // What 'region' durability cannot promise: the other device's changes went down with A's disk.
    expect([...(await logOf(b)).keys()].filter((k) => k.startsWith(`${one.r.id}:`))).toEqual([]);
    expect([...(await logOf(a)).keys()].filter((k) => k.startsWith(`${one.r.id}:`))).toEqual([]);
  });
});

describe('durability across regions: a planted bug', () => {
  it("a client that lets a change go at the first region's ack under quorum:2 (planted) loses it with that region's disk: the check above catches it", async () => {
    const ack = Pusher.prototype.ack;
    cleanup.push(() => (Pusher.prototype.ack = ack));
    Pusher.prototype.ack = function (this: Pusher, space, upTo) {
      return ack.call(this, space, upTo); // `stable` ignored: the outbox empties at the first ack
    };
    const { dir, a, b } = await aCutOffFromB();
    const r = await replica({ name: uniqueName('planted'), schema });
    const engine = sync(r, [a.url, b.url], { spaces: [SPACE], durability: 'quorum:2' });
    cleanup.push(() => engine.close(), () => r.close());
    for (let i = 0; i < 3; i++) await r.put('events', `q${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await outboxCount(r, SPACE)) === 0, 10_000, 'the planted client to empty its outbox at A’s ack');
    await a.close();
    await rm(`${dir.path}/a1.db`, { force: true });
    await expect(waitUntil(async () => (await logOf(b)).size === 3, 3_000, 'B to hold the changes')).rejects.toThrow(/timed out/);
    expect((await logOf(b)).size).toBe(0);
  });
});

describe('regions and compaction', () => {
  it('a region compacts its log only past what every region following it has stored; a follower that lost its data catches up from its state', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    cleanup.push(() => a.close());
    let b = await region('b', pb, [pa]);
    const ca = await client(a, 'ra');
    for (let i = 0; i < 10; i++) await ca.r.put('events', `first${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await logOf(b)).size === 10 && (await a.storage.linkPositions('follower:b')).get(SPACE) === 10, 10_000, 'B to store and report the first 10');
    // And A has read B's log (none of it B's own) up to 10: past what B's log will hold once B loses its data.
    await waitUntil(async () => (await a.storage.linkPositions(`ws://127.0.0.1:${pb}`)).get(SPACE) === 10, 10_000, "A to read B's log up to 10");

    // B goes down; A goes on writing and compacts as hard as it can.
    await b.close();
    for (let i = 0; i < 10; i++) await ca.r.put('events', `second${i}`, { i }, { space: SPACE });
    expect(await a.compact(0)).toBe(10); // only what B has stored
    expect(await a.storage.horizon(SPACE)).toBe(10);

    // B comes back with its data lost (a fresh in-memory store): it asks for A's log from 0, below A's
    // horizon, and gets A's state instead of a log with a hole; then the log from A's head on.
    b = await region('b', pb, [pa]);
    cleanup.push(() => b.close());
    const cb = await client(b, 'rb');
    const rows = async (r: typeof ca.r) => (await r.query({ collection: 'events', space: SPACE })).length;
    await waitUntil(async () => (await rows(cb.r)) === 20 && isSynced(cb.engine), 10_000, "B's client to hold A's 20 events");
    expect(await visibleState(cb.r as never, ['events'], SPACE)).toEqual(await visibleState(ca.r as never, ['events'], SPACE));
    // B holds what A's client wrote (its progress came with the state): A's client's next writes arrive as
    // log entries, none refused as a gap, and B's client's writes reach A.
    await ca.r.put('events', 'third', { i: 0 }, { space: SPACE });
    await cb.r.put('events', 'from-b', { i: 0 }, { space: SPACE });
    await waitUntil(async () => (await rows(cb.r)) === 22 && (await rows(ca.r)) === 22, 10_000, 'both clients to hold 22 events');
    await waitUntil(async () => (await logOf(b)).size === 2, 10_000, "B's log to hold the two new changes");
    expect([...(await logOf(b)).keys()].sort()).toEqual([`${ca.r.id}:21`, `${cb.r.id}:1`].sort());
    expect(await counter(a.metrics.errors, { code: 'sequence_gap' })).toBe(0);
  });

  it("a region that joins after its peer compacted catches up from the peer's state, and its clients already synced take a snapshot that holds it", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    cleanup.push(() => a.close());
    const ca = await client(a, 'ra');
    for (let i = 0; i < 10; i++) await ca.r.put('events', `a${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await a.storage.head(SPACE)) === 10, 10_000, 'A to store the 10');
    // A knows no follower yet: it compacts everything.
    expect(await a.compact(0)).toBe(10);

    // B starts with its link to A cut; its client writes and is synced at B's position.
    const bToA = await tcpProxy(pa);
    cleanup.push(() => bToA.close());
    bToA.cut();
    const b = await region('b', pb, [bToA.port]);
    cleanup.push(() => b.close());
    const rec = recordingSocket();
    const rb = await replica({ name: uniqueName('rb'), schema });
    const engine = sync(rb, b.url, { spaces: [SPACE], WebSocket: rec.factory });
    cleanup.push(() => engine.close(), () => rb.close());
    for (let i = 0; i < 3; i++) await rb.put('events', `b${i}`, { i }, { space: SPACE });
    await waitUntil(async () => isSynced(engine) && (await outboxCount(rb, SPACE)) === 0, 10_000, "B's client to sync its writes");
    const before = rec.of('snapshot').length;

    // The link comes up: B merges A's state; its client, synced at a position before the merge, gets a snapshot.
    bToA.heal();
    const rows = async (r: typeof rb) => (await r.query({ collection: 'events', space: SPACE })).length;
    await waitUntil(async () => (await rows(rb)) === 13 && (await rows(ca.r)) === 13, 10_000, 'both clients to hold 13 events');
    expect(rec.of('snapshot').length).toBeGreaterThan(before);
    expect(await visibleState(rb as never, ['events'], SPACE)).toEqual(await visibleState(ca.r as never, ['events'], SPACE));
    // And the regions' records agree.
    const states = async (server: SyncServer) => (await server.storage.snapshotPage(SPACE, undefined, 100)).map((r) => `${r.id}=${canonicalState(r.state)}`);
    await waitUntil(async () => (await states(a)).join() === (await states(b)).join(), 10_000, "the regions' records to agree");
  });

  it('a follower that restarts on its own data resumes above the horizon and misses nothing', async () => {
    const dir = await tempDir('syncline-regions-compact-');
    cleanup.push(() => dir.remove());
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await region('a', pa, [pb]);
    cleanup.push(() => a.close());
    let b = await region('b', pb, [pa], { storage: sqliteStorage({ path: `${dir.path}/b.db` }) });
    const ca = await client(a, 'ra');
    for (let i = 0; i < 10; i++) await ca.r.put('events', `first${i}`, { i }, { space: SPACE });
    await waitUntil(async () => (await a.storage.linkPositions('follower:b')).get(SPACE) === 10, 10_000, 'B to report the first 10');
    await b.close();
    for (let i = 0; i < 10; i++) await ca.r.put('events', `second${i}`, { i }, { space: SPACE });
    expect(await a.compact(0)).toBe(10);
    b = await region('b', pb, [pa], { storage: sqliteStorage({ path: `${dir.path}/b.db` }) });
    cleanup.push(() => b.close());
    await waitUntil(async () => (await logOf(b)).size === 20, 10_000, 'B to resume from position 10 and store the rest');
    await waitUntil(async () => (await a.storage.linkPositions('follower:b')).get(SPACE) === 20, 10_000, 'B to report 20');
    // Now everything B needs is stored there: A may compact the rest.
    expect(await a.compact(0)).toBe(10);
    expect(await counter(a.metrics.errors, { code: 'sequence_gap' })).toBe(0);
  });

  it('without followers, compaction is what it was', async () => {
    const a = await region('a', 0, []);
    cleanup.push(() => a.close());
    const ca = await client(a, 'ra');
    for (let i = 0; i < 5; i++) await ca.r.put('events', `e${i}`, { i }, { space: SPACE });
    await ca.engine.flushed({ timeoutMs: 5_000 });
    expect(await a.compact(2)).toBe(3);
  });
});

describe('region links: liveness', () => {
  it('a peer that accepts the connection but never answers does not hold the link: it times out and dials again', async () => {
    let connections = 0;
    const held: Array<import('node:net').Socket> = [];
    const silentPeer = createServer((socket) => {
      connections++;
      held.push(socket);
      socket.on('error', () => undefined); // never answers the WebSocket handshake
    });
    await new Promise<void>((resolve) => silentPeer.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => {
      for (const socket of held) socket.destroy();
      return new Promise<void>((resolve) => silentPeer.close(() => resolve()));
    });
    const port = (silentPeer.address() as { port: number }).port;
    const a = await region('a', 0, [port]);
    cleanup.push(() => a.close());
    await waitUntil(() => connections >= 2, 25_000, 'the link to give up on the silent peer and dial again');
    expect(a.links()[0]).toMatchObject({ up: false, region: undefined });
  }, 30_000);
});

describe('region links: who may open one', () => {
  async function follow(port: number, credential: string | undefined, regionName = 'x'): Promise<LinkDownstreamMessage> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/link`);
    cleanup.push(() => ws.terminate());
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const first = new Promise<LinkDownstreamMessage>((resolve) => ws.once('message', (data) => resolve(decodeLinkDownstream(toBytes(data as Buffer)))));
    ws.send(encodeLinkUpstream({ type: 'follow', protocol: LINK_PROTOCOL_VERSION, region: regionName, ...(credential !== undefined ? { credential } : {}), positions: [], maxFrameBytes: 1 << 20 }));
    return first;
  }

  it('with client auth, a link needs the peer credential: none, a wrong one or a client token is refused with unauthenticated', async () => {
    const secret = 'client-jwt-secret-that-is-long-enough';
    const server = await region('a', 0, [], { jwt: { secret }, peerSecret: 'peer-credential' });
    cleanup.push(() => server.close());
    const token = await new SignJWT({ spaces: { team: 'write' } }).setProtectedHeader({ alg: 'HS256' }).setSubject('u').setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    for (const credential of [undefined, 'wrong', token]) {
      const answer = await follow(server.port, credential);
      expect(answer).toMatchObject({ type: 'error', code: 'unauthenticated', fatal: true });
    }
    expect(await follow(server.port, 'peer-credential')).toMatchObject({ type: 'linked', region: 'a' });
  });

  it('a server with client auth and no peer credential serves no links; one without either serves them', async () => {
    const locked = await region('a', 0, [], { jwt: { secret: 'client-jwt-secret-that-is-long-enough' } });
    cleanup.push(() => locked.close());
    expect(await follow(locked.port, undefined)).toMatchObject({ type: 'error', code: 'unauthenticated' });
    const open = await region('b', 0, []);
    cleanup.push(() => open.close());
    expect(await follow(open.port, undefined)).toMatchObject({ type: 'linked', region: 'b' });
  });

  it('refuses a follower that claims the server’s own region, and a server that is not a region', async () => {
    const a = await region('a', 0, []);
    cleanup.push(() => a.close());
    expect(await follow(a.port, undefined, 'a')).toMatchObject({ type: 'error', code: 'forbidden' });
    const plain = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: silent });
    await plain.listen();
    cleanup.push(() => plain.close());
    expect(await follow(plain.port, undefined)).toMatchObject({ type: 'error', code: 'forbidden' });
  });

  it('a link that floods is closed with rate_limited; a follow counts what the follower has stored as read', async () => {
    const a = await region('a', 0, []);
    cleanup.push(() => a.close());
    const ws = new WebSocket(`ws://127.0.0.1:${a.port}/link`);
    cleanup.push(() => ws.terminate());
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const messages: LinkDownstreamMessage[] = [];
    ws.on('message', (data) => messages.push(decodeLinkDownstream(toBytes(data as Buffer))));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(encodeLinkUpstream({ type: 'follow', protocol: LINK_PROTOCOL_VERSION, region: 'x', positions: [{ space: SPACE, after: 0 }], maxFrameBytes: 1 << 20 }));
    await waitUntil(() => messages.some((m) => m.type === 'linked'), 5_000, 'linked');
    expect(await a.storage.linkPositions('follower:x')).toEqual(new Map([[SPACE, 0]]));
    for (let i = 0; i < 1_000; i++) ws.send(encodeLinkUpstream({ type: 'ping', id: i }));
    expect(await closed).toBe(1008);
    expect(messages.at(-1)).toMatchObject({ type: 'error', code: 'rate_limited', fatal: true });
  });

  it('refuses bad region options before starting', () => {
    expect(() => createSyncServer({ storage: sqliteStorage({ path: ':memory:' }), logger: silent, peers: ['ws://127.0.0.1:1'] })).toThrow(/region/);
    expect(() => createSyncServer({ storage: sqliteStorage({ path: ':memory:' }), logger: silent, region: 'has space' })).toThrow(/region/);
    expect(() => createSyncServer({ storage: sqliteStorage({ path: ':memory:' }), logger: silent, region: 'a', peers: ['http://x'] })).toThrow(/ws:\/\//);
  });
});

/**
 * Two regions as real `syncline-server` processes (`--region`, `--peer`), each on
 * its own SQLite file, pointed at each other; one link runs through a TCP proxy
 * that the test cuts and heals; one region is killed with SIGKILL and started
 * again. Clients stay with their own region. At the end every client holds the
 * same state and each region's log holds every change exactly once.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SpaceId } from '@syncline/core/internal';
import { sqliteStorage } from '@syncline/server';
import { cleanupStack, freePort, isSynced, replica, sync, tcpProxy as proxy, tempDir, uniqueName, visibleState, waitUntil, within } from '../sync/harness.js';
import { buildDist, ROOT } from './fixtures/build.js';
import { spawnServer, type Child } from './fixtures/child.js';
import { describePg, freshSchema, PG_URL } from './fixtures/postgres.js';

const BIN = join(ROOT, 'packages/server/bin/syncline-server.js');
const SPACE = 'team' as SpaceId;
const schema = { events: {} } as const;
const cleanup = cleanupStack();
afterEach(() => cleanup.run());
beforeAll(() => buildDist(), 120_000);

describe('syncline-server region flags', () => {
  it('refuse bad region options before any database is opened, and read the peer credential from a file', async () => {
    const dir = await tempDir('syncline-region-flags-');
    cleanup.push(dir.remove);
    const db = join(dir.path, 'never.db');
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, '--port', '0', '--db', db, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    const noRegion = run('--peer', 'ws://127.0.0.1:1');
    expect(noRegion.status).toBe(1);
    expect(noRegion.stderr).toContain('region');
    const badName = run('--region', 'eu west');
    expect(badName.status).toBe(1);
    expect(badName.stderr).toContain('region must be');
    const badPeer = run('--region', 'a', '--peer', 'http://127.0.0.1:1');
    expect(badPeer.status).toBe(1);
    expect(badPeer.stderr).toContain('ws://');
    const both = run('--region', 'a', '--peer-secret', 's', '--peer-secret-file', 'f');
    expect(both.status).toBe(1);
    expect(existsSync(db)).toBe(false);

    // A secret file (its trailing newline dropped) is what links must present.
    const secretFile = join(dir.path, 'peer-secret');
    writeFileSync(secretFile, 'from-a-file\n');
    const child = await spawnServer([BIN, '--port', '0', '--db', db, '--region', 'a', '--jwt-secret', 'client-jwt-secret-that-is-long-enough', '--peer-secret-file', secretFile]);
    cleanup.push(() => child.process.kill('SIGKILL'));
    const b = await spawnServer([BIN, '--port', '0', '--db', join(dir.path, 'b.db'), '--region', 'b', '--peer', `ws://127.0.0.1:${child.port}`, '--peer-secret', 'from-a-file']);
    cleanup.push(() => b.process.kill('SIGKILL'));
    await waitUntil(async () => (await (await fetch(`http://127.0.0.1:${b.port}/metrics`)).text()).includes(`syncline_link_up{peer="ws://127.0.0.1:${child.port}"} 1`), 10_000, 'B’s link to A to be up');
  }, 60_000);
});

describe('two regions as syncline-server processes', () => {
  it('converge through a cut link and a SIGKILL of one region, with each change once per region', async () => {
    const dir = await tempDir('syncline-regions-cli-');
    cleanup.push(dir.remove);
    const [pa, pb] = [await freePort(), await freePort()];
    const toB = await proxy(pb);
    cleanup.push(() => toB.close());
    const start = (name: 'a' | 'b'): Promise<Child> =>
      name === 'a'
        ? spawnServer([BIN, '--port', String(pa), '--db', join(dir.path, 'a.db'), '--region', 'a', '--peer', `ws://127.0.0.1:${toB.port}`])
        : spawnServer([BIN, '--port', String(pb), '--db', join(dir.path, 'b.db'), '--region', 'b', '--peer', `ws://127.0.0.1:${pa}/sync`]);
    const a = await start('a');
    cleanup.push(() => a.process.kill('SIGKILL'));
    let b = await start('b');
    cleanup.push(() => b.process.kill('SIGKILL'));

    const clients = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const r = await replica({ name: uniqueName(`region-client-${i}`), schema });
        const engine = sync(r, `ws://127.0.0.1:${i % 2 === 0 ? pa : pb}/sync`, { spaces: [SPACE] });
        cleanup.push(() => engine.close(), () => r.close());
        return { r, engine, i };
      }),
    );
    const write = async (tag: string, n: number) =>
      Promise.all(
        clients.map(async (c) => {
          for (let k = 0; k < n; k++) await c.r.put('events', `${tag}-${c.i}-${k}`, { k, by: c.i }, { space: SPACE });
        }),
      );
    let seen: number[] = [];
    const count = async () => (seen = await Promise.all(clients.map(async (c) => (await c.r.query({ collection: 'events', space: SPACE })).length)));

    await write('first', 10);
    await waitUntil(async () => (await count()).every((n) => n === 60), 20_000, () => `every client to hold 60 events (${seen.join(',')})`);

    // The link from A to B is cut: each side goes on alone, then the link heals.
    toB.cut();
    await write('cut', 10);
    await new Promise((resolve) => setTimeout(resolve, 300));
    toB.heal();
    await waitUntil(async () => (await count()).every((n) => n === 120), 30_000, () => `every client to hold 120 events after the heal (${seen.join(',')})`);

    // B is killed; its clients write offline; B comes back on its file and port.
    b.process.kill('SIGKILL');
    await within(b.exited, 10_000, 'B to die');
    await write('kill', 10);
    b = await start('b');
    cleanup.push(() => b.process.kill('SIGKILL'));
    await waitUntil(async () => (await count()).every((n) => n === 180) && clients.every((c) => isSynced(c.engine)), 30_000, () => `every client to hold 180 events after B's restart (${seen.join(',')})`);

    const states = await Promise.all(clients.map((c) => visibleState(c.r as never, ['events'], SPACE)));
    for (const state of states) expect(state).toEqual(states[0]);
    // The clients of B wrote to A while B was down: B holds those once its link to A has read them.
    await waitUntil(() => ['a', 'b'].every((name) => logLength(join(dir.path, `${name}.db`)) >= 180), 30_000, 'both regions to hold the 180 changes');

    // Each region's log holds each change exactly once (read from the files after a clean stop).
    a.process.kill('SIGTERM');
    b.process.kill('SIGTERM');
    await within(Promise.all([a.exited, b.exited]), 10_000, 'both regions to stop');
    for (const name of ['a', 'b']) {
      const storage = sqliteStorage({ path: join(dir.path, `${name}.db`) });
      try {
        const log = await storage.readLog(SPACE, 0, 1_000_000);
        const keys = log.map((e) => `${e.change.replica}:${e.change.seq}`);
        expect(new Set(keys).size, `region ${name}`).toBe(keys.length);
        expect(keys.length, `region ${name}`).toBe(180);
      } finally {
        await storage.close();
      }
    }
  }, 120_000);
});

/** Entries of SPACE in a running region's SQLite log (a read-only connection beside the server's). */
function logLength(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM log WHERE space = ?').get(SPACE) as { n: number }).n;
  } finally {
    db.close();
  }
}

describePg('three regions: two on SQLite, one as two instances on PostgreSQL', () => {
  it('30 replicas spread over them converge through a cut link and a SIGKILL (its clients failing over), each change once per region', async () => {
    const dir = await tempDir('syncline-regions-3-');
    cleanup.push(dir.remove);
    const { schema: pgSchema, drop } = freshSchema();
    cleanup.push(drop);
    const [pa, pb, pc1, pc2] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const toC = await proxy(pc1); // A follows C through a proxy the test cuts
    cleanup.push(() => toC.close());
    const peersOf = { a: [`ws://127.0.0.1:${pb}`, `ws://127.0.0.1:${toC.port}`], b: [`ws://127.0.0.1:${pa}`, `ws://127.0.0.1:${pc2}`], c: [`ws://127.0.0.1:${pa}`, `ws://127.0.0.1:${pb}`] };
    const peerArgs = (name: 'a' | 'b' | 'c') => ['--region', name, ...peersOf[name].flatMap((p) => ['--peer', p])];
    const startA = () => spawnServer([BIN, '--port', String(pa), '--db', join(dir.path, 'a.db'), ...peerArgs('a')]);
    const startB = () => spawnServer([BIN, '--port', String(pb), '--db', join(dir.path, 'b.db'), ...peerArgs('b')]);
    const startC = (port: number) => spawnServer([BIN, '--port', String(port), '--postgres', PG_URL, '--postgres-schema', pgSchema, ...peerArgs('c')]);
    const servers: Child[] = [];
    const kill = (c: Child) => c.process.kill('SIGKILL');
    cleanup.push(() => servers.forEach(kill));
    let a = await startA();
    servers.push(a, await startB(), await startC(pc1), await startC(pc2));

    // 30 replicas: 10 per region, each given its own region's URLs first (both instances of C), then the others';
    // half of them with quorum:2, so that C's instances answer quorum acks whichever of them a follower reached.
    const urls = [[`ws://127.0.0.1:${pa}/sync`], [`ws://127.0.0.1:${pb}/sync`], [`ws://127.0.0.1:${pc1}/sync`, `ws://127.0.0.1:${pc2}/sync`]];
    const clients = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const r = await replica({ name: uniqueName(`r3-${i}`), schema });
        // Every other replica asks for quorum:2 (two regions hold a change before it leaves the device).
        const engine = sync(r, [...(urls[i % 3] as string[]), ...urls.filter((_, j) => j !== i % 3).flat()], { spaces: [SPACE], durability: i % 2 === 0 ? 'quorum:2' : 'region' });
        cleanup.push(() => engine.close(), () => r.close());
        return { r, engine, i };
      }),
    );
    const write = (tag: string, n: number) =>
      Promise.all(clients.map(async (c) => {
        for (let k = 0; k < n; k++) await c.r.put('events', `${tag}-${c.i}-${k}`, { k, by: c.i }, { space: SPACE });
      }));
    let seen: number[] = [];
    const count = async () => (seen = await Promise.all(clients.map(async (c) => (await c.r.query({ collection: 'events', space: SPACE })).length)));
    const all = async (n: number) => (await count()).every((x) => x === n) && clients.every((c) => isSynced(c.engine));

    await write('first', 5);
    await waitUntil(() => all(150), 30_000, () => `150 events everywhere (${seen.join(',')})`);
    toC.cut();
    await write('cut', 5);
    await new Promise((resolve) => setTimeout(resolve, 300));
    toC.heal();
    await waitUntil(() => all(300), 30_000, () => `300 events everywhere after the heal (${seen.join(',')})`);
    // A is killed: its clients fail over to B and C and go on; everything converges while A is down.
    kill(a);
    await within(a.exited, 10_000, 'A to die');
    await write('kill', 5);
    await waitUntil(() => all(450), 40_000, () => `450 events everywhere with A down (${seen.join(',')})`);
    a = await startA();
    servers.push(a);
    await write('back', 2);
    await waitUntil(() => all(510), 40_000, () => `510 events everywhere after A's restart (${seen.join(',')})`);
    const states = await Promise.all(clients.map((c) => visibleState(c.r as never, ['events'], SPACE)));
    for (const state of states) expect(state).toEqual(states[0]);

    // Each region's log: every change exactly once, once its links have read what the others hold.
    const { postgresStorage } = await import('@syncline/server');
    const c = postgresStorage({ connectionString: PG_URL, schema: pgSchema, onError: () => undefined });
    try {
      await waitUntil(async () => logLength(join(dir.path, 'a.db')) >= 510 && logLength(join(dir.path, 'b.db')) >= 510 && (await c.head(SPACE)) >= 510, 30_000, 'every region to hold the 510 changes');
    } finally {
      await c.close();
    }
    servers.forEach(kill);
    const stores = [sqliteStorage({ path: join(dir.path, 'a.db') }), sqliteStorage({ path: join(dir.path, 'b.db') }), postgresStorage({ connectionString: PG_URL, schema: pgSchema, onError: () => undefined })];
    for (const [i, storage] of stores.entries()) {
      try {
        const keys = (await storage.readLog(SPACE, 0, 1_000_000)).map((e) => `${e.change.replica}:${e.change.seq}`);
        expect(keys.length, `region ${'abc'[i]}`).toBe(510);
        expect(new Set(keys).size, `region ${'abc'[i]}`).toBe(510);
      } finally {
        await storage.close();
      }
    }
  }, 150_000);
});

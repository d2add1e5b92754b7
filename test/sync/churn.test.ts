/**
 * Churn (issue 19): create/delete cycles over a fixed working set, one write at
 * a time as apps write, with default limits. With garbage collection at the
 * stability horizon (a pass every few thousand cycles, as the server's gc
 * timer does in a long-running app), what the server stores (SQLite,
 * PostgreSQL) and what a replica stores (IndexedDB via fake-indexeddb) stay
 * within a constant factor of the working set, at every checkpoint, not just
 * at the end. `npm run bench:churn` runs the 100,000-cycle version and prints
 * the figures without collection beside these.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSyncServer, postgresStorage, sqliteStorage, type ServerStorage } from '@syncline/server';
import type { SpaceId } from '@syncline/core/internal';
import { cleanupStack, freePort, idbStorage, replica, silent, sync, tempDir, uniqueName, waitUntil } from './harness.js';
import { adminClient, describePg, PG_URL } from '../server/fixtures/postgres.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const CYCLES = 10_000;
const WORKING_SET = 1_000;
/** Cycles between collection passes (the gc timer's 60 s in an app writing a change every few ms). */
const PASS_EVERY = 1_000;
/** What "a constant factor" is held to: stored bytes at most this many times the working set's (without collection: CYCLES / WORKING_SET and growing). */
const FACTOR = 3;

async function churn(storage: ServerStorage, label: string): Promise<void> {
  const server = createSyncServer({ port: await freePort(), storage, logger: silent });
  await server.listen();
  cleanup.push(() => server.close());
  const r = await replica({ name: uniqueName('churn'), schema: { events: {} }, storage: idbStorage() });
  cleanup.push(() => r.close());
  const engine = sync(r, server.url);
  cleanup.push(() => engine.close());
  const space = r.defaultSpace as SpaceId;

  let reference: { server: number; client: number } | undefined;
  const worst = { server: 0, client: 0, serverTombstones: 0, clientTombstones: 0 };
  const started = performance.now();
  const measure = async (): Promise<void> => {
    const s = await server.storage.stats();
    const c = await r.stats();
    const ref = reference as { server: number; client: number };
    worst.server = Math.max(worst.server, s.recordBytes / ref.server);
    worst.client = Math.max(worst.client, c.stateBytes / ref.client);
    worst.serverTombstones = Math.max(worst.serverTombstones, s.tombstones);
    worst.clientTombstones = Math.max(worst.clientTombstones, c.tombstones);
  };
  for (let i = 0; i < CYCLES; i++) {
    await r.put('events', `e${i}`, { i, title: `event ${i}`, at: 1_700_000_000_000 + i * 60_000 });
    if (i >= WORKING_SET) await r.delete('events', `e${i - WORKING_SET}`);
    if (i === WORKING_SET - 1) {
      // The working set alone (no delete yet): the reference every figure is a multiple of.
      await engine.flushed({ timeoutMs: 60_000 });
      reference = { server: (await server.storage.stats()).recordBytes, client: (await r.stats()).stateBytes };
    }
    if ((i + 1) % PASS_EVERY !== 0 || i < WORKING_SET) continue;
    await engine.flushed({ timeoutMs: 60_000 });
    await measure(); // the peak: just before a pass
    const pass = await server.collect();
    expect(pass.collected).toBeGreaterThan(0);
    expect(pass.horizons.get(space)).toBeDefined();
    // Deletes stamped in the last moment may be above the horizon: it never passes the server's clock, and the
    // replica stamps by its estimate of that clock, which a loaded machine's round trips leave some 100 ms off.
    // The next passes, as the server's clock moves on, forget them too.
    let left = (await server.storage.stats()).tombstones;
    await waitUntil(
      async () => {
        if (left < PASS_EVERY / 10) return true;
        await server.collect();
        left = (await server.storage.stats()).tombstones;
        return left < PASS_EVERY / 10;
      },
      10_000,
      () => `${label}: the server to forget the deletes stamped before its clock at cycle ${i + 1} (${left} tombstones left)`,
    );
    // The replica forgets the same records once the horizon message reaches it.
    await waitUntil(async () => (await r.stats()).tombstones === left, 10_000, `${label}: the replica to collect at cycle ${i + 1}`);
    expect((await server.storage.stats()).records).toBe(WORKING_SET);
    expect((await r.stats()).records).toBe(WORKING_SET);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `churn ${label}: ${CYCLES} cycles over ${WORKING_SET} records in ${seconds.toFixed(1)} s; just before a pass (every ${PASS_EVERY} cycles) the server held at most ${worst.server.toFixed(2)}x ` +
      `the working set's bytes (${worst.serverTombstones} tombstones), the replica ${worst.client.toFixed(2)}x (${worst.clientTombstones} tombstones); after each pass, almost none`,
  );
  expect(worst.server).toBeLessThanOrEqual(FACTOR);
  expect(worst.client).toBeLessThanOrEqual(FACTOR);
}

describe('churn with garbage collection: stored bytes follow the working set', () => {
  it('SQLite server, IndexedDB replica', async () => {
    const dir = await tempDir('syncline-churn-');
    cleanup.push(() => dir.remove());
    await churn(sqliteStorage({ path: `${dir.path}/server.db` }), 'SQLite');
  }, 300_000);

  describePg('PostgreSQL', () => {
    it('PostgreSQL server, IndexedDB replica', async () => {
      const schema = `churn_${process.pid}`;
      const admin = await adminClient();
      cleanup.push(async () => {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      });
      await churn(postgresStorage({ connectionString: PG_URL, schema }), 'PostgreSQL');
    }, 300_000);
  });
});

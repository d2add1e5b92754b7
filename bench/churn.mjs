// Churn (issue 19): what create/delete cycles over a fixed working set leave stored, on the
// server and on a client, without garbage collection and with it, in one run.
//
//   node bench/churn.mjs [--cycles 100000] [--working-set 1000] [--pass-every 5000] [--postgres] [--client memory|idb] [--regions]
//
// With --regions, the server is region a of two (SQLite each, following each other over real sockets), and
// a second client, a reader (read access only), syncs with region b; every pass runs on both regions, and region b's storage
// and the reader are printed too.
//
// One client writes one change at a time, as apps do: cycle i creates record i and deletes record
// i - working-set. The server (default limits) stores on a SQLite file, or with --postgres on a fresh
// schema of the local database (SYNCLINE_TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/test; the schema is dropped after). The client stores in memory,
// or with --client idb in IndexedDB (fake-indexeddb). Two runs, each on a fresh server and client:
// "without collection" (gc off), then "with collection": a gc pass (server.collect(), what the gc timer
// runs every 60 s) every --pass-every cycles. Printed per run: the server's storage.stats(), the SQLite
// file's size (with its WAL), the client's stats(), each as a multiple of the working set's, at the end
// and (with collection) the largest just before a pass. Run after `tsc -b`.
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import pg from 'pg';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { createReplica, indexedDbStorage, memoryStorage } from '../packages/client/dist/index.js';
import { createSyncServer, sqliteStorage, postgresStorage } from '../packages/server/dist/index.js';
import { freePort } from './lib.mjs';

const { values } = parseArgs({
  options: { cycles: { type: 'string' }, 'working-set': { type: 'string' }, 'pass-every': { type: 'string' }, postgres: { type: 'boolean' }, client: { type: 'string' }, regions: { type: 'boolean' } },
});
const CYCLES = Number(values.cycles ?? 100_000);
const WORKING = Number(values['working-set'] ?? 1_000);
const PASS_EVERY = Number(values['pass-every'] ?? 5_000);
const CLIENT = values.client ?? 'memory';
const SPACE = 'churn';
const PG_URL = process.env.SYNCLINE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const x = (a, b) => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');

async function run(collect) {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-churn-'));
  const dbPath = join(dir, 'server.db');
  const schema = `churn_${process.pid}_${collect ? 'gc' : 'nogc'}`;
  const storage = values.postgres ? postgresStorage({ connectionString: PG_URL, schema }) : sqliteStorage({ path: dbPath });
  const gc = { intervalMs: 0 }; // passes run below, when collecting
  const ports = [await freePort(), await freePort()];
  // The reader may only read (a token 'reader'): an idle device that may write holds every region's horizon a
  // minute behind (its floor), which a run of seconds never passes.
  const authenticate = async ({ token }) => ({ subject: token ?? 'writer', access: () => (token === 'reader' ? 'read' : 'write') });
  const regions = (i) => (values.regions ? { region: 'ab'[i], peers: [`ws://127.0.0.1:${ports[1 - i]}`], authenticate, peerSecret: 'bench' } : {});
  const server = createSyncServer({ port: ports[0], storage, logger: pino({ level: 'silent' }), gc, ...regions(0) });
  await server.listen();
  // Region b and its reader (--regions).
  const other = values.regions ? createSyncServer({ port: ports[1], storage: sqliteStorage({ path: join(dir, 'b.db') }), logger: pino({ level: 'silent' }), gc, ...regions(1) }) : undefined;
  await other?.listen();
  const reader = other ? await createReplica({ name: `churn-reader-${collect}`, schema: { events: {} }, storage: memoryStorage(), tabs: false, sync: { url: other.url, WebSocket, spaces: [SPACE], token: 'reader' } }) : undefined;
  const servers = [server, ...(other ? [other] : [])];
  /** Until region b holds what a does (its link read a's log). */
  const settled = async () => {
    await r.sync.flushed({ timeoutMs: 600_000 });
    if (!other) return;
    const want = (await server.storage.stats()).records;
    for (let tries = 0; tries < 6000 && ((await other.storage.head(SPACE)) < (await server.storage.head(SPACE)) || (await other.storage.stats()).records !== want); tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  const clientStorage = CLIENT === 'idb' ? indexedDbStorage({ indexedDB: new IDBFactory(), IDBKeyRange }) : memoryStorage();
  const r = await createReplica({ name: `churn-${collect}`, schema: { events: {} }, storage: clientStorage, tabs: false, sync: { url: server.url, WebSocket, spaces: [SPACE] } });
  const started = performance.now();
  let ws;
  const peak = { server: 0, client: 0, tombstones: 0 };
  for (let i = 0; i < CYCLES; i++) {
    await r.put('events', `e${i}`, { i, title: `event ${i}`, at: 1_700_000_000_000 + i * 60_000 });
    if (i >= WORKING) await r.delete('events', `e${i - WORKING}`);
    if (i === WORKING - 1) {
      // The working set alone: the reference every figure below is a multiple of.
      await settled();
      ws = { server: await server.storage.stats(), client: await r.stats() };
    }
    if (collect && i >= WORKING && (i + 1) % PASS_EVERY === 0) {
      await settled();
      const s = await server.storage.stats();
      const c = await r.stats();
      peak.server = Math.max(peak.server, s.recordBytes);
      peak.client = Math.max(peak.client, c.stateBytes);
      peak.tombstones = Math.max(peak.tombstones, s.tombstones);
      // With regions, a pass on each counts the other's level (told after its own pass): twice.
      for (let n = 0; n < (other ? 2 : 1); n++) for (const each of servers) await each.collect();
    }
  }
  await settled();
  if (collect) {
    for (let n = 0; n < (other ? 2 : 1); n++) for (const each of servers) await each.collect();
    // The client collects when the horizon message arrives.
    const stored = (await server.storage.stats()).tombstones;
    for (let tries = 0; tries < 200 && (await r.stats()).tombstones > stored; tries++) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  const s = await server.storage.stats();
  const c = await r.stats();
  const fileBytes = values.postgres ? undefined : ['', '-wal'].reduce((n, suffix) => n + (existsSync(dbPath + suffix) ? statSync(dbPath + suffix).size : 0), 0);
  console.log(`${collect ? `with collection (a pass every ${PASS_EVERY} cycles)` : 'without collection'}: ${seconds.toFixed(1)} s`);
  console.log(
    `  server: ${s.records} records, ${s.tombstones} tombstones, ${s.recordBytes} bytes of record states (${x(s.recordBytes, ws.server.recordBytes)} the working set's ${ws.server.recordBytes})` +
      `${fileBytes === undefined ? '' : `, SQLite file ${fileBytes} bytes`}${collect ? `; largest before a pass ${x(peak.server, ws.server.recordBytes)} (${peak.tombstones} tombstones)` : ''}`,
  );
  console.log(
    `  client (${CLIENT}): ${c.records} records, ${c.tombstones} tombstones, ${c.stateBytes} bytes of record states (${x(c.stateBytes, ws.client.stateBytes)} the working set's ${ws.client.stateBytes})` +
      `${collect ? `; largest before a pass ${x(peak.client, ws.client.stateBytes)}` : ''}`,
  );
  if (other && reader) {
    const b = await other.storage.stats();
    // The reader has caught up (and collected, when collecting) once it holds what region b holds.
    const behind = async () => {
      const rs = await reader.stats();
      return rs.records !== b.records || rs.tombstones !== b.tombstones;
    };
    for (let tries = 0; tries < 600 && (await behind()); tries++) await new Promise((resolve) => setTimeout(resolve, 50));
    const rb = await reader.stats();
    console.log(`  region b: ${b.records} records, ${b.tombstones} tombstones, ${b.recordBytes} bytes of record states (${x(b.recordBytes, ws.server.recordBytes)} the working set's at a)`);
    console.log(`  reader at b (memory): ${rb.records} records, ${rb.tombstones} tombstones, ${rb.stateBytes} bytes of record states`);
    await reader.close();
    await other.close();
  }
  await r.close();
  await server.close();
  if (values.postgres) {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
  rmSync(dir, { recursive: true, force: true });
}

console.log(`churn (${new Date().toISOString()}): ${CYCLES} create/delete cycles over a working set of ${WORKING}, one write at a time, ${values.postgres ? 'PostgreSQL' : 'SQLite'}${values.regions ? ', two regions' : ''}`);
await run(false);
await run(true);

// Churn (issue 19): what create/delete cycles over a fixed working set leave stored, on the
// server and on a client. Growth should follow the working set, not the history; until garbage
// collection at causal stability exists it follows the history, and this measures by how much.
//
//   node bench/churn.mjs [--cycles 100000] [--working-set 1000] [--postgres]
//
// One client (memory storage, `ws`) writes one change at a time, as apps do: cycle i creates
// record i and deletes record i - working-set. The server (default limits) stores on a SQLite
// file, or with --postgres on a fresh schema of the local database (PG* environment, database
// `SYNCLINE_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/test; the schema is dropped after). Printed: the server's storage.stats(), the SQLite file's size (with its WAL),
// the client's stats(), and each as a multiple of the same figures for the working set alone.
// Run after `tsc -b`.
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage } from '../packages/client/dist/index.js';
import { createSyncServer, sqliteStorage, postgresStorage } from '../packages/server/dist/index.js';
import { freePort } from './lib.mjs';

const { values } = parseArgs({ options: { cycles: { type: 'string' }, 'working-set': { type: 'string' }, postgres: { type: 'boolean' } } });
const CYCLES = Number(values.cycles ?? 100_000);
const WORKING = Number(values['working-set'] ?? 1_000);
const SPACE = 'churn';
const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-churn-'));
const dbPath = join(dir, 'server.db');
const schema = `churn_${process.pid}`;
const PG_URL = process.env.SYNCLINE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const storage = values.postgres ? postgresStorage({ connectionString: PG_URL, schema }) : sqliteStorage({ path: dbPath });
const server = createSyncServer({ port: await freePort(), storage, logger: pino({ level: 'silent' }) });
await server.listen();
const r = await createReplica({ name: 'churn', schema: { events: {} }, storage: memoryStorage(), tabs: false, sync: { url: server.url, WebSocket, spaces: [SPACE] } });

const started = performance.now();
let workingSetFigures;
for (let i = 0; i < CYCLES; i++) {
  await r.put('events', `e${i}`, { i, title: `event ${i}`, at: 1_700_000_000_000 + i * 60_000 });
  if (i >= WORKING) await r.delete('events', `e${i - WORKING}`);
  if (i === WORKING - 1) {
    // The working set alone: the reference every figure below is a multiple of.
    await r.sync.flushed({ timeoutMs: 600_000 });
    workingSetFigures = { server: await server.storage.stats(), client: await r.stats() };
  }
}
await r.sync.flushed({ timeoutMs: 600_000 });
const seconds = (performance.now() - started) / 1000;
const serverStats = await server.storage.stats();
const clientStats = await r.stats();
const fileBytes = values.postgres ? undefined : ['', '-wal'].reduce((n, suffix) => n + (existsSync(dbPath + suffix) ? statSync(dbPath + suffix).size : 0), 0);
await server.compact(0);
const afterCompaction = await server.storage.stats();

const x = (a, b) => (b > 0 ? `${(a / b).toFixed(1)}x` : '-');
const ws = workingSetFigures;
console.log(`churn (${new Date().toISOString()}): ${CYCLES} create/delete cycles over a working set of ${WORKING}, one write at a time, ${values.postgres ? 'PostgreSQL' : 'SQLite'}, ${seconds.toFixed(1)} s`);
console.log(`server: ${serverStats.records} records, ${serverStats.tombstones} tombstones, ${serverStats.recordBytes} bytes of record states (${x(serverStats.recordBytes, ws.server.recordBytes)} the working set's ${ws.server.recordBytes}), ${serverStats.logEntries} log entries (${afterCompaction.logEntries} after compaction)${fileBytes === undefined ? '' : `, SQLite file ${fileBytes} bytes`}`);
console.log(`client: ${clientStats.records} records, ${clientStats.tombstones} tombstones, ${clientStats.stateBytes} bytes of record states (${x(clientStats.stateBytes, ws.client.stateBytes)} the working set's ${ws.client.stateBytes})`);

await r.close();
await server.close();
if (values.postgres) {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
rmSync(dir, { recursive: true, force: true });

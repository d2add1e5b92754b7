// Fan-out (issue 21): one writer writes into a space at a fixed rate, one change at a time as apps do,
// while R readers of the space are connected (raw protocol clients in P processes of
// bench/fanout-readers.mjs, which note arrivals without decoding). Per rate: the server's CPU time per
// delivered change (its process alone), the delivery lag from the start of each write to its arrival
// at each reader (p50, p99), and whether every delivery arrived. The server runs in its own process
// with default limits (connection caps raised only: the readers all come from 127.0.0.1) and SQLite
// on disk. With --postgres URL, the servers are instead --instances processes of the real CLI
// (syncline-server --postgres, default limits) sharing one database in a fresh schema; the writer is on
// the first, the readers spread evenly over all, and the CPU reported is that of every instance and of
// every PostgreSQL process (from /proc).
//
//   tsc -b && node bench/fanout.mjs [--readers 1000] [--processes 4] [--rates 25,50,100,200] [--seconds 10]
//                                   [--postgres postgres://postgres@127.0.0.1:5432/test --instances 4]
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage } from '../packages/client/dist/index.js';
import { startChild } from './child.mjs';
import { startCluster } from './cluster.mjs';
import { fmt, table } from './lib.mjs';

const { values } = parseArgs({
  options: { readers: { type: 'string' }, processes: { type: 'string' }, rates: { type: 'string' }, seconds: { type: 'string' }, postgres: { type: 'string' }, instances: { type: 'string' } },
});
const READERS = Number(values.readers ?? 1000);
const PROCESSES = Number(values.processes ?? 4);
const RATES = (values.rates ?? '25,50,100,200').split(',').map(Number);
const SECONDS = Number(values.seconds ?? 10);
const SPACE = 'fan';
const now = () => performance.timeOrigin + performance.now();

const INSTANCES = Number(values.instances ?? 1);
const POSTGRES = values.postgres;

const dir = mkdtempSync(join(tmpdir(), 'syncline-fanout-'));
const server = POSTGRES ? await startCluster(POSTGRES, INSTANCES) : await startChild('syncline.mjs', [join(dir, 'fan.db'), 'many-connections']);
const ports = server.ports ?? [server.port];
const readers = [];
for (let p = 0, first = 0; p < PROCESSES; p++) {
  const count = Math.floor(READERS / PROCESSES) + (p < READERS % PROCESSES ? 1 : 0);
  // The CLI keeps its default per-address connection rate (50/s): the reader processes share it.
  const pace = POSTGRES ? String(Math.max(1, Math.floor((40 * ports.length) / PROCESSES))) : 'Infinity';
  const child = fork(fileURLToPath(new URL('./fanout-readers.mjs', import.meta.url)), [ports.join(','), String(count), SPACE, String(first), pace], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  readers.push({ child, count, ready: new Promise((resolve) => child.once('message', resolve)) });
  first += count;
}
await Promise.all(readers.map((r) => r.ready));
const writer = await createReplica({ name: 'writer', schema: { events: {} }, storage: memoryStorage(), tabs: false, sync: { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket, spaces: [SPACE] } });
await writer.sync.waitFor((s) => s.state === 'synced', 30_000);

const ask = (type) =>
  Promise.all(
    readers.map(
      (r) =>
        new Promise((resolve) => {
          r.child.once('message', resolve);
          r.child.send({ type });
        }),
    ),
  );
await ask('histogram'); // what the welcome and catch-up sent: not counted
/** The lag (ms) below which a share `p` of the deliveries arrived, from the readers' merged histograms. */
function percentile(histograms, p) {
  const merged = new Map();
  for (const { buckets } of histograms) for (const [b, n] of buckets) merged.set(b, (merged.get(b) ?? 0) + n);
  const sorted = [...merged].sort((x, y) => x[0] - y[0]);
  const total = sorted.reduce((n, [, c]) => n + c, 0);
  let seen = 0;
  for (const [b, c] of sorted) {
    seen += c;
    if (seen >= p * total) return 0.01 * 1.01 ** (b + 1);
  }
  return NaN;
}

const rows = [];
let written = 0;
for (const rate of RATES) {
  const n = Math.round(rate * SECONDS);
  const cpu0 = await server.cpu();
  const pgCpu0 = server.postgresCpu?.() ?? 0;
  const t0 = now();
  for (let i = 0; i < n; i++) {
    // One write at a time, each awaited, at the rate (catching up when behind).
    const due = t0 + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    await writer.put('events', `w${written++}`, { t: now(), title: `event ${i} at ${rate}/s`, start: 1_700_000_000_000 + i * 60_000 }, { space: SPACE });
  }
  const writeSeconds = (now() - t0) / 1000;
  // Every delivery (n per reader), or 30 s after the last write.
  let delivered = 0;
  let frames = 0;
  const deadline = now() + 30_000;
  while (delivered < n * READERS && now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const counts = await ask('report');
    delivered = counts.reduce((sum, c) => sum + c.count, 0);
    frames = counts.reduce((sum, c) => sum + c.frames, 0);
  }
  const cpu = (await server.cpu()) - cpu0;
  const pgCpu = (server.postgresCpu?.() ?? 0) - pgCpu0;
  const histograms = await ask('histogram');
  const pct = (p) => percentile(histograms, p / 100);
  const lags = { length: delivered };
  rows.push([
    `${rate}/s`,
    fmt(n / writeSeconds, 0),
    `${fmt(lags.length)} of ${fmt(n * READERS)}`,
    fmt(cpu / Math.max(1, lags.length), 2),
    fmt(frames / Math.max(1, lags.length), 2),
    `${fmt(pct(50), 1)} / ${fmt(pct(99), 1)} ms`,
    fmt(cpu / 1000 / ((now() - t0) / 1000) / 10, 1),
    fmt(cpu / 1000 / n, 2),
    POSTGRES ? fmt(pgCpu / 1000 / n, 2) : '–',
  ]);
  console.log(`  ${rate}/s done: ${lags.length} of ${n * READERS} deliveries, p99 ${fmt(pct(99), 1)} ms`);
}
const servers = POSTGRES ? `${INSTANCES} CLI instance(s) on PostgreSQL` : 'one server on SQLite';
console.log(`fan-out (${new Date().toISOString()}): ${servers}, 1 writer, ${READERS} readers in ${PROCESSES} processes, ${SECONDS} s per rate, one write at a time`);
console.log(table(['rate asked', 'writes/s made', 'deliveries', 'server CPU µs per delivery', 'frames per delivery', 'lag p50 / p99', 'server CPU %', 'server CPU ms per write', 'PostgreSQL CPU ms per write'], rows));
await writer.close();
for (const r of readers) r.child.send({ type: 'stop' });
await server.stop();
rmSync(dir, { recursive: true, force: true });

// Regions (issue 18): cross-region propagation beside a client's push path, in one run.
//
//   node bench/regions.mjs [--writes 500] [--backlog 20000] [--partition-seconds 60] [--rate 100]
//
// Two region servers (a and b, SQLite files, default limits) follow each other; B follows A
// through a TCP proxy the benchmark cuts. Clients: W writes on A; L reads on A (the client
// path: W -> A -> L); R reads on B (the region path: W -> A -> link -> B -> R).
//  1. latency: W writes one change at a time (every 10 ms); the time until L and R have each.
//  2. throughput: with the link cut, W writes a backlog; the link is healed and the time until
//     B holds it all gives the link's changes/s. Beside it, the same backlog written offline by
//     a client of A, the time until A holds it all (the client push path).
//  3. a partition under load: the link is cut for --partition-seconds while W writes --rate
//     changes a second; after the heal, the time until R has caught up.
//  4. failover: a device F bootstraps from A and stays in sync; while it is away, W writes 50
//     more; F then resumes at B (another region). Bytes F receives on resume, beside the bytes
//     of a full bootstrap of the same space from B (a new device G).
//  5. a region added late: D, a new region, follows A's whole log (the baseline); then A compacts
//     its log and C, another new region, follows A from its state (link protocol 3). Time until
//     each holds every record, and the bytes A sent it.
// Run after `tsc -b`.
import { createServer, connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { createSyncServer, sqliteStorage } from '../packages/server/dist/index.js';
import { freePort, sleep, waitUntil } from './lib.mjs';

const { values } = parseArgs({ options: { writes: { type: 'string' }, backlog: { type: 'string' }, 'partition-seconds': { type: 'string' }, rate: { type: 'string' } } });
const WRITES = Number(values.writes ?? 500);
const BACKLOG = Number(values.backlog ?? 20_000);
const PARTITION_S = Number(values['partition-seconds'] ?? 60);
const RATE = Number(values.rate ?? 100);
const SPACE = 'team';
const schema = { events: {} };
const silent = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-regions-'));
async function proxy(target) {
  const sockets = new Set();
  let cut = false;
  let down = 0;
  const server = createServer((inbound) => {
    if (cut) return inbound.destroy();
    const outbound = connect(target, '127.0.0.1');
    outbound.on('data', (chunk) => (down += chunk.length));
    for (const [s, other] of [[inbound, outbound], [outbound, inbound]]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => { sockets.delete(s); other.destroy(); });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    /** Bytes from the target to the dialer so far. */
    get down() { return down; },
    cut() { cut = true; for (const s of sockets) s.destroy(); },
    heal() { cut = false; },
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(resolve); }),
  };
}

/** Polls every 5 ms: the times measured below are tens of milliseconds to seconds. */
const waitFor = (check, what) => waitUntil(check, 600_000, what, 5);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (x) => `${x.toFixed(1)} ms`;

const [pa, pb] = [await freePort(), await freePort()];
const toA = await proxy(pa);
const a = createSyncServer({ port: pa, storage: sqliteStorage({ path: join(dir, 'a.db') }), logger: silent, region: 'a', peers: [`ws://127.0.0.1:${pb}`] });
const b = createSyncServer({ port: pb, storage: sqliteStorage({ path: join(dir, 'b.db') }), logger: silent, region: 'b', peers: [`ws://127.0.0.1:${toA.port}`] });
await Promise.all([a.listen(), b.listen()]);

async function client(server, name) {
  const r = await createReplica({ name, schema, storage: memoryStorage(), tabs: false, sync: { url: server.url, WebSocket, spaces: [SPACE] } });
  return r;
}
const w = await client(a, 'writer');
const l = await client(a, 'local-reader');
const r = await client(b, 'remote-reader');
const arrivals = (replica) => {
  const seen = new Map();
  replica.onCommit((event) => {
    if (event.local) return;
    const now = performance.now();
    for (const [, id] of event.records) if (!seen.has(id)) seen.set(id, now);
  });
  return seen;
};
const atL = arrivals(l);
const atR = arrivals(r);
await Promise.all([w, l, r].map((x) => x.sync.waitFor((s) => s.state === 'synced', 10_000)));

// 1. Latency, one write at a time.
const sent = new Map();
for (let i = 0; i < WRITES; i++) {
  const id = `lat${i}`;
  sent.set(id, performance.now());
  await w.put('events', id, { i, title: `event ${i}` });
  await sleep(10);
}
await waitFor(() => [...sent.keys()].every((id) => atL.has(id) && atR.has(id)), 'every latency write at L and R');
const lat = (at) => [...sent].map(([id, t]) => at.get(id) - t).sort((x, y) => x - y);
const latL = lat(atL);
const latR = lat(atR);

// 2. Throughput of a backlog: over the link, and over a client's push path.
const head = (server) => server.storage.head(SPACE);
toA.cut();
const bBefore = await head(b);
for (let i = 0; i < BACKLOG; i += 100) {
  await w.batch((batch) => {
    for (let k = i; k < Math.min(BACKLOG, i + 100); k++) batch.put('events', `backlog${k}`, { k, title: `backlog ${k}` });
  });
}
await w.sync.flushed({ timeoutMs: 600_000 });
let started = performance.now();
toA.heal();
await waitFor(async () => (await head(b)) >= bBefore + BACKLOG, 'B to hold the backlog');
const linkSeconds = (performance.now() - started) / 1000;

const offline = await createReplica({ name: 'offline-writer', schema, storage: memoryStorage(), tabs: false });
for (let i = 0; i < BACKLOG; i += 100) {
  await offline.batch((batch) => {
    for (let k = i; k < Math.min(BACKLOG, i + 100); k++) batch.put('events', `offline${k}`, { k, title: `offline ${k}` }, { space: SPACE });
  });
}
const aBefore = await head(a);
started = performance.now();
const engine = startSync(offline, { url: a.url, WebSocket, spaces: [SPACE] });
await waitFor(async () => (await head(a)) >= aBefore + BACKLOG, 'A to hold the offline backlog');
const pushSeconds = (performance.now() - started) / 1000;
engine.close();

// 3. A partition under load.
toA.cut();
const partitionStart = performance.now();
let written = 0;
while (performance.now() - partitionStart < PARTITION_S * 1000) {
  const tick = performance.now();
  await w.batch((batch) => {
    for (let k = 0; k < Math.max(1, Math.round(RATE / 10)); k++) batch.put('events', `part${written++}`, { n: written });
  });
  await sleep(Math.max(0, 100 - (performance.now() - tick)));
}
await w.sync.flushed({ timeoutMs: 600_000 });
started = performance.now();
toA.heal();
const last = `part${written - 1}`;
await waitFor(() => atR.has(last), 'R to catch up after the partition');
const catchUpSeconds = (performance.now() - started) / 1000;

// 4. Failover: bytes a device receives when it resumes in another region, beside a full bootstrap.
const counting = () => {
  const counter = { bytes: 0 };
  class Counting extends WebSocket {
    constructor(url) {
      super(url);
      this.on('message', (data) => (counter.bytes += data.byteLength ?? data.length));
    }
  }
  return { counter, Socket: Counting };
};
const f = await createReplica({ name: 'failover-device', schema, storage: memoryStorage(), tabs: false });
const onA = counting();
let fEngine = startSync(f, { url: a.url, WebSocket: onA.Socket, spaces: [SPACE] });
await fEngine.waitFor((s) => s.state === 'synced', 600_000);
for (let i = 0; i < 50; i++) await w.put('events', `seen${i}`, { i });
await waitFor(async () => (await f.get('events', 'seen49', { space: SPACE })) !== undefined, 'F to see W’s writes through A');
fEngine.close();
for (let i = 0; i < 50; i++) await w.put('events', `away${i}`, { i });
await waitFor(async () => (await r.get('events', 'away49', { space: SPACE })) !== undefined, 'B to hold W’s writes');
const onB = counting();
started = performance.now();
fEngine = startSync(f, { url: b.url, WebSocket: onB.Socket, spaces: [SPACE] });
await waitFor(async () => fEngine.status.state === 'synced' && (await f.get('events', 'away49', { space: SPACE })) !== undefined, 'F to resume at B');
const resumeSeconds = (performance.now() - started) / 1000;
fEngine.close();
const g = await createReplica({ name: 'new-device', schema, storage: memoryStorage(), tabs: false });
const fresh = counting();
const gEngine = startSync(g, { url: b.url, WebSocket: fresh.Socket, spaces: [SPACE] });
await gEngine.waitFor((s) => s.state === 'synced', 600_000);
gEngine.close();
const records = (await g.query({ collection: 'events', space: SPACE })).length;

// 5. A region added late: the whole log (D), or the state of a peer that compacted it (C).
const joinLate = async (name) => {
  const via = await proxy(pa);
  const server = createSyncServer({ port: await freePort(), storage: sqliteStorage({ path: join(dir, `${name}.db`) }), logger: silent, region: name, peers: [`ws://127.0.0.1:${via.port}`] });
  const started = performance.now();
  await server.listen();
  const want = await a.storage.countRecords(SPACE);
  await waitFor(async () => (await server.storage.countRecords(SPACE)) >= want, `region ${name} to hold every record`);
  const seconds = (performance.now() - started) / 1000;
  await server.close();
  await via.close();
  return { seconds, bytes: via.down, records: want };
};
const logJoin = await joinLate('d');
const compacted = await a.compact(0);
const stateJoin = await joinLate('c');

console.log(`regions benchmark (${new Date().toISOString()}), two regions on SQLite files, default limits, loopback`);
console.log(`1. propagation of ${WRITES} writes made one at a time:`);
console.log(`   same region (W -> A -> L):            p50 ${ms(percentile(latL, 50))}, p99 ${ms(percentile(latL, 99))}`);
console.log(`   other region (W -> A -> link -> B -> R): p50 ${ms(percentile(latR, 50))}, p99 ${ms(percentile(latR, 99))}  (${(percentile(latR, 50) / percentile(latL, 50)).toFixed(2)}x the same-region p50)`);
console.log(`2. a backlog of ${BACKLOG} changes:`);
console.log(`   over the link (A -> B):               ${linkSeconds.toFixed(2)} s, ${Math.round(BACKLOG / linkSeconds)} changes/s`);
console.log(`   a client's offline backlog (-> A):    ${pushSeconds.toFixed(2)} s, ${Math.round(BACKLOG / pushSeconds)} changes/s  (link ${(pushSeconds / linkSeconds).toFixed(2)}x the push path's rate)`);
console.log(`3. a ${PARTITION_S} s partition under ${RATE} writes/s (${written} changes): R caught up ${catchUpSeconds.toFixed(2)} s after the heal`);

console.log(`4. failover of a device from A to B, ${records} records in the space, 50 written while it was away:`);
console.log(`   resume at B:                          ${onB.counter.bytes} bytes in ${resumeSeconds.toFixed(2)} s`);
console.log(`   a full bootstrap from B:              ${fresh.counter.bytes} bytes (resume ${((100 * onB.counter.bytes) / fresh.counter.bytes).toFixed(2)}% of it; F's first bootstrap from A: ${onA.counter.bytes} bytes)`);

console.log(`5. a region added late, ${logJoin.records} records in the space:`);
console.log(`   following A's whole log:              ${logJoin.seconds.toFixed(2)} s, ${logJoin.bytes} bytes from A`);
console.log(`   from A's state (A compacted ${compacted} entries): ${stateJoin.seconds.toFixed(2)} s, ${stateJoin.bytes} bytes from A  (${(logJoin.seconds / stateJoin.seconds).toFixed(2)}x faster, ${((100 * stateJoin.bytes) / logJoin.bytes).toFixed(0)}% of the bytes)`);

await Promise.all([w, l, r, offline, f, g].map((x) => x.close()));
await Promise.all([a.close(), b.close(), toA.close()]);
rmSync(dir, { recursive: true, force: true });

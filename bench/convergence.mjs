// Scenario: convergence. C replicas each write W records, then 20% updates (half of them
// concurrent updates of the same record by two replicas); time from the first write until
// every replica holds identical state. Beside a bare ws relay moving the same records.
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { canonicalJson } from '../packages/core/dist/index.js';
import { startChild } from './child.mjs';
import { event, fmt, measure, quick, table } from './lib.mjs';

const SCHEMA = { events: { indexes: { byStart: ['start'] } } };

/** A WebSocket that counts bytes both ways. */
function countingSocket(counter) {
  return class extends WebSocket {
    constructor(url) {
      super(url);
      this.on('message', (data) => (counter.received += data.byteLength ?? data.length));
    }
    send(data, ...rest) {
      counter.sent += data.byteLength ?? data.length;
      return super.send(data, ...rest);
    }
  };
}

async function waitUntil(check, timeoutMs, what) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function digest(replica) {
  const rows = await replica.query({ collection: 'events' });
  const hash = createHash('sha256');
  for (const row of rows) hash.update(`${row.id}\u0000${canonicalJson(row.value)}\u0001`);
  return `${rows.length}:${hash.digest('hex')}`;
}

async function synclineRun(C, W) {
  const server = await startChild('syncline.mjs');
  const counter = { sent: 0, received: 0 };
  const Socket = countingSocket(counter);
  const replicas = [];
  for (let r = 0; r < C; r++) {
    const replica = await createReplica({ name: `r${r}`, schema: SCHEMA, storage: memoryStorage(), tabs: false });
    startSync(replica, { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket: Socket });
    replicas.push(replica);
  }
  const t0 = performance.now();
  await Promise.all(replicas.map((replica, r) => Promise.all(Array.from({ length: W }, (_, i) => replica.put('events', `r${r}-${i}`, event(i, `r${r}`))))));
  // 20% updates: half on own records, half on the next replica's records (concurrent with its owner's update).
  const U = Math.floor(W * 0.2);
  await Promise.all(
    replicas.map((replica, r) =>
      Promise.all(
        Array.from({ length: U }, (_, i) => {
          const owner = i % 2 === 0 ? r : (r + 1) % C;
          return replica.patch('events', `r${owner}-${i}`, { title: `updated by r${r}`, location: `Room ${r}` });
        }),
      ),
    ),
  );
  const expected = C * W;
  let converged = false;
  await waitUntil(
    async () => {
      for (const replica of replicas) if ((await replica.storage.transaction('readonly', (tx) => tx.countOutbox())) !== 0) return false;
      for (const replica of replicas) if ((await replica.count({ collection: 'events' })) !== expected) return false;
      const digests = new Set(await Promise.all(replicas.map(digest)));
      converged = digests.size === 1;
      return converged;
    },
    300_000,
    'convergence',
  );
  const seconds = (performance.now() - t0) / 1000;
  const memory = await server.memory();
  for (const replica of replicas) await replica.close();
  await server.stop();
  const writes = C * (W + U);
  return { seconds, writesPerSecond: writes / seconds, bytes: counter.sent + counter.received, rss: memory.rss };
}

async function relayRun(C, W) {
  const server = await startChild('relay.mjs');
  const U = Math.floor(W * 0.2);
  const perClient = W + U;
  const expected = (C - 1) * perClient;
  const counter = { sent: 0, received: 0 };
  const clients = await Promise.all(
    Array.from({ length: C }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}`);
      ws.received = 0;
      ws.on('message', (data) => {
        ws.received++;
        counter.received += data.length;
      });
      ws.on('open', () => resolve(ws));
      ws.on('error', reject);
    })),
  );
  const t0 = performance.now();
  clients.forEach((ws, r) => {
    for (let i = 0; i < perClient; i++) {
      const payload = JSON.stringify({ id: `r${r}-${i % W}`, value: event(i, `r${r}`) });
      counter.sent += payload.length;
      ws.send(payload);
    }
  });
  await waitUntil(async () => clients.every((ws) => ws.received >= expected), 300_000, 'relay delivery');
  const seconds = (performance.now() - t0) / 1000;
  const memory = await server.memory();
  for (const ws of clients) ws.close();
  await server.stop();
  return { seconds, writesPerSecond: (C * perClient) / seconds, bytes: counter.sent + counter.received, rss: memory.rss };
}

export async function run() {
  const configs = quick ? [[10, 200]] : [[10, 1000], [50, 200]];
  const RUNS = quick ? 1 : 3;
  const rows = [];
  for (const [C, W] of configs) {
    const relay = await measure(RUNS, async () => (await relayRun(C, W)).writesPerSecond);
    const results = [];
    const syncline = await measure(RUNS, async () => {
      const r = await synclineRun(C, W);
      results.push(r);
      return r.writesPerSecond;
    });
    const mid = results.sort((a, b) => a.writesPerSecond - b.writesPerSecond)[Math.floor(results.length / 2)];
    const cell = (m) => `${fmt(m.median)} (${fmt(m.min)}–${fmt(m.max)})`;
    rows.push([`${C} × ${W}`, 'bare ws relay', cell(relay), '1.00', '—', '—']);
    rows.push([`${C} × ${W}`, 'Syncline', cell(syncline), fmt(syncline.median / relay.median, 2), `${fmt(mid.bytes / 1e6, 1)} MB`, `${fmt(mid.rss / 1e6)} MB`]);
  }
  return `### Convergence (replicas × writes each, +20% updates; median of ${RUNS} (min–max))\n\n` +
    table(['config', 'system', 'converged writes/s', 'ratio to relay', 'bytes on the wire', 'server RSS after'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

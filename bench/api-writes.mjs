// Backend API write throughput (issue 20's figure), beside client pushes in the same run. The server
// runs in its own process with default limits and SQLite on disk; a replica follows every space, and
// a write counts once it has arrived there (durable, relayed and applied). Each scenario gets its own
// space; the order of scenarios alternates between rounds.
//
//   bulk:         the backend POSTs …/writes with 500 writes per request, one request at a time;
//                 a replica puts the same number of records at once (its outbox pushes 500 per push)
//   one at a time: 4 backend callers each PUT one record and await the answer before the next;
//                 4 replicas each put one record, await the local commit and yield (as apps do)
//
//   tsc -b && node bench/api-writes.mjs [--changes 20000] [--single 2000] [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage } from '../packages/client/dist/index.js';
import { startChild } from './child.mjs';
import { fmt, table, waitUntil } from './lib.mjs';

const { values } = parseArgs({ options: { changes: { type: 'string' }, single: { type: 'string' }, rounds: { type: 'string' } } });
const CHANGES = Number(values.changes ?? 20_000);
const SINGLE = Number(values.single ?? 2_000);
const ROUNDS = Number(values.rounds ?? 3);
const CALLERS = 4;
const BATCH = 500;
const schema = { events: {} };
const value = (i) => ({ title: `event ${i}`, start: '2026-12-08T09:00', end: '2026-12-08T10:00', calendar: 'team', notes: 'x'.repeat(80) });

const dir = mkdtempSync(join(tmpdir(), 'syncline-apiw-'));
const server = await startChild('syncline.mjs', [join(dir, 'api.db')]);
const base = `http://127.0.0.1:${server.port}`;
const syncTo = (spaces) => ({ url: `ws://127.0.0.1:${server.port}/sync`, WebSocket, spaces });
let spaceNo = 0;

/** A follower of a fresh space: resolves `arrived(n)` when n records of it are there. */
async function follower(space) {
  const r = await createReplica({ name: `follower-${space}`, schema, storage: memoryStorage(), tabs: false, sync: syncTo([space]) });
  await r.sync.waitFor((s) => s.state === 'synced', 10_000);
  return { r, arrived: (n) => waitUntil(async () => (await r.count({ collection: 'events', space })) >= n, 300_000, `${n} records at the follower of ${space}`) };
}

async function post(path, body, method = 'POST') {
  const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

const scenarios = {
  async 'API bulk (POST …/writes, 500 per request)'(space) {
    for (let from = 0; from < CHANGES; from += BATCH) {
      const writes = Array.from({ length: Math.min(BATCH, CHANGES - from) }, (_, k) => ({ op: 'put', collection: 'events', id: `e${from + k}`, fields: value(from + k) }));
      await post(`/api/v1/spaces/${space}/writes`, { writes });
    }
    return CHANGES;
  },
  async 'client bulk (one replica, puts at once)'(space) {
    const w = await createReplica({ name: `bulk-${space}`, schema, storage: memoryStorage(), tabs: false, sync: syncTo([space]) });
    await w.sync.waitFor((s) => s.state === 'synced', 10_000);
    await Promise.all(Array.from({ length: CHANGES }, (_, i) => w.put('events', `e${i}`, value(i), { space })));
    return { count: CHANGES, close: () => w.close() };
  },
  async 'API one at a time (4 callers, PUT each, awaited)'(space) {
    await Promise.all(
      Array.from({ length: CALLERS }, async (_, c) => {
        for (let i = c; i < SINGLE; i += CALLERS) await post(`/api/v1/spaces/${space}/records/events/e${i}`, { fields: value(i) }, 'PUT');
      }),
    );
    return SINGLE;
  },
  async 'client one at a time (4 replicas, await commit, yield)'(space) {
    const ws = await Promise.all(Array.from({ length: CALLERS }, (_, c) => createReplica({ name: `single-${space}-${c}`, schema, storage: memoryStorage(), tabs: false, sync: syncTo([space]) })));
    await Promise.all(ws.map((w) => w.sync.waitFor((s) => s.state === 'synced', 10_000)));
    await Promise.all(
      ws.map(async (w, c) => {
        for (let i = c; i < SINGLE; i += CALLERS) {
          await w.put('events', `e${i}`, value(i), { space });
          await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    return { count: SINGLE, close: () => Promise.all(ws.map((w) => w.close())) };
  },
};

const results = new Map(Object.keys(scenarios).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  const names = Object.keys(scenarios);
  if (round % 2 === 1) names.reverse();
  for (const name of names) {
    const space = `s${++spaceNo}`;
    const f = await follower(space);
    const t0 = performance.now();
    const out = await scenarios[name](space);
    const count = typeof out === 'number' ? out : out.count;
    await f.arrived(count);
    const seconds = (performance.now() - t0) / 1000;
    results.get(name).push(count / seconds);
    if (typeof out !== 'number') await out.close();
    await f.r.close();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (name) => median(results.get(name));
const names = Object.keys(scenarios);
console.log(`${CHANGES} changes in bulk, ${SINGLE} one at a time; ${ROUNDS} rounds, median changes/s until every change is at a following replica`);
console.log(table(['scenario', 'changes/s', 'rounds'], names.map((name) => [name, fmt(rate(name)), results.get(name).map((x) => fmt(x)).join(', ')])));
console.log(`API ÷ client: bulk ${fmt(rate(names[0]) / rate(names[1]), 2)}×; one at a time ${fmt(rate(names[2]) / rate(names[3]), 2)}×`);

await server.stop();
rmSync(dir, { recursive: true, force: true });

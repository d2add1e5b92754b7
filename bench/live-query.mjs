// Scenario: live query. A collection of N records (10,000) held by the server; replica A holds
// them all and has a live query subscribed; replica B changes one record at a time (one field,
// a record among the first 100 by start), through the real server; the next change is sent only
// after A's callback has seen the previous one. Per change: the time from the change's message
// arriving on A's socket to A's callback (the client's own work: decode, apply, re-run the query,
// call back), and from B's write to A's callback (end to end, through the server).
// Syncline: replica.subscribe(query, cb), for the whole collection and for an index range with a
// limit. Beside, in the same run: Yjs (Y.Map.observe on the N-entry map), TinyBase (a Queries
// result-table listener over the N-row table) and a bare ws relay (JSON.parse in the receiving
// socket's handler).
import { WebSocket } from 'ws';
import { createQueries } from 'tinybase';
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { tinybaseReplica, yjsReplica } from './baselines.mjs';
import { startChild } from './child.mjs';
import { compare, countingSocket, event, fmt, newCounter, quick, RUNS, sleep, table, within } from './lib.mjs';

const N = quick ? 2_000 : 10_000;
const CHANGES = quick ? 30 : 200;
const HOT = 100; // changes go to records e0..e99, the first 100 by start
const CHANGE_TIMEOUT_MS = 10_000;
const SETUP_TIMEOUT_MS = 120_000;
const SCHEMA = { events: { indexes: { byStart: ['start'] } } };

// Every change writes a title never written before, so every change alters the query's result.
let titles = 0;
const nextTitle = () => `live change ${++titles}`;

/**
 * Sends CHANGES changes one at a time. `change(j)` makes change j on B and returns a promise of
 * the time A's callback saw it; `counterA.lastArrival` is when A's socket last received a message.
 */
async function drive(counterA, change) {
  const arrival = [];
  const endToEnd = [];
  for (let j = 0; j < CHANGES; j++) {
    const written = performance.now();
    counterA.lastArrival = 0;
    const seen = await within(change(j), CHANGE_TIMEOUT_MS, `change ${j} to reach the subscriber`);
    if (!(counterA.lastArrival > 0)) throw new Error(`change ${j}: nothing arrived on the subscriber's socket`);
    arrival.push(seen - counterA.lastArrival);
    endToEnd.push(seen - written);
    await sleep(5);
  }
  return summarize(arrival, endToEnd);
}

function summarize(arrival, endToEnd) {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { arrival, endToEnd, median: median(arrival) };
}

/** Resolves with the time `check(value)` first holds for a value passed to the returned `notify`. */
function waiter() {
  let pending = null;
  return {
    next(check) {
      return new Promise((resolve) => (pending = { check, resolve }));
    },
    notify(value, at = performance.now()) {
      if (pending && pending.check(value)) {
        const { resolve } = pending;
        pending = null;
        resolve(at);
      }
    },
  };
}

async function synclineRun(server, query) {
  const counterA = newCounter();
  const replicas = [];
  let unsubscribe = () => {};
  try {
    const a = await createReplica({ name: 'subscriber', schema: SCHEMA, storage: memoryStorage(), tabs: false });
    replicas.push(a);
    const b = await createReplica({ name: 'writer', schema: SCHEMA, storage: memoryStorage(), tabs: false });
    replicas.push(b);
    const engineA = startSync(a, { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket: countingSocket(counterA) });
    const engineB = startSync(b, { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket: countingSocket(newCounter()) });
    await engineA.waitFor((s) => s.state === 'synced', SETUP_TIMEOUT_MS);
    await engineB.waitFor((s) => s.state === 'synced', SETUP_TIMEOUT_MS);
    if ((await a.count({ collection: 'events' })) !== N) throw new Error('subscriber did not bootstrap all records');
    const w = waiter();
    let first = true;
    const firstResult = new Promise((resolve) => {
      unsubscribe = a.subscribe(query, (rows) => {
        const at = performance.now();
        if (first) {
          first = false;
          resolve(rows);
        }
        w.notify(rows, at);
      });
    });
    await within(firstResult, SETUP_TIMEOUT_MS, 'the first query result');
    return await drive(counterA, (j) => {
      const id = `e${j % HOT}`;
      const title = nextTitle();
      const seen = w.next((rows) => rows.some((row) => row.id === id && row.value.title === title));
      void b.patch('events', id, { title });
      return seen;
    });
  } finally {
    unsubscribe();
    for (const replica of replicas) await replica.close().catch(() => {});
  }
}

async function yjsRun(server) {
  const counterA = newCounter();
  const a = yjsReplica(server.port, 'default', counterA);
  const b = yjsReplica(server.port, 'default');
  try {
    await within(Promise.all([a.synced, b.synced]), SETUP_TIMEOUT_MS, 'the Yjs providers to sync');
    if (a.map.size !== N) throw new Error('subscriber did not bootstrap all records');
    const w = waiter();
    a.map.observe((ev) => w.notify(ev));
    return await drive(counterA, (j) => {
      const id = `e${j % HOT}`;
      const title = nextTitle();
      const seen = w.next((ev) => ev.keysChanged.has(id) && a.map.get(id)?.title === title);
      b.map.set(id, { ...b.map.get(id), title });
      return seen;
    });
  } finally {
    a.close();
    b.close();
  }
}

async function tinybaseRun(server) {
  const counterA = newCounter();
  const replicas = [];
  try {
    replicas.push(await tinybaseReplica(server.port, 'default', counterA, 60, SETUP_TIMEOUT_MS));
    replicas.push(await tinybaseReplica(server.port, 'default', newCounter(), 60, SETUP_TIMEOUT_MS));
    const [a, b] = replicas;
    if (a.store.getRowCount('events') !== N) throw new Error(`subscriber did not bootstrap all records (${a.store.getRowCount('events')})`);
    const queries = createQueries(a.store);
    queries.setQueryDefinition('all', 'events', ({ selectAll }) => selectAll());
    const w = waiter();
    queries.addResultTableListener('all', () => w.notify(queries));
    return await drive(counterA, (j) => {
      const id = `e${j % HOT}`;
      const title = nextTitle();
      const seen = w.next((q) => q.getResultCell('all', id, 'title') === title);
      b.store.setCell('events', id, 'title', title);
      return seen;
    });
  } finally {
    for (const replica of replicas) await replica.close();
  }
}

async function relayRun() {
  const server = await startChild('relay.mjs');
  const counterA = newCounter();
  const sockets = [];
  try {
    const open = (Socket) => new Promise((resolve, reject) => {
      const ws = new Socket(`ws://127.0.0.1:${server.port}`);
      sockets.push(ws);
      ws.on('open', () => resolve(ws));
      ws.on('error', reject);
    });
    const a = await open(countingSocket(counterA));
    const b = await open(WebSocket);
    const w = waiter();
    a.on('message', (data) => w.notify(JSON.parse(data)));
    return await drive(counterA, (j) => {
      const id = `e${j % HOT}`;
      const title = nextTitle();
      const seen = w.next((msg) => msg.id === id && msg.value.title === title);
      b.send(JSON.stringify({ collection: 'events', id, value: { ...event(j % HOT), title } }));
      return seen;
    });
  } finally {
    for (const ws of sockets) ws.terminate();
    await server.stop();
  }
}

async function seededServers() {
  const started = [];
  try {
    const syncline = await startChild('syncline.mjs');
    started.push(syncline);
    const yjs = await startChild('yjs.mjs');
    started.push(yjs);
    const tinybase = await startChild('tinybase.mjs');
    started.push(tinybase);
    await Promise.all([syncline.seed('default', N), yjs.seed('default', N), tinybase.seed('default', N)]);
    // Keep the TinyBase path started (see bootstrap.mjs).
    const anchor = new WebSocket(`ws://127.0.0.1:${tinybase.port}/default`);
    await within(new Promise((resolve, reject) => {
      anchor.on('open', resolve);
      anchor.on('error', reject);
    }), 30_000, 'the TinyBase anchor socket');
    await sleep(1_500);
    return { syncline, yjs, tinybase, anchor, started };
  } catch (error) {
    for (const server of started) await server.stop();
    throw error;
  }
}

export async function run() {
  const servers = await seededServers();
  let results;
  const whole = `Syncline subscribe, whole collection (${fmt(N)} rows)`;
  const range = `Syncline subscribe, index range (first ${HOT} by start)`;
  try {
    results = await compare(RUNS, [
      { name: 'bare ws relay (JSON.parse in the handler)', run: () => relayRun() },
      { name: whole, run: () => synclineRun(servers.syncline, { collection: 'events' }) },
      { name: range, run: () => synclineRun(servers.syncline, { collection: 'events', index: 'byStart', limit: HOT }) },
      { name: `Yjs Y.Map observe (${fmt(N)} entries)`, run: () => yjsRun(servers.yjs) },
      { name: `TinyBase Queries result-table listener (${fmt(N)} rows)`, run: () => tinybaseRun(servers.tinybase) },
    ], 'median', 'live-query');
  } finally {
    servers.anchor.terminate();
    for (const server of servers.started) await server.stop();
  }
  const pooled = (m, key) => m.results.flatMap((r) => r[key]).sort((a, b) => a - b);
  const stats = (xs) => `${fmt(xs[Math.floor(xs.length / 2)], 2)} (${fmt(xs[0], 2)}–${fmt(xs[xs.length - 1], 2)}); p95 ${fmt(xs[Math.floor(xs.length * 0.95)], 2)}`;
  const median = (xs) => xs[Math.floor(xs.length / 2)];
  const yjs = results.get(`Yjs Y.Map observe (${fmt(N)} entries)`);
  const relay = results.get('bare ws relay (JSON.parse in the handler)');
  const rows = [];
  for (const [name, m] of results) {
    if (m.error) {
      rows.push([name, `**failed**: ${m.error}`, '—', '—', '—']);
      continue;
    }
    const arrival = pooled(m, 'arrival');
    const e2e = pooled(m, 'endToEnd');
    const ratio = (base, key, mine) => (base && !base.error ? fmt(median(mine) / median(pooled(base, key)), 1) : '—');
    rows.push([name, stats(arrival), ratio(yjs, 'arrival', arrival), stats(e2e), ratio(relay, 'endToEnd', e2e)]);
  }
  return `### Live query: a remote change to the subscriber's callback (${fmt(N)} records; ${CHANGES} changes one at a time × ${RUNS} runs; ms per change, median (min–max) over all changes)\n\n` +
    table(['subscriber', 'message arrival → callback (ms)', 'arrival→callback × Yjs', "B's write → A's callback (ms)", 'write→callback × relay'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

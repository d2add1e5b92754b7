// Scenario: bootstrap. A server holding N records; a fresh replica connects; time and bytes
// until it holds all N. Syncline, Yjs (a y-websocket server holding a Y.Map of N entries) and
// TinyBase (a WsServer whose path holds a MergeableStore of N rows), beside the raw JSON of the
// same records pushed through a bare ws relay.
import { WebSocket } from 'ws';
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { describeTinybaseErrors, tinybaseReplica, yjsReplica } from './baselines.mjs';
import { startChild } from './child.mjs';
import { compare, countingSocket, event, fmt, newCounter, quick, RUNS, rawJsonBytes, sleep, spread, table, within } from './lib.mjs';

const TIMEOUT_MS = quick ? 60_000 : 180_000;
// TinyBase's client waits this long for each sync response (its default, 1 s, is shorter than
// the server takes to answer with a whole table of 10,000 rows).
const TINYBASE_CLIENT_REQUEST_TIMEOUT_S = 60;

async function synclineRun(server, N) {
  const counter = newCounter();
  const replica = await createReplica({ name: 'fresh', schema: { events: {} }, storage: memoryStorage(), tabs: false });
  try {
    const t0 = performance.now();
    const engine = startSync(replica, { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket: countingSocket(counter) });
    await engine.waitFor((s) => s.state === 'synced', TIMEOUT_MS);
    const seconds = (performance.now() - t0) / 1000;
    const count = await replica.count({ collection: 'events' });
    if (count !== N) throw new Error(`bootstrap incomplete: ${count} of ${N}`);
    return { seconds, bytes: counter.received };
  } finally {
    await replica.close();
  }
}

async function yjsRun(server, N) {
  const counter = newCounter();
  const t0 = performance.now();
  const replica = yjsReplica(server.port, 'default', counter);
  try {
    await within(replica.synced, TIMEOUT_MS, 'the Yjs provider to sync');
    const seconds = (performance.now() - t0) / 1000;
    if (replica.map.size !== N) throw new Error(`bootstrap incomplete: ${replica.map.size} of ${N}`);
    return { seconds, bytes: counter.received };
  } finally {
    replica.close();
  }
}

async function tinybaseRun(server, N) {
  const counter = newCounter();
  const t0 = performance.now();
  const replica = await tinybaseReplica(server.port, 'default', counter, TINYBASE_CLIENT_REQUEST_TIMEOUT_S, TIMEOUT_MS);
  try {
    // startSync resolves once its first pull is done (or has failed: TinyBase then goes on empty).
    const seconds = (performance.now() - t0) / 1000;
    const count = replica.store.getRowCount('events');
    if (count !== N) throw new Error(`bootstrap incomplete: ${count} of ${N}${replica.errors.length ? ` (TinyBase client: ${describeTinybaseErrors(replica.errors)})` : ''}`);
    return { seconds, bytes: counter.received };
  } finally {
    await replica.close();
  }
}

async function relayRun(N) {
  const server = await startChild('relay.mjs');
  const sockets = [];
  try {
    const open = () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}`);
      sockets.push(ws);
      ws.on('open', () => resolve(ws));
      ws.on('error', reject);
    });
    const [sender, receiver] = [await open(), await open()];
    let received = 0;
    let bytes = 0;
    const done = new Promise((resolve) => receiver.on('message', (data) => {
      bytes += data.length;
      received += JSON.parse(data).length;
      if (received >= N) resolve();
    }));
    const t0 = performance.now();
    for (let start = 0; start < N; start += 2000) {
      const page = [];
      for (let i = start; i < Math.min(N, start + 2000); i++) page.push({ collection: 'events', id: `e${i}`, value: event(i) });
      sender.send(JSON.stringify(page));
    }
    await within(done, TIMEOUT_MS, 'relay delivery');
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, bytes };
  } finally {
    for (const ws of sockets) ws.terminate();
    await server.stop();
  }
}

/**
 * Seeded servers for one N. The TinyBase path is kept open by a bare socket that never answers:
 * the WsServer starts a path's store when its first client arrives and holds that client's
 * messages until the store's own first sync request has timed out (1 s) for want of an answer,
 * so a replica arriving on a fresh path waits for that first. The anchor takes that wait before
 * the clock starts, as on a server whose path is in use; it also stops the path (and the store's
 * sync) from being torn down between runs.
 */
async function seededServers(N) {
  const servers = {};
  const started = [];
  try {
    servers.syncline = await startChild('syncline.mjs');
    started.push(servers.syncline);
    servers.yjs = await startChild('yjs.mjs');
    started.push(servers.yjs);
    servers.tinybase = await startChild('tinybase.mjs');
    started.push(servers.tinybase);
    await Promise.all([servers.syncline.seed('default', N), servers.yjs.seed('default', N), servers.tinybase.seed('default', N)]);
    const anchor = new WebSocket(`ws://127.0.0.1:${servers.tinybase.port}/default`);
    await within(new Promise((resolve, reject) => {
      anchor.on('open', resolve);
      anchor.on('error', reject);
    }), 30_000, 'the TinyBase anchor socket');
    anchor.on('message', () => {});
    await sleep(1_500);
    servers.anchor = anchor;
    return servers;
  } catch (error) {
    for (const server of started) await server.stop();
    throw error;
  }
}

export async function run() {
  const sizes = quick ? [2_000] : [10_000, 100_000];
  const rows = [];
  for (const N of sizes) {
    const rawJson = rawJsonBytes(N, event);
    const servers = await seededServers(N);
    let results;
    try {
      results = await compare(RUNS, [
        { name: 'raw JSON over a bare ws relay', run: () => relayRun(N) },
        { name: 'Syncline snapshot', run: () => synclineRun(servers.syncline, N) },
        { name: 'Yjs (y-websocket sync step 2)', run: () => yjsRun(servers.yjs, N) },
        { name: 'TinyBase (WsSynchronizer startSync)', run: () => tinybaseRun(servers.tinybase, N) },
      ], 'seconds', `bootstrap ${fmt(N)}`);
    } finally {
      servers.anchor.terminate();
      for (const server of [servers.syncline, servers.yjs, servers.tinybase]) await server.stop();
    }
    const relay = results.get('raw JSON over a bare ws relay');
    const yjs = results.get('Yjs (y-websocket sync step 2)');
    const ms = (s) => fmt(s * 1000);
    for (const [name, m] of results) {
      if (m.error) {
        rows.push([fmt(N), name, `**failed**: ${m.error}`, '—', '—', '—', '—']);
        continue;
      }
      const ratio = (base) => (base && !base.error ? fmt(m.median / base.median, 2) : '—');
      rows.push([fmt(N), name, `${spread(m, ms)} ms`, ratio(relay), ratio(yjs), `${fmt(m.mid.bytes / 1e6, 1)} MB`, fmt(m.mid.bytes / rawJson, 2)]);
    }
  }
  return `### Bootstrap of a fresh replica (time until it holds all N records, median of ${RUNS} (min–max); bytes received ÷ the records' raw JSON)\n\n` +
    table(['records', 'system', 'time', 'time × relay', 'time × Yjs', 'bytes received', 'bytes ÷ raw JSON'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

// Baseline: TinyBase's WebSocket sync server (createWsServer) in its own process. Each path
// (the URL path, like a Syncline space) gets a server-side MergeableStore, kept in memory for
// the life of the process (like the Syncline server's in-memory SQLite), so the server holds the
// data and a fresh client can bootstrap from it. The store is wired in through a custom
// persister that loads nothing and saves nothing: createWsServer starts it and syncs the store
// with the path's clients.
// Arguments: requestTimeoutSeconds (TinyBase's default is 1), fragmentSize in bytes (default:
// none, so a payload over TinyBase's 16 MB socket limit fails).
// Messages: { type: 'seed', space, records } fills path `space`'s table 'events';
// { type: 'memory' } reports memory.
import { createMergeableStore } from 'tinybase';
import { createCustomPersister, Persists } from 'tinybase/persisters';
import { createWsServer } from 'tinybase/synchronizers/synchronizer-ws-server';
import { WebSocketServer } from 'ws';
import { event } from '../lib.mjs';
import { toCells } from '../tinybase-cells.mjs';

const requestTimeoutSeconds = Number(process.argv[2] ?? 1);
const fragmentSize = process.argv[3] ? Number(process.argv[3]) : undefined;
const stores = new Map();
function storeFor(pathId) {
  let store = stores.get(pathId);
  if (!store) stores.set(pathId, (store = createMergeableStore()));
  return store;
}

// Ignored errors are counted; timed-out sync requests (TinyBase error 3) are expected (see
// bootstrap.mjs) and not printed.
const errors = { count: 0, printed: 0 };
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 256 * 1024 * 1024 });
const server = createWsServer(
  wss,
  (pathId) =>
    createCustomPersister(
      storeFor(pathId),
      async () => undefined,
      async () => {},
      () => 0,
      () => {},
      undefined,
      Persists.MergeableStoreOnly,
    ),
  (error) => {
    errors.count++;
    const message = String(error?.message ?? error);
    if (!message.startsWith('tinybase:3:') && errors.printed++ < 5) console.error('tinybase server (ignored error):', message);
  },
  requestTimeoutSeconds,
  fragmentSize,
);
wss.on('listening', () => process.send({ type: 'listening', port: wss.address().port }));
process.on('message', async (msg) => {
  if (msg.type === 'seed') {
    const store = storeFor(msg.space);
    store.transaction(() => {
      for (let i = 0; i < msg.records; i++) store.setRow('events', `e${i}`, toCells(event(i)));
    });
    process.send({ type: 'seeded' });
  }
  if (msg.type === 'memory') {
    globalThis.gc?.();
    process.send({ type: 'memory', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed });
  }
  if (msg.type === 'stop') {
    for (const client of wss.clients) client.terminate();
    await Promise.race([server.destroy(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    process.exit(0);
  }
});

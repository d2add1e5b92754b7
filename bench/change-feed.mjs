// The change feed's lag (issue 20's figure): while W replicas each write one change at a time, as
// apps do (await the local commit, yield, next), a backend follows the space through the backend
// API's long-poll (`/api/v1/spaces/{space}/changes?wait=30`) and, in the same run, a replica follows
// it through the sync protocol. Lag: from the start of a write to its arrival at each follower.
// The server runs in its own process with default limits and SQLite on disk.
//
//   tsc -b && node bench/change-feed.mjs [--writers 10] [--writes 200]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage } from '../packages/client/dist/index.js';
import { startChild } from './child.mjs';
import { fmt, table, waitUntil } from './lib.mjs';

const { values } = parseArgs({ options: { writers: { type: 'string' }, writes: { type: 'string' } } });
const WRITERS = Number(values.writers ?? 10);
const WRITES = Number(values.writes ?? 200);
const SPACE = 'team';
const schema = { events: {} };

const dir = mkdtempSync(join(tmpdir(), 'syncline-feed-'));
const server = await startChild('syncline.mjs', [join(dir, 'feed.db')]);
const base = `http://127.0.0.1:${server.port}`;
const sync = { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket, spaces: [SPACE] };

const started = new Map();
const atFeed = new Map();
const atReplica = new Map();

const reader = await createReplica({ name: 'reader', schema, storage: memoryStorage(), tabs: false, sync });
reader.onCommit((event) => {
  if (event.local) return;
  const now = performance.now();
  for (const [, id] of event.records) if (!atReplica.has(id)) atReplica.set(id, now);
});
const writers = await Promise.all(Array.from({ length: WRITERS }, (_, i) => createReplica({ name: `writer${i}`, schema, storage: memoryStorage(), tabs: false, sync })));
await Promise.all([reader, ...writers].map((r) => r.sync.waitFor((s) => s.state === 'synced', 10_000)));

// The backend: long-polls from the head on, as a mirror would.
let following = true;
let requests = 0;
let after = (await (await fetch(`${base}/api/v1/spaces/${SPACE}/changes?limit=1`)).json()).upTo;
const feed = (async () => {
  while (following) {
    const page = await (await fetch(`${base}/api/v1/spaces/${SPACE}/changes?after=${after}&wait=30`)).json();
    requests++;
    const now = performance.now();
    for (const change of page.changes) if (!atFeed.has(change.id)) atFeed.set(change.id, now);
    after = page.upTo;
  }
})();

const t0 = performance.now();
await Promise.all(
  writers.map(async (w, i) => {
    for (let k = 0; k < WRITES; k++) {
      const id = `w${i}-${k}`;
      started.set(id, performance.now());
      await w.put('events', id, { k, title: `event ${k} of writer ${i}` }, { space: SPACE });
      await new Promise((resolve) => setImmediate(resolve));
    }
  }),
);
const ids = [...started.keys()];
await waitUntil(() => ids.every((id) => atFeed.has(id) && atReplica.has(id)), 120_000, 'every write at the feed and the replica');
const seconds = (performance.now() - t0) / 1000;
following = false;

const lags = (at) => ids.map((id) => at.get(id) - started.get(id)).sort((a, b) => a - b);
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const feedLag = lags(atFeed);
const replicaLag = lags(atReplica);
console.log(`${WRITERS} writers × ${WRITES} writes, one at a time: ${ids.length} changes in ${fmt(seconds, 2)} s (${fmt(ids.length / seconds)} writes/s); the backend made ${requests} long-poll requests`);
console.log(table(
  ['follower', 'p50 lag', 'p99 lag', 'max'],
  [
    ['backend API long-poll (wait=30)', `${fmt(pct(feedLag, 50), 1)} ms`, `${fmt(pct(feedLag, 99), 1)} ms`, `${fmt(feedLag[feedLag.length - 1], 1)} ms`],
    ['replica (sync protocol)', `${fmt(pct(replicaLag, 50), 1)} ms`, `${fmt(pct(replicaLag, 99), 1)} ms`, `${fmt(replicaLag[replicaLag.length - 1], 1)} ms`],
  ],
));
console.log(`feed p50 ÷ replica p50: ${fmt(pct(feedLag, 50) / pct(replicaLag, 50), 2)}×; p99: ${fmt(pct(feedLag, 99) / pct(replicaLag, 99), 2)}×`);

// A last write ends the long-poll waiting on the server.
await writers[0].put('events', 'end', { end: true }, { space: SPACE });
await feed;
await Promise.all([reader, ...writers].map((r) => r.close()));
await server.stop();
rmSync(dir, { recursive: true, force: true });

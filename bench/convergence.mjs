// Scenario: convergence. C replicas each write W records, then 20% updates (half of them
// concurrent updates of the same record by two replicas); time from the first write until
// every replica holds identical state. The same workload on Syncline, Yjs (y-websocket) and
// TinyBase (MergeableStore + WsSynchronizer), beside a bare ws relay moving the same records.
// Every replica is connected (and has finished its first sync) before the clock starts; every
// write is its own call (no batching API is used on any system).
//
// Two write patterns, reported side by side: `bulk` issues all of a replica's writes at once (group
// commit and big pushes amortize everything); `app` writes as apps do: each replica writes one change,
// awaits its local commit, yields to the event loop (setImmediate), and goes on, all replicas at once.
//   node bench/convergence.mjs [--pattern bulk|app|both] [--quick]
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { tinybaseDigest, tinybaseHashes, tinybaseReplica, yjsDigest, yjsReplica, yjsStateVector } from './baselines.mjs';
import { startChild } from './child.mjs';
import { compare, countingSocket, digestEntries, event, fmt, newCounter, quick, relayClient, RUNS, spread, table, waitUntil, within } from './lib.mjs';
import { toCells } from './tinybase-cells.mjs';

const SCHEMA = { events: { indexes: { byStart: ['start'] } } };
const patternArg = process.argv.includes('--pattern') ? process.argv[process.argv.indexOf('--pattern') + 1] : 'both';
const PATTERNS = patternArg === 'both' ? ['bulk', 'app'] : [patternArg];

/** Runs write(i) for i < n: all at once (`bulk`), or one at a time, awaiting each and yielding after it (`app`). */
async function writeAll(pattern, n, write) {
  if (pattern === 'bulk') {
    await Promise.all(Array.from({ length: n }, (_, i) => write(i)));
    return;
  }
  for (let i = 0; i < n; i++) {
    await write(i);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
// TinyBase needs about 5 minutes at 50 × 200 on the 2-core machine (its clients apply every
// other replica's diffs one transaction at a time): the full-mode limit leaves room for that.
const TIMEOUT_MS = quick ? 60_000 : 480_000;
const CONNECT_TIMEOUT_MS = 60_000;

/** The updates replica r makes: half on its own records, half on the next replica's (concurrent with that owner's own update of it). */
function updates(C, W, r) {
  const U = Math.floor(W * 0.2);
  return Array.from({ length: U }, (_, i) => {
    const owner = i % 2 === 0 ? r : (r + 1) % C;
    return { id: `r${owner}-${i}`, owner, i, fields: { title: `updated by r${r}`, location: `Room ${r}` } };
  });
}

/** Waits until every replica's cheap `hint` agrees and then until their full digests agree. */
async function waitConverged(replicas, { ready, hint, digest }) {
  let checks = 0;
  await waitUntil(
    async () => {
      checks++;
      for (const replica of replicas) if (!(await ready(replica))) return false;
      if (hint) {
        const hints = new Set(await Promise.all(replicas.map(hint)));
        if (hints.size !== 1) return false;
      }
      const digests = new Set(await Promise.all(replicas.map(digest)));
      return digests.size === 1;
    },
    TIMEOUT_MS,
    'identical state on every replica',
  );
  return checks;
}

async function synclineRun(C, W, pattern) {
  const server = await startChild('syncline.mjs');
  const counter = newCounter();
  const Socket = countingSocket(counter);
  const replicas = [];
  const engines = [];
  try {
    for (let r = 0; r < C; r++) {
      const replica = await createReplica({ name: `r${r}`, schema: SCHEMA, storage: memoryStorage(), tabs: false });
      engines.push(startSync(replica, { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket: Socket }));
      replicas.push(replica);
    }
    await Promise.all(engines.map((engine) => engine.waitFor((s) => s.state === 'synced', CONNECT_TIMEOUT_MS)));
    const t0 = performance.now();
    await within(
      Promise.all(replicas.map((replica, r) => writeAll(pattern, W, (i) => replica.put('events', `r${r}-${i}`, event(i, `r${r}`))))),
      TIMEOUT_MS,
      'Syncline local writes',
    );
    await within(
      Promise.all(
        replicas.map((replica, r) => {
          const list = updates(C, W, r);
          return writeAll(pattern, list.length, (k) => replica.patch('events', list[k].id, list[k].fields));
        }),
      ),
      TIMEOUT_MS,
      'Syncline local updates',
    );
    const expected = C * W;
    await waitConverged(replicas, {
      ready: async (replica) => engines[replicas.indexOf(replica)].status.pending === 0 && (await replica.count({ collection: 'events' })) === expected,
      digest: async (replica) => digestEntries((await replica.query({ collection: 'events' })).map((row) => [row.id, row.value])),
    });
    const seconds = (performance.now() - t0) / 1000;
    const memory = await server.memory();
    return result(C, W, seconds, counter, memory);
  } finally {
    for (const replica of replicas) await replica.close().catch(() => {});
    await server.stop();
  }
}

async function yjsRun(C, W, pattern) {
  const server = await startChild('yjs.mjs');
  const counter = newCounter();
  const replicas = [];
  try {
    for (let r = 0; r < C; r++) replicas.push(yjsReplica(server.port, 'default', counter));
    await within(Promise.all(replicas.map((replica) => replica.synced)), CONNECT_TIMEOUT_MS, 'Yjs providers to sync');
    const t0 = performance.now();
    await Promise.all(replicas.map((replica, r) => writeAll(pattern, W, (i) => replica.map.set(`r${r}-${i}`, event(i, `r${r}`)))));
    // An update replaces the entry: the local record (or, if the owner's write has not arrived yet, the record as its owner wrote it) with the changed fields.
    await Promise.all(
      replicas.map((replica, r) => {
        const list = updates(C, W, r);
        return writeAll(pattern, list.length, (k) => replica.map.set(list[k].id, { ...(replica.map.get(list[k].id) ?? event(list[k].i, `r${list[k].owner}`)), ...list[k].fields }));
      }),
    );
    const expected = C * W;
    await waitConverged(replicas, {
      ready: (replica) => replica.map.size === expected && replica.doc.store.pendingStructs === null,
      hint: yjsStateVector,
      digest: yjsDigest,
    });
    const seconds = (performance.now() - t0) / 1000;
    const memory = await server.memory();
    return result(C, W, seconds, counter, memory);
  } finally {
    for (const replica of replicas) replica.close();
    await server.stop();
  }
}

async function tinybaseRun(C, W, pattern) {
  const server = await startChild('tinybase.mjs');
  const counter = newCounter();
  const replicas = [];
  try {
    for (let r = 0; r < C; r++) replicas.push(await tinybaseReplica(server.port, 'default', counter, 1, CONNECT_TIMEOUT_MS));
    const t0 = performance.now();
    await Promise.all(replicas.map((replica, r) => writeAll(pattern, W, (i) => replica.store.setRow('events', `r${r}-${i}`, toCells(event(i, `r${r}`))))));
    // Cell-level, like Syncline's patch: only the changed fields are stamped.
    await Promise.all(
      replicas.map((replica, r) => {
        const list = updates(C, W, r);
        return writeAll(pattern, list.length, (k) => replica.store.setPartialRow('events', list[k].id, toCells(list[k].fields)));
      }),
    );
    const expected = C * W;
    await waitConverged(replicas, {
      ready: (replica) => replica.store.getRowCount('events') === expected,
      hint: tinybaseHashes,
      digest: tinybaseDigest,
    });
    const seconds = (performance.now() - t0) / 1000;
    const memory = await server.memory();
    return { ...result(C, W, seconds, counter, memory), ignoredErrors: replicas.reduce((n, replica) => n + replica.errors.length, 0) };
  } finally {
    for (const replica of replicas) await replica.close();
    await server.stop();
  }
}

async function relayRun(C, W, pattern) {
  const server = await startChild('relay.mjs');
  const U = Math.floor(W * 0.2);
  const perClient = W + U;
  const expected = (C - 1) * perClient;
  const counter = newCounter();
  const clients = [];
  try {
    clients.push(
      ...(await within(
        Promise.all(Array.from({ length: C }, () => relayClient(server.port, counter))),
        CONNECT_TIMEOUT_MS,
        'relay sockets to open',
      )),
    );
    const t0 = performance.now();
    await Promise.all(
      clients.map((ws, r) =>
        writeAll(pattern, perClient, (i) => {
          const payload = JSON.stringify({ id: `r${r}-${i % W}`, value: event(i, `r${r}`) });
          counter.sent += payload.length;
          ws.send(payload);
        }),
      ),
    );
    await waitUntil(() => clients.every((ws) => ws.received >= expected), TIMEOUT_MS, 'relay delivery');
    const seconds = (performance.now() - t0) / 1000;
    const memory = await server.memory();
    return result(C, W, seconds, counter, memory);
  } finally {
    for (const ws of clients) ws.terminate();
    await server.stop();
  }
}

function result(C, W, seconds, counter, memory) {
  const writes = C * (W + Math.floor(W * 0.2));
  return { seconds, writes, writesPerSecond: writes / seconds, bytes: counter.sent + counter.received, rss: memory.rss };
}

export const SYSTEMS = [
  ['bare ws relay', relayRun],
  ['Syncline', synclineRun],
  ['Yjs (y-websocket)', yjsRun],
  ['TinyBase (MergeableStore)', tinybaseRun],
];

export async function run() {
  const configs = quick ? [[10, 100]] : [[10, 1000], [50, 200]];
  const rows = [];
  const ignored = [];
  for (const pattern of PATTERNS) for (const [C, W] of configs) {
    const results = await compare(RUNS, SYSTEMS.map(([name, fn]) => ({ name, run: () => fn(C, W, pattern) })), 'writesPerSecond', `convergence ${C} × ${W} ${pattern}`);
    const relay = results.get('bare ws relay');
    const yjs = results.get('Yjs (y-websocket)');
    const ratio = (m, base) => (base && !base.error && !m.error ? fmt(m.median / base.median, 2) : '—');
    for (const [name, m] of results) {
      if (m.error) {
        rows.push([`${C} × ${W}`, pattern, name, `**failed**: ${m.error}`, '—', '—', '—', '—', '—']);
        continue;
      }
      if (m.mid.ignoredErrors) ignored.push([`${C} × ${W} ${pattern}`, name, m.mid.ignoredErrors]);
      rows.push([
        `${C} × ${W}`,
        pattern,
        name,
        spread(m),
        ratio(m, relay),
        ratio(m, yjs),
        `${fmt(m.mid.bytes / 1e6, 1)} MB`,
        fmt(m.mid.bytes / m.mid.writes),
        `${fmt(m.mid.rss / 1e6)} MB`,
      ]);
    }
  }
  const notes = [];
  for (const [config, name, m] of ignored) notes.push(`${name} at ${config}: ${fmt(m)} sync errors ignored by the clients (TinyBase reports a sync request unanswered within its 1 s timeout this way; it converged all the same).`);
  return `### Convergence (replicas × writes each, +20% updates; patterns: bulk = all writes at once, app = one at a time, awaited, yielding; converged writes/s, median of ${RUNS} (min–max); bytes and RSS from the median run)\n\n` +
    table(['config', 'pattern', 'system', 'converged writes/s', '× relay', '× Yjs', 'bytes on the wire', 'bytes per write', 'server RSS after'], rows) +
    (notes.length ? `\n\n${notes.map((n) => `- ${n}`).join('\n')}` : '');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

// Scenario: idle connections. Server process memory growth per connection with K idle clients
// connected and past their handshake, spread over 50 spaces (Syncline spaces, Yjs rooms,
// TinyBase paths), beside a bare ws server holding K idle sockets.
// - bare ws: a socket, nothing sent.
// - Syncline: a socket that sent its hello (one space) and got the welcome.
// - Yjs: a real WebsocketProvider (sync steps 1 and 2 done, its awareness state sent).
// - TinyBase: a real MergeableStore + WsSynchronizer, startSync done.
import { WebSocket } from 'ws';
import { encodeUpstream, PROTOCOL_VERSION } from '../packages/core/dist/index.js';
import { tinybaseReplica, yjsReplica } from './baselines.mjs';
import { startChild } from './child.mjs';
import { compare, fmt, quick, RUNS, sleep, spread, table, within } from './lib.mjs';

const SPACES = 50;
const BATCH = 100;
const TIMEOUT_MS = 60_000;

function rawSocket(port, i, hello) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${hello ? '/sync' : ''}`);
    ws.on('open', () => {
      if (!hello) return resolve(ws);
      ws.once('message', () => resolve(ws)); // welcome
      ws.send(encodeUpstream({ type: 'hello', protocol: PROTOCOL_VERSION, replica: `idle${i}`, spaces: [{ space: `s${i % SPACES}`, after: 0 }], time: Date.now() }));
    });
    ws.on('error', reject);
  });
}

const CLIENTS = {
  relay: {
    script: 'relay.mjs',
    async open(port, i) {
      const ws = await rawSocket(port, i, false);
      return () => ws.terminate();
    },
  },
  syncline: {
    script: 'syncline.mjs',
    async open(port, i) {
      const ws = await rawSocket(port, i, true);
      return () => ws.terminate();
    },
  },
  yjs: {
    script: 'yjs.mjs',
    async open(port, i) {
      const replica = yjsReplica(port, `s${i % SPACES}`);
      await replica.synced;
      return () => replica.close();
    },
  },
  tinybase: {
    script: 'tinybase.mjs',
    async open(port, i) {
      const replica = await tinybaseReplica(port, `s${i % SPACES}`);
      return () => replica.close();
    },
  },
};

async function perConnection(kind, K) {
  const { script, open } = CLIENTS[kind];
  const server = await startChild(script, script === 'syncline.mjs' ? [':memory:', 'many-connections'] : []);
  const closers = [];
  try {
    const before = await server.memory();
    for (let i = 0; i < K; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, K - i) }, (_, j) => open(server.port, i + j));
      closers.push(...(await within(Promise.all(batch), TIMEOUT_MS, `${kind} connections ${i}–${i + batch.length}`)));
    }
    await sleep(500);
    const after = await server.memory();
    return { rss: (after.rss - before.rss) / K, heap: (after.heap - before.heap) / K };
  } finally {
    await Promise.all(closers.map((close) => close()));
    await server.stop();
  }
}

export async function run() {
  const counts = quick ? [300] : [1000, 5000];
  const rows = [];
  const kb = (bytes) => fmt(bytes / 1024, 1);
  for (const K of counts) {
    const results = await compare(RUNS, [
      { name: 'bare ws server', run: () => perConnection('relay', K) },
      { name: 'Syncline', run: () => perConnection('syncline', K) },
      { name: 'Yjs (y-websocket)', run: () => perConnection('yjs', K) },
      { name: 'TinyBase (WsServer)', run: () => perConnection('tinybase', K) },
    ], 'rss', `idle ${fmt(K)}`);
    const bare = results.get('bare ws server');
    const yjs = results.get('Yjs (y-websocket)');
    for (const [name, m] of results) {
      if (m.error) {
        rows.push([fmt(K), name, `**failed**: ${m.error}`, '—', '—', '—']);
        continue;
      }
      const ratio = (base) => (base && !base.error ? fmt(m.median / base.median, 2) : '—');
      const heaps = m.results.map((r) => r.heap).sort((a, b) => a - b);
      rows.push([fmt(K), name, `${spread(m, kb)} KB`, `${kb(heaps[Math.floor(heaps.length / 2)])} KB`, ratio(bare), ratio(yjs)]);
    }
  }
  return `### Idle connections (server process memory growth per connection, after GC; median of ${RUNS} (min–max))\n\n` +
    table(['connections', 'server', 'RSS per connection', 'JS heap per connection (median)', 'RSS × bare ws', 'RSS × Yjs'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

// Scenario: bootstrap. A server holding N records; a fresh replica connects; time and bytes
// until it holds all N. Beside the raw JSON of the same records pushed through a bare ws relay.
import { WebSocket } from 'ws';
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { startChild } from './child.mjs';
import { event, fmt, measure, quick, table } from './lib.mjs';

function countingSocket(counter) {
  return class extends WebSocket {
    constructor(url) {
      super(url);
      this.on('message', (data) => (counter.received += data.byteLength ?? data.length));
    }
  };
}

async function synclineRun(server, N) {
  const counter = { received: 0 };
  const replica = await createReplica({ name: 'fresh', schema: { events: {} }, storage: memoryStorage(), tabs: false });
  const t0 = performance.now();
  const engine = startSync(replica, { url: `ws://127.0.0.1:${server.port}/sync`, WebSocket: countingSocket(counter) });
  await engine.waitFor((s) => s.state === 'synced', 300_000);
  const seconds = (performance.now() - t0) / 1000;
  const count = await replica.count({ collection: 'events' });
  if (count !== N) throw new Error(`bootstrap incomplete: ${count} of ${N}`);
  await replica.close();
  return { seconds, bytes: counter.received };
}

async function relayRun(N) {
  const server = await startChild('relay.mjs');
  const open = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}`);
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
  await done;
  const seconds = (performance.now() - t0) / 1000;
  sender.close();
  receiver.close();
  await server.stop();
  return { seconds, bytes };
}

export async function run() {
  const sizes = quick ? [10_000] : [10_000, 100_000];
  const RUNS = quick ? 1 : 3;
  const rows = [];
  for (const N of sizes) {
    let rawJson = 0;
    for (let i = 0; i < N; i++) rawJson += JSON.stringify(event(i)).length;
    const relayResults = [];
    const relay = await measure(RUNS, async () => {
      const r = await relayRun(N);
      relayResults.push(r);
      return r.seconds;
    });
    const server = await startChild('syncline.mjs');
    await server.seed('default', N);
    const results = [];
    const syncline = await measure(RUNS, async () => {
      const r = await synclineRun(server, N);
      results.push(r);
      return r.seconds;
    });
    await server.stop();
    const cell = (m) => `${fmt(m.median * 1000)} ms (${fmt(m.min * 1000)}–${fmt(m.max * 1000)})`;
    rows.push([fmt(N), 'raw JSON over a bare ws relay', cell(relay), '1.00', `${fmt(relayResults[0].bytes / 1e6, 1)} MB`, fmt(relayResults[0].bytes / rawJson, 2)]);
    rows.push([fmt(N), 'Syncline snapshot', cell(syncline), fmt(syncline.median / relay.median, 2), `${fmt(results[0].bytes / 1e6, 1)} MB`, fmt(results[0].bytes / rawJson, 2)]);
  }
  return `### Bootstrap of a fresh replica (median of ${RUNS} (min–max); bytes ÷ the records' raw JSON)\n\n` +
    table(['records', 'system', 'time', 'time vs relay (×)', 'bytes received', 'bytes ÷ raw JSON'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

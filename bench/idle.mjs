// Scenario: idle connections. Server memory per connection with K idle replicas connected
// (handshake done, one space each), beside a bare ws server holding K idle sockets.
import { WebSocket } from 'ws';
import { encodeUpstream, PROTOCOL_VERSION } from '../packages/core/dist/index.js';
import { startChild } from './child.mjs';
import { fmt, quick, table } from './lib.mjs';

async function connectAll(port, K, hello) {
  const sockets = [];
  for (let i = 0; i < K; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, K - i) }, (_, j) => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}${hello ? '/sync' : ''}`);
        ws.on('open', () => {
          if (!hello) return resolve(ws);
          ws.once('message', () => resolve(ws)); // welcome
          ws.send(encodeUpstream({ type: 'hello', protocol: PROTOCOL_VERSION, replica: `idle${i + j}`, spaces: [{ space: `s${(i + j) % 50}`, after: 0 }], time: Date.now() }));
        });
        ws.on('error', reject);
      })),
    );
    sockets.push(...batch);
  }
  return sockets;
}

async function perConnection(script, K, hello) {
  const server = await startChild(script);
  const before = await server.memory();
  const sockets = await connectAll(server.port, K, hello);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await server.memory();
  for (const ws of sockets) ws.terminate();
  await server.stop();
  return { rss: (after.rss - before.rss) / K, heap: (after.heap - before.heap) / K };
}

export async function run() {
  const counts = quick ? [1000] : [1000, 5000];
  const rows = [];
  for (const K of counts) {
    const relay = await perConnection('relay.mjs', K, false);
    const syncline = await perConnection('syncline.mjs', K, true);
    rows.push([fmt(K), 'bare ws server', `${fmt(relay.rss / 1024, 1)} KB`, `${fmt(relay.heap / 1024, 1)} KB`, '1.00']);
    rows.push([fmt(K), 'Syncline', `${fmt(syncline.rss / 1024, 1)} KB`, `${fmt(syncline.heap / 1024, 1)} KB`, fmt(syncline.rss / relay.rss, 2)]);
  }
  return '### Idle connections (server process memory growth per connection, after GC)\n\n' +
    table(['connections', 'server', 'RSS per connection', 'JS heap per connection', 'RSS vs bare ws (×)'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

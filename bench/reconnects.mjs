// Scenario: reconnects. Connection attempts per minute of one replica with default sync options
// in each state where it is not connected: backing off (the server is down; the server refuses
// every connection with a fatal error the client retries), stopped (an error retrying cannot
// fix), the browser offline, paused. Real time: minute 1, 2 and 3 are counted apart, since the
// backoff grows to its ceiling during the first.
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { createSyncServer, sqliteStorage } from '../packages/server/dist/index.js';
import { fmt, freePort, quick, sleep, table } from './lib.mjs';
import { pino } from 'pino';

const MINUTES = quick ? 1 : 3;
const MINUTE_MS = quick ? 20_000 : 60_000;

/** A WebSocket class counting its dials at the given moments (ms since `t0`). */
function dialing(log, t0) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      log.push(performance.now() - t0);
    }
  };
}

export async function run() {
  const secret = 'reconnects-bench-secret-long-enough-for-hs256';
  const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: pino({ level: 'silent' }), jwt: { secret } });
  await server.listen();
  // A port nothing listens on: every dial is refused at once.
  const down = `ws://127.0.0.1:${await freePort()}/sync`;
  const badToken = await new SignJWT({ spaces: { default: 'write' } })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
    .sign(new TextEncoder().encode(secret));

  const t0 = performance.now();
  const cases = [
    { name: 'backing off: the server is down (connection refused)', url: down, options: {} },
    { name: 'backing off: every connection refused with a fatal error it retries (a token function whose tokens have expired)', url: server.url, options: { token: async () => badToken } },
    { name: 'stopped: no token for a JWT server (unauthenticated)', url: server.url, options: {} },
    { name: 'paused (sync.pause())', url: server.url, options: {}, pause: true },
  ];
  const replicas = [];
  const engines = [];
  for (const c of cases) {
    c.dials = [];
    const replica = await createReplica({ name: c.name, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    await replica.put('events', 'e1', { title: 'waiting to sync' });
    const engine = startSync(replica, { url: c.url, WebSocket: dialing(c.dials, t0), ...c.options });
    if (c.pause) engine.pause();
    c.engine = engine;
    replicas.push(replica);
    engines.push(engine);
  }
  // The browser offline: navigator.onLine is false and no 'online' event comes. The engine looks
  // at it when it would dial; offline, it sets no timer at all, so nothing dials until 'online'.
  const offline = { name: 'the browser offline (navigator.onLine false)', dials: [] };
  globalThis.navigator = { onLine: false };
  const replica = await createReplica({ name: 'offline', schema: { events: {} }, storage: memoryStorage(), tabs: false });
  offline.engine = startSync(replica, { url: server.url, WebSocket: dialing(offline.dials, t0) });
  delete globalThis.navigator;
  replicas.push(replica);
  engines.push(offline.engine);
  cases.push(offline);

  await sleep(MINUTES * MINUTE_MS);
  const unit = quick ? '20 s' : 'minute';
  const rows = cases.map((c) => [
    c.name,
    ...Array.from({ length: MINUTES }, (_, m) => fmt(c.dials.filter((t) => t >= m * MINUTE_MS && t < (m + 1) * MINUTE_MS).length)),
    c.engine.status.state,
  ]);
  for (const engine of engines) engine.close();
  await Promise.all(replicas.map((r) => r.close()));
  await server.close();
  return (
    `### Connection attempts while not connected (default sync options; attempts per ${unit}, real time)\n\n` +
    table(['state', ...Array.from({ length: MINUTES }, (_, m) => `${unit} ${m + 1}`), 'state at the end'], rows)
  );
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

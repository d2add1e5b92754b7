// Scenario: drain. A replica writes N records of about 3 KB while offline, one call each (as an
// app does), then reconnects to a server with default limits while a second replica is connected.
// Time from the reconnect until the second replica holds every record and the first has every
// change acknowledged; bytes on the wire both ways (payloads, both replicas). Beside it, the same
// records through the bare ws relay, one message each, from one client to the other.
import { createReplica, memoryStorage, startSync } from '../packages/client/dist/index.js';
import { startChild } from './child.mjs';
import { compare, countingSocket, event, fmt, newCounter, quick, relayClient, RUNS, spread, table, waitUntil, within } from './lib.mjs';

const N = quick ? 1_000 : 10_000;
const TIMEOUT_MS = 600_000;

/** A calendar event with about 2.8 KB of notes: about 3 KB of JSON. */
export function noted(i) {
  return { ...event(i), notes: `Notes of meeting ${i}: `.padEnd(2_800, 'agenda, decisions, follow-ups; ') };
}

async function synclineRun() {
  const server = await startChild('syncline.mjs');
  const url = `ws://127.0.0.1:${server.port}/sync`;
  const counter = newCounter();
  let dials = 0;
  const Counting = countingSocket(counter);
  class Socket extends Counting {
    constructor(...args) {
      super(...args);
      dials++;
    }
  }
  const writer = await createReplica({ name: 'writer', schema: { events: {} }, storage: memoryStorage(), tabs: false });
  const reader = await createReplica({ name: 'reader', schema: { events: {} }, storage: memoryStorage(), tabs: false });
  const engines = [];
  try {
    for (let i = 0; i < N; i++) await writer.put('events', `e${i}`, noted(i));
    engines.push(startSync(reader, { url, WebSocket: Socket }));
    await engines[0].waitFor((s) => s.state === 'synced', 30_000);
    Object.assign(counter, newCounter());
    dials = 0;
    const t0 = performance.now();
    const engine = startSync(writer, { url, WebSocket: Socket });
    engines.push(engine);
    await within(engine.flushed(), TIMEOUT_MS, 'the backlog to be acknowledged');
    await waitUntil(async () => (await reader.count({ collection: 'events' })) === N, TIMEOUT_MS, 'the reader to hold every record', 5);
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, bytes: counter.sent + counter.received, dials };
  } finally {
    for (const engine of engines) engine.close();
    await Promise.all([writer.close(), reader.close()]);
    await server.stop();
  }
}

async function relayRun() {
  const server = await startChild('relay.mjs');
  const counter = newCounter();
  const [from, to] = await within(Promise.all([relayClient(server.port, counter), relayClient(server.port, counter)]), 30_000, 'relay sockets to open');
  try {
    const payloads = Array.from({ length: N }, (_, i) => JSON.stringify({ id: `e${i}`, value: noted(i) }));
    const t0 = performance.now();
    for (const payload of payloads) {
      counter.sent += payload.length;
      from.send(payload);
    }
    await waitUntil(() => to.received >= N, TIMEOUT_MS, 'relay delivery', 5);
    return { seconds: (performance.now() - t0) / 1000, bytes: counter.sent + counter.received, dials: 1 };
  } finally {
    from.terminate();
    to.terminate();
    await server.stop();
  }
}

export async function run() {
  const results = await compare(
    RUNS,
    [
      { name: 'bare ws relay', run: relayRun },
      { name: 'Syncline', run: synclineRun },
    ],
    'seconds',
    `drain ${N}`,
  );
  const relay = results.get('bare ws relay');
  const raw = Array.from({ length: N }, (_, i) => JSON.stringify(noted(i)).length).reduce((a, b) => a + b, 0);
  const rows = [...results].map(([name, m]) =>
    m.error
      ? [name, `**failed**: ${m.error}`, '—', '—', '—', '—']
      : [
          name,
          spread(m, (x) => fmt(x, 2)),
          relay && !relay.error ? fmt(m.median / relay.median, 2) : '—',
          `${fmt(m.mid.bytes / 1e6, 1)} MB`,
          fmt(m.mid.bytes / (2 * raw), 2),
          fmt(m.mid.dials),
        ],
  );
  return (
    `### Drain of an offline backlog (${N.toLocaleString('en')} records of ${fmt(raw / N / 1000, 1)} KB written offline, then one reconnect; default server limits; seconds, median of ${RUNS} (min–max))\n\n` +
    table(['system', 'seconds to drain', '× relay', 'bytes on the wire', '× raw JSON (up + down)', 'connections'], rows)
  );
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

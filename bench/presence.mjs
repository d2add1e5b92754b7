// Presence (issue 22): two devices (replicas with sync, memory storage) on a server in its own process with
// default limits (SQLite on disk). 1. Round trip: A sets its state, B sees it and answers with its own, A sees
// that, one exchange at a time; p50 / p99 over the exchanges (A and B share this process). 2. What an idle
// watcher costs: W watchers of a space where P replicas have a state and nobody changes it, for S seconds:
// bytes each watcher receives per second (payload bytes, WebSocket framing not included). 3. What one update
// costs a watcher: bytes per watcher per update when one replica moves its state 10 times a second.
//
//   tsc -b && node bench/presence.mjs [--exchanges 500] [--watchers 20] [--present 10] [--seconds 30]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createReplica, memoryStorage } from '../packages/client/dist/index.js';
import { startChild } from './child.mjs';
import { countingSocket, fmt, newCounter, sleep, table, waitUntil } from './lib.mjs';

const { values } = parseArgs({ options: { exchanges: { type: 'string' }, watchers: { type: 'string' }, present: { type: 'string' }, seconds: { type: 'string' } } });
const EXCHANGES = Number(values.exchanges ?? 500);
const WATCHERS = Number(values.watchers ?? 20);
const PRESENT = Number(values.present ?? 10);
const SECONDS = Number(values.seconds ?? 30);
const SPACE = 'office';

const dir = mkdtempSync(join(tmpdir(), 'syncline-presence-'));
const server = await startChild('syncline.mjs', [join(dir, 'presence.db')]);
const url = `ws://127.0.0.1:${server.port}/sync`;
const devices = [];
async function device(name, counter = newCounter()) {
  const replica = await createReplica({ name, schema: { events: {} }, storage: memoryStorage(), tabs: false, sync: { url, WebSocket: countingSocket(counter), spaces: [SPACE] } });
  devices.push(replica);
  await replica.sync.waitFor((s) => s.state === 'synced', 30_000);
  return { replica, counter };
}

// 1. Round trips.
const { replica: a } = await device('a');
const { replica: b } = await device('b');
b.presence.subscribe((peers) => {
  const n = peers[0]?.state?.n;
  if (n !== undefined) b.presence.set({ echo: n });
});
let answered = () => undefined;
a.presence.subscribe((peers) => {
  if (peers[0]?.state?.echo !== undefined) answered(peers[0].state.echo);
});
const rtts = [];
for (let n = 0; n < EXCHANGES; n++) {
  const t0 = performance.now();
  const echoed = new Promise((resolve) => (answered = (m) => m === n && resolve()));
  a.presence.set({ n, name: 'Ann', week: '2026-W50' });
  await echoed;
  rtts.push(performance.now() - t0);
  // Under the client's 20 updates a second: each exchange waits out the 50 ms between sends.
  await sleep(50);
}
rtts.sort((x, y) => x - y);
const pct = (p) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))];

// 2. Idle watchers.
for (let i = 0; i < PRESENT; i++) {
  const { replica } = await device(`present${i}`);
  replica.presence.set({ name: `Person ${i}`, week: '2026-W50', editing: `event-${i}`, color: '#3366cc' });
}
const watchers = [];
for (let i = 0; i < WATCHERS; i++) watchers.push(await device(`watcher${i}`));
await waitUntil(() => watchers.every((w) => w.replica.presence.peers().length >= PRESENT), 30_000, 'every watcher to see everyone present');
for (const w of watchers) w.counter.received = 0;
await sleep(SECONDS * 1000);
const idleBytes = watchers.reduce((n, w) => n + w.counter.received, 0) / WATCHERS / SECONDS;

// 3. One replica moving its state 10 times a second for S / 3 seconds.
for (const w of watchers) w.counter.received = 0;
const mover = devices.find((d) => d.name === 'present0');
const updates = Math.round((SECONDS / 3) * 10);
for (let i = 0; i < updates; i++) {
  mover.presence.set({ name: 'Person 0', week: '2026-W50', editing: `event-${i}`, color: '#3366cc' });
  await sleep(100);
}
await sleep(500);
const perUpdate = watchers.reduce((n, w) => n + w.counter.received, 0) / WATCHERS / updates;

console.log(`presence (${new Date().toISOString()}): server in its own process, default limits`);
console.log(
  table(
    ['measure', 'value'],
    [
      [`round trip A → B → A, ${fmt(EXCHANGES)} exchanges: p50 / p99 / max`, `${fmt(pct(0.5), 2)} / ${fmt(pct(0.99), 2)} / ${fmt(rtts[rtts.length - 1], 2)} ms`],
      [`bytes per second per idle watcher (${PRESENT} present, nobody moving, ${SECONDS} s)`, fmt(idleBytes, 2)],
      [`bytes per watcher per update (one replica moving 10 times a second, ${WATCHERS} watchers)`, fmt(perUpdate, 1)],
    ],
  ),
);
for (const d of devices) await d.close();
await server.stop();
rmSync(dir, { recursive: true, force: true });

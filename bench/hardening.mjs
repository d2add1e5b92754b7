// Scenario: hardening (issue 16). A `syncline-server` child with default settings, probed as an
// attacker would; its CPU time (from /proc) and resident memory are measured from outside.
//  - junk: frames of a million empty attachments sent before any hello (each refused and closed);
//  - slow readers: five connections that ask for a space of large records and never read;
//  - bootstrap: a new device asks for a space of 600 records of 900 KB.
// SYNCLINE_SERVER_BIN=path/to/syncline-server.js measures another build (before and after).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { decodeDownstream, encodeUpstream, formatTimestamp } from '../packages/core/dist/index.js';
import { fmt, quick, sleep, table } from './lib.mjs';

const BIN = process.env.SYNCLINE_SERVER_BIN ?? fileURLToPath(new URL('../packages/server/bin/syncline-server.js', import.meta.url));
const FRAMES = quick ? 5 : 20;

/** A server child on a fresh database; resolves once it listens. */
async function serverChild(args = []) {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-hardening-'));
  const child = spawn(process.execPath, [BIN, '--port', '0', '--db', join(dir, 'db.sqlite'), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_ENV: 'production' } });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  const proc = (field) => readFileSync(`/proc/${child.pid}/${field}`, 'utf8');
  return {
    port,
    /** CPU time used so far, ms. */
    cpu: () => {
      const f = proc('stat').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    },
    rss: () => Number(/VmRSS:\s+(\d+)/.exec(proc('status'))[1]) * 1024,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const varint = (n) => {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
};

async function junk() {
  const server = await serverChild();
  try {
    const count = 1_000_000;
    const frame = Uint8Array.from([0x53, ...varint(count), ...new Array(count).fill(0), 0x02, 0x7b, 0x7d]);
    const send = () =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/sync`);
        ws.on('open', () => ws.send(frame));
        ws.on('close', resolve);
        ws.on('error', () => undefined);
      });
    await send(); // warm-up
    await sleep(300);
    const [cpu, rss] = [server.cpu(), server.rss()];
    let peak = rss;
    for (let i = 0; i < FRAMES; i++) {
      await send();
      peak = Math.max(peak, server.rss());
    }
    return [`${FRAMES} frames of 1 MiB, a million empty attachments each, before hello`, `${fmt((server.cpu() - cpu) / FRAMES, 1)} ms per frame`, `${fmt(rss / 1e6)} → ${fmt(peak / 1e6)} MB`];
  } finally {
    server.stop();
  }
}

/** A raw protocol client: sends frames it builds, counts what it receives. */
async function rawClient(port, replica, encode) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/sync`);
  ws.binaryType = 'arraybuffer';
  const state = { ws, bytes: 0, messages: [] };
  ws.on('message', (data) => {
    state.bytes += data.byteLength;
    state.messages.push(decodeDownstream(new Uint8Array(data)));
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(encode({ type: 'hello', protocol: 2, replica, spaces: [{ space: 'default', after: 0 }], time: Date.now() }));
  return state;
}

const waitFor = async (check, ms, what) => {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

/** Fills the space with `records` records of `fields` fields of `fieldBytes` each, one patch per field, each push acknowledged. */
async function seed(port, records, fields, fieldBytes) {
  const writer = await rawClient(port, 'seeder', encodeUpstream);
  await waitFor(() => writer.messages.some((m) => m.type === 'welcome'), 10_000, 'welcome');
  let seq = 0;
  for (let r = 0; r < records; r++) {
    for (let f = 0; f < fields; f++) {
      seq++;
      const change = { space: 'default', collection: 'events', id: `r${r}`, replica: 'seeder', seq, hlc: formatTimestamp({ wall: Date.now(), counter: seq % 0xffff, replica: 'seeder' }), op: 'patch', fields: { [`f${f}`]: 'x'.repeat(fieldBytes) }, unset: [] };
      writer.ws.send(encodeUpstream({ type: 'push', space: 'default', changes: [change] }));
      const want = seq;
      await waitFor(() => writer.messages.some((m) => m.type === 'ack' && m.upTo >= want), 30_000, `ack ${want}`);
    }
  }
  writer.ws.terminate();
}

/** Five readers that ask for the space and never read: what they cost the server. */
async function slowReaders() {
  const server = await serverChild();
  try {
    await seed(server.port, 100, 1, 240_000); // 24 MB of records
    await sleep(500);
    const before = server.rss();
    const readers = [];
    for (let i = 0; i < 5; i++) {
      const reader = await rawClient(server.port, `slow-${i}`, encodeUpstream);
      reader.ws._socket.pause(); // never reads again
      readers.push(reader);
    }
    let peak = before;
    for (let t = 0; t < 40; t++) {
      await sleep(250);
      peak = Math.max(peak, server.rss());
    }
    for (const r of readers) r.ws.terminate();
    return ['5 readers that never read, on a space of 24 MB (100 records of 240 KB)', '—', `${fmt(before / 1e6)} → ${fmt(peak / 1e6)} MB (+${fmt((peak - before) / 5e6)} MB per reader)`];
  } finally {
    server.stop();
  }
}

/** A new device bootstraps a space of 600 records of 900 KB (4 fields of 225 KB, one patch each). */
async function bootstrap() {
  const server = await serverChild();
  try {
    await seed(server.port, quick ? 60 : 600, 4, 225_000);
    await sleep(500);
    const before = server.rss();
    const cpu = server.cpu();
    const t0 = performance.now();
    const reader = await rawClient(server.port, 'new-device', encodeUpstream);
    let peak = before;
    let outcome = 'bootstrapped';
    for (;;) {
      await sleep(100);
      peak = Math.max(peak, server.rss());
      if (reader.messages.some((m) => m.type === 'synced')) break;
      const failure = reader.messages.find((m) => m.type === 'error');
      if (failure) {
        outcome = `failed: ${failure.code} after ${fmt((performance.now() - t0) / 1000, 1)} s`;
        break;
      }
      if (performance.now() - t0 > 120_000) {
        outcome = 'not done after 120 s';
        break;
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const largest = Math.max(0, ...reader.messages.map((m) => (m.type === 'snapshot' ? m.records.length : 0)));
    reader.ws.terminate();
    return [`a new device bootstraps ${quick ? 60 : 600} records of 900 KB (${fmt(reader.bytes / 1e6)} MB received)`, `${outcome} in ${fmt(seconds, 1)} s (${fmt((server.cpu() - cpu) / 1000, 1)} s CPU; largest chunk ${largest} records)`, `${fmt(before / 1e6)} → ${fmt(peak / 1e6)} MB`];
  } finally {
    server.stop();
  }
}

export async function run() {
  const rows = [await junk(), await slowReaders(), await bootstrap()];
  return `### Hardening probes against a \`syncline-server\` child (${BIN.includes('/tmp/') ? BIN : 'this build'})\n\n` + table(['probe', 'server CPU', 'server RSS (before → peak)'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

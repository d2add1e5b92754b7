// Scenario: hardening (issue 16). A `syncline-server` child with default settings, probed as an
// attacker would; its CPU time (from /proc) and resident memory are measured from outside.
//  - junk: frames of a million empty attachments sent before any hello (each refused and closed).
// SYNCLINE_SERVER_BIN=path/to/syncline-server.js measures another build (before and after).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
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

export async function run() {
  const rows = [await junk()];
  return `### Hardening probes against a \`syncline-server\` child (${BIN.includes('/tmp/') ? BIN : 'this build'})\n\n` + table(['probe', 'server CPU', 'server RSS (before → peak)'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

// Shared helpers for benchmarks: timing, medians, calendar-event records, table output,
// byte-counting sockets, bounded waits, state digests.
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { WebSocket } from 'ws';
import { canonicalJson } from '../packages/core/dist/internal.js';

export { event } from './records.mjs';

export async function measure(runs, fn) {
  const samples = [];
  for (let i = 0; i < runs; i++) samples.push(await fn(i));
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)], min: samples[0], max: samples[samples.length - 1], samples };
}

/**
 * Runs every system's `run(i)` `runs` times, alternating systems within each round so that a
 * noisy stretch of the machine hits all of them alike. A system whose run throws (a timeout, a
 * failed convergence check) is marked failed and not run again; the others go on.
 * Returns, per system name, { median, min, max, mid (the result at the median), results } of
 * `key`, or { error }. With `progress` (a label), prints one line per run on stderr.
 */
export async function compare(runs, allSystems, key, progress = '') {
  const systems = chosenSystems(allSystems);
  const results = new Map(systems.map((s) => [s.name, []]));
  const errors = new Map();
  for (let i = 0; i < runs; i++) {
    for (const system of systems) {
      if (errors.has(system.name)) continue;
      const started = performance.now();
      try {
        const result = await system.run(i);
        results.get(system.name).push(result);
        if (progress) console.error(`  ${progress} · ${system.name} · run ${i + 1}/${runs}: ${key} ${fmt(result[key], 3)} (${fmt((performance.now() - started) / 1000, 1)} s)`);
      } catch (error) {
        console.error(`${system.name} failed: ${error?.stack ?? error}`);
        errors.set(system.name, error?.message ?? String(error));
      }
    }
  }
  const out = new Map();
  for (const { name } of systems) {
    if (errors.has(name)) {
      out.set(name, { error: errors.get(name) });
      continue;
    }
    const sorted = results.get(name).sort((a, b) => a[key] - b[key]);
    const mid = sorted[Math.floor(sorted.length / 2)];
    out.set(name, { median: mid[key], min: sorted[0][key], max: sorted[sorted.length - 1][key], mid, results: sorted });
  }
  return out;
}

export function fmt(n, digits = 0) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function table(headers, rows) {
  const lines = [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

export const quick = process.argv.includes('--quick');
/** Runs per configuration: 3 (full mode; BENCH_RUNS overrides), 1 with --quick. */
export const RUNS = quick ? 1 : Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
/** BENCH_SYSTEMS=relay,yjs limits the scenarios that compare systems to those whose name contains one of the words. */
export function chosenSystems(systems) {
  const only = process.env.BENCH_SYSTEMS?.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  return only?.length ? systems.filter((s) => only.some((o) => s.name.toLowerCase().includes(o))) : systems;
}

function byteLength(data) {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (Array.isArray(data)) return data.reduce((n, part) => n + part.byteLength, 0); // ws fragments
  return data.byteLength ?? data.length ?? 0;
}

/**
 * A `ws` WebSocket class that counts the payload bytes it sends and receives into `counter`
 * ({ sent, received }; WebSocket framing not included) and stamps `counter.lastArrival`
 * (performance.now()) when a message arrives, before any listener the client adds later.
 */
export function countingSocket(counter) {
  return class CountingSocket extends WebSocket {
    constructor(url, protocols, options) {
      super(url, protocols, options);
      this.on('message', (data) => {
        counter.received += byteLength(data);
        counter.lastArrival = performance.now();
      });
    }
    send(data, ...rest) {
      counter.sent += byteLength(data);
      return super.send(data, ...rest);
    }
  };
}

/** A client of the bare relay at `port`: counts what it receives (`ws.received`, and bytes into `counter`). */
export function relayClient(port, counter) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.received = 0;
    ws.on('message', (data) => {
      ws.received++;
      counter.received += data.length;
    });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

export function newCounter() {
  return { sent: 0, received: 0, lastArrival: 0 };
}

/** Polls `check` every `everyMs` until it is true; throws after `timeoutMs`. */
export async function waitUntil(check, timeoutMs, what, everyMs = 50) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${fmt(timeoutMs / 1000)} s waiting for ${what}`);
}

/** A promise that rejects after `timeoutMs` unless `promise` settles first. */
export function within(promise, timeoutMs, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${fmt(timeoutMs / 1000)} s waiting for ${what}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free port on 127.0.0.1 (nothing listens on it once this resolves). */
export async function freePort() {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Digest of a record set given as [id, value] pairs in any order: count and SHA-256 of the sorted canonical JSON. */
export function digestEntries(entries) {
  const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const hash = createHash('sha256');
  for (const [id, value] of sorted) hash.update(`${id}\u0000${canonicalJson(value)}\u0001`);
  return `${sorted.length}:${hash.digest('hex')}`;
}

/** The raw JSON size of records 0..N-1, the yardstick for bytes on the wire. */
export function rawJsonBytes(N, makeEvent) {
  let bytes = 0;
  for (let i = 0; i < N; i++) bytes += JSON.stringify(makeEvent(i)).length;
  return bytes;
}

/** "median (min–max)" of a compare() entry, each value mapped by `f`. */
export function spread(m, f = (x) => fmt(x)) {
  return `${f(m.median)} (${f(m.min)}–${f(m.max)})`;
}

/**
 * Runs each of `systems` (name → async function resolving to ms) `runs` times in one process, the order
 * reversed every other run, with a GC before each (when exposed); returns name → the ms of each run.
 */
export async function interleaved(systems, runs) {
  const times = new Map(Object.keys(systems).map((name) => [name, []]));
  for (let run = 0; run < runs; run++) {
    const names = Object.keys(systems);
    if (run % 2 === 1) names.reverse();
    for (const name of names) {
      globalThis.gc?.();
      times.get(name).push(await systems[name]());
    }
  }
  return times;
}

/** A table of `times` (from interleaved): median ms (min–max), µs per one of `n` items, × the `baseline` system's median. */
export function timesTable(times, n, baseline, per, digits = 0) {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(times.get(baseline));
  return table(
    ['system', 'ms', `µs per ${per}`, `× ${baseline.split(' ')[0]}`],
    [...times].map(([name, xs]) => [name, `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})`, fmt((median(xs) * 1000) / n, 1), fmt(median(xs) / base, 2)]),
  );
}

// Local single writes (issue 21): N records written one at a time, each awaited, into Syncline's memory
// storage, beside Yjs (a Y.Map set per write, each its own transaction) and a plain Map of JSON strings
// (JSON.stringify + Map.set: the floor), in one process, the systems interleaved run by run.
// CLIENT_DIST points at another build of the client for A/B runs of the same scenario.
//
//   tsc -b && node bench/local-single.mjs [--writes 20000] [--runs 5]
import { parseArgs } from 'node:util';
import * as Y from 'yjs';
import { event, fmt, interleaved, timesTable } from './lib.mjs';

const { values } = parseArgs({ options: { writes: { type: 'string' }, runs: { type: 'string' } } });
const N = Number(values.writes ?? 20_000);
const RUNS = Number(values.runs ?? 5);
const dist = process.env.CLIENT_DIST ?? new URL('../packages/client/dist', import.meta.url).pathname;
const { createReplica, memoryStorage } = await import(`${dist}/index.js`);
const schema = { events: { indexes: { byStart: ['start'] } } };

const systems = {
  async Syncline() {
    const replica = await createReplica({ name: 'local', schema, storage: memoryStorage(), tabs: false });
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await replica.put('events', `e${i}`, event(i));
    const ms = performance.now() - t0;
    await replica.close();
    return ms;
  },
  async 'Yjs (Y.Map)'() {
    const doc = new Y.Doc();
    const map = doc.getMap('events');
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      map.set(`e${i}`, event(i));
      await undefined;
    }
    const ms = performance.now() - t0;
    doc.destroy();
    return ms;
  },
  async 'Map + JSON.stringify'() {
    const map = new Map();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      map.set(`e${i}`, JSON.stringify(event(i)));
      await undefined;
    }
    return performance.now() - t0;
  },
};

const times = await interleaved(systems, RUNS);
console.log(`${fmt(N)} single writes, each awaited; ms, median of ${RUNS} (min–max)`);
console.log(timesTable(times, N, 'Yjs (Y.Map)', 'write'));

// What a replica's collection at a horizon costs (issue 19): a space of 10,000 live records and
// 100 just deleted, and the `horizon` message that forgets the 100, applied by the replica as the
// sync engine applies it. Side by side in one run, on each storage: the storage's index of deleted
// records (StorageTx.collectible) and the scan of the space it replaced (the same storage with
// `collectible` hidden, which is what an adapter without it gets). Median of the runs, in ms.
//
//   node bench/collect-below.mjs [--records 10000] [--deleted 100] [--runs 15]
//
// Run after `tsc -b`.
import { parseArgs } from 'node:util';
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { createReplica, indexedDbStorage, memoryStorage } from '../packages/client/dist/index.js';
import { internalsOf } from '../packages/client/dist/replica.js';

const { values } = parseArgs({ options: { records: { type: 'string' }, deleted: { type: 'string' }, runs: { type: 'string' } } });
const RECORDS = Number(values.records ?? 10_000);
const DELETED = Number(values.deleted ?? 100);
const RUNS = Number(values.runs ?? 15);

/** The same storage, its transactions without `collectible`: the client scans the space. */
function scanning(factory) {
  return async (name) => {
    const storage = await factory(name);
    return {
      kind: storage.kind,
      close: () => storage.close(),
      transaction: (mode, fn) =>
        storage.transaction(mode, (tx) =>
          fn(new Proxy(tx, { get: (target, key) => (key === 'collectible' ? undefined : typeof target[key] === 'function' ? target[key].bind(target) : target[key]) })),
        ),
      set onVersionChange(f) {
        storage.onVersionChange = f;
      },
    };
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(label, factory) {
  const replica = await createReplica({ name: `collect-${label}`, schema: { events: {} }, storage: factory, tabs: false });
  const { port } = internalsOf(replica);
  await replica.batch((b) => {
    for (let i = 0; i < RECORDS; i++) b.put('events', `live${i}`, { i, title: `event ${i}` });
  });
  const times = [];
  for (let run = 0; run < RUNS; run++) {
    await replica.batch((b) => {
      for (let i = 0; i < DELETED; i++) b.put('events', `gone${run}-${i}`, { i });
    });
    await replica.batch((b) => {
      for (let i = 0; i < DELETED; i++) b.delete('events', `gone${run}-${i}`);
    });
    const horizon = replica.lastTimestamp;
    const started = performance.now();
    await port.horizon(replica.defaultSpace, horizon, 0);
    times.push(performance.now() - started);
    const { tombstones } = await replica.stats();
    if (tombstones !== 0) throw new Error(`${label}: ${tombstones} tombstones left after the horizon`);
  }
  await replica.close();
  return median(times);
}

const rows = [];
for (const [kind, make] of [
  ['memory', () => memoryStorage()],
  ['IndexedDB (fake-indexeddb)', () => indexedDbStorage({ indexedDB: new IDBFactory(), IDBKeyRange })],
]) {
  // Interleaved: the scan, then the index, on fresh databases of the same content.
  const scan = await measure(`${kind}-scan`, scanning(make()));
  const index = await measure(`${kind}-index`, make());
  rows.push({ kind, scan, index });
}
console.log(`collect below a horizon (${new Date().toISOString()}): ${RECORDS} live records, ${DELETED} deleted, median of ${RUNS} runs`);
for (const { kind, scan, index } of rows) console.log(`  ${kind}: scan ${scan.toFixed(2)} ms, index ${index.toFixed(2)} ms (${(index / scan).toFixed(3)}x)`);

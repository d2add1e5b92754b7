// Scenario: local writes. Syncline single and batched writes on memory and IndexedDB
// storage, beside raw `idb` puts of the same records in the same run (fake-indexeddb in Node).
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { openDB } from 'idb';
import { createReplica, indexedDbStorage, memoryStorage } from '../packages/client/dist/index.js';
import { event, fmt, measure, quick, table } from './lib.mjs';

const N = quick ? 2_000 : 10_000;
const BATCH = 1_000;
const SINGLE = quick ? 200 : 1_000;
const RUNS = quick ? 1 : 3;
const schema = { events: { indexes: { byStart: ['start'], byCalendar: ['calendar', 'start'] } } };

async function rawIdb(batched) {
  globalThis.indexedDB = new IDBFactory();
  const db = await openDB('raw', 1, {
    upgrade(d) {
      const s = d.createObjectStore('records', { keyPath: ['collection', 'id'] });
      s.createIndex('byStart', 'value.start');
      s.createIndex('byCalendar', ['value.calendar', 'value.start']);
    },
  });
  const n = batched ? N : SINGLE;
  const t0 = performance.now();
  if (batched) {
    for (let b = 0; b < n; b += BATCH) {
      const tx = db.transaction('records', 'readwrite');
      for (let i = b; i < b + BATCH; i++) void tx.store.put({ collection: 'events', id: `e${i}`, value: event(i) });
      await tx.done;
    }
  } else {
    for (let i = 0; i < n; i++) await db.put('records', { collection: 'events', id: `e${i}`, value: event(i) });
  }
  const ms = performance.now() - t0;
  db.close();
  return (n / ms) * 1000;
}

async function syncline(storageKind, batched) {
  const storage = storageKind === 'memory' ? memoryStorage() : indexedDbStorage({ indexedDB: new IDBFactory() });
  const replica = await createReplica({ name: 'bench', schema, storage, tabs: false });
  const n = batched ? N : SINGLE;
  const t0 = performance.now();
  if (batched) {
    for (let b = 0; b < n; b += BATCH) {
      await replica.batch((w) => {
        for (let i = b; i < b + BATCH; i++) w.put('events', `e${i}`, event(i));
      });
    }
  } else {
    for (let i = 0; i < n; i++) await replica.put('events', `e${i}`, event(i));
  }
  const ms = performance.now() - t0;
  await replica.close();
  return (n / ms) * 1000;
}

export async function run() {
  const rows = [];
  for (const batched of [false, true]) {
    const raw = await measure(RUNS, () => rawIdb(batched));
    const idb = await measure(RUNS, () => syncline('indexeddb', batched));
    const mem = await measure(RUNS, () => syncline('memory', batched));
    const mode = batched ? `batches of ${fmt(BATCH)}` : 'single writes';
    const cell = (m) => `${fmt(m.median)} (${fmt(m.min)}–${fmt(m.max)})`;
    rows.push([mode, 'raw idb puts (baseline)', cell(raw), '1.00']);
    rows.push([mode, 'Syncline, IndexedDB', cell(idb), fmt(raw.median / idb.median, 2)]);
    rows.push([mode, 'Syncline, memory', cell(mem), fmt(raw.median / mem.median, 2)]);
  }
  return `### Local writes (${fmt(N)} records batched, ${fmt(SINGLE)} single; fake-indexeddb ${'in Node'}; median of ${RUNS} (min–max))\n\n` +
    table(['mode', 'writer', 'writes/s median (min–max)', 'time vs raw idb (×)'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());

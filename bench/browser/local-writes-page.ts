// Browser page of the local-writes scenario (bench/browser-local-writes.mjs builds, serves and drives it).
// Same work as bench/local-writes.mjs, on the browser's own IndexedDB: raw `idb` puts, Syncline on
// indexedDbStorage() and Syncline on memoryStorage(); single writes and batches of 1,000.
// Query string: ?quick=1 for a short pass. Results land on window.__results, a failure on window.__error.
import { openDB } from 'idb';
import { createReplica, indexedDbStorage, memoryStorage } from '../../packages/client/dist/index.js';
import { event } from '../records.mjs';
import { deleteDatabase, freshName, log } from './page-lib.js';

export type Writer = 'raw' | 'indexeddb' | 'memory';

export interface Measurement {
  readonly batched: boolean;
  readonly writer: Writer;
  readonly records: number;
  /** writes per second, one per run */
  readonly samples: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface PageResults {
  readonly batch: number;
  readonly batchedRecords: number;
  readonly singleRecords: number;
  readonly runs: number;
  readonly userAgent: string;
  readonly crossOriginIsolated: boolean;
  readonly measurements: readonly Measurement[];
}

const quick = new URLSearchParams(location.search).get('quick') === '1';
const N = quick ? 2_000 : 10_000;
const BATCH = 1_000;
const SINGLE = quick ? 200 : 1_000;
const RUNS = quick ? 1 : 3;
const schema = { events: { indexes: { byStart: ['start'], byCalendar: ['calendar', 'start'] } } };

async function rawIdb(batched: boolean): Promise<number> {
  const name = freshName('raw');
  const db = await openDB(name, 1, {
    upgrade(d) {
      const s = d.createObjectStore('records', { keyPath: ['collection', 'id'] });
      s.createIndex('byStart', 'value.start');
      s.createIndex('byCalendar', ['value.calendar', 'value.start']);
    },
  });
  const n = batched ? N : SINGLE;
  let ms: number;
  try {
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
    ms = performance.now() - t0;
  } finally {
    db.close();
    await deleteDatabase(name);
  }
  return (n / ms) * 1000;
}

async function syncline(storageKind: 'indexeddb' | 'memory', batched: boolean): Promise<number> {
  const name = freshName(`syncline-${storageKind}`);
  const storage = storageKind === 'memory' ? memoryStorage() : indexedDbStorage();
  const replica = await createReplica({ name, schema, storage, tabs: false });
  const n = batched ? N : SINGLE;
  let ms: number;
  try {
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
    ms = performance.now() - t0;
  } finally {
    await replica.close();
    // indexedDbStorage names its database `syncline:<replica name>`.
    if (storageKind === 'indexeddb') await deleteDatabase(`syncline:${name}`);
  }
  return (n / ms) * 1000;
}

async function measure(batched: boolean, writer: Writer, fn: () => Promise<number>): Promise<Measurement> {
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const perSecond = await fn();
    samples.push(perSecond);
    log(`${batched ? 'batched' : 'single'} ${writer} run ${run + 1}/${RUNS}: ${Math.round(perSecond)} writes/s`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    batched,
    writer,
    records: batched ? N : SINGLE,
    samples,
    median: sorted[Math.floor(sorted.length / 2)] ?? NaN,
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

async function main(): Promise<void> {
  const measurements: Measurement[] = [];
  for (const batched of [false, true]) {
    measurements.push(await measure(batched, 'raw', () => rawIdb(batched)));
    measurements.push(await measure(batched, 'indexeddb', () => syncline('indexeddb', batched)));
    measurements.push(await measure(batched, 'memory', () => syncline('memory', batched)));
  }
  const results: PageResults = {
    batch: BATCH,
    batchedRecords: N,
    singleRecords: SINGLE,
    runs: RUNS,
    userAgent: navigator.userAgent,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    measurements,
  };
  window.__results = results;
  log('done');
}

main().catch((error: unknown) => {
  window.__error = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}` : String(error);
  log(`failed: ${window.__error}`);
});

// Browser page of the bootstrap scenario (bench/browser-bootstrap.mjs seeds a server, builds, serves and
// drives it). Per run, in turn: a fresh Syncline replica on the browser's own IndexedDB syncs a space the
// server holds N records of, until it holds all N (count() answers N and sync says synced); and raw `idb`
// puts the same N records into a fresh database, 2,000 per transaction (the server's snapshot chunk).
// Then count() on the bootstrapped replica: of the whole collection, and of the collection in the space.
// Query string: ws (the sync URL), space, n, runs. Results land on window.__results, a failure on window.__error.
import { openDB } from 'idb';
import { createReplica, indexedDbStorage } from '../../packages/client/dist/index.js';
import { event } from '../records.mjs';
import { deleteDatabase, freshName, log } from './page-lib.js';

/** What the page reports (window.__results). */
interface BootstrapResults {
  readonly n: number;
  readonly runs: ReadonlyArray<{ syncline: number; count: number; spaceCount: number; raw: number }>;
  readonly userAgent: string;
}

const params = new URLSearchParams(location.search);
const URL_ = params.get('ws') as string;
const SPACE = params.get('space') as string;
const N = Number(params.get('n'));
const RUNS = Number(params.get('runs') ?? 3);
const CHUNK = 2_000;
async function syncline(): Promise<{ ms: number; countMs: number; spaceCountMs: number }> {
  const name = freshName('replica');
  const replica = await createReplica({ name, schema: { events: {} }, storage: indexedDbStorage(), tabs: false, sync: { url: URL_, spaces: [SPACE] } });
  const t0 = performance.now();
  try {
    await replica.sync?.waitFor((s) => s.state === 'synced' && s.bootstrap === undefined, 180_000);
    const ms = performance.now() - t0;
    // count() of the whole collection, and of the collection in one space.
    const c0 = performance.now();
    const n = await replica.count({ collection: 'events' });
    const countMs = performance.now() - c0;
    const c1 = performance.now();
    const inSpace = await replica.count({ collection: 'events', space: SPACE });
    const spaceCountMs = performance.now() - c1;
    if (n !== N || inSpace !== N) throw new Error(`the replica holds ${n} records (${inSpace} in the space), not ${N}`);
    return { ms, countMs, spaceCountMs };
  } finally {
    await replica.close();
    await deleteDatabase(`syncline:${name}`, 30_000);
  }
}

async function rawIdb(): Promise<number> {
  const name = freshName('raw');
  const db = await openDB(name, 1, {
    upgrade(d) {
      d.createObjectStore('records', { keyPath: ['collection', 'id', 'space'] });
    },
  });
  try {
    const t0 = performance.now();
    for (let b = 0; b < N; b += CHUNK) {
      const tx = db.transaction('records', 'readwrite');
      for (let i = b; i < Math.min(N, b + CHUNK); i++) void tx.store.put({ collection: 'events', id: `e${i}`, space: SPACE, value: event(i) });
      await tx.done;
    }
    return performance.now() - t0;
  } finally {
    db.close();
    await deleteDatabase(name);
  }
}

async function main(): Promise<void> {
  const runs: Array<{ syncline: number; count: number; spaceCount: number; raw: number }> = [];
  for (let run = 0; run < RUNS; run++) {
    // Alternating which goes first, so that neither always meets a warmer (or fuller) disk.
    let s: { ms: number; countMs: number; spaceCountMs: number };
    let raw: number;
    if (run % 2 === 0) {
      s = await syncline();
      raw = await rawIdb();
    } else {
      raw = await rawIdb();
      s = await syncline();
    }
    log(`run ${run + 1}: Syncline ${s.ms.toFixed(0)} ms (count ${s.countMs.toFixed(1)} ms, in the space ${s.spaceCountMs.toFixed(0)} ms), raw idb ${raw.toFixed(0)} ms`);
    runs.push({ syncline: s.ms, count: s.countMs, spaceCount: s.spaceCountMs, raw });
  }
  const results: BootstrapResults = { n: N, runs, userAgent: navigator.userAgent };
  window.__results = results;
}

main().catch((error: unknown) => {
  window.__error = error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
});

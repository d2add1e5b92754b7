/**
 * The browser side of test/e2e/churn.test.ts, bundled by esbuild: a replica on
 * Chromium's own IndexedDB, synced with the server that serves this page, and
 * the churn loop (create one record, delete the one created `workingSet`
 * cycles earlier), one write at a time as apps write.
 */
import { createReplica, type Replica, type ReplicaStats } from '@syncline/client';

const schema = { events: {} } as const;
let replica: Replica<typeof schema> | undefined;

async function open(): Promise<void> {
  replica = await createReplica({ name: 'churn', schema, tabs: false, sync: { url: `ws://${location.host}/sync` } });
}

/** Cycles `from` to `to` - 1, then waits until the server holds every change; resolves to the replica's stats. */
async function run(from: number, to: number, workingSet: number): Promise<ReplicaStats> {
  const r = replica as Replica<typeof schema>;
  for (let i = from; i < to; i++) {
    await r.put('events', `e${i}`, { i, title: `event ${i}`, at: 1_700_000_000_000 + i * 60_000 });
    if (i >= workingSet) await r.delete('events', `e${i - workingSet}`);
  }
  await r.sync?.flushed({ timeoutMs: 60_000 });
  return r.stats();
}

const stats = (): Promise<ReplicaStats> => (replica as Replica<typeof schema>).stats();

Object.assign(globalThis, { churn: { open, run, stats } });

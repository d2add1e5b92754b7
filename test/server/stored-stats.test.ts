/**
 * What is stored, as an operator and an app see it (issue 19, "sizes that show
 * it"): the server's `syncline_stored_*` gauges at /metrics and a replica's
 * `stats()`, on IndexedDB and in memory, with the tombstones deletes leave.
 * Garbage collection will make these go down; today they show the growth.
 */
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';
import { indexedDbStorage, memoryStorage } from '@syncline/client';
import { createSyncServer, sqliteStorage } from '@syncline/server';
import { cleanupStack, freePort, isSynced, replica, silent, sync, uniqueName, waitUntil } from '../sync/harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {}, notes: { policy: 'merge' } } as const;

/** The value of one gauge in Prometheus text (the line `name value`). */
function gauge(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('stored sizes', () => {
  it('the server reports records, tombstones, record bytes and log entries at /metrics, read at each scrape', async () => {
    const server = createSyncServer({ port: await freePort(), storage: sqliteStorage({ path: ':memory:' }), logger: silent });
    await server.listen();
    cleanup.push(() => server.close());
    const r = await replica({ name: uniqueName('stats'), schema });
    const engine = sync(r, server.url, { spaces: ['team'] });
    cleanup.push(() => engine.close(), () => r.close());
    for (let i = 0; i < 10; i++) await r.put('events', `e${i}`, { i, title: `event ${i}` }, { space: 'team' });
    for (let i = 0; i < 4; i++) await r.delete('events', `e${i}`, { space: 'team' });
    await r.put('notes', 'n0', { body: 'x' }, { space: 'team' });
    await waitUntil(() => isSynced(engine), 10_000, 'the replica to sync');

    const scrape = async () => (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    let text = await scrape();
    expect(gauge(text, 'syncline_stored_records')).toBe(7);
    expect(gauge(text, 'syncline_stored_tombstones')).toBe(4);
    expect(gauge(text, 'syncline_stored_log_entries')).toBe(15);
    const stats = await server.storage.stats();
    expect(stats).toMatchObject({ spaces: 1, records: 7, tombstones: 4, logEntries: 15 });
    expect(gauge(text, 'syncline_stored_record_bytes')).toBe(stats.recordBytes);
    expect(stats.recordBytes).toBeGreaterThan(0);

    // Compaction removes log entries; the tombstones stay (what garbage collection is for).
    await server.compact(0);
    text = await scrape();
    expect(gauge(text, 'syncline_stored_log_entries')).toBe(0);
    expect(gauge(text, 'syncline_stored_tombstones')).toBe(4);
  });

  for (const backend of ['indexeddb', 'memory'] as const) {
    it(`a replica's stats() on ${backend}: records, tombstones, state bytes and pending changes, in one space or all`, async () => {
      const storage = backend === 'memory' ? memoryStorage() : indexedDbStorage({ indexedDB: new IDBFactory(), IDBKeyRange });
      const r = await replica({ name: uniqueName('stats'), schema, storage });
      cleanup.push(() => r.close());
      expect(await r.stats()).toEqual({ records: 0, tombstones: 0, stateBytes: 0, pending: 0 });
      for (let i = 0; i < 5; i++) await r.put('events', `e${i}`, { i }, { space: 'a' });
      await r.delete('events', 'e0', { space: 'a' });
      await r.delete('events', 'e1', { space: 'a' });
      await r.put('notes', 'n0', { body: 'x' }, { space: 'b' });
      await r.delete('notes', 'n0', { space: 'b' });

      const all = await r.stats();
      expect(all).toMatchObject({ records: 3, tombstones: 3, pending: 9 });
      const a = await r.stats({ space: 'a' });
      const b = await r.stats({ space: 'b' });
      expect(a).toMatchObject({ records: 3, tombstones: 2, pending: 7 });
      expect(b).toMatchObject({ records: 0, tombstones: 1, pending: 2 });
      expect(a.stateBytes).toBeGreaterThan(0);
      expect(a.stateBytes + b.stateBytes).toBe(all.stateBytes);
    });
  }
});

/**
 * A server closed and reopened on the same SQLite file in the middle of a push
 * load: nothing acknowledged is lost, nothing is stored twice, and clients resume
 * from their log position: after the restart no snapshot is sent and a reader
 * receives exactly the changes after the position it said it had.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SpaceId } from '@syncline/core/internal';
import { sqliteStorage } from '@syncline/server';
import { cleanupStack, counter, countOf, isSynced, outboxCount, recordingSocket, replica, startServer, sync, tempDir, uniqueName, waitUntil } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;

describe('server restart on the same SQLite file', () => {
  it('loses nothing acknowledged and resumes clients from their position', async () => {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const path = join(dir.path, 'x.db');
    const server1 = await startServer({ storage: sqliteStorage({ path }) });
    cleanup.push(() => server1.close()); // idempotent

    const a = await replica({ name: uniqueName('restart-writer'), schema });
    const b = await replica({ name: uniqueName('restart-reader'), schema });
    cleanup.push(() => a.close(), () => b.close());
    const space = a.defaultSpace as SpaceId;
    // The server is closed from inside A's socket handler when the first ack past
    // seq 150 arrives: the load is then certainly still under way.
    let closing: Promise<void> | undefined;
    const recA = recordingSocket((message) => {
      if (message.type === 'ack' && message.upTo > 150) closing ??= server1.close();
    });
    const recB = recordingSocket();
    const sa = sync(a, server1.url, { WebSocket: recA.factory, batchSize: 20 });
    const sb = sync(b, server1.url, { WebSocket: recB.factory });
    cleanup.push(() => sa.close(), () => sb.close());

    // Phase 1: 100 events reach the reader.
    await a.batch((w) => {
      for (let i = 0; i < 100; i++) w.put('events', `e${i}`, { n: i });
    });
    await waitUntil(async () => isSynced(sa) && isSynced(sb) && (await countOf(b, 'events')) === 100, 10_000, 'the first 100 events to reach B');

    // Phase 2: a push load, and the server closes in the middle of it.
    const writing = (async () => {
      for (let batch = 0; batch < 30; batch++) {
        await a.batch((w) => {
          for (let j = 0; j < 10; j++) w.put('events', `e${100 + batch * 10 + j}`, { n: 100 + batch * 10 + j });
        });
      }
    })();
    await waitUntil(() => closing !== undefined, 10_000, 'the push load to pass seq 150');
    await closing;
    await writing;
    // What A saw acknowledged before the restart, and what B had been sent.
    const acked = Math.max(0, ...recA.of('ack').map((m) => m.upTo));
    expect(acked).toBeGreaterThanOrEqual(100);
    await waitUntil(() => sa.status.state === 'offline' && sb.status.state === 'offline', 5_000, 'both engines offline');
    // Sockets opened from now on can only reach the new server.
    const [markA, markB] = [recA.sockets.length, recB.sockets.length];
    expect(await outboxCount(a, space)).toBeGreaterThan(0); // the restart really was mid-load

    // Reopen on the same file and port: the engines reconnect by themselves.
    const server2 = await startServer({ port: server1.port, storage: sqliteStorage({ path }) });
    cleanup.push(() => server2.close());
    const log = await server2.storage.readLog(space, 0, 10_000);
    const held = new Set(log.map((e) => e.change.seq));
    for (let seq = 1; seq <= acked; seq++) expect(held.has(seq), `acknowledged seq ${seq} survives the restart`).toBe(true);

    await waitUntil(async () => isSynced(sa) && isSynced(sb) && (await countOf(b, 'events')) === 400, 15_000, 'all 400 events to reach B after the restart');
    const head = await server2.storage.head(space);
    expect(head).toBe(400); // every change stored exactly once (re-pushed ones were acknowledged again, not duplicated)
    const full = await server2.storage.readLog(space, 0, 10_000);
    expect(full.map((e) => e.change.seq)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect((await b.get('events', 'e399'))?.value).toEqual({ n: 399 });

    // Resumption: each engine said where it was, and got only what came after.
    const hellosA = recA.sent.filter((s) => s.socket >= markA && s.message.type === 'hello').map((s) => s.message);
    const hellosB = recB.sent.filter((s) => s.socket >= markB && s.message.type === 'hello').map((s) => s.message);
    expect([hellosA.length, hellosB.length]).toEqual([1, 1]); // one reconnection each
    const [helloA, helloB] = [hellosA[0], hellosB[0]];
    if (helloA?.type !== 'hello' || helloB?.type !== 'hello') throw new Error('no hello after the restart');
    const afterB = helloB.spaces[0]?.after ?? 0;
    expect(afterB).toBeGreaterThanOrEqual(100);
    // The writer knows its own position too: it was sent the log, minus its own changes.
    expect(helloA.spaces[0]?.after ?? 0).toBeGreaterThanOrEqual(100);
    expect(recA.of('snapshot', markA)).toEqual([]);
    expect(recB.of('snapshot', markB)).toEqual([]);
    expect(await counter(server2.metrics.snapshots)).toBe(0);
    const changesToB = recB.of('changes', markB).reduce((n, m) => n + m.changes.length, 0);
    expect(changesToB).toBe(head - afterB);
    expect(await counter(server2.metrics.changesRelayed)).toBe(head - afterB);
    // A is never sent its own changes.
    expect(recA.of('changes').flatMap((m) => m.changes).filter((c) => c.replica === a.id)).toEqual([]);
  });
});

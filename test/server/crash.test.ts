/**
 * Guarantee 2 against a server crash: the server runs in a child process and is
 * killed with SIGKILL in the middle of a push load. Every change the client was
 * told was stored (every `ack` it received) must be in the SQLite log, with its
 * record, when a server reopens the file; and the client's unacknowledged
 * changes still arrive afterwards, each stored once.
 */
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { materialize, type SpaceId } from '@syncline/core/internal';
import { sqliteStorage } from '@syncline/server';
import { cleanupStack, isSynced, outboxCount, recordingSocket, replica, startServer, sync, tempDir, uniqueName, waitUntil } from '../sync/harness.js';
import { buildDist, ROOT } from './fixtures/build.js';
import { spawnServer } from './fixtures/child.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());
beforeAll(() => buildDist(), 120_000);

const schema = { events: {} } as const;

describe('server killed with SIGKILL during a push load', () => {
  it('keeps every acknowledged change', async () => {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const path = join(dir.path, 'x.db');
    const child = await spawnServer([join(ROOT, 'test/server/fixtures/server-process.mjs'), path, '20']);
    cleanup.push(() => child.process.kill('SIGKILL'));

    const r = await replica({ name: uniqueName('crash-client'), schema });
    cleanup.push(() => r.close());
    const space = r.defaultSpace as SpaceId;
    // Killed from inside the socket's message handler, the instant an ack past 500
    // arrives: if an ack ever went out before its commit, the commit dies with it.
    let killed = false;
    const rec = recordingSocket((message) => {
      if (!killed && message.type === 'ack' && message.upTo >= 500) {
        killed = true;
        child.process.kill('SIGKILL');
      }
    });
    const engine = sync(r, `ws://127.0.0.1:${child.port}/sync`, { WebSocket: rec.factory, batchSize: 25 });
    cleanup.push(() => engine.close());

    // The load: one change per record, record c<n> written by seq n+1, value n.
    let written = 0;
    let stop = false;
    const load = (async () => {
      while (!stop && written < 20_000) {
        await r.batch((w) => {
          for (let j = 0; j < 10; j++) w.put('events', `c${written + j}`, { n: written + j, pad: 'x'.repeat(100) });
        });
        written += 10;
        // Let the engine's socket work between local transactions.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const maxAck = (): number => Math.max(0, ...rec.of('ack').map((m) => m.upTo));
    await waitUntil(() => killed, 20_000, 'the server to acknowledge 500 changes');
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGKILL');
    stop = true;
    await load;
    await waitUntil(() => engine.status.state !== 'synced' && engine.status.state !== 'syncing', 5_000, 'the engine to notice');
    engine.close();

    const acked = maxAck(); // includes acks still in flight when the process died: those were sent, so stored
    const pending = await outboxCount(r, space);
    expect(pending).toBeGreaterThan(0); // the kill landed mid-load
    expect(written - pending).toBeGreaterThanOrEqual(acked);

    // Reopen the file in a new server: every acknowledged change is there, in order, with its record.
    const server = await startServer({ storage: sqliteStorage({ path }) });
    cleanup.push(() => server.close());
    const head = await server.storage.head(space);
    expect(head).toBeGreaterThanOrEqual(acked);
    const log = await server.storage.readLog(space, 0, 100_000);
    expect(log.map((e) => e.pos)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(log.map((e) => e.change.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(log.every((e) => e.change.replica === r.id)).toBe(true);
    const records = await server.storage.snapshotPage(space, undefined, 100_000);
    expect(records).toHaveLength(head);
    const values = new Map(records.map((rec) => [rec.id, materialize(rec.state).value]));
    for (let seq = 1; seq <= acked; seq++) expect(values.get(`c${seq - 1}`)?.['n'], `record of acknowledged seq ${seq}`).toBe(seq - 1);

    // The client reconnects: what was not acknowledged arrives now, each change once.
    const again = sync(r, server.url, { batchSize: 200 });
    cleanup.push(() => again.close());
    await waitUntil(() => isSynced(again), 20_000, 'the client to push the rest');
    expect(await server.storage.head(space)).toBe(written);
    expect(await server.storage.countRecords(space)).toBe(written);
  });
});

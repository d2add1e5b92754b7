// @vitest-environment happy-dom
/**
 * useSyncStatus: undefined without sync; with a real sync server (port 0, SQLite
 * in memory, `ws` sockets) it follows the engine to `synced`, through a local
 * write's pending change and back to synced when the server acknowledged it.
 */
import { cleanup, waitFor } from '@testing-library/react';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { createReplica, memoryStorage, type Replica, type SocketFactory } from '@syncline/client';
import { createSyncServer, sqliteStorage, type SyncServer } from '@syncline/server';
import { useSyncStatus } from '@syncline/react';
import { memoryReplica, Renders, renderWith, schema, uniqueName } from './helpers.js';

const WAIT = { timeout: 10_000 };
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  cleanup();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function Status({ renders }: { renders?: Renders }) {
  renders?.tick();
  const status = useSyncStatus();
  return <p data-testid="status">{status ? `${status.state}:${status.pending}` : 'no sync'}</p>;
}

async function startServer(): Promise<SyncServer> {
  const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: pino({ level: 'silent' }) });
  await server.listen();
  cleanups.push(() => server.close());
  return server;
}

async function syncedReplica(server: SyncServer): Promise<Replica> {
  const replica = await createReplica({
    name: uniqueName('status'),
    schema,
    storage: memoryStorage(),
    tabs: false,
    sync: { url: server.url, WebSocket: WebSocket as unknown as SocketFactory, backoff: { initialMs: 20, maxMs: 200 } },
  });
  cleanups.push(() => replica.close());
  return replica;
}

describe('useSyncStatus', () => {
  it('is undefined for a replica without sync', async () => {
    const replica = await memoryReplica('nosync');
    cleanups.push(() => replica.close());
    const view = renderWith(replica, <Status />);
    expect(view.getByTestId('status').textContent).toBe('no sync');
  });

  it('follows the sync engine to synced, through a pending write and back', async () => {
    const server = await startServer();
    const replica = await syncedReplica(server);
    // Status events that changed something (the engine may repeat a status).
    let changes = 0;
    let last = JSON.stringify(replica.sync?.status);
    const offAll = replica.sync?.onStatus((s) => {
      if (JSON.stringify(s) !== last) changes++;
      last = JSON.stringify(s);
    });
    cleanups.push(() => offAll?.());
    const renders = new Renders();
    const view = renderWith(replica, <Status renders={renders} />);
    const status = () => view.getByTestId('status').textContent;
    await waitFor(() => expect(status()).toBe('synced:0'), WAIT);

    const seen: string[] = [];
    const off = replica.sync?.onStatus((s) => seen.push(`${s.state}:${s.pending}`));
    cleanups.push(() => off?.());
    await replica.put('notes', 'n1', { title: 'pushed', rank: 1 });
    await waitFor(() => expect(seen).toContain('syncing:1'), WAIT);
    await waitFor(() => expect(status()).toBe('synced:0'), WAIT);
    // The server has the change: a second replica receives it.
    const other = await syncedReplica(server);
    await waitFor(async () => expect(await other.get('notes', 'n1')).toMatchObject({ value: { title: 'pushed' } }), WAIT);
    // The first render, then at most one per status that changed.
    expect(renders.count).toBeLessThanOrEqual(1 + changes);
  });
});

// @vitest-environment happy-dom
/**
 * usePresence with a real sync server (port 0, SQLite in memory, `ws` sockets):
 * a component on one device shows who else is in the space and what each says,
 * follows their updates and departures, and sets its own device's state.
 */
import { act, cleanup, fireEvent, waitFor } from '@testing-library/react';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { createReplica, memoryStorage, type Replica, type SocketFactory } from '@syncline/client';
import { createSyncServer, sqliteStorage, type SyncServer } from '@syncline/server';
import { usePresence } from '@syncline/react';
import { renderWith, schema, uniqueName } from './helpers.js';

const WAIT = { timeout: 10_000 };
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  cleanup();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function startServer(): Promise<SyncServer> {
  const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: pino({ level: 'silent' }) });
  await server.listen();
  cleanups.push(() => server.close());
  return server;
}

async function device(server: SyncServer): Promise<Replica> {
  const replica = await createReplica({
    name: uniqueName('presence'),
    schema,
    storage: memoryStorage(),
    tabs: false,
    sync: { url: server.url, WebSocket: WebSocket as unknown as SocketFactory, backoff: { initialMs: 20, maxMs: 200 } },
  });
  cleanups.push(() => replica.close());
  await replica.sync?.waitFor((s) => s.state === 'synced', 10_000);
  return replica;
}

function Who() {
  const { peers, set } = usePresence();
  return (
    <div>
      <p data-testid="who">{peers.map((p) => String((p.state as { name?: string }).name)).join(',') || 'nobody'}</p>
      <button onClick={() => set({ name: 'Bea' })}>Join</button>
    </div>
  );
}

describe('usePresence', () => {
  it("shows the others' states live and sets this device's", async () => {
    const server = await startServer();
    const [a, b] = [await device(server), await device(server)];
    const view = renderWith(b, <Who />);
    const who = () => view.getByTestId('who').textContent;
    expect(who()).toBe('nobody');

    act(() => a.presence.set({ name: 'Ann' }));
    await waitFor(() => expect(who()).toBe('Ann'), WAIT);
    act(() => a.presence.set({ name: 'Anna' }));
    await waitFor(() => expect(who()).toBe('Anna'), WAIT);

    const seenByA: string[] = [];
    cleanups.push(a.presence.subscribe((peers) => seenByA.push(peers.map((p) => String((p.state as { name?: string }).name)).join(','))));
    fireEvent.click(view.getByText('Join'));
    await waitFor(() => expect(seenByA.at(-1)).toBe('Bea'), WAIT);

    await act(() => a.close());
    await waitFor(() => expect(who()).toBe('nobody'), WAIT);
  });
});

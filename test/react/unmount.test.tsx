// @vitest-environment happy-dom
/**
 * Unmounting a component releases everything its hooks held (live queries,
 * commit listeners, status listeners), and later writes reach none of them.
 * Strict Mode's mount / unmount / mount leaves exactly one of each.
 */
import { StrictMode } from 'react';
import { cleanup, render, waitFor } from '@testing-library/react';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Row } from '@syncline/client';
import { createReplica, memoryStorage, type Replica, type SocketFactory } from '@syncline/client';
import { createSyncServer, sqliteStorage } from '@syncline/server';
import { SynclineProvider, useConflicts, useQuery, useRecord, useSyncStatus } from '@syncline/react';
import { holdings, memoryReplica, Renders, renderWith, schema, uniqueName } from './helpers.js';

const WAIT = { timeout: 10_000 };
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  cleanup();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function Everything({ renders }: { renders: Renders }) {
  renders.tick();
  const { rows } = useQuery({ collection: 'notes', index: 'byRank' });
  const { row } = useRecord('notes', 'n1');
  const siblings = useConflicts('docs', 'd1');
  const status = useSyncStatus();
  return <p data-testid="everything">{`${rows.length}|${String(row?.value['title'] ?? '-')}|${siblings.length}|${status?.state ?? '-'}`}</p>;
}

/** Resolves once the replica's live queries ran past a write: a query of the test's own sees `test` pass. */
function seen(replica: Replica, test: (rows: Row[]) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const off = replica.subscribe({ collection: 'notes', index: 'byRank' }, (rows) => {
      if (!test(rows)) return;
      off();
      resolve();
    });
  });
}

describe('unmount', () => {
  it('releases every subscription, and later writes call back no hook', async () => {
    const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: pino({ level: 'silent' }) });
    await server.listen();
    cleanups.push(() => server.close());
    const replica = await createReplica({
      name: uniqueName('unmount'),
      schema,
      storage: memoryStorage(),
      tabs: false,
      sync: { url: server.url, WebSocket: WebSocket as unknown as SocketFactory, backoff: { initialMs: 20, maxMs: 200 } },
    });
    cleanups.push(() => replica.close());
    const held = holdings(replica);
    await replica.put('notes', 'n1', { title: 'one', rank: 1 });

    const renders = new Renders();
    const view = renderWith(replica, <Everything renders={renders} />);
    await waitFor(() => expect(view.getByTestId('everything').textContent).toBe('1|one|0|synced'), WAIT);
    expect(held).toMatchObject({ queries: 1, commitListeners: 2, statusListeners: 1 });

    view.unmount();
    expect(held).toMatchObject({ queries: 0, commitListeners: 0, statusListeners: 0 });
    const callbacks = held.callbacks;
    const rendered = renders.count;

    // Barriers of the test's own: a live query past the writes, and the statuses up to synced again.
    held.counting = false;
    const after = seen(replica, (rows) => rows.length === 2);
    const statuses: string[] = [];
    cleanups.push(replica.sync?.onStatus((s) => statuses.push(`${s.state}:${s.pending}`)) ?? (() => undefined));
    await replica.put('notes', 'n2', { title: 'two', rank: 2 });
    await replica.patch('notes', 'n1', { title: 'changed' });
    await replica.put('docs', 'd1', { title: 'doc' });
    await after;
    await waitFor(() => expect(statuses.some((s) => !s.endsWith(':0')) && statuses.at(-1) === 'synced:0').toBe(true), WAIT);
    expect(held.callbacks).toBe(callbacks);
    expect(renders.count).toBe(rendered);
  });

  it('holds exactly one subscription per hook under Strict Mode', async () => {
    const replica = await memoryReplica('strict');
    cleanups.push(() => replica.close());
    const held = holdings(replica);
    await replica.put('notes', 'n1', { title: 'one', rank: 1 });
    const renders = new Renders();
    const view = render(
      <StrictMode>
        <SynclineProvider replica={replica}>
          <Everything renders={renders} />
        </SynclineProvider>
      </StrictMode>,
    );
    const text = () => view.getByTestId('everything').textContent;
    await waitFor(() => expect(text()).toBe('1|one|0|-'), WAIT);
    expect(held).toMatchObject({ queries: 1, commitListeners: 2 });

    await replica.patch('notes', 'n1', { title: 'two' });
    await waitFor(() => expect(text()).toBe('1|two|0|-'), WAIT);
    view.unmount();
    expect(held).toMatchObject({ queries: 0, commitListeners: 0 });
  });

  it('needs a provider', () => {
    // React reports the render error on console.error as well.
    const reported = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(() => render(<Everything renders={new Renders()} />)).toThrow(/SynclineProvider/);
    } finally {
      reported.mockRestore();
    }
  });
});

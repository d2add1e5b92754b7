// @vitest-environment happy-dom
/**
 * @syncline/react under React 18 (peerDependencies: ^18 || ^19). The "react18"
 * project of vitest.config.ts resolves react and react-dom, here and in
 * packages/react/src, to the 18.3.1 copies of this folder's workspace. Real
 * replicas (memory storage, no tabs), a real sync server (SQLite in memory, `ws`),
 * a concurrent root (createRoot) in StrictMode, no act(): the DOM is polled until
 * it shows what React rendered on its own schedule.
 */
import { StrictMode, version, type ReactNode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createReplica, memoryStorage, type Replica, type SocketFactory } from '@syncline/client';
import { createSyncServer, sqliteStorage, type SyncServer } from '@syncline/server';
import { SynclineProvider, useQuery, useRecord, useSyncStatus } from '@syncline/react';

const schema = { notes: { indexes: { byRank: ['rank'] } } };
const cleanups: Array<() => unknown> = [];
let errors: ReturnType<typeof vi.spyOn>;
let counter = 0;

beforeAll(() => {
  // No act(): React renders on its own schedule, as in an app.
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  errors?.mockRestore();
});

function watchErrors(): void {
  // React reports invalid hook calls, wrong element types and the like on console.error.
  errors = vi.spyOn(console, 'error');
}

async function replica(sync?: { url: string }): Promise<Replica> {
  const r = await createReplica({
    name: `react18-${process.pid}-${++counter}`,
    schema,
    storage: memoryStorage(),
    tabs: false,
    ...(sync ? { sync: { url: sync.url, WebSocket: WebSocket as unknown as SocketFactory, backoff: { initialMs: 20, maxMs: 200 } } } : {}),
  });
  cleanups.push(() => r.close());
  return r;
}

async function server(): Promise<SyncServer> {
  const s = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: pino({ level: 'silent' }) });
  await s.listen();
  cleanups.push(() => s.close());
  return s;
}

/** Renders `ui` under a provider for `r` into a fresh container; returns a reader of the element with `testId`. */
function mount(r: Replica, ui: ReactNode): (testId: string) => string | null | undefined {
  const container = document.createElement('div');
  document.body.append(container);
  const root: Root = createRoot(container);
  root.render(
    <StrictMode>
      <SynclineProvider replica={r}>{ui}</SynclineProvider>
    </StrictMode>,
  );
  cleanups.push(() => {
    root.unmount();
    container.remove();
  });
  return (testId) => container.querySelector(`[data-testid="${testId}"]`)?.textContent;
}

/** Polls `read` until it returns `expected`, for at most `timeoutMs`. */
async function until(read: () => unknown, expected: unknown, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (read() !== expected) {
    if (Date.now() > deadline) throw new Error(`expected ${JSON.stringify(expected)} within ${timeoutMs} ms, got ${JSON.stringify(read())}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function Titles() {
  const { rows, loading, error } = useQuery({ collection: 'notes', index: 'byRank' });
  return <p data-testid="titles">{loading ? 'loading' : error ? `error:${error.message}` : rows.map((r) => String(r.value['title'])).join(',')}</p>;
}

function Note({ id }: { id: string }) {
  const { row, loading } = useRecord('notes', id);
  return <p data-testid={`note-${id}`}>{loading ? 'loading' : row ? String(row.value['title']) : 'none'}</p>;
}

function Status() {
  const status = useSyncStatus();
  return <p data-testid="status">{status ? `${status.state}:${status.pending}` : 'no sync'}</p>;
}

describe('@syncline/react on React 18', () => {
  it('runs on React 18.3', () => {
    // Without the nested copies (npm install not run since test/react18 became a workspace) this is 19.
    expect(version, 'react should resolve to test/react18/node_modules/react: run npm install').toMatch(/^18\.3\./);
  });

  it('useQuery and useRecord follow local writes', async () => {
    watchErrors();
    const r = await replica();
    await r.put('notes', 'a', { title: 'A', rank: 1 });
    const text = mount(
      r,
      <>
        <Titles />
        <Note id="a" />
        <Note id="b" />
      </>,
    );
    await until(() => text('titles'), 'A');
    await until(() => text('note-a'), 'A');
    await until(() => text('note-b'), 'none');

    await r.put('notes', 'b', { title: 'B', rank: 2 });
    await until(() => text('titles'), 'A,B');
    await until(() => text('note-b'), 'B');
    await r.patch('notes', 'a', { title: 'A2', rank: 3 });
    await until(() => text('titles'), 'B,A2');
    await until(() => text('note-a'), 'A2');
    await r.delete('notes', 'b');
    await until(() => text('titles'), 'A2');
    await until(() => text('note-b'), 'none');
    expect(errors).not.toHaveBeenCalled();
  });

  it('useSyncStatus goes to synced, and a live query shows a write made on another replica', async () => {
    watchErrors();
    const s = await server();
    const [a, b] = [await replica(s), await replica(s)];
    const text = mount(
      b,
      <>
        <Status />
        <Titles />
        <Note id="e1" />
      </>,
    );
    await until(() => text('status'), 'synced:0');
    await until(() => text('titles'), '');
    await until(() => text('note-e1'), 'none');

    await a.put('notes', 'e1', { title: 'from A', rank: 1 });
    await until(() => text('titles'), 'from A');
    await until(() => text('note-e1'), 'from A');

    await b.put('notes', 'e2', { title: 'from B', rank: 2 });
    await until(() => text('titles'), 'from A,from B');
    await until(() => text('status'), 'synced:0');
    await b.sync?.flushed({ timeoutMs: 10_000 });
    await vi.waitFor(async () => expect((await a.get('notes', 'e2'))?.value['title']).toBe('from B'), { timeout: 10_000 });
    expect(errors).not.toHaveBeenCalled();
  });
});

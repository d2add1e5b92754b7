import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { pino } from 'pino';
import { createReplica, memoryStorage, startSync, type SocketFactory } from '@syncline/client';
import { createSyncServer, sqliteStorage } from '@syncline/server';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('e2e smoke', () => {
  it('two replicas converge through the server', async () => {
    const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: pino({ level: 'silent' }) });
    await server.listen();
    cleanups.push(() => server.close());
    const schema = { events: { indexes: { byStart: ['start'] } } } as const;
    const a = await createReplica({ name: 'a', storage: memoryStorage(), tabs: false, schema });
    const b = await createReplica({ name: 'b', storage: memoryStorage(), tabs: false, schema });
    cleanups.push(() => a.close(), () => b.close());
    await a.put('events', 'e1', { title: 'from a', start: 1 });
    const sa = startSync(a, { url: server.url, WebSocket: WebSocket as unknown as SocketFactory });
    const sb = startSync(b, { url: server.url, WebSocket: WebSocket as unknown as SocketFactory });
    cleanups.push(() => sa.close(), () => sb.close());
    await b.put('events', 'e2', { title: 'from b', start: 2 });
    await sa.waitFor((s) => s.state === 'synced');
    await sb.waitFor((s) => s.state === 'synced');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const [ra, rb] = [await a.query({ collection: 'events' }), await b.query({ collection: 'events' })];
      if (ra.length === 2 && rb.length === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await a.query({ collection: 'events' })).map((r) => r.value)).toEqual((await b.query({ collection: 'events' })).map((r) => r.value));
    expect(await a.count({ collection: 'events' })).toBe(2);
  });
});

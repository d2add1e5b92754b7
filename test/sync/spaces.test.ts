/**
 * Spaces are the unit of sync: a replica that syncs two spaces exchanges each
 * with the replicas of that space only, and changes of a space it does not sync
 * stay local (in its outbox) without keeping the engine from reporting 'synced'.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SpaceId } from '@syncline/core/internal';
import { cleanupStack, isSynced, outboxCount, replica, startServer, sync, uniqueName, waitUntil } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;
const ids = async (r: Awaited<ReturnType<typeof replica>>): Promise<string[]> =>
  (await r.query({ collection: 'events' })).map((row) => `${row.space}/${row.id}`).sort();

describe('several spaces', () => {
  it('each space reaches only its replicas; an unsynced space stays local', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => replica({ name: uniqueName(`spaces-${n}`), schema })));
    if (!a || !b || !c) throw new Error('unreachable');
    cleanup.push(() => a.close(), () => b.close(), () => c.close());

    await a.put('events', 'a1', { n: 1 }, { space: 'one' });
    await a.put('events', 'a2', { n: 2 }, { space: 'two' });
    await a.put('events', 'a3', { n: 3 }, { space: 'local' });
    await b.put('events', 'b1', { n: 1 }, { space: 'one' });
    await c.put('events', 'c2', { n: 2 }, { space: 'two' });

    const sa = sync(a, server.url, { spaces: ['one', 'two'] });
    const sb = sync(b, server.url, { spaces: ['one'] });
    const sc = sync(c, server.url, { spaces: ['two'] });
    cleanup.push(() => sa.close(), () => sb.close(), () => sc.close());

    await waitUntil(async () => isSynced(sa) && isSynced(sb) && isSynced(sc) && (await ids(a)).length === 5, 5_000, 'every replica synced');
    await waitUntil(async () => (await ids(b)).length === 2 && (await ids(c)).length === 2, 5_000, 'B and C to receive their space');
    expect(await ids(a)).toEqual(['local/a3', 'one/a1', 'one/b1', 'two/a2', 'two/c2']);
    expect(await ids(b)).toEqual(['one/a1', 'one/b1']);
    expect(await ids(c)).toEqual(['two/a2', 'two/c2']);
    expect(await outboxCount(a, 'local' as SpaceId)).toBe(1);
    expect(sa.status.pending).toBe(0);
    expect(await server.storage.spaces()).toEqual(['one', 'two']);
    expect(await server.storage.head('one' as SpaceId)).toBe(2);
    expect(await server.storage.head('two' as SpaceId)).toBe(2);
  });
});

describe('a refused space', () => {
  it('keeps its forbidden error after the welcome, and the granted space still syncs', async () => {
    const server = await startServer({
      authenticate: async () => ({ subject: 'u', access: (space) => (space === 'mine' ? 'write' : undefined) }),
    });
    cleanup.push(() => server.close());
    const a = await replica({ name: uniqueName('refused'), schema });
    cleanup.push(() => a.close());
    await a.put('events', 'x', { n: 1 }, { space: 'mine' });
    const engine = sync(a, server.url, { spaces: ['mine', 'theirs'], token: 't' });
    cleanup.push(() => engine.close());
    await waitUntil(() => isSynced(engine), 5_000, 'synced with the granted space');
    expect(engine.status.error).toMatchObject({ code: 'forbidden', space: 'theirs' });
    expect(await server.storage.head('mine' as SpaceId)).toBe(1);
    expect(await a.query({ collection: 'events', space: 'mine' })).toHaveLength(1);
  });
});

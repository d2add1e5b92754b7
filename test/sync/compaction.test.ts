/**
 * Log compaction: a new replica bootstraps from a snapshot (in chunks, with
 * progress), and a replica that went offline before compaction with changes the
 * server never acknowledged gets a snapshot on reconnect without losing them: they
 * stay visible throughout, are pushed, and reach everyone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Row, SyncStatus } from '@syncline/client';
import type { SpaceId } from '@syncline/core/internal';
import { sqliteStorage, type ServerStorage, type SyncServerOptions } from '@syncline/server';
import { cleanupStack, counter, countOf, isSynced, ManualClock, outboxCount, recordingSocket, replica, startServer, sync, uniqueName, visibleState, waitUntil, withOverrides } from './harness.js';
import { portOf } from '../internals.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;

describe('compaction', () => {
  it('bootstraps new replicas from a snapshot and keeps an offline replica’s unacknowledged changes', async () => {
    const server = await startServer({ limits: { snapshotChunk: 50 } });
    cleanup.push(() => server.close());
    const base = Date.now() - 5 * 60_000;
    const clockW = new ManualClock(base);
    const clockO = new ManualClock(base);
    const w = await replica({ name: uniqueName('compact-writer'), schema, now: clockW.now });
    const o = await replica({ name: uniqueName('compact-offline'), schema, now: clockO.now });
    cleanup.push(() => w.close(), () => o.close());
    const space = w.defaultSpace as SpaceId;

    // W writes 300 events; O gets them, then goes offline.
    const sw = sync(w, server.url);
    cleanup.push(() => sw.close());
    const recO = recordingSocket();
    const so = sync(o, server.url, { WebSocket: recO.factory });
    cleanup.push(() => so.close());
    await w.batch((b) => {
      for (let i = 0; i < 300; i++) b.put('events', `e${i}`, { title: `event ${i}`, n: i });
    });
    await waitUntil(async () => isSynced(sw) && isSynced(so) && (await countOf(o, 'events')) === 300, 10_000, 'O to hold the first 300 events');
    so.pause();
    const positionBefore = (await portOf(o).position(space)).upTo;
    expect(positionBefore).toBe(300);

    // Offline, O edits (titles of e0..e4 at base+2000, e5..e9 at base+1000, a note on
    // e10) and creates 20 records. Meanwhile W edits e0..e9 at base+1500 and writes 200 more.
    clockO.value = base + 1000;
    for (let i = 5; i < 10; i++) await o.patch('events', `e${i}`, { title: `O edit ${i}` });
    clockO.value = base + 2000;
    for (let i = 0; i < 5; i++) await o.patch('events', `e${i}`, { title: `O edit ${i}` });
    await o.patch('events', 'e10', { note: 'only O wrote this' });
    await o.batch((b) => {
      for (let i = 0; i < 20; i++) b.put('events', `o${i}`, { title: `offline ${i}` });
    });
    expect(await outboxCount(o, space)).toBe(31);
    clockW.value = base + 1500;
    for (let i = 0; i < 10; i++) await w.patch('events', `e${i}`, { title: `W edit ${i}` });
    await w.batch((b) => {
      for (let i = 300; i < 500; i++) b.put('events', `e${i}`, { title: `event ${i}`, n: i });
    });
    await waitUntil(async () => isSynced(sw) && (await server.storage.head(space)) === 510, 10_000, 'W’s writes to be stored');

    // Compact: only the last 10 log entries remain; O's position is below the horizon.
    const removed = await server.compact(10);
    expect(removed).toBe(500);
    expect(await server.storage.horizon(space)).toBe(500);
    expect(await server.storage.readLog(space, 0, 1000)).toHaveLength(10);

    // A new replica bootstraps from the snapshot, chunk by chunk, with progress.
    const n = await replica({ name: uniqueName('compact-new'), schema });
    cleanup.push(() => n.close());
    const recN = recordingSocket();
    const sn = sync(n, server.url, { WebSocket: recN.factory });
    cleanup.push(() => sn.close());
    const progress: Array<NonNullable<SyncStatus['bootstrap']>> = [];
    sn.onStatus((s) => {
      if (s.bootstrap) progress.push(s.bootstrap);
    });
    await waitUntil(async () => isSynced(sn) && (await countOf(n, 'events')) === 500, 10_000, 'N to bootstrap 500 events');
    const chunks = recN.of('snapshot');
    expect(chunks.length).toBe(10); // 500 records in chunks of 50
    expect(chunks.map((c) => c.chunk)).toEqual([...Array(10).keys()]);
    expect(chunks.every((c) => c.position === 510 && c.total === 500 && c.chunks === 10)).toBe(true);
    expect(chunks.reduce((sum, c) => sum + c.records.length, 0)).toBe(500);
    expect(recN.of('changes').flatMap((m) => m.changes)).toEqual([]); // nothing after the snapshot to replay
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ space, total: 500 });
    expect((await portOf(n).position(space)).upTo).toBe(510);
    expect((await n.get('events', 'e3'))?.value).toEqual({ title: 'W edit 3', n: 3 });

    // O comes back: it gets a snapshot (its position is below the horizon), and its
    // own edits stay visible the whole time.
    const violations: string[] = [];
    const unsubscribe = o.subscribe({ collection: 'events' }, (rows: Row[]) => {
      const byId = new Map(rows.map((r) => [r.id, r.value]));
      for (let i = 0; i < 20; i++) if (!byId.has(`o${i}`)) violations.push(`o${i} missing from ${rows.length} rows`);
      for (let i = 0; i < 5; i++) if (byId.get(`e${i}`)?.['title'] !== `O edit ${i}`) violations.push(`e${i} shows ${JSON.stringify(byId.get(`e${i}`))}`);
      if (byId.get('e10')?.['note'] !== 'only O wrote this') violations.push('e10 lost its note');
    });
    cleanup.push(unsubscribe);
    const snapshotsBefore = await counter(server.metrics.snapshots);
    const back = recO.sockets.length;
    so.resume();
    await waitUntil(async () => isSynced(so) && (await countOf(o, 'events')) === 520, 10_000, 'O to catch up and push');
    expect(recO.of('snapshot', back).length).toBeGreaterThan(0);
    expect(recO.sent.find((s) => s.socket >= back && s.message.type === 'hello')?.message).toMatchObject({ spaces: [{ space, after: 300 }] });
    expect(await counter(server.metrics.snapshots)).toBeGreaterThan(snapshotsBefore);
    expect(await outboxCount(o, space)).toBe(0);
    expect(violations).toEqual([]);

    // O's changes reach everyone, and all three hold the same state.
    await waitUntil(async () => (await countOf(w, 'events')) === 520 && (await countOf(n, 'events')) === 520, 10_000, 'O’s records to reach W and N');
    await waitUntil(
      async () => {
        const [sw1, so1, sn1] = await Promise.all([w, o, n].map((r) => visibleState(r, ['events'])));
        return JSON.stringify(sw1) === JSON.stringify(so1) && JSON.stringify(so1) === JSON.stringify(sn1);
      },
      10_000,
      'W, O and N to converge',
    );
    for (const r of [w, o, n]) {
      for (let i = 0; i < 10; i++) expect((await r.get('events', `e${i}`))?.value).toEqual({ title: i < 5 ? `O edit ${i}` : `W edit ${i}`, n: i });
      expect((await r.get('events', 'e10'))?.value).toEqual({ title: 'event 10', n: 10, note: 'only O wrote this' });
      expect((await r.get('events', 'o19'))?.value).toEqual({ title: 'offline 19' });
      expect((await r.get('events', 'e499'))?.value).toEqual({ title: 'event 499', n: 499 });
    }
    expect(await server.storage.head(space)).toBe(541);
  });
});

/** A server, a replica `w` syncing with it, and a replica `n` not syncing yet (it will bootstrap from a snapshot). */
async function writerAndNewcomer(options: SyncServerOptions, tag: string) {
  const server = await startServer(options);
  cleanup.push(() => server.close());
  const w = await replica({ name: uniqueName(`${tag}-writer`), schema });
  const n = await replica({ name: uniqueName(`${tag}-new`), schema });
  cleanup.push(() => w.close(), () => n.close());
  const sw = sync(w, server.url);
  cleanup.push(() => sw.close());
  return { server, w, n, sw };
}

describe('a push acknowledged while a snapshot is on its way', () => {
  it('stays in the replica: the ack waits for the snapshot’s last chunk, which the replica applies with the change still unacknowledged', async () => {
    // The server reads the snapshot's first page, then holds it until the new replica's push is stored (and
    // its ack would have gone): a snapshot whose records were read before that push.
    const storage = sqliteStorage({ path: ':memory:' });
    let stored: () => void = () => undefined;
    const pushStored = new Promise<'stored'>((resolve) => (stored = () => resolve('stored')));
    let pages = 0;
    let heldFor: 'stored' | 'timeout' | undefined;
    const gated: ServerStorage = withOverrides(storage, {
      snapshotPage: async (...args: Parameters<ServerStorage['snapshotPage']>) => {
        const page = await storage.snapshotPage(...args);
        if (pages++ === 0) heldFor = await Promise.race([pushStored, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 3_000))]);
        return page;
      },
      append: async (...args: Parameters<ServerStorage['append']>) => {
        const result = await storage.append(...args);
        if (pages > 0) setTimeout(stored, 50); // after the session has answered the push
        return result;
      },
    });
    const { server, w, n, sw } = await writerAndNewcomer({ storage: gated }, 'held-ack');
    await w.put('events', 'theirs', { by: 'w' });
    await sw.flushed();

    await n.put('events', 'mine', { by: 'n' }); // offline: pushed as N connects, while its snapshot is read
    const sn = sync(n, server.url);
    cleanup.push(() => sn.close());
    await waitUntil(() => isSynced(sn), 10_000, 'N to sync');
    expect(heldFor).toBe('stored'); // the case under test happened
    expect(await outboxCount(n)).toBe(0);
    expect((await n.get('events', 'mine'))?.value).toEqual({ by: 'n' });
    expect((await n.get('events', 'theirs'))?.value).toEqual({ by: 'w' });
    await waitUntil(async () => (await w.get('events', 'mine')) !== undefined, 10_000, 'N’s write to reach W');
    expect(await visibleState(n, ['events'])).toEqual(await visibleState(w, ['events']));
  });
});

describe('a push waiting on a long snapshot', () => {
  it('does not count as unanswered while chunks arrive: the snapshot ends, then the ack comes, on one connection', async () => {
    // Every page of the snapshot takes a while to read: the whole takes many ping intervals.
    const storage = sqliteStorage({ path: ':memory:' });
    const slow: ServerStorage = withOverrides(storage, {
      snapshotPage: async (...args: Parameters<ServerStorage['snapshotPage']>) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        return storage.snapshotPage(...args);
      },
    });
    const { server, w, n, sw } = await writerAndNewcomer({ storage: slow, limits: { snapshotChunk: 10 } }, 'long-snapshot');
    await w.batch((b) => {
      for (let i = 0; i < 300; i++) b.put('events', `e${i}`, { n: i });
    });
    await sw.flushed();

    await n.put('events', 'mine', { by: 'n' }); // pushed as N connects, answered after the snapshot
    const errors: string[] = [];
    // Three ticks without an ack: 750 ms (and two without any frame, 500 ms, drop it too); the snapshot takes 3 s.
    const sn = sync(n, server.url, { pingIntervalMs: 250 });
    cleanup.push(() => sn.close());
    sn.onStatus((status) => {
      if (status.error) errors.push(status.error.message);
    });
    await waitUntil(async () => isSynced(sn) && (await countOf(n, 'events')) === 301, 20_000, 'N to bootstrap and have its write acknowledged');
    expect(errors).toEqual([]);
    expect((await n.get('events', 'mine'))?.value).toEqual({ by: 'n' });
    expect(await counter(server.metrics.snapshots)).toBe(1);
  });
});

describe('bootstrap progress', () => {
  it('a snapshot cut off by pause() leaves no stale progress in the status; the next connection bootstraps again', async () => {
    const server = await startServer({ limits: { snapshotChunk: 20 } });
    cleanup.push(() => server.close());
    const w = await replica({ name: uniqueName('progress-writer'), schema });
    cleanup.push(() => w.close());
    const sw = sync(w, server.url);
    cleanup.push(() => sw.close());
    await w.batch((b) => {
      for (let i = 0; i < 400; i++) b.put('events', `e${i}`, { n: i });
    });
    await sw.flushed({ timeoutMs: 10_000 });
    await server.compact(0);

    const n = await replica({ name: uniqueName('progress-new'), schema });
    cleanup.push(() => n.close());
    const sn = sync(n, server.url);
    cleanup.push(() => sn.close());
    // Pause at the first progress report, in the middle of the snapshot.
    await sn.waitFor((s) => s.bootstrap !== undefined && s.bootstrap.received < s.bootstrap.total, 10_000);
    sn.pause();
    expect(sn.status.state).toBe('paused');
    expect(sn.status.bootstrap).toBeUndefined();
    sn.resume();
    await waitUntil(async () => isSynced(sn) && (await countOf(n, 'events')) === 400, 10_000, 'N to bootstrap after resuming');
    expect(sn.status.bootstrap).toBeUndefined();
  });
});

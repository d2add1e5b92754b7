/**
 * Guarantee 1 (convergence) and 3 (no offline write is lost), end to end: real
 * server, real sockets. Two replicas edit the same records offline and must end
 * identical, with the lww winner of every field known in advance (clocks are
 * injected); then 20 replicas writing at once must all end with the same 4,000
 * records.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Replica } from '@syncline/client';
import { cleanupStack, countOf, idbStorage, isSynced, ManualClock, replica, startServer, sync, uniqueName, visibleState, waitUntil } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = {
  events: { indexes: { byStart: ['start'] } },
  tasks: { policy: 'merge' },
  notes: {},
  docs: { crdt: { body: 'text' } },
} as const;

const pad = (i: number): string => String(i).padStart(3, '0');

describe('two replicas editing offline', () => {
  it('converge to the same state with field-level lww and the same merge siblings', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const base = Date.now() - 5 * 60_000;
    const clockA = new ManualClock(base);
    const clockB = new ManualClock(base);
    // A on IndexedDB (fake-indexeddb), B in memory: the adapters must agree too.
    const a = await replica({ name: uniqueName('conv-a'), schema, storage: idbStorage(), now: clockA.now });
    const b = await replica({ name: uniqueName('conv-b'), schema, now: clockB.now });
    cleanup.push(() => a.close(), () => b.close());

    // A writes 100 events and 5 tasks, and B gets them all.
    await a.batch((w) => {
      for (let i = 0; i < 100; i++) w.put('events', `a${pad(i)}`, { title: `A event ${i}`, start: i });
      for (let i = 0; i < 5; i++) w.put('tasks', `t${i}`, { title: `task ${i}`, status: 'open' });
    });
    const textA = await a.text('docs', 'd1', 'body');
    textA.insert(0, 'Hello');
    await waitUntil(async () => (await a.get('docs', 'd1'))?.value?.['body'] === 'Hello', 5_000, 'the text edit to commit');
    const sa = sync(a, server.url);
    const sb = sync(b, server.url);
    cleanup.push(() => sa.close(), () => sb.close());
    await waitUntil(() => isSynced(sa) && isSynced(sb), 10_000, 'both engines synced');
    await waitUntil(
      async () => (await countOf(b, 'events')) === 100 && (await countOf(b, 'tasks')) === 5 && (await b.get('docs', 'd1'))?.value?.['body'] === 'Hello',
      10_000,
      'B to hold A’s records',
    );
    // Both go offline (sync paused: no connection, writes stay local).
    sa.pause();
    sb.pause();
    expect(sa.status.state).toBe('paused');
    expect(sb.status.state).toBe('paused');

    // Offline. Every HLC below is set by hand, so the winners are known.
    // A: title of a005..a009 at base+1000, then title of a000..a004 at base+2000,
    //    location (A only) of a000..a009, delete a097 and a098 at base+2050,
    //    the tasks at base+2500.
    clockA.value = base + 1000;
    for (let i = 5; i < 10; i++) await a.patch('events', `a${pad(i)}`, { title: `A edit ${i}` });
    clockA.value = base + 2000;
    for (let i = 0; i < 5; i++) await a.patch('events', `a${pad(i)}`, { title: `A edit ${i}` });
    for (let i = 0; i < 10; i++) await a.patch('events', `a${pad(i)}`, { location: `room A${i}` });
    clockA.value = base + 2050;
    await a.delete('events', 'a097');
    await a.delete('events', 'a098');
    clockA.value = base + 2500;
    for (let i = 0; i < 5; i++) await a.patch('tasks', `t${i}`, { status: 'done by A' });

    // B: title of a000..a004 at base+1000, a097 (before A deletes it) at base+1500,
    //    title of a005..a009 at base+2000, a098 (after A deletes it) at base+2100,
    //    note (B only) of a000..a009, the tasks at base+2600, then 100 events of its own.
    clockB.value = base + 1000;
    for (let i = 0; i < 5; i++) await b.patch('events', `a${pad(i)}`, { title: `B edit ${i}` });
    clockB.value = base + 1500;
    await b.patch('events', 'a097', { note: 'B before the delete' });
    clockB.value = base + 2000;
    for (let i = 5; i < 10; i++) await b.patch('events', `a${pad(i)}`, { title: `B edit ${i}` });
    for (let i = 0; i < 10; i++) await b.patch('events', `a${pad(i)}`, { note: `note B${i}` });
    clockB.value = base + 2100;
    await b.patch('events', 'a098', { note: 'B after the delete' });
    clockB.value = base + 2600;
    for (let i = 0; i < 5; i++) await b.patch('tasks', `t${i}`, { status: 'done by B' });
    // Concurrent text edits (crdt): both survive.
    textA.insert(5, ' world');
    const textB = await b.text('docs', 'd1', 'body');
    textB.insert(0, '>> ');
    await waitUntil(async () => (await a.get('docs', 'd1'))?.value?.['body'] === 'Hello world' && (await b.get('docs', 'd1'))?.value?.['body'] === '>> Hello', 5_000, 'the text edits to commit');
    clockB.value = base + 3000;
    await b.batch((w) => {
      for (let i = 0; i < 100; i++) w.put('events', `b${pad(i)}`, { title: `B event ${i}`, start: 1000 + i });
    });

    // Before reconnecting, each side sees only its own edits.
    expect((await a.get('events', 'a000'))?.value).toEqual({ title: 'A edit 0', start: 0, location: 'room A0' });
    expect((await b.get('events', 'a000'))?.value).toEqual({ title: 'B edit 0', start: 0, note: 'note B0' });
    expect(await a.conflicts('tasks', 't0')).toEqual([]);

    // Both reconnect; each one's offline writes are stored before the other's reach it.
    sa.resume();
    sb.resume();
    await Promise.all([sa.flushed({ timeoutMs: 15_000 }), sb.flushed({ timeoutMs: 15_000 })]);
    await waitUntil(() => isSynced(sa) && isSynced(sb), 15_000, 'both engines synced after reconnecting');
    await waitUntil(
      async () => JSON.stringify(await visibleState(a, ['events', 'tasks', 'docs'])) === JSON.stringify(await visibleState(b, ['events', 'tasks', 'docs'])),
      15_000,
      'A and B to hold the same state',
    );

    expect(textA.toString()).toBe('>> Hello world'); // the open document took B's edit too
    expect(textB.toString()).toBe('>> Hello world');
    for (const r of [a, b] as Replica[]) {
      expect((await r.get('docs', 'd1'))?.value).toEqual({ body: '>> Hello world' });
      // 100 of A + 100 of B, minus a097 (deleted after B's edit); a098 is back with B's later field only.
      expect(await countOf(r, 'events')).toBe(199);
      for (let i = 0; i < 10; i++) {
        const winner = i < 5 ? 'A' : 'B';
        expect((await r.get('events', `a${pad(i)}`))?.value).toEqual({
          title: `${winner} edit ${i}`,
          start: i,
          location: `room A${i}`,
          note: `note B${i}`,
        });
      }
      expect(await r.get('events', 'a097')).toBeUndefined();
      expect((await r.get('events', 'a098'))?.value).toEqual({ note: 'B after the delete' });
      expect((await r.get('events', 'a050'))?.value).toEqual({ title: 'A event 50', start: 50 });
      expect((await r.get('events', 'b042'))?.value).toEqual({ title: 'B event 42', start: 1042 });
      expect(await r.query({ collection: 'events', index: 'byStart', eq: [1099] })).toHaveLength(1);

      for (let i = 0; i < 5; i++) {
        const siblings = await r.conflicts('tasks', `t${i}`);
        expect(siblings.map((s) => [s.replica, s.value])).toEqual([
          [a.id, { title: `task ${i}`, status: 'done by A' }],
          [b.id, { title: `task ${i}`, status: 'done by B' }],
        ]);
        // No resolver: the sibling with the highest HLC (B's, base+2600) is visible.
        expect((await r.get('tasks', `t${i}`))?.value).toEqual({ title: `task ${i}`, status: 'done by B' });
      }
    }
    for (let i = 0; i < 5; i++) expect(await a.conflicts('tasks', `t${i}`)).toEqual(await b.conflicts('tasks', `t${i}`));

    // A write made after reading the siblings supersedes them, everywhere.
    clockA.value = base + 4000;
    await a.patch('tasks', 't0', { status: 'resolved' });
    await waitUntil(async () => (await b.get('tasks', 't0'))?.value?.['status'] === 'resolved', 10_000, 'the resolution to reach B');
    expect(await b.conflicts('tasks', 't0')).toEqual([]);
    expect(await a.conflicts('tasks', 't0')).toEqual([]);
  });
});

describe('many replicas', () => {
  it('20 replicas x 200 batched writes converge on 4,000 identical records', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const replicas: Replica[] = [];
    for (let i = 0; i < 20; i++) replicas.push(await replica({ name: uniqueName(`many-${i}`), schema }));
    cleanup.push(...replicas.map((r) => () => r.close()));
    const engines = replicas.map((r) => sync(r, server.url, { batchSize: 100 }));
    cleanup.push(...engines.map((e) => () => e.close()));

    // Everyone writes at once while connected: 10 batches of 20 new records each,
    // plus a patch of a shared lww record and a write of a shared merge record per
    // batch (concurrent writes of the same records).
    await Promise.all(
      replicas.map(async (r, i) => {
        for (let batch = 0; batch < 10; batch++) {
          await r.batch((w) => {
            for (let j = 0; j < 20; j++) w.put('events', `r${pad(i)}-${pad(batch * 20 + j)}`, { title: `replica ${i} write ${batch * 20 + j}`, start: i * 1000 + batch * 20 + j });
          });
          await r.patch('notes', `shared-${batch}`, { [`by${i}`]: batch, last: i });
          await r.patch('tasks', `shared-${batch}`, { [`by${i}`]: batch });
        }
      }),
    );

    await waitUntil(
      async () => {
        if (!engines.every(isSynced)) return false;
        for (const r of replicas) if ((await countOf(r, 'events')) !== 4000) return false;
        return true;
      },
      45_000,
      'every replica to hold 4,000 events',
    );
    expect(await server.storage.head((replicas[0] as Replica).defaultSpace)).toBe(20 * 220);

    // Every replica's state (values and internal lww/merge state) is identical.
    const reference = await visibleState(replicas[0] as Replica, ['events', 'tasks', 'notes']);
    expect(reference.filter((s) => s.startsWith('["events"'))).toHaveLength(4000);
    for (const r of replicas.slice(1)) expect(await visibleState(r, ['events', 'tasks', 'notes'])).toEqual(reference);
    // The shared lww records carry one field per replica: no concurrent patch was lost.
    const shared = await (replicas[7] as Replica).get('notes', 'shared-3');
    for (let i = 0; i < 20; i++) expect(shared?.value?.[`by${i}`]).toBe(3);
    for (let i = 0; i < 20; i++) expect(await (replicas[i] as Replica).conflicts('tasks', 'shared-3')).toEqual(await (replicas[0] as Replica).conflicts('tasks', 'shared-3'));
  }, 60_000);
});

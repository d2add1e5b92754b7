import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { createReplica, indexedDbStorage, memoryStorage } from '@syncline/client';

describe.each([
  ['memory', () => memoryStorage()],
  ['indexeddb', () => indexedDbStorage({ indexedDB: new IDBFactory() })],
])('smoke %s', (_name, storage) => {
  it('writes, reads, queries', async () => {
    const r = await createReplica({ name: 'a', storage: storage(), tabs: false, schema: { events: { indexes: { byStart: ['start'] }, crdt: { notes: 'text' } } } });
    await r.put('events', 'e1', { title: 'a', start: 5 });
    await r.put('events', 'e2', { title: 'b', start: 3 });
    await r.patch('events', 'e1', { title: 'A' });
    const rows = await r.query({ collection: 'events', index: 'byStart' });
    expect(rows.map((x) => x.id)).toEqual(['e2', 'e1']);
    expect((await r.get('events', 'e1'))?.value).toEqual({ title: 'A', start: 5 });
    const t = await r.text('events', 'e1', 'notes');
    // The edit is written in a transaction of its own: wait for that commit, not for time to pass.
    const written = new Promise<void>((resolve) => {
      const off = r.onCommit(() => {
        off();
        resolve();
      });
    });
    t.insert(0, 'hello');
    await written;
    expect((await r.get('events', 'e1'))?.value).toEqual({ title: 'A', start: 5, notes: 'hello' });
    await r.close();
  });
});

import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { it } from 'vitest';
import { indexedDbStorage } from '@syncline/client';

it('dbg', async () => {
  const s = await indexedDbStorage({ indexedDB: new IDBFactory() })('x');
  process.on('unhandledRejection', (e) => console.log('UNHANDLED', (e as Error).stack));
  await s.transaction('readwrite', async (tx) => {
    await tx.getMeta('a');
    throw new Error('x');
  }).catch((e) => console.log('caught', (e as Error).message));
  await new Promise((r) => setTimeout(r, 50));
});

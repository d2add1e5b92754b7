// Syncline: the client README's example as a browser app (default IndexedDB storage,
// one lww collection with an index, sync to a server; put, query, subscribe).
import { createReplica } from '@syncline/client';

const replica = await createReplica({
  name: 'bundle',
  schema: { events: { indexes: { byStart: ['start'] } } },
  sync: { url: 'wss://example.com/sync' },
});

await replica.put('events', 'standup', { title: 'Standup', start: 900 });
const morning = await replica.query({ collection: 'events', index: 'byStart', range: { lt: 1200 } });
console.warn(morning.length);
replica.subscribe({ collection: 'events', index: 'byStart' }, (rows) => console.warn(rows.length));

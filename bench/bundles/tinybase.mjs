// TinyBase: the same app as a MergeableStore with a table of events, persisted to IndexedDB
// and synced by the WebSocket synchronizer client. The "query" is a sorted row-id read.
import { createMergeableStore } from 'tinybase/mergeable-store'; // 'tinybase' (the main entry) adds about 17 KB minified
import { createIndexedDbPersister } from 'tinybase/persisters/persister-indexed-db';
import { createWsSynchronizer } from 'tinybase/synchronizers/synchronizer-ws-client';

const store = createMergeableStore();
const persister = createIndexedDbPersister(store, 'bundle');
await persister.startAutoLoad();
await persister.startAutoSave();
const synchronizer = await createWsSynchronizer(store, new WebSocket('wss://example.com/bundle'));
await synchronizer.startSync();

store.setRow('events', 'standup', { title: 'Standup', start: 900 });
const morning = store.getSortedRowIds('events', 'start').filter((id) => store.getCell('events', id, 'start') < 1200);
console.warn(morning.length);
store.addTableListener('events', () => console.warn(store.getRowCount('events')));

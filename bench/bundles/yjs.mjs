// Yjs + y-websocket (+ y-indexeddb for local persistence): the same app as a Y.Map of events
// synced by a WebsocketProvider. Yjs has no indexes or queries: the "query" is a filter over the map.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { IndexeddbPersistence } from 'y-indexeddb';

const doc = new Y.Doc();
const persistence = new IndexeddbPersistence('bundle', doc);
await persistence.whenSynced;
new WebsocketProvider('wss://example.com', 'bundle', doc);

const events = doc.getMap('events');
events.set('standup', { title: 'Standup', start: 900 });
const morning = [...events.values()].filter((e) => e.start < 1200);
console.warn(morning.length);
events.observe(() => console.warn(events.size));

// Clients of the two CRDT baselines, shared by the scenarios:
// - Yjs: a Y.Doc synced by y-websocket's WebsocketProvider with bench/servers/yjs.mjs; records
//   are entries of one Y.Map 'events' (key = record id, value = the record object; an update
//   replaces the entry, concurrent updates of one key resolve by Yjs's rules).
// - TinyBase: a MergeableStore synced by createWsSynchronizer with bench/servers/tinybase.mjs;
//   records are rows of one table 'events' (row id = record id, one cell per field).
import { createMergeableStore } from 'tinybase';
import { createWsSynchronizer } from 'tinybase/synchronizers/synchronizer-ws-client';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { countingSocket, digestEntries, newCounter, within } from './lib.mjs';

let providers = 0;

/**
 * A Yjs replica: a Y.Doc and a WebsocketProvider on room `room`. `synced` resolves after the
 * first sync step 2 from the server (the provider's 'sync' event).
 * No BroadcastChannel: Node 20 has one, and providers in one process would otherwise sync
 * through it instead of the server.
 */
export function yjsReplica(port, room, counter = newCounter()) {
  // Each provider adds a process 'exit' listener; hundreds of them are expected here.
  process.setMaxListeners(Math.max(process.getMaxListeners(), 10 + ++providers));
  const doc = new Y.Doc();
  const map = doc.getMap('events');
  const provider = new WebsocketProvider(`ws://127.0.0.1:${port}`, room, doc, {
    WebSocketPolyfill: countingSocket(counter),
    disableBc: true,
  });
  const synced = new Promise((resolve) => {
    if (provider.synced) resolve();
    else provider.once('sync', () => resolve());
  });
  return {
    doc,
    map,
    provider,
    counter,
    synced,
    close() {
      provider.destroy();
      doc.destroy();
    },
  };
}

/** The Yjs replica's state vector, as a string: equal vectors are a cheap hint of equal state. */
export function yjsStateVector(replica) {
  return Buffer.from(Y.encodeStateVector(replica.doc)).toString('base64');
}

export function yjsDigest(replica) {
  return digestEntries(replica.map.entries());
}

/**
 * A TinyBase replica: a MergeableStore and a WsSynchronizer on path `path`, started.
 * `requestTimeoutSeconds` is TinyBase's (default 1).
 */
export async function tinybaseReplica(port, path, counter = newCounter(), requestTimeoutSeconds = 1, timeoutMs = 60_000) {
  const store = createMergeableStore();
  const Socket = countingSocket(counter);
  const socket = new Socket(`ws://127.0.0.1:${port}/${path}`);
  const errors = [];
  const synchronizer = await within(
    createWsSynchronizer(store, socket, requestTimeoutSeconds, undefined, undefined, (error) => errors.push(error)),
    timeoutMs,
    'the TinyBase socket to open',
  );
  await within(synchronizer.startSync(), timeoutMs, 'TinyBase startSync');
  return {
    store,
    synchronizer,
    counter,
    errors,
    async close() {
      await within(synchronizer.destroy(), 10_000, 'TinyBase synchronizer destroy').catch(() => socket.terminate());
    },
  };
}

const TINYBASE_ERRORS = { 3: 'sync request timed out', 5: 'socket closed', 14: 'invalid sync message', 15: 'sync payload over the 16 MB limit' };

/** TinyBase's errors ("tinybase:CODE:details") with the code's meaning. */
export function describeTinybaseErrors(errors) {
  return [...new Set(errors.map((error) => {
    const message = String(error?.message ?? error);
    const code = /^tinybase:(\d+)/.exec(message)?.[1];
    return code && TINYBASE_ERRORS[code] ? `${message.split(':').slice(0, 2).join(':')} (${TINYBASE_ERRORS[code]})` : message;
  }))].join(', ');
}

/** Cheap hint of equal state: TinyBase's own content hashes. */
export function tinybaseHashes(replica) {
  return JSON.stringify(replica.store.getMergeableContentHashes());
}

export function tinybaseDigest(replica) {
  return digestEntries(Object.entries(replica.store.getTable('events')));
}

// Baseline: a y-websocket server in its own process (the y-websocket wire protocol: y-protocols
// sync + awareness, one Y.Doc per room named by the URL path, kept in memory).
// Written here with y-protocols because @y/websocket-server 0.1.5 depends on yjs 14 and ws 6,
// which would put a second Yjs beside the 13.6.33 that y-websocket 3.1.0 clients use.
// It does what that server's setupWSConnection does: on connect, send sync step 1 and the
// room's awareness states; answer sync messages with readSyncMessage; apply awareness updates;
// broadcast every document update and awareness change to every connection of the room
// (the sender included, as the reference server does); ping every 30 s, drop on missing pong.
// Messages: { type: 'seed', space, records } fills room `space`'s Y.Map 'events';
// { type: 'memory' } reports memory.
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { WebSocketServer } from 'ws';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { event } from '../lib.mjs';

const messageSync = 0;
const messageAwareness = 1;
const pingTimeout = 30_000;

const rooms = new Map();

function send(room, conn, message) {
  if (conn.readyState !== 0 && conn.readyState !== 1) {
    closeConn(room, conn);
    return;
  }
  conn.send(message, (error) => {
    if (error) closeConn(room, conn);
  });
}

function closeConn(room, conn) {
  const controlled = room.conns.get(conn);
  if (controlled) {
    room.conns.delete(conn);
    awarenessProtocol.removeAwarenessStates(room.awareness, [...controlled], null);
  }
  conn.close();
}

function getRoom(name) {
  let room = rooms.get(name);
  if (room) return room;
  const doc = new Y.Doc();
  const awareness = new awarenessProtocol.Awareness(doc);
  awareness.setLocalState(null);
  room = { name, doc, awareness, conns: new Map() };
  const current = room;
  awareness.on('update', ({ added, updated, removed }, origin) => {
    const controlled = current.conns.get(origin);
    if (controlled) {
      for (const id of added) controlled.add(id);
      for (const id of removed) controlled.delete(id);
    }
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, messageAwareness);
    encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(awareness, [...added, ...updated, ...removed]));
    const message = encoding.toUint8Array(encoder);
    for (const conn of current.conns.keys()) send(current, conn, message);
  });
  doc.on('update', (update) => {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, messageSync);
    syncProtocol.writeUpdate(encoder, update);
    const message = encoding.toUint8Array(encoder);
    for (const conn of current.conns.keys()) send(current, conn, message);
  });
  rooms.set(name, room);
  return room;
}

function onMessage(room, conn, data) {
  try {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    const encoder = encoding.createEncoder();
    const type = decoding.readVarUint(decoder);
    if (type === messageSync) {
      encoding.writeVarUint(encoder, messageSync);
      syncProtocol.readSyncMessage(decoder, encoder, room.doc, conn);
      if (encoding.length(encoder) > 1) send(room, conn, encoding.toUint8Array(encoder));
    } else if (type === messageAwareness) {
      awarenessProtocol.applyAwarenessUpdate(room.awareness, decoding.readVarUint8Array(decoder), conn);
    }
  } catch (error) {
    console.error(error);
  }
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 256 * 1024 * 1024 });
wss.on('connection', (conn, req) => {
  conn.binaryType = 'arraybuffer';
  const room = getRoom(decodeURIComponent((req.url ?? '/').slice(1).split('?')[0]));
  room.conns.set(conn, new Set());
  conn.on('message', (data) => onMessage(room, conn, data));
  let pongReceived = true;
  const pinger = setInterval(() => {
    if (!pongReceived) {
      if (room.conns.has(conn)) closeConn(room, conn);
      clearInterval(pinger);
    } else if (room.conns.has(conn)) {
      pongReceived = false;
      try {
        conn.ping();
      } catch {
        closeConn(room, conn);
        clearInterval(pinger);
      }
    }
  }, pingTimeout);
  conn.on('close', () => {
    closeConn(room, conn);
    clearInterval(pinger);
  });
  conn.on('pong', () => (pongReceived = true));
  // Sync step 1, then the awareness states the room holds.
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, messageSync);
  syncProtocol.writeSyncStep1(encoder, room.doc);
  send(room, conn, encoding.toUint8Array(encoder));
  const states = room.awareness.getStates();
  if (states.size > 0) {
    const awarenessEncoder = encoding.createEncoder();
    encoding.writeVarUint(awarenessEncoder, messageAwareness);
    encoding.writeVarUint8Array(awarenessEncoder, awarenessProtocol.encodeAwarenessUpdate(room.awareness, [...states.keys()]));
    send(room, conn, encoding.toUint8Array(awarenessEncoder));
  }
});
wss.on('listening', () => process.send({ type: 'listening', port: wss.address().port }));
process.on('message', (msg) => {
  if (msg.type === 'seed') {
    const room = getRoom(msg.space);
    const map = room.doc.getMap('events');
    room.doc.transact(() => {
      for (let i = 0; i < msg.records; i++) map.set(`e${i}`, event(i));
    });
    process.send({ type: 'seeded' });
  }
  if (msg.type === 'memory') {
    globalThis.gc?.();
    process.send({ type: 'memory', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed });
  }
  if (msg.type === 'stop') {
    for (const client of wss.clients) client.terminate();
    wss.close(() => process.exit(0));
  }
});

/**
 * Guarantee 5: bad input never crashes the server or corrupts stored data; each
 * kind gets its coded error. Raw `ws` clients send hand-made frames while two
 * real replicas stay connected; afterwards only the replicas' changes are stored
 * and they still push and receive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpstream, MIN_FRAME_BYTES, formatTimestamp, PROTOCOL_VERSION, writeFrame, type Change, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { Replica, SyncEngine } from '@syncline/client';
import type { SyncServer } from '@syncline/server';
import { cleanupStack, counter, countOf, isSynced, putChange, RawClient, replica, startServer, sync, uniqueName, waitUntil } from '../sync/harness.js';

const SPACE = 'default' as SpaceId;
const MAX_FRAME = MIN_FRAME_BYTES; // the least a server may run with
const MAX_BATCH = 20;
const schema = { events: {} } as const;

const cleanup = cleanupStack();
let server: SyncServer;
let g1: Replica;
let g2: Replica;
let s1: SyncEngine;
let s2: SyncEngine;

beforeAll(async () => {
  server = await startServer({ limits: { maxFrameBytes: MAX_FRAME, maxBatch: MAX_BATCH, messagesPerSecond: 100 } });
  g1 = await replica({ name: uniqueName('good-1'), schema });
  g2 = await replica({ name: uniqueName('good-2'), schema });
  s1 = sync(g1, server.url, { batchSize: 10 });
  s2 = sync(g2, server.url, { batchSize: 10 });
  cleanup.push(() => server.close(), () => g1.close(), () => g2.close(), () => s1.close(), () => s2.close());
  await g1.put('events', 'before', { from: 'g1' });
  await waitUntil(async () => isSynced(s1) && isSynced(s2) && (await countOf(g2, 'events')) === 1, 5_000, 'the good replicas to sync');
});
afterAll(() => cleanup.run());

let raws = 0;
/** A fresh raw connection (and a fresh replica id for it). */
async function raw(): Promise<{ client: RawClient; replica: ReplicaId }> {
  const client = await RawClient.open(server.url);
  cleanup.push(() => client.close());
  return { client, replica: `raw${++raws}` as ReplicaId };
}

/** Sends `frame` as the first thing on a new connection; expects a fatal `code` and a close. */
async function expectFatal(frame: Uint8Array | string, code: string): Promise<void> {
  const { client } = await raw();
  client.sendBytes(frame);
  const error = await client.error(code);
  expect(error.fatal).toBe(true);
  expect((await client.waitClosed()).code).toBe(1008);
  expect(client.undecodable).toEqual([]);
}

function jsonFrame(json: unknown): Uint8Array {
  return writeFrame(json, []);
}

function hello(replica: string, protocol = PROTOCOL_VERSION): Uint8Array {
  return encodeUpstream({ type: 'hello', protocol, replica: replica as ReplicaId, spaces: [{ space: SPACE, after: 0 }], time: Date.now() });
}

function changes(replica: ReplicaId, count: number, first = 1, options: { wall?: number } = {}): Change[] {
  return Array.from({ length: count }, (_, i) => putChange(replica, SPACE, first + i, { i }, options));
}

describe('refused frames', () => {
  it('malformed frames: malformed_frame / invalid_message, fatal', async () => {
    const text = (s: string) => new TextEncoder().encode(s);
    await expectFatal(Uint8Array.from([0x00, 0x01, 0x02]), 'malformed_frame'); // no marker
    await expectFatal(Uint8Array.from([0x53]), 'malformed_frame'); // truncated header
    await expectFatal(Uint8Array.from([0x53, 0x00, 0x05, 0x7b, 0x7d]), 'malformed_frame'); // lengths do not add up
    await expectFatal(Uint8Array.from([0x53, 0x00, 0x09, ...text('{not json')]), 'malformed_frame');
    await expectFatal(Uint8Array.from([0x53, 0x00, 0x02, 0xc3, 0x28]), 'malformed_frame'); // not UTF-8
    await expectFatal(Uint8Array.from([0x53, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'malformed_frame'); // varint too long
    await expectFatal(Uint8Array.from([0x53, 0x01, 0xff, 0xff, 0x7f, 0x02, ...text('{}')]), 'malformed_frame'); // attachment beyond the frame
    await expectFatal(jsonFrame(null), 'invalid_message');
    await expectFatal(jsonFrame([1, 2, 3]), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'nope' }), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'hello' }), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'hello', protocol: 1, replica: 'has spaces', spaces: [], time: 0 }), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'hello', protocol: 1, replica: 'ok', spaces: [{ space: SPACE, after: -1 }], time: 0 }), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'push', space: SPACE, changes: [{ op: 'put' }] }), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'ping', id: 1.5 }), 'invalid_message');
    // A version vector entry must be a [replica, seq] array, not an array-like object.
    const version = { space: SPACE, collection: 'events', id: 'v', replica: 'rawv', seq: 1, hlc: formatTimestamp({ wall: Date.now(), counter: 0, replica: 'rawv' as ReplicaId }), op: 'version', value: {} };
    await expectFatal(jsonFrame({ type: 'push', space: SPACE, changes: [{ ...version, context: [null] }] }), 'invalid_message');
    await expectFatal(jsonFrame({ type: 'push', space: SPACE, changes: [{ ...version, context: [{ 0: 'other', 1: 1, length: 2 }] }] }), 'invalid_message');
    // Values nested deeper than JSON's limit (64), modestly and absurdly.
    const nest = (depth: number): unknown => (depth === 0 ? 1 : [nest(depth - 1)]);
    await expectFatal(jsonFrame({ type: 'push', space: SPACE, changes: [{ ...version, op: 'put', fields: { deep: nest(100) } }] }), 'invalid_message');
    await expectFatal(Uint8Array.from([0x53, 0x00, 0xc0, 0x3e, ...text(`${'['.repeat(4000)}${']'.repeat(4000)}`)]), 'invalid_message');
    // A bytes field pointing at an attachment that is not there.
    await expectFatal(jsonFrame({ type: 'push', space: SPACE, changes: [{ ...version, op: 'crdt', field: 'f', type: 'text', update: 3 }] }), 'invalid_message');
  });

  it('a text frame: malformed_frame, fatal', async () => {
    await expectFatal('{"type":"hello"}', 'malformed_frame');
  });

  it('a wrong protocol version: unsupported_protocol, fatal', async () => {
    await expectFatal(hello('rawproto', 999), 'unsupported_protocol');
  });

  it('an oversized frame: frame_too_large, fatal; one beyond the hard cap is cut off', async () => {
    const big = encodeUpstream({ type: 'push', space: SPACE, changes: [putChange('rawbig' as ReplicaId, SPACE, 1, { blob: 'x'.repeat(MAX_FRAME) })] });
    expect(big.length).toBeGreaterThan(MAX_FRAME);
    await expectFatal(big, 'frame_too_large');
    // Past the socket's own cap (4x) ws closes the connection itself (1009, message too big).
    const { client } = await raw();
    client.sendBytes(new Uint8Array(MAX_FRAME * 4 + 1).fill(0x53));
    expect((await client.waitClosed()).code).toBe(1009);
  });

  it('push before hello: not_ready, fatal', async () => {
    await expectFatal(encodeUpstream({ type: 'push', space: SPACE, changes: changes('rawearly' as ReplicaId, 1) }), 'not_ready');
  });

  it('a space listed twice in hello: invalid_message, fatal (not an endless resend)', async () => {
    // Something to resend: the good replicas' change is in the log.
    expect(await server.storage.head(SPACE)).toBeGreaterThan(0);
    const { client, replica } = await raw();
    client.send({ type: 'hello', protocol: PROTOCOL_VERSION, replica, spaces: [{ space: SPACE, after: 0 }, { space: SPACE, after: 0 }], time: Date.now() });
    expect(await client.error('invalid_message')).toMatchObject({ fatal: true });
    await client.waitClosed();
    expect(client.messages.map((m) => m.type)).toEqual(['error']);
  });

  it('hello twice: invalid_message, fatal', async () => {
    const { client, replica } = await raw();
    await client.hello(replica, [{ space: SPACE }]);
    client.sendBytes(hello(replica));
    expect(await client.error('invalid_message')).toMatchObject({ fatal: true });
    await client.waitClosed();
  });
});

describe('refused pushes (the connection stays open)', () => {
  it('each bad push gets its code, and nothing of it is stored', async () => {
    const { client, replica } = await raw();
    await client.hello(replica, [{ space: SPACE }]);
    const other = 'someoneelse' as ReplicaId;
    const future = Date.now() + 60 * 60_000;
    const cases: Array<[string, Change[] | (() => Uint8Array), string]> = [
      ['a batch over the limit', changes(replica, MAX_BATCH + 1), 'batch_too_large'],
      ['an HLC an hour ahead', changes(replica, 1, 1, { wall: future }), 'clock_drift'],
      ['a change written by another replica', changes(other, 1), 'invalid_message'],
      ['an HLC of another replica', [{ ...(changes(replica, 1)[0] as Change), hlc: formatTimestamp({ wall: Date.now(), counter: 0, replica: other }) }], 'invalid_message'],
      ['a change of another space', [{ ...(changes(replica, 1)[0] as Change), space: 'elsewhere' as SpaceId }], 'invalid_message'],
      ['a gap inside the push', [...changes(replica, 1, 1), ...changes(replica, 1, 3)], 'sequence_gap'],
      ['a gap after what the server holds', changes(replica, 2, 5), 'sequence_gap'],
      ['a crdt update that is not Yjs', [{ ...(changes(replica, 1)[0] as Change), op: 'crdt', field: 'body', type: 'text', update: Uint8Array.from([0xff, 0xff, 0xff, 0x01, 0x02]) } as Change], 'invalid_message'],
      ['a field name that is not a name', [putChange(replica, SPACE, 1, { ['']: 1 })], 'invalid_message'],
      // Found by the live fuzz: Y.applyUpdate accepts these bytes, Y.decodeUpdate (what storage reads) does not.
      [
        'a crdt update Yjs applies but cannot decode',
        [{ ...(changes(replica, 1)[0] as Change), op: 'crdt', field: 'f', type: 'array', update: Buffer.from('0101b865c98ad1488ad1aafe01000277007d08018ad1aafe01010001', 'hex') } as Change],
        'invalid_message',
      ],
      ['a space not asked for in hello', () => encodeUpstream({ type: 'push', space: 'notmine' as SpaceId, changes: [{ ...(changes(replica, 1)[0] as Change), space: 'notmine' as SpaceId }] }), 'forbidden'],
    ];
    for (const [what, payload, code] of cases) {
      const since = client.messages.length;
      client.sendBytes(typeof payload === 'function' ? payload() : encodeUpstream({ type: 'push', space: SPACE, changes: payload }));
      const error = await client.next('error', () => true, since);
      expect([what, error.code, error.fatal]).toEqual([what, code, false]);
      expect(client.closed).toBeUndefined();
    }
    expect(client.of('ack')).toEqual([]);
    const stored = await server.storage.readLog(SPACE, 0, 10_000);
    expect(stored.filter((e) => e.change.replica === replica || e.change.replica === other)).toEqual([]);
    expect(await server.storage.head('elsewhere' as SpaceId)).toBe(0);
    expect(await server.storage.head('notmine' as SpaceId)).toBe(0);

    // The same connection can still push valid changes afterwards.
    client.send({ type: 'push', space: SPACE, changes: changes(replica, 3) });
    expect(await client.next('ack')).toMatchObject({ space: SPACE, upTo: 3 });
    // And pushing them again is acknowledged again, not stored twice.
    const before = await server.storage.head(SPACE);
    client.send({ type: 'push', space: SPACE, changes: changes(replica, 3) });
    await waitUntil(() => client.of('ack').length === 2, 5_000, 'the second ack');
    expect(await server.storage.head(SPACE)).toBe(before);
  });

  it('a flood of messages: rate_limited', async () => {
    const { client, replica } = await raw();
    await client.hello(replica, [{ space: SPACE }]);
    for (let i = 0; i < 300; i++) client.send({ type: 'ping', id: i });
    expect(await client.error('rate_limited')).toMatchObject({ fatal: false });
    expect(client.of('pong').length).toBeLessThan(300);
  });
});

describe('after all that', () => {
  it('the server kept its data clean and the good replicas still sync both ways', async () => {
    await g1.put('events', 'after-1', { from: 'g1' });
    await g2.put('events', 'after-2', { from: 'g2' });
    // 1 + 2 from the good replicas, 3 valid ones pushed by hand.
    await waitUntil(async () => (await countOf(g1, 'events')) === 6 && (await countOf(g2, 'events')) === 6 && isSynced(s1) && isSynced(s2), 5_000, 'both good replicas to exchange changes');
    expect((await g1.get('events', 'after-2'))?.value).toEqual({ from: 'g2' });
    expect((await g2.get('events', 'after-1'))?.value).toEqual({ from: 'g1' });
    expect(s1.status.error).toBeUndefined();
    expect(s2.status.error).toBeUndefined();
    // Stored: the good replicas' 3 changes and the 3 valid ones pushed by hand, nothing else.
    const log = await server.storage.readLog(SPACE, 0, 10_000);
    expect(log.map((e) => e.pos)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(log.map((e) => e.change.replica))).toEqual(new Set([g1.id, g2.id, log.find((e) => e.change.replica.startsWith('raw'))?.change.replica]));
    expect(await server.storage.spaces()).toEqual([SPACE]);
    expect(await counter(server.metrics.errors, { code: 'internal' })).toBe(0);
    const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    expect(health.status).toBe(200);
  });
});

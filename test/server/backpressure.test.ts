/**
 * Backpressure: a reader that stops reading (its socket paused, so the kernel
 * buffers fill and the server's ws send buffer is all that can grow) while
 * another client pushes megabytes. The server's send buffer for it stays bounded
 * by limits.maxBufferedBytes (plus the frame that crossed the line); when the
 * reader resumes it still receives every change, from the log; a reader that
 * stays paused past slowConsumerTimeoutMs is dropped with 'slow_consumer'. A
 * normal reader is unaffected throughout.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Change, ReplicaId, SpaceId } from '@syncline/core/internal';
import type { SyncServer } from '@syncline/server';
import { cleanupStack, counter, countOf, isSynced, putChange, RawClient, replica, startServer, sync, uniqueName, waitUntil } from '../sync/harness.js';

const SPACE = 'default' as SpaceId;
const MAX_BUFFERED = 256 * 1024;
const RELAY_BATCH = 20;
const PAYLOAD = 'x'.repeat(8 * 1024);
const CHANGES = 2_400; // ~20 MB: far more than loopback's kernel buffers absorb
const PUSH = 50;

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

/**
 * Watches every server-side ws socket: the largest bufferedAmount seen right
 * after a send (the server only ever sends through ws.send).
 */
const peak = new Map<WebSocket, number>();
const originalSend = WebSocket.prototype.send;
beforeAll(() => {
  WebSocket.prototype.send = function (this: WebSocket & { _isServer?: boolean }, ...args: Parameters<WebSocket['send']>) {
    const result = originalSend.apply(this, args);
    if (this._isServer) peak.set(this, Math.max(peak.get(this) ?? 0, this.bufferedAmount));
    return result;
  } as WebSocket['send'];
});
afterAll(() => {
  WebSocket.prototype.send = originalSend;
});

async function setup(slowConsumerTimeoutMs: number): Promise<{ server: SyncServer; slow: RawClient; writer: RawClient }> {
  const server = await startServer({ limits: { maxBufferedBytes: MAX_BUFFERED, slowConsumerTimeoutMs, relayBatch: RELAY_BATCH, messagesPerSecond: 10_000 } });
  cleanup.push(() => server.close());
  const slow = await RawClient.open(server.url);
  const writer = await RawClient.open(server.url);
  cleanup.push(() => slow.close(), () => writer.close());
  await slow.hello('slowreader' as ReplicaId, [{ space: SPACE }]);
  await slow.next('synced');
  await writer.hello('writer' as ReplicaId, [{ space: SPACE }]);
  peak.clear();
  // Stop reading: what the server sends piles up in the kernel, then in ws.
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  return { server, slow, writer };
}

/** Pushes `count` 8 KiB changes, PUSH at a time, each push waiting for its ack. */
async function push(writer: RawClient, count: number, first = 1): Promise<void> {
  for (let seq = first; seq < first + count; seq += PUSH) {
    const changes: Change[] = [];
    for (let s = seq; s < Math.min(seq + PUSH, first + count); s++) changes.push(putChange('writer' as ReplicaId, SPACE, s, { payload: PAYLOAD, s }, { id: `w${s}` }));
    const since = writer.messages.length;
    writer.send({ type: 'push', space: SPACE, changes });
    await writer.next('ack', (m) => m.upTo === (changes.at(-1) as Change).seq, since, 10_000);
  }
}

const maxPeak = (): number => Math.max(0, ...peak.values());

describe('a reader that stops reading', () => {
  it('is held to a bounded send buffer, and gets every change from the log when it resumes', async () => {
    const { server, slow, writer } = await setup(60_000);
    // A normal reader alongside.
    const fast = await replica({ name: uniqueName('fast-reader'), schema: { events: {} } });
    cleanup.push(() => fast.close());
    const engine = sync(fast, server.url);
    cleanup.push(() => engine.close());
    await waitUntil(() => isSynced(engine), 5_000, 'the fast reader to sync');

    await push(writer, CHANGES);
    expect(await server.storage.head(SPACE)).toBe(CHANGES);

    // The kernel buffers filled and the server held back: its buffer for the slow
    // reader reached the limit but never grew past it by more than one frame. (The
    // relay keeps no queue of its own, so this buffer is the memory a slow reader
    // can cost; ~20 MB went through meanwhile.)
    const frame = RELAY_BATCH * (PAYLOAD.length + 400);
    expect(maxPeak()).toBeGreaterThanOrEqual(MAX_BUFFERED);
    expect(maxPeak()).toBeLessThanOrEqual(MAX_BUFFERED + frame);

    // The normal reader got everything meanwhile.
    await waitUntil(async () => (await countOf(fast, 'events')) === CHANGES, 15_000, 'the fast reader to receive every change');

    // Resume: the slow reader receives every change, once, in order.
    expect(slow.closed).toBeUndefined();
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const received = (): Change[] => slow.of('changes').flatMap((m) => m.changes);
    await waitUntil(() => received().length >= CHANGES, 20_000, 'the slow reader to receive every change');
    expect(received().map((c) => c.seq)).toEqual(Array.from({ length: CHANGES }, (_, i) => i + 1));
    const upTos = slow.of('changes').map((m) => m.upTo);
    expect(upTos).toEqual([...upTos].sort((a, b) => a - b));
    expect(upTos.at(-1)).toBe(CHANGES);
    expect(slow.of('error')).toEqual([]);
    expect(maxPeak()).toBeLessThanOrEqual(MAX_BUFFERED + frame);

    // And it is live again afterwards.
    await push(writer, 10, CHANGES + 1);
    await waitUntil(() => received().length === CHANGES + 10, 5_000, 'live changes after the catch-up');
  });

  it('is dropped with slow_consumer when it stays paused past slowConsumerTimeoutMs', async () => {
    const { server, slow, writer } = await setup(300);
    const connected = server.connections;
    await push(writer, CHANGES);
    await waitUntil(async () => (await counter(server.metrics.errors, { code: 'slow_consumer' })) === 1, 10_000, 'the slow reader to be dropped');
    await waitUntil(() => server.connections === connected - 1, 5_000, 'its session to end');
    expect(maxPeak()).toBeLessThanOrEqual(MAX_BUFFERED + RELAY_BATCH * (PAYLOAD.length + 400));
    // The writer was not affected.
    expect(writer.closed).toBeUndefined();
    expect(writer.of('error')).toEqual([]);

    // Once it reads again it finds the coded error and the close.
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await slow.error('slow_consumer', 0, 10_000)).toMatchObject({ fatal: true });
    expect((await slow.waitClosed(10_000)).code).toBe(1008);
  });
});

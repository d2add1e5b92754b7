/**
 * Changes frames that arrive together are applied together (sync-engine.ts,
 * #drain): a scripted server (a socket the test drives) sends a burst of
 * single-change `changes` frames of a region, with acks and another space's
 * frame in between. The replica applies them in fewer transactions than
 * frames, in order, and its cursor ends at the last position with, per origin,
 * the highest position any frame covered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createReplica, memoryStorage, startSync, type Replica } from '@syncline/client';
import { decodeUpstream, encodeDownstream, PROTOCOL_VERSION, type DownstreamMessage, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { portOf } from '../internals.js';
import { cleanupStack, putChange, uniqueName, waitUntil } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const A = 'alpha' as SpaceId;
const B = 'beta' as SpaceId;

/** A socket class whose one instance the test drives: `deliver` hands the client frames in one macrotask. */
function scriptedServer() {
  let socket: { onmessage: ((event: { data: unknown }) => void) | null; onopen: ((event: unknown) => void) | null } | undefined;
  const sent: string[] = [];
  class Scripted {
    onopen: ((event: unknown) => void) | null = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    onmessage: ((event: { data: unknown }) => void) | null = null;
    binaryType = 'arraybuffer';
    readyState = 1;
    constructor() {
      setTimeout(() => this.onopen?.({}), 0);
    }
    send(data: Uint8Array): void {
      sent.push(decodeUpstream(data).type);
    }
    close(): void {
      this.readyState = 3;
    }
  }
  const deliver = (messages: readonly DownstreamMessage[]): void => {
    for (const m of messages) {
      const bytes = encodeDownstream(m);
      socket?.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
    }
  };
  // The engine constructs the socket: the instance is kept as it is made.
  const factory = function (url: string) {
    const made = new Scripted();
    socket = made;
    void url;
    return made;
  } as unknown as typeof Scripted;
  return { factory, sent, deliver };
}

describe('changes frames that arrive together', () => {
  it('are applied in fewer transactions than frames, in order, with the last position and the highest position per origin', async () => {
    const base = memoryStorage();
    let writes = 0;
    // The storage the replica opens, counting its read-write transactions.
    const storage = async (name: string) => {
      const opened = await base(name);
      return new Proxy(opened, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property === 'transaction') return (mode: string, fn: unknown) => (mode === 'readwrite' && writes++, (value as (m: string, f: unknown) => unknown).call(target, mode, fn));
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    };
    const r = (await createReplica({ name: uniqueName('coalesce'), schema: { events: {} }, storage, tabs: false })) as unknown as Replica;
    cleanup.push(() => r.close());
    const server = scriptedServer();
    const engine = startSync(r, { url: 'ws://scripted/sync', WebSocket: server.factory as never, spaces: [A, B] });
    cleanup.push(() => engine.close());
    await waitUntil(() => server.sent.includes('hello'), 5_000, 'the hello');
    server.deliver([{ type: 'welcome', protocol: PROTOCOL_VERSION, server: 's', time: Date.now(), spaces: [{ space: A, access: 'write', head: 0 }, { space: B, access: 'write', head: 0 }], region: 'a' }]);
    await waitUntil(() => engine.status.state !== 'connecting', 5_000, 'the welcome to be handled');
    const before = writes;
    const other = 'other' as ReplicaId;
    const burst: DownstreamMessage[] = [];
    // 60 frames of one change each; positions 1..60; origins alternate between regions a and b, each growing.
    for (let i = 1; i <= 60; i++) {
      burst.push({ type: 'changes', space: A, changes: [putChange(other, A, i, { n: i }, { id: `e${i % 7}`, wall: 1_700_000_000_000 + i })], upTo: i, origins: [{ region: i % 2 ? 'a' : 'b', upTo: i }] });
      // Another space's frame in the middle: handled in its turn, not merged.
      if (i === 30) burst.push({ type: 'changes', space: B, changes: [putChange(other, B, 1, { n: 0 }, { id: 'b0' })], upTo: 1, origins: [{ region: 'a', upTo: 1 }] });
    }
    server.deliver(burst);
    await waitUntil(async () => (await portOf(r).position(A)).upTo === 60 && (await portOf(r).position(B)).upTo === 1, 5_000, 'every frame to be applied');
    // e(i % 7) was last written by the largest i with that remainder: the frames applied in order.
    for (let k = 0; k < 7; k++) {
      const last = Math.max(...Array.from({ length: 60 }, (_, i) => i + 1).filter((i) => i % 7 === k));
      expect((await r.get('events', `e${k}`, { space: A }))?.value).toEqual({ n: last });
    }
    expect((await portOf(r).position(A)).origins).toEqual({ a: 59, b: 60 });
    expect((await portOf(r).position(B)).origins).toEqual({ a: 1 });
    // One transaction per frame would be 61; arriving together, they share a few.
    expect(writes - before).toBeLessThan(20);
  });
});

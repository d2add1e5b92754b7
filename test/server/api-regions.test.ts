/**
 * The change feed with regions (server README, "Backend API"): each change
 * carries its origin region and position there, each page the origin vector
 * the reader holds, and a reader that moves from one region to another with it
 * (the long-poll's `origins`, or an SSE event id as Last-Event-ID) gets every
 * change once, wherever it was cut.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SpaceId } from '@syncline/core/internal';
import { createSyncServer, sqliteStorage, type SyncServer } from '@syncline/server';
import { cleanupStack, freePort, replica, silent, sync, uniqueName, waitUntil } from '../sync/harness.js';
import { call, expectDocumented } from './fixtures/api.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const SPACE = 'team' as SpaceId;
const schema = { events: {} } as const;
const FEED = `/api/v1/spaces/${SPACE}/changes`;

type Change = { pos: number; replica: string; seq: number; origin: string; originPos: number };

/** Two regions following each other, each with a client that has written `count` records; resolves once both logs hold all. */
async function twoRegions(count: number): Promise<{ a: SyncServer; b: SyncServer }> {
  const [pa, pb] = [await freePort(), await freePort()];
  const start = async (name: string, port: number, peer: number) => {
    const server = createSyncServer({ port, storage: sqliteStorage({ path: ':memory:' }), logger: silent, region: name, peers: [`ws://127.0.0.1:${peer}`] });
    await server.listen();
    cleanup.push(() => server.close());
    return server;
  };
  const a = await start('eu', pa, pb);
  const b = await start('us', pb, pa);
  await Promise.all(
    [a, b].map(async (server, i) => {
      const r = await replica({ name: uniqueName(`w${i}`), schema });
      const engine = sync(r, server.url, { spaces: [SPACE] });
      cleanup.push(() => engine.close(), () => r.close());
      for (let k = 0; k < count; k++) await r.put('events', `${i}-${k}`, { k }, { space: SPACE });
    }),
  );
  await waitUntil(async () => (await a.storage.head(SPACE)) === 2 * count && (await b.storage.head(SPACE)) === 2 * count, 20_000, 'both logs to hold every change');
  return { a, b };
}

const key = (c: Change) => `${c.replica}:${c.seq}`;

/** Reads SSE `change` events from `path` until `until` says stop; resolves to them and the last event id. */
async function readStream(server: SyncServer, path: string, until: (changes: Change[]) => boolean, lastEventId?: string): Promise<{ changes: Change[]; lastId: string }> {
  const controller = new AbortController();
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: lastEventId ? { 'last-event-id': lastEventId } : {}, signal: controller.signal });
  expect(res.status).toBe(200);
  const changes: Change[] = [];
  let lastId = '';
  let buffer = '';
  const decoder = new TextDecoder();
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  try {
    while (!until(changes)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map(event.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)] as const));
        if (fields.get('event') !== 'change') continue;
        changes.push(JSON.parse(fields.get('data') as string) as Change);
        lastId = fields.get('id') as string;
        if (until(changes)) break;
      }
    }
  } finally {
    controller.abort();
  }
  return { changes, lastId };
}

describe('the change feed with regions', () => {
  it('a reader that moves to another region with its origins gets every change once (long-poll, random cuts)', async () => {
    const count = 40;
    const { a, b } = await twoRegions(count);
    for (let round = 0; round < 6; round++) {
      // From a, a random number of random-sized pages; then b from the origins of the last page.
      const got: Change[] = [];
      let after = 0;
      let origins = '';
      const pages = 1 + Math.floor(Math.random() * 4);
      for (let p = 0; p < pages; p++) {
        const page = await call(a, 'GET', `${FEED}?after=${after}&limit=${1 + Math.floor(Math.random() * 15)}`);
        expectDocumented('/api/v1/spaces/{space}/changes', page);
        got.push(...(page.body['changes'] as Change[]));
        after = page.body['upTo'] as number;
        origins = page.body['origins'] as string;
      }
      expect(origins).toMatch(/^(eu:\d+)?(,?us:\d+)?$/);
      for (const c of got) expect(['eu', 'us']).toContain(c.origin);
      let page = await call(b, 'GET', `${FEED}?origins=${encodeURIComponent(origins)}&limit=${1 + Math.floor(Math.random() * 30)}`);
      for (;;) {
        expect(page.status).toBe(200);
        got.push(...(page.body['changes'] as Change[]));
        if ((page.body['changes'] as Change[]).length === 0 && page.body['upTo'] === (await b.storage.head(SPACE))) break;
        // Followed by origins from here on: a position of b's log would not say what the reader held besides it.
        page = await call(b, 'GET', `${FEED}?origins=${encodeURIComponent(page.body['origins'] as string)}&limit=${1 + Math.floor(Math.random() * 30)}`);
      }
      const keys = got.map(key);
      expect(new Set(keys).size, `round ${round}: no change twice`).toBe(keys.length);
      expect(keys.length, `round ${round}: every change`).toBe(2 * count);
      // The last origins name both regions' logs to their ends.
      expect(page.body['origins']).toBe(`eu:${count},us:${count}`);
    }
    // Bad origins, origins with after, and origins on a server without regions are refused.
    expect((await call(a, 'GET', `${FEED}?origins=eu`)).status).toBe(400);
    expect((await call(a, 'GET', `${FEED}?origins=eu:1&after=2`)).status).toBe(400);
  });

  it('an event stream resumes in another region from its last event id', async () => {
    const count = 30;
    const { a, b } = await twoRegions(count);
    for (const cut of [1, 17, 45]) {
      const first = await readStream(a, `${FEED}/stream`, (changes) => changes.length >= cut);
      expect(first.changes).toHaveLength(cut);
      expect(first.lastId).toMatch(/^[a-z]+:\d+/);
      const rest = await readStream(b, `${FEED}/stream`, (changes) => first.changes.length + changes.length >= 2 * count, first.lastId);
      const keys = [...first.changes, ...rest.changes].map(key);
      expect(new Set(keys).size, `cut at ${cut}`).toBe(2 * count);
      expect(keys).toHaveLength(2 * count);
    }
  });

  it('without regions, changes carry no origin and origins are refused', async () => {
    const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: silent });
    await server.listen();
    cleanup.push(() => server.close());
    const page = await call(server, 'GET', FEED);
    expect(page.body['origins']).toBeUndefined();
    const refused = await call(server, 'GET', `${FEED}?origins=eu:1`);
    expect(refused.status).toBe(400);
    expect(refused.body['message']).toContain('regions');
  });
});

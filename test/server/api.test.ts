/**
 * The backend API (server README, "Backend API"): service tokens only; the
 * records of a space, paged; the change feed long-polled and as Server-Sent
 * Events, each resumable from the last position handled after any cut, with
 * every change exactly once and in log order (a randomized test over cuts);
 * a compacted position answered 410 and the records' head to follow from.
 */
import { request, type ClientRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReplicaId, SpaceId } from '@syncline/core/internal';
import { sqliteStorage, type SyncServer } from '@syncline/server';
import { cleanupStack, putChange, RawClient, startServer } from '../sync/harness.js';
import { call, expectDocumented, get, SECRET, token } from './fixtures/api.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const SPACE = 'team' as SpaceId;

/** A writer over the sync protocol: pushes puts of ids `e<seq>` and waits for their acks. */
async function writer(server: SyncServer, name: string) {
  const raw = await RawClient.open(server.url);
  cleanup.push(() => raw.close());
  const replica = name as ReplicaId;
  await raw.hello(replica, [{ space: SPACE }], await token({ spaces: { [SPACE]: 'write' } }));
  let seq = 0;
  return {
    replica,
    async put(count: number, id = (s: number) => `e${s}`): Promise<void> {
      const changes = Array.from({ length: count }, () => {
        seq++;
        return putChange(replica, SPACE, seq, { n: seq, by: name }, { id: id(seq) });
      });
      raw.send({ type: 'push', space: SPACE, changes });
      const upTo = seq;
      await raw.next('ack', (m) => m.upTo >= upTo, 0, 10_000);
    },
  };
}

/** A JWT server, a writer that has written `count` changes (ids e1 …), and a service token that reads SPACE. */
async function written(name: string, count: number) {
  const server = await startServer({ jwt: { secret: SECRET } });
  cleanup.push(() => server.close());
  const w = await writer(server, name);
  await w.put(count);
  return { server, w, svc: await token({ role: 'service', spaces: { [SPACE]: 'read' } }) };
}

describe('backend API', () => {
  it('takes service tokens only, for their spaces', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const path = `/api/v1/spaces/${SPACE}/changes`;
    expect((await get(server, path)).body).toMatchObject({ code: 'unauthenticated' });
    expect((await get(server, path, 'not-a-jwt')).status).toBe(401);
    const client = await get(server, path, await token({ spaces: { [SPACE]: 'write' } }));
    expect(client.status).toBe(403);
    expect(client.body['message']).toContain('service token');
    expect((await get(server, path, await token({ role: 'service', spaces: { other: 'read' } }))).status).toBe(403);
    expect((await get(server, path, await token({ role: 'service', spaces: { [SPACE]: 'read' } }))).status).toBe(200);
    const svc = await token({ role: 'service', spaces: { '*': 'read' } });
    expect((await get(server, '/api/v1/nothing', svc)).status).toBe(404);
    expect((await get(server, `${path}?limit=0`, svc)).body).toMatchObject({ code: 'invalid_request' });
    expect((await get(server, `${path}?wait=999`, svc)).status).toBe(400);
    const post = await fetch(`http://127.0.0.1:${server.port}${path}`, { method: 'POST', headers: { authorization: `Bearer ${svc}` } });
    expect(post.status).toBe(405);
  });

  it('pages the records that exist, with the head to follow the feed from', async () => {
    const { server, svc } = await written('recwriter', 25);
    const seen: string[] = [];
    let cursor: string | undefined;
    let heads: number | undefined;
    do {
      const page = await get(server, `/api/v1/spaces/${SPACE}/records?limit=10${cursor ? `&after=${cursor}` : ''}`, svc);
      expect(page.status).toBe(200);
      heads = page.body['head'] as number;
      for (const r of page.body['records'] as Array<{ id: string; value: { n: number } }>) {
        expect(r.value.n).toBe(Number(r.id.slice(1)));
        seen.push(r.id);
      }
      cursor = page.body['next'] as string | undefined;
    } while (cursor);
    expect(seen.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `e${i + 1}`).sort());
    expect(heads).toBe(25);
    expect((await get(server, `/api/v1/spaces/${SPACE}/records?after=garbage`, svc)).status).toBe(400);
  });

  it('queries one collection, and an id range of it, paged; deleted records are left out', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const svc = await token({ role: 'service', spaces: { [SPACE]: 'write' } });
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'é', '😀'];
    const writes = [
      ...ids.map((id) => ({ op: 'put', collection: 'events', id, fields: { id } })),
      ...ids.map((id) => ({ op: 'put', collection: 'tasks', id, fields: { id } })),
      { op: 'put', collection: 'eventsx', id: 'a', fields: {} },
      { op: 'delete', collection: 'events', id: 'e' },
    ];
    expect((await call(server, 'POST', `/api/v1/spaces/${SPACE}/writes`, { bearer: svc, body: { writes } })).status).toBe(200);
    const all = async (query: string, limit: number): Promise<string[]> => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await get(server, `/api/v1/spaces/${SPACE}/records?${query}&limit=${limit}${cursor ? `&after=${cursor}` : ''}`, svc);
        expect(page.status).toBe(200);
        expectDocumented('/api/v1/spaces/{space}/records', page);
        for (const r of page.body['records'] as Array<{ collection: string; id: string }>) seen.push(`${r.collection}/${r.id}`);
        cursor = page.body['next'] as string | undefined;
      } while (cursor);
      return seen;
    };
    const events = ids.filter((id) => id !== 'e').map((id) => `events/${id}`);
    for (const limit of [1, 2, 3, 1000]) {
      expect(await all('collection=events', limit)).toEqual(events);
      expect(await all('collection=events&from=c&to=g', limit)).toEqual(['events/c', 'events/d', 'events/f']);
      // By UTF-8 bytes: é (C3 A9) before 😀 (F0 9F 98 80); from a deleted id.
      expect(await all(`collection=events&from=e&to=${encodeURIComponent('😀')}`, limit)).toEqual(['events/f', 'events/g', 'events/h', 'events/é']);
      expect(await all(`collection=tasks&from=${encodeURIComponent('é')}`, limit)).toEqual(['tasks/é', 'tasks/😀']);
    }
    expect((await get(server, `/api/v1/spaces/${SPACE}/records?from=a`, svc)).status).toBe(400);
  });

  it('long-polls the change feed: a page, a wait that ends with the next commit, an empty page when none comes', async () => {
    const { server, w, svc } = await written('pollwriter', 3);
    const first = await get(server, `/api/v1/spaces/${SPACE}/changes?after=0`, svc);
    expect(first.body['upTo']).toBe(3);
    expect(first.body['changes']).toEqual([1, 2, 3].map((seq) => ({ pos: seq, collection: 'events', id: `e${seq}`, replica: w.replica, seq, hlc: expect.any(String), op: 'put', fields: { n: seq, by: 'pollwriter' } })));
    const waiting = get(server, `/api/v1/spaces/${SPACE}/changes?after=3&wait=10`, svc);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    await w.put(1);
    const next = await waiting;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((next.body['changes'] as Array<{ pos: number }>).map((c) => c.pos)).toEqual([4]);
    const idle = await get(server, `/api/v1/spaces/${SPACE}/changes?after=4&wait=1`, svc);
    expect({ status: idle.status, body: idle.body }).toEqual({ status: 200, body: { space: SPACE, changes: [], upTo: 4 } });
  });

  it('a long-poll misses no commit made between its read and its wait', async () => {
    // The storage commits a change right after the long-poll's read of the log, before it starts waiting.
    const inner = sqliteStorage({ path: ':memory:' });
    let armed = false;
    const late: { writer?: Awaited<ReturnType<typeof writer>> } = {};
    const storage = new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'readLog' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          const page = await (value as (...a: unknown[]) => Promise<unknown[]>).apply(target, args);
          if (armed && page.length === 0) {
            armed = false;
            await late.writer?.put(1);
          }
          return page;
        };
      },
    });
    const server = await startServer({ jwt: { secret: SECRET }, storage });
    cleanup.push(() => server.close());
    const w = await writer(server, 'racewriter');
    late.writer = w;
    await w.put(1);
    const svc = await token({ role: 'service', spaces: { [SPACE]: 'read' } });
    armed = true;
    const started = Date.now();
    const page = await get(server, `/api/v1/spaces/${SPACE}/changes?after=1&wait=20`, svc);
    expect((page.body['changes'] as Array<{ pos: number }>).map((c) => c.pos)).toEqual([2]);
    expect(armed).toBe(false);
    // Woken by the commit, not by the end of its 20 s wait.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a consumer that resumes from its last upTo after random cuts gets every change exactly once, in order (long-poll and SSE)', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const writers = await Promise.all(['cutw1', 'cutw2', 'cutw3'].map((n) => writer(server, n)));
    const svc = await token({ role: 'service', spaces: { [SPACE]: 'read' } });
    let seed = 20261207;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const TOTAL = 3 * 100;
    // Writers write in random batches while the consumers read.
    const writing = Promise.all(
      writers.map(async (w, i) => {
        for (let sent = 0; sent < 100; ) {
          const n = Math.min(100 - sent, 1 + Math.floor(random() * 12));
          await w.put(n, (s) => `w${i}-${s}`);
          sent += n;
          await new Promise((resolve) => setTimeout(resolve, random() * 15));
        }
      }),
    );

    // Long-poll, cut by aborting requests at random moments, and every fifth answer lost after the server sent it.
    const polled: number[] = [];
    const ids = new Set<string>();
    const poll = (async () => {
      let after = 0;
      let cuts = 0;
      for (let request = 0; polled.length < TOTAL; request++) {
        const controller = new AbortController();
        const cut = random() < 0.3 ? setTimeout(() => controller.abort(), random() * 30) : undefined;
        try {
          const page = await get(server, `/api/v1/spaces/${SPACE}/changes?after=${after}&limit=${1 + Math.floor(random() * 40)}&wait=2`, svc, controller.signal);
          if (request % 5 === 0) {
            cuts++;
            continue;
          }
          for (const c of page.body['changes'] as Array<{ pos: number; replica: string; seq: number }>) {
            polled.push(c.pos);
            const key = `${c.replica}:${c.seq}`;
            expect(ids.has(key), key).toBe(false);
            ids.add(key);
          }
          after = page.body['upTo'] as number;
        } catch (error) {
          if ((error as Error).name !== 'AbortError') throw error;
          cuts++;
        } finally {
          clearTimeout(cut);
        }
      }
      return cuts;
    })();

    // SSE, cut by destroying the stream at random moments, resumed with Last-Event-ID.
    const streamed: number[] = [];
    const sse = (async () => {
      let last: string | undefined;
      let cuts = 0;
      while (streamed.length < TOTAL) {
        await new Promise<void>((resolve, reject) => {
          let req: ClientRequest | undefined = undefined;
          const limit = 5 + Math.floor(random() * 60);
          let received = 0;
          req = request(
            { host: '127.0.0.1', port: server.port, path: `/api/v1/spaces/${SPACE}/changes/stream`, headers: { authorization: `Bearer ${svc}`, ...(last ? { 'last-event-id': last } : {}) } },
            (res) => {
              expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
              let buffer = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => {
                buffer += chunk;
                let end: number;
                while ((end = buffer.indexOf('\n\n')) >= 0) {
                  const event = buffer.slice(0, end);
                  buffer = buffer.slice(end + 2);
                  const fields = Object.fromEntries(event.split('\n').filter((l) => !l.startsWith(':') && l.includes(': ')).map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]));
                  if (fields['event'] === 'change') {
                    streamed.push((JSON.parse(fields['data'] as string) as { pos: number }).pos);
                    received++;
                  }
                  if (fields['id'] !== undefined) last = fields['id'];
                  // A cut mid-stream: what came before it counts, nothing after it.
                  if (received >= limit || streamed.length >= TOTAL) {
                    res.destroy();
                    (req as ClientRequest).destroy();
                    cuts++;
                    resolve();
                    return;
                  }
                }
              });
              res.on('close', () => resolve());
            },
          );
          req.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(error)));
          req.end();
        });
      }
      return cuts;
    })();

    await writing;
    const [pollCuts, sseCuts] = await Promise.all([poll, sse]);
    expect(pollCuts).toBeGreaterThan(0);
    expect(sseCuts).toBeGreaterThan(2);
    const expected = Array.from({ length: TOTAL }, (_, i) => i + 1);
    expect(polled).toEqual(expected);
    expect(streamed).toEqual(expected);
  });

  it('answers a compacted position with 410 and compactedTo; the records and their head carry on from there', async () => {
    const { server, svc } = await written('compactw', 10);
    await server.compact(3);
    const gone = await get(server, `/api/v1/spaces/${SPACE}/changes?after=2`, svc);
    expect(gone.status).toBe(410);
    expect(gone.body).toMatchObject({ code: 'compacted', compactedTo: 7 });
    const stream = await fetch(`http://127.0.0.1:${server.port}/api/v1/spaces/${SPACE}/changes/stream?after=0`, { headers: { authorization: `Bearer ${svc}` } });
    expect(stream.status).toBe(410);
    const records = await get(server, `/api/v1/spaces/${SPACE}/records`, svc);
    expect((records.body['records'] as unknown[]).length).toBe(10);
    const from = await get(server, `/api/v1/spaces/${SPACE}/changes?after=${records.body['head'] as number}`, svc);
    expect({ status: from.status, body: from.body }).toEqual({ status: 200, body: { space: SPACE, changes: [], upTo: 10 } });
  });

  it('answers as docs/openapi.json says, for every status it documents', async () => {
    const { server, svc } = await written('docwriter', 6);
    const records = '/api/v1/spaces/{space}/records';
    const changes = '/api/v1/spaces/{space}/changes';
    expectDocumented(records, await get(server, `/api/v1/spaces/${SPACE}/records?limit=4`, svc));
    expectDocumented(records, await get(server, `/api/v1/spaces/${SPACE}/records?after=xyz`, svc));
    expectDocumented(records, await get(server, `/api/v1/spaces/${SPACE}/records`));
    expectDocumented(records, await get(server, `/api/v1/spaces/${SPACE}/records`, await token({ spaces: { [SPACE]: 'read' } })));
    const page = await get(server, `/api/v1/spaces/${SPACE}/changes?after=2`, svc);
    expect((page.body['changes'] as unknown[]).length).toBe(4);
    expectDocumented(changes, page);
    expectDocumented(changes, await get(server, `/api/v1/spaces/${SPACE}/changes?after=-1`, svc));
    await server.compact(2);
    const compacted = await get(server, `/api/v1/spaces/${SPACE}/changes?after=0`, svc);
    expect(compacted.status).toBe(410);
    expectDocumented(changes, compacted);
    // The document is checked too: a body it does not describe fails.
    expect(() => expectDocumented(changes, { status: 200, body: { space: SPACE, changes: [{ pos: 1 }], upTo: 1 } })).toThrow();
  });

  it('with auth off, the API is open like the rest of the server', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    expect((await get(server, `/api/v1/spaces/${SPACE}/changes`)).status).toBe(200);
  });
});

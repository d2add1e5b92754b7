/**
 * The backend API's writes (server README, "Backend API"): put, patch, delete
 * and merge versions as the server's own writer, through the same checks,
 * quotas and relay as a client's push. Live replicas see them; a write stamped
 * after a device clock that runs ahead still takes effect; a batch is stored
 * whole or not at all; an Idempotency-Key stores a request once, also when it
 * is retried concurrently, after a restart, or after the server was killed
 * right after answering; the writer holds no stability horizon back when idle
 * and is retired when the server closes; every response is as documented.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CHANGE_BYTES } from '@syncline/client';
import { hlcWall, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { sqliteStorage, type SyncServer } from '@syncline/server';
import { cleanupStack, ManualClock, putChange, RawClient, replica, startServer, sync, waitUntil } from '../sync/harness.js';
import { call, expectDocumented, get, SECRET, token, type Reply } from './fixtures/api.js';
import { spawnServer } from './fixtures/child.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const SPACE = 'team' as SpaceId;
const schema = { events: {}, notes: { policy: 'merge' } } as const;
const ONE = '/api/v1/spaces/{space}/records/{collection}/{id}';
const WRITES = '/api/v1/spaces/{space}/writes';
const path = (collection: string, id: string, space: string = SPACE) => `/api/v1/spaces/${space}/records/${encodeURIComponent(collection)}/${encodeURIComponent(id)}`;

async function jwtServer(options: Parameters<typeof startServer>[0] = {}) {
  const server = await startServer({ jwt: { secret: SECRET }, ...options });
  cleanup.push(() => server.close());
  return { server, svc: await token({ role: 'service', spaces: { [SPACE]: 'write' } }) };
}

/** A replica of `schema` syncing SPACE with `server`. */
async function device(server: SyncServer) {
  const r = await replica({ schema });
  const engine = sync(r, server.url, { spaces: [SPACE], token: await token({ spaces: { [SPACE]: 'write' } }) });
  cleanup.push(() => r.close());
  return { r, engine };
}

/** The changes of SPACE in the log, from the API's feed. */
async function feed(server: SyncServer | number, bearer?: string): Promise<Array<{ id: string; replica: string; op: string }>> {
  const page = await call(server, 'GET', `/api/v1/spaces/${SPACE}/changes?limit=1000`, { bearer });
  return page.body['changes'] as Array<{ id: string; replica: string; op: string }>;
}

describe('backend API writes', () => {
  it('reach live replicas: put, patch, delete and merge versions, each taking effect over a device clock that runs ahead', async () => {
    const { server, svc } = await jwtServer();
    const { r } = await device(server);
    await r.put('notes', 'n1', { text: 'v1' }, { space: SPACE });
    // A device whose clock is 40 s fast (within the allowed drift) wrote e1: its stamp is 40 s ahead of the server's clock.
    const raw = await RawClient.open(server.url);
    cleanup.push(() => raw.close());
    const fast = 'fast-device' as ReplicaId;
    await raw.hello(fast, [{ space: SPACE }], await token({ spaces: { [SPACE]: 'write' } }));
    raw.send({ type: 'push', space: SPACE, changes: [putChange(fast, SPACE, 1, { title: 'from the phone', room: 'B' }, { id: 'e1', collection: 'events', wall: Date.now() + 40_000 })] });
    await raw.next('ack', (m) => m.upTo >= 1, 0, 10_000);
    await waitUntil(async () => (await get(server, path('notes', 'n1'), svc)).status === 200, 10_000, 'the device’s write to reach the server');
    expect((await get(server, path('events', 'e1'), svc)).body).toEqual({ space: SPACE, collection: 'events', id: 'e1', value: { title: 'from the phone', room: 'B' } });
    await waitUntil(async () => (await r.get('events', 'e1', { space: SPACE })) !== undefined, 10_000, 'e1 on the device');

    const put = await call(server, 'PUT', path('events', 'e1'), { bearer: svc, body: { fields: { title: 'from the backend' } } });
    expect(put.status).toBe(200);
    expectDocumented(ONE, put, 'put');
    const writer = put.body['replica'] as string;
    expect(writer).toMatch(/^api-/);
    // Stamped after the phone's write, though the phone's clock is ahead of the server's.
    const stamp = (put.body['changes'] as Array<{ hlc: string }>)[0]?.hlc as string;
    expect(hlcWall(stamp as never)).toBeGreaterThan(Date.now() + 30_000);
    await waitUntil(async () => (await r.get('events', 'e1', { space: SPACE }))?.value.title === 'from the backend', 10_000, 'the put to reach the phone');
    expect((await r.get('events', 'e1', { space: SPACE }))?.value).toEqual({ title: 'from the backend' });

    const patch = await call(server, 'PATCH', path('events', 'e1'), { bearer: svc, body: { fields: { room: 'C' }, unset: ['title'] } });
    expectDocumented(ONE, patch, 'patch');
    await waitUntil(async () => (await r.get('events', 'e1', { space: SPACE }))?.value.room === 'C', 10_000, 'the patch to reach the phone');
    expect((await r.get('events', 'e1', { space: SPACE }))?.value).toEqual({ room: 'C' });

    // A merge version supersedes every version the server holds: no conflict on the phone.
    const version = await call(server, 'PUT', path('notes', 'n1'), { bearer: svc, body: { value: { text: 'v2' } } });
    expectDocumented(ONE, version, 'put');
    await waitUntil(async () => (await r.get('notes', 'n1', { space: SPACE }))?.value.text === 'v2', 10_000, 'the version to reach the phone');
    expect(await r.conflicts('notes', 'n1', { space: SPACE })).toEqual([]);

    const del = await call(server, 'DELETE', path('events', 'e1'), { bearer: svc });
    expectDocumented(ONE, del, 'delete');
    await waitUntil(async () => (await r.get('events', 'e1', { space: SPACE })) === undefined, 10_000, 'the delete to reach the phone');
    const gone = await get(server, path('events', 'e1'), svc);
    expect(gone.status).toBe(404);
    expectDocumented(ONE, gone);

    // The phone writes again and the backend reads it back, through the same writer's later seqs.
    await r.put('events', 'e2', { title: 'again' }, { space: SPACE });
    await waitUntil(async () => (await get(server, path('events', 'e2'), svc)).status === 200, 10_000, 'e2 to reach the server');
    const changes = await feed(server, svc);
    expect(changes.filter((c) => c.replica === writer).map((c) => c.op)).toEqual(['put', 'patch', 'version', 'delete']);
  });

  it('shows concurrent merge versions as siblings, and a batch is stored whole or not at all', async () => {
    const { server, svc } = await jwtServer();
    const batch = await call(server, 'POST', `/api/v1/spaces/${SPACE}/writes`, {
      bearer: svc,
      body: {
        writes: [
          { op: 'put', collection: 'events', id: 'a', fields: { n: 1 } },
          { op: 'version', collection: 'notes', id: 'n', value: { v: 1 } },
          { op: 'version', collection: 'notes', id: 'n', value: { v: 2 } },
          { op: 'patch', collection: 'events', id: 'a', fields: { m: 2 } },
        ],
      },
    });
    expect(batch.status).toBe(200);
    expectDocumented(WRITES, batch, 'post');
    expect((batch.body['changes'] as Array<{ seq: number }>).map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    // The second version of one batch supersedes the first.
    expect((await get(server, path('notes', 'n'), svc)).body).toEqual({ space: SPACE, collection: 'notes', id: 'n', value: { v: 2 } });
    expect((await get(server, path('events', 'a'), svc)).body['value']).toEqual({ n: 1, m: 2 });

    // A device that saw v2 writes offline while the backend writes too: both versions stay, as siblings, on the
    // server and on the device, and a version written after seeing them both leaves one again.
    const { r, engine } = await device(server);
    await waitUntil(async () => (await r.get('notes', 'n', { space: SPACE }))?.value.v === 2, 10_000, 'the device to catch up');
    engine.pause();
    await r.put('notes', 'n', { v: 'device' }, { space: SPACE });
    expect((await call(server, 'PUT', path('notes', 'n'), { bearer: svc, body: { value: { v: 'backend' } } })).status).toBe(200);
    engine.resume();
    await waitUntil(async () => (await r.conflicts('notes', 'n', { space: SPACE })).length === 2, 10_000, 'both versions on the device');
    const both = await get(server, path('notes', 'n'), svc);
    expectDocumented(ONE, both);
    expect((both.body['siblings'] as Array<{ value: unknown }>).map((v) => v.value).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual([{ v: 'backend' }, { v: 'device' }]);
    expect((await call(server, 'PUT', path('notes', 'n'), { bearer: svc, body: { value: { v: 'resolved' } } })).status).toBe(200);
    expect((await get(server, path('notes', 'n'), svc)).body).toEqual({ space: SPACE, collection: 'notes', id: 'n', value: { v: 'resolved' } });
    await waitUntil(async () => (await r.conflicts('notes', 'n', { space: SPACE })).length === 0, 10_000, 'the resolution on the device');
    expect((await r.get('notes', 'n', { space: SPACE }))?.value).toEqual({ v: 'resolved' });

    // A bad second write refuses the whole batch: nothing of it is stored.
    const before = await server.storage.head(SPACE);
    const refused = await call(server, 'POST', `/api/v1/spaces/${SPACE}/writes`, {
      bearer: svc,
      body: { writes: [{ op: 'put', collection: 'events', id: 'b', fields: { ok: true } }, { op: 'put', collection: 'events', id: '', fields: {} }] },
    });
    expect(refused.status).toBe(400);
    expect(refused.body['code']).toBe('invalid_request');
    expect(refused.body['message']).toContain('write 1');
    expectDocumented(WRITES, refused, 'post');
    expect(await server.storage.head(SPACE)).toBe(before);
    expect((await get(server, path('events', 'b'), svc)).status).toBe(404);
  });

  it('refuses what a push would be refused, with a coded error, and stores nothing', async () => {
    const { server, svc } = await jwtServer({ limits: { maxSpaceRecords: 3 } });
    const reader = await token({ role: 'service', spaces: { [SPACE]: 'read' } });
    const expectRefused = async (reply: Promise<Reply>, status: number, code: string, method = 'put', template = ONE) => {
      const r = await reply;
      expect({ status: r.status, code: r.body['code'] }).toEqual({ status, code });
      expectDocumented(template, r, method);
    };
    await expectRefused(call(server, 'PUT', path('events', 'x'), { bearer: reader, body: { fields: {} } }), 403, 'forbidden');
    await expectRefused(call(server, 'PUT', path('events', 'x'), { bearer: await token({ spaces: { [SPACE]: 'write' } }), body: { fields: {} } }), 403, 'forbidden');
    await expectRefused(call(server, 'PUT', path('events', 'x'), { body: { fields: {} } }), 401, 'unauthenticated');
    await expectRefused(call(server, 'PUT', path('events', 'x'), { bearer: svc, body: 'not json' }), 400, 'invalid_request');
    await expectRefused(call(server, 'PUT', path('events', 'x'), { bearer: svc, body: { fields: { a: 1 }, value: {} } }), 400, 'invalid_request');
    await expectRefused(call(server, 'PUT', path('events', 'x'), { bearer: svc, body: { fields: [1] } }), 400, 'invalid_request');
    await expectRefused(call(server, 'PATCH', path('events', 'x'), { bearer: svc, body: { fields: { a: 1 }, unset: ['a'] } }), 400, 'invalid_request', 'patch');
    await expectRefused(call(server, 'POST', `/api/v1/spaces/${SPACE}/writes`, { bearer: svc, body: { writes: [{ op: 'crdt', collection: 'c', id: 'i' }] } }), 400, 'invalid_request', 'post', WRITES);
    await expectRefused(call(server, 'POST', `/api/v1/spaces/${SPACE}/writes`, { bearer: svc, body: { writes: [] } }), 400, 'invalid_request', 'post', WRITES);
    const many = Array.from({ length: 1001 }, (_, i) => ({ op: 'delete', collection: 'events', id: `d${i}` }));
    await expectRefused(call(server, 'POST', `/api/v1/spaces/${SPACE}/writes`, { bearer: svc, body: { writes: many } }), 413, 'too_large', 'post', WRITES);
    // One change over MAX_CHANGE_BYTES (as a replica would refuse it), and a body over the frame limit.
    await expectRefused(call(server, 'PUT', path('events', 'big'), { bearer: svc, body: { fields: { text: 'x'.repeat(MAX_CHANGE_BYTES) } } }), 413, 'too_large');
    await expectRefused(call(server, 'PUT', path('events', 'huge'), { bearer: svc, body: { fields: { text: 'x'.repeat(1_100_000) } } }), 413, 'too_large');
    expect(await server.storage.head(SPACE)).toBe(0);
    // The space's quota: three records, the fourth refused.
    for (const id of ['q1', 'q2', 'q3']) expect((await call(server, 'PUT', path('events', id), { bearer: svc, body: { fields: {} } })).status).toBe(200);
    await expectRefused(call(server, 'PUT', path('events', 'q4'), { bearer: svc, body: { fields: {} } }), 507, 'quota_exceeded');
    expect(await server.storage.head(SPACE)).toBe(3);
    const wrong = await call(server, 'GET', `/api/v1/spaces/${SPACE}/writes`, { bearer: svc });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });

  it('concurrent requests to one space: versions of one record supersede each other in turn, and a refusal in the middle stores nothing of it and loses nothing else', async () => {
    const { server, svc } = await jwtServer({ limits: { maxSpaceRecords: 60 } });
    // 40 versions of one merge record at once: each made after the one before, so one version is left, the last stamped.
    const versions = await Promise.all(Array.from({ length: 40 }, (_, i) => call(server, 'PUT', path('notes', 'n'), { bearer: svc, body: { value: { i } } })));
    expect(versions.map((v) => v.status)).toEqual(Array(40).fill(200));
    const latest = versions.map((v) => (v.body['changes'] as Array<{ hlc: string; seq: number }>)[0]!).sort((a, b) => (a.hlc < b.hlc ? -1 : 1));
    expect(latest.map((c) => c.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    // Each version names the one before it in its context, also when both were committed together.
    for (const entry of await server.storage.readLog(SPACE, 0, 100)) {
      const change = entry.change as { op: string; seq: number; replica: ReplicaId; context: ReadonlyMap<ReplicaId, number> };
      if (change.seq > 1) expect(change.context.get(change.replica), `version ${change.seq}`).toBe(change.seq - 1);
    }
    const one = await get(server, path('notes', 'n'), svc);
    expect(one.body['siblings']).toBeUndefined();
    // The value is the one of the request stamped last.
    expect(one.body['value']).toEqual({ i: versions.findIndex((v) => (v.body['changes'] as Array<{ seq: number }>)[0]!.seq === 40) });
    // 100 new records at once into a space with room for 59 more: 59 stored, 41 refused with 507, none lost or doubled.
    const puts = await Promise.all(Array.from({ length: 100 }, (_, i) => call(server, 'PUT', path('events', `e${i}`), { bearer: svc, body: { fields: { i } } })));
    const ok = puts.flatMap((p, i) => (p.status === 200 ? [i] : []));
    expect(puts.filter((p) => p.status !== 200).map((p) => p.body['code'])).toEqual(Array(100 - ok.length).fill('quota_exceeded'));
    expect(ok).toHaveLength(59);
    const log = await server.storage.readLog(SPACE, 0, 1000);
    expect(log.filter((e) => e.change.collection === 'events').map((e) => e.change.id).sort()).toEqual(ok.map((i) => `e${i}`).sort());
    // The writer's seqs are contiguous: a refused request left no gap.
    expect(log.map((e) => e.change.seq)).toEqual(log.map((_, i) => i + 1));
    for (const i of ok) expect((await get(server, path('events', `e${i}`), svc)).body['value']).toEqual({ i });
  });

  it('stores a request with an Idempotency-Key once: retried, retried concurrently, and after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'syncline-idem-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'db.sqlite');
    const first = await startServer({ jwt: { secret: SECRET }, storage: sqliteStorage({ path: db }) });
    let closed = false;
    cleanup.push(() => closed || first.close());
    const svc = await token({ role: 'service', spaces: { '*': 'write' } });
    const body = { fields: { title: 'booked' } };
    const once = await call(first, 'PUT', path('events', 'b1'), { bearer: svc, body, headers: { 'idempotency-key': 'booking-1' } });
    expect(once.status).toBe(200);
    expect(once.headers.get('idempotent-replayed')).toBeNull();
    const again = await call(first, 'PUT', path('events', 'b1'), { bearer: svc, body, headers: { 'idempotency-key': 'booking-1' } });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(once.body);
    // Ten at once under one key: one stores, nine replay it.
    const racing = await Promise.all(
      Array.from({ length: 10 }, () => call(first, 'POST', `/api/v1/spaces/${SPACE}/writes`, { bearer: svc, body: { writes: [{ op: 'put', collection: 'events', id: 'r', fields: { n: 1 } }] }, headers: { 'idempotency-key': 'race' } })),
    );
    expect(racing.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(racing.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(9);
    // Another request under a used key is refused; the same key in another space is another key.
    const mismatch = await call(first, 'PUT', path('events', 'b1'), { bearer: svc, body: { fields: { title: 'other' } }, headers: { 'idempotency-key': 'booking-1' } });
    expect(mismatch.status).toBe(422);
    expect(mismatch.body['code']).toBe('idempotency_mismatch');
    expectDocumented(ONE, mismatch, 'put');
    const elsewhere = await call(first, 'PUT', path('events', 'b1', 'other'), { bearer: svc, body, headers: { 'idempotency-key': 'booking-1' } });
    expect(elsewhere.headers.get('idempotent-replayed')).toBeNull();
    expect((await call(first, 'PUT', path('events', 'x'), { bearer: svc, body, headers: { 'idempotency-key': '' } })).status).toBe(400);
    expect((await feed(first, svc)).map((c) => c.id)).toEqual(['b1', 'r']);

    // A new process (a new writer) on the same database still knows the key.
    await first.close();
    closed = true;
    const second = await startServer({ jwt: { secret: SECRET }, storage: sqliteStorage({ path: db }) });
    cleanup.push(() => second.close());
    const afterRestart = await call(second, 'PUT', path('events', 'b1'), { bearer: svc, body, headers: { 'idempotency-key': 'booking-1' } });
    expect(afterRestart.headers.get('idempotent-replayed')).toBe('true');
    expect(afterRestart.body).toEqual(once.body);
    expect((await feed(second, svc)).map((c) => c.id)).toEqual(['b1', 'r']);
  });

  it('a write answered 2xx survives a SIGKILL right after; retries of the unanswered ones with their keys store each exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'syncline-apikill-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'db.sqlite');
    const fixture = 'test/server/fixtures/server-process.mjs';
    const first = await spawnServer([fixture, db]);
    cleanup.push(() => first.process.kill('SIGKILL'));
    // Four writers, each request with its own key, until the server is killed after the 40th answer.
    const answered = new Set<number>();
    const sent = new Set<number>();
    let next = 0;
    const write = (port: number, n: number) =>
      call(port, 'PUT', path('events', `k${n}`), { body: { fields: { n } }, headers: { 'idempotency-key': `write-${n}` } });
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (answered.size < 40) {
          const n = next++;
          sent.add(n);
          try {
            const reply = await write(first.port, n);
            if (reply.status !== 200) throw new Error(`status ${reply.status}: ${JSON.stringify(reply.body)}`);
            answered.add(n);
            if (answered.size === 40) first.process.kill('SIGKILL');
          } catch (error) {
            if (answered.size < 40) throw error;
            return; // the server is gone
          }
        }
      }),
    );
    await first.exited;
    const second = await spawnServer([fixture, db]);
    cleanup.push(() => second.process.kill('SIGKILL'));
    for (const n of answered) expect((await call(second.port, 'GET', path('events', `k${n}`))).body['value']).toEqual({ n });
    // Every request sent is sent again with its key: each is stored once, whether or not it was before the kill.
    for (const n of sent) expect((await write(second.port, n)).status).toBe(200);
    const ids = (await feed(second.port)).map((c) => c.id);
    expect(ids.sort()).toEqual([...sent].map((n) => `k${n}`).sort());
  });

  it('the writer holds no horizon back when idle, takes a new id when retired, and is retired when the server closes', async () => {
    const clock = new ManualClock(Date.now());
    const dir = mkdtempSync(join(tmpdir(), 'syncline-apigc-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'db.sqlite');
    const { server, svc } = await jwtServer({ storage: sqliteStorage({ path: db }), now: clock.now, gc: { intervalMs: 0 } });
    const first = await call(server, 'PUT', path('events', 'e'), { bearer: svc, body: { fields: { n: 1 } } });
    const writer = first.body['replica'] as ReplicaId;
    const stamp = (first.body['changes'] as Array<{ hlc: string }>)[0]?.hlc as string;
    await call(server, 'DELETE', path('events', 'e'), { bearer: svc });
    // Ten minutes on without a write: the horizon passes the writer's last stamp, and the tombstone goes.
    clock.value += 10 * 60_000;
    const result = await server.collect();
    expect(result.horizons.get(SPACE)! > stamp).toBe(true);
    expect(hlcWall(result.horizons.get(SPACE)!)).toBeGreaterThan(clock.value - 2 * 60_000);
    expect(result.collected).toBe(1);
    expect(result.retired).toEqual([]);
    // An operator retires it: the next write is stored under a new id.
    await server.retire(writer);
    const later = await call(server, 'PUT', path('events', 'f'), { bearer: svc, body: { fields: { n: 2 } } });
    expect(later.status).toBe(200);
    const successor = later.body['replica'] as ReplicaId;
    expect(successor).not.toBe(writer);
    expect(successor).toMatch(/^api-/);
    await server.close();
    const storage = sqliteStorage({ path: db });
    cleanup.push(() => storage.close());
    expect(await storage.isRetired(successor)).toBe(true);
  });
});

/**
 * Hardening (issue 16): the probes that did not hold against a default server,
 * each kept as a test. Memory is measured on a child `syncline-server` where the
 * finding is about memory, with the bound stated here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createReplica, memoryStorage, startSync, type SocketFactory } from '@syncline/client';
import { decodeUpstream, encodeDownstream, formatTimestamp, FRAME_MARKER, MAX_CHANGE_BYTES, MAX_RECORD_BYTES, MIN_FRAME_BYTES, PROTOCOL_VERSION, type Change, type DownstreamMessage, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import fc from 'fast-check';
import { cleanupStack, RawClient, startServer, tempDir, waitUntil } from '../sync/harness.js';
import { buildDist, ROOT } from './fixtures/build.js';
import { spawnServer } from './fixtures/child.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}

/** Resident memory of a process, bytes (Linux). */
function rss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) * 1024;
}

/** A pino logger whose lines land in `lines`. */
function capturedLogger(lines: string[]) {
  return pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    }),
  );
}

describe('3. pre-authentication frames of junk attachments', () => {
  beforeAll(() => buildDist(), 180_000);

  it('are refused by their count, before anything is copied: 20 frames of a million empty attachments leave the server’s memory as it was', async () => {
    const dir = await tempDir('syncline-hardening-');
    cleanup.push(() => dir.remove());
    const child = await spawnServer([join(ROOT, 'packages/server/bin/syncline-server.js'), '--port', '0', '--db', join(dir.path, 'db.sqlite')]);
    cleanup.push(() => child.process.kill('SIGKILL'));
    const pid = child.process.pid as number;
    // A frame just under the 1 MiB limit: a million attachments of length 0, an empty JSON body.
    const count = 1_000_000;
    const junk = Uint8Array.from([FRAME_MARKER, ...varint(count), ...new Array<number>(count).fill(0), 0x02, 0x7b, 0x7d]);
    expect(junk.length).toBeLessThan(1024 * 1024);
    const url = `ws://127.0.0.1:${child.port}/sync`;
    // Warm up (the first connection loads code), then measure.
    const warm = await RawClient.open(url);
    warm.sendBytes(junk);
    await warm.waitClosed();
    const before = rss(pid);
    for (let i = 0; i < 20; i++) {
      const client = await RawClient.open(url);
      client.sendBytes(junk);
      expect(await client.error('malformed_frame')).toMatchObject({ fatal: true });
      await client.waitClosed();
    }
    const grown = rss(pid) - before;
    // Before: +690 MB for 20 such frames (every attachment copied before the message was checked).
    // The bound leaves room for the 20 MiB of frames themselves, the allocator's slack and garbage not yet
    // collected on a loaded machine, and stays far below what the bug cost.
    expect(grown, `server RSS grew ${Math.round(grown / 1e6)} MB`).toBeLessThan(200 * 1024 * 1024);
  }, 120_000);
});

describe('1 and 2. large records, measured on a child server', () => {
  beforeAll(() => buildDist(), 180_000);

  /** A child `syncline-server` with a space of `records` records of `fields` fields of `fieldBytes` each (a patch per field). */
  async function seededChild(records: number, fields: number, fieldBytes: number) {
    const dir = await tempDir('syncline-large-');
    cleanup.push(() => dir.remove());
    const child = await spawnServer([join(ROOT, 'packages/server/bin/syncline-server.js'), '--port', '0', '--db', join(dir.path, 'db.sqlite')]);
    cleanup.push(() => child.process.kill('SIGKILL'));
    const url = `ws://127.0.0.1:${child.port}/sync`;
    const writer = await RawClient.open(url);
    cleanup.push(() => writer.close());
    await writer.hello('seeder' as ReplicaId, [{ space: 'default' }]);
    let seq = 0;
    for (let r = 0; r < records; r++) {
      for (let f = 0; f < fields; f++) {
        seq++;
        const change = {
          space: 'default' as SpaceId,
          collection: 'events',
          id: `r${r}`,
          replica: 'seeder' as ReplicaId,
          seq,
          hlc: formatTimestamp({ wall: Date.now(), counter: seq, replica: 'seeder' as ReplicaId }),
          op: 'patch',
          fields: { [`f${f}`]: 'x'.repeat(fieldBytes) },
          unset: [],
        } as Change;
        writer.send({ type: 'push', space: 'default' as SpaceId, changes: [change] });
        await writer.next('ack', (m) => m.upTo === seq, 0, 30_000);
      }
    }
    return { url, pid: child.process.pid as number };
  }

  it('five readers that never read cost the server their send buffer and one frame each, not the space', async () => {
    const { url, pid } = await seededChild(50, 1, 240_000); // 12 MB of records
    const before = rss(pid);
    const readers: RawClient[] = [];
    for (let i = 0; i < 5; i++) {
      const reader = await RawClient.open(url);
      cleanup.push(() => reader.close());
      reader.send({ type: 'hello', protocol: PROTOCOL_VERSION, replica: `slow-${i}` as ReplicaId, spaces: [{ space: 'default' as SpaceId, after: 0 }], time: Date.now() });
      (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      readers.push(reader);
    }
    let peak = before;
    for (let t = 0; t < 20; t++) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      peak = Math.max(peak, rss(pid));
    }
    // The documented bound is a 4 MiB send buffer and one frame (1 MiB) each: 25 MiB for five. RSS also holds
    // garbage V8 has not collected yet (the frames' JSON strings), which has measured up to 80 MB on a loaded
    // machine, so the assertion is set at half of what the bug cost: before, about 60 MB each (every snapshot
    // chunk built whole), 300 MB for five.
    expect(peak - before, `server RSS grew ${Math.round((peak - before) / 1e6)} MB`).toBeLessThan(150 * 1024 * 1024);
  }, 120_000);

  it('a new device bootstraps a space of records near 1 MB each, in chunks within the frame limit', async () => {
    const { url, pid } = await seededChild(40, 4, 225_000); // 40 records of 900 KB
    const before = rss(pid);
    const reader = await RawClient.open(url);
    cleanup.push(() => reader.close());
    reader.send({ type: 'hello', protocol: PROTOCOL_VERSION, replica: 'new-device' as ReplicaId, spaces: [{ space: 'default' as SpaceId, after: 0 }], time: Date.now(), maxFrameBytes: 2 * 1024 * 1024 });
    let peak = before;
    await waitUntil(() => {
      peak = Math.max(peak, rss(pid));
      return reader.of('synced').length > 0;
    }, 60_000, 'the bootstrap to finish');
    const chunks = reader.of('snapshot');
    expect(chunks.reduce((n, c) => n + c.records.length, 0)).toBe(40);
    // Frames stay within the server's 1 MiB limit; only a single record larger than it could go alone.
    for (const [i, size] of reader.sizes.entries()) if (size > 1024 * 1024) expect((reader.messages[i] as DownstreamMessage & { records?: unknown[] }).records?.length).toBe(1);
    expect(peak - before, `server RSS grew ${Math.round((peak - before) / 1e6)} MB`).toBeLessThan(100 * 1024 * 1024);
  }, 180_000);
});

describe('7. a connection that floods', () => {
  it('gets one rate_limited notice per wait, not one per frame; its drops are counted; it is closed with a code', async () => {
    const lines: string[] = [];
    const server = await startServer({ logger: capturedLogger(lines) });
    cleanup.push(() => server.close());
    const client = await RawClient.open(server.url);
    cleanup.push(() => client.close());
    await client.hello('flooder' as ReplicaId, [{ space: 'default' }]);
    const linesBefore = lines.length;
    for (let i = 0; i < 20_000 && client.closed === undefined; i++) client.send({ type: 'ping', id: i });
    const closed = await client.waitClosed(10_000);
    expect(closed.code).toBe(1008);
    const notices = client.of('error').filter((e) => e.code === 'rate_limited');
    expect(notices.at(-1)).toMatchObject({ fatal: true });
    expect(notices.length).toBeLessThan(50);
    expect(lines.length - linesBefore).toBeLessThan(50);
    const dropped = (await server.metrics.framesDropped.get()).values.reduce((n, v) => n + v.value, 0);
    expect(dropped).toBeGreaterThanOrEqual(200);
  });
});

describe('8. static files and HTTP', () => {
  it('answers a malformed path with 400 and no error log; static responses carry nosniff, a CSP and frame-ancestors', async () => {
    const dir = await tempDir('syncline-static-');
    cleanup.push(() => dir.remove());
    writeFileSync(join(dir.path, 'index.html'), '<!doctype html><title>x</title>');
    const lines: string[] = [];
    const server = await startServer({ staticDir: dir.path, logger: capturedLogger(lines) });
    cleanup.push(() => server.close());
    const get = (path: string) =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: server.port, path, method: 'GET' }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        });
        req.on('error', reject);
        req.end();
      });
    for (const path of ['/%', '/%zz', '/a/%E0%A4%A']) expect((await get(path)).status, path).toBe(400);
    expect(lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50)).toEqual([]);
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
  });
});

describe('9. the Origin of a WebSocket upgrade', () => {
  const upgrade = (port: number, origin?: string) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/sync`, origin ? { origin } : {});
      ws.on('open', () => {
        ws.terminate();
        resolve(101);
      });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });

  it('with auth off: only pages of the server’s own host (and clients that are not web pages)', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    expect(await upgrade(server.port, 'https://evil.example')).toBe(403);
    expect(await upgrade(server.port, `http://127.0.0.1:${server.port}`)).toBe(101);
    expect(await upgrade(server.port)).toBe(101);
  });

  it('with JWT: any origin by default; an allow-list when given', async () => {
    const jwt = await startServer({ jwt: { secret: 'origin-test-secret-long-enough-for-hs256' } });
    cleanup.push(() => jwt.close());
    expect(await upgrade(jwt.port, 'https://evil.example')).toBe(101);
    const listed = await startServer({ allowedOrigins: ['https://app.example'] });
    cleanup.push(() => listed.close());
    expect(await upgrade(listed.port, 'https://app.example')).toBe(101);
    expect(await upgrade(listed.port, 'https://evil.example')).toBe(403);
    expect(await upgrade(listed.port, `http://127.0.0.1:${listed.port}`)).toBe(403);
  });
});

describe('10. a server that sends a space the client did not ask for', () => {
  it('is refused with a code; nothing of that space is stored', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    cleanup.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const other = 'not-asked' as SpaceId;
    wss.on('connection', (ws) => {
      ws.on('message', () => {
        ws.send(encodeDownstream({ type: 'welcome', protocol: PROTOCOL_VERSION, server: 'rogue', time: Date.now(), spaces: [{ space: 'default' as SpaceId, access: 'write', head: 0 }] }));
        ws.send(
          encodeDownstream({
            type: 'snapshot',
            space: other,
            position: 1,
            chunk: 0,
            chunks: 1,
            total: 1,
            records: [{ collection: 'events', id: 'planted', state: { lww: { cleared: undefined, deleted: undefined, touched: '000000000001-0000-x' as never, stamped: { title: 'planted' }, fields: new Map() } } }],
          }),
        );
      });
    });
    const address = wss.address() as { port: number };
    const r = await createReplica({ name: `rogue-${Date.now()}`, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    cleanup.push(() => r.close());
    const engine = startSync(r, { url: `ws://127.0.0.1:${address.port}/sync`, WebSocket: WebSocket as unknown as SocketFactory });
    cleanup.push(() => engine.close());
    await waitUntil(() => engine.status.error?.code === 'invalid_message', 5_000, 'the refusal');
    expect(engine.status.error?.message).toContain('not-asked');
    expect(await r.get('events', 'planted', { space: other })).toBeUndefined();
  });
});

describe('4 and 6. tokens', () => {
  const SECRET = 'hardening-token-secret-long-enough-for-hs256';
  const sign = (claims: { exp?: number; iss?: string; aud?: string; alg?: string }) => {
    let jwt = new SignJWT({ spaces: { default: 'write' } }).setProtectedHeader({ alg: claims.alg ?? 'HS256' }).setSubject('user');
    if (claims.exp !== undefined) jwt = jwt.setExpirationTime(claims.exp);
    if (claims.iss !== undefined) jwt = jwt.setIssuer(claims.iss);
    if (claims.aud !== undefined) jwt = jwt.setAudience(claims.aud);
    return jwt.sign(new TextEncoder().encode(SECRET));
  };
  const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;

  it('a connection is closed with unauthenticated when its token expires (before: it stayed open for good)', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const raw = await RawClient.open(server.url);
    cleanup.push(() => raw.close());
    await raw.hello('expiring' as ReplicaId, [{ space: 'default' }], await sign({ exp: inSeconds(2) }));
    const closed = await raw.waitClosed(5_000);
    expect(closed.code).toBe(1008);
    expect(raw.of('error').at(-1)).toMatchObject({ code: 'unauthenticated', fatal: true });
    expect(raw.of('error').at(-1)?.message).toMatch(/expired/);
  });

  it('a client with a token function keeps syncing across several expiries, losing nothing', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    let issued = 0;
    const token = async () => {
      issued++;
      return sign({ exp: inSeconds(2) });
    };
    const writer = await createReplica({ name: `expiry-writer-${Date.now()}`, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    const reader = await createReplica({ name: `expiry-reader-${Date.now()}`, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    cleanup.push(() => writer.close(), () => reader.close());
    const socket = WebSocket as unknown as SocketFactory;
    const sw = startSync(writer, { url: server.url, WebSocket: socket, token });
    const sr = startSync(reader, { url: server.url, WebSocket: socket, token });
    cleanup.push(() => sw.close(), () => sr.close());
    const stopped: string[] = [];
    sw.onStatus((s) => s.state === 'stopped' && stopped.push(JSON.stringify(s.error)));
    // Writes one at a time for seven seconds: through three or more expiries of each connection.
    const started = Date.now();
    let n = 0;
    while (Date.now() - started < 7_000) {
      await writer.put('events', `e${n++}`, { title: 'written while tokens expire' });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await sw.flushed({ timeoutMs: 10_000 });
    await waitUntil(async () => (await reader.count({ collection: 'events' })) === n, 10_000, 'the reader to hold every write');
    expect(await server.storage.head('default' as SpaceId)).toBe(n);
    expect(stopped).toEqual([]);
    expect(issued).toBeGreaterThanOrEqual(6); // both clients, three or more connections each
  }, 30_000);

  it('refuses a token without exp unless allowed, one of an algorithm not listed, and one without the required issuer or audience', async () => {
    const strict = await startServer({ jwt: { secret: SECRET, issuer: 'https://auth.example', audience: 'syncline', algorithms: ['HS512'] } });
    const lax = await startServer({ jwt: { secret: SECRET, allowNoExpiry: true } });
    cleanup.push(() => strict.close(), () => lax.close());
    const refusal = async (url: string, tok: string) => {
      const raw = await RawClient.open(url);
      cleanup.push(() => raw.close());
      raw.send({ type: 'hello', protocol: PROTOCOL_VERSION, replica: 'probe' as ReplicaId, token: tok, spaces: [{ space: 'default' as SpaceId, after: 0 }], time: Date.now() });
      await waitUntil(() => raw.of('welcome').length > 0 || raw.of('error').length > 0, 5_000, 'an answer');
      return raw.of('error')[0]?.message ?? 'welcome';
    };
    const defaults = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => defaults.close());
    expect(await refusal(defaults.url, await sign({}))).toMatch(/no expiry/);
    expect(await refusal(lax.url, await sign({}))).toBe('welcome');
    const good = { exp: inSeconds(60), iss: 'https://auth.example', aud: 'syncline', alg: 'HS512' };
    expect(await refusal(strict.url, await sign(good))).toBe('welcome');
    expect(await refusal(strict.url, await sign({ ...good, alg: 'HS256' }))).toMatch(/refused/);
    expect(await refusal(strict.url, await sign({ ...good, iss: 'https://other.example' }))).toMatch(/refused/);
    expect(await refusal(strict.url, await sign({ ...good, aud: 'another-service' }))).toMatch(/refused/);
  });
});

describe('5. sockets that never send hello', () => {
  const idle = async (url: string, n: number) => {
    const sockets: WebSocket[] = [];
    for (let i = 0; i < n; i++) {
      const ws = new WebSocket(url);
      ws.on('error', () => undefined);
      sockets.push(ws);
    }
    cleanup.push(() => sockets.forEach((ws) => ws.terminate()));
    await Promise.all(sockets.map((ws) => new Promise((resolve) => (ws.readyState === WebSocket.OPEN ? resolve(undefined) : ws.once('open', resolve)))));
    return sockets;
  };

  it('do not count against maxConnections: 20 of them do not lock out a client with credentials', async () => {
    const server = await startServer({ limits: { maxConnections: 20 } });
    cleanup.push(() => server.close());
    await idle(server.url, 20);
    const client = await RawClient.open(server.url);
    cleanup.push(() => client.close());
    await client.hello('legitimate' as ReplicaId, [{ space: 'default' }]);
    expect(client.of('welcome')).toHaveLength(1);
  });

  it('are limited per address, and so are new connections a second; both refusals say when to retry', async () => {
    const server = await startServer({ limits: { maxPendingPerAddress: 10, connectionsPerSecondPerAddress: 1_000, helloTimeoutMs: 1_000 } });
    cleanup.push(() => server.close());
    await idle(server.url, 10);
    const refused = await RawClient.open(server.url);
    cleanup.push(() => refused.close());
    expect(await refused.error('too_many_connections')).toMatchObject({ fatal: true, retryAfter: 1_000 });
    // The hello timeout frees them (before: the limit of the whole server, 10 s each).
    await waitUntil(async () => {
      const next = await RawClient.open(server.url);
      cleanup.push(() => next.close());
      await new Promise((resolve) => setTimeout(resolve, 50));
      return next.of('error').length === 0;
    }, 5_000, 'a pending slot to free');

    const rated = await startServer({ limits: { connectionsPerSecondPerAddress: 5 } });
    cleanup.push(() => rated.close());
    const burst = await Promise.all(Array.from({ length: 20 }, () => RawClient.open(rated.url)));
    cleanup.push(() => burst.forEach((c) => c.close()));
    await waitUntil(() => burst.filter((c) => c.of('error').length > 0).length >= 10, 5_000, 'the burst to be refused');
    const refusals = burst.flatMap((c) => c.of('error'));
    expect(refusals.every((e) => e.code === 'too_many_connections' && (e.retryAfter ?? 0) > 0)).toBe(true);
  });
});

describe('1 and 2. frames bounded by bytes, records of any size, slow readers', () => {
  /** A change putting `bytes` characters into field `field` of record `id` (a patch keeps the other fields). */
  const patchOf = (replica: ReplicaId, seq: number, id: string, field: string, bytes: number): Change =>
    ({
      space: 'default' as SpaceId,
      collection: 'events',
      id,
      replica,
      seq,
      hlc: formatTimestamp({ wall: Date.now(), counter: seq, replica }),
      op: 'patch',
      fields: { [field]: 'x'.repeat(bytes) },
      unset: [],
    }) as Change;

  it('no frame the server sends is over its budget (the smaller of its limit and the client’s), over random record sizes, catch-up, snapshots and a reader that stalls', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ record: fc.nat(7), field: fc.constantFrom('a', 'b', 'c'), bytes: fc.oneof(fc.nat(2_000), fc.integer({ min: 50_000, max: MAX_CHANGE_BYTES - 2_000 })) }), { minLength: 5, maxLength: 25 }),
        fc.constantFrom(MIN_FRAME_BYTES, 1024 * 1024),
        async (writes, clientBudget) => {
          const server = await startServer({ limits: { maxFrameBytes: 2 * 1024 * 1024, relayBatch: 50, snapshotChunk: 100 } });
          try {
            const live = await RawClient.open(server.url);
            const stalled = await RawClient.open(server.url);
            const hello = (c: RawClient, r: string) =>
              c.send({ type: 'hello', protocol: PROTOCOL_VERSION, replica: r as ReplicaId, spaces: [{ space: 'default' as SpaceId, after: 0 }], time: Date.now(), maxFrameBytes: clientBudget });
            hello(live, 'live-reader');
            await live.next('welcome');
            hello(stalled, 'stalled-reader');
            await stalled.next('welcome');
            (stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause();
            const writer = await RawClient.open(server.url);
            await writer.hello('writer' as ReplicaId, [{ space: 'default' }]);
            // One push per change: records grow field by field, some past one frame of the client's.
            for (let i = 0; i < writes.length; i++) {
              const w = writes[i] as (typeof writes)[number];
              writer.send({ type: 'push', space: 'default' as SpaceId, changes: [patchOf('writer' as ReplicaId, i + 1, `r${w.record}`, w.field, w.bytes)] });
              await writer.next('ack', (m) => m.upTo === i + 1);
            }
            // A new device bootstraps now (snapshot), and the stalled reader resumes (catch-up from the log).
            const fresh = await RawClient.open(server.url);
            hello(fresh, 'fresh-reader');
            (stalled.ws as unknown as { _socket: { resume(): void } })._socket.resume();
            for (const c of [live, stalled, fresh]) await c.next('synced', () => true, 0, 20_000);
            await waitUntil(() => [live, stalled].every((c) => c.of('changes').some((m) => m.upTo === writes.length)), 20_000, 'every change to reach the readers');
            for (const c of [live, stalled, fresh, writer]) {
              c.close();
              for (const [i, size] of c.sizes.entries()) {
                const m = c.messages[i] as DownstreamMessage;
                if (size > clientBudget) expect(m.type === 'snapshot' && m.records.length === 1, `a ${m.type} of ${size} bytes over a budget of ${clientBudget}`).toBe(true);
              }
            }
          } finally {
            await server.close();
          }
        },
      ),
      { numRuns: 6 },
    );
  }, 120_000);
});

describe('the size rules, both sides', () => {
  it('the server refuses a change over MAX_CHANGE_BYTES with too_large; a client of protocol 3 gets invalid_message, a code it can read', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const change = (replica: string): Change =>
      ({ space: 'default' as SpaceId, collection: 'events', id: 'big', replica: replica as ReplicaId, seq: 1, hlc: formatTimestamp({ wall: Date.now(), counter: 0, replica: replica as ReplicaId }), op: 'put', fields: { blob: 'x'.repeat(MAX_CHANGE_BYTES) } }) as Change;
    for (const [protocol, code] of [[4, 'too_large'], [3, 'invalid_message']] as const) {
      const raw = await RawClient.open(server.url);
      cleanup.push(() => raw.close());
      const replica = `sizes-v${protocol}`;
      raw.send({ type: 'hello', protocol, replica: replica as ReplicaId, spaces: [{ space: 'default' as SpaceId, after: 0 }], time: Date.now() });
      await raw.next('welcome');
      raw.send({ type: 'push', space: 'default' as SpaceId, changes: [change(replica)] });
      expect(await raw.next('error', (m) => m.space === 'default')).toMatchObject({ code, fatal: false });
    }
    expect(await server.storage.head('default' as SpaceId)).toBe(0);
  });

  it('a replica refuses a write that would make a record larger than MAX_RECORD_BYTES, and writes nothing', async () => {
    const r = await createReplica({ name: `record-cap-${Date.now()}`, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    cleanup.push(() => r.close());
    const field = 'y'.repeat(200_000);
    await r.patch('events', 'e', { a: field });
    await r.patch('events', 'e', { b: field });
    const error = await r.patch('events', 'e', { c: field }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'ReplicaError', code: 'too_large' });
    expect((error as Error).message).toContain(String(MAX_RECORD_BYTES));
    expect(Object.keys((await r.get('events', 'e'))?.value ?? {})).toEqual(['a', 'b']);
  });

  it('a client refuses a frame larger than it said it reads, with a code, and stores nothing of it', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    cleanup.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const said: number[] = [];
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => {
        said.push((decodeUpstream(new Uint8Array(data)) as { maxFrameBytes?: number }).maxFrameBytes ?? 0);
        ws.send(encodeDownstream({ type: 'welcome', protocol: PROTOCOL_VERSION, server: 'big', time: Date.now(), spaces: [{ space: 'default' as SpaceId, access: 'write', head: 1 }] }));
        const state = { lww: { cleared: undefined, deleted: undefined, touched: formatTimestamp({ wall: Date.now(), counter: 0, replica: 'x' as ReplicaId }), stamped: { blob: 'z'.repeat(MIN_FRAME_BYTES) }, fields: new Map() } };
        ws.send(encodeDownstream({ type: 'snapshot', space: 'default' as SpaceId, position: 1, chunk: 0, chunks: 1, total: 1, records: [{ collection: 'events', id: 'huge', state }] }));
      });
    });
    const r = await createReplica({ name: `frame-cap-${Date.now()}`, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    cleanup.push(() => r.close());
    const engine = startSync(r, { url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/sync`, WebSocket: WebSocket as unknown as SocketFactory, maxFrameBytes: MIN_FRAME_BYTES });
    cleanup.push(() => engine.close());
    await waitUntil(() => engine.status.error?.code === 'invalid_message', 5_000, 'the refusal');
    expect(said[0]).toBe(MIN_FRAME_BYTES);
    expect(engine.status.error?.message).toMatch(/reads at most/);
    expect(await r.get('events', 'huge')).toBeUndefined();
    expect(() => startSync(r, { url: 'ws://127.0.0.1:1/sync', WebSocket: WebSocket as unknown as SocketFactory, maxFrameBytes: 1024 })).toThrow(/at least/);
  });
});

describe('1. per-space quotas', () => {
  it('a push that would grow a space past its quota is refused with quota_exceeded: the space stops on the client, with the code; the server keeps what fit', async () => {
    const server = await startServer({ limits: { maxSpaceRecords: 3 } });
    cleanup.push(() => server.close());
    const r = await createReplica({ name: `quota-${Date.now()}`, schema: { events: {} }, storage: memoryStorage(), tabs: false });
    cleanup.push(() => r.close());
    const engine = startSync(r, { url: server.url, WebSocket: WebSocket as unknown as SocketFactory });
    cleanup.push(() => engine.close());
    for (let i = 0; i < 3; i++) await r.put('events', `e${i}`, { title: `fits ${i}` });
    await engine.flushed({ timeoutMs: 5_000 });
    await r.put('events', 'e3', { title: 'one too many' });
    await expect(engine.flushed({ timeoutMs: 5_000 })).rejects.toMatchObject({ name: 'SyncError', code: 'quota_exceeded' });
    expect(engine.status.stoppedSpaces?.[0]).toMatchObject({ code: 'quota_exceeded', space: 'default' });
    expect(await server.storage.usage('default' as SpaceId)).toMatchObject({ records: 3 });
    expect(await server.storage.head('default' as SpaceId)).toBe(3);
  });

  it('a byte quota refuses a push that would pass it, and keeps the space under it', async () => {
    const server = await startServer({ limits: { maxSpaceBytes: 10_000 } });
    cleanup.push(() => server.close());
    const raw = await RawClient.open(server.url);
    cleanup.push(() => raw.close());
    await raw.hello('bytes' as ReplicaId, [{ space: 'default' }]);
    const put = (seq: number, bytes: number) =>
      ({ space: 'default' as SpaceId, collection: 'events', id: `e${seq}`, replica: 'bytes' as ReplicaId, seq, hlc: formatTimestamp({ wall: Date.now(), counter: seq, replica: 'bytes' as ReplicaId }), op: 'put', fields: { blob: 'x'.repeat(bytes) } }) as Change;
    raw.send({ type: 'push', space: 'default' as SpaceId, changes: [put(1, 6_000)] });
    await raw.next('ack', (m) => m.upTo === 1);
    raw.send({ type: 'push', space: 'default' as SpaceId, changes: [put(2, 6_000)] });
    expect(await raw.next('error', (m) => m.space === 'default')).toMatchObject({ code: 'quota_exceeded', fatal: false });
    expect((await server.storage.usage('default' as SpaceId)).bytes).toBeLessThan(10_000);
  });
});

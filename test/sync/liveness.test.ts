/**
 * Liveness over real sockets, with default server and client settings unless a
 * limit is the point: one test per way an honest client used to be wedged
 * (issue 15). Each asserts progress (every write arrives, within a bound) and
 * the absence of a tight loop (dials counted over a window).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { createReplica, memoryStorage, MAX_CHANGE_BYTES, ReplicaError, startSync, type Replica, type SyncOptions } from '@syncline/client';
import { hlcWall, type SpaceId } from '@syncline/core/internal';
import type { SyncServer } from '@syncline/server';
import { cleanupStack, countOf, dialingSocket, ManualClock, startServer, uniqueName, waitUntil } from './harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: { indexes: { byStart: ['start'] } } } as const;
const SPACE = 'default' as SpaceId;

/** About 3 KB: a calendar event with notes. */
function event(i: number): { title: string; start: number; notes: string } {
  return { title: `Event ${i}`, start: i, notes: `Notes for event ${i}: `.padEnd(3000, 'lorem ipsum dolor sit amet ') };
}

async function open(name: string, options: { now?: () => number; onError?: (error: Error) => void } = {}): Promise<Replica<typeof schema>> {
  const r = await createReplica({ name: uniqueName(name), schema, storage: memoryStorage(), tabs: false, onError: options.onError ?? ((e) => console.warn(e)), ...(options.now ? { now: options.now } : {}) });
  cleanup.push(() => r.close());
  return r;
}

/** A sync engine with default options but the socket (Node has no WebSocket global). */
function engineOf(r: Replica<typeof schema>, server: SyncServer, options: Partial<SyncOptions> & { protocol2?: boolean } = {}) {
  const socket = dialingSocket({ protocol2: options.protocol2 ?? false });
  const engine = startSync(r, { url: server.url, WebSocket: socket.factory, ...options });
  cleanup.push(() => engine.close());
  return { engine, socket };
}

const errorsOf = (socket: ReturnType<typeof dialingSocket>, code: string) => socket.received.filter((m) => m.type === 'error' && m.code === code).length;
const pushesOf = (socket: ReturnType<typeof dialingSocket>) => socket.sent.flatMap((m) => (m.type === 'push' ? [m] : []));

/** A reader that syncs the space and must end up with `n` events. */
async function expectArrives(server: SyncServer, n: number, timeoutMs: number): Promise<void> {
  const reader = await open('reader');
  engineOf(reader, server);
  await waitUntil(async () => (await countOf(reader, 'events')) === n, timeoutMs, () => `a reader to receive all ${n} events (server head ${String(n)})`);
}

describe('1. an offline backlog larger than a frame', () => {
  it('drains 600 records of 3 KB in pushes that fit the frame limit, over one connection', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const r = await open('backlog');
    for (let i = 0; i < 600; i++) await r.put('events', `e${i}`, event(i));
    const { engine, socket } = engineOf(r, server);
    await engine.flushed({ timeoutMs: 20_000 });
    expect(await server.storage.head(SPACE)).toBe(600);
    expect(socket.dials()).toBe(1);
    expect(errorsOf(socket, 'frame_too_large')).toBe(0);
    // Every frame fits the announced limit, and the backlog did not go one change per push.
    expect(Math.max(...socket.sentBytes)).toBeLessThanOrEqual(1024 * 1024);
    expect(pushesOf(socket).length).toBeLessThan(10);
    await expectArrives(server, 600, 20_000);
  });
});

describe('2. one large record', () => {
  it('is refused at write time with too_large above MAX_CHANGE_BYTES; one just below it syncs, and so does every later write', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const r = await open('large');
    const { engine, socket } = engineOf(r, server);
    await engine.waitFor((s) => s.state === 'synced');
    const error = await r.put('events', 'huge', { title: 'huge', blob: 'x'.repeat(1_200_000) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReplicaError);
    expect(error).toMatchObject({ code: 'too_large' });
    expect((error as Error).message).toContain(String(MAX_CHANGE_BYTES));
    expect(await r.get('events', 'huge')).toBeUndefined();
    expect(engine.status.pending).toBe(0);
    await r.put('events', 'big', { title: 'big', blob: 'y'.repeat(MAX_CHANGE_BYTES - 1_000) });
    for (let i = 0; i < 20; i++) await r.put('events', `after${i}`, event(i));
    await engine.flushed({ timeoutMs: 10_000 });
    expect(await server.storage.head(SPACE)).toBe(21);
    expect(socket.dials()).toBe(1);
    await expectArrives(server, 21, 10_000);
  });
});

describe('3. a server with --max-batch 50', () => {
  it('gets pushes of at most 50 changes from a client whose batch size is 500', async () => {
    const server = await startServer({ limits: { maxBatch: 50 } });
    cleanup.push(() => server.close());
    const r = await open('batch');
    for (let i = 0; i < 600; i++) await r.put('events', `e${i}`, { title: `Event ${i}`, start: i });
    const { engine, socket } = engineOf(r, server);
    await engine.flushed({ timeoutMs: 20_000 });
    expect(await server.storage.head(SPACE)).toBe(600);
    expect(Math.max(...pushesOf(socket).map((p) => p.changes.length))).toBe(50);
    expect(errorsOf(socket, 'batch_too_large')).toBe(0);
    expect(socket.dials()).toBe(1);
  });

  it('a server that announces no limits (protocol 2): batch_too_large shrinks the pushes until they fit', async () => {
    const server = await startServer({ limits: { maxBatch: 50 } });
    cleanup.push(() => server.close());
    const r = await open('batch-old');
    for (let i = 0; i < 600; i++) await r.put('events', `e${i}`, { title: `Event ${i}`, start: i });
    const { engine, socket } = engineOf(r, server, { protocol2: true });
    await engine.flushed({ timeoutMs: 20_000 });
    expect(await server.storage.head(SPACE)).toBe(600);
    expect(errorsOf(socket, 'batch_too_large')).toBeGreaterThan(0);
    expect(errorsOf(socket, 'batch_too_large')).toBeLessThanOrEqual(5); // halving from 500: 250, 125, 62, 31
    expect(socket.dials()).toBe(1);
  });
});

describe('4. the message rate', () => {
  it('writes made one at a time while connected stay under the default 200 messages/s, and all arrive', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const r = await open('rate');
    const { engine, socket } = engineOf(r, server);
    await engine.waitFor((s) => s.state === 'synced');
    const started = performance.now();
    for (let i = 0; i < 2_000; i++) await r.put('events', `e${i}`, { title: `Event ${i}`, start: i });
    await engine.flushed({ timeoutMs: 30_000 });
    expect(await server.storage.head(SPACE)).toBe(2_000);
    expect(errorsOf(socket, 'rate_limited')).toBe(0);
    // Paced: never more messages in a second than the server allows.
    const seconds = (performance.now() - started) / 1000;
    expect(socket.sent.length / Math.max(1, seconds)).toBeLessThanOrEqual(200);
    expect(socket.dials()).toBe(1);
  });

  it('300 spaces with pending changes at connect are pushed under the rate, without rate_limited', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const r = await open('spaces');
    const spaces = Array.from({ length: 300 }, (_, i) => `s${i}`);
    for (const space of spaces) await r.put('events', 'e', { title: space, start: 1 }, { space });
    const { engine, socket } = engineOf(r, server, { spaces });
    await engine.flushed({ timeoutMs: 30_000 });
    for (const space of spaces.slice(0, 5)) expect(await server.storage.head(space as SpaceId)).toBe(1);
    expect(errorsOf(socket, 'rate_limited')).toBe(0);
    expect(socket.dials()).toBe(1);
  });

  it('rate_limited from a server that announces no limits ends the push in flight: it is sent again, and everything arrives', async () => {
    const server = await startServer({ limits: { messagesPerSecond: 20 } });
    cleanup.push(() => server.close());
    const r = await open('rate-old');
    const spaces = Array.from({ length: 60 }, (_, i) => `s${i}`);
    for (const space of spaces) for (let i = 0; i < 3; i++) await r.put('events', `e${i}`, { title: space, start: i }, { space });
    const { engine, socket } = engineOf(r, server, { spaces, protocol2: true });
    await engine.flushed({ timeoutMs: 60_000 });
    for (const space of spaces) expect(await server.storage.head(space as SpaceId)).toBe(3);
    expect(errorsOf(socket, 'rate_limited')).toBeGreaterThan(0);
    expect(socket.dials()).toBe(1);
  }, 90_000);
});

describe('5. a clock 10 minutes slow', () => {
  it('patches and deletes take effect on the slow replica at once and everywhere after', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const errors: Error[] = [];
    const g = await open('slow', { now: () => Date.now() - 10 * 60_000, onError: (e) => errors.push(e) });
    const h = await open('right');
    const sg = engineOf(g, server).engine;
    const sh = engineOf(h, server).engine;
    await h.put('events', 'e1', { title: 'from H', start: 1 });
    await waitUntil(async () => (await g.get('events', 'e1'))?.value['title'] === 'from H', 5_000, 'G to receive H’s record');
    await g.patch('events', 'e1', { title: 'from G' });
    expect((await g.get('events', 'e1'))?.value['title']).toBe('from G'); // read-your-writes
    await sg.flushed({ timeoutMs: 5_000 });
    await waitUntil(async () => (await h.get('events', 'e1'))?.value['title'] === 'from G', 5_000, 'H to take G’s patch');
    await g.delete('events', 'e1');
    expect(await g.get('events', 'e1')).toBeUndefined();
    await sg.flushed({ timeoutMs: 5_000 });
    await waitUntil(async () => (await h.get('events', 'e1')) === undefined, 5_000, 'H to take G’s delete');
    // The skew shows in the status, with a code; nothing was refused or reported as an error.
    expect(sg.status.clockSkew?.code).toBe('clock_skew');
    expect(Math.abs((sg.status.clockOffset ?? 0) - 10 * 60_000)).toBeLessThan(5_000);
    expect(sh.status.clockSkew).toBeUndefined();
    expect(errors).toEqual([]);
  });
});

describe('6. a clock 1 hour fast', () => {
  it('a new replica’s offline writes are stamped again at its first welcome: they sync and do not win for an hour', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const f = await open('fast', { now: () => Date.now() + 60 * 60_000 });
    await f.put('events', 'e1', { title: 'F, offline, before ever syncing', start: 1 });
    await f.put('events', 'e2', { title: 'F again', start: 2 });
    const { engine: sf, socket } = engineOf(f, server);
    await sf.flushed({ timeoutMs: 5_000 });
    expect(sf.status.state).toBe('synced');
    const log = await server.storage.readLog(SPACE, 0, 10);
    expect(log.map((e) => e.change.id)).toEqual(['e1', 'e2']);
    for (const { change } of log) expect(Math.abs(hlcWall(change.hlc) - Date.now())).toBeLessThan(10_000);
    expect(errorsOf(socket, 'clock_drift')).toBe(0);
    expect(sf.status.clockSkew?.code).toBe('clock_skew');
    // A later write of a replica with a right clock wins over F's.
    const h = await open('right');
    const sh = engineOf(h, server).engine;
    await waitUntil(async () => (await countOf(h, 'events')) === 2, 5_000, 'H to receive F’s records');
    await h.patch('events', 'e1', { title: 'H, later' });
    await sh.flushed({ timeoutMs: 5_000 });
    await waitUntil(async () => (await f.get('events', 'e1'))?.value['title'] === 'H, later', 5_000, 'F to take H’s later write');
    // And F's writes after its welcome carry the server's time.
    await f.patch('events', 'e2', { title: 'F online' });
    await sf.flushed({ timeoutMs: 5_000 });
    const last = (await server.storage.readLog(SPACE, 0, 10)).at(-1);
    expect(last?.change.id).toBe('e2');
    expect(Math.abs(hlcWall(last?.change.hlc ?? ('' as never)) - Date.now())).toBeLessThan(10_000);
  });

  it('a replica whose clock jumps a day ahead while offline syncs its writes when it comes back', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const clock = new ManualClock(Date.now());
    const ticking = () => clock.value + (performance.now() | 0);
    const f = await open('jump', { now: ticking });
    const { engine, socket } = engineOf(f, server);
    await engine.waitFor((s) => s.state === 'synced');
    engine.pause();
    expect(engine.status.state).toBe('paused');
    clock.value += 24 * 3_600_000;
    for (let i = 0; i < 5; i++) await f.put('events', `e${i}`, { title: `written a day ahead ${i}`, start: i });
    engine.resume();
    await engine.flushed({ timeoutMs: 10_000 });
    const log = await server.storage.readLog(SPACE, 0, 10);
    expect(log).toHaveLength(5);
    for (const { change } of log) expect(Math.abs(hlcWall(change.hlc) - Date.now())).toBeLessThan(10_000);
    expect(socket.dials()).toBe(2);
    await expectArrives(server, 5, 5_000);
  });
});

describe('7. errors that retrying cannot fix, and a browser that is offline', () => {
  const SECRET = 'liveness-test-secret-long-enough-for-hs256';
  const token = (space = 'default') =>
    new SignJWT({ spaces: { [space]: 'write' } })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
      .sign(new TextEncoder().encode(SECRET));

  it('no token for a JWT server: one dial, then `stopped` with unauthenticated until the app gives a token', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const r = await open('no-token');
    await r.put('events', 'e1', { title: 'waits for a token', start: 1 });
    const { engine, socket } = engineOf(r, server);
    await engine.waitFor((s) => s.state === 'stopped', 5_000);
    expect(engine.status.error).toMatchObject({ code: 'unauthenticated', fatal: true });
    const dials = socket.dials();
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // the window in which dials are counted
    expect(socket.dials()).toBe(dials);
    expect(dials).toBe(1);
    await expect(engine.flushed({ timeoutMs: 100 })).rejects.toMatchObject({ name: 'SyncError' });
    engine.setToken(await token());
    await engine.flushed({ timeoutMs: 5_000 });
    expect(await server.storage.head(SPACE)).toBe(1);
  });

  it('a rejected static token stops too; a token function is asked again, with backoff', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const stale = await open('stale');
    const a = engineOf(stale, server, { token: 'not-a-jwt' });
    await a.engine.waitFor((s) => s.state === 'stopped', 5_000);
    let asked = 0;
    const fresh = await open('fresh');
    const b = engineOf(fresh, server, {
      token: async () => {
        asked++;
        return asked < 3 ? 'expired-or-bad' : token();
      },
    });
    await b.engine.waitFor((s) => s.state === 'synced', 10_000);
    expect(asked).toBe(3);
    // Two refusals, each followed by a wait from the backoff's floor: not a tight loop.
    expect(b.socket.dials()).toBe(3);
    expect(a.socket.dials()).toBe(1);
  });

  it('does not dial while the browser says it is offline, drops the socket when it goes offline, and dials when it is back', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const g = globalThis as unknown as Record<string, unknown>;
    const events = new EventTarget();
    const navigator = { onLine: false };
    Object.defineProperty(g, 'navigator', { value: navigator, configurable: true, writable: true });
    g['addEventListener'] = events.addEventListener.bind(events);
    g['removeEventListener'] = events.removeEventListener.bind(events);
    cleanup.push(() => {
      delete g['navigator'];
      delete g['addEventListener'];
      delete g['removeEventListener'];
    });
    const r = await open('browser');
    await r.put('events', 'e1', { title: 'offline', start: 1 });
    const { engine, socket } = engineOf(r, server);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(socket.dials()).toBe(0);
    expect(engine.status.state).toBe('offline');
    navigator.onLine = true;
    events.dispatchEvent(new Event('online'));
    await engine.flushed({ timeoutMs: 5_000 });
    expect(socket.dials()).toBe(1);
    navigator.onLine = false;
    events.dispatchEvent(new Event('offline'));
    expect(engine.status.state).toBe('offline');
    await r.put('events', 'e2', { title: 'offline again', start: 2 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(socket.dials()).toBe(1);
    expect(await server.storage.head(SPACE)).toBe(1);
    navigator.onLine = true;
    events.dispatchEvent(new Event('online'));
    await engine.flushed({ timeoutMs: 5_000 });
    expect(socket.dials()).toBe(2);
    expect(await server.storage.head(SPACE)).toBe(2);
  });
});

describe('sync control', () => {
  it('pause() stops syncing until resume(); flushed() waits across it and resolves once the writes are stored', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const r = await open('pause');
    const { engine, socket } = engineOf(r, server);
    await engine.waitFor((s) => s.state === 'synced');
    engine.pause();
    await r.put('events', 'e1', { title: 'while paused', start: 1 });
    let flushed = false;
    const done = engine.flushed().then(() => (flushed = true));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(flushed).toBe(false);
    expect(engine.status).toMatchObject({ state: 'paused', pending: 1 });
    expect(await server.storage.head(SPACE)).toBe(0);
    expect(socket.dials()).toBe(1);
    engine.resume();
    await done;
    expect(await server.storage.head(SPACE)).toBe(1);
    // Nothing pending: resolves at once; closed: rejects.
    await engine.flushed({ timeoutMs: 1 });
    engine.close();
    await expect(engine.flushed()).rejects.toMatchObject({ name: 'SyncError', code: 'closed' });
  });

  it('flushed() rejects with the code when the space it waits for stops (a read-only grant)', async () => {
    const server = await startServer({ authenticate: async () => ({ subject: 'reader', access: () => 'read' as const }) });
    cleanup.push(() => server.close());
    const r = await open('read-only');
    await r.put('events', 'e1', { title: 'cannot be pushed', start: 1 });
    const { engine } = engineOf(r, server);
    await expect(engine.flushed({ timeoutMs: 5_000 })).rejects.toMatchObject({ name: 'SyncError', code: 'forbidden' });
    expect(engine.status.stoppedSpaces?.[0]).toMatchObject({ code: 'forbidden', space: SPACE });
    expect(engine.status.state).toBe('syncing');
    expect(engine.status.pending).toBe(1);
  });
});

describe('a device clock with fractions of a millisecond', () => {
  it('(a `now` of performance.timeOrigin + performance.now(), on the client and the server) says hello and welcome in whole ms and syncs', async () => {
    const server = await startServer({ now: () => performance.timeOrigin + performance.now() });
    cleanup.push(() => server.close());
    const r = await open('fractional', { now: () => performance.timeOrigin + performance.now() });
    const { engine, socket } = engineOf(r, server);
    await r.put('events', 'e1', event(1));
    await expectArrives(server, 1, 10_000);
    await waitUntil(() => engine.status.state === 'synced', 10_000, 'the writer to be synced');
    const hello = socket.sent.find((m) => m.type === 'hello');
    expect(hello?.type === 'hello' && Number.isInteger(hello.time)).toBe(true);
    const welcome = socket.received.find((m) => m.type === 'welcome');
    expect(welcome?.type === 'welcome' && Number.isInteger(welcome.time)).toBe(true);
    expect(engine.status.error).toBeUndefined();
  });
});

/**
 * Presence on the server (protocol 8), over real sockets: a client's state in a
 * space reaches the space's other clients, a client that subscribes later gets
 * the full list, and a state goes when its connection does. It is never stored
 * or logged (the SQLite database file and the server's log lines are searched
 * for it), it is refused past MAX_PRESENCE_BYTES and past 20 updates a second
 * without the connection ending, it needs access to the space (read is
 * enough), and clients of older protocols are sent none.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_PRESENCE_BYTES, PRESENCE_UPDATES_PER_SECOND, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { sqliteStorage } from '@syncline/server';
import { cleanupStack, putChange, RawClient, startServer, tempDir, waitUntil } from '../sync/harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const TEAM = 'team' as SpaceId;
const SECRET = 'a test secret that is long enough for HS256';

async function client(url: string, replica: string, spaces: readonly string[] = [TEAM], token?: string): Promise<RawClient> {
  const c = await RawClient.open(url);
  cleanup.push(() => c.close());
  await c.hello(replica as ReplicaId, spaces.map((space) => ({ space })), token);
  return c;
}

const presenceOf = (c: RawClient, space: SpaceId = TEAM) => c.of('presence').filter((m) => m.space === space);

describe('presence (protocol 8)', () => {
  it('relays a state to the other clients of the space; a later subscriber gets the full list; a state goes with its connection', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await client(server.url, 'ann');
    const b = await client(server.url, 'bob');
    // Each starts from a full list: empty, since nobody has a state yet.
    await a.next('presence', (m) => m.full === true && m.peers.length === 0);
    await b.next('presence', (m) => m.full === true && m.peers.length === 0);

    a.send({ type: 'presence', space: TEAM, state: { week: 49, editing: 'e1' } });
    await b.next('presence', (m) => m.peers.some((p) => p.replica === 'ann'));
    expect(presenceOf(b).at(-1)).toEqual({ type: 'presence', space: TEAM, peers: [{ replica: 'ann', state: { week: 49, editing: 'e1' } }] });
    // Not echoed to its sender.
    expect(presenceOf(a).flatMap((m) => m.peers)).toEqual([]);

    const c = await client(server.url, 'cid');
    const full = await c.next('presence', (m) => m.full === true);
    expect(full.peers).toEqual([{ replica: 'ann', state: { week: 49, editing: 'e1' } }]);

    const since = b.messages.length;
    a.close();
    const left = await b.next('presence', (m) => m.peers.some((p) => p.replica === 'ann' && p.state === null), since);
    expect(left.peers).toEqual([{ replica: 'ann', state: null }]);
    await c.next('presence', (m) => m.peers.some((p) => p.replica === 'ann' && p.state === null));
  });

  it('a replica that reconnects keeps the state it set from the new connection when the old one closes', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const watcher = await client(server.url, 'watcher');
    const first = await client(server.url, 'dev');
    first.send({ type: 'presence', space: TEAM, state: { n: 1 } });
    await watcher.next('presence', (m) => m.peers.some((p) => p.replica === 'dev'));
    const second = await client(server.url, 'dev');
    second.send({ type: 'presence', space: TEAM, state: { n: 2 } });
    await watcher.next('presence', (m) => m.peers.some((p) => p.replica === 'dev' && (p.state as { n: number } | null)?.n === 2));
    const since = watcher.messages.length;
    first.close();
    // The old connection's close takes nothing away: a probe from a third client still sees n: 2.
    const probe = await client(server.url, 'probe');
    const full = await probe.next('presence', (m) => m.full === true);
    expect(full.peers).toEqual([{ replica: 'dev', state: { n: 2 } }]);
    const after = watcher.messages.slice(since).flatMap((m) => (m.type === 'presence' ? m.peers : []));
    expect(after).not.toContainEqual({ replica: 'dev', state: null });
  });

  it('is never stored or logged: the database file and the log lines hold no trace of a state', async () => {
    const dir = await tempDir('syncline-presence-');
    cleanup.push(dir.remove);
    const path = join(dir.path, 'presence.db');
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) }));
    const server = await startServer({ storage: sqliteStorage({ path }), logger });
    const a = await client(server.url, 'ann');
    const b = await client(server.url, 'bob');
    const marker = 'presence-marker-7f3a9c';
    // A write too, so that the database has something in it and the search is not trivially empty.
    a.send({ type: 'push', space: TEAM, changes: [putChange('ann' as ReplicaId, TEAM, 1, { title: 'stored-marker-2b81' })] });
    await a.next('ack');
    a.send({ type: 'presence', space: TEAM, state: { note: marker } });
    await b.next('presence', (m) => m.peers.some((p) => JSON.stringify(p.state).includes(marker)));
    a.close();
    await b.next('presence', (m) => m.peers.some((p) => p.state === null));
    await server.close();
    const stored = ['', '-wal', '-shm'].map((suffix) => {
      try {
        return readFileSync(path + suffix).toString('latin1');
      } catch {
        return '';
      }
    });
    expect(stored.join('')).toContain('stored-marker-2b81');
    expect(stored.join('')).not.toContain(marker);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('')).not.toContain(marker);
  });

  it(`refuses a state over MAX_PRESENCE_BYTES (too_large) and updates over ${PRESENCE_UPDATES_PER_SECOND} a second (rate_limited), keeping the connection`, async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const a = await client(server.url, 'ann');
    const b = await client(server.url, 'bob');
    a.send({ type: 'presence', space: TEAM, state: { blob: 'x'.repeat(MAX_PRESENCE_BYTES) } });
    const big = await a.error('too_large');
    expect([big.fatal, big.space]).toEqual([false, TEAM]);

    for (let n = 0; n < 3 * PRESENCE_UPDATES_PER_SECOND; n++) a.send({ type: 'presence', space: TEAM, state: { n } });
    const limited = await a.error('rate_limited');
    expect(limited.fatal).toBe(false);
    expect(limited.retryAfter).toBeGreaterThan(0);
    await waitUntil(() => presenceOf(b).some((m) => m.peers.some((p) => (p.state as { n?: number } | null)?.n === PRESENCE_UPDATES_PER_SECOND - 1)), 5_000, 'the updates within the rate to arrive');
    const relayed = presenceOf(b).flatMap((m) => m.peers).filter((p) => p.replica === 'ann');
    expect(relayed.length).toBeLessThanOrEqual(PRESENCE_UPDATES_PER_SECOND + 1);
    expect(relayed.some((p) => JSON.stringify(p.state).includes('blob'))).toBe(false);

    // Still connected and served.
    a.send({ type: 'ping', id: 7 });
    await a.next('pong', (m) => m.id === 7);
    expect(a.closed).toBeUndefined();
  });

  it('needs access to the space: read is enough; a space not granted is refused (forbidden) and relayed to nobody', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const sign = (spaces: Record<string, 'read' | 'write'>, sub: string) =>
      new SignJWT({ spaces }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    const reader = await client(server.url, 'reader', [TEAM], await sign({ team: 'read' }, 'r'));
    const writer = await client(server.url, 'writer', [TEAM], await sign({ team: 'write' }, 'w'));
    reader.send({ type: 'presence', space: TEAM, state: { looking: true } });
    await writer.next('presence', (m) => m.peers.some((p) => p.replica === 'reader'));
    reader.send({ type: 'presence', space: 'secret' as SpaceId, state: { looking: true } });
    const refused = await reader.error('forbidden');
    expect([refused.fatal, refused.space]).toEqual([false, 'secret']);
    expect(presenceOf(writer, 'secret' as SpaceId)).toEqual([]);
  });

  it('sends clients of protocol 7 no presence, and their hello still works beside protocol 8 clients', async () => {
    const server = await startServer();
    cleanup.push(() => server.close());
    const old = await RawClient.open(server.url);
    cleanup.push(() => old.close());
    old.send({ type: 'hello', protocol: 7, replica: 'old' as ReplicaId, spaces: [{ space: TEAM, after: 0 }], time: Date.now() });
    await old.next('welcome');
    const a = await client(server.url, 'ann');
    a.send({ type: 'presence', space: TEAM, state: { hi: 1 } });
    const b = await client(server.url, 'bob');
    await b.next('presence', (m) => m.peers.some((p) => p.replica === 'ann'));
    await old.next('synced');
    expect(old.of('presence')).toEqual([]);
  });
});

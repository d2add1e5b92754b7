/**
 * Guarantee 6: nobody reads or writes a space they are not granted. JWT mode and
 * the authenticate hook; every refusal is a coded error the engine reports in
 * status.error, nothing refused is stored, and granted clients keep working.
 */
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, SynclineError, type SpaceId } from '@syncline/core/internal';
import type { SyncEngine } from '@syncline/client';
import { AuthError, type AuthRequest } from '@syncline/server';
import { cleanupStack, counter, countOf, isSynced, outboxCount, RawClient, replica, startServer, sync, uniqueName, waitUntil } from '../sync/harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const SECRET = 'a test secret that is long enough for HS256';
const schema = { events: {} } as const;
const CAL = 'cal' as SpaceId;

async function token(spaces: Record<string, 'read' | 'write'>, options: { exp?: number; secret?: string; sub?: string } = {}): Promise<string> {
  return new SignJWT({ spaces })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(options.sub ?? 'user-1')
    .setIssuedAt()
    .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}

/** A replica in space `cal` with one local write, syncing with `tok`. */
async function client(url: string, tok: string | undefined): Promise<{ engine: SyncEngine; id: string }> {
  const r = await replica({ name: uniqueName('auth'), schema });
  await r.put('events', `from-${r.id}`, { title: 'should it be stored?' }, { space: CAL });
  const engine = sync(r, url, { spaces: [CAL], ...(tok !== undefined ? { token: tok } : {}) });
  cleanup.push(() => r.close());
  return { engine, id: r.id };
}

const errorCode = (engine: SyncEngine): string | undefined => engine.status.error?.code;

describe('JWT mode', () => {
  it('refuses a missing token, an expired token, another space’s token and a read-only push', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());

    const cases: Array<[string, string | undefined, string]> = [
      ['no token', undefined, 'unauthenticated'],
      ['expired token', await token({ cal: 'write' }, { exp: Math.floor(Date.now() / 1000) - 60 }), 'unauthenticated'],
      ['token signed with another secret', await token({ cal: 'write' }, { secret: 'not the server secret, also long enough' }), 'unauthenticated'],
      ['not a JWT', 'hello', 'unauthenticated'],
      ['token for another space', await token({ other: 'write' }), 'forbidden'],
      ['read-only token that pushes', await token({ cal: 'read' }), 'forbidden'],
    ];
    for (const [what, tok, code] of cases) {
      const { engine } = await client(server.url, tok);
      await waitUntil(() => errorCode(engine) === code, 5_000, () => `${what}: error ${code} (status ${JSON.stringify(engine.status)})`);
      expect(engine.status.state, what).not.toBe('synced');
      engine.close();
    }
    expect(await server.storage.head(CAL)).toBe(0);
    expect(await server.storage.head('other' as SpaceId)).toBe(0);
    expect(await server.storage.spaces()).toEqual([]);
    expect(await counter(server.metrics.changesStored)).toBe(0);
    expect(await counter(server.metrics.errors, { code: 'unauthenticated' })).toBeGreaterThanOrEqual(4);
    expect(await counter(server.metrics.errors, { code: 'forbidden' })).toBeGreaterThanOrEqual(2);

    // A write token works, a read token reads: auth refuses only what it must.
    const writer = await replica({ name: uniqueName('auth-writer'), schema });
    const reader = await replica({ name: uniqueName('auth-reader'), schema });
    cleanup.push(() => writer.close(), () => reader.close());
    await writer.put('events', 'granted', { title: 'stored' }, { space: CAL });
    const sw = sync(writer, server.url, { spaces: [CAL], token: await token({ cal: 'write' }) });
    const sr = sync(reader, server.url, { spaces: [CAL], token: async () => token({ cal: 'read' }) });
    cleanup.push(() => sw.close(), () => sr.close());
    await waitUntil(async () => isSynced(sw) && isSynced(sr) && (await countOf(reader, 'events')) === 1, 5_000, 'the reader to receive the writer’s change');
    expect(await server.storage.head(CAL)).toBe(1);
    expect(sw.status.error).toBeUndefined();

    // The read-only replica's own write is refused and stays in its outbox, not on the server.
    await reader.put('events', 'sneaky', { title: 'read-only write' }, { space: CAL });
    await waitUntil(() => errorCode(sr) === 'forbidden', 5_000, 'the read-only push to be refused');
    expect(sr.status.error).toMatchObject({ code: 'forbidden', space: CAL, fatal: false });
    expect(await outboxCount(reader, CAL)).toBe(1);
    expect(await server.storage.head(CAL)).toBe(1);
    expect(await countOf(writer, 'events')).toBe(1);
  });

  it('refuses raw hellos with a coded, fatal error and closes the socket', async () => {
    const server = await startServer({ jwt: { secret: SECRET } });
    cleanup.push(() => server.close());
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'unauthenticated'],
      [await token({ cal: 'write' }, { exp: Math.floor(Date.now() / 1000) - 1 }), 'unauthenticated'],
      [await token({ other: 'write' }), 'forbidden'],
    ];
    for (const [tok, code] of cases) {
      const raw = await RawClient.open(server.url);
      cleanup.push(() => raw.close());
      raw.send({ type: 'hello', protocol: PROTOCOL_VERSION, replica: 'rawreplica01' as never, ...(tok ? { token: tok } : {}), spaces: [{ space: CAL, after: 0 }], time: Date.now() });
      // (Refusing one space is not fatal by itself; refusing every space asked for is.)
      await raw.next('error', (m) => m.code === code && m.fatal);
      expect(raw.of('error').every((m) => m.code === code)).toBe(true);
      expect((await raw.waitClosed()).code).toBe(1008);
      expect(raw.of('welcome')).toEqual([]);
    }
    // A read-only session that pushes by hand: refused, nothing stored, connection kept.
    const raw = await RawClient.open(server.url);
    cleanup.push(() => raw.close());
    await raw.hello('rawreader001' as never, [{ space: CAL }], await token({ cal: 'read' }));
    expect(raw.of('welcome')[0]?.spaces).toEqual([{ space: CAL, access: 'read', head: 0 }]);
    raw.send({
      type: 'push',
      space: CAL,
      changes: [{ space: CAL, collection: 'events', id: 'x', replica: 'rawreader001', seq: 1, hlc: `${Date.now().toString(16).padStart(12, '0')}-0000-rawreader001`, op: 'put', fields: { a: 1 } } as never],
    });
    expect(await raw.error('forbidden')).toMatchObject({ fatal: false, space: CAL });
    expect(raw.closed).toBeUndefined();
    raw.send({ type: 'ping', id: 7 });
    await raw.next('pong', (m) => m.id === 7);
    expect(await server.storage.head(CAL)).toBe(0);
  });
});

describe('authenticate hook', () => {
  it('grants per space, refuses with the hook’s code, and maps other failures to unauthenticated', async () => {
    const requests: AuthRequest[] = [];
    const server = await startServer({
      authenticate: async (request) => {
        requests.push(request);
        if (request.token === 'alice') return { subject: 'alice', access: (space) => (space === CAL ? 'write' : undefined) };
        if (request.token === 'bob') return { subject: 'bob', access: (space) => (space === CAL ? 'read' : undefined) };
        if (request.token === 'mallory') throw new AuthError('forbidden', 'mallory is banned');
        if (request.token === 'broken') throw new Error('the user database is down');
        if (request.token === 'odd') throw new SynclineError('some_other_code', 'not an auth code');
        throw new AuthError('unauthenticated', 'who are you?');
      },
    });
    cleanup.push(() => server.close());

    const cases: Array<[string | undefined, string]> = [
      [undefined, 'unauthenticated'],
      ['mallory', 'forbidden'],
      ['broken', 'unauthenticated'],
      ['odd', 'unauthenticated'],
      ['bob', 'forbidden'], // read-only, and the client has a write to push
    ];
    for (const [tok, code] of cases) {
      const { engine } = await client(server.url, tok);
      await waitUntil(() => errorCode(engine) === code, 5_000, () => `token ${tok}: error ${code} (status ${JSON.stringify(engine.status)})`);
      engine.close();
    }
    expect(await server.storage.head(CAL)).toBe(0);

    const { engine, id } = await client(server.url, 'alice');
    await waitUntil(() => isSynced(engine), 5_000, 'alice to sync');
    expect(await server.storage.head(CAL)).toBe(1);
    const alice = requests.find((r) => r.token === 'alice');
    expect(alice).toMatchObject({ replica: id, spaces: [CAL] });

    // A space the hook does not grant is refused even with a valid identity.
    const other = await replica({ name: uniqueName('auth-other'), schema });
    cleanup.push(() => other.close());
    await other.put('events', 'x', { title: 'elsewhere' }, { space: 'private' });
    const so = sync(other, server.url, { spaces: ['private'], token: 'alice' });
    cleanup.push(() => so.close());
    await waitUntil(() => so.status.error?.code === 'forbidden', 5_000, 'the ungranted space to be refused');
    expect(await server.storage.head('private' as SpaceId)).toBe(0);
  });
});

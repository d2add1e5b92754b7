/**
 * The server's log lines an operator reads (server README, "Logs"): one per
 * connect and per disconnect, with who, where from, how long and why; one per
 * refusal; a slow consumer at warn.
 */
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReplicaId, SpaceId } from '@syncline/core/internal';
import { createSyncServer, sqliteStorage } from '@syncline/server';
import { cleanupStack, putChange, RawClient, waitUntil } from '../sync/harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

function recordingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('logs', () => {
  it('one line per connect and disconnect (replica, subject, spaces, address, duration, code, reason, who closed) and one per refusal', async () => {
    const secret = 'log-test-secret';
    const { logger, lines } = recordingLogger();
    const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger, jwt: { secret } });
    cleanup.push(() => server.close());
    await server.listen();
    const token = await new SignJWT({ spaces: { team: 'write', lobby: 'read' } }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(new TextEncoder().encode(secret));

    const raw = await RawClient.open(server.url);
    const replica = 'logreplica' as ReplicaId;
    await raw.hello(replica, [{ space: 'team' }, { space: 'lobby' }], token);
    const connected = lines.find((l) => l['msg'] === 'client connected');
    expect(connected).toMatchObject({ level: 30, replica, subject: 'alice', spaces: ['team', 'lobby'], address: '127.0.0.1', protocol: expect.any(Number) });

    // A refusal: one line with its code, the space and who.
    raw.send({ type: 'push', space: 'lobby' as SpaceId, changes: [putChange(replica, 'lobby' as SpaceId, 1, { title: 'x' })] });
    await raw.error('forbidden');
    expect(lines.find((l) => l['code'] === 'forbidden')).toMatchObject({ level: 30, replica, subject: 'alice', address: '127.0.0.1', space: 'lobby', fatal: false });

    // The client closes: a disconnect line with its code and the time it was connected.
    raw.close();
    await waitUntil(() => lines.some((l) => l['msg'] === 'client disconnected'), 5_000, 'the disconnect line');
    expect(lines.find((l) => l['msg'] === 'client disconnected')).toMatchObject({ level: 30, replica, subject: 'alice', spaces: ['team', 'lobby'], address: '127.0.0.1', durationMs: expect.any(Number), by: 'client' });

    // The server closes one (a token it refuses): the line says so, with the close code and reason.
    const bad = await RawClient.open(server.url);
    bad.send({ type: 'hello', protocol: 7, replica: 'intruder' as ReplicaId, spaces: [{ space: 'team' as SpaceId, after: 0 }], time: Date.now(), token: 'not-a-jwt' });
    await bad.error('unauthenticated');
    await waitUntil(() => lines.filter((l) => l['msg'] === 'client disconnected').length === 2, 5_000, 'the second disconnect line');
    expect(lines.filter((l) => l['msg'] === 'client disconnected')[1]).toMatchObject({ replica: 'intruder', code: 1008, reason: 'unauthenticated', by: 'server', address: '127.0.0.1' });
    expect(lines.filter((l) => l['msg'] === 'client connected')).toHaveLength(1);
  });
});

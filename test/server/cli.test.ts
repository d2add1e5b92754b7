/**
 * The `syncline-server` command: it starts on the port it is given (0: any),
 * says which in a JSON log line, answers /healthz and /metrics, and on SIGTERM
 * tells connected clients, stores what was pushed, and exits 0.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaId, SpaceId } from '@syncline/core/internal';
import { sqliteStorage } from '@syncline/server';
import { cleanupStack, putChange, RawClient, tempDir, within } from '../sync/harness.js';
import { buildDist, ROOT } from './fixtures/build.js';
import { spawnServer } from './fixtures/child.js';

const BIN = join(ROOT, 'packages/server/bin/syncline-server.js');
const cleanup = cleanupStack();
afterEach(() => cleanup.run());
beforeAll(() => buildDist(), 120_000);

describe('syncline-server', () => {
  it('starts, serves /healthz and /metrics, and shuts down cleanly on SIGTERM', async () => {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const db = join(dir.path, 'x.db');
    const child = await spawnServer([BIN, '--port', '0', '--db', db]);
    cleanup.push(() => child.process.kill('SIGKILL'));
    const listening = child.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => typeof l['port'] === 'number');
    expect(listening).toMatchObject({ port: child.port, host: '127.0.0.1' });

    const health = await fetch(`http://127.0.0.1:${child.port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const metrics = await fetch(`http://127.0.0.1:${child.port}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toContain('syncline_connections');
    expect(text).toContain('process_cpu_user_seconds_total');

    // A connected client that has pushed a change.
    const raw = await RawClient.open(`ws://127.0.0.1:${child.port}/sync`);
    cleanup.push(() => raw.close());
    const replica = 'clireplica' as ReplicaId;
    const space = 'default' as SpaceId;
    await raw.hello(replica, [{ space }]);
    raw.send({ type: 'push', space, changes: [putChange(replica, space, 1, { title: 'kept' })] });
    await raw.next('ack', (m) => m.upTo === 1);

    child.process.kill('SIGTERM');
    const exit = await within(child.exited, 10_000, 'the server to exit after SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(await raw.error('shutting_down')).toMatchObject({ fatal: true });
    const closed = await raw.waitClosed();
    expect(closed.code).toBe(1013); // try again later
    expect(child.lines.some((l) => l.includes('syncline server stopped'))).toBe(true);

    // What was acknowledged is in the file.
    expect(existsSync(db)).toBe(true);
    const storage = sqliteStorage({ path: db });
    cleanup.push(() => storage.close());
    const log = await storage.readLog(space, 0, 10);
    expect(log.map((e) => [e.pos, e.change.replica, e.change.seq])).toEqual([[1, replica, 1]]);
  });

  it('prints usage with --help and refuses a bad option', () => {
    const help = spawnSync(process.execPath, [BIN, '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('usage: syncline-server');
    const bad = spawnSync(process.execPath, [BIN, '--port', 'eighty'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--port');
    const unknown = spawnSync(process.execPath, [BIN, '--no-such-option'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(unknown.status).toBe(1);
    // --postgres: an unreachable database stops it at once, naming the URL without its password.
    const unreachable = spawnSync(process.execPath, [BIN, '--port', '0', '--postgres', 'postgres://u:secret@127.0.0.1:1/x'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(unreachable.status).toBe(1);
    expect(unreachable.stderr).toContain('PostgreSQL at postgres://u:***@127.0.0.1:1/x');
    expect(unreachable.stderr).not.toContain('secret');
    // Limits below the protocol's promise: refused before any database is opened.
    const tiny = spawnSync(process.execPath, [BIN, '--port', '0', '--db', 'never-created.db', '--max-frame-bytes', '1000', '--messages-per-second', '2'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(tiny.status).toBe(1);
    expect(tiny.stderr).toContain('maxFrameBytes is 1000');
    expect(tiny.stderr).toContain('messagesPerSecond is 2');
    expect(existsSync(join(ROOT, 'never-created.db'))).toBe(false);
    const both = spawnSync(process.execPath, [BIN, '--db', 'x.db', '--postgres', 'postgres://127.0.0.1/x'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(both.status).toBe(1);
    expect(both.stderr).toContain('exclude each other');
  });

  it('retire: a running server refuses the retired replica’s pushes and hellos from then on; ids are checked', async () => {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const db = join(dir.path, 'r.db');
    const child = await spawnServer([BIN, '--port', '0', '--db', db, '--gc-interval', '0']);
    cleanup.push(() => child.process.kill('SIGKILL'));
    const space = 'default' as SpaceId;
    const replica = 'oldphone' as ReplicaId;
    const raw = await RawClient.open(`ws://127.0.0.1:${child.port}/sync`);
    cleanup.push(() => raw.close());
    await raw.hello(replica, [{ space }]);
    raw.send({ type: 'push', space, changes: [putChange(replica, space, 1, { title: 'before' })] });
    await raw.next('ack', (m) => m.upTo === 1);

    const run = spawnSync(process.execPath, [BIN, 'retire', 'oldphone', 'nophone', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('retired: oldphone nophone');
    const again = spawnSync(process.execPath, [BIN, 'retire', 'oldphone', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(again.stdout).toContain('already retired: oldphone');
    const bad = spawnSync(process.execPath, [BIN, 'retire', 'not a replica', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('not a replica id');

    // Its next push is refused, and so is its next hello.
    raw.send({ type: 'push', space, changes: [putChange(replica, space, 2, { title: 'after' })] });
    expect(await raw.error('replica_retired')).toMatchObject({ fatal: true });
    const next = await RawClient.open(`ws://127.0.0.1:${child.port}/sync`);
    cleanup.push(() => next.close());
    next.send({ type: 'hello', protocol: 6, replica, spaces: [{ space, after: 0 }], time: Date.now() });
    expect(await next.error('replica_retired')).toMatchObject({ fatal: true });
    child.process.kill('SIGTERM');
    await within(child.exited, 10_000, 'the server to exit');
    const storage = sqliteStorage({ path: db });
    cleanup.push(() => storage.close());
    expect(await storage.isRetired(replica)).toBe(true);
    expect((await storage.readLog(space, 0, 10)).map((e) => e.change.seq)).toEqual([1]);
  });
});

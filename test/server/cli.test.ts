/**
 * The `syncline-server` command: it starts on the port it is given (0: any),
 * says which in a JSON log line, answers /healthz and /metrics, and on SIGTERM
 * tells connected clients, stores what was pushed, and exits 0.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
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

/** A child server on a new SQLite file `name` in a temp folder, and a raw client of it that said hello as `replica` in `default`. */
async function runningWithClient(name: string, replica: ReplicaId, args: string[] = []) {
  const dir = await tempDir();
  cleanup.push(dir.remove);
  const db = join(dir.path, name);
  const child = await spawnServer([BIN, '--port', '0', '--db', db, ...args]);
  cleanup.push(() => child.process.kill('SIGKILL'));
  const raw = await RawClient.open(`ws://127.0.0.1:${child.port}/sync`);
  cleanup.push(() => raw.close());
  await raw.hello(replica, [{ space: 'default' }]);
  return { dir, db, child, raw, space: 'default' as SpaceId };
}

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

  it('takes every option from SYNCLINE_* variables and secrets from files; the command line wins; /metrics only on the admin port', async () => {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const db = join(dir.path, 'env.db');
    const secretFile = join(dir.path, 'jwt-secret');
    writeFileSync(secretFile, 'a-secret-from-a-file\n');
    const child = await spawnServer([BIN, '--port', '0'], 15_000, {
      SYNCLINE_PORT: '1', // the command line wins
      SYNCLINE_DB: db,
      SYNCLINE_JWT_SECRET_FILE: secretFile,
      SYNCLINE_ADMIN_PORT: '0',
      SYNCLINE_LOG_LEVEL: 'info',
    });
    cleanup.push(() => child.process.kill('SIGKILL'));
    const admin = child.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => typeof l['adminPort'] === 'number');
    expect(admin).toMatchObject({ adminHost: '127.0.0.1' });
    expect((await fetch(`http://127.0.0.1:${child.port}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${child.port}/healthz`)).status).toBe(200);
    const metrics = await fetch(`http://127.0.0.1:${admin?.['adminPort'] as number}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('syncline_connections');
    expect((await fetch(`http://127.0.0.1:${admin?.['adminPort'] as number}/healthz`)).status).toBe(200);

    // A token minted by `token` with the secret from the same file is accepted, for its spaces and rights only.
    const mint = (...args: string[]) => spawnSync(process.execPath, [BIN, 'token', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, env: { ...process.env, SYNCLINE_JWT_SECRET_FILE: secretFile } });
    const minted = mint('--sub', 'alice', '--space', 'team', '--space', 'lobby:read', '--expires-in', '10m');
    expect(minted.stderr).toBe('');
    expect(minted.status).toBe(0);
    const token = minted.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const raw = await RawClient.open(`ws://127.0.0.1:${child.port}/sync`);
    cleanup.push(() => raw.close());
    await raw.hello('tokenuser' as ReplicaId, [{ space: 'team' }, { space: 'lobby' }], token);
    const replica = 'tokenuser' as ReplicaId;
    raw.send({ type: 'push', space: 'team' as SpaceId, changes: [putChange(replica, 'team' as SpaceId, 1, { title: 'by alice' })] });
    await raw.next('ack', (m) => m.upTo === 1);
    raw.send({ type: 'push', space: 'lobby' as SpaceId, changes: [putChange(replica, 'lobby' as SpaceId, 1, { title: 'read only' })] });
    expect(await raw.error('forbidden')).toMatchObject({ space: 'lobby' });
    // inspect, through the admin listener: the connection, its subject and spaces, the space and its writer.
    const adminUrl = `http://127.0.0.1:${admin?.['adminPort'] as number}`;
    const inspected = spawnSync(process.execPath, [BIN, 'inspect', '--admin', adminUrl, '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(inspected.stderr).toBe('');
    const inspection = JSON.parse(inspected.stdout) as { connections: Array<Record<string, unknown>>; spaces: Array<Record<string, unknown>>; retired: number };
    expect(inspection.connections).toEqual([expect.objectContaining({ replica: 'tokenuser', subject: 'alice', spaces: ['team', 'lobby'], address: '127.0.0.1' })]);
    expect(inspection.spaces).toEqual([
      expect.objectContaining({ space: 'team', head: 1, records: 1, tombstones: 0, writers: [expect.objectContaining({ replica: 'tokenuser', seq: 1, retired: false })], quota: { maxBytes: 1024 ** 3, maxRecords: 1_000_000 } }),
    ]);
    expect(inspection.retired).toBe(0);
    const text = spawnSync(process.execPath, [BIN, 'inspect', '--admin', adminUrl], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 }).stdout;
    expect(text).toContain('connections: 1');
    expect(text).toContain('tokenuser  subject alice  from 127.0.0.1');
    expect(text).toMatch(/team: head 1, compacted to 0, 1 records, 0 tombstones, \d+ bytes \(quota: [\d.]+% of 1073741824 bytes, 0\.00010% of 1000000 records\), horizon \S+, 1 writers/);
    // A service's token (--service) reads the backend API; a client's does not.
    const service = mint('--sub', 'mirror', '--space', '*:read', '--service').stdout.trim();
    expect((await fetch(`http://127.0.0.1:${child.port}/api/v1/spaces/team/changes`, { headers: { authorization: `Bearer ${service}` } })).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${child.port}/api/v1/spaces/team/changes`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
    // /inspect is on the admin listener only.
    expect((await fetch(`http://127.0.0.1:${child.port}/inspect`)).status).toBe(404);
    // Signed with another secret: refused.
    const other = spawnSync(process.execPath, [BIN, 'token', '--sub', 'mallory', '--space', 'team', '--jwt-secret', 'wrong'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    const refused = await RawClient.open(`ws://127.0.0.1:${child.port}/sync`);
    cleanup.push(() => refused.close());
    refused.send({ type: 'hello', protocol: 7, replica: 'mallory1' as ReplicaId, spaces: [{ space: 'team' as SpaceId, after: 0 }], time: Date.now(), token: other.stdout.trim() });
    expect(await refused.error('unauthenticated')).toMatchObject({ fatal: true });
    // token's own mistakes.
    expect(mint('--space', 'team').stderr).toContain('token needs --sub');
    expect(mint('--sub', 'a').stderr).toContain('at least one --space');
    expect(mint('--sub', 'a', '--space', 'team', '--expires-in', 'soon').stderr).toContain('--expires-in must be a duration');
    expect(spawnSync(process.execPath, [BIN, 'token', '--sub', 'a', '--space', 'x'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, env: { ...process.env, SYNCLINE_JWT_SECRET_FILE: '', SYNCLINE_JWT_SECRET: '' } }).stderr).toContain('needs the server\'s secret');
  });

  it('says --version, and refuses mistakes in one line naming the option or variable, before it creates or binds anything', async () => {
    const run = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, env: { ...process.env, ...env } });
    const version = run(['--version']);
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^syncline-server \d+\.\d+\.\d+ \(client protocol \d+, link protocol \d+\)\n$/);
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const db = join(dir.path, 'never', 'x.db');
    const refusals: Array<[string[], Record<string, string>, string]> = [
      [['--bogus'], {}, 'unknown option --bogus'],
      [['--port'], {}, '--port needs a value'],
      [['--log-level', 'nonsense'], {}, '--log-level must be one of fatal, error, warn, info, debug, trace, silent'],
      [[], { SYNCLINE_MAX_BATCH: 'many' }, 'SYNCLINE_MAX_BATCH must be a non-negative integer, got "many"'],
      [[], { SYNCLINE_JWT_ALLOW_NO_EXPIRY: 'maybe' }, 'SYNCLINE_JWT_ALLOW_NO_EXPIRY must be true, false, 1 or 0'],
      [['--db', dir.path], {}, `--db ${dir.path} is a folder`],
      [['--jwt-secret-file', join(dir.path, 'missing')], {}, `--jwt-secret-file ${join(dir.path, 'missing')}: no such file`],
      [['--jwt-secret', 'a'], { SYNCLINE_JWKS_URL: 'https://example.com/jwks' }, '--jwt-secret and SYNCLINE_JWKS_URL exclude each other'],
      [['--admin-host', '0.0.0.0'], {}, '--admin-host needs --admin-port'],
    ];
    for (const [args, env, message] of refusals) {
      const result = run(['--port', '0', '--db', db, ...args], env);
      expect(result.status, args.join(' ')).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toContain(message);
      expect(lines[0]).toContain('(see syncline-server --help)');
    }
    // A port in use: refused before the database is created or the auth warning printed.
    const busy = createNetServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => busy.close(() => resolve())));
    const taken = (busy.address() as AddressInfo).port;
    const inUse = run(['--port', String(taken), '--db', db]);
    expect(inUse.status).toBe(1);
    expect(inUse.stderr).toContain(`port ${taken} on 127.0.0.1 is in use (--port)`);
    expect(inUse.stdout).not.toContain('AUTH IS OFF');
    expect(existsSync(join(dir.path, 'never'))).toBe(false);
    // The usage names every option's variable.
    const help = run(['--help']).stdout;
    for (const name of ['SYNCLINE_PORT', 'SYNCLINE_JWT_SECRET_FILE', 'SYNCLINE_ADMIN_PORT', 'SYNCLINE_PEER']) expect(help).toContain(`(${name})`);
    expect(help).toContain('usage: syncline-server token');
  });

  it('backup: an online copy of a running server\'s SQLite database, whole as of one moment, that a server started on it serves', async () => {
    const replica = 'backupwriter' as ReplicaId;
    const { dir, db, raw, space } = await runningWithClient('live.db', replica);
    const copy = join(dir.path, 'copy.db');
    const put = (seq: number) => putChange(replica, space, seq, { title: `event ${seq}` }, { id: `e${seq}` });
    raw.send({ type: 'push', space, changes: [1, 2, 3].map(put) });
    await raw.next('ack', (m) => m.upTo === 3);

    const run = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, env: { ...process.env, ...env } });
    const made = run(['backup', '--to', copy], { SYNCLINE_DB: db });
    expect(made.stderr).toBe('');
    expect(made.status).toBe(0);
    expect(made.stdout).toMatch(/^backed up .* to .*copy\.db: \d+ pages, \d+ bytes\n$/);
    // Written after the backup: not in it.
    raw.send({ type: 'push', space, changes: [put(4)] });
    await raw.next('ack', (m) => m.upTo === 4);

    const restored = await spawnServer([BIN, '--port', '0', '--db', copy]);
    cleanup.push(() => restored.process.kill('SIGKILL'));
    const reader = await RawClient.open(`ws://127.0.0.1:${restored.port}/sync`);
    cleanup.push(() => reader.close());
    await reader.hello('backupreader' as ReplicaId, [{ space }]);
    await reader.next('synced');
    const ids = reader.of('snapshot').flatMap((m) => m.records.map((r) => r.id)).sort();
    expect(ids).toEqual(['e1', 'e2', 'e3']);

    expect(run(['backup', '--db', db, '--to', copy]).stderr).toContain(`--to ${copy} exists`);
    expect(run(['backup', '--db', join(dir.path, 'none.db'), '--to', join(dir.path, 'x.db')]).stderr).toContain('no such database');
    expect(existsSync(join(dir.path, 'none.db'))).toBe(false);
    expect(run(['backup', '--postgres', 'postgres://127.0.0.1/x', '--to', 'y']).stderr).toContain('pg_dump');
    expect(run(['backup', '--db', db]).stderr).toContain('backup needs --to FILE');
  });

  it('compact: cuts each space\'s log to its last N changes in a server\'s database', async () => {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const db = join(dir.path, 'c.db');
    const storage = sqliteStorage({ path: db });
    const space = 'default' as SpaceId;
    const replica = 'compactwriter' as ReplicaId;
    await storage.append([{ space, replica, changes: Array.from({ length: 10 }, (_, i) => putChange(replica, space, i + 1, { n: i })) }]);
    await storage.close();
    const run = spawnSync(process.execPath, [BIN, 'compact', '--keep-log', '3', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('compacted: 7 log entries removed (default: 7)\n');
    const after = sqliteStorage({ path: db });
    cleanup.push(() => after.close());
    expect((await after.readLog(space, 0, 100)).map((e) => e.pos)).toEqual([8, 9, 10]);
    const missing = spawnSync(process.execPath, [BIN, 'compact', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(missing.stderr).toContain('compact needs --keep-log N');
    // inspect reads a database with no server too.
    const inspected = spawnSync(process.execPath, [BIN, 'inspect', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    expect(inspected.stderr).toBe('');
    expect(inspected.stdout).toMatch(/^spaces: 1; retired replicas: 0\n {2}default: head 10, compacted to 7, 10 records, 0 tombstones, \d+ bytes, horizon none, 1 writers\n {4}compactwriter {2}seq 10/);
  });

  it('retire: a running server refuses the retired replica’s pushes and hellos from then on; ids are checked', async () => {
    const replica = 'oldphone' as ReplicaId;
    const { db, child, raw, space } = await runningWithClient('r.db', replica, ['--gc-interval', '0']);
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

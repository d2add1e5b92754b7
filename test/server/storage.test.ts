/**
 * The storage adapters: the conformance suite against SQLite and PostgreSQL, then
 * what only PostgreSQL has to show: migrations from several instances at once,
 * log positions that become visible in order although transactions of several
 * instances interleave, and watch() across a lost connection. Beside them, the
 * schema migrations of both (from each earlier version, and the refusal of a
 * newer one), and that one origin's log entries are read through their index.
 */
import { join } from 'node:path';
import pg, { type Pool } from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { applyChange, canonicalState, readFrame, writeFrame, type Change, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { postgresStorage, sqliteStorage, type AppendResult, type PostgresStorage, type ServerStorage } from '@syncline/server';
import { cleanupStack, putChange, tempDir, waitUntil } from '../sync/harness.js';
import { adminClient, describePg, freshSchema, gatedPool, PG_URL } from './fixtures/postgres.js';
import { storageConformance } from './storage-conformance.js';

/** What versions 6 (stability across regions), 5 (idempotency keys) and 4 (stability) added, taken away again: a database as version 3 wrote it. */
const SQLITE_TO_VERSION_3 =
  'ALTER TABLE spaces DROP COLUMN settled; ALTER TABLE spaces DROP COLUMN settled_pos; DROP TABLE idempotency; DROP INDEX records_dead; ALTER TABLE records DROP COLUMN dead; ALTER TABLE spaces DROP COLUMN stable; ALTER TABLE spaces DROP COLUMN stable_pos; DROP TABLE writers; DROP TABLE retired;';

/** Takes a SQLite database of the latest schema version back to what version 2 wrote (before regions). */
function sqliteToVersion2(db: Database.Database): void {
  db.exec(
    SQLITE_TO_VERSION_3 +
      "DROP INDEX log_origin; ALTER TABLE log DROP COLUMN origin; ALTER TABLE log DROP COLUMN origin_pos; DROP TABLE links; DROP TABLE origin_floors; UPDATE meta SET value = '2' WHERE key = 'schema_version'",
  );
}

/** The same for a PostgreSQL schema. */
function postgresToVersion2(schema: string): string {
  return `ALTER TABLE "${schema}".spaces DROP COLUMN settled, DROP COLUMN settled_pos; DROP TABLE "${schema}".idempotency; DROP INDEX "${schema}".records_dead; ALTER TABLE "${schema}".records DROP COLUMN dead; ALTER TABLE "${schema}".spaces DROP COLUMN stable, DROP COLUMN stable_pos; DROP TABLE "${schema}".writers; DROP TABLE "${schema}".retired; DROP INDEX "${schema}".log_origin; ALTER TABLE "${schema}".log DROP COLUMN origin, DROP COLUMN origin_pos; DROP TABLE "${schema}".links; DROP TABLE "${schema}".origin_floors; UPDATE "${schema}".meta SET value = '2' WHERE key = 'schema_version'`;
}

/** Appends what the migration tests start from: 5 local entries (alice 1-3, bob 1-2) in `space`. */
async function fillVersion2(storage: ServerStorage, space: SpaceId): Promise<void> {
  const alice = Array.from({ length: 3 }, (_, i) => putChange('alice' as ReplicaId, space, i + 1, { n: i }));
  const bob = Array.from({ length: 2 }, (_, i) => putChange('bob' as ReplicaId, space, i + 1, { n: i }));
  for (const result of await storage.append([
    { space, replica: 'alice' as ReplicaId, changes: alice },
    { space, replica: 'bob' as ReplicaId, changes: bob },
  ])) {
    expect(result).not.toBeInstanceOf(Error);
  }
}

/** What a storage migrated from schema version 2 (filled by fillVersion2) must hold and do. */
async function expectMigratedFromVersion2(storage: ServerStorage, space: SpaceId): Promise<void> {
  const before = [
    [1, 'alice', ''],
    [2, 'alice', ''],
    [3, 'alice', ''],
    [4, 'bob', ''],
    [5, 'bob', ''],
  ];
  // Entries stored before are this region's own.
  expect((await storage.readLog(space, 0, 100)).map((e) => [e.pos, e.change.replica, e.origin])).toEqual(before);
  // Their origin positions are their positions; compaction before had dropped none, so no origin has a floor.
  expect((await storage.readLog(space, 0, 100)).map((e) => e.originPos)).toEqual([1, 2, 3, 4, 5]);
  expect(await storage.originVector(space, 5)).toEqual(new Map([['', 5]]));
  expect((await storage.readLog(space, 0, 100, undefined, { origin: '' })).map((e) => [e.pos, e.change.replica, e.origin])).toEqual(before);
  expect(await storage.readLog(space, 0, 100, undefined, { origin: 'eu' })).toEqual([]);
  // New entries with their origin, after the old ones; dedupe carries on.
  const [carol, alice] = await storage.append([
    { space, replica: 'carol' as ReplicaId, changes: [putChange('carol' as ReplicaId, space, 1, { n: 1 })], origin: 'eu', originPositions: [40] },
    { space, replica: 'alice' as ReplicaId, changes: Array.from({ length: 4 }, (_, i) => putChange('alice' as ReplicaId, space, i + 1, { n: i })) },
  ]);
  expect((carol as AppendResult).stored.map((e) => [e.pos, e.origin])).toEqual([[6, 'eu']]);
  expect((alice as AppendResult).stored.map((e) => [e.pos, e.change.seq, e.origin])).toEqual([[7, 4, '']]);
  expect((await storage.readLog(space, 0, 100, undefined, { origin: '' })).map((e) => e.pos)).toEqual([1, 2, 3, 4, 5, 7]);
  expect((await storage.readLog(space, 0, 100, undefined, { origin: 'eu' })).map((e) => [e.pos, e.originPos])).toEqual([[6, 40]]);
  expect(await storage.resumeAfter(space, new Map([['', 5]]))).toBe(5);
  // Link positions start empty.
  expect(await storage.linkPositions('eu')).toEqual(new Map());
  await storage.setLinkPosition('eu', space, 12);
  expect(await storage.linkPositions('eu')).toEqual(new Map([[space, 12]]));
}

storageConformance('sqlite', async () => {
  const dir = await tempDir('syncline-storage-');
  const path = join(dir.path, 'x.db');
  const opened: ServerStorage[] = [];
  return {
    open: async () => {
      const storage = sqliteStorage({ path });
      opened.push(storage);
      return storage;
    },
    destroy: async () => {
      for (const storage of opened) await storage.close();
      await dir.remove();
    },
  };
});

describe('SQLite storage written by a protocol 1 server', () => {
  const cleanup = cleanupStack();
  afterEach(() => cleanup.run());

  it('reads record states in the first (object) form and writes them back compact when they change', async () => {
    const dir = await tempDir('syncline-legacy-');
    cleanup.push(() => dir.remove());
    const path = join(dir.path, 'x.db');
    const space = 'cal' as SpaceId;
    const replica = 'legacywriter' as ReplicaId;
    const first = putChange(replica, space, 1, { title: 'Standup', room: 'A' }, { id: 'e1', wall: 1_000 });
    let storage = sqliteStorage({ path });
    expect(await storage.append([{ space, replica, changes: [first] }])).toEqual([expect.objectContaining({ upTo: 1 })]);
    await storage.close();

    // What a protocol 1 server stored: the object form, one HLC per field.
    const legacy = {
      lww: { cleared: first.hlc, touched: first.hlc, fields: [['title', first.hlc, 'Standup'], ['room', first.hlc, 'A']] },
    };
    const db = new Database(path);
    db.prepare('UPDATE records SET state = ? WHERE id = ?').run(writeFrame(legacy, []), 'e1');
    db.close();

    storage = sqliteStorage({ path });
    cleanup.push(() => storage.close());
    const [record] = await storage.snapshotPage(space, undefined, 10);
    expect(record?.id).toBe('e1');
    expect(canonicalState(record?.state)).toBe(canonicalState(applyChange(undefined, first)));

    const patch: Change = { ...putChange(replica, space, 2, { room: 'B' }, { id: 'e1', wall: 2_000 }), op: 'patch', unset: [] } as Change;
    expect(await storage.append([{ space, replica, changes: [patch] }])).toEqual([expect.objectContaining({ upTo: 2 })]);
    const [after] = await storage.snapshotPage(space, undefined, 10);
    expect(canonicalState(after?.state)).toBe(canonicalState(applyChange(applyChange(undefined, first), patch)));
    const reread = new Database(path, { readonly: true });
    const row = reread.prepare('SELECT state FROM records WHERE id = ?').get('e1') as { state: Buffer };
    reread.close();
    // Rewritten in the compact form: [lww] = [touched (the patch), its fields, cleared (the put), deleted, groups of older fields].
    expect(readFrame(new Uint8Array(row.state)).json).toEqual([[patch.hlc, { room: 'B' }, first.hlc, null, [[first.hlc, { title: 'Standup' }]]]]);
  });
});

describe('SQLite storage of schema version 1 (before per-space usage)', () => {
  const cleanup = cleanupStack();
  afterEach(() => cleanup.run());

  it('gets each space\'s usage filled in when it opens: bytes of its records, records that exist', async () => {
    const dir = await tempDir('syncline-usage-');
    cleanup.push(() => dir.remove());
    const path = join(dir.path, 'x.db');
    const space = 'cal' as SpaceId;
    const replica = 'olderwriter' as ReplicaId;
    const puts = Array.from({ length: 4 }, (_, i) => putChange(replica, space, i + 1, { title: 'x'.repeat(100 * (i + 1)) }, { id: `e${i}` }));
    const del = { ...putChange(replica, space, 5, {}, { id: 'e0', wall: Date.now() + 1_000 }), op: 'delete' } as Change;
    delete (del as { fields?: unknown }).fields;
    let storage = sqliteStorage({ path });
    await storage.append([{ space, replica, changes: [...puts, del] }]);
    const want = await storage.usage(space);
    await storage.close();
    expect(want.records).toBe(3);
    // Back to what a schema version 1 database holds.
    const db = new Database(path);
    sqliteToVersion2(db);
    db.exec("ALTER TABLE spaces DROP COLUMN bytes; ALTER TABLE spaces DROP COLUMN records; UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    db.close();
    storage = sqliteStorage({ path });
    cleanup.push(() => storage.close());
    expect(await storage.usage(space)).toEqual(want);
  });
});

describe('SQLite storage of schema version 2 (before regions)', () => {
  const cleanup = cleanupStack();
  afterEach(() => cleanup.run());

  it("opens and migrates: the entries it held become this region's own (origin ''), the origin index and link positions come, and it carries on", async () => {
    const dir = await tempDir('syncline-regions-');
    cleanup.push(() => dir.remove());
    const path = join(dir.path, 'x.db');
    const space = 'cal' as SpaceId;
    let storage = sqliteStorage({ path });
    await fillVersion2(storage, space);
    await storage.close();
    const db = new Database(path);
    sqliteToVersion2(db);
    expect((db.prepare("SELECT name FROM pragma_table_info('log')").all() as Array<{ name: string }>).map((c) => c.name)).toEqual(['space', 'pos', 'replica', 'seq', 'change']);
    db.close();

    storage = sqliteStorage({ path });
    cleanup.push(() => storage.close());
    await expectMigratedFromVersion2(storage, space);
    const after = new Database(path, { readonly: true });
    cleanup.push(() => after.close());
    expect(after.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: '6' });
    expect((after.prepare("SELECT name FROM pragma_index_info('log_origin')").all() as Array<{ name: string }>).map((c) => c.name)).toEqual(['space', 'origin', 'origin_pos']);
    expect((after.prepare("SELECT name, pk FROM pragma_table_info('links')").all() as Array<{ name: string; pk: number }>).map((c) => [c.name, c.pk])).toEqual([
      ['peer', 1],
      ['space', 2],
      ['pos', 0],
    ]);
  });

  it("reads one origin's entries of a space through the (space, origin, origin_pos) index, in its order", async () => {
    const dir = await tempDir('syncline-regions-');
    cleanup.push(() => dir.remove());
    const path = join(dir.path, 'x.db');
    // The statements the storage prepares (better-sqlite3 is one module for it and for this test).
    const prepared: string[] = [];
    const prepare = Database.prototype.prepare;
    cleanup.push(() => (Database.prototype.prepare = prepare));
    Database.prototype.prepare = function (this: Database.Database, source: string) {
      prepared.push(source);
      return prepare.call(this, source);
    } as typeof prepare;
    const storage = sqliteStorage({ path });
    Database.prototype.prepare = prepare;
    cleanup.push(() => storage.close());
    await fillVersion2(storage, 'cal' as SpaceId);
    const byOrigin = prepared.filter((sql) => /^SELECT pos, change\b.*FROM log\b/.test(sql) && /origin = \? AND origin_pos > \?/.test(sql));
    expect(byOrigin).toHaveLength(1);
    const db = new Database(path, { readonly: true });
    cleanup.push(() => db.close());
    // No scan over other origins' entries, no sort.
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${byOrigin[0] as string}`).all('cal', '', 0, 10) as Array<{ detail: string }>).map((row) => row.detail);
    expect(plan).toEqual([expect.stringMatching(/^SEARCH log USING (COVERING )?INDEX log_origin \(space=\? AND origin=\? AND origin_pos>\?\)$/)]);
    expect((await storage.readLog('cal' as SpaceId, 1, 10, undefined, { origin: '' })).map((e) => e.pos)).toEqual([2, 3, 4, 5]);
    // The statements of origin vectors and resume points (the origins of a space, an origin's last entry at a
    // position, its first entry after an origin position) seek the index too: none reads the log through.
    const seeking = prepared.filter((sql) => /INDEXED BY log_origin/.test(sql) && !/^SELECT pos, change\b/.test(sql));
    expect(seeking).toHaveLength(3);
    for (const sql of seeking) {
      const explain = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      const details = (sql.includes('@space') ? explain.all({ space: 'cal' }) : explain.all('cal', '', 3)) as Array<{ detail: string }>;
      const onLog = details.map((row) => row.detail).filter((detail) => /\blog\b/.test(detail));
      expect(onLog.length, sql).toBeGreaterThan(0);
      // (space=?) alone is the first origin of a space: a seek and the first row (LIMIT 1).
      for (const detail of onLog) expect(detail, sql).toMatch(/^SEARCH log USING (COVERING )?INDEX log_origin \(space=\?( AND origin[=>]\?.*)?\)$/);
    }
  });
});

describe('SQLite storage written by a newer server', () => {
  const cleanup = cleanupStack();
  afterEach(() => cleanup.run());

  it('is refused with unsupported_storage, and left as it is', async () => {
    const dir = await tempDir('syncline-newer-');
    cleanup.push(() => dir.remove());
    const path = join(dir.path, 'x.db');
    const storage = sqliteStorage({ path });
    await fillVersion2(storage, 'cal' as SpaceId);
    await storage.close();
    const db = new Database(path);
    db.exec("UPDATE meta SET value = '7' WHERE key = 'schema_version'");
    db.close();
    expect(() => sqliteStorage({ path })).toThrow(expect.objectContaining({ code: 'unsupported_storage' }));
    const after = new Database(path, { readonly: true });
    cleanup.push(() => after.close());
    expect(after.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: '7' });
  });
});

describePg('PostgreSQL storage', () => {
  storageConformance('postgres', async () => {
    const { schema, drop } = freshSchema();
    const opened: ServerStorage[] = [];
    return {
      open: async () => {
        const storage = postgresStorage({ connectionString: PG_URL, schema, maxConnections: 4, onError: () => undefined });
        opened.push(storage);
        await storage.ready();
        return storage;
      },
      destroy: async () => {
        for (const storage of opened) await storage.close();
        await drop();
      },
    };
  });

  const cleanup = cleanupStack();
  afterEach(() => cleanup.run());

  const space = 'positions' as SpaceId;
  const changes = (replica: string, from: number, count: number, s: SpaceId = space): Change[] =>
    Array.from({ length: count }, (_, i) => putChange(replica as ReplicaId, s, from + i, { n: from + i }, { id: `${replica}-${(from + i) % 5}` }));

  /** A fresh schema, dropped after the test (after the storages opened on it are closed). */
  function schemaForTest(): string {
    const { schema, drop } = freshSchema();
    cleanup.push(drop);
    return schema;
  }

  function open(schema: string, options: { pool?: Pool; onError?: (error: Error) => void } = {}): PostgresStorage {
    const storage = options.pool
      ? postgresStorage({ pool: options.pool, schema, onError: options.onError ?? (() => undefined) })
      : postgresStorage({ connectionString: PG_URL, schema, maxConnections: 4, onError: options.onError ?? (() => undefined) });
    cleanup.push(() => storage.close());
    return storage;
  }

  /** Reads the log the way a session does (after its position) and fails on any skipped position. */
  function follower(storage: ServerStorage, s: SpaceId = space) {
    const state = { after: 0, polls: 0 };
    return {
      state,
      async poll(): Promise<void> {
        state.polls++;
        // A head read first is never ahead of the log read after it.
        const head = await storage.head(s);
        const whole = await storage.readLog(s, 0, 100_000);
        expect(whole.map((e) => e.pos)).toEqual(whole.map((_, i) => i + 1));
        expect(whole.length).toBeGreaterThanOrEqual(head);
        for (const entry of await storage.readLog(s, state.after, 100_000)) {
          expect(entry.pos, `position after ${state.after}`).toBe(state.after + 1);
          state.after = entry.pos;
        }
      },
    };
  }

  it('migrates once when several instances start together, and refuses a schema from a newer server', async () => {
    const schema = schemaForTest();
    const instances = Array.from({ length: 6 }, () => open(schema));
    await Promise.all(instances.map((s) => s.ready()));
    const admin = await adminClient();
    cleanup.push(() => admin.end());
    const tables = await admin.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name', [schema]);
    expect(tables.rows.map((r) => r.table_name)).toEqual(['idempotency', 'links', 'log', 'meta', 'origin_floors', 'progress', 'records', 'retired', 'spaces', 'writers']);
    expect((await admin.query(`SELECT value FROM "${schema}".meta WHERE key = 'schema_version'`)).rows).toEqual([{ value: '6' }]);
    await (instances[0] as PostgresStorage).append([{ space, replica: 'a' as ReplicaId, changes: changes('a', 1, 2) }]);
    expect(await (instances[5] as PostgresStorage).head(space)).toBe(2);

    await admin.query(`UPDATE "${schema}".meta SET value = '99' WHERE key = 'schema_version'`);
    const newer = open(schema);
    await expect(newer.ready()).rejects.toMatchObject({ code: 'unsupported_storage' });
    await expect(newer.head(space)).rejects.toMatchObject({ code: 'unsupported_storage' });
  });

  it('fills in each space\'s usage when it migrates a schema of version 1', async () => {
    const schema = schemaForTest();
    const first = open(schema);
    const puts = Array.from({ length: 4 }, (_, i) => putChange('olderwriter' as ReplicaId, space, i + 1, { title: 'x'.repeat(100 * (i + 1)) }, { id: `e${i}` }));
    const del = { ...putChange('olderwriter' as ReplicaId, space, 5, {}, { id: 'e0', wall: Date.now() + 1_000 }), op: 'delete' } as Change;
    delete (del as { fields?: unknown }).fields;
    await first.append([{ space, replica: 'olderwriter' as ReplicaId, changes: [...puts, del] }]);
    const want = await first.usage(space);
    expect(want.records).toBe(3);
    const admin = await adminClient();
    cleanup.push(() => admin.end());
    await admin.query(postgresToVersion2(schema));
    await admin.query(`ALTER TABLE "${schema}".spaces DROP COLUMN bytes, DROP COLUMN records; UPDATE "${schema}".meta SET value = '1' WHERE key = 'schema_version'`);
    const reopened = open(schema);
    await reopened.ready();
    expect(await reopened.usage(space)).toEqual(want);
  });

  it("migrates a schema of version 2: the entries it held become this region's own (origin ''), the origin index and link positions come", async () => {
    const schema = schemaForTest();
    const first = open(schema);
    await fillVersion2(first, space);
    await first.close();
    const admin = await adminClient();
    cleanup.push(() => admin.end());
    await admin.query(postgresToVersion2(schema));
    const columns = await admin.query<{ column_name: string }>('SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position', [schema, 'log']);
    expect(columns.rows.map((c) => c.column_name)).toEqual(['space', 'pos', 'replica', 'seq', 'change']);

    // Several instances at once, as in a rolling start: migrated once.
    const instances = Array.from({ length: 3 }, () => open(schema));
    await Promise.all(instances.map((s) => s.ready()));
    await expectMigratedFromVersion2(instances[1] as PostgresStorage, space);
    expect((await admin.query(`SELECT value FROM "${schema}".meta WHERE key = 'schema_version'`)).rows).toEqual([{ value: '6' }]);
    const index = await admin.query<{ indexdef: string }>('SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2', [schema, 'log_origin']);
    expect(index.rows.map((r) => r.indexdef.replace(/^.* USING /, ''))).toEqual(['btree (space, origin, origin_pos)']);
    expect(await (instances[2] as PostgresStorage).linkPositions('eu')).toEqual(new Map([[space, 12]]));
  });

  it("reads one origin's entries through the (space, origin, origin_pos) index when most entries have another origin", async () => {
    const schema = schemaForTest();
    // A pool that keeps the statements the storage sends, to explain them.
    const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end());
    const sent: Array<{ text: string; values: unknown[] }> = [];
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    (pool as { query: unknown }).query = (...args: unknown[]) => {
      if (typeof args[0] === 'string') sent.push({ text: args[0], values: (args[1] ?? []) as unknown[] });
      return query(...args);
    };
    const storage = open(schema, { pool });
    await storage.ready();
    // 4,000 entries from a peer, every 200th a local one.
    for (let batch = 0; batch < 20; batch++) {
      const results = await storage.append([
        { space, replica: 'peer' as ReplicaId, changes: changes('peer', batch * 200 + 1, 200), origin: 'eu', originPositions: Array.from({ length: 200 }, (_, i) => batch * 200 + i + 1) },
        { space, replica: 'mine' as ReplicaId, changes: changes('mine', batch + 1, 1) },
      ]);
      for (const result of results) expect(result).not.toBeInstanceOf(Error);
    }
    const admin = await adminClient();
    cleanup.push(() => admin.end());
    await admin.query(`ANALYZE "${schema}".log`);
    sent.length = 0;
    const page = await storage.readLog(space, 0, 10, 1_000_000, { origin: '' });
    expect(page.map((e) => e.pos)).toEqual(Array.from({ length: 10 }, (_, i) => (i + 1) * 201));
    const read = sent.find((q) => q.text.includes('.log'));
    expect(read).toBeDefined();
    const plan = await admin.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${(read as { text: string }).text}`, (read as { values: unknown[] }).values);
    const nodes: Array<{ 'Node Type': string; 'Index Name'?: string }> = [];
    const walk = (node: { 'Node Type': string; Plans?: unknown[] }): void => {
      nodes.push(node);
      for (const child of node.Plans ?? []) walk(child as { 'Node Type': string; Plans?: unknown[] });
    };
    walk((plan.rows[0]?.['QUERY PLAN'] as Array<{ Plan: { 'Node Type': string } }>)[0]?.Plan as { 'Node Type': string });
    const scans = nodes.filter((n) => /Scan$/.test(n['Node Type']) && n['Node Type'] !== 'Subquery Scan');
    expect(scans.map((n) => [n['Node Type'], n['Index Name']])).toEqual([[expect.stringMatching(/^Index (Only )?Scan$/), 'log_origin']]);
  });

  it('makes positions visible in order when a transaction holding position n commits after another instance appends', async () => {
    const schema = schemaForTest();
    const gated = gatedPool();
    cleanup.push(() => gated.pool.end());
    const a = open(schema, { pool: gated.pool });
    const b = open(schema);
    const reader = open(schema);
    await Promise.all([a.ready(), b.ready(), reader.ready()]);
    await a.append([{ space, replica: 'ra' as ReplicaId, changes: changes('ra', 1, 2) }]);
    const follow = follower(reader);
    await follow.poll();
    expect(follow.state.after).toBe(2);

    // A assigns positions 3..4 and stops right before COMMIT, holding them.
    const held = gated.holdNextCommit();
    cleanup.push(() => held.release()); // a failing test must not leave the transaction hanging
    const appendA = a.append([{ space, replica: 'ra' as ReplicaId, changes: changes('ra', 3, 2) }]);
    await held.reached;
    // B appends to the same space meanwhile: it must not take (and publish) position 5 before 3 and 4 exist.
    let bDone = false;
    const appendB = b.append([{ space, replica: 'rb' as ReplicaId, changes: changes('rb', 1, 3) }]).then((r) => {
      bDone = true;
      return r;
    });
    const admin = await adminClient();
    cleanup.push(() => admin.end());
    await waitUntil(
      async () => {
        const waiting = await admin.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
          [`%"${schema}".spaces%FOR UPDATE%`],
        );
        return (waiting.rows[0]?.n ?? 0) > 0;
      },
      5_000,
      "B's append to wait on the space's lock",
    );
    // The reader keeps reading while A holds its positions and B waits: nothing new is visible.
    for (let i = 0; i < 20; i++) {
      await follow.poll();
      expect(follow.state.after).toBe(2);
      expect(await reader.head(space)).toBe(2);
    }
    expect(bDone).toBe(false);

    held.release();
    const [resultA, resultB] = await Promise.all([appendA, appendB]);
    expect((resultA[0] as AppendResult).stored.map((e) => e.pos)).toEqual([3, 4]);
    expect((resultB[0] as AppendResult).stored.map((e) => e.pos)).toEqual([5, 6, 7]);
    await follow.poll();
    expect(follow.state.after).toBe(7);
    expect((await reader.readLog(space, 0, 100)).map((e) => `${e.pos}:${e.change.replica}:${e.change.seq}`)).toEqual([
      '1:ra:1',
      '2:ra:2',
      '3:ra:3',
      '4:ra:4',
      '5:rb:1',
      '6:rb:2',
      '7:rb:3',
    ]);
  });

  it('never lets a reader skip a position under concurrent appends from two instances with delayed commits', async () => {
    const schema = schemaForTest();
    const gated = gatedPool({ max: 6 });
    cleanup.push(() => gated.pool.end());
    gated.commitDelayMs = 6;
    const a = open(schema, { pool: gated.pool });
    const b = open(schema);
    const reader = open(schema);
    await Promise.all([a.ready(), b.ready(), reader.ready()]);
    const follow = follower(reader);
    const other = follower(reader, 'positions-2' as SpaceId);
    let writing = true;
    const reading = (async () => {
      while (writing) {
        await follow.poll();
        await other.poll();
      }
    })();
    const writers = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7'];
    try {
      await Promise.all(
        writers.map(async (writer, i) => {
          let seq = 1;
          for (let round = 0; round < 12; round++) {
            const count = 1 + ((i + round) % 3);
            const target = (i + round) % 2 === 0 ? a : b;
            const s = (i % 4 === 3 ? 'positions-2' : space) as SpaceId;
            const [result] = await target.append([{ space: s, replica: writer as ReplicaId, changes: changes(writer, seq, count, s) }]);
            expect(result).not.toBeInstanceOf(Error);
            seq += count;
          }
        }),
      );
    } finally {
      writing = false;
      await reading;
    }
    await follow.poll();
    await other.poll();
    expect(follow.state.polls).toBeGreaterThan(10);
    expect(follow.state.after + other.state.after).toBe(writers.reduce((sum, _, i) => sum + Array.from({ length: 12 }, (_, r) => 1 + ((i + r) % 3)).reduce((x, y) => x + y, 0), 0));
    expect(follow.state.after).toBe(await reader.head(space));
  });

  it('stores the other requests of a group when one fails with a database error', async () => {
    const schema = schemaForTest();
    const gated = gatedPool();
    cleanup.push(() => gated.pool.end());
    const storage = open(schema, { pool: gated.pool });
    await storage.ready();
    // The write of replica "bad" fails in the database, every time.
    gated.failWhen = (text, values) => text.includes('INSERT INTO') && values[1] === 'bad';
    const results = await storage.append([
      { space, replica: 'good1' as ReplicaId, changes: changes('good1', 1, 2) },
      { space, replica: 'bad' as ReplicaId, changes: changes('bad', 1, 2) },
      { space, replica: 'good2' as ReplicaId, changes: changes('good2', 1, 1) },
    ]);
    expect(results[1]).toBeInstanceOf(Error);
    expect(results.filter((x) => !(x instanceof Error)).flatMap((x) => (x as AppendResult).stored.map((e) => e.pos))).toEqual([1, 2, 3]);
    expect((await storage.readLog(space, 0, 10)).map((e) => `${e.pos}:${e.change.replica}`)).toEqual(['1:good1', '2:good1', '3:good2']);
    // Alone, a failing request rejects the append (nothing stored); the storage carries on afterwards.
    await expect(storage.append([{ space, replica: 'bad' as ReplicaId, changes: changes('bad', 1, 1) }])).rejects.toThrow(/division by zero/);
    gated.failWhen = undefined;
    expect((await storage.append([{ space, replica: 'bad' as ReplicaId, changes: changes('bad', 1, 1) }]))[0]).toMatchObject({ upTo: 1 });
    expect(await storage.head(space)).toBe(4);
  });

  it('watch() reports commits of other instances, and after a lost connection what was committed meanwhile', async () => {
    const schema = schemaForTest();
    const gated = gatedPool();
    cleanup.push(() => gated.pool.end());
    const errors: Error[] = [];
    const a = open(schema, { pool: gated.pool, onError: (e) => errors.push(e) });
    const b = open(schema);
    await Promise.all([a.ready(), b.ready()]);
    await b.append([{ space, replica: 'rb' as ReplicaId, changes: changes('rb', 1, 1) }]);

    const seen: Array<[SpaceId, number]> = [];
    const stop = a.watch((s, head) => seen.push([s, head]));
    cleanup.push(stop);
    // On (re)connect, the head of every space: here, what was committed before watching.
    await waitUntil(() => seen.some(([s, h]) => s === space && h === 1), 5_000, 'the initial head');
    await b.append([{ space, replica: 'rb' as ReplicaId, changes: changes('rb', 2, 2) }]);
    await waitUntil(() => seen.some(([s, h]) => s === space && h === 3), 5_000, "B's commit to be reported");
    // Not its own commits (the server relays those itself).
    await a.append([{ space: 'elsewhere' as SpaceId, replica: 'ra' as ReplicaId, changes: changes('ra', 1, 1, 'elsewhere' as SpaceId) }]);
    await b.append([{ space: 'elsewhere' as SpaceId, replica: 'rb' as ReplicaId, changes: changes('rb', 1, 1, 'elsewhere' as SpaceId) }]);
    await waitUntil(() => seen.some(([s, h]) => s === 'elsewhere' && h === 2), 5_000, "B's commit to another space to be reported");
    expect(seen.filter(([s]) => s === 'elsewhere')).toEqual([['elsewhere', 2]]);

    // The watch connection is killed, and no new connection is handed out until B has committed more.
    const pid = gated.listenerPid();
    expect(pid).toBeDefined();
    const connects = gated.holdConnects();
    const admin = await adminClient();
    cleanup.push(() => admin.end());
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await connects.reached;
    seen.length = 0;
    await b.append([{ space, replica: 'rb' as ReplicaId, changes: changes('rb', 4, 3) }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toEqual([]); // nobody listening
    connects.release();
    await waitUntil(() => seen.some(([s, h]) => s === space && h === 6), 5_000, 'the head committed while disconnected');
    expect(gated.listenerPid()).not.toBe(pid);
    expect(errors.length).toBeGreaterThan(0); // the drop was reported

    // After unsubscribing, nothing more, and the connection goes back.
    stop();
    seen.length = 0;
    await b.append([{ space, replica: 'rb' as ReplicaId, changes: changes('rb', 7, 1) }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toEqual([]);
  });
});

describe('postgresStorage options', () => {
  it('needs exactly one of connectionString and pool, and a valid schema name', () => {
    expect(() => postgresStorage({})).toThrow(/exactly one/);
    expect(() => postgresStorage({ connectionString: PG_URL, schema: 'x'.repeat(64) })).toThrow(/schema/);
  });
});

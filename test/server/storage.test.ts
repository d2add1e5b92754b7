/**
 * The storage adapters: the conformance suite against SQLite and PostgreSQL, then
 * what only PostgreSQL has to show: migrations from several instances at once,
 * log positions that become visible in order although transactions of several
 * instances interleave, and watch() across a lost connection.
 */
import { join } from 'node:path';
import type { Pool } from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { applyChange, canonicalState, readFrame, writeFrame, type Change, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { postgresStorage, sqliteStorage, type AppendResult, type PostgresStorage, type ServerStorage } from '@syncline/server';
import { cleanupStack, putChange, tempDir, waitUntil } from '../sync/harness.js';
import { adminClient, describePg, freshSchema, gatedPool, PG_URL } from './fixtures/postgres.js';
import { storageConformance } from './storage-conformance.js';

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
    db.exec("ALTER TABLE spaces DROP COLUMN bytes; ALTER TABLE spaces DROP COLUMN records; UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    db.close();
    storage = sqliteStorage({ path });
    cleanup.push(() => storage.close());
    expect(await storage.usage(space)).toEqual(want);
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
    expect(tables.rows.map((r) => r.table_name)).toEqual(['log', 'meta', 'progress', 'records', 'spaces']);
    expect((await admin.query(`SELECT value FROM "${schema}".meta WHERE key = 'schema_version'`)).rows).toEqual([{ value: '2' }]);
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
    await admin.query(`ALTER TABLE "${schema}".spaces DROP COLUMN bytes, DROP COLUMN records; UPDATE "${schema}".meta SET value = '1' WHERE key = 'schema_version'`);
    const reopened = open(schema);
    await reopened.ready();
    expect(await reopened.usage(space)).toEqual(want);
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

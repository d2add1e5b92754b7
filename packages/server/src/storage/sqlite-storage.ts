/**
 * SQLite storage (better-sqlite3) in WAL mode with synchronous=FULL: a commit is
 * on disk when it returns. One append() is one transaction, so concurrent pushes
 * batched by the committer share one fsync (group commit).
 */
import {
  applyChange,
  afterHorizon,
  collectibleAt,
  joinRecordStates,
  decodeChange,
  decodeRecordState,
  recordExists,
  encodeRecordState,
  encodeChange,
  SynclineError,
  type Change,
  type HlcString,
  type RecordState,
  type ReplicaId,
  type SnapshotRecord,
  type SpaceId,
} from '@syncline/core/internal';
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageDelta, type SpaceQuotas } from './quota.js';
import { originPositions } from './origin.js';
import { settleCandidate, stabilityFrom } from './horizon.js';
import { TRIM_PAGE, trimAfter, trimRows } from './trim.js';
import { IDEMPOTENCY_TTL_MS, type AppendRequest, type AppendResult, type LoggedChange, type MergeFinal, type ServerStorage, type Stability, type TrimMark, type TrimResult } from './types.js';

/** A log row as read. */
interface LogRow {
  pos: number;
  change: Buffer;
  origin: string;
  origin_pos: number;
}

/** Versioned migrations; each runs once, in order, inside a transaction. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE spaces (space TEXT PRIMARY KEY, head INTEGER NOT NULL, horizon INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE log (space TEXT NOT NULL, pos INTEGER NOT NULL, replica TEXT NOT NULL, seq INTEGER NOT NULL, change BLOB NOT NULL,
     PRIMARY KEY (space, pos)) WITHOUT ROWID;
   CREATE TABLE progress (space TEXT NOT NULL, replica TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (space, replica)) WITHOUT ROWID;
   CREATE TABLE records (space TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, state BLOB NOT NULL, pos INTEGER NOT NULL,
     PRIMARY KEY (space, collection, id)) WITHOUT ROWID;`,
  // Per-space usage for quotas (quota.ts), filled in for what a database already holds.
  `ALTER TABLE spaces ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE spaces ADD COLUMN records INTEGER NOT NULL DEFAULT 0;
   UPDATE spaces SET bytes = coalesce((SELECT sum(length(state)) FROM records r WHERE r.space = spaces.space), 0);`,
  // Regions: the region each log entry entered through ('' : this server's own clients; what was stored
  // before is) and its position there (its own position for origin ''), an index to read one origin's
  // entries of a space in order, per origin the highest origin position compaction dropped (before this
  // version, every compacted entry was this server's own: up to the horizon), and how far each peer's
  // log is read. (Amended before any release: version 3 first had no origin positions.)
  `ALTER TABLE log ADD COLUMN origin TEXT NOT NULL DEFAULT '';
   ALTER TABLE log ADD COLUMN origin_pos INTEGER NOT NULL DEFAULT 0;
   UPDATE log SET origin_pos = pos;
   CREATE INDEX log_origin ON log (space, origin, origin_pos);
   CREATE TABLE origin_floors (space TEXT NOT NULL, origin TEXT NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (space, origin)) WITHOUT ROWID;
   INSERT INTO origin_floors (space, origin, pos) SELECT space, '', horizon FROM spaces WHERE horizon > 0;
   CREATE TABLE links (peer TEXT NOT NULL, space TEXT NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (peer, space)) WITHOUT ROWID;`,
  // Stability: each space's horizon and the head when it was raised; per record, the horizon at which it can be
  // forgotten (collectibleAt, filled in by JS for what a database already holds); per space and writer, the stamp
  // of its last stored change, its floor and when it was last seen (the writers a database already holds were
  // "seen" when it migrated, so none is retired for inactivity at once); retired replicas.
  `ALTER TABLE spaces ADD COLUMN stable TEXT;
   ALTER TABLE spaces ADD COLUMN stable_pos INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE records ADD COLUMN dead TEXT;
   CREATE INDEX records_dead ON records (space, dead) WHERE dead IS NOT NULL;
   CREATE TABLE writers (space TEXT NOT NULL, replica TEXT NOT NULL, hlc TEXT, floor TEXT, seen INTEGER NOT NULL, PRIMARY KEY (space, replica)) WITHOUT ROWID;
   CREATE INDEX writers_seen ON writers (seen);
   CREATE TABLE retired (replica TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
   INSERT INTO writers (space, replica, hlc, floor, seen) SELECT space, replica, NULL, NULL, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM progress;`,
  // The backend API's idempotency keys, per space, with when they were used and what a retry is answered.
  `CREATE TABLE idempotency (space TEXT NOT NULL, key TEXT NOT NULL, at INTEGER NOT NULL, response TEXT NOT NULL, PRIMARY KEY (space, key)) WITHOUT ROWID;
   CREATE INDEX idempotency_at ON idempotency (space, at);`,
  // Stability across regions: the collection horizon apart from the refusal level (`stable`), equal without peers;
  // writers that said hello here (`local`), the only ones that hold this region's refusal level back (those known
  // only by a region link's changes are bounded by their own region).
  `ALTER TABLE spaces ADD COLUMN settled TEXT;
   ALTER TABLE spaces ADD COLUMN settled_pos INTEGER NOT NULL DEFAULT 0;
   UPDATE spaces SET settled = stable, settled_pos = stable_pos;
   ALTER TABLE writers ADD COLUMN local INTEGER NOT NULL DEFAULT 1;`,
];

/** Options of sqliteStorage. */
export interface SqliteOptions {
  /** File path, or ':memory:' for tests. Parent folders are created. */
  readonly path: string;
}

/**
 * Server storage in one SQLite file (better-sqlite3, WAL, synchronous=FULL):
 * the embedded default, for one server process. Opens (or creates) the
 * database and migrates its schema at once, synchronously.
 * @throws SynclineError `unsupported_storage` when the database was written by a newer server;
 * better-sqlite3's error when the file cannot be opened.
 */
export function sqliteStorage(options: SqliteOptions): ServerStorage {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  const db = new Database(options.path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  let migrated: number;
  try {
    migrated = migrate(db);
  } catch (error) {
    db.close(); // refused (a newer schema) or failed: the file is not left open
    throw error;
  }

  const q = {
    space: db.prepare<[string], { head: number; horizon: number }>('SELECT head, horizon FROM spaces WHERE space = ?'),
    upsertSpace: db.prepare(
      'INSERT INTO spaces (space, head, horizon, bytes, records) VALUES (?, ?, 0, ?, ?) ON CONFLICT(space) DO UPDATE SET head = excluded.head, bytes = bytes + excluded.bytes, records = records + excluded.records',
    ),
    usage: db.prepare<[string], { bytes: number; records: number }>('SELECT bytes, records FROM spaces WHERE space = ?'),
    setRecords: db.prepare('UPDATE spaces SET records = ? WHERE space = ?'),
    allStates: db.prepare<[string], { state: Buffer }>('SELECT state FROM records WHERE space = ?'),
    spacesToCount: db.prepare<[], { space: string }>('SELECT space FROM spaces'),
    progress: db.prepare<[string, string], { seq: number }>('SELECT seq FROM progress WHERE space = ? AND replica = ?'),
    allProgress: db.prepare<[string], { replica: string; seq: number }>('SELECT replica, seq FROM progress WHERE space = ?'),
    setProgress: db.prepare('INSERT INTO progress (space, replica, seq) VALUES (?, ?, ?) ON CONFLICT(space, replica) DO UPDATE SET seq = excluded.seq'),
    insertLog: db.prepare('INSERT INTO log (space, pos, replica, seq, change, origin, origin_pos) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    readLog: db.prepare<[string, number, number], LogRow>('SELECT pos, change, origin, origin_pos FROM log WHERE space = ? AND pos > ? ORDER BY pos LIMIT ?'),
    // Without statistics the planner prefers the primary key (space, pos) and would step over every entry of
    // other origins; the index reads only this origin's, already in order.
    readLogOf: db.prepare<[string, string, number, number], LogRow>(
      'SELECT pos, change, origin, origin_pos FROM log INDEXED BY log_origin WHERE space = ? AND origin = ? AND origin_pos > ? ORDER BY origin_pos LIMIT ?',
    ),
    // The distinct origins of a space's log, one index seek each (a loose index scan).
    origins: db.prepare<[{ space: string }], { origin: string }>(
      `WITH RECURSIVE o(origin) AS (
         SELECT (SELECT origin FROM log INDEXED BY log_origin WHERE space = @space ORDER BY origin LIMIT 1)
         UNION ALL
         SELECT (SELECT origin FROM log INDEXED BY log_origin WHERE space = @space AND origin > o.origin ORDER BY origin LIMIT 1) FROM o WHERE o.origin IS NOT NULL
       ) SELECT origin FROM o WHERE origin IS NOT NULL`,
    ),
    floors: db.prepare<[string], { origin: string; pos: number }>('SELECT origin, pos FROM origin_floors WHERE space = ?'),
    setFloor: db.prepare('INSERT INTO origin_floors (space, origin, pos) VALUES (?, ?, ?) ON CONFLICT(space, origin) DO UPDATE SET pos = max(pos, excluded.pos)'),
    lastOf: db.prepare<[string, string, number], { originPos: number }>(
      'SELECT origin_pos AS originPos FROM log INDEXED BY log_origin WHERE space = ? AND origin = ? AND pos <= ? ORDER BY origin_pos DESC LIMIT 1',
    ),
    firstAfter: db.prepare<[string, string, number], { pos: number }>(
      'SELECT pos FROM log INDEXED BY log_origin WHERE space = ? AND origin = ? AND origin_pos > ? ORDER BY origin_pos LIMIT 1',
    ),
    linkPositions: db.prepare<[string], { space: string; pos: number }>('SELECT space, pos FROM links WHERE peer = ?'),
    linkPeers: db.prepare<[], { peer: string }>('SELECT DISTINCT peer FROM links ORDER BY peer'),
    setLinkPosition: db.prepare('INSERT INTO links (peer, space, pos) VALUES (?, ?, ?) ON CONFLICT(peer, space) DO UPDATE SET pos = excluded.pos WHERE excluded.pos > links.pos'),
    record: db.prepare<[string, string, string], { state: Buffer }>('SELECT state FROM records WHERE space = ? AND collection = ? AND id = ?'),
    keyed: db.prepare<[string, string, number], { response: string }>('SELECT response FROM idempotency WHERE space = ? AND key = ? AND at >= ?'),
    expireKeys: db.prepare('DELETE FROM idempotency WHERE space = ? AND at < ?'),
    putKey: db.prepare('INSERT INTO idempotency (space, key, at, response) VALUES (?, ?, ?, ?) ON CONFLICT(space, key) DO UPDATE SET at = excluded.at, response = excluded.response'),
    putRecord: db.prepare<[string, string, string, Buffer | Uint8Array, number, string | null]>(
      'INSERT INTO records (space, collection, id, state, pos, dead) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(space, collection, id) DO UPDATE SET state = excluded.state, pos = excluded.pos, dead = excluded.dead',
    ),
    stability: db.prepare<[string], { stable: string | null; stable_pos: number; settled: string | null; settled_pos: number; head: number }>(
      'SELECT stable, stable_pos, settled, settled_pos, head FROM spaces WHERE space = ?',
    ),
    setStable: db.prepare('UPDATE spaces SET stable = ?, stable_pos = head WHERE space = ?'),
    setSettled: db.prepare('UPDATE spaces SET settled = ?, settled_pos = head WHERE space = ?'),
    writerStamp: db.prepare(
      'INSERT INTO writers (space, replica, hlc, floor, seen, local) VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(space, replica) DO UPDATE SET hlc = excluded.hlc',
    ),
    noteWriter: db.prepare(
      `INSERT INTO writers (space, replica, hlc, floor, seen, local) VALUES (@space, @replica, NULL, @floor, @now, 1) ON CONFLICT(space, replica) DO UPDATE
       SET floor = CASE WHEN writers.floor IS NULL OR excluded.floor > writers.floor THEN coalesce(excluded.floor, writers.floor) ELSE writers.floor END,
           seen = max(writers.seen, excluded.seen), local = 1`,
    ),
    raiseFloor: db.prepare<{ space: string; replica: string; floor: string; now: number }>(
      `UPDATE writers SET floor = CASE WHEN floor IS NULL OR @floor > floor THEN @floor ELSE floor END, seen = max(seen, @now)
       WHERE space = @space AND replica = @replica AND local = 1 AND replica NOT IN (SELECT replica FROM retired)`,
    ),
    // Per local writer that is not retired, the later of its last stored stamp and its floor ('' when it has neither).
    horizonOf: db.prepare<[string], { h: string | null; n: number }>(
      `SELECT min(max(coalesce(hlc, ''), coalesce(floor, ''))) AS h, count(*) AS n FROM writers
       WHERE space = ? AND local = 1 AND replica NOT IN (SELECT replica FROM retired)`,
    ),
    collectible: db.prepare<[string, string], { bytes: number; n: number }>('SELECT coalesce(sum(length(state)), 0) AS bytes, count(*) AS n FROM records WHERE space = ? AND dead <= ?'),
    collect: db.prepare('DELETE FROM records WHERE space = ? AND dead <= ?'),
    subtractBytes: db.prepare('UPDATE spaces SET bytes = bytes - ? WHERE space = ?'),
    retiredAll: db.prepare<[], { replica: string }>('SELECT replica FROM retired'),
    retiredPage: db.prepare<[number, number], { replica: string }>('SELECT replica FROM retired ORDER BY at, replica LIMIT ? OFFSET ?'),
    retiredCount: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM retired'),
    changedFirst: db.prepare<[string, number, number], { collection: string; id: string; state: Buffer }>(
      'SELECT collection, id, state FROM records WHERE space = ? AND pos > ? ORDER BY collection, id LIMIT ?',
    ),
    changedAfter: db.prepare<[string, number, string, string, number], { collection: string; id: string; state: Buffer }>(
      'SELECT collection, id, state FROM records WHERE space = ? AND pos > ? AND (collection, id) > (?, ?) ORDER BY collection, id LIMIT ?',
    ),
    setState: db.prepare('UPDATE records SET state = ? WHERE space = ? AND collection = ? AND id = ?'),
    isRetired: db.prepare<[string], { at: number }>('SELECT at FROM retired WHERE replica = ?'),
    writersOf: db.prepare<[string], { replica: string; seq: number | null; seen: number; retired: number; floor: string | null; local: number }>(
      `SELECT w.replica, p.seq, w.seen, (r.replica IS NOT NULL) AS retired, w.floor, w.local FROM writers w
       LEFT JOIN progress p ON p.space = w.space AND p.replica = w.replica LEFT JOIN retired r ON r.replica = w.replica
       WHERE w.space = ? ORDER BY w.replica`,
    ),
    retire: db.prepare('INSERT INTO retired (replica, at) VALUES (?, ?) ON CONFLICT(replica) DO NOTHING'),
    inactive: db.prepare<[number], { replica: string }>(
      'SELECT replica FROM writers WHERE local = 1 AND replica NOT IN (SELECT replica FROM retired) GROUP BY replica HAVING max(seen) < ? ORDER BY replica',
    ),
    allRecords: db.prepare<[], { space: string; collection: string; id: string; state: Buffer }>('SELECT space, collection, id, state FROM records'),
    setDead: db.prepare('UPDATE records SET dead = ? WHERE space = ? AND collection = ? AND id = ?'),
    pageFirst: db.prepare<[string, number], { collection: string; id: string; state: Buffer }>(
      'SELECT collection, id, state FROM records WHERE space = ? ORDER BY collection, id LIMIT ?',
    ),
    pageAfter: db.prepare<[string, string, string, number], { collection: string; id: string; state: Buffer }>(
      'SELECT collection, id, state FROM records WHERE space = ? AND (collection, id) > (?, ?) ORDER BY collection, id LIMIT ?',
    ),
    countRecords: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM records WHERE space = ?'),
    stats: db.prepare<[], { spaces: number; records: number; stored: number; bytes: number; log: number }>(
      `SELECT (SELECT count(*) FROM spaces WHERE head > 0) AS spaces, (SELECT coalesce(sum(records), 0) FROM spaces) AS records,
              (SELECT count(*) FROM records) AS stored, (SELECT coalesce(sum(bytes), 0) FROM spaces) AS bytes, (SELECT count(*) FROM log) AS log`,
    ),
    compact: db.prepare('DELETE FROM log WHERE space = ? AND pos <= ?'),
    setHorizon: db.prepare('UPDATE spaces SET horizon = ? WHERE space = ?'),
    spaces: db.prepare<[], { space: string }>('SELECT space FROM spaces ORDER BY space'),
  };

  if (migrated >= 1 && migrated < 2) {
    // Records that exist, per space, in a database written before usage was kept.
    db.transaction(() => {
      for (const { space } of q.spacesToCount.all()) {
        let n = 0;
        for (const { state } of q.allStates.iterate(space)) if (recordExists(decodeRecordState(state))) n++;
        q.setRecords.run(n, space);
      }
    }).immediate();
  }
  if (migrated >= 1 && migrated < 4) {
    // When each record already held can be forgotten (SQL cannot decode states).
    db.transaction(() => {
      const dead = q.allRecords.all().flatMap((r) => {
        const at = collectibleAt(decodeRecordState(r.state));
        return at === undefined ? [] : [[at, r.space, r.collection, r.id] as const];
      });
      for (const row of dead) q.setDead.run(...row);
    }).immediate();
  }

  /** One request inside the surrounding transaction (a savepoint: it fails alone). */
  const appendOne = db.transaction((request: AppendRequest, quotas: SpaceQuotas | undefined): AppendResult => {
    const { space, replica } = request;
    const origin = request.origin ?? '';
    // A region link's changes were accepted by their own region: this one does not refuse them (gc.ts: regions do not collect).
    const own = origin === '';
    if (own && q.isRetired.get(replica)) throw new SynclineError('replica_retired', `replica ${replica} was retired`);
    const keyed = request.idempotency;
    if (keyed) {
      const earlier = q.keyed.get(space, keyed.key, keyed.at - IDEMPOTENCY_TTL_MS);
      if (earlier) return { stored: [], upTo: q.progress.get(space, replica)?.seq ?? 0, replayed: earlier.response };
    }
    let held = q.progress.get(space, replica)?.seq ?? 0;
    const originPos = originPositions(request);
    const skipped = request.changes.findIndex((c) => c.seq > held);
    if (skipped < 0) return { stored: [], upTo: held };
    const fresh = request.changes.slice(skipped);
    if ((fresh[0] as { seq: number }).seq !== held + 1) {
      throw new SynclineError('sequence_gap', `replica ${replica} pushed seq ${(fresh[0] as { seq: number }).seq} to space ${space} but the server holds up to ${held}`);
    }
    const stable = own ? (q.stability.get(space)?.stable ?? null) : null;
    if (stable !== null) {
      const below = fresh.find((c) => c.hlc <= stable);
      if (below) throw new SynclineError('below_horizon', `replica ${replica} pushed seq ${below.seq} to space ${space} stamped ${below.hlc}, at or below its stability horizon ${stable}`);
    }
    let head = q.space.get(space)?.head ?? 0;
    const states = new Map<string, { collection: string; id: string; state: RecordState; before: RecordState | undefined; beforeBytes: number }>();
    const stored: LoggedChange[] = [];
    for (const [i, change] of fresh.entries()) {
      if (change.seq !== held + 1) throw new SynclineError('sequence_gap', `seq ${change.seq} follows ${held} in one push`);
      held = change.seq;
      head++;
      const at = originPos?.[skipped + i] ?? head;
      q.insertLog.run(space, head, replica, change.seq, encodeChange(change), origin, at);
      const key = JSON.stringify([change.collection, change.id]);
      let entry = states.get(key);
      if (!entry) {
        const row = q.record.get(space, change.collection, change.id);
        const before = row ? decodeRecordState(row.state) : undefined;
        entry = { collection: change.collection, id: change.id, state: before ?? {}, before, beforeBytes: row?.state.length ?? 0 };
        states.set(key, entry);
      }
      entry.state = applyChange(entry.state, change);
      stored.push({ pos: head, change, origin, originPos: at });
    }
    const delta = new UsageDelta();
    const encoded = [...states.values()].map((entry) => {
      const bytes = encodeRecordState(entry.state);
      delta.record(entry.before, entry.beforeBytes, entry.state, bytes.length);
      return [entry.collection, entry.id, bytes, collectibleAt(entry.state) ?? null] as const;
    });
    // Refused before a record is written (the savepoint rolls back the log entries too).
    delta.check(space, q.usage.get(space) ?? { bytes: 0, records: 0 }, quotas);
    for (const [collection, id, bytes, dead] of encoded) q.putRecord.run(space, collection, id, bytes, head, dead);
    q.upsertSpace.run(space, head, delta.bytes, delta.records);
    q.setProgress.run(space, replica, held);
    q.writerStamp.run(space, replica, (fresh[fresh.length - 1] as Change).hlc, Date.now(), own ? 1 : 0);
    if (keyed) {
      q.expireKeys.run(space, keyed.at - IDEMPOTENCY_TTL_MS);
      q.putKey.run(space, keyed.key, keyed.at, keyed.response);
    }
    return { stored, upTo: held };
  });

  const mergeAll = db.transaction((space: SpaceId, records: readonly SnapshotRecord[], final: MergeFinal | undefined): number => {
    const info = q.space.get(space);
    let head = info?.head ?? 0;
    const delta = new UsageDelta();
    const settled = (q.stability.get(space)?.settled ?? undefined) as HlcString | undefined;
    for (const record of records) {
      const row = q.record.get(space, record.collection, record.id);
      const before = row ? decodeRecordState(row.state) : undefined;
      // A record not held here whose registers are at or below the horizon was collected here (afterHorizon).
      const incoming = before || settled === undefined ? record.state : afterHorizon(record.state, settled);
      if (incoming === undefined) continue;
      const state = before ? joinRecordStates(before, incoming) : incoming;
      const bytes = encodeRecordState(state);
      delta.record(before, row?.state.length ?? 0, state, bytes.length);
      q.putRecord.run(space, record.collection, record.id, bytes, head, collectibleAt(state) ?? null);
    }
    if (final) {
      for (const [replica, seq] of final.progress) if (seq > (q.progress.get(space, replica)?.seq ?? 0)) q.setProgress.run(space, replica, seq);
      for (const [origin, pos] of final.floors) q.setFloor.run(space, origin, pos);
      head++;
    }
    q.upsertSpace.run(space, head, delta.bytes, delta.records);
    if (final) q.setHorizon.run(head, space);
    return head;
  });

  const appendAll = db.transaction((requests: readonly AppendRequest[], quotas: SpaceQuotas | undefined): Array<AppendResult | Error> =>
    requests.map((request) => {
      try {
        return appendOne(request, quotas);
      } catch (error) {
        return error instanceof Error ? error : new Error(String(error));
      }
    }),
  );

  const stabilityOf = (space: SpaceId): Stability => stabilityFrom(q.stability.get(space));

  const advance = db.transaction((space: SpaceId, cap: HlcString, peers: HlcString | false | undefined): Stability => {
    const row = q.stability.get(space);
    if (!row) return { hlc: undefined, upTo: 0 };
    const { h, n } = q.horizonOf.get(space) as { h: string | null; n: number };
    // No writer left (all retired): everything stored so far is as stable as the clock allows.
    const candidate = n === 0 ? cap : h === null || h === '' ? undefined : h < cap ? (h as HlcString) : cap;
    let stable = row.stable as HlcString | null;
    if (candidate !== undefined && (stable === null || candidate > stable)) {
      q.setStable.run(candidate, space);
      stable = candidate;
    }
    const settle = settleCandidate(stable, peers);
    if (settle !== undefined && (row.settled === null || settle > row.settled)) q.setSettled.run(settle, space);
    return stabilityOf(space);
  });

  const collectAll = db.transaction((space: SpaceId): number => {
    const stable = q.stability.get(space)?.settled;
    if (!stable) return 0;
    const { bytes, n } = q.collectible.get(space, stable) as { bytes: number; n: number };
    if (n === 0) return 0;
    q.collect.run(space, stable);
    q.subtractBytes.run(bytes, space);
    return n;
  });

  /** One page of trimRetired: reads up to TRIM_PAGE records after `last` and rewrites those that lose entries, in one transaction. */
  const trimPage = db.transaction(
    (space: SpaceId, after: number, last: { collection: string; id: string } | undefined, retired: ReadonlySet<string>): { records: number; last: { collection: string; id: string } | undefined } => {
      const page = last ? q.changedAfter.all(space, after, last.collection, last.id, TRIM_PAGE) : q.changedFirst.all(space, after, TRIM_PAGE);
      const trimmed = trimRows(page, retired);
      for (const row of trimmed) q.setState.run(row.bytes, space, row.collection, row.id);
      const saved = trimmed.reduce((n, row) => n + row.saved, 0);
      if (saved !== 0) q.subtractBytes.run(saved, space);
      return { records: trimmed.length, last: page.length < TRIM_PAGE ? undefined : page[page.length - 1] };
    },
  );

  /** trimRetired: a transaction per page, the event loop free in between (a large space must not hold up every connection). */
  const trimAll = async (space: SpaceId, since: TrimMark | undefined): Promise<TrimResult> => {
    const head = q.space.get(space)?.head ?? 0;
    const retired = new Set(q.retiredAll.all().map((r) => r.replica));
    if (retired.size === 0) return { head, retired: 0, records: 0 };
    const after = trimAfter(since, retired.size);
    let records = 0;
    let last: { collection: string; id: string } | undefined;
    do {
      // A record an append changes between pages is read again by the next call (its position is after `head`).
      const page = trimPage(space, after, last, retired);
      records += page.records;
      last = page.last;
      if (last) await new Promise<void>((resolve) => setImmediate(resolve));
      check();
    } while (last);
    return { head, retired: retired.size, records };
  };

  const retireAll = db.transaction((replicas: readonly ReplicaId[], now: number): ReplicaId[] =>
    [...new Set(replicas)].filter((replica) => q.retire.run(replica, now).changes > 0),
  );

  let closed = false;
  const check = (): void => {
    if (closed) throw new SynclineError('closed', 'server storage is closed');
  };

  return {
    async append(requests, quotas) {
      check();
      return appendAll(requests, quotas);
    },
    async usage(space) {
      check();
      return q.usage.get(space) ?? { bytes: 0, records: 0 };
    },
    async readLog(space, after, limit, maxBytes = Number.POSITIVE_INFINITY, filter) {
      check();
      const out: LoggedChange[] = [];
      let bytes = 0;
      const rows = filter?.origin === undefined ? q.readLog.iterate(space, after, limit) : q.readLogOf.iterate(space, filter.origin, after, limit);
      for (const row of rows) {
        if (out.length > 0 && bytes + row.change.length > maxBytes) break;
        bytes += row.change.length;
        out.push({ pos: row.pos, change: decodeChange(row.change), origin: row.origin, originPos: row.origin_pos });
      }
      return out;
    },
    async head(space) {
      check();
      return q.space.get(space)?.head ?? 0;
    },
    async horizon(space) {
      check();
      return q.space.get(space)?.horizon ?? 0;
    },
    async record(space, collection, id) {
      check();
      const row = q.record.get(space, collection, id);
      return row ? decodeRecordState(row.state) : undefined;
    },
    async snapshotPage(space, after, limit, maxBytes = Number.POSITIVE_INFINITY) {
      check();
      const rows = after ? q.pageAfter.iterate(space, after[0], after[1], limit) : q.pageFirst.iterate(space, limit);
      const out: SnapshotRecord[] = [];
      let bytes = 0;
      for (const row of rows) {
        if (out.length > 0 && bytes + row.state.length > maxBytes) break;
        bytes += row.state.length;
        out.push({ collection: row.collection, id: row.id, state: decodeRecordState(row.state) });
      }
      return out;
    },
    async stats() {
      check();
      const row = q.stats.get() as { spaces: number; records: number; stored: number; bytes: number; log: number };
      return { spaces: row.spaces, records: row.records, tombstones: row.stored - row.records, recordBytes: row.bytes, logEntries: row.log };
    },
    async countRecords(space) {
      check();
      return q.countRecords.get(space)?.n ?? 0;
    },
    async compact(space, keepLast) {
      check();
      return db.transaction(() => {
        const info = q.space.get(space);
        if (!info) return 0;
        const horizon = Math.max(info.horizon, info.head - keepLast);
        if (horizon <= info.horizon) return 0;
        // What resumeAfter() needs to know of the entries dropped: per origin, how far they went.
        for (const { origin } of q.origins.all({ space })) {
          const last = q.lastOf.get(space, origin, horizon);
          if (last) q.setFloor.run(space, origin, last.originPos);
        }
        const removed = q.compact.run(space, horizon).changes;
        q.setHorizon.run(horizon, space);
        return removed;
      })();
    },
    async spaces() {
      check();
      return q.spaces.all().map((r) => r.space as SpaceId);
    },
    async linkPositions(peer) {
      check();
      return new Map(q.linkPositions.all(peer).map((r) => [r.space as SpaceId, r.pos]));
    },
    async linkPeers() {
      check();
      return q.linkPeers.all().map((r) => r.peer);
    },
    async setLinkPosition(peer, space, pos) {
      check();
      if (!Number.isSafeInteger(pos) || pos < 0) throw new RangeError(`link position ${pos} is not a non-negative integer`);
      // One statement in autocommit: on disk when it returns (synchronous=FULL).
      q.setLinkPosition.run(peer, space, pos);
    },
    async replicaProgress(space, replicas) {
      check();
      const out = new Map<ReplicaId, number>();
      if (!replicas) {
        for (const row of q.allProgress.all(space)) out.set(row.replica as ReplicaId, row.seq);
        return out;
      }
      for (const replica of replicas) {
        const row = q.progress.get(space, replica);
        if (row) out.set(replica, row.seq);
      }
      return out;
    },
    async mergeState(space, records, final) {
      check();
      return mergeAll(space, records, final);
    },
    async originVector(space, upTo) {
      check();
      return db.transaction(() => {
        const out = new Map(q.floors.all(space).map((f) => [f.origin, f.pos]));
        for (const { origin } of q.origins.all({ space })) {
          const last = q.lastOf.get(space, origin, upTo);
          if (last && last.originPos > (out.get(origin) ?? 0)) out.set(origin, last.originPos);
        }
        return out;
      })();
    },
    async resumeAfter(space, held) {
      check();
      return db.transaction(() => {
        let after = q.space.get(space)?.head ?? 0;
        for (const { origin, pos } of q.floors.all(space)) if (pos > (held.get(origin) ?? 0)) return undefined;
        for (const { origin } of q.origins.all({ space })) {
          const first = q.firstAfter.get(space, origin, held.get(origin) ?? 0);
          if (first) after = Math.min(after, first.pos - 1);
        }
        return after;
      })();
    },
    async noteWriter(space, replica, floor, now) {
      check();
      q.noteWriter.run({ space, replica, floor: floor ?? null, now });
    },
    async raiseFloors(space, floors, now) {
      check();
      db.transaction(() => {
        for (const { replica, hlc } of floors) q.raiseFloor.run({ space, replica, floor: hlc, now });
      })();
    },
    async stability(space) {
      check();
      return stabilityOf(space);
    },
    async advanceHorizon(space, cap, peers) {
      check();
      return advance(space, cap, peers);
    },
    async collect(space) {
      check();
      return collectAll(space);
    },
    async trimRetired(space, since) {
      check();
      return await trimAll(space, since);
    },
    async retire(replicas, now) {
      check();
      return retireAll(replicas, now);
    },
    async inactiveWriters(before, keep) {
      check();
      return q.inactive.all(before).map((r) => r.replica as ReplicaId).filter((r) => !keep.has(r));
    },
    async retiredList(after, limit) {
      check();
      return { replicas: q.retiredPage.all(limit, after).map((r) => r.replica as ReplicaId), total: (q.retiredCount.get() as { n: number }).n };
    },
    async isRetired(replica) {
      check();
      return q.isRetired.get(replica) !== undefined;
    },
    async writers(space) {
      check();
      return q.writersOf
        .all(space)
        .map((w) => ({ replica: w.replica as ReplicaId, seq: w.seq ?? 0, seen: w.seen, retired: w.retired === 1, floor: (w.floor ?? undefined) as HlcString | undefined, local: w.local === 1 }));
    },
    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

/**
 * Brings the schema to the latest version; returns the version it found (0: a
 * new database), so that the caller fills in what migrations cannot compute
 * in SQL because it needs record states decoded (record counts, version 2;
 * when records can be forgotten, version 4).
 */
function migrate(db: Database.Database): number {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
  const current = row ? Number(row.value) : 0;
  if (current > MIGRATIONS.length) {
    throw new SynclineError('unsupported_storage', `database schema version ${current} is newer than this server (${MIGRATIONS.length}); upgrade the server`);
  }
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v] as string);
    db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(MIGRATIONS.length));
  }).immediate();
  return current;
}

/**
 * Copies the SQLite database at `from` to a new file `to` with SQLite's online
 * backup (better-sqlite3's `backup`): a consistent copy as of one moment, taken
 * while a server may be writing (WAL mode lets it go on). Resolves to the
 * copy's pages and bytes.
 */
export async function backupSqlite(from: string, to: string): Promise<{ pages: number; bytes: number }> {
  const db = new Database(from, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const { totalPages } = await db.backup(to);
    const bytes = totalPages * (db.pragma('page_size', { simple: true }) as number);
    return { pages: totalPages, bytes };
  } finally {
    db.close();
  }
}

/**
 * PostgreSQL storage (node-postgres), for one server or several sharing one
 * database. Same tables as the SQLite adapter, in their own schema (default
 * `syncline`), created and migrated by the server at start. One append() is one
 * transaction that returns only after COMMIT (synchronous_commit forced on), so
 * the committer's group commit works here too.
 *
 * Log positions. A position is the space's head + 1, and positions must become
 * visible in order: if two transactions took 5 and 6 from a sequence, 6 could
 * commit first and a reader at 4 would read 6, move its position to 6 and never
 * see 5. So there is no sequence: an append locks the space's row in `spaces`
 * (SELECT … FOR UPDATE) before it reads anything, assigns head+1… to its new
 * changes and writes the new head in the same transaction. A second writer of the
 * space (another request, another server instance) waits on that row lock until
 * the first commits, then reads the committed head. The lock is released only
 * after the commit is visible, so a snapshot that shows position n+1 shows
 * position n too. Writers of different spaces do not wait for each other.
 *
 * The replica's progress (per-replica seq dedupe) and the states of the records
 * touched are read in a statement after the lock, never in the locking one: under
 * READ COMMITTED a later statement sees what the previous lock holder committed,
 * so the same change pushed to two instances at once is stored once, and no
 * record state is computed from a stale one.
 *
 * Other instances. Every append transaction that stores changes sends
 * pg_notify(channel, '[space, head]') before COMMIT; PostgreSQL delivers it only
 * if the transaction commits, after it commits. The notification carries no
 * changes: listeners read them from the log. watch() LISTENs on a dedicated
 * connection, reconnects when it drops, and after every (re)connect reports the
 * head of every space, so a commit made while it was not listening is not missed.
 * It skips the notifications of this object's own commits (matched by backend pid
 * and payload): the server relays those as append() returns.
 */
import { createHash } from 'node:crypto';
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
import pg from 'pg';
import { settleCandidate, stabilityFrom, type HorizonRow } from './horizon.js';
import { originPositions } from './origin.js';
import { TRIM_PAGE, trimAfter, trimRows } from './trim.js';
import { UsageDelta, type SpaceQuotas } from './quota.js';
import { IDEMPOTENCY_TTL_MS, type AppendRequest, type AppendResult, type LoggedChange, type MergeFinal, type ServerStorage, type TrimResult } from './types.js';

/** Options of postgresStorage: give exactly one of `connectionString` and `pool`. */
export interface PostgresOptions {
  /** postgres://user:password@host:port/database. Either this or `pool`. */
  readonly connectionString?: string;
  /** A pool of your own (not ended by close()). watch() holds one of its connections while anyone watches. */
  readonly pool?: pg.Pool;
  /** Schema holding the tables; created if missing. Default `syncline`. */
  readonly schema?: string;
  /** Connections of the pool created from `connectionString`. Default 10. */
  readonly maxConnections?: number;
  /** Errors with nowhere else to go (the watch connection dropped, an idle connection died). Default: console.error. */
  readonly onError?: (error: Error) => void;
}

/** PostgreSQL server storage: a ServerStorage that several server instances can share, with `ready()` and `watch()`. */
export interface PostgresStorage extends ServerStorage {
  /** Resolves once the schema is migrated; rejects if the database cannot be reached or is newer than this server. */
  ready(): Promise<void>;
  /**
   * Reports (space, head) after commits that stored changes through other storage
   * objects (other server instances); this object's own commits are reported only
   * when append() could not tell whether they committed. On every (re)connect,
   * the head of every space.
   */
  watch(listener: (space: SpaceId, head: number) => void): () => void;
  /** The schema in use. */
  readonly schema: string;
}

/**
 * The distinct origins of space $1's log, one index seek each (a loose index
 * scan of log_origin: DISTINCT would read every entry).
 */
const ORIGINS = (s: string): string => `
  WITH RECURSIVE o(origin) AS (
    SELECT (SELECT origin FROM ${s}.log WHERE space = $1 ORDER BY origin LIMIT 1)
    UNION ALL
    SELECT (SELECT origin FROM ${s}.log WHERE space = $1 AND origin > o.origin ORDER BY origin LIMIT 1) FROM o WHERE o.origin IS NOT NULL
  ) SELECT origin FROM o WHERE origin IS NOT NULL`;

/** Versioned migrations (`s` is the quoted schema); each runs once, in order, under the migration lock. */
const MIGRATIONS: ReadonlyArray<(s: string) => string> = [
  // collection and id are UTF-8 bytes: record ids may hold characters (NUL) that a text column refuses, and
  // bytea orders them like SQLite's BINARY collation. Space and replica ids are printable ASCII.
  (s) => `
    CREATE TABLE ${s}.spaces (space text COLLATE "C" PRIMARY KEY, head bigint NOT NULL, horizon bigint NOT NULL);
    CREATE TABLE ${s}.log (space text COLLATE "C" NOT NULL, pos bigint NOT NULL, replica text COLLATE "C" NOT NULL, seq bigint NOT NULL,
      change bytea NOT NULL, PRIMARY KEY (space, pos));
    CREATE TABLE ${s}.progress (space text COLLATE "C" NOT NULL, replica text COLLATE "C" NOT NULL, seq bigint NOT NULL, PRIMARY KEY (space, replica));
    CREATE TABLE ${s}.records (space text COLLATE "C" NOT NULL, collection bytea NOT NULL, id bytea NOT NULL, state bytea NOT NULL, pos bigint NOT NULL,
      PRIMARY KEY (space, collection, id));`,
  // Per-space usage for quotas (quota.ts), filled in for what a database already holds (records that
  // exist are counted by the server after this runs: that needs their states decoded).
  (s) => `
    ALTER TABLE ${s}.spaces ADD COLUMN bytes bigint NOT NULL DEFAULT 0, ADD COLUMN records bigint NOT NULL DEFAULT 0;
    UPDATE ${s}.spaces SET bytes = coalesce((SELECT sum(octet_length(state)) FROM ${s}.records r WHERE r.space = spaces.space), 0);`,
  // Regions: the region each log entry entered through ('' : this server's own clients; what was stored
  // before is) and its position there (its own position for origin ''), an index to read one origin's
  // entries of a space in order, per origin the highest origin position compaction dropped (before this
  // version, every compacted entry was this server's own: up to the horizon), and how far each peer's
  // log is read. (Amended before any release: version 3 first had no origin positions.)
  (s) => `
    ALTER TABLE ${s}.log ADD COLUMN origin text COLLATE "C" NOT NULL DEFAULT '', ADD COLUMN origin_pos bigint NOT NULL DEFAULT 0;
    UPDATE ${s}.log SET origin_pos = pos;
    CREATE INDEX log_origin ON ${s}.log (space, origin, origin_pos);
    CREATE TABLE ${s}.origin_floors (space text COLLATE "C" NOT NULL, origin text COLLATE "C" NOT NULL, pos bigint NOT NULL, PRIMARY KEY (space, origin));
    INSERT INTO ${s}.origin_floors (space, origin, pos) SELECT space, '', horizon FROM ${s}.spaces WHERE horizon > 0;
    CREATE TABLE ${s}.links (peer text COLLATE "C" NOT NULL, space text COLLATE "C" NOT NULL, pos bigint NOT NULL, PRIMARY KEY (peer, space));`,
  // Stability (see sqlite-storage.ts, migration 4): each space's horizon and the head when it was raised; per
  // record, the horizon at which it can be forgotten (filled in by the server after this runs); per space and
  // writer, its last stored stamp, its floor and when it was last seen; retired replicas.
  (s) => `
    ALTER TABLE ${s}.spaces ADD COLUMN stable text COLLATE "C", ADD COLUMN stable_pos bigint NOT NULL DEFAULT 0;
    ALTER TABLE ${s}.records ADD COLUMN dead text COLLATE "C";
    CREATE INDEX records_dead ON ${s}.records (space, dead) WHERE dead IS NOT NULL;
    CREATE TABLE ${s}.writers (space text COLLATE "C" NOT NULL, replica text COLLATE "C" NOT NULL, hlc text COLLATE "C", floor text COLLATE "C",
      seen bigint NOT NULL, PRIMARY KEY (space, replica));
    CREATE INDEX writers_seen ON ${s}.writers (seen);
    CREATE TABLE ${s}.retired (replica text COLLATE "C" PRIMARY KEY, at bigint NOT NULL);
    INSERT INTO ${s}.writers (space, replica, hlc, floor, seen) SELECT space, replica, NULL, NULL, (extract(epoch FROM now()) * 1000)::bigint FROM ${s}.progress;`,
  // The backend API's idempotency keys (see sqlite-storage.ts, migration 5).
  (s) => `
    CREATE TABLE ${s}.idempotency (space text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, at bigint NOT NULL, response text NOT NULL, PRIMARY KEY (space, key));
    CREATE INDEX idempotency_at ON ${s}.idempotency (space, at);`,
  // Stability across regions (see sqlite-storage.ts, migration 6): the collection horizon apart from the refusal
  // level; writers that said hello here.
  (s) => `
    ALTER TABLE ${s}.spaces ADD COLUMN settled text COLLATE "C", ADD COLUMN settled_pos bigint NOT NULL DEFAULT 0;
    UPDATE ${s}.spaces SET settled = stable, settled_pos = stable_pos;
    ALTER TABLE ${s}.writers ADD COLUMN local boolean NOT NULL DEFAULT true;`,
];

const HORIZON_COLUMNS = 'stable, stable_pos, settled, settled_pos';

/** How often the watch connection is checked, and how long it has to answer. */
const WATCH_HEARTBEAT_MS = 15_000;

/** Arbitrary first key of the two-key advisory lock that serializes migrations (the second is the schema's hash). */
const MIGRATION_LOCK = 0x53594e43; // "SYNC"

/**
 * Server storage in PostgreSQL (node-postgres), for one server or several
 * sharing one database (see the top of postgres-storage.ts). Returns at once;
 * the schema is created or migrated in the background (`ready()`), and every
 * call waits for it.
 * @throws TypeError unless exactly one of `connectionString` and `pool` is
 * given, or when `schema` is not 1-63 bytes. A database that cannot be
 * reached, or was written by a newer server (SynclineError
 * `unsupported_storage`), rejects `ready()` and every call.
 */
export function postgresStorage(options: PostgresOptions): PostgresStorage {
  if (!options.pool === !options.connectionString) throw new TypeError('postgresStorage needs exactly one of connectionString or pool');
  const schema = options.schema ?? 'syncline';
  if (schema.length === 0 || Buffer.byteLength(schema) > 63) throw new TypeError(`invalid schema name ${JSON.stringify(schema)}: 1-63 bytes`);
  const onError = options.onError ?? ((error: Error) => console.error('syncline postgres storage:', error));
  const ownPool = !options.pool;
  const pool =
    options.pool ??
    new pg.Pool({ connectionString: options.connectionString, max: options.maxConnections ?? 10, connectionTimeoutMillis: 10_000, keepAlive: true });
  // An idle connection that dies emits 'error' on the pool; unhandled, it would end the process.
  if (ownPool) pool.on('error', (error) => onError(error));

  const s = quoteIdent(schema);
  // A channel name is an identifier: at most 63 bytes.
  const channelName = Buffer.byteLength(`syncline:${schema}`) <= 63 ? `syncline:${schema}` : `syncline:${createHash('sha256').update(schema).digest('hex').slice(0, 40)}`;
  const channel = quoteIdent(channelName);
  // Prepared statement names are cut at 63 bytes by the server: a short tag of the schema keeps them apart.
  const tag = createHash('sha256').update(schema).digest('hex').slice(0, 16);

  const ready = migrate(pool, schema);
  ready.catch(() => undefined); // surfaced by ready() and by every call

  let closed = false;
  const open = async (): Promise<void> => {
    if (closed) throw new SynclineError('closed', 'server storage is closed');
    await ready;
  };

  /** Runs `fn` on one connection; a connection that failed underneath (or that `fn` marks broken) is destroyed, not pooled. */
  const withClient = async <T>(fn: (client: pg.PoolClient, markBroken: (error: Error) => void) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    let broken: Error | undefined;
    const markBroken = (error: Error) => (broken ??= error);
    client.on('error', markBroken);
    try {
      return await fn(client, markBroken);
    } finally {
      client.removeListener('error', markBroken);
      client.release(broken ?? false);
    }
  };

  /** One transaction, durable at COMMIT whatever the database's default; ROLLBACK on any error. */
  const transaction = <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
    withClient(async (client, markBroken) => {
      await client.query('BEGIN; SET LOCAL synchronous_commit = on');
      try {
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(markBroken);
        throw error;
      }
    });

  /**
   * One request, inside the surrounding transaction, in three statements: lock,
   * read, write. Everything that can refuse it (sequence_gap) is checked before it
   * writes anything, so a refused request needs no savepoint. Returns the
   * notification it sent (`pid payload`) with the result.
   */
  const appendOne = async (client: pg.PoolClient, request: AppendRequest, quotas: SpaceQuotas | undefined): Promise<{ result: AppendResult; notified?: string }> => {
    const { space, replica } = request;
    const origin = request.origin ?? '';
    // 1. The space's write lock (see the top of this file). A new space gets its row first (at head 0,
    //    which no reader counts as a space; it stays if the request is refused).
    type Locked = { head: string; bytes: string; records: string; stable: string | null; retired: boolean };
    const lock = {
      name: `syncline_lock_${tag}`,
      text: `SELECT head, bytes, records, stable, EXISTS (SELECT 1 FROM ${s}.retired WHERE replica = $2) AS retired FROM ${s}.spaces WHERE space = $1 FOR UPDATE`,
      values: [space, replica],
    };
    let locked = await client.query<Locked>(lock);
    if (locked.rows.length === 0 && request.changes.length > 0) {
      await client.query(`INSERT INTO ${s}.spaces (space, head, horizon) VALUES ($1, 0, 0) ON CONFLICT (space) DO NOTHING`, [space]);
      locked = await client.query<Locked>(lock);
    }
    // A region link's changes were accepted by their own region: this one does not refuse them (gc.ts: regions do not collect).
    const own = origin === '';
    if (own && locked.rows[0]?.retired) throw new SynclineError('replica_retired', `replica ${replica} was retired`);
    // The space's lock is held: a request with the same key on another instance waits for this one.
    const keyed = request.idempotency;
    if (keyed) {
      const earlier = await client.query<{ response: string }>(`SELECT response FROM ${s}.idempotency WHERE space = $1 AND key = $2 AND at >= $3`, [space, keyed.key, keyed.at - IDEMPOTENCY_TTL_MS]);
      if (earlier.rows[0]) {
        const progress = await client.query<{ seq: string }>(`SELECT seq FROM ${s}.progress WHERE space = $1 AND replica = $2`, [space, replica]);
        return { result: { stored: [], upTo: Number(progress.rows[0]?.seq ?? 0), replayed: earlier.rows[0].response } };
      }
    }
    const stable = own ? (locked.rows[0]?.stable ?? null) : null;
    let head = Number(locked.rows[0]?.head ?? 0);
    const usage = { bytes: Number(locked.rows[0]?.bytes ?? 0), records: Number(locked.rows[0]?.records ?? 0) };
    // 2. Read after the lock, in a statement of its own: what this replica already has here, and the
    //    current states of the records the request touches.
    const keys = new Map<string, { collection: Buffer; id: Buffer; state: RecordState; before: RecordState | undefined; beforeBytes: number }>();
    for (const change of request.changes) {
      const key = JSON.stringify([change.collection, change.id]);
      if (!keys.has(key)) keys.set(key, { collection: Buffer.from(change.collection, 'utf8'), id: Buffer.from(change.id, 'utf8'), state: {}, before: undefined, beforeBytes: 0 });
    }
    const read = await client.query<{ seq: string | null; collection: Buffer | null; id: Buffer | null; state: Buffer | null }>({
      name: `syncline_read_${tag}`,
      text: `SELECT seq, NULL::bytea AS collection, NULL::bytea AS id, NULL::bytea AS state FROM ${s}.progress WHERE space = $1 AND replica = $2
       UNION ALL
       SELECT NULL, r.collection, r.id, r.state FROM ${s}.records r JOIN unnest($3::bytea[], $4::bytea[]) AS k(collection, id)
         ON r.collection = k.collection AND r.id = k.id WHERE r.space = $1`,
      values: [space, replica, [...keys.values()].map((k) => k.collection), [...keys.values()].map((k) => k.id)],
    });
    let held = 0;
    for (const row of read.rows) {
      if (row.seq !== null) held = Number(row.seq);
      else if (row.collection && row.id && row.state) {
        const entry = keys.get(JSON.stringify([row.collection.toString('utf8'), row.id.toString('utf8')]));
        if (entry) {
          entry.state = entry.before = decodeRecordState(row.state);
          entry.beforeBytes = row.state.length;
        }
      }
    }
    const originPos = originPositions(request);
    const skipped = request.changes.findIndex((c) => c.seq > held);
    if (skipped < 0) return { result: { stored: [], upTo: held } };
    const fresh = request.changes.slice(skipped);
    const first = fresh[0] as Change;
    if (first.seq !== held + 1) {
      throw new SynclineError('sequence_gap', `replica ${replica} pushed seq ${first.seq} to space ${space} but the server holds up to ${held}`);
    }
    const below = stable === null ? undefined : fresh.find((c) => c.hlc <= stable);
    if (below) throw new SynclineError('below_horizon', `replica ${replica} pushed seq ${below.seq} to space ${space} stamped ${below.hlc}, at or below its stability horizon ${stable}`);
    // 3. Positions head+1…, new states; then one statement writes the log, the states, the head, the
    //    replica's progress, and the notification (sent at COMMIT).
    const stored: LoggedChange[] = [];
    const positions: number[] = [];
    const originPosList: number[] = [];
    const seqs: number[] = [];
    const blobs: Buffer[] = [];
    const touched = new Set<{ collection: Buffer; id: Buffer; state: RecordState; before: RecordState | undefined; beforeBytes: number }>();
    for (const [i, change] of fresh.entries()) {
      if (change.seq !== held + 1) throw new SynclineError('sequence_gap', `seq ${change.seq} follows ${held} in one push`);
      held = change.seq;
      head++;
      const at = originPos?.[skipped + i] ?? head;
      const entry = keys.get(JSON.stringify([change.collection, change.id])) as { collection: Buffer; id: Buffer; state: RecordState; before: RecordState | undefined; beforeBytes: number };
      entry.state = applyChange(entry.state, change);
      touched.add(entry);
      positions.push(head);
      originPosList.push(at);
      seqs.push(change.seq);
      blobs.push(toBuffer(encodeChange(change)));
      stored.push({ pos: head, change, origin, originPos: at });
    }
    const records = [...touched];
    const delta = new UsageDelta();
    const states = records.map((r) => {
      const bytes = toBuffer(encodeRecordState(r.state));
      delta.record(r.before, r.beforeBytes, r.state, bytes.length);
      return bytes;
    });
    // Refused before anything of the request is written.
    delta.check(space, usage, quotas);
    const payload = JSON.stringify([space, head]);
    const written = await client.query<{ pid: number }>({
      name: `syncline_write_${tag}`,
      text: `WITH
         l AS (INSERT INTO ${s}.log (space, pos, replica, seq, change, origin, origin_pos) SELECT $1, p, $2, q, c, $15, op FROM unnest($3::bigint[], $4::bigint[], $5::bytea[], $16::bigint[]) AS u(p, q, c, op)),
         r AS (INSERT INTO ${s}.records (space, collection, id, state, pos, dead) SELECT $1, c, i, st, $9, d FROM unnest($6::bytea[], $7::bytea[], $8::bytea[], $17::text[]) AS u(c, i, st, d)
               ON CONFLICT (space, collection, id) DO UPDATE SET state = excluded.state, pos = excluded.pos, dead = excluded.dead),
         h AS (UPDATE ${s}.spaces SET head = $9, bytes = bytes + $13, records = records + $14 WHERE space = $1),
         w AS (INSERT INTO ${s}.writers (space, replica, hlc, floor, seen, local) VALUES ($1, $2, $18, NULL, $19, $20) ON CONFLICT (space, replica) DO UPDATE SET hlc = excluded.hlc),
         n AS (SELECT pg_backend_pid() AS pid, pg_notify($11, $12))
       INSERT INTO ${s}.progress (space, replica, seq) SELECT $1, $2, $10 FROM n ON CONFLICT (space, replica) DO UPDATE SET seq = excluded.seq
       RETURNING (SELECT pid FROM n)`,
      values: [
        space,
        replica,
        positions,
        seqs,
        blobs,
        records.map((r) => r.collection),
        records.map((r) => r.id),
        states,
        head,
        held,
        channelName,
        payload,
        delta.bytes,
        delta.records,
        origin,
        originPosList,
        records.map((r) => collectibleAt(r.state) ?? null),
        (fresh[fresh.length - 1] as Change).hlc,
        Date.now(),
        origin === '',
      ],
    });
    if (keyed) {
      await client.query(
        `WITH x AS (DELETE FROM ${s}.idempotency WHERE space = $1 AND at < $5)
         INSERT INTO ${s}.idempotency (space, key, at, response) VALUES ($1, $2, $3, $4) ON CONFLICT (space, key) DO UPDATE SET at = excluded.at, response = excluded.response`,
        [space, keyed.key, keyed.at, keyed.response, keyed.at - IDEMPOTENCY_TTL_MS],
      );
    }
    return { result: { stored, upTo: held }, notified: `${(written.rows[0] as { pid: number }).pid} ${payload}` };
  };

  /** ServerStorage.mergeState in one transaction, under the space's write lock. */
  const mergeOne = async (client: pg.PoolClient, space: SpaceId, records: readonly SnapshotRecord[], final: MergeFinal | undefined): Promise<number> => {
    await client.query(`INSERT INTO ${s}.spaces (space, head, horizon) VALUES ($1, 0, 0) ON CONFLICT (space) DO NOTHING`, [space]);
    const locked = await client.query<{ head: string; settled: HlcString | null }>(`SELECT head, settled FROM ${s}.spaces WHERE space = $1 FOR UPDATE`, [space]);
    let head = Number(locked.rows[0]?.head ?? 0);
    const settled = locked.rows[0]?.settled ?? undefined;
    const delta = new UsageDelta();
    if (records.length > 0) {
      const collections = records.map((r) => Buffer.from(r.collection, 'utf8'));
      const ids = records.map((r) => Buffer.from(r.id, 'utf8'));
      const existing = await client.query<{ collection: Buffer; id: Buffer; state: Buffer }>(
        `SELECT r.collection, r.id, r.state FROM ${s}.records r JOIN unnest($2::bytea[], $3::bytea[]) AS k(collection, id) ON r.collection = k.collection AND r.id = k.id WHERE r.space = $1`,
        [space, collections, ids],
      );
      const stored = new Map(existing.rows.map((r) => [JSON.stringify([r.collection.toString('utf8'), r.id.toString('utf8')]), r.state]));
      const rows = records.flatMap((record, i) => {
        const old = stored.get(JSON.stringify([record.collection, record.id]));
        const before = old ? decodeRecordState(old) : undefined;
        // A record not held here whose registers are at or below the horizon was collected here (afterHorizon).
        const state = before ? joinRecordStates(before, record.state) : settled === undefined ? record.state : afterHorizon(record.state, settled);
        if (state === undefined) return [];
        const bytes = toBuffer(encodeRecordState(state));
        delta.record(before, old?.length ?? 0, state, bytes.length);
        return [{ collection: collections[i] as Buffer, id: ids[i] as Buffer, bytes, dead: collectibleAt(state) ?? null }];
      });
      await client.query(
        `INSERT INTO ${s}.records (space, collection, id, state, pos, dead) SELECT $1, c, i, st, $5, d FROM unnest($2::bytea[], $3::bytea[], $4::bytea[], $6::text[]) AS u(c, i, st, d)
         ON CONFLICT (space, collection, id) DO UPDATE SET state = excluded.state, pos = excluded.pos, dead = excluded.dead`,
        [space, rows.map((r) => r.collection), rows.map((r) => r.id), rows.map((r) => r.bytes), head, rows.map((r) => r.dead)],
      );
    }
    if (!final) {
      await client.query(`UPDATE ${s}.spaces SET bytes = bytes + $2, records = records + $3 WHERE space = $1`, [space, delta.bytes, delta.records]);
      return head;
    }
    await client.query(
      `INSERT INTO ${s}.progress AS p (space, replica, seq) SELECT $1, r, q FROM unnest($2::text[], $3::bigint[]) AS u(r, q)
       ON CONFLICT (space, replica) DO UPDATE SET seq = greatest(p.seq, excluded.seq)`,
      [space, [...final.progress.keys()], [...final.progress.values()]],
    );
    await client.query(
      `INSERT INTO ${s}.origin_floors AS f (space, origin, pos) SELECT $1, o, p FROM unnest($2::text[], $3::bigint[]) AS u(o, p)
       ON CONFLICT (space, origin) DO UPDATE SET pos = greatest(f.pos, excluded.pos)`,
      [space, [...final.floors.keys()], [...final.floors.values()]],
    );
    head++;
    await client.query(`UPDATE ${s}.spaces SET head = $2, horizon = $2, bytes = bytes + $3, records = records + $4 WHERE space = $1`, [space, head, delta.bytes, delta.records]);
    // Other instances resync their clients (below the new horizon: a snapshot), as after a commit.
    await client.query('SELECT pg_notify($1, $2)', [channelName, JSON.stringify([space, head])]);
    return head;
  };

  /**
   * The requests in one transaction. A refusal (thrown before the request wrote
   * anything) fails that request alone; a database error aborts the transaction,
   * and then each request is tried again in a transaction of its own so that one
   * bad request cannot fail the others of its group.
   */
  const appendGroup = async (requests: readonly AppendRequest[], quotas: SpaceQuotas | undefined): Promise<Array<AppendResult | Error>> => {
    const mine: string[] = [];
    try {
      return await transaction(async (client) => {
        const results: Array<AppendResult | Error> = [];
        for (const request of requests) {
          try {
            const { result, notified } = await appendOne(client, request, quotas);
            results.push(result);
            // Before COMMIT: the notification can arrive as soon as it commits.
            if (notified && subscribed) {
              mine.push(notified);
              own.add(notified);
            }
          } catch (error) {
            if (!(error instanceof SynclineError)) throw error;
            results.push(error);
          }
        }
        return results;
      });
    } catch (error) {
      // Committed or not, nobody can tell: let the notification, if one comes, be reported.
      for (const key of mine) own.delete(key);
      throw error;
    }
  };

  // ---- watch: LISTEN on a dedicated connection -------------------------------------------------

  const listeners = new Set<(space: SpaceId, head: number) => void>();
  let listenClient: pg.PoolClient | undefined;
  /** LISTEN is in effect on listenClient. */
  let subscribed = false;
  /**
   * Notifications of this object's own commits, as "backend pid payload": the
   * server relays those itself when append() returns, so they are not reported.
   * Cleared on reconnect (a notification lost with the connection never comes).
   */
  const own = new Set<string>();
  let listening = false;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let reconnectDelay = 50;
  let heartbeat: NodeJS.Timeout | undefined;

  const emit = (space: SpaceId, head: number): void => {
    for (const listener of listeners) {
      try {
        listener(space, head);
      } catch (error) {
        onError(error as Error);
      }
    }
  };

  const scheduleListen = (): void => {
    if (!listening || closed || reconnectTimer) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      void listen();
    }, reconnectDelay);
    reconnectTimer.unref();
    reconnectDelay = Math.min(reconnectDelay * 2, 2000);
  };

  const dropListener = (client: pg.PoolClient, error: Error | undefined): void => {
    if (listenClient !== client) return;
    listenClient = undefined;
    subscribed = false;
    clearInterval(heartbeat);
    // Never back into the pool: it is still LISTENing.
    client.release(error ?? true);
    scheduleListen();
  };

  const listen = async (): Promise<void> => {
    if (!listening || closed || listenClient) return;
    try {
      await ready;
    } catch {
      return; // every call reports it
    }
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      onError(error as Error);
      scheduleListen();
      return;
    }
    if (!listening || closed) {
      client.release(true);
      return;
    }
    listenClient = client;
    client.on('error', (error) => {
      onError(error);
      dropListener(client, error);
    });
    client.on('end', () => dropListener(client, new Error('the watch connection ended')));
    client.on('notification', (message) => {
      if (message.channel !== channelName || !message.payload) return;
      if (own.delete(`${message.processId} ${message.payload}`)) return;
      try {
        const [space, head] = JSON.parse(message.payload) as [SpaceId, number];
        emit(space, head);
      } catch (error) {
        onError(error as Error);
      }
    });
    try {
      await client.query(`LISTEN ${channel}`);
      own.clear();
      subscribed = listenClient === client;
      // Listening now: every commit from here on is notified; every earlier one is in these heads.
      const heads = await client.query<{ space: SpaceId; head: string }>(`SELECT space, head FROM ${s}.spaces WHERE head > 0`);
      reconnectDelay = 50;
      if (listenClient !== client) return;
      for (const row of heads.rows) emit(row.space, Number(row.head));
      // A connection that died without a word (a network partition) says nothing: ask it something now and then.
      heartbeat = setInterval(() => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the watch connection did not answer in ${WATCH_HEARTBEAT_MS} ms`)), WATCH_HEARTBEAT_MS);
        });
        Promise.race([client.query('SELECT 1'), timeout])
          .catch((error: Error) => {
            if (listenClient !== client) return;
            onError(error);
            dropListener(client, error);
          })
          .finally(() => clearTimeout(timer));
      }, WATCH_HEARTBEAT_MS);
      heartbeat.unref();
    } catch (error) {
      onError(error as Error);
      dropListener(client, error as Error);
    }
  };

  const stopListening = (): void => {
    listening = false;
    own.clear();
    clearTimeout(reconnectTimer);
    reconnectTimer = undefined;
    if (listenClient) dropListener(listenClient, undefined);
  };

  // ---- the interface ---------------------------------------------------------------------------

  return {
    schema,
    ready: () => ready,
    async usage(space) {
      await open();
      const { rows } = await pool.query<{ bytes: string; records: string }>(`SELECT bytes, records FROM ${s}.spaces WHERE space = $1`, [space]);
      return { bytes: Number(rows[0]?.bytes ?? 0), records: Number(rows[0]?.records ?? 0) };
    },
    async append(requests, quotas) {
      await open();
      try {
        return await appendGroup(requests, quotas);
      } catch (error) {
        if (requests.length === 1 || closed) throw error;
        // Alone, each request stores what it can (what the failed group did commit, if it did, is deduped).
        const results: Array<AppendResult | Error> = [];
        for (const request of requests) {
          try {
            results.push(...(await appendGroup([request], quotas)));
          } catch (alone) {
            results.push(alone instanceof Error ? alone : new Error(String(alone)));
          }
        }
        return results;
      }
    },
    async readLog(space, after, limit, maxBytes, filter) {
      await open();
      // With maxBytes, rows stop where the running size would pass it (the first row always comes).
      // With an origin, the page is read through the (space, origin, origin_pos) index, `after` an origin position
      // (an origin's entries are in the order of their origin positions).
      const byOrigin = filter?.origin !== undefined;
      const { rows } = await pool.query<{ pos: string; change: Buffer; origin: string; origin_pos: string }>(
        `SELECT pos, change, origin, origin_pos FROM (
           SELECT pos, change, origin, origin_pos, sum(octet_length(change)) OVER (ORDER BY pos) AS running, row_number() OVER (ORDER BY pos) AS n
           FROM (SELECT pos, change, origin, origin_pos FROM ${s}.log WHERE space = $1 AND ${byOrigin ? 'origin = $5 AND origin_pos > $2 ORDER BY origin_pos' : 'pos > $2 ORDER BY pos'} LIMIT $3) page
         ) sized WHERE n = 1 OR running <= $4 ORDER BY pos`,
        byOrigin ? [space, after, limit, maxBytes ?? Number.MAX_SAFE_INTEGER, filter?.origin] : [space, after, limit, maxBytes ?? Number.MAX_SAFE_INTEGER],
      );
      return rows.map((row) => ({ pos: Number(row.pos), change: decodeChange(row.change), origin: row.origin, originPos: Number(row.origin_pos) }));
    },
    async head(space) {
      await open();
      const { rows } = await pool.query<{ head: string }>(`SELECT head FROM ${s}.spaces WHERE space = $1`, [space]);
      return Number(rows[0]?.head ?? 0);
    },
    async horizon(space) {
      await open();
      const { rows } = await pool.query<{ horizon: string }>(`SELECT horizon FROM ${s}.spaces WHERE space = $1`, [space]);
      return Number(rows[0]?.horizon ?? 0);
    },
    async record(space, collection, id) {
      await open();
      const { rows } = await pool.query<{ state: Buffer }>(`SELECT state FROM ${s}.records WHERE space = $1 AND collection = $2 AND id = $3`, [
        space,
        Buffer.from(collection, 'utf8'),
        Buffer.from(id, 'utf8'),
      ]);
      return rows[0] ? decodeRecordState(rows[0].state) : undefined;
    },
    async snapshotPage(space, after, limit, maxBytes) {
      await open();
      // As readLog: with maxBytes, the page stops where the running size of the states would pass it.
      const sized = (page: string) =>
        `SELECT collection, id, state FROM (
           SELECT collection, id, state, sum(octet_length(state)) OVER (ORDER BY collection, id) AS running, row_number() OVER (ORDER BY collection, id) AS n
           FROM (${page}) page
         ) sized WHERE n = 1 OR running <= $${after ? 5 : 3} ORDER BY collection, id`;
      const cap = maxBytes ?? Number.MAX_SAFE_INTEGER;
      const { rows } = after
        ? await pool.query<{ collection: Buffer; id: Buffer; state: Buffer }>(
            sized(`SELECT collection, id, state FROM ${s}.records WHERE space = $1 AND (collection, id) > ($2, $3) ORDER BY collection, id LIMIT $4`),
            [space, Buffer.from(after[0], 'utf8'), Buffer.from(after[1], 'utf8'), limit, cap],
          )
        : await pool.query<{ collection: Buffer; id: Buffer; state: Buffer }>(sized(`SELECT collection, id, state FROM ${s}.records WHERE space = $1 ORDER BY collection, id LIMIT $2`), [
            space,
            limit,
            cap,
          ]);
      return rows.map((row): SnapshotRecord => ({ collection: row.collection.toString('utf8'), id: row.id.toString('utf8'), state: decodeRecordState(row.state) }));
    },
    async stats() {
      await open();
      const { rows } = await pool.query<{ spaces: string; records: string; stored: string; bytes: string; log: string }>(
        `SELECT (SELECT count(*) FROM ${s}.spaces WHERE head > 0) AS spaces, (SELECT coalesce(sum(records), 0) FROM ${s}.spaces) AS records,
                (SELECT count(*) FROM ${s}.records) AS stored, (SELECT coalesce(sum(bytes), 0) FROM ${s}.spaces) AS bytes, (SELECT count(*) FROM ${s}.log) AS log`,
      );
      const row = rows[0] as { spaces: string; records: string; stored: string; bytes: string; log: string };
      return { spaces: Number(row.spaces), records: Number(row.records), tombstones: Number(row.stored) - Number(row.records), recordBytes: Number(row.bytes), logEntries: Number(row.log) };
    },
    async countRecords(space) {
      await open();
      const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${s}.records WHERE space = $1`, [space]);
      return Number(rows[0]?.n ?? 0);
    },
    async noteWriter(space, replica, floor, now) {
      await open();
      await pool.query(
        `INSERT INTO ${s}.writers AS w (space, replica, hlc, floor, seen, local) VALUES ($1, $2, NULL, $3, $4, true) ON CONFLICT (space, replica) DO UPDATE
         SET floor = CASE WHEN w.floor IS NULL OR excluded.floor > w.floor THEN coalesce(excluded.floor, w.floor) ELSE w.floor END, seen = greatest(w.seen, excluded.seen), local = true`,
        [space, replica, floor ?? null, now],
      );
    },
    async raiseFloors(space, floors, now) {
      await open();
      if (floors.length === 0) return;
      await pool.query(
        `UPDATE ${s}.writers AS w SET floor = CASE WHEN w.floor IS NULL OR f.floor > w.floor THEN f.floor ELSE w.floor END, seen = greatest(w.seen, $4)
         FROM unnest($2::text[], $3::text[]) AS f(replica, floor)
         WHERE w.space = $1 AND w.replica = f.replica AND w.local AND w.replica NOT IN (SELECT replica FROM ${s}.retired)`,
        [space, floors.map((f) => f.replica), floors.map((f) => f.hlc), now],
      );
    },
    async stability(space) {
      await open();
      const { rows } = await pool.query<HorizonRow>(`SELECT ${HORIZON_COLUMNS} FROM ${s}.spaces WHERE space = $1`, [space]);
      return stabilityFrom(rows[0]);
    },
    async advanceHorizon(space, cap, peers) {
      await open();
      return transaction(async (client) => {
        // The space's write lock: no append stores a change while the horizon moves past it.
        const locked = await client.query<HorizonRow>(`SELECT ${HORIZON_COLUMNS} FROM ${s}.spaces WHERE space = $1 FOR UPDATE`, [space]);
        const row = locked.rows[0];
        if (!row) return { hlc: undefined, upTo: 0 };
        const { rows } = await client.query<{ h: string | null; n: string }>(
          `SELECT min(greatest(coalesce(hlc, ''), coalesce(floor, ''))) AS h, count(*) AS n FROM ${s}.writers
           WHERE space = $1 AND local AND replica NOT IN (SELECT replica FROM ${s}.retired)`,
          [space],
        );
        const h = rows[0]?.h ?? null;
        const candidate = Number(rows[0]?.n ?? 0) === 0 ? cap : h === null || h === '' ? undefined : h < cap ? (h as HlcString) : cap;
        const raise = candidate !== undefined && (row.stable === null || candidate > row.stable);
        const stable = raise ? candidate : (row.stable as HlcString | null);
        const settle = settleCandidate(stable, peers);
        const settles = settle !== undefined && (row.settled === null || settle > row.settled);
        if (!raise && !settles) return stabilityFrom(row);
        const updated = await client.query<HorizonRow>(
          `UPDATE ${s}.spaces SET stable = $2, stable_pos = CASE WHEN $3 THEN head ELSE stable_pos END,
             settled = CASE WHEN $4 THEN $5 ELSE settled END, settled_pos = CASE WHEN $4 THEN head ELSE settled_pos END
           WHERE space = $1 RETURNING ${HORIZON_COLUMNS}`,
          [space, stable, raise, settles, settles ? settle : null],
        );
        return stabilityFrom(updated.rows[0]);
      });
    },
    async collect(space) {
      await open();
      return transaction(async (client) => {
        const locked = await client.query<{ settled: string | null }>(`SELECT settled FROM ${s}.spaces WHERE space = $1 FOR UPDATE`, [space]);
        const stable = locked.rows[0]?.settled ?? null;
        if (stable === null) return 0;
        const { rows } = await client.query<{ bytes: string; n: string }>(
          `WITH d AS (DELETE FROM ${s}.records WHERE space = $1 AND dead <= $2 RETURNING octet_length(state) AS bytes) SELECT coalesce(sum(bytes), 0) AS bytes, count(*) AS n FROM d`,
          [space, stable],
        );
        const n = Number(rows[0]?.n ?? 0);
        if (n > 0) await client.query(`UPDATE ${s}.spaces SET bytes = bytes - $2 WHERE space = $1`, [space, Number(rows[0]?.bytes ?? 0)]);
        return n;
      });
    },
    async trimRetired(space, since): Promise<TrimResult> {
      await open();
      const { rows: counts } = await pool.query<{ head: string | null; retired: string }>(
        `SELECT (SELECT head FROM ${s}.spaces WHERE space = $1) AS head, (SELECT count(*) FROM ${s}.retired) AS retired`,
        [space],
      );
      const head = Number(counts[0]?.head ?? 0);
      const count = Number(counts[0]?.retired ?? 0);
      if (count === 0) return { head, retired: 0, records: 0 };
      // Read after the count: one retired meanwhile is trimmed too, and the next call, seeing a larger count, reads everything.
      const retired = new Set((await pool.query<{ replica: string }>(`SELECT replica FROM ${s}.retired`)).rows.map((r) => r.replica));
      const after = trimAfter(since, count);
      let records = 0;
      let last: { collection: Buffer; id: Buffer } | undefined;
      for (;;) {
        const { rows: page } = await pool.query<{ collection: Buffer; id: Buffer; state: Buffer; pos: string }>(
          last
            ? `SELECT collection, id, state, pos FROM ${s}.records WHERE space = $1 AND pos > $2 AND (collection, id) > ($4, $5) ORDER BY collection, id LIMIT $3`
            : `SELECT collection, id, state, pos FROM ${s}.records WHERE space = $1 AND pos > $2 ORDER BY collection, id LIMIT $3`,
          last ? [space, after, TRIM_PAGE, last.collection, last.id] : [space, after, TRIM_PAGE],
        );
        const trimmed = trimRows(page, retired);
        if (trimmed.length > 0) {
          records += await transaction(async (client) => {
            // The space's write lock first, as appends take it: a record an append changed meanwhile has another position and is left.
            await client.query(`SELECT 1 FROM ${s}.spaces WHERE space = $1 FOR UPDATE`, [space]);
            const { rows } = await client.query<{ n: string }>(
              `WITH u AS (
                 UPDATE ${s}.records r SET state = v.state
                 FROM unnest($2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[], $6::bigint[]) AS v(collection, id, state, pos, saved)
                 WHERE r.space = $1 AND r.collection = v.collection AND r.id = v.id AND r.pos = v.pos RETURNING v.saved)
               UPDATE ${s}.spaces SET bytes = bytes - (SELECT coalesce(sum(saved), 0) FROM u) WHERE space = $1 RETURNING (SELECT count(*) FROM u) AS n`,
              [space, trimmed.map((t) => t.collection), trimmed.map((t) => t.id), trimmed.map((t) => t.bytes), trimmed.map((t) => t.pos), trimmed.map((t) => t.saved)],
            );
            return Number(rows[0]?.n ?? 0);
          });
        }
        if (page.length < TRIM_PAGE) break;
        const end = page[page.length - 1] as { collection: Buffer; id: Buffer };
        last = { collection: end.collection, id: end.id };
      }
      return { head, retired: count, records };
    },
    async retire(replicas, now) {
      await open();
      const { rows } = await pool.query<{ replica: ReplicaId }>(
        `INSERT INTO ${s}.retired (replica, at) SELECT r, $2 FROM unnest($1::text[]) AS u(r) ON CONFLICT (replica) DO NOTHING RETURNING replica`,
        [[...new Set(replicas)], now],
      );
      const retired = new Set(rows.map((r) => r.replica));
      return [...new Set(replicas)].filter((r) => retired.has(r));
    },
    async inactiveWriters(before, keep) {
      await open();
      const { rows } = await pool.query<{ replica: ReplicaId }>(
        `SELECT replica FROM ${s}.writers WHERE local AND replica NOT IN (SELECT replica FROM ${s}.retired) GROUP BY replica HAVING max(seen) < $1 ORDER BY replica`,
        [before],
      );
      return rows.map((r) => r.replica).filter((r) => !keep.has(r));
    },
    async retiredList(after, limit) {
      await open();
      const [page, count] = await Promise.all([
        pool.query<{ replica: ReplicaId }>(`SELECT replica FROM ${s}.retired ORDER BY at, replica LIMIT $1 OFFSET $2`, [limit, after]),
        pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${s}.retired`),
      ]);
      return { replicas: page.rows.map((r) => r.replica), total: Number(count.rows[0]?.n ?? 0) };
    },
    async isRetired(replica) {
      await open();
      const { rows } = await pool.query(`SELECT 1 FROM ${s}.retired WHERE replica = $1`, [replica]);
      return rows.length > 0;
    },
    async writers(space) {
      await open();
      const { rows } = await pool.query<{ replica: ReplicaId; seq: string | null; seen: string; retired: boolean; floor: HlcString | null; local: boolean }>(
        `SELECT w.replica, p.seq, w.seen, (r.replica IS NOT NULL) AS retired, w.floor, w.local FROM ${s}.writers w
         LEFT JOIN ${s}.progress p ON p.space = w.space AND p.replica = w.replica LEFT JOIN ${s}.retired r ON r.replica = w.replica
         WHERE w.space = $1 ORDER BY w.replica`,
        [space],
      );
      return rows.map((w) => ({ replica: w.replica, seq: Number(w.seq ?? 0), seen: Number(w.seen), retired: w.retired, floor: w.floor ?? undefined, local: w.local }));
    },
    async compact(space, keepLast) {
      await open();
      return transaction(async (client) => {
        // The space's write lock: no append moves the head while the horizon is set.
        const { rows } = await client.query<{ head: string; horizon: string }>(`SELECT head, horizon FROM ${s}.spaces WHERE space = $1 FOR UPDATE`, [space]);
        const info = rows[0];
        if (!info) return 0;
        const horizon = Math.max(Number(info.horizon), Number(info.head) - keepLast);
        if (horizon <= Number(info.horizon)) return 0;
        // What resumeAfter() needs to know of the entries dropped: per origin, how far they went.
        await client.query(
          `INSERT INTO ${s}.origin_floors AS f (space, origin, pos)
             SELECT * FROM (
               SELECT $1::text AS space, o.origin, (SELECT origin_pos FROM ${s}.log WHERE space = $1 AND origin = o.origin AND pos <= $2 ORDER BY origin_pos DESC LIMIT 1) AS pos
               FROM (${ORIGINS(s)}) o) dropped
             WHERE pos IS NOT NULL
           ON CONFLICT (space, origin) DO UPDATE SET pos = greatest(f.pos, excluded.pos)`,
          [space, horizon],
        );
        const removed = await client.query(`DELETE FROM ${s}.log WHERE space = $1 AND pos <= $2`, [space, horizon]);
        await client.query(`UPDATE ${s}.spaces SET horizon = $2 WHERE space = $1`, [space, horizon]);
        return removed.rowCount ?? 0;
      });
    },
    async spaces() {
      await open();
      const { rows } = await pool.query<{ space: SpaceId }>(`SELECT space FROM ${s}.spaces WHERE head > 0 ORDER BY space`);
      return rows.map((r) => r.space);
    },
    async replicaProgress(space, replicas) {
      await open();
      const { rows } = replicas
        ? await pool.query<{ replica: ReplicaId; seq: string }>(`SELECT replica, seq FROM ${s}.progress WHERE space = $1 AND replica = ANY($2::text[])`, [space, [...replicas]])
        : await pool.query<{ replica: ReplicaId; seq: string }>(`SELECT replica, seq FROM ${s}.progress WHERE space = $1`, [space]);
      return new Map(rows.map((r) => [r.replica, Number(r.seq)]));
    },
    async mergeState(space, records, final) {
      await open();
      return transaction((client) => mergeOne(client, space, records, final));
    },
    async originVector(space, upTo) {
      await open();
      const { rows } = await pool.query<{ origin: string; pos: string | null }>(
        `SELECT o.origin, greatest((SELECT pos FROM ${s}.origin_floors WHERE space = $1 AND origin = o.origin),
                                   (SELECT origin_pos FROM ${s}.log WHERE space = $1 AND origin = o.origin AND pos <= $2 ORDER BY origin_pos DESC LIMIT 1)) AS pos
         FROM (${ORIGINS(s)} UNION SELECT origin FROM ${s}.origin_floors WHERE space = $1) o`,
        [space, upTo],
      );
      return new Map(rows.filter((r) => r.pos !== null).map((r) => [r.origin, Number(r.pos)]));
    },
    async resumeAfter(space, held) {
      await open();
      // One statement, one snapshot: the head, the floors and each origin's first entry not held.
      const { rows } = await pool.query<{ kind: string; origin: string; pos: string | null }>(
        `SELECT 'head' AS kind, '' AS origin, head AS pos FROM ${s}.spaces WHERE space = $1
         UNION ALL SELECT 'floor', origin, pos FROM ${s}.origin_floors WHERE space = $1
         UNION ALL SELECT 'first', h.origin, (SELECT pos FROM ${s}.log WHERE space = $1 AND origin = h.origin AND origin_pos > h.upto ORDER BY origin_pos LIMIT 1)
           FROM (SELECT o.origin, coalesce(k.upto, 0) AS upto FROM (${ORIGINS(s)}) o
                 LEFT JOIN unnest($2::text[], $3::bigint[]) AS k(origin, upto) ON k.origin = o.origin) h`,
        [space, [...held.keys()], [...held.values()]],
      );
      let after = 0;
      for (const row of rows) if (row.kind === 'head') after = Number(row.pos);
      for (const row of rows) {
        if (row.kind === 'floor' && Number(row.pos) > (held.get(row.origin) ?? 0)) return undefined;
        if (row.kind === 'first' && row.pos !== null) after = Math.min(after, Number(row.pos) - 1);
      }
      return after;
    },
    async linkPositions(peer) {
      await open();
      const { rows } = await pool.query<{ space: SpaceId; pos: string }>(`SELECT space, pos FROM ${s}.links WHERE peer = $1`, [peer]);
      return new Map(rows.map((r) => [r.space, Number(r.pos)]));
    },
    async linkPeers() {
      await open();
      const { rows } = await pool.query<{ peer: string }>(`SELECT DISTINCT peer FROM ${s}.links ORDER BY peer`);
      return rows.map((r) => r.peer);
    },
    async setLinkPosition(peer, space, pos) {
      await open();
      if (!Number.isSafeInteger(pos) || pos < 0) throw new RangeError(`link position ${pos} is not a non-negative integer`);
      // Durable at COMMIT (synchronous_commit on); a lower position leaves the row as it is.
      await transaction((client) =>
        client.query(
          `INSERT INTO ${s}.links AS l (peer, space, pos) VALUES ($1, $2, $3) ON CONFLICT (peer, space) DO UPDATE SET pos = excluded.pos WHERE excluded.pos > l.pos`,
          [peer, space, pos],
        ),
      );
    },
    watch(listener) {
      listeners.add(listener);
      if (!listening && !closed) {
        listening = true;
        void listen();
      }
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) stopListening();
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      stopListening();
      listeners.clear();
      await ready.catch(() => undefined);
      if (ownPool) await pool.end();
    },
  };
}

/** Creates the schema and brings it to the latest version, once, whatever the number of instances starting together. */
async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const s = quoteIdent(schema);
  const client = await pool.connect();
  let broken: Error | undefined;
  const markBroken = (error: Error) => (broken ??= error);
  client.on('error', markBroken);
  try {
    await client.query('BEGIN');
    try {
      // Held until COMMIT: a second instance waits here, then finds the schema at the latest version.
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK, schema]);
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (exists.rows.length === 0) await client.query(`CREATE SCHEMA ${s}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.meta (key text PRIMARY KEY, value text NOT NULL)`);
      const row = await client.query<{ value: string }>(`SELECT value FROM ${s}.meta WHERE key = 'schema_version'`);
      const current = row.rows[0] ? Number(row.rows[0].value) : 0;
      if (current > MIGRATIONS.length) {
        throw new SynclineError('unsupported_storage', `database schema version ${current} is newer than this server (${MIGRATIONS.length}); upgrade the server`);
      }
      for (let v = current; v < MIGRATIONS.length; v++) await client.query((MIGRATIONS[v] as (s: string) => string)(s));
      if (current === 1) {
        // Migration 2 added usage: count the records that exist, space by space.
        const spaces = await client.query<{ space: string }>(`SELECT space FROM ${s}.spaces`);
        for (const { space } of spaces.rows) {
          const states = await client.query<{ state: Buffer }>(`SELECT state FROM ${s}.records WHERE space = $1`, [space]);
          const n = states.rows.filter((row) => recordExists(decodeRecordState(row.state))).length;
          await client.query(`UPDATE ${s}.spaces SET records = $2 WHERE space = $1`, [space, n]);
        }
      }
      if (current >= 1 && current < 4) {
        // Migration 4: when each record already held can be forgotten (its state decoded).
        const rows = await client.query<{ space: string; collection: Buffer; id: Buffer; state: Buffer }>(`SELECT space, collection, id, state FROM ${s}.records`);
        for (const row of rows.rows) {
          const at = collectibleAt(decodeRecordState(row.state));
          if (at !== undefined) await client.query(`UPDATE ${s}.records SET dead = $4 WHERE space = $1 AND collection = $2 AND id = $3`, [row.space, row.collection, row.id, at]);
        }
      }
      if (current < MIGRATIONS.length) {
        await client.query(`INSERT INTO ${s}.meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(MIGRATIONS.length)]);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(markBroken);
      throw error;
    }
  } finally {
    client.removeListener('error', markBroken);
    client.release(broken ?? false);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

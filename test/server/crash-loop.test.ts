/**
 * Guarantee 2 under repeated crashes: the sync server runs in a child process
 * and is killed with SIGKILL at (seeded) random moments, KILLS times, while 20
 * replicas keep writing — puts, patches and deletes of their own records, puts
 * and patches of records every replica writes (lww), and versions of shared
 * records of a merge collection (so siblings appear). Every restart opens the
 * same SQLite file on the same port, and the clients find it again on their own,
 * with their backoff.
 *
 * Checked:
 *  - after every kill, with no server running, every ack any client has received
 *    so far is in the SQLite log: each acknowledged (replica, space, seq) is
 *    there, and each of that replica's seqs up to it exactly once;
 *  - after the last restart and a quiet period, every outbox is empty, every
 *    replica has applied the whole log, and the log holds every change each
 *    replica made exactly once (no loss, no duplicate), identical to what it
 *    pushed, at positions 1..head;
 *  - all 20 replicas hold the same records, state included (lww fields and
 *    their timestamps, merge siblings), equal to the join of every change made,
 *    and so do the server's materialized records; each replica's own records
 *    hold the last value it wrote (or are gone if it deleted them last).
 *
 * Why this fails on a server that acks before its commit is durable: an ack
 * makes the client drop the change from its outbox for good (ackOutbox), so a
 * change acknowledged and then lost with the process is never pushed again.
 * The fixture holds every group commit for COMMIT_DELAY_MS before writing it,
 * so such an ack would sit in front of its commit for that long, and about half
 * of the kills land synchronously inside a client's socket handler the instant
 * an ack arrives — exactly in that window. The check after the kill then finds
 * the acknowledged seq missing from the log. (The loss would also show at the
 * end: the replica's next push starts past the server's held seq and is
 * refused with sequence_gap, so it never gets synced and the log has a gap.)
 * Checked by hand with CRASH_LOOP_SERVER_MODULE pointing at a copy of the
 * server's dist whose session sends the ack before committer.submit: the run
 * fails at the first kill. A copy whose storage does not skip seqs it already
 * holds fails too (a seq stored twice, seen after a kill).
 *
 * CRASH_SEED=<n> replays a run's choices (op mix, kill times and kinds); the
 * seed is printed at the start. Thread timing still varies from run to run.
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  applyChange,
  canonicalState,
  encodeChange,
  materialize,
  spaceId,
  type Change,
  type DownstreamMessage,
  type Fields,
  type Json,
  type RecordState,
  type SpaceId,
} from '@syncline/core/internal';
import type { Replica, SyncEngine } from '@syncline/client';
import { sqliteStorage } from '@syncline/server';
import { cleanupStack, idbStorage, isSynced, outboxCount, recordingSocket, replica, sync, tempDir, uniqueName, visibleState, waitUntil } from '../sync/harness.js';
import { buildDist, ROOT } from './fixtures/build.js';
import { standbyServer, type StandbyServer } from './fixtures/crash-loop-child.js';
import { portOf } from '../internals.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());
beforeAll(() => buildDist(), 120_000);

const CLIENTS = 20;
/** Of the clients, these many keep their replica in fake-indexeddb, the rest in memory. */
const IDB_CLIENTS = 1;
const KILLS = 20;
const COMMIT_DELAY_MS = 10;
const SPACES: readonly SpaceId[] = [spaceId('default'), spaceId('team')];
const OWN_IDS = 12;
const SHARED_NOTES = 6;
const SHARED_DOCS = 4;
/** Whole-run bounds: the kill loop and the final convergence each give up after these. */
const KILL_PHASE_MS = 75_000;
const CONVERGE_MS = 30_000;

const schema = { notes: {}, docs: { policy: 'merge' } } as const;
const COLLECTIONS = Object.keys(schema);
type Db = Replica<typeof schema>;

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const recordKey = (space: string, collection: string, id: string): string => JSON.stringify([space, collection, id]);

type Op =
  | { readonly kind: 'put'; readonly space: SpaceId; readonly collection: 'notes' | 'docs'; readonly id: string; readonly value: Fields }
  | { readonly kind: 'patch'; readonly space: SpaceId; readonly collection: 'notes' | 'docs'; readonly id: string; readonly patch: Readonly<Record<string, Json | undefined>> }
  | { readonly kind: 'delete'; readonly space: SpaceId; readonly collection: 'notes'; readonly id: string };

interface Client {
  readonly index: number;
  readonly r: Db;
  readonly engine: SyncEngine;
  readonly rec: ReturnType<typeof recordingSocket>;
  readonly random: () => number;
  /** Highest `ack.upTo` received, per space. */
  readonly acked: Map<SpaceId, number>;
  /** Changes made (= the last seq), per space. */
  readonly written: Map<SpaceId, number>;
  /** Every change this client pushed, by `space seq` (a resend must be identical). */
  readonly pushed: Map<string, Change>;
  /** Its own notes: the value it last wrote, null after a delete. */
  readonly own: Map<string, Fields | null>;
  readonly errors: string[];
  acks: number;
  counter: number;
}

describe('sync server killed with SIGKILL again and again under load from 20 replicas', () => {
  it('loses no acknowledged change, stores each once, and the replicas converge', { timeout: 150_000 }, async () => {
    const started = Date.now();
    const seed = process.env['CRASH_SEED'] !== undefined ? Number(process.env['CRASH_SEED']) : randomInt(2 ** 31);
    if (!Number.isSafeInteger(seed)) throw new Error(`CRASH_SEED must be an integer, got ${process.env['CRASH_SEED']}`);
    console.log(`crash-loop seed: ${seed} (replay with CRASH_SEED=${seed})`);
    const rng = prng(seed);
    const context = (): string => `(seed ${seed})`;

    const dir = await tempDir('syncline-crash-loop-');
    cleanup.push(dir.remove);
    const path = join(dir.path, 'sync.db');
    const fixture = join(ROOT, 'test/server/fixtures/crash-loop-server.mjs');

    // ---- the server: start, kill, restart on the same port ------------------------
    // The next server process is always spawned ahead and waits, its code loaded,
    // until the previous one is dead (see crash-loop-server.mjs): a restart then
    // takes milliseconds instead of a Node start, and the downtime is ours to pick.
    let port = 0;
    let kills = 0;
    let killedOnAck = 0;
    /** Set while a kill waits for the next ack; the socket handlers call it. */
    let killOnAck: (() => void) | undefined;
    const processes: StandbyServer[] = [];
    cleanup.push(() => processes.forEach((p) => p.process.kill('SIGKILL')));
    const spawnNext = (): StandbyServer => {
      const next = standbyServer([fixture, path, String(port), String(COMMIT_DELAY_MS)]);
      processes.push(next);
      return next;
    };
    /** Starts the standby and spawns the one after it. */
    const restart = async (standby: StandbyServer): Promise<{ running: StandbyServer; next: StandbyServer }> => {
      const listening = await standby.start();
      if (port !== 0) expect(listening, 'the restarted server listens on the same port').toBe(port);
      port = listening;
      return { running: standby, next: spawnNext() };
    };
    const kill = async (server: StandbyServer): Promise<void> => {
      killOnAck = undefined;
      server.process.kill('SIGKILL');
      const exit = await server.exited;
      expect(exit.signal, `server exit ${JSON.stringify(exit)}; stderr: ${server.stderr()}`).toBe('SIGKILL');
      kills++;
    };
    let { running, next } = await restart(spawnNext());
    const url = `ws://127.0.0.1:${port}/sync`;

    // ---- the clients ----------------------------------------------------------------
    const clients: Client[] = [];
    for (let index = 0; index < CLIENTS; index++) {
      const r = await replica({ name: uniqueName(`crash-loop-${index}`), schema, ...(index < IDB_CLIENTS ? { storage: idbStorage() } : {}) });
      cleanup.push(() => r.close());
      const acked = new Map<SpaceId, number>();
      const errors: string[] = [];
      const rec = recordingSocket((message: DownstreamMessage) => {
        // Only what the test needs is kept; the recording's own log would hold
        // every relayed change 20 times over.
        rec.log.length = 0;
        if (message.type === 'error') errors.push(`${message.code}: ${message.message}`);
        if (message.type !== 'ack') return;
        acked.set(message.space, Math.max(acked.get(message.space) ?? 0, message.upTo));
        client.acks++;
        // Killed from inside the handler, the instant the ack arrives: a commit
        // that had not happened yet when it was sent dies with the process.
        killOnAck?.();
      });
      const engine = sync(r, url, { WebSocket: rec.factory, spaces: SPACES, batchSize: 100, backoff: { initialMs: 10, maxMs: 100 } });
      cleanup.push(() => engine.close());
      const client: Client = {
        index,
        r,
        engine,
        rec,
        random: prng(Math.floor(rng() * 2 ** 32)),
        acked,
        written: new Map(),
        pushed: new Map(),
        own: new Map(),
        errors,
        acks: 0,
        counter: 0,
      };
      clients.push(client);
    }

    /** Moves the pushes each client sent into `pushed` (checking resends are identical). */
    const collectPushes = (): void => {
      for (const c of clients) {
        for (const { message } of c.rec.sent.splice(0)) {
          if (message.type !== 'push') continue;
          for (const change of message.changes) {
            const key = `${change.space} ${change.seq}`;
            const before = c.pushed.get(key);
            if (before) expect(Buffer.from(encodeChange(change)).equals(Buffer.from(encodeChange(before))), `client ${c.index} resent ${key} changed ${context()}`).toBe(true);
            else c.pushed.set(key, change);
          }
        }
      }
    };

    // ---- the load ---------------------------------------------------------------------
    let writing = true;
    const writeErrors: unknown[] = [];
    const plan = (c: Client): Op => {
      const rand = c.random;
      const space = SPACES[rand() < 0.7 ? 0 : 1] as SpaceId;
      const n = ++c.counter;
      const roll = rand();
      const ownId = `own-${c.index}-${Math.floor(rand() * OWN_IDS)}`;
      if (roll < 0.3) return { kind: 'put', space, collection: 'notes', id: ownId, value: { by: c.index, n, text: 'x'.repeat(Math.floor(rand() * 40)) } };
      if (roll < 0.45) return { kind: 'patch', space, collection: 'notes', id: ownId, patch: { n, tag: rand() < 0.3 ? undefined : `t${n}` } };
      if (roll < 0.5) return { kind: 'delete', space, collection: 'notes', id: ownId };
      const shared = `shared-${Math.floor(rand() * SHARED_NOTES)}`;
      if (roll < 0.65) return { kind: 'put', space, collection: 'notes', id: shared, value: { by: c.index, n } };
      if (roll < 0.8) return { kind: 'patch', space, collection: 'notes', id: shared, patch: { [`f${c.index % 4}`]: n, by: c.index } };
      const doc = `doc-${Math.floor(rand() * SHARED_DOCS)}`;
      if (roll < 0.9) return { kind: 'put', space, collection: 'docs', id: doc, value: { by: c.index, n } };
      return { kind: 'patch', space, collection: 'docs', id: doc, patch: { [`p${c.index}`]: n } };
    };
    const remember = (c: Client, op: Op): void => {
      c.written.set(op.space, (c.written.get(op.space) ?? 0) + 1);
      if (op.collection !== 'notes' || !op.id.startsWith('own-')) return;
      const key = recordKey(op.space, op.collection, op.id);
      if (op.kind === 'put') c.own.set(key, op.value);
      else if (op.kind === 'delete') c.own.set(key, null);
      else {
        // lww patch: sets the named fields; on a deleted record only those fields come back.
        const next: Record<string, Json> = { ...(c.own.get(key) ?? {}) };
        for (const [field, value] of Object.entries(op.patch)) {
          if (value === undefined) delete next[field];
          else next[field] = value;
        }
        c.own.set(key, next);
      }
    };
    const writer = async (c: Client): Promise<void> => {
      try {
        while (writing) {
          const ops = Array.from({ length: c.random() < 0.15 ? 2 + Math.floor(c.random() * 4) : 1 }, () => plan(c));
          await c.r.batch((b) => {
            for (const op of ops) {
              if (op.kind === 'put') b.put(op.collection, op.id, op.value, { space: op.space });
              else if (op.kind === 'patch') b.patch(op.collection, op.id, op.patch, { space: op.space });
              else b.delete(op.collection, op.id, { space: op.space });
            }
          });
          for (const op of ops) remember(c, op);
          await sleep(80 + c.random() * 200);
        }
      } catch (error) {
        writeErrors.push(error);
      }
    };
    const writers = clients.map((c) => writer(c));

    // ---- the kills ------------------------------------------------------------------------
    let acksChecked = 0;
    /** With no server running: every ack received so far is in the log, each seq up to it once. */
    const checkAcksDurable = (when: string): void => {
      const db = new Database(path, { fileMustExist: true });
      let rows: Array<{ space: string; replica: string; n: number; uniq: number; lo: number; hi: number }>;
      try {
        rows = db
          .prepare<[], { space: string; replica: string; n: number; uniq: number; lo: number; hi: number }>(
            'SELECT space, replica, count(*) AS n, count(DISTINCT seq) AS uniq, min(seq) AS lo, max(seq) AS hi FROM log GROUP BY space, replica',
          )
          .all();
      } finally {
        db.close();
      }
      const held = new Map(rows.map((row) => [`${row.space} ${row.replica}`, row]));
      acksChecked = 0;
      for (const c of clients) {
        for (const [space, upTo] of c.acked) {
          const row = held.get(`${space} ${c.r.id}`);
          const what = `${when}: client ${c.index} was acked up to seq ${upTo} in "${space}"; the log holds ${row ? `seqs ${row.lo}..${row.hi}, ${row.n} entries, ${row.uniq} distinct` : 'none of its changes'} ${context()}`;
          expect(row?.hi ?? 0, what).toBeGreaterThanOrEqual(upTo);
          expect(row && row.lo === 1 && row.n === row.hi && row.uniq === row.hi, what).toBe(true);
          expect(upTo, `${what}: acked past what it wrote`).toBeLessThanOrEqual(c.written.get(space) ?? 0);
          acksChecked += upTo;
        }
      }
    };

    const killDeadline = started + KILL_PHASE_MS;
    while (kills < KILLS) {
      if (Date.now() > killDeadline) throw new Error(`only ${kills} of ${KILLS} kills within ${KILL_PHASE_MS} ms ${context()}`);
      if (writeErrors.length > 0) throw writeErrors[0];
      // A random moment after the restart: some land while clients reconnect,
      // most under load. Half wait there for the next ack and kill on it.
      await sleep(50 + rng() * 500);
      if (rng() < 0.5) {
        let fired!: () => void;
        const onAck = new Promise<void>((resolve) => (fired = resolve));
        killOnAck = () => {
          killOnAck = undefined;
          running.process.kill('SIGKILL');
          killedOnAck++;
          fired();
        };
        // Bounded: without an ack in 2 s, kill anyway.
        await Promise.race([onAck, sleep(2_000)]);
      }
      await kill(running);
      const down = Date.now();
      collectPushes();
      checkAcksDurable(`after kill ${kills}`);
      // Down for a random while (clients keep writing, and retry with their backoff).
      await sleep(Math.max(0, rng() * 400 - (Date.now() - down)));
      ({ running, next } = await restart(next));
    }

    // ---- quiet: stop writing, let everything settle on the last server -----------------------
    await sleep(300);
    writing = false;
    await Promise.all(writers);
    if (writeErrors.length > 0) throw writeErrors[0];
    const totals = new Map(SPACES.map((space) => [space, clients.reduce((sum, c) => sum + (c.written.get(space) ?? 0), 0)]));
    let last = { positions: [] as number[][], outboxes: [] as number[] };
    const describeState = (): string =>
      `every replica synced with positions ${[...totals.values()].join('/')} ${context()}\n` +
      clients
        .map((c, i) => `client ${c.index}: ${c.engine.status.state}, outbox ${last.outboxes[i]}, positions ${last.positions[i]?.join('/')}, errors ${c.errors.join('; ') || 'none'}`)
        .join('\n');
    await waitUntil(
      async () => {
        last = {
          positions: await Promise.all(clients.map((c) => Promise.all(SPACES.map(async (space) => (await portOf(c.r).position(space)).upTo)))),
          outboxes: await Promise.all(clients.map((c) => outboxCount(c.r))),
        };
        for (const p of last.positions) {
          SPACES.forEach((space, i) => {
            // More entries than changes made: something was stored twice.
            if ((p[i] ?? 0) > (totals.get(space) ?? 0)) throw new Error(`a replica is at position ${p[i]} of "${space}", past the ${totals.get(space)} changes made ${context()}`);
          });
        }
        return (
          last.positions.every((p) => SPACES.every((space, i) => p[i] === totals.get(space))) &&
          last.outboxes.every((n) => n === 0) &&
          clients.every((c) => isSynced(c.engine))
        );
      },
      CONVERGE_MS,
      describeState,
    );
    for (const c of clients) expect(c.errors, `client ${c.index} was sent errors ${context()}`).toEqual([]);
    collectPushes();
    for (const c of clients) c.engine.close();
    // One more kill, after everything is acknowledged, then read the file as a restarted server would.
    await kill(running);
    checkAcksDurable('after the final kill');
    const totalAcks = clients.reduce((sum, c) => sum + c.acks, 0);

    // ---- the log: every change made, exactly once, as pushed -----------------------------------
    const storage = sqliteStorage({ path });
    cleanup.push(() => storage.close());
    const expected = new Map<string, { space: SpaceId; collection: string; id: string; state: RecordState }>();
    for (const space of SPACES) {
      const total = totals.get(space) as number;
      expect(await storage.head(space)).toBe(total);
      const log = await storage.readLog(space, 0, total + 1);
      expect(log.map((e) => e.pos)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      for (const c of clients) {
        const mine = log.filter((e) => e.change.replica === c.r.id);
        const written = c.written.get(space) ?? 0;
        // Every seq 1..written once, in seq order (a replica's changes are appended in order).
        expect(mine.map((e) => e.change.seq), `client ${c.index} in "${space}" ${context()}`).toEqual(Array.from({ length: written }, (_, i) => i + 1));
        for (const { change } of mine) {
          const pushed = c.pushed.get(`${space} ${change.seq}`);
          expect(pushed, `client ${c.index} seq ${change.seq} in "${space}" was pushed`).toBeDefined();
          expect(Buffer.from(encodeChange(change)).equals(Buffer.from(encodeChange(pushed as Change))), `stored ${space} ${change.seq} of client ${c.index} as pushed`).toBe(true);
        }
      }
      // The expected state of every record: the join of every change made to it.
      for (const c of clients) {
        for (const change of c.pushed.values()) {
          if (change.space !== space) continue;
          const key = recordKey(space, change.collection, change.id);
          const entry = expected.get(key) ?? { space, collection: change.collection, id: change.id, state: {} };
          entry.state = applyChange(entry.state, change);
          expected.set(key, entry);
        }
      }
      // The server's materialized records agree.
      const records = await storage.snapshotPage(space, undefined, 100_000);
      expect(records.map((r) => `${recordKey(space, r.collection, r.id)} ${canonicalState(r.state)}`).sort()).toEqual(
        [...expected.values()].filter((e) => e.space === space).map((e) => `${recordKey(space, e.collection, e.id)} ${canonicalState(e.state)}`).sort(),
      );
    }

    // ---- the replicas: identical, equal to the join of all changes -------------------------------
    const want = [...expected.values()]
      .map((e) => {
        const view = materialize(e.state);
        return JSON.stringify([e.collection, e.space, e.id, view.exists ? (view.value ?? null) : null, canonicalState(e.state)]);
      })
      .sort();
    const first = (await visibleState(clients[0]?.r as Db, COLLECTIONS)).sort();
    expect(first.length).toBe(want.length);
    expect(first, `replica 0 against the join of every change ${context()}`).toEqual(want);
    for (const c of clients.slice(1)) expect((await visibleState(c.r, COLLECTIONS)).sort(), `replica ${c.index} against replica 0 ${context()}`).toEqual(first);

    // Every record any client wrote is on every replica (unless its last write deleted it) …
    let conflicts = 0;
    for (const e of expected.values()) {
      const view = materialize(e.state);
      if (e.collection === 'docs' && view.siblings.length > 1) conflicts++;
      if (e.id.startsWith('shared-') || e.id.startsWith('doc-')) expect(view.exists, `${e.collection}/${e.id} in ${e.space} exists`).toBe(true);
      for (const c of clients) {
        const row = await c.r.get(e.collection as 'notes' | 'docs', e.id, { space: e.space });
        expect(row !== undefined, `${e.collection}/${e.id} in ${e.space} on replica ${c.index}`).toBe(view.exists);
      }
    }
    // … and a client's own records, which only it writes, hold the last value it wrote.
    let ownChecked = 0;
    for (const c of clients) {
      for (const [key, value] of c.own) {
        const [space, collection, id] = JSON.parse(key) as [SpaceId, string, string];
        for (const other of [clients[0] as Client, c]) {
          const row = await other.r.get(collection as 'notes' | 'docs', id, { space });
          if (value === null) expect(row, `${key} deleted last by client ${c.index}`).toBeUndefined();
          else expect(row?.value, `${key} by client ${c.index}`).toEqual(value);
        }
        ownChecked++;
      }
    }
    // The merge collection's conflicts are the same everywhere (visibleState covers it; conflicts() says it the app's way).
    for (const e of expected.values()) {
      if (e.collection !== 'docs') continue;
      const seen = await Promise.all(clients.map((c) => c.r.conflicts('docs', e.id, { space: e.space })));
      for (const s of seen) expect(s.map((v) => `${v.replica}:${v.seq}`)).toEqual(seen[0]?.map((v) => `${v.replica}:${v.seq}`));
    }

    const changes = [...totals.values()].reduce((a, b) => a + b, 0);
    console.log(
      `crash-loop seed ${seed}: ${kills} kills (${killedOnAck} on an ack), ${totalAcks} acks received, ${acksChecked} acknowledged (replica, space, seq) checked after the last kill, ` +
        `${changes} changes by ${CLIENTS} replicas, ${expected.size} records, ${conflicts} merge records in conflict, ${ownChecked} own records checked, ${Date.now() - started} ms`,
    );
    expect(kills).toBeGreaterThanOrEqual(KILLS + 1);
    expect(acksChecked).toBe(changes);
  });
});

/**
 * One simulation run: N replicas (the real @syncline/client on fake-indexeddb)
 * and one server (the real @syncline/server on SQLite in /dev/shm) on the
 * simulated network, in virtual time, driven by a plan. After the plan the
 * network heals, the run waits for quiescence and checks the guarantees of
 * DESIGN.md against the server's log and every replica's state: safety
 * (nothing lost, convergence to what the log specifies) and liveness (every
 * write acknowledged and everywhere, pushes that fit the announced limits,
 * causality and read-your-writes whatever the clocks say).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReplica, indexedDbStorage, ReplicaError, type Replica } from '@syncline/client';
import {
  DEFAULT_MAX_CLOCK_DRIFT,
  decodeDownstream,
  encodeChange,
  encodeDownstream,
  formatTimestamp,
  Hlc,
  hlcWall,
  latestStamp,
  materialize,
  MAX_CHANGE_BYTES,
  maxHlc,
  type Change,
  type HlcString,
  type Json,
  type ReplicaId,
  type SnapshotRecord,
  type SpaceId,
} from '@syncline/core/internal';
import { createSyncServer, sqliteStorage, type AppendRequest, type AppendResult, type MergeFinal, type ReadLogFilter, type ServerStorage, type SpaceQuotas, type SyncServer, type TrimMark } from '@syncline/server';
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { pino } from 'pino';
import { SimNetwork } from './network.js';
import { canonical, expectedState } from './oracle.js';
import { checkConvergence, retiredEntries } from './dump.js';
import { Background, drive, editCrdt, enqueue, Failure } from './common.js';
import { Rng } from './rng.js';
import { VirtualTime } from './virtual-time.js';
import { describe, makeConfig, makePlan, MAX_SKEW_MS, MERGE_COLLECTIONS, SCHEMA, type Action, type Config, type Op } from './workload.js';
import { webSocketConnect } from '../../packages/client/src/sync/connection.js';
import { Pusher } from '../../packages/client/src/sync/pusher.js';
import { portOf, storageOf } from '../internals.js';

/** Bugs the simulation must find (test/sim/planted.test.ts). */
export type PlantedBug =
  /** The server acknowledges a push whose last change it never stored. */
  | 'ack-without-store'
  /** The server's log reader skips an entry in the middle of a batch. */
  | 'skip-log-entry'
  /** The replica advances its log position past a change it did not apply. */
  | 'skip-remote-change'
  /** The sync engine sizes pushes by count only, not by bytes. */
  | 'count-only-pushes'
  /** The sync engine ignores an error that names no space (rate_limited): the push it dropped stays in flight. */
  | 'ignore-spaceless-errors'
  /** The clock does not advance past a remote timestamp ahead of it (what replicas did before issue 15). */
  | 'hlc-ignores-remote'
  /** The server's stability horizon follows a time to live (every writer is taken to have passed `now - TTL`), not its writers. */
  | 'gc-by-ttl'
  /** A retired replica that rejoins forgets the unsynced changes it set aside instead of writing them again. */
  | 'rejoin-forgets';

/** The planted 'gc-by-ttl' bug's time to live (virtual ms): what engines that collect by time do (Ditto: 7 days). */
const PLANTED_TTL_MS = 30_000;

export interface SimOptions {
  readonly seed: number;
  /** Replays this plan instead of the one the seed generates (shrinking). */
  readonly plan?: readonly Action[];
  readonly steps?: number;
  readonly bug?: PlantedBug;
}

export interface SimStats {
  ops: number;
  faults: number;
  serverCrashes: number;
  serverRestarts: number;
  replicaRestarts: number;
  /** Replica ids an operator retired (each replica then rejoined under a new one). */
  retired: number;
  /** Merge records the server rewrote without retired replicas' context entries. */
  trimmed: number;
  /** Unsynced changes rejoins set aside, and those written again. */
  setAside: number;
  rewritten: number;
  frames: number;
  duplicated: number;
  cuts: number;
  changes: number;
  virtualMs: number;
  /** Writes refused at write time for a value past MAX_CHANGE_BYTES. */
  tooLarge: number;
  /** Limit refusals (frame, batch, rate) that replicas recovered from, in runs whose server announced no limits. */
  limitRefusals: number;
  /** Reads right after a write that were checked to return it. */
  readYourWrites: number;
}

export interface SimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failures: readonly string[];
  readonly config: Config;
  readonly plan: readonly Action[];
  /** Hash of every frame delivered and of the final state: equal runs, equal digests. */
  readonly digest: string;
  readonly stats: SimStats;
}

const T0 = Date.UTC(2026, 0, 1);
/** The server's default maxFrameBytes. */
const DEFAULT_FRAME_BYTES = 1024 * 1024;
const SETTLE_LIMIT_MS = 30 * 60_000;
const QUIESCE_LIMIT_MS = 60 * 60_000;
const silent = pino({ level: 'silent' });

interface Slot {
  readonly index: number;
  readonly name: string;
  readonly spaces: readonly SpaceId[];
  factory: IDBFactory;
  readonly rng: Rng;
  skew: number;
  replica: Replica | undefined;
  chain: Promise<void>;
  busy: number;
  /** The latest timestamp this replica has applied (remote changes, snapshots). */
  maxApplied: HlcString | undefined;
  /** Bumped when an apply starts and when it ends: a read-your-writes check skips a window in which one ran. */
  applyEpoch: number;
  /** Local writes: their seqs in a space and the latest timestamp applied before they started. */
  readonly writes: Array<{ readonly space: string; readonly replica: ReplicaId; readonly from: number; readonly to: number; readonly floor: HlcString | undefined; readonly what: string }>;
  /** Every id its replicas had (a wipe makes a new replica, a retirement a new id): what each stored stays checked. */
  readonly ids: Set<ReplicaId>;
  /** Puts a rejoin set aside and wrote again: each must be in the log under a later id of this replica. */
  readonly rewritten: Array<{ readonly space: string; readonly collection: string; readonly id: string; readonly fields: unknown; readonly from: ReplicaId }>;
}

/** Storage as the simulation sees it: can die with its server, crash right after a commit, or carry a planted bug. */
class SimStorage implements ServerStorage {
  dead = false;
  crashAfterStore = false;
  constructor(
    /** The real storage, without the simulation's faults (the checks read it). */
    readonly inner: ServerStorage,
    private readonly world: World,
  ) {}
  #alive(): void {
    if (this.dead) throw new Error('the server process is gone');
  }
  async usage(space: SpaceId) {
    this.#alive();
    return this.inner.usage(space);
  }
  async append(requests: readonly AppendRequest[], quotas?: SpaceQuotas): Promise<Array<AppendResult | Error>> {
    this.#alive();
    let reqs = requests;
    const dropped = new Map<number, number>();
    if (this.world.bug === 'ack-without-store') {
      reqs = requests.map((r, i) => {
        if (r.changes.length < 2 || !this.world.bugRng.chance(0.3)) return r;
        dropped.set(i, (r.changes[r.changes.length - 1] as Change).seq);
        return { ...r, changes: r.changes.slice(0, -1) };
      });
    }
    const results = await this.inner.append(reqs, quotas);
    for (const result of results) if (!(result instanceof Error)) for (const entry of result.stored) this.world.archive(entry.pos, entry.change);
    for (const [i, seq] of dropped) {
      const result = results[i];
      if (result && !(result instanceof Error)) results[i] = { ...result, upTo: Math.max(result.upTo, seq) };
    }
    if (this.crashAfterStore && results.some((r) => !(r instanceof Error) && r.stored.length > 0)) {
      this.crashAfterStore = false;
      this.world.crashServer('after a commit, before its acks');
      throw new Error('the server process died after committing');
    }
    return results;
  }
  async readLog(space: SpaceId, after: number, limit: number, maxBytes?: number, filter?: ReadLogFilter) {
    this.#alive();
    const entries = await this.inner.readLog(space, after, limit, maxBytes, filter);
    if (this.world.bug === 'skip-log-entry' && entries.length >= 3 && this.world.bugRng.chance(0.2)) entries.splice(1, 1);
    return entries;
  }
  async head(space: SpaceId) {
    this.#alive();
    return this.inner.head(space);
  }
  async record(space: SpaceId, collection: string, id: string) {
    this.#alive();
    return this.inner.record(space, collection, id);
  }
  async horizon(space: SpaceId) {
    this.#alive();
    return this.inner.horizon(space);
  }
  async snapshotPage(space: SpaceId, after: readonly [string, string] | undefined, limit: number, maxBytes?: number) {
    this.#alive();
    return this.inner.snapshotPage(space, after, limit, maxBytes);
  }
  async stats() {
    this.#alive();
    return this.inner.stats();
  }
  async countRecords(space: SpaceId) {
    this.#alive();
    return this.inner.countRecords(space);
  }
  async compact(space: SpaceId, keepLast: number) {
    this.#alive();
    return this.inner.compact(space, keepLast);
  }
  async spaces() {
    this.#alive();
    return this.inner.spaces();
  }
  async linkPositions(peer: string) {
    this.#alive();
    return this.inner.linkPositions(peer);
  }
  async linkPeers() {
    this.#alive();
    return this.inner.linkPeers();
  }
  async setLinkPosition(peer: string, space: SpaceId, pos: number) {
    this.#alive();
    return this.inner.setLinkPosition(peer, space, pos);
  }
  async replicaProgress(space: SpaceId, replicas?: readonly ReplicaId[]) {
    this.#alive();
    return this.inner.replicaProgress(space, replicas);
  }
  async mergeState(space: SpaceId, records: readonly SnapshotRecord[], final?: MergeFinal) {
    this.#alive();
    return this.inner.mergeState(space, records, final);
  }
  async originVector(space: SpaceId, upTo: number) {
    this.#alive();
    return this.inner.originVector(space, upTo);
  }
  async resumeAfter(space: SpaceId, held: ReadonlyMap<string, number>) {
    this.#alive();
    return this.inner.resumeAfter(space, held);
  }
  async noteWriter(space: SpaceId, replica: ReplicaId, floor: HlcString | undefined, now: number) {
    this.#alive();
    return this.inner.noteWriter(space, replica, floor, now);
  }
  async stability(space: SpaceId) {
    this.#alive();
    return this.inner.stability(space);
  }
  async advanceHorizon(space: SpaceId, cap: HlcString) {
    this.#alive();
    if (this.world.bug === 'gc-by-ttl') {
      // Every writer is taken to have passed now - TTL, however long it has been away.
      const ttl = formatTimestamp({ wall: this.world.time.now - PLANTED_TTL_MS, counter: 0, replica: '0' as ReplicaId });
      for (const replica of (await this.inner.replicaProgress(space)).keys()) await this.inner.noteWriter(space, replica, ttl, this.world.time.now);
    }
    return this.inner.advanceHorizon(space, cap);
  }
  async collect(space: SpaceId) {
    this.#alive();
    return this.inner.collect(space);
  }
  async trimRetired(space: SpaceId, since: TrimMark | undefined) {
    this.#alive();
    const result = await this.inner.trimRetired(space, since);
    this.world.stats.trimmed += result.records;
    return result;
  }
  async retire(replicas: readonly ReplicaId[], now: number) {
    this.#alive();
    return this.inner.retire(replicas, now);
  }
  async retiredList(after: number, limit: number) {
    this.#alive();
    return this.inner.retiredList(after, limit);
  }
  async raiseFloors(space: SpaceId, floors: readonly { readonly replica: ReplicaId; readonly hlc: HlcString }[], now: number) {
    this.#alive();
    return this.inner.raiseFloors(space, floors, now);
  }
  async inactiveWriters(before: number, keep: ReadonlySet<ReplicaId>) {
    this.#alive();
    return this.inner.inactiveWriters(before, keep);
  }
  async isRetired(replica: ReplicaId) {
    this.#alive();
    return this.inner.isRetired(replica);
  }
  async writers(space: SpaceId) {
    this.#alive();
    return this.inner.writers(space);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

class World {
  readonly time = new VirtualTime(T0);
  readonly rng: Rng;
  readonly bugRng: Rng;
  readonly config: Config;
  readonly network: SimNetwork;
  readonly slots: Slot[];
  readonly dir: string;
  readonly dbPath: string;
  readonly failures: string[] = [];
  readonly stats: SimStats = emptyStats();
  readonly hash = createHash('sha256');
  /** Every change the server committed, by space and position: the log before compaction. */
  readonly #archive = new Map<string, Map<number, Change>>();
  /** (replica, space) → highest seq the replica was told is stored. */
  readonly acked = new Map<string, number>();
  /**
   * (replica, space) pairs with a change stored: writers the server knows, which hold its
   * stability horizon back while they are not retired (DESIGN.md, "Stability"), so none of
   * them is ever refused as below the horizon (their unsent changes are stamped after
   * their last stored one, and after the floor they announce).
   */
  readonly #writers = new Set<string>();
  server: SyncServer | undefined;
  storage: SimStorage | undefined;
  #serverEpoch = 0;
  readonly #background = new Background((message) => this.fail(message));
  #starting = false;

  constructor(
    readonly seed: number,
    readonly bug: PlantedBug | undefined,
  ) {
    const root = new Rng(seed);
    const configRng = root.fork('config');
    this.rng = root.fork('runtime');
    this.bugRng = root.fork('bug');
    this.config = makeConfig(configRng);
    this.network = new SimNetwork(this.rng.fork('network'), { minDelayMs: this.config.minDelayMs, maxDelayMs: this.config.maxDelayMs, duplicate: this.config.duplicate });
    this.network.onFrame = (event) => this.#observe(event.dir, event.client, event.bytes);
    // A protocol 2 server announces no limits: the replicas learn them from its refusals.
    if (!this.config.announced) this.network.transformDown = (_client, bytes) => withoutLimits(bytes);
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    this.dir = mkdtempSync(join(base, 'syncline-sim-'));
    this.dbPath = join(this.dir, 'server.db');
    this.slots = this.config.skews.map((skew, index) => ({
      index,
      name: `r${index}`,
      spaces: (this.config.follows[index] as readonly string[]).map((s) => s as SpaceId),
      factory: new IDBFactory(),
      rng: root.fork(`replica-${index}`),
      skew,
      replica: undefined,
      chain: Promise.resolve(),
      busy: 0,
      maxApplied: undefined,
      applyEpoch: 0,
      writes: [],
      ids: new Set(),
      rewritten: [],
    }));
  }

  archive(pos: number, change: Change): void {
    let log = this.#archive.get(change.space);
    if (!log) this.#archive.set(change.space, (log = new Map()));
    if (log.has(pos)) this.fail(`position ${pos} of ${change.space} was assigned twice`);
    log.set(pos, change);
    this.#writers.add(`${change.replica}\u0000${change.space}`);
  }

  fail(message: string): void {
    this.failures.push(message);
  }

  #observe(dir: 'up' | 'down', client: string, bytes: Uint8Array): void {
    this.hash.update(`${this.time.now}|${dir}|${client}|`).update(bytes);
    if (dir === 'up') return;
    let message;
    try {
      message = decodeDownstream(bytes);
    } catch {
      return;
    }
    // Every frame the server sends stays within its byte budget (its maxFrameBytes; the replicas read
    // 16 MiB), whatever the records' sizes: only one record larger than the budget may go alone.
    const budget = this.config.limits?.maxFrameBytes ?? DEFAULT_FRAME_BYTES;
    if (bytes.length > budget && !(message.type === 'snapshot' && message.records.length === 1)) {
      this.fail(`the server sent ${client} a ${message.type} frame of ${bytes.length} bytes, over its budget of ${budget}`);
    }
    if (message.type === 'error' && (message.code === 'frame_too_large' || message.code === 'batch_too_large' || message.code === 'rate_limited')) {
      // A client that knows the limits fits them; one that does not must recover from these.
      if (this.config.announced) this.fail(`${client} got ${message.code} although the server announced its limits: ${message.message}`);
      else this.stats.limitRefusals++;
    }
    if (message.type === 'error' && message.code === 'below_horizon') {
      const id = this.slots.find((slot) => slot.name === client)?.replica?.id;
      if (id !== undefined && this.#writers.has(`${id}\u0000${message.space}`)) this.fail(`${client} had changes stored in ${message.space} and was refused as below the horizon: it passed a writer that holds it back (${message.message})`);
    }
    if (message.type === 'ack') {
      const slot = this.slots.find((s) => s.name === client);
      const id = slot?.replica?.id;
      if (!id) return;
      const key = `${id}\u0000${message.space}`;
      this.acked.set(key, Math.max(this.acked.get(key) ?? 0, message.upTo));
    }
  }

  // ---- server ---------------------------------------------------------------------

  startServer(): void {
    const storage = new SimStorage(sqliteStorage({ path: this.dbPath }), this);
    this.storage = storage;
    this.server = createSyncServer({
      storage,
      logger: silent,
      serverId: `sim-${++this.#serverEpoch}`,
      // Default limits and clock drift unless the run's config sets small ones.
      limits: { ...(this.config.limits ?? {}), relayBatch: 50, snapshotChunk: 7 },
      // Garbage collection often (virtual time), so that runs collect and re-stamp.
      gc: { intervalMs: this.config.gcIntervalMs },
    });
    this.network.server = this.server;
  }

  /** Like SIGKILL: connections vanish, nothing more is stored; a new process starts later on the same file. */
  crashServer(why: string): void {
    const { server, storage } = this;
    if (!server || !storage) return;
    this.stats.serverCrashes++;
    this.hash.update(`crash ${why}`);
    storage.dead = true;
    this.server = undefined;
    this.storage = undefined;
    this.network.serverDied();
    this.#background.track(server.close());
    this.#restartLater(this.rng.between(100, 20_000));
  }

  restartServer(): void {
    const { server } = this;
    if (!server) return;
    this.stats.serverRestarts++;
    this.server = undefined;
    this.network.server = undefined;
    this.#background.track(
      server.close().then(() => {
        this.network.epoch++;
      }),
    );
    this.#restartLater(this.rng.between(100, 5_000));
  }

  #restartLater(ms: number): void {
    if (this.#starting) return;
    this.#starting = true;
    this.#background.track(
      new Promise<void>((resolve) => setTimeout(resolve, ms)).then(async () => {
        // The old process must be gone before a new one opens the file.
        while (this.#background.size > 1) await new Promise((resolve) => setTimeout(resolve, 50));
        this.#starting = false;
        if (!this.server) this.startServer();
      }),
    );
  }

  // ---- replicas -------------------------------------------------------------------

  async openReplica(slot: Slot): Promise<void> {
    const replica = await createReplica({
      name: slot.name,
      schema: SCHEMA,
      storage: indexedDbStorage({ indexedDB: slot.factory, IDBKeyRange }),
      tabs: false,
      now: () => Date.now() + slot.skew,
      randomBytes: (n) => slot.rng.bytes(n),
      onError: (error) => {
        // A retired id (the 'retire' action): the replica rejoins under a new one and says so; so it does of
        // each unsynced change it could not write again (its record was deleted meanwhile).
        if (error.name === 'SyncError' && (error as { code?: string }).code === 'replica_retired' && slot.replica) slot.ids.add(slot.replica.id);
        else this.fail(`r${slot.index} reported an error: ${error.message}`);
      },
      // Default backoff and ping: the replica as apps run it, its Connection over the simulated sockets.
      sync: {
        url: 'ws://sim/sync',
        spaces: slot.spaces,
        connect: webSocketConnect(() => ['ws://sim/sync'], this.network.socketFactory(slot.name)),
        random: () => slot.rng.next(),
        ...(this.config.batchSize !== undefined ? { batchSize: this.config.batchSize } : {}),
      },
    });
    slot.ids.add(replica.id);
    const port = portOf(replica);
    // What a rejoin sets aside and writes again (issue 19): its puts are checked against the log in check().
    const reapply =
      this.bug === 'rejoin-forgets'
        ? (space: SpaceId) => storageOf(replica).transaction('readwrite', async (tx) => {
            const had = await tx.getMeta<Change[]>(`aside\u0000${space}`);
            await tx.setMeta(`aside\u0000${space}`, undefined);
            return had === undefined ? undefined : { reapplied: 0, dropped: [] };
          })
        : port.reapply.bind(port);
    port.reapply = async (space) => {
      const aside = await storageOf(replica).transaction('readonly', (tx) => tx.getMeta<Change[]>(`aside\u0000${space}`));
      const done = await reapply(space);
      if (done && aside) {
        this.stats.setAside += aside.length;
        this.stats.rewritten += done.reapplied;
        for (const c of aside) if (c.op === 'put') slot.rewritten.push({ space, collection: c.collection, id: c.id, fields: c.fields, from: c.replica });
      }
      return done;
    };
    // What the replica applied, as it applies it (inside any planted bug, which wraps this).
    const track = <A extends unknown[]>(apply: (...args: A) => Promise<void>, latest: (...args: A) => HlcString | undefined) => async (...args: A) => {
      slot.applyEpoch++;
      try {
        await apply(...args);
        slot.maxApplied = maxHlc(slot.maxApplied, latest(...args));
      } finally {
        slot.applyEpoch++;
      }
    };
    port.applyRemote = track(port.applyRemote.bind(port), (changes) => changes.reduce<HlcString | undefined>((m, c) => maxHlc(m, c.hlc), undefined));
    port.applySnapshot = track(port.applySnapshot.bind(port), (records) => records.reduce<HlcString | undefined>((m, r) => maxHlc(m, latestStamp(r.state)), undefined));
    if (this.bug === 'skip-remote-change') {
      const apply = port.applyRemote.bind(port);
      port.applyRemote = (changes, options) => apply(changes.length >= 2 && this.bugRng.chance(0.3) ? changes.slice(1) : changes, options);
    }
    // On a live connection every push is answered (acknowledged or refused): one left unanswered until
    // the engine's safety net drops the connection is a liveness bug.
    replica.sync?.onStatus((status) => {
      if (status.error?.message.includes('a push went unanswered')) this.fail(`r${slot.index}: ${status.error.message}`);
    });
    slot.replica = replica;
  }

  enqueue(slot: Slot, what: string, task: (replica: Replica) => Promise<void>): void {
    enqueue(slot, what, task, (message) => this.fail(message));
  }

  async applyOp(slot: Slot, replica: Replica, space: string, op: Op): Promise<void> {
    const options = { space };
    switch (op.kind) {
      case 'put': {
        const fields = op.blob === undefined ? op.fields : { ...op.fields, blob: 'b'.repeat(op.blob) };
        if (op.blob !== undefined && op.blob > MAX_CHANGE_BYTES) {
          // Past the documented maximum: refused at write time, and nothing is written.
          const before = await portOf(replica).lastSeq(space as SpaceId);
          const error = await replica.put(op.collection, op.id, fields, options).then(
            () => undefined,
            (e: unknown) => e,
          );
          if (!(error instanceof ReplicaError) || error.code !== 'too_large') throw new Failure(`a put of ${op.blob} characters was not refused with too_large: ${String(error)}`);
          if ((await portOf(replica).lastSeq(space as SpaceId)) !== before) throw new Failure('a refused put took a seq');
          this.stats.tooLarge++;
          return;
        }
        return this.#write(slot, replica, space, describeOp(op), () => replica.put(op.collection, op.id, fields, options), [[op.collection, op.id, fields, true]]);
      }
      case 'patch': {
        const patch: Record<string, Json | undefined> = {};
        for (const [k, v] of Object.entries(op.fields)) patch[k] = v === null ? undefined : v;
        return this.#write(slot, replica, space, describeOp(op), () => replica.patch(op.collection, op.id, patch, options), [[op.collection, op.id, patch, false]]);
      }
      case 'delete':
        return this.#write(slot, replica, space, describeOp(op), () => replica.delete(op.collection, op.id, options), [[op.collection, op.id, undefined, false]]);
      case 'text':
      case 'map':
        return editCrdt(replica, space, op);
      case 'burst':
        for (const sub of op.ops) await this.applyOp(slot, replica, space, sub);
        return;
      case 'batch': {
        const patchOf = (fields: Record<string, Json | null>) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v === null ? undefined : v]));
        // What each record must read as after the batch: its last write in the batch (earlier ones of a record are not checked).
        const last = new Map<string, Expectation>();
        for (const sub of op.ops) {
          const key = `${sub.collection}\u0000${sub.id}`;
          if (sub.kind === 'put') last.set(key, [sub.collection, sub.id, sub.fields, true]);
          else if (sub.kind === 'delete') last.set(key, [sub.collection, sub.id, undefined, false]);
          else if (!last.has(key)) last.set(key, [sub.collection, sub.id, patchOf(sub.fields), false]);
          else last.delete(key); // a patch after another write of the record: their sum, not checked here
        }
        return this.#write(
          slot,
          replica,
          space,
          describeOp(op),
          () =>
            replica.batch((b) => {
              for (const sub of op.ops) {
                if (sub.kind === 'put') b.put(sub.collection, sub.id, sub.fields, options);
                else if (sub.kind === 'delete') b.delete(sub.collection, sub.id, options);
                else b.patch(sub.collection, sub.id, patchOf(sub.fields), options);
              }
            }),
          [...last.values()],
        );
      }
    }
  }

  /**
   * Runs a local write and checks causality and read-your-writes around it: its
   * changes are stamped after everything the replica had applied before it
   * (checked against the log in check()), and a read right after it returns it
   * (unless a remote change was applied meanwhile, which may supersede it).
   */
  async #write(slot: Slot, replica: Replica, space: string, what: string, write: () => Promise<void>, expect: readonly Expectation[]): Promise<void> {
    const port = portOf(replica);
    const floor = slot.maxApplied;
    const epoch = slot.applyEpoch;
    const from = (await port.lastSeq(space as SpaceId)) + 1;
    const id = replica.id;
    await write();
    const to = await port.lastSeq(space as SpaceId);
    // Seqs are per id: a write during a rejoin (a retirement) is checked by the log's other checks.
    if (replica.id === id) slot.writes.push({ space, replica: id, from, to, floor, what });
    const reads = await Promise.all(expect.map(([collection, id]) => replica.get(collection, id, { space })));
    if (slot.applyEpoch !== epoch) return;
    expect.forEach(([collection, id, fields, whole], i) => {
      const row = reads[i];
      const label = `r${slot.index} read ${space} ${collection}/${id} right after writing it (${what})`;
      if (fields === undefined) {
        if (row !== undefined) this.fail(`${label}: expected it deleted, got ${canonical(row.value)}`);
        return;
      }
      if (row === undefined) return this.fail(`${label}: expected ${canonical(fields as Json)}, got nothing`);
      for (const [name, value] of Object.entries(fields)) {
        const got = row.value[name];
        if (value === undefined ? got !== undefined : canonical(got ?? null) !== canonical(value)) this.fail(`${label}: field ${name} is ${canonical(got ?? null)}, expected ${canonical(value ?? null)}`);
      }
      if (whole) {
        const crdt = new Set(Object.keys((SCHEMA as Record<string, { crdt?: Record<string, string> }>)[collection]?.crdt ?? {}));
        for (const name of Object.keys(row.value)) if (!Object.hasOwn(fields, name) && !crdt.has(name)) this.fail(`${label}: field ${name} survived a put`);
      }
    });
    this.stats.readYourWrites += expect.length;
  }

  act(action: Action): void {
    this.hash.update(`${this.time.now} ${describe(action)}`);
    if (action.t !== 'op' && action.t !== 'wait') this.stats.faults++;
    switch (action.t) {
      case 'op': {
        const slot = this.slots[action.replica];
        if (!slot) return;
        this.stats.ops++;
        this.enqueue(slot, describe(action), (r) => this.applyOp(slot, r, action.space, action.op));
        return;
      }
      case 'partition':
        this.network.partition(
          action.replicas.map((i) => `r${i}`),
          action.mode,
        );
        return;
      case 'heal':
        this.network.heal();
        return;
      case 'cut':
        this.network.cutClient(`r${action.replica}`, action.mode);
        return;
      case 'restart-replica': {
        const slot = this.slots[action.replica];
        if (!slot) return;
        this.stats.replicaRestarts++;
        this.enqueue(slot, 'restart', async (r) => {
          await r.close();
          slot.replica = undefined;
          await this.openReplica(slot);
        });
        return;
      }
      case 'wipe-replica': {
        const slot = this.slots[action.replica];
        if (!slot) return;
        this.stats.replicaRestarts++;
        this.enqueue(slot, 'wipe', async (r) => {
          await r.close();
          // A new device: a fresh database (and replica id) that bootstraps from a snapshot. What the
          // old one had not pushed is gone with it; the checks follow the new replica.
          slot.replica = undefined;
          slot.factory = new IDBFactory();
          slot.writes.length = 0;
          slot.rewritten.length = 0; // written again by the lost device, maybe not pushed: gone with it
          slot.maxApplied = undefined;
          await this.openReplica(slot);
        });
        return;
      }
      case 'restart-server':
        this.restartServer();
        return;
      case 'crash-server':
        this.crashServer('at a random moment');
        return;
      case 'crash-after-store':
        if (this.storage) this.storage.crashAfterStore = true;
        return;
      case 'compact': {
        const { server, storage } = this;
        if (!server || !storage) return;
        server.compact(action.keepLast).catch((error: unknown) => {
          if (!storage.dead) this.fail(`compaction failed: ${String(error)}`);
        });
        return;
      }
      case 'retire': {
        const { server, storage } = this;
        const r = this.slots[action.replica]?.replica;
        if (!server || !storage || !r) return;
        this.stats.retired++;
        server.retire(r.id).catch((error: unknown) => {
          if (!storage.dead) this.fail(`retiring r${action.replica} failed: ${String(error)}`);
        });
        return;
      }
      case 'clock-step': {
        const slot = this.slots[action.replica];
        if (slot) slot.skew = Math.max(-MAX_SKEW_MS, Math.min(MAX_SKEW_MS, slot.skew + action.ms));
        return;
      }
      case 'wait':
        return;
    }
  }

  /** Runs virtual time until the promise settles (bounded). */
  drive<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
    return drive(this.time, promise, limitMs);
  }

  // ---- quiescence and checks ------------------------------------------------------------

  async quiesce(): Promise<void> {
    this.network.heal();
    if (this.storage) this.storage.crashAfterStore = false;
    const start = this.time.now;
    // Every queued operation and restart finishes.
    while (this.slots.some((s) => s.busy > 0) || this.#background.size > 0) {
      if (this.time.now - start > SETTLE_LIMIT_MS) throw new Failure('operations or restarts still pending 30 min after the network healed');
      await this.time.runFor(100);
    }
    if (!this.server) this.startServer();
    // Then the system goes quiet: everything acknowledged and relayed, twice in a row a second apart (one
    // look reads the replicas one after the other while virtual time runs: a replica read early can be at
    // a head that grows later in the same look, as the regions simulation found).
    for (let quiet = 0; quiet < 2; ) {
      quiet = (await this.#quiet()) ? quiet + 1 : 0;
      if (quiet === 2) break;
      if (this.time.now - start > QUIESCE_LIMIT_MS) throw new Failure(`not quiescent 60 min after the network healed: ${await this.#why()}`);
      await this.time.runFor(1_000);
    }
  }

  async #quiet(): Promise<boolean> {
    return (await this.#why()) === '';
  }

  async #why(): Promise<string> {
    const storage = this.storage;
    if (!storage) return 'server down';
    for (const slot of this.slots) {
      const r = slot.replica;
      if (!r) return `r${slot.index} closed`;
      const status = r.sync?.status;
      if (status?.state !== 'synced' || status.pending > 0) return `r${slot.index} ${status?.state} pending ${status?.pending} error ${status?.error?.code ?? '-'}`;
      for (const space of slot.spaces) {
        const [{ upTo: position }, head] = await Promise.all([this.drive(portOf(r).position(space)), storage.head(space)]);
        if (position !== head) return `r${slot.index} at ${position} of ${head} in ${space}`;
      }
    }
    return '';
  }

  async check(): Promise<void> {
    const storage = (this.storage as SimStorage).inner;
    const logs = new Map<string, Change[]>();
    for (const space of this.config.spaces) {
      // The full log is the archive of commits; what compaction left must be its suffix, byte for byte.
      const archived = this.#archive.get(space) ?? new Map<number, Change>();
      const full: Change[] = [];
      for (let pos = 1; pos <= archived.size; pos++) {
        const change = archived.get(pos);
        if (!change) {
          this.fail(`log of ${space} has no position ${pos} (${archived.size} committed)`);
          break;
        }
        full.push(change);
      }
      const [head, horizon, entries] = await Promise.all([storage.head(space as SpaceId), storage.horizon(space as SpaceId), storage.readLog(space as SpaceId, 0, 1_000_000)]);
      if (head !== archived.size) this.fail(`head of ${space} is ${head}; ${archived.size} changes were committed`);
      entries.forEach((e, i) => {
        if (e.pos !== horizon + i + 1) this.fail(`log of ${space} has position ${e.pos} at index ${i} (horizon ${horizon})`);
        else if (!Buffer.from(encodeChange(e.change)).equals(encodeChange(full[e.pos - 1] as Change))) this.fail(`log of ${space} at ${e.pos} differs from what was committed there`);
      });
      logs.set(space, full);
      this.stats.changes += full.length;
    }

    // Nothing written is lost: each replica's seqs 1..counter are in the log exactly once,
    // and every acknowledged seq is among them.
    for (const slot of this.slots) {
      const r = slot.replica as Replica;
      for (const space of slot.spaces) {
        const counter = (await this.drive(storageOf(r).transaction('readonly', (tx) => tx.getMeta<number>(`seq\u0000${space}`)))) ?? 0;
        const mine = (logs.get(space) ?? []).filter((c) => c.replica === r.id);
        const seqs = mine.map((c) => c.seq).sort((a, b) => a - b);
        const contiguous = seqs.length === counter && seqs.every((s, i) => s === i + 1);
        if (!contiguous) this.fail(`r${slot.index} wrote seqs 1..${counter} in ${space}; the log holds [${seqs.join(',')}]`);
        const acked = this.acked.get(`${r.id}\u0000${space}`) ?? 0;
        if (acked > seqs.length) this.fail(`r${slot.index} was told seq ${acked} of ${space} is stored; the log holds ${seqs.length}`);
        // HLCs never go backwards on a replica, whatever its clock did.
        for (let i = 1; i < mine.length; i++) {
          const a = mine[i - 1] as Change;
          const b = mine[i] as Change;
          if (b.seq > a.seq && !(b.hlc > a.hlc)) this.fail(`r${slot.index} stamped seq ${b.seq} (${b.hlc}) not after seq ${a.seq} (${a.hlc}) in ${space}`);
        }
        const outbox = await this.drive(storageOf(r).transaction('readonly', (tx) => tx.countOutbox(space as SpaceId)));
        if (outbox !== 0) this.fail(`r${slot.index} still has ${outbox} outbox entries for ${space}`);
        // Causality: each local write is stamped after every timestamp its replica had applied before it
        // (re-stamped changes too), so a causally later write wins; whatever the replica's clock said.
        const bySeq = new Map(mine.map((c) => [c.seq, c]));
        for (const write of slot.writes) {
          if (write.space !== space || write.replica !== r.id || write.floor === undefined) continue;
          for (let seq = write.from; seq <= write.to; seq++) {
            const change = bySeq.get(seq);
            if (change && !(change.hlc > write.floor)) this.fail(`r${slot.index} stamped seq ${seq} of ${space} (${write.what}) ${change.hlc}, not after ${write.floor}, which it had applied before`);
          }
        }
      }
      // Ids it had before a rejoin: what they stored is each a prefix 1..n, and holds every acknowledged seq.
      for (const id of slot.ids) {
        if (id === r.id) continue;
        for (const space of slot.spaces) {
          const seqs = (logs.get(space) ?? []).filter((c) => c.replica === id).map((c) => c.seq).sort((a, b) => a - b);
          if (!seqs.every((s, i) => s === i + 1)) this.fail(`r${slot.index}'s earlier id ${id} has seqs [${seqs.join(',')}] in ${space}`);
          const acked = this.acked.get(`${id}\u0000${space}`) ?? 0;
          if (acked > seqs.length) this.fail(`r${slot.index}'s earlier id ${id} was told seq ${acked} of ${space} is stored; the log holds ${seqs.length}`);
        }
      }
      // A retired replica's offline writes are there afterwards: every put it set aside, written again by a later id.
      for (const put of slot.rewritten) {
        const found = (logs.get(put.space) ?? []).some(
          (c) => c.op === 'put' && c.replica !== put.from && slot.ids.has(c.replica) && c.collection === put.collection && c.id === put.id && canonical(c.fields) === canonical(put.fields as Json),
        );
        if (!found) this.fail(`r${slot.index} set aside a put of ${put.space} ${put.collection}/${put.id} when it rejoined; no later id of it wrote it again`);
      }
      const status = r.sync?.status;
      // A rejoin accounts for every change it set aside: written again, dropped (its record was deleted), or a delete of a record already gone.
      const rejoined = status?.rejoined;
      if (rejoined && rejoined.reapplied + rejoined.dropped.length > rejoined.aside) this.fail(`r${slot.index} rejoined with ${rejoined.aside} changes set aside, and wrote ${rejoined.reapplied} again and dropped ${rejoined.dropped.length}`);
      if (rejoined && rejoined.id !== r.id) this.fail(`r${slot.index} rejoined as ${rejoined.id} but is ${r.id}`);
      if (status?.stoppedSpaces?.length) this.fail(`r${slot.index} stopped spaces: ${status.stoppedSpaces.map((e) => `${e.space} ${e.code}`).join(', ')}`);
    }
    const stamps = new Map<string, string>();
    for (const log of logs.values()) {
      for (const c of log) {
        const other = stamps.get(c.hlc);
        if (other !== undefined) this.fail(`HLC ${c.hlc} stamps two changes (${other} and ${c.replica}:${c.seq})`);
        stamps.set(c.hlc, `${c.replica}:${c.seq}`);
        // Stamps follow the server's time: none is further ahead of it than the server accepts.
        if (hlcWall(c.hlc) > this.time.now + DEFAULT_MAX_CLOCK_DRIFT) this.fail(`HLC ${c.hlc} is ${hlcWall(c.hlc) - this.time.now} ms ahead of the server's clock`);
      }
    }

    // The server's own records show what the oracle computes (it never collects): nothing the oracle
    // says is deleted exists there, and nothing it says exists is gone.
    for (const space of this.config.spaces) {
      const expected = expectedState(logs.get(space) ?? []);
      const records = await storage.snapshotPage(space as SpaceId, undefined, 1_000_000);
      const held = new Map(records.map((r) => [`${r.collection}\u0000${r.id}`, materialize(r.state)]));
      for (const [key, want] of expected) {
        const exists = held.get(key)?.exists ?? false;
        if (want.exists !== exists && !MERGE_COLLECTIONS.has(key.split('\u0000')[0] as string)) {
          this.fail(`the server's ${space} ${key.replace('\u0000', '/')}: expected ${want.exists ? 'it to exist' : 'it deleted'}, the server ${exists ? 'has it' : 'has not'}`);
        }
      }
    }

    // Convergence: every replica of a space holds the same states, values and siblings, and they are the expected ones.
    const retired = new Set<string>();
    for (const slot of this.slots) for (const id of slot.ids) if (await storage.isRetired(id)) retired.add(id);
    // Every replica heard of every retirement (after it, or at its next hello) and dropped what no sibling needs.
    for (const slot of this.slots) {
      for (const space of slot.spaces) {
        const left = await this.drive(retiredEntries(slot.replica as Replica, space, retired));
        if (left.length > 0) this.fail(`r${slot.index} still holds retired replicas' merge-context entries in ${space}: ${left.slice(0, 3).join(', ')}`);
      }
    }
    for (const space of this.config.spaces) {
      const holders = this.slots.filter((slot) => slot.spaces.includes(space as SpaceId)).map((slot) => ({ label: `r${slot.index}`, replica: slot.replica as Replica }));
      const states = await checkConvergence(space, logs.get(space) ?? [], holders, (m) => this.fail(m), (p) => this.drive(p), retired);
      for (const dump of states) this.hash.update(dump);
    }
  }

  async shutdown(): Promise<void> {
    try {
      const closing = [...this.slots.map((s) => s.replica?.close()), this.server?.close()].filter((p): p is Promise<void> => p !== undefined);
      await this.drive(Promise.all(closing), 120_000).catch(() => undefined);
    } finally {
      this.time.uninstall();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const world = new World(options.seed, options.bug);
  const plan = options.plan ? [...options.plan] : makePlan(new Rng(options.seed).fork('plan'), world.config, options.steps ?? 80);
  const unplant = options.bug ? plantInEngine(options.bug) : () => undefined;
  world.time.install();
  try {
    world.startServer();
    for (const slot of world.slots) await world.drive(world.openReplica(slot));
    for (const action of plan) {
      world.act(action);
      await world.time.runFor(action.t === 'wait' ? action.ms : 0);
      if (world.time.crashes.length > 0) break;
    }
    await world.quiesce();
    await world.check();
  } catch (error) {
    world.fail(error instanceof Failure ? error.message : `the run threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    for (const crash of world.time.crashes) world.fail(`a timer callback threw: ${crash instanceof Error ? (crash.stack ?? crash.message) : String(crash)}`);
    world.stats.virtualMs = world.time.now - T0;
    Object.assign(world.stats, { frames: world.network.stats.frames, duplicated: world.network.stats.duplicated, cuts: world.network.stats.cuts });
    await world.shutdown();
    unplant();
  }
  return {
    seed: options.seed,
    ok: world.failures.length === 0,
    failures: world.failures,
    config: world.config,
    plan,
    digest: world.hash.digest('hex'),
    stats: world.stats,
  };
}

/**
 * Shrinks a failing plan: removes chunks of actions while the run still fails
 * (any failure), halving the chunk size down to single actions. Bounded by
 * `maxRuns` replays.
 */
export async function shrink(seed: number, plan: readonly Action[], options: { bug?: PlantedBug; maxRuns?: number } = {}): Promise<{ plan: Action[]; runs: number; result: SimResult | undefined }> {
  let current = [...plan];
  let runs = 0;
  let last: SimResult | undefined;
  const maxRuns = options.maxRuns ?? 200;
  for (let size = Math.ceil(current.length / 2); size >= 1 && runs < maxRuns; size = size === 1 ? 0 : Math.ceil(size / 2)) {
    for (let start = 0; start < current.length && runs < maxRuns; ) {
      const candidate = [...current.slice(0, start), ...current.slice(start + size)];
      runs++;
      const result = await runSimulation({ seed, plan: candidate, ...(options.bug ? { bug: options.bug } : {}) });
      if (!result.ok) {
        current = candidate;
        last = result;
      } else start += size;
    }
  }
  return { plan: current, runs, result: last };
}

export function emptyStats(): SimStats {
  return { ops: 0, faults: 0, serverCrashes: 0, serverRestarts: 0, replicaRestarts: 0, retired: 0, trimmed: 0, setAside: 0, rewritten: 0, frames: 0, duplicated: 0, cuts: 0, changes: 0, virtualMs: 0, tooLarge: 0, limitRefusals: 0, readYourWrites: 0 };
}

/** A record's expected read after a write: fields (undefined: deleted), and whether they are the whole value (a put). */
type Expectation = readonly [collection: string, id: string, fields: Readonly<Record<string, Json | undefined>> | undefined, whole: boolean];

function describeOp(op: Op): string {
  return op.kind === 'batch' || op.kind === 'burst' ? `${op.kind} of ${op.ops.length}` : `${op.kind}${'collection' in op ? ` ${op.collection}/${op.id}` : ''}`;
}

/** A welcome without its limits, as a protocol 2 server sends it. */
function withoutLimits(bytes: Uint8Array): Uint8Array {
  let message;
  try {
    message = decodeDownstream(bytes);
  } catch {
    return bytes;
  }
  if (message.type !== 'welcome') return bytes;
  const { limits: _limits, ...old } = message;
  return encodeDownstream({ ...old, protocol: 2 });
}

/**
 * Plants an engine or clock bug for one run by patching the real classes'
 * prototypes (never a switch in the product code); returns the undo.
 */
function plantInEngine(bug: PlantedBug): () => void {
  if (bug === 'count-only-pushes') {
    const fit = Object.getOwnPropertyDescriptor(Pusher.prototype, 'fit') as PropertyDescriptor;
    Pusher.prototype.fit = function (this: Pusher, space: SpaceId, changes: readonly Change[], frameBytes: number) {
      return (fit.value as Pusher['fit']).call(this, space, changes, Number.MAX_SAFE_INTEGER) ?? (fit.value as Pusher['fit']).call(this, space, changes, frameBytes);
    };
    return () => Object.defineProperty(Pusher.prototype, 'fit', fit);
  }
  if (bug === 'ignore-spaceless-errors') {
    const end = Object.getOwnPropertyDescriptor(Pusher.prototype, 'end') as PropertyDescriptor;
    Pusher.prototype.end = function (this: Pusher, space?: SpaceId) {
      return space === undefined ? [] : (end.value as Pusher['end']).call(this, space);
    };
    return () => Object.defineProperty(Pusher.prototype, 'end', end);
  }
  if (bug === 'hlc-ignores-remote') {
    const receive = Object.getOwnPropertyDescriptor(Hlc.prototype, 'receive') as PropertyDescriptor;
    Hlc.prototype.receive = function (this: Hlc, remote) {
      return this.aheadBy(remote) > 0 ? this.last : (receive.value as Hlc['receive']).call(this, remote);
    };
    return () => Object.defineProperty(Hlc.prototype, 'receive', receive);
  }
  return () => undefined;
}

export function formatFailure(result: SimResult, shrunk?: { plan: readonly Action[]; result: SimResult | undefined }): string {
  const lines = [
    `simulation failed: seed ${result.seed} (replay: npm run sim -- --seed ${result.seed})`,
    `config: ${JSON.stringify(result.config)}`,
    ...result.failures.slice(0, 10).map((f) => `  ✗ ${f}`),
  ];
  if (result.failures.length > 10) lines.push(`  … ${result.failures.length - 10} more`);
  if (shrunk) {
    lines.push(`shortest failing plan found (${shrunk.plan.length} of ${result.plan.length} actions):`);
    lines.push(...shrunk.plan.map((a, i) => `  ${i + 1}. ${describe(a)}`));
    if (shrunk.result) lines.push(...shrunk.result.failures.slice(0, 3).map((f) => `  → ${f}`));
  }
  return lines.join('\n');
}

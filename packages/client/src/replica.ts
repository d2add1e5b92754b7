/**
 * The replica: a local database that is the leader for its own writes. Every
 * read and write is local; a write commits the record, its index keys, an outbox
 * entry (one per space of the transaction), the space's sequence counter and the
 * clock in one transaction.
 */
import {
  ClockDriftError,
  formatTimestamp,
  Hlc,
  isFields,
  isRecordId,
  isSpaceId,
  newReplicaId,
  spaceId as toSpaceId,
  type Change,
  type Fields,
  type HlcString,
  type Json,
  type ReplicaId,
  type SpaceId,
  type Version,
  type SnapshotRecord,
  joinRecordStates,
} from '@syncline/core';
import type * as Y from 'yjs';
import { CrdtDocs, type CrdtTarget } from './crdt-docs.js';
import { RecordCache } from './record-cache.js';
import { ReplicaError } from './errors.js';
import { LiveQueries, type QueryCallback } from './live-query.js';
import { collectionOf, countQuery, runQuery, toRow, type Query, type Row } from './query.js';
import { checkSchema, type CollectionDef, type Schema } from './schema.js';
import { openCollections } from './schema-migration.js';
import { indexedDbStorage } from './storage/indexeddb-storage.js';
import type { Storage, StorageFactory, StorageTx, StoredRecord } from './storage/types.js';
import { defaultTabs, isTabMessage, type ChannelLike, type LocksLike, type TabMessage, type TabsOptions } from './tabs.js';
import { startSync, type SyncEngine, type SyncOptions } from './sync/sync-engine.js';
import { applyToStored, buildChange, storedRecord, type WriteOp } from './write.js';

export interface ReplicaOptions<S extends Schema = Schema> {
  /** Database name; one replica (and one replica id) per name and origin. */
  readonly name: string;
  readonly schema: S;
  /** Default: IndexedDB. */
  readonly storage?: StorageFactory;
  /** Space of writes that name none. Default "default". */
  readonly space?: string;
  /** Physical clock (ms). Default Date.now. */
  readonly now?: () => number;
  /** Random bytes for the replica id. Default crypto.getRandomValues. */
  readonly randomBytes?: (n: number) => Uint8Array;
  /** Remote timestamps further ahead of this clock are not merged into it. Default 5 minutes. */
  readonly maxClockDrift?: number;
  /** Multi-tab coordination; false for a replica that shares its database with no one. */
  readonly tabs?: TabsOptions | false;
  /** Non-fatal problems (a live query that failed, a remote clock far ahead). */
  readonly onError?: (error: Error) => void;
  /** Sync with a Syncline server; only the leader tab connects. See replica.sync. */
  readonly sync?: SyncOptions;
}

export interface WriteOptions {
  readonly space?: string;
}

type Patch = Readonly<Record<string, Json | undefined>>;

/** Collects writes for one transaction (replica.batch). */
export interface Batch {
  put(collection: string, id: string, value: Fields, options?: WriteOptions): void;
  patch(collection: string, id: string, patch: Patch, options?: WriteOptions): void;
  delete(collection: string, id: string, options?: WriteOptions): void;
}

/** What changed in one committed transaction; the sync engine listens to it. */
export interface CommitEvent {
  readonly local: boolean;
  readonly records: ReadonlyArray<readonly [string, string, string]>;
  readonly outbox: readonly string[];
}

const META_REPLICA = 'replica';
const META_CLOCK = 'clock';
const seqKey = (space: string): string => `seq\u0000${space}`;

/**
 * Most changes in one outbox entry. A transaction's changes of a space go into one
 * entry (a request per entry, not per change); bounding it keeps reading a push's
 * worth of changes and rewriting a partly acknowledged entry small.
 */
const OUTBOX_ENTRY_MAX = 1_000;

/** A transaction's changes (seqs ascending per space) as addOutbox arguments: per space, chunks of contiguous seqs. */
function outboxEntries(changes: readonly Change[]): Change[][] {
  const bySpace = new Map<SpaceId, Change[][]>();
  for (const change of changes) {
    let chunks = bySpace.get(change.space);
    if (!chunks) bySpace.set(change.space, (chunks = [[]]));
    let chunk = chunks[chunks.length - 1] as Change[];
    if (chunk.length === OUTBOX_ENTRY_MAX) chunks.push((chunk = []));
    chunk.push(change);
  }
  return [...bySpace.values()].flat();
}

/** Stores records in one call where the adapter can, one call each where it cannot. */
function putAll(tx: StorageTx, records: readonly StoredRecord[], options?: { readonly handOver?: boolean }): Promise<unknown> {
  return tx.putRecords ? tx.putRecords(records, options) : Promise.all(records.map((record) => tx.putRecord(record, options)));
}

/** A call's writes waiting for the next group commit. */
interface QueuedWrite {
  readonly ops: readonly WriteOp[];
  readonly resolve: (changes: Change[]) => void;
  readonly reject: (error: unknown) => void;
}

/** The most writes one group commit takes; a call larger than this still commits whole. */
const GROUP_COMMIT_MAX_OPS = 5_000;

function defaultRandomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export class Replica<S extends Schema = Schema> {
  readonly id: ReplicaId;
  readonly name: string;
  readonly defaultSpace: SpaceId;
  readonly #storage: Storage;
  readonly #collections: ReadonlyMap<string, CollectionDef>;
  readonly #clock: Hlc;
  readonly #live: LiveQueries;
  readonly #crdt: CrdtDocs;
  readonly #onError: (error: Error) => void;
  readonly #listeners = new Set<(event: CommitEvent) => void>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #queued: QueuedWrite[] = [];
  #draining = false;
  readonly #tabId: string;
  readonly #now: () => number;
  #channel: ChannelLike | undefined;
  #sync: SyncEngine | undefined;
  #closed = false;
  #leader = false;
  readonly #leaderListeners = new Set<(leader: boolean) => void>();
  #releaseLeadership: () => void = () => undefined;

  /** @internal use createReplica() */
  constructor(init: {
    options: ReplicaOptions<S>;
    storage: Storage;
    collections: ReadonlyMap<string, CollectionDef>;
    id: ReplicaId;
    clock: Hlc;
    tabId: string;
    now: () => number;
    randomBytes: (n: number) => Uint8Array;
  }) {
    const { options } = init;
    this.name = options.name;
    this.id = init.id;
    this.defaultSpace = toSpaceId(options.space ?? 'default');
    this.#storage = init.storage;
    this.#collections = init.collections;
    this.#clock = init.clock;
    this.#tabId = init.tabId;
    this.#now = init.now;
    this.#onError = options.onError ?? ((error) => console.error('[syncline]', error));
    this.#live = new LiveQueries((q) => this.query(q), (e) => this.#onError(e as Error));
    this.#crdt = new CrdtDocs(
      (target, update, type) => this.#commit([{ kind: 'crdt', ...target, type, update }]).then(() => undefined),
      (e) => this.#onError(e as Error),
      () => new DataView(init.randomBytes(4).buffer).getUint32(0),
    );
    this.#storage.onVersionChange = () => {
      this.#onError(new ReplicaError('closed', `database of replica "${this.name}" was upgraded or deleted by another tab; reopen the replica`));
      void this.close();
    };
    const tabs = options.tabs === false ? undefined : (options.tabs ?? defaultTabs());
    this.#electLeader(tabs?.locks);
    if (tabs?.channel) {
      this.#channel = tabs.channel(`syncline:${this.name}`);
      this.#channel.onmessage = (event) => {
        if (isTabMessage(event.data) && event.data.from !== this.#tabId) this.#onOtherTab(event.data);
      };
    }
  }

  /** The sync engine, when createReplica was given `sync` (status, events). */
  get sync(): SyncEngine | undefined {
    return this.#sync;
  }

  /** @internal The physical clock the replica stamps its writes with (createReplica's `now`). */
  clockNow(): number {
    return this.#now();
  }

  /** @internal */
  attachSync(engine: SyncEngine): void {
    this.#sync = engine;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get collections(): ReadonlyMap<string, CollectionDef> {
    return this.#collections;
  }

  /** @internal the storage, for the sync engine */
  get storage(): Storage {
    return this.#storage;
  }

  /** The clock's last timestamp. */
  get lastTimestamp(): HlcString {
    return formatTimestamp(this.#clock.last);
  }

  // ---- writes -------------------------------------------------------------

  put(collection: string, id: string, value: Fields, options?: WriteOptions): Promise<void> {
    return this.batch((b) => b.put(collection, id, value, options));
  }

  /** Sets the named fields; a field given as undefined is removed. */
  patch(collection: string, id: string, patch: Patch, options?: WriteOptions): Promise<void> {
    return this.batch((b) => b.patch(collection, id, patch, options));
  }

  delete(collection: string, id: string, options?: WriteOptions): Promise<void> {
    return this.batch((b) => b.delete(collection, id, options));
  }

  /** Runs every write the callback makes in one transaction: all of them commit, or none. */
  async batch(fn: (batch: Batch) => void): Promise<void> {
    const ops: WriteOp[] = [];
    fn({
      put: (collection, id, value, options) => ops.push({ kind: 'put', ...this.#target(collection, id, options), value: this.#checkValue(collection, value) }),
      patch: (collection, id, patch, options) => ops.push({ kind: 'patch', ...this.#target(collection, id, options), patch: this.#checkPatch(collection, patch) }),
      delete: (collection, id, options) => ops.push({ kind: 'delete', ...this.#target(collection, id, options) }),
    });
    if (ops.length === 0) return;
    await this.#validate(ops);
    await this.#commit(ops);
  }

  #target(collection: string, id: string, options?: WriteOptions): { collection: string; id: string; space: SpaceId } {
    this.#checkOpen();
    collectionOf(this.#collections, collection);
    if (!isRecordId(id)) throw new ReplicaError('invalid_argument', `record id must be a non-empty string of at most 512 UTF-16 units without lone surrogates, got ${JSON.stringify(id)}`);
    const space = options?.space ?? this.defaultSpace;
    if (!isSpaceId(space)) throw new ReplicaError('invalid_argument', `invalid space id ${JSON.stringify(space)}`);
    return { collection, id, space };
  }

  #checkValue(collection: string, value: Fields): Fields {
    if (!isFields(value)) throw new ReplicaError('invalid_argument', `value for "${collection}" must be a plain object of JSON values`);
    this.#checkNoCrdt(collection, Object.keys(value));
    return value;
  }

  #checkPatch(collection: string, patch: Patch): Patch {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new ReplicaError('invalid_argument', 'patch must be an object');
    for (const name of Object.keys(patch)) {
      const v = patch[name];
      if (v !== undefined && !isFields({ v })) throw new ReplicaError('invalid_argument', `patch field "${name}" is not a JSON value`);
    }
    this.#checkNoCrdt(collection, Object.keys(patch));
    return patch;
  }

  #checkNoCrdt(collection: string, names: string[]): void {
    const def = collectionOf(this.#collections, collection);
    for (const name of names) {
      if (def.crdt.has(name)) throw new ReplicaError('invalid_argument', `"${name}" is a crdt field of "${collection}"; edit it through replica.${def.crdt.get(name)}()`);
    }
  }

  /** Runs collection validators on the value each write would produce. */
  async #validate(ops: readonly WriteOp[]): Promise<void> {
    for (const op of ops) {
      const def = collectionOf(this.#collections, op.collection);
      if (!def.validate || op.kind === 'delete' || op.kind === 'crdt') continue;
      let value: Fields;
      if (op.kind === 'put') value = op.value;
      else {
        const current = await this.get(op.collection, op.id, { space: op.space });
        const merged: Record<string, Json | undefined> = { ...(current?.value ?? {}) };
        for (const name of Object.keys(op.patch)) Object.defineProperty(merged, name, { value: op.patch[name], enumerable: true, writable: true, configurable: true });
        for (const name of Object.keys(merged)) if (merged[name] === undefined || def.crdt.has(name)) delete merged[name];
        value = merged as Fields;
      }
      let result = def.validate['~standard'].validate(value);
      if (result instanceof Promise) result = await result;
      if (result.issues) {
        const issues = result.issues.map((i) => ({ message: i.message, ...(i.path ? { path: i.path.map((p) => (typeof p === 'object' ? p.key : p)) } : {}) }));
        throw new ReplicaError('validation_failed', `"${op.collection}/${op.id}" was not written: ${issues.map((i) => (i.path?.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ')}`, { issues });
      }
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new ReplicaError('closed', `replica "${this.name}" is closed`);
  }

  /**
   * Merges remote timestamps into the clock. Receiving the latest one is enough
   * (every later local timestamp is then above all of them); only when it is too
   * far ahead is each one received, so that the others still count.
   */
  #receiveAll(changes: readonly Change[]): ClockDriftError | undefined {
    let latest: HlcString | undefined;
    for (const change of changes) if (latest === undefined || change.hlc > latest) latest = change.hlc;
    if (latest === undefined) return undefined;
    try {
      this.#clock.receive(latest);
      return undefined;
    } catch (error) {
      if (!(error instanceof ClockDriftError)) throw error;
    }
    let drift: ClockDriftError | undefined;
    for (const change of changes) {
      try {
        this.#clock.receive(change.hlc);
      } catch (error) {
        if (!(error instanceof ClockDriftError)) throw error;
        drift ??= error;
      }
    }
    return drift;
  }

  /** Keeps the in-memory clock at or above what other tabs stored. */
  async #syncClock(tx: StorageTx): Promise<void> {
    const stored = await tx.getMeta<HlcString>(META_CLOCK);
    if (stored !== undefined && stored > formatTimestamp(this.#clock.last)) this.#clock.receive(stored);
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const done = () => this.#pending.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /**
   * Commits one call's writes. Calls made while another commit runs, or in the
   * same tick, share one transaction (group commit): a burst of writes costs one
   * transaction, not one each. Each call stays atomic on its own: a group whose
   * transaction fails is retried one call at a time, so a call fails only for
   * its own reasons.
   */
  #commit(ops: readonly WriteOp[]): Promise<Change[]> {
    this.#checkOpen();
    const done = new Promise<Change[]>((resolve, reject) => this.#queued.push({ ops, resolve, reject }));
    if (!this.#draining) {
      this.#draining = true;
      queueMicrotask(() => void this.#drain());
    }
    return this.#track(done);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queued.length > 0) {
        let size = 0;
        let n = 0;
        while (n < this.#queued.length && (n === 0 || size + (this.#queued[n] as QueuedWrite).ops.length <= GROUP_COMMIT_MAX_OPS)) size += (this.#queued[n++] as QueuedWrite).ops.length;
        const group = this.#queued.splice(0, n);
        if (group.length > 1) {
          try {
            const changes = await this.#commitNow(group.flatMap((entry) => entry.ops));
            let at = 0;
            for (const entry of group) {
              entry.resolve(changes.slice(at, at + entry.ops.length));
              at += entry.ops.length;
            }
            continue;
          } catch {
            // One call's writes may have failed the group: each call alone, in order.
          }
        }
        for (const entry of group) await this.#commitNow(entry.ops).then(entry.resolve, entry.reject);
      }
    } finally {
      this.#draining = false;
    }
  }

  #commitNow(ops: readonly WriteOp[]): Promise<Change[]> {
    const run = this.#storage.transaction('readwrite', async (tx) => {
      const spaces = [...new Set(ops.map((op) => op.space))];
      // Every read is issued before the first await: one round trip, not one per record.
      const [, stored, cache] = await Promise.all([
        this.#syncClock(tx),
        Promise.all(spaces.map((space) => tx.getMeta<number>(seqKey(space)))),
        RecordCache.load(tx, ops),
      ]);
      const seqs = new Map<SpaceId, number>(spaces.map((space, i) => [space, stored[i] ?? 0]));
      const changes: Change[] = [];
      for (const op of ops) {
        const def = collectionOf(this.#collections, op.collection);
        const seq = (seqs.get(op.space) as number) + 1;
        seqs.set(op.space, seq);
        const record = cache.get(op);
        const change = buildChange(op, def, record?.state, this.id, seq, this.#clock.nowString());
        cache.set(applyToStored(def, record, change));
        changes.push(change);
      }
      await Promise.all([
        putAll(tx, cache.changed()),
        ...outboxEntries(changes).map((entry) => tx.addOutbox(entry)),
        ...[...seqs].map(([space, seq]) => tx.setMeta(seqKey(space), seq)),
        tx.setMeta(META_CLOCK, formatTimestamp(this.#clock.last)),
      ]);
      return changes;
    });
    return run.then((changes) => {
      this.#committed(
        { local: true, records: changes.map((c) => [c.collection, c.id, c.space] as const), outbox: [...new Set(changes.map((c) => c.space))] },
        true,
      );
      return changes;
    });
  }

  // ---- remote changes ---------------------------------------------------------

  /**
   * Applies changes that came from elsewhere (the server). Idempotent and order
   * independent. With `position`, records in the same transaction that the space's
   * log has been applied up to that position. The changes are handed over: their
   * values become part of the stored records, frozen (they come fresh off the wire).
   */
  async applyRemote(changes: readonly Change[], position?: { space: SpaceId; upTo: number }): Promise<void> {
    this.#checkOpen();
    let drift: ClockDriftError | undefined;
    const applied = await this.#track(
      this.#storage.transaction('readwrite', async (tx) => {
        const [, cache] = await Promise.all([this.#syncClock(tx), RecordCache.load(tx, changes)]);
        drift = this.#receiveAll(changes);
        for (const change of changes) cache.set(applyToStored(this.#collections.get(change.collection), cache.get(change), change));
        const written = cache.changed();
        await Promise.all([
          // Built from the changes, which the replica now owns: kept, not copied.
          putAll(tx, written, { handOver: true }),
          ...(position ? [tx.setMeta(`pos\u0000${position.space}`, position.upTo)] : []),
          tx.setMeta(META_CLOCK, formatTimestamp(this.#clock.last)),
        ]);
        return written;
      }),
    );
    if (drift) this.#onError(drift);
    for (const change of changes) {
      if (change.op === 'crdt') this.#crdt.applyRemote({ collection: change.collection, id: change.id, space: change.space, field: change.field }, change.update);
    }
    this.#committed({ local: false, records: applied.map((r) => [r.collection, r.id, r.space] as const), outbox: [] }, true);
  }

  /**
   * Joins snapshot records (materialized states from the server) into local
   * records. A join never loses local history: unacknowledged local changes stay
   * in the records and in the outbox. The records are handed over, like applyRemote's changes.
   */
  async applySnapshot(records: readonly SnapshotRecord[], space: SpaceId, position?: number): Promise<void> {
    this.#checkOpen();
    const written = await this.#track(
      this.#storage.transaction('readwrite', async (tx) => {
        // One read for the whole chunk (an empty replica learns that nothing exists at once).
        const existing = await tx.getRecords(records.map(({ collection, id }) => ({ collection, id, space })));
        const out = records.map(({ collection, id, state }, i) => {
          const record = existing[i];
          const joined = record ? joinRecordStates(record.state, state) : state;
          return storedRecord(this.#collections.get(collection), { collection, id, space }, joined);
        });
        await putAll(tx, out, { handOver: true });
        if (position !== undefined) await tx.setMeta(`pos\u0000${space}`, position);
        return out;
      }),
    );
    for (const r of written) for (const field of this.#crdt.fieldsOf(r.collection, r.id, r.space)) {
      const update = r.state.crdt?.get(field)?.update;
      if (update) this.#crdt.applyRemote({ collection: r.collection, id: r.id, space: r.space, field }, update);
    }
    this.#committed({ local: false, records: written.map((r) => [r.collection, r.id, r.space] as const), outbox: [] }, true);
  }

  /** The last log position of `space` applied through applyRemote (0: none). */
  async position(space: SpaceId): Promise<number> {
    return (await this.#storage.transaction('readonly', (tx) => tx.getMeta<number>(`pos\u0000${space}`))) ?? 0;
  }

  // ---- reads ----------------------------------------------------------------

  async get(collection: string, id: string, options?: WriteOptions): Promise<Row | undefined> {
    const { space } = this.#target(collection, id, options);
    const record = await this.#storage.transaction('readonly', (tx) => tx.getRecord(collection, id, space));
    return record?.value === undefined ? undefined : toRow(record, `${record.id}\u0000${record.space}`);
  }

  async query(query: Query): Promise<Row[]> {
    this.#checkOpen();
    const def = collectionOf(this.#collections, query.collection);
    return this.#storage.transaction('readonly', (tx) => runQuery(tx, def, query));
  }

  async count(query: Omit<Query, 'limit' | 'offset' | 'after' | 'order'>): Promise<number> {
    this.#checkOpen();
    const def = collectionOf(this.#collections, query.collection);
    return this.#storage.transaction('readonly', (tx) => countQuery(tx, def, query));
  }

  /** merge collections: the concurrent versions of a record, or [] when there is no conflict. */
  async conflicts(collection: string, id: string, options?: WriteOptions): Promise<readonly Version[]> {
    const { space } = this.#target(collection, id, options);
    if (collectionOf(this.#collections, collection).policy !== 'merge') {
      throw new ReplicaError('wrong_policy', `conflicts() needs a merge collection; "${collection}" uses last-writer-wins`);
    }
    const record = await this.#storage.transaction('readonly', (tx) => tx.getRecord(collection, id, space));
    const siblings = record?.state.merge?.siblings ?? [];
    return siblings.length > 1 ? siblings : [];
  }

  /** Calls back with the query's result now and after every change that alters it. Returns unsubscribe. */
  subscribe(query: Query, callback: QueryCallback, options?: { readonly onError?: (error: Error) => void }): () => void {
    this.#checkOpen();
    const def = collectionOf(this.#collections, query.collection);
    // Refused here like an unknown collection: a live query on a missing index would never call back.
    if (query.index !== undefined && !def.indexes.has(query.index)) {
      throw new ReplicaError('unknown_index', `collection "${def.name}" has no index "${query.index}"; declare it in the schema`);
    }
    const onError = options?.onError;
    return this.#live.subscribe(query, callback, onError ? (error) => onError(error as Error) : undefined);
  }

  // ---- crdt fields ------------------------------------------------------------

  text(collection: string, id: string, field: string, options?: WriteOptions): Promise<Y.Text> {
    return this.#crdtRoot(collection, id, field, 'text', options) as Promise<Y.Text>;
  }
  map(collection: string, id: string, field: string, options?: WriteOptions): Promise<Y.Map<unknown>> {
    return this.#crdtRoot(collection, id, field, 'map', options) as Promise<Y.Map<unknown>>;
  }
  array(collection: string, id: string, field: string, options?: WriteOptions): Promise<Y.Array<unknown>> {
    return this.#crdtRoot(collection, id, field, 'array', options) as Promise<Y.Array<unknown>>;
  }

  /** Stops tracking a crdt field's live object (pending edits are still written). */
  release(collection: string, id: string, field: string, options?: WriteOptions): void {
    this.#crdt.release({ ...this.#target(collection, id, options), field });
  }

  async #crdtRoot(collection: string, id: string, field: string, type: 'text' | 'map' | 'array', options?: WriteOptions): Promise<Y.AbstractType<unknown>> {
    const target: CrdtTarget = { ...this.#target(collection, id, options), field };
    const declared = collectionOf(this.#collections, collection).crdt.get(field);
    if (declared === undefined) throw new ReplicaError('unknown_field', `"${field}" is not a crdt field of "${collection}"; declare it in the schema's crdt map`);
    if (declared !== type) throw new ReplicaError('invalid_argument', `"${collection}.${field}" is a crdt ${declared}, not a ${type}`);
    const record = await this.#storage.transaction('readonly', (tx) => tx.getRecord(collection, id, target.space));
    const doc = this.#crdt.open(target, type, record?.state.crdt?.get(field)?.update);
    return this.#crdt.root(doc, type) as Y.AbstractType<unknown>;
  }

  // ---- events, tabs, lifecycle --------------------------------------------------

  /** Listens to committed transactions (local and remote). Returns unsubscribe. */
  onCommit(listener: (event: CommitEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #committed(event: CommitEvent, broadcast: boolean): void {
    this.#live.invalidate(new Set(event.records.map(([collection]) => collection)));
    if (broadcast && this.#channel) {
      const message: TabMessage = { type: 'changed', from: this.#tabId, records: event.records, outbox: event.outbox };
      try {
        this.#channel.postMessage(message);
      } catch (error) {
        this.#onError(error as Error);
      }
    }
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onError(error as Error);
      }
    }
  }

  #onOtherTab(message: TabMessage): void {
    if (this.#closed) return;
    this.#committed({ local: false, records: message.records, outbox: message.outbox }, false);
    // Open crdt documents take the other tab's edits from storage (Yjs ignores what it has).
    for (const [collection, id, space] of message.records) {
      for (const field of this.#crdt.fieldsOf(collection, id, space)) {
        void this.#storage
          .transaction('readonly', (tx) => tx.getRecord(collection, id, space as SpaceId))
          .then((record) => {
            const update = record?.state.crdt?.get(field)?.update;
            if (update) this.#crdt.applyRemote({ collection, id, space: space as SpaceId, field }, update);
          })
          .catch((error: unknown) => this.#onError(error as Error));
      }
    }
  }

  /** True in the one tab that holds the sync connection (always true without Web Locks). */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** Calls back when this tab becomes (or stops being) the leader. Returns unsubscribe. */
  onLeaderChange(listener: (leader: boolean) => void): () => void {
    this.#leaderListeners.add(listener);
    return () => this.#leaderListeners.delete(listener);
  }

  #setLeader(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    for (const listener of this.#leaderListeners) listener(leader);
  }

  #electLeader(locks: LocksLike | undefined): void {
    if (!locks) {
      this.#leader = true;
      return;
    }
    const released = new Promise<void>((resolve) => (this.#releaseLeadership = resolve));
    // The lock is held until this replica closes; then the next waiting tab takes over.
    locks
      .request(`syncline:${this.name}:leader`, async () => {
        if (this.#closed) return;
        this.#setLeader(true);
        await released;
      })
      .catch((error: unknown) => this.#onError(error as Error));
  }

  /** Writes pending crdt edits, waits for writes in flight, and closes storage. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#sync?.close();
    this.#crdt.flushAll();
    await Promise.allSettled([...this.#pending]);
    this.#closed = true;
    this.#live.close();
    this.#crdt.destroy();
    this.#setLeader(false);
    this.#releaseLeadership();
    this.#channel?.close();
    this.#channel = undefined;
    await this.#storage.close();
  }
}

/** Opens (or creates) a replica. */
export async function createReplica<const S extends Schema>(options: ReplicaOptions<S>): Promise<Replica<S>> {
  if (typeof options.name !== 'string' || options.name.length === 0) throw new ReplicaError('invalid_argument', 'createReplica needs a name');
  checkSchema(options.schema);
  const storage = await (options.storage ?? indexedDbStorage())(options.name);
  const randomBytes = options.randomBytes ?? defaultRandomBytes;
  const now = options.now ?? (() => Date.now());
  try {
    const { id, clock, collections } = await storage.transaction('readwrite', async (tx) => {
      let id = await tx.getMeta<ReplicaId>(META_REPLICA);
      if (id === undefined) {
        id = newReplicaId(randomBytes);
        await tx.setMeta(META_REPLICA, id);
      }
      const last = await tx.getMeta<HlcString>(META_CLOCK);
      const clock = new Hlc({ replica: id, now, ...(options.maxClockDrift !== undefined ? { maxDrift: options.maxClockDrift } : {}), ...(last ? { last } : {}) });
      const collections = await openCollections(tx, options.schema);
      return { id, clock, collections };
    });
    const tabId = newReplicaId(randomBytes);
    const replica = new Replica<S>({ options, storage, collections, id, clock, tabId, now, randomBytes });
    if (options.sync) replica.attachSync(startSync(replica as unknown as Replica, options.sync));
    return replica;
  } catch (error) {
    await storage.close();
    throw error;
  }
}

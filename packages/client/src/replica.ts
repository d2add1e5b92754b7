/**
 * The replica: a local database that is the leader for its own writes. Every
 * read and write is local; a write commits the record, its index keys, an outbox
 * entry (one per space of the transaction), the space's sequence counter and the
 * clock in one transaction.
 */
import {
  changeBytes,
  frozenFieldsCopy,
  mayExceedChangeLimit,
  mayExceedRecordLimit,
  MAX_RECORD_BYTES,
  recordBytes,
  DEFAULT_MAX_CLOCK_DRIFT,
  isRecordId,
  isSpaceId,
  maxHlc,
  MAX_CHANGE_BYTES,
  newReplicaId,
  spaceId as toSpaceId,
  type Change,
  type Fields,
  type HlcString,
  type RecordState,
  type ReplicaId,
  type SnapshotRecord,
  type SpaceId,
  type Version,
} from '@syncline/core/internal';
import type * as Y from 'yjs';
import { ReplicaClock } from './clock.js';
import { CommitQueue } from './commit-queue.js';
import { CrdtDocs, type CrdtTarget } from './crdt-docs.js';
import { ReplicaError } from './errors.js';
import { LiveQueries, type QueryCallback } from './live-query.js';
import { asideKey, META_CLOCK, META_CLOCK_ACCEPTED, META_CLOCK_OFFSET, META_CLOCK_UNSYNCED, META_REPLICA, META_RETIRED_HEARD, META_WRITTEN, positionKey, readCursor, seqKey } from './meta.js';
import { hearRetired, RetiredTrim } from './retired.js';
import { collectionOf, countQuery, runQuery, toRow, type Query, type Row } from './query.js';
import type { CollectionName, CrdtFieldName, MergeCollectionName, PatchValue, ReadValue, Sibling, WriteValue } from './typed.js';
import { RecordCache } from './record-cache.js';
import { applyAck, applyChanges, applySnapshot, putAll, syncClock, type LogAdvance, type SnapshotKeys } from './remote-apply.js';
import { restampOutbox } from './restamp.js';
import { collectBelow, floorOf, restampBelow } from './horizon.js';
import { refusedNow, renameOutbox, setAside, writeAgain } from './rejoin.js';
import { checkSchema, type CollectionDef, type Schema } from './schema.js';
import { openCollections } from './schema-migration.js';
import { indexedDbStorage } from './storage/indexeddb-storage.js';
import type { Storage, StorageFactory, StorageTx } from './storage/types.js';
import type { CommitEvent, Reapplied, Rejoined, ReplicaPort, SnapshotChunk } from './sync/port.js';
import { checkSyncOptions, SyncEngine, type EngineSettings, type SyncOptions } from './sync/sync-engine.js';
import { outboxEntries } from './storage/outbox.js';
import { defaultTabs, isSpacesMessage, isTabMessage, type ChannelLike, type LocksLike, type SpaceChange, type SpacesMessage, type TabMessage, type TabsOptions } from './tabs.js';
import { checkPatch, checkValue, validateWrites, type Patch } from './validate.js';
import { applyToStored, buildChange, type WriteOp } from './write.js';
import { isPresenceTabMessage, PresenceStore, type Presence, type PresenceTabMessage } from './presence.js';
import { DEFAULT_CAPTURE_MS, DEFAULT_UNDO_LIMIT, History, revertOps, stepOf, type UndoHistory, type UndoOptions, type UndoStep } from './undo.js';

export type { CommitEvent };

/** What `createReplica` takes. */
export interface ReplicaOptions<S extends Schema = Schema> {
  /** Database name; one replica (and one replica id) per name and origin. */
  readonly name: string;
  /** The collections, their policies, indexes and crdt fields; its literal type types the replica's API. */
  readonly schema: S;
  /** Where records live. Default: IndexedDB (`indexedDbStorage()`); `memoryStorage()` keeps nothing across restarts. */
  readonly storage?: StorageFactory;
  /**
   * Space of the writes and reads that name none (`replica.defaultSpace`).
   * Default: the first of `sync.spaces` when given, else "default".
   */
  readonly space?: string;
  /** Physical clock (ms). Default Date.now. */
  readonly now?: () => number;
  /** Random bytes for the replica id. Default crypto.getRandomValues. */
  readonly randomBytes?: (n: number) => Uint8Array;
  /**
   * How far (ms) the device clock may be from the sync server's before
   * `replica.sync.status.clockSkew` reports it. Writes are stamped with the
   * server's time either way (README, "Clocks"). Default 5 minutes.
   */
  readonly maxClockDrift?: number;
  /**
   * Multi-tab coordination: the Web Locks and BroadcastChannel to use; a part left
   * out is the platform's (navigator.locks, BroadcastChannel) where it has one.
   * false for a replica that shares its database with no one.
   */
  readonly tabs?: TabsOptions | false;
  /** Non-fatal problems (a live query that failed, a remote clock far ahead). */
  readonly onError?: (error: Error) => void;
  /**
   * The undo history of this replica's own writes (replica.undo(), redo()):
   * `limit`, the steps kept (default 100; 0: no history), `captureMs`, how close
   * edits of one crdt field must be to make one step (default 500).
   */
  readonly undo?: UndoOptions;
  /** Sync with a Syncline server; only the leader tab connects. See replica.sync. */
  readonly sync?: SyncOptions;
}

/** Options of a single read or write. */
export interface WriteOptions {
  /** The record's space. Default: the replica's default space. */
  readonly space?: string;
}

/** Collects writes for one transaction (replica.batch); typed like the replica's own writes. */
export interface Batch<S extends Schema = Schema> {
  /** As `replica.put`, in the batch's transaction. */
  put<C extends CollectionName<S>>(collection: C, id: string, value: WriteValue<S, C>, options?: WriteOptions): void;
  /** As `replica.patch`, in the batch's transaction. */
  patch<C extends CollectionName<S>>(collection: C, id: string, patch: PatchValue<S, C>, options?: WriteOptions): void;
  /** As `replica.delete`, in the batch's transaction. */
  delete<C extends CollectionName<S>>(collection: C, id: string, options?: WriteOptions): void;
}

/** What tests and the simulation reach that apps do not: the storage and the sync port. */
export interface ReplicaInternals {
  readonly storage: Storage;
  readonly port: ReplicaPort;
  readonly settings: EngineSettings;
}
const INTERNALS = new WeakMap<object, ReplicaInternals>();

/** The storage and sync port of a replica (not part of the public API: not exported by the package). */
export function internalsOf(replica: object): ReplicaInternals {
  const internals = INTERNALS.get(replica);
  if (!internals) throw new TypeError('not a replica made by createReplica');
  return internals;
}

interface ReplicaInit<S extends Schema> {
  readonly options: ReplicaOptions<S>;
  readonly storage: Storage;
  readonly collections: ReadonlyMap<string, CollectionDef>;
  readonly id: ReplicaId;
  readonly clock: ReplicaClock;
  readonly tabId: string;
  readonly randomBytes: (n: number) => Uint8Array;
}

function defaultRandomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** What a replica stores (Replica.stats). */
export interface ReplicaStats {
  /** Records that exist. */
  readonly records: number;
  /** Deleted records whose state is kept (a tombstone each). */
  readonly tombstones: number;
  /** Bytes of the stored records' encoded states, tombstones included. */
  readonly stateBytes: number;
  /** Local changes not yet acknowledged by a server (the outbox). */
  readonly pending: number;
}

/**
 * A local replica (createReplica): reads and writes are local and instant; with
 * `sync`, changes travel to and from a Syncline server. Typed by the schema `S`:
 * collection, index and crdt field names, and record values (typed.ts).
 */
export class Replica<S extends Schema = Schema> {
  #id: ReplicaId;
  /** The database name it was opened with. */
  readonly name: string;
  /** The space of writes and reads that name none. */
  readonly defaultSpace: SpaceId;
  readonly #storage: Storage;
  readonly #collections: ReadonlyMap<string, CollectionDef>;
  /** Per space, the records of the snapshot being received (remote-apply.ts, SnapshotKeys). */
  readonly #snapshotKeys = new Map<SpaceId, SnapshotKeys>();
  readonly #clock: ReplicaClock;
  readonly #live: LiveQueries;
  readonly #crdt: CrdtDocs;
  readonly #history: History;
  readonly #presence: PresenceStore;
  /** Each local change's record state before it, while its undo step is being made (undo.ts). */
  readonly #before = new WeakMap<Change, RecordState | undefined>();
  readonly #onError: (error: Error) => void;
  readonly #listeners = new Set<(event: CommitEvent) => void>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #queue: CommitQueue;
  /** The replicas this one heard were retired, read again only when more were (retired.ts). */
  readonly #retired = new RetiredTrim();
  readonly #tabId: string;
  readonly #randomBytes: (n: number) => Uint8Array;
  #channel: ChannelLike | undefined;
  #sync: SyncEngine | undefined;
  #closed = false;
  #leader = false;
  readonly #leaderListeners = new Set<(leader: boolean) => void>();
  /** The spaces of each sync engine on this replica; with one at least, writes to other spaces are refused. */
  readonly #syncedSpaces = new Set<() => ReadonlySet<SpaceId>>();
  readonly #spaceListeners = new Set<(change: SpaceChange) => void>();
  #releaseLeadership: () => void = () => undefined;

  /**
   * This replica's id: random, made once per database and kept, until a server
   * retires it; the replica then goes on under a new one (README, "Bounded growth").
   */
  get id(): ReplicaId {
    return this.#id;
  }

  /** Use createReplica(). */
  private constructor(init: ReplicaInit<S>) {
    const { options } = init;
    this.name = options.name;
    this.#id = init.id;
    this.defaultSpace = toSpaceId(options.space ?? options.sync?.spaces?.[0] ?? 'default');
    this.#storage = init.storage;
    this.#collections = init.collections;
    this.#clock = init.clock;
    this.#tabId = init.tabId;
    this.#randomBytes = init.randomBytes;
    this.#queue = new CommitQueue((ops) => this.#commitNow(ops));
    this.#onError = options.onError ?? ((error) => console.error('[syncline]', error));
    this.#live = new LiveQueries((q) => this.#runQuery(q), (e) => this.#onError(e as Error));
    this.#history = new History(options.undo?.limit ?? DEFAULT_UNDO_LIMIT);
    this.#presence = new PresenceStore(this.defaultSpace);
    this.#crdt = new CrdtDocs(
      (target, update, type) => this.#commit([{ kind: 'crdt', ...target, type, update }]).then(() => undefined),
      (e) => this.#onError(e as Error),
      () => new DataView(init.randomBytes(4).buffer).getUint32(0),
      this.#history.limit > 0
        ? {
            captureMs: options.undo?.captureMs ?? DEFAULT_CAPTURE_MS,
            step: (manager, kind) => {
              if (kind === 'undone') return this.#history.pushRedo({ kind: 'crdt', manager });
              if (kind === 'redone') return this.#history.pushUndo({ kind: 'crdt', manager });
              this.#crdt.stopCapturing(manager);
              this.#history.record({ kind: 'crdt', manager });
            },
          }
        : undefined,
    );
    this.#storage.onVersionChange = () => {
      this.#onError(new ReplicaError('closed', `database of replica "${this.name}" was upgraded or deleted by another tab; reopen the replica`));
      void this.close();
    };
    // Each part the app leaves out (locks or channel) is the platform's, where it has one.
    const tabs = options.tabs === false ? undefined : { ...defaultTabs(), ...options.tabs };
    this.#electLeader(tabs?.locks);
    if (tabs?.channel) {
      this.#channel = tabs.channel(`syncline:${this.name}`);
      const channel = this.#channel;
      this.#presence.connectTabs({ from: this.#tabId, isLeader: () => this.#leader, post: (message) => this.#post(message) });
      this.onLeaderChange((leader) => {
        if (leader) this.#presence.becameLeader();
      });
      channel.onmessage = (event) => {
        if (isPresenceTabMessage(event.data)) {
          if (!this.#closed) this.#presence.fromTab(event.data);
          return;
        }
        if (isTabMessage(event.data) && event.data.from !== this.#tabId) this.#onOtherTab(event.data);
        else if (isSpacesMessage(event.data) && event.data.from !== this.#tabId && !this.#closed) {
          for (const listener of this.#spaceListeners) listener(event.data.change);
        }
      };
    }
    const port = this.#port();
    const settings: EngineSettings = { maxClockDrift: options.maxClockDrift ?? DEFAULT_MAX_CLOCK_DRIFT };
    INTERNALS.set(this, { storage: this.#storage, port, settings });
    if (options.sync) this.#sync = new SyncEngine(port, options.sync, settings);
  }

  /** The sync engine, when createReplica was given `sync`: status, pause/resume, flushed, spaces (sync/sync-engine.ts). */
  get sync(): SyncEngine | undefined {
    return this.#sync;
  }

  /** True once close() has begun. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The schema as opened: each collection's policy, indexes (with their stored numbers), crdt fields and validator. */
  get collections(): ReadonlyMap<string, CollectionDef> {
    return this.#collections;
  }

  /** The clock's last timestamp. */
  get lastTimestamp(): HlcString {
    return this.#clock.last;
  }

  // ---- writes -------------------------------------------------------------

  /**
   * Writes a whole record: fields the value omits are removed (as of this
   * write's timestamp). Resolves once it is committed locally; with sync, it is
   * pushed when the connection allows. Refused (ReplicaError) with `unknown_collection`,
   * `invalid_argument`, `validation_failed`, `too_large`, `unsynced_space` or `closed`.
   */
  put<C extends CollectionName<S>>(collection: C, id: string, value: WriteValue<S, C>, options?: WriteOptions): Promise<void> {
    return this.batch((b) => b.put(collection, id, value, options));
  }

  /** Sets the named fields and leaves the others; a field given as undefined is removed. Refused as `put` is. */
  patch<C extends CollectionName<S>>(collection: C, id: string, patch: PatchValue<S, C>, options?: WriteOptions): Promise<void> {
    return this.batch((b) => b.patch(collection, id, patch, options));
  }

  /** Deletes a record (a tombstone: a later write of a field brings it back with that field only). */
  delete<C extends CollectionName<S>>(collection: C, id: string, options?: WriteOptions): Promise<void> {
    return this.batch((b) => b.delete(collection, id, options));
  }

  /** Runs every write the callback makes in one transaction: all of them commit, or none. */
  async batch(fn: (batch: Batch<S>) => void): Promise<void> {
    const ops: WriteOp[] = [];
    fn({
      put: (collection, id, value, options) =>
        // One frozen copy of the value: the record, its visible value and the outbox's change share it.
        ops.push({ kind: 'put', ...this.#writeTarget(collection, id, options), value: frozenFieldsCopy(checkValue(this.#collections, collection, value as Fields)) }),
      patch: (collection, id, patch, options) =>
        ops.push({ kind: 'patch', ...this.#writeTarget(collection, id, options), patch: checkPatch(this.#collections, collection, patch as Patch) }),
      delete: (collection, id, options) => ops.push({ kind: 'delete', ...this.#writeTarget(collection, id, options) }),
    });
    if (ops.length === 0) return;
    await validateWrites(this.#collections, ops, (op) => this.#storage.transaction('readonly', (tx) => tx.getRecord(op.collection, op.id, op.space)).then((r) => (r?.value === undefined ? undefined : { value: r.value })));
    const changes = await this.#commit(ops);
    const step = this.#history.limit > 0 ? this.#stepOf(changes) : undefined;
    if (step) this.#history.record(step);
  }

  /** The undo step `changes` make (undo.ts); the next edit of a crdt field starts a step of its own. */
  #stepOf(changes: readonly Change[]): UndoStep | undefined {
    const step = stepOf(changes, (c) => this.#before.get(c), (collection) => this.#collections.get(collection));
    if (step) this.#crdt.stopCapturing();
    return step;
  }

  /**
   * Undoes this replica's latest write step that is not undone yet, as new
   * writes: each field it wrote goes back to its value before, unless another
   * write (another replica's, or a later one of this one) has set it since; a
   * record it created is deleted again, one it deleted comes back. Crdt fields
   * use Yjs's undo of this replica's own edits. Resolves true when there was a
   * step to undo (even if others had overwritten all of it), false otherwise.
   * See `history`, and ReplicaOptions.undo for what a step is.
   */
  undo(): Promise<boolean> {
    return this.#unwind('undo');
  }

  /** Redoes the latest undone step (the same rules: a field set by another write since is left alone). False when there is none. */
  redo(): Promise<boolean> {
    return this.#unwind('redo');
  }

  /**
   * This replica's ephemeral state per space, and the other connected
   * replicas' (protocol 8): see the README, "Presence". Never stored.
   */
  get presence(): Presence {
    return this.#presence;
  }

  /** Whether undo() and redo() have a step, a subscription to changes of that, and clear(). */
  get history(): UndoHistory {
    return this.#history;
  }

  async #unwind(direction: 'undo' | 'redo'): Promise<boolean> {
    this.#checkOpen();
    const step = direction === 'undo' ? this.#history.popUndo() : this.#history.popRedo();
    if (!step) return false;
    if (step.kind === 'crdt') {
      // Yjs's own undo of this replica's edits; its stack-item-added event makes the opposite step.
      if (direction === 'undo') step.manager.undo();
      else step.manager.redo();
      return true;
    }
    // Read and written in one transaction: a remote write that lands first is seen, never overwritten.
    const changes = await this.#track(
      this.#queue.exclusive(() =>
        this.#storage.transaction('readwrite', async (tx) => {
          const current = await tx.getRecords(step.records);
          const ops: WriteOp[] = [];
          step.records.forEach((entry, i) => {
            const def = this.#collections.get(entry.collection);
            if (def) ops.push(...revertOps(entry, current[i]?.state, def, this.#history));
          });
          return ops.length === 0 ? [] : this.#write(tx, ops);
        }),
      ),
    );
    this.#history.unwound(step, changes);
    if (changes.length === 0) return true;
    this.#committedLocal(changes);
    const next = this.#stepOf(changes);
    if (next && direction === 'undo') this.#history.pushRedo(next);
    else if (next) this.#history.pushUndo(next);
    return true;
  }

  #target(collection: string, id: string, options?: WriteOptions): { collection: string; id: string; space: SpaceId } {
    this.#checkOpen();
    collectionOf(this.#collections, collection);
    if (!isRecordId(id)) throw new ReplicaError('invalid_argument', `record id must be a non-empty string of at most 512 UTF-16 units without lone surrogates, got ${JSON.stringify(id)}`);
    const space = options?.space ?? this.defaultSpace;
    if (!isSpaceId(space)) throw new ReplicaError('invalid_argument', `invalid space id ${JSON.stringify(space)}`);
    return { collection, id, space };
  }

  /** A write's target: as #target, and its space must be one this replica syncs (when it syncs at all). */
  #writeTarget(collection: string, id: string, options?: WriteOptions): { collection: string; id: string; space: SpaceId } {
    const target = this.#target(collection, id, options);
    if (!this.#syncs(target.space)) {
      throw new ReplicaError(
        'unsynced_space',
        `"${collection}/${id}" was not written: space "${target.space}" is not synced by this replica, so the write would never leave the device; add it first (replica.sync.addSpace("${target.space}")) or write to one of its spaces`,
      );
    }
    return target;
  }

  /** True when no sync engine is attached (writes go anywhere) or one of them syncs `space`. Runs on every write. */
  #syncs(space: SpaceId): boolean {
    if (this.#syncedSpaces.size === 0) return true;
    for (const spaces of this.#syncedSpaces) if (spaces().has(space)) return true;
    return false;
  }

  #checkOpen(): void {
    if (this.#closed) throw new ReplicaError('closed', `replica "${this.name}" is closed`);
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const done = () => this.#pending.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** Commits one call's writes through group commit (commit-queue.ts). */
  #commit(ops: readonly WriteOp[]): Promise<Change[]> {
    this.#checkOpen();
    return this.#track(this.#queue.write(ops));
  }

  #commitNow(ops: readonly WriteOp[]): Promise<Change[]> {
    const run = this.#storage.transaction('readwrite', (tx) => this.#write(tx, ops));
    return run.then((changes) => {
      this.#committedLocal(changes);
      return changes;
    });
  }

  /** Local changes were committed: live queries, other tabs and listeners hear of them. */
  #committedLocal(changes: readonly Change[]): void {
    this.#committed({ local: true, records: changes.map((c) => [c.collection, c.id, c.space] as const), outbox: [...new Set(changes.map((c) => c.space))] }, true);
  }

  /** Builds, applies and queues the changes of `ops` in `tx`. */
  async #write(tx: StorageTx, ops: readonly WriteOp[]): Promise<Change[]> {
    const spaces = [...new Set(ops.map((op) => op.space))];
    // Every read is issued before the first await: one round trip, not one per record.
    const [, stored, cache, id, trim] = await Promise.all([
      syncClock(tx, this.#clock),
      Promise.all(spaces.map((space) => tx.getMeta<number>(seqKey(space)))),
      RecordCache.load(tx, ops),
      tx.getMeta<ReplicaId>(META_REPLICA),
      // A write that supersedes a retired replica's version leaves its entry behind: dropped (retired.ts).
      ops.some((op) => this.#collections.get(op.collection)?.policy === 'merge') ? this.#retired.of(tx) : undefined,
    ]);
    // Another tab rejoined under a new id (after a retirement): this one writes as it too.
    if (id !== undefined && id !== this.#id) this.#adopt(id);
    // A space's first write: remembered, so that a rejoin starts its seqs over too (even once it is no longer synced).
    const first = spaces.filter((_, i) => stored[i] === undefined);
    const written = first.length > 0 ? ((await tx.getMeta<SpaceId[]>(META_WRITTEN)) ?? []) : [];
    const seqs = new Map<SpaceId, number>(spaces.map((space, i) => [space, stored[i] ?? 0]));
    const changes: Change[] = [];
    for (const op of ops) {
      const def = collectionOf(this.#collections, op.collection);
      const seq = (seqs.get(op.space) as number) + 1;
      seqs.set(op.space, seq);
      const record = cache.get(op);
      const change = buildChange(op, def, record?.state, this.id, seq, this.#clock.hlc.nowString());
      // Every change must fit a push on its own (the protocol's promise): a larger one would wedge the outbox.
      const bytes = mayExceedChangeLimit(change) ? changeBytes(change) : 0;
      if (bytes > MAX_CHANGE_BYTES) {
        throw new ReplicaError(
          'too_large',
          `"${op.collection}/${op.id}" was not written: its change takes ${bytes} bytes, more than the ${MAX_CHANGE_BYTES} one change may take (MAX_CHANGE_BYTES); keep large data out of records`,
        );
      }
      const next = applyToStored(def, record, change, trim);
      // And the record it makes must fit a frame (MAX_RECORD_BYTES): the server refuses larger ones too.
      if (mayExceedRecordLimit(next.state)) {
        const size = recordBytes(next.state);
        if (size > MAX_RECORD_BYTES) {
          throw new ReplicaError('too_large', `"${op.collection}/${op.id}" was not written: the record would take ${size} bytes, more than the ${MAX_RECORD_BYTES} a record may take (MAX_RECORD_BYTES)`);
        }
      }
      cache.set(next);
      if (this.#history.limit > 0) this.#before.set(change, record?.state);
      changes.push(change);
    }
    await Promise.all([
      putAll(tx, cache.changed()),
      ...outboxEntries(changes).map((entry) => tx.addOutbox(entry)),
      ...[...seqs].map(([space, seq]) => tx.setMeta(seqKey(space), seq)),
      ...(first.length > 0 ? [tx.setMeta(META_WRITTEN, [...new Set([...written, ...first])])] : []),
      tx.setMeta(META_CLOCK, this.#clock.last),
    ]);
    return changes;
  }

  /** Goes on as `id` (a rejoin, here or in another tab). */
  #adopt(id: ReplicaId): void {
    this.#id = id;
    this.#clock.rename(id);
  }

  /** The server retired this replica's id: rejoin.ts, setAside; the replica goes on as the new id. */
  #rejoin(synced: readonly SpaceId[]): Promise<Rejoined> {
    this.#checkOpen();
    const previousId = this.#id;
    const id = newReplicaId(this.#randomBytes);
    return this.#track(this.#storage.transaction('readwrite', (tx) => setAside(tx, synced, id))).then((aside) => {
      this.#adopt(id);
      return { previousId, id, aside };
    });
  }

  /**
   * A region retired this replica's id: it goes on as a new id in place
   * (rejoin.ts, renameOutbox), alone in the commit queue; its unsynced changes
   * are changes of the new id at once.
   */
  async #renameRejoin(synced: readonly SpaceId[], horizons: ReadonlyMap<SpaceId, HlcString>): Promise<Rejoined> {
    this.#checkOpen();
    const previousId = this.#id;
    const id = newReplicaId(this.#randomBytes);
    const ctx = { clock: this.#clock, collections: this.#collections };
    const { moved, records } = await this.#track(
      this.#queue.exclusive(async () => {
        this.#clock.rename(id);
        try {
          return await this.#storage.transaction('readwrite', (tx) => renameOutbox(tx, ctx, synced, id, horizons));
        } catch (error) {
          this.#clock.rename(previousId);
          throw error;
        }
      }),
    );
    this.#id = id;
    if (records.length > 0) this.#committed({ local: true, records: records.map((r) => [r.collection, r.id, r.space] as const), outbox: [...new Set(records.map((r) => r.space))] }, true);
    return { previousId, id, aside: moved, inPlace: true };
  }

  /** A space caught up after a rejoin: its set-aside changes written again (rejoin.ts, refusedNow and writeAgain). */
  async #reapply(space: SpaceId): Promise<Reapplied | undefined> {
    this.#checkOpen();
    const aside = await this.#storage.transaction('readonly', (tx) => tx.getMeta<Change[]>(asideKey(space)));
    if (aside === undefined) return undefined;
    const current = (op: WriteOp) => this.#storage.transaction('readonly', (tx) => tx.getRecord(op.collection, op.id, op.space)).then((r) => (r?.value === undefined ? undefined : { value: r.value }));
    const refused = await refusedNow(aside, this.#collections, current);
    const done = await this.#track(this.#storage.transaction('readwrite', (tx) => writeAgain(tx, space, refused, (t, ops) => this.#write(t, ops))));
    if (!done) return undefined;
    const { changes, dropped } = done;
    if (changes.length > 0) this.#committed({ local: true, records: changes.map((c) => [c.collection, c.id, c.space] as const), outbox: [space] }, true);
    return { reapplied: changes.length, dropped };
  }

  // ---- the sync port ------------------------------------------------------------

  /** The sync engine's view of this replica (sync/port.ts). */
  #port(): ReplicaPort {
    const isClosed = () => this.#closed;
    const isLeader = () => this.#leader;
    const read = <T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> => this.#storage.transaction('readonly', fn);
    const id = () => this.#id;
    return {
      get id() {
        return id();
      },
      defaultSpace: this.defaultSpace,
      get closed() {
        return isClosed();
      },
      get isLeader() {
        return isLeader();
      },
      onLeaderChange: (listener) => this.onLeaderChange(listener),
      onCommit: (listener) => this.onCommit(listener),
      now: () => this.#clock.device(),
      presence: this.#presence,
      report: (error) => this.#onError(error),
      readOutbox: (space, limit) => read((tx) => tx.readOutbox(space, limit)),
      ackOutbox: (space, upTo, hlc) => this.#ack(space, upTo, hlc),
      countOutbox: (spaces) =>
        read(async (tx) => {
          // One round trip for every space: its outbox, and what a rejoin set aside.
          const counts = await Promise.all(spaces.flatMap((space) => [tx.countOutbox(space), tx.getMeta<Change[]>(asideKey(space)).then((aside) => aside?.length ?? 0)]));
          return counts.reduce((sum, n) => sum + n, 0);
        }),
      lastSeq: async (space) => (await read((tx) => tx.getMeta<number>(seqKey(space)))) ?? 0,
      applyRemote: (changes, position) => this.#applyRemote(changes, position),
      applySnapshot: (records, space, position, chunk) => this.#applySnapshot(records, space, position, chunk),
      position: async (space) => readCursor(await read((tx) => tx.getMeta(positionKey(space)))),
      welcomeClock: (serverTime, roundTrip, maxClockDrift) => this.#welcomeClock(serverTime, roundTrip, maxClockDrift),
      restamp: (maxClockDrift) => this.#restamp(maxClockDrift),
      floor: (space) => this.#track(this.#storage.transaction('readwrite', (tx) => floorOf(tx, this.#clock, this.id, space))),
      retiredHeard: async () => (await read((tx) => tx.getMeta<number>(META_RETIRED_HEARD))) ?? 0,
      retired: (replicas, upTo) =>
        this.#track(
          this.#storage.transaction('readwrite', async (tx) => {
            const rewritten = await hearRetired(tx, this.#collections, replicas, upTo);
            if (rewritten.length > 0) await putAll(tx, rewritten);
          }),
        ),
      horizon: (space, hlc, upTo, region) =>
        this.#track(this.#storage.transaction('readwrite', (tx) => collectBelow(tx, this.#collections.keys(), space, hlc, upTo, region))).then(() => undefined),
      restampBelow: (space, hlc) => this.#restampBelow(space, hlc),
      rejoin: (spaces) => this.#rejoin(spaces),
      rejoinInPlace: (spaces, horizons) => this.#renameRejoin(spaces, horizons),
      reapply: (space) => this.#reapply(space),
      refreshId: async () => {
        const stored = await read((tx) => tx.getMeta<ReplicaId>(META_REPLICA));
        if (stored !== undefined && stored !== this.#id) this.#adopt(stored);
      },
      countAside: async (space) => (await read((tx) => tx.getMeta<Change[]>(asideKey(space))))?.length ?? 0,
      syncsSpaces: (spaces) => {
        this.#syncedSpaces.add(spaces);
        return () => this.#syncedSpaces.delete(spaces);
      },
      // Spaces added or removed in this tab: the other tabs' engines follow (only the leader tab's connects).
      shareSpaces: (change) => this.#post({ type: 'spaces', from: this.#tabId, change }),
      onSharedSpaces: (listener) => {
        this.#spaceListeners.add(listener);
        return () => this.#spaceListeners.delete(listener);
      },
    };
  }

  #ack(space: SpaceId, upTo: number, hlc: HlcString | undefined): Promise<void> {
    this.#checkOpen();
    return this.#track(this.#storage.transaction('readwrite', (tx) => applyAck(tx, this.#clock, space, upTo, hlc)));
  }

  /**
   * Applies other replicas' changes (remote-apply.ts). Idempotent and order
   * independent; with `position`, the space's log is applied up to it.
   */
  async #applyRemote(changes: readonly Change[], position?: LogAdvance & { readonly space: SpaceId }): Promise<void> {
    this.#checkOpen();
    const ctx = { collections: this.#collections, clock: this.#clock, retired: this.#retired };
    const applied = await this.#track(this.#storage.transaction('readwrite', (tx) => applyChanges(tx, ctx, changes, position)));
    for (const change of changes) {
      if (change.op === 'crdt') this.#crdt.applyRemote({ collection: change.collection, id: change.id, space: change.space, field: change.field }, change.update);
    }
    this.#committed({ local: false, records: applied.map((r) => [r.collection, r.id, r.space] as const), outbox: [] }, true);
  }

  /** Applies a snapshot chunk (remote-apply.ts: replacing or joining what the replica held); unacknowledged local changes stay. */
  async #applySnapshot(records: readonly SnapshotRecord[], space: SpaceId, position: LogAdvance | undefined, chunk: SnapshotChunk): Promise<void> {
    this.#checkOpen();
    const ctx = { collections: this.#collections, clock: this.#clock, retired: this.#retired };
    if (chunk.index === 0) this.#snapshotKeys.set(space, new Set());
    // A later chunk without the first (a frame received twice, after the last chunk ended the snapshot) joins:
    // replacing, or forgetting what the snapshot lacks, needs every record of the snapshot.
    const keys = this.#snapshotKeys.get(space);
    if (position !== undefined) this.#snapshotKeys.delete(space);
    const how = chunk.replace ? { replace: keys } : { joined: keys, horizon: chunk.horizon };
    const { written, forgotten } = await this.#track(this.#storage.transaction('readwrite', (tx) => applySnapshot(tx, ctx, records, space, position, how)));
    for (const r of written) {
      for (const field of this.#crdt.fieldsOf(r.collection, r.id, r.space)) {
        const update = r.state.crdt?.get(field)?.update;
        if (update) this.#crdt.applyRemote({ collection: r.collection, id: r.id, space: r.space, field }, update);
      }
    }
    const touched = [...written, ...forgotten].map((r) => [r.collection, r.id, r.space] as const);
    this.#committed({ local: false, records: touched, outbox: [] }, true);
  }

  /**
   * A welcome's clock: the new offset, then the re-stamping it calls for, before
   * anything is pushed; alone in the commit queue, so that every write is
   * stamped either before (and re-stamped with the others) or after (with the
   * new offset).
   */
  #welcomeClock(serverTime: number, roundTrip: number, maxClockDrift: number): Promise<{ offset: number; restamped: number }> {
    this.#checkOpen();
    return this.#track(
      this.#queue.exclusive(async () => {
        const first = this.#clock.unsynced;
        const before = this.#clock.offset;
        const offset = this.#clock.setServerTime(serverTime, roundTrip);
        const restamped = await this.#restampNow({ maxClockDrift, all: first, delta: offset - before });
        return { offset, restamped };
      }),
    );
  }

  /** After a `clock_drift` refusal: re-stamps outbox changes too far ahead of the server's time. */
  #restamp(maxClockDrift: number): Promise<number> {
    this.#checkOpen();
    return this.#track(this.#queue.exclusive(() => this.#restampNow({ maxClockDrift })));
  }

  /**
   * After a `below_horizon` refusal (horizon.ts): the outbox changes from the
   * first one at or below the horizon on are re-stamped past it, alone in the
   * commit queue (no write is stamped meanwhile). Returns how many moved.
   */
  async #restampBelow(space: SpaceId, hlc: HlcString): Promise<number> {
    this.#checkOpen();
    const ctx = { clock: this.#clock, collections: this.#collections };
    const { moved, records } = await this.#track(this.#queue.exclusive(() => this.#storage.transaction('readwrite', (tx) => restampBelow(tx, ctx, space, hlc))));
    if (records.length > 0) this.#committed({ local: true, records: records.map((r) => [r.collection, r.id, r.space] as const), outbox: [space] }, true);
    return moved;
  }

  /** One re-stamping pass (restamp.ts); then the clock goes back, never below what was received meanwhile. */
  async #restampNow(options: { readonly maxClockDrift: number; readonly all?: boolean; readonly delta?: number }): Promise<number> {
    const ctx = { replica: this.id, clock: this.#clock, collections: this.#collections };
    const { moved, rewindTo } = await this.#storage.transaction('readwrite', (tx) => restampOutbox(tx, ctx, options));
    this.#clock.synced();
    if (rewindTo !== undefined) this.#clock.rewind(maxHlc(rewindTo, this.#clock.accepted) as HlcString);
    return moved;
  }

  // ---- reads ----------------------------------------------------------------

  /** One record, or undefined when it does not exist (or was deleted). */
  async get<C extends CollectionName<S>>(collection: C, id: string, options?: WriteOptions): Promise<Row<ReadValue<S, C>> | undefined> {
    const { space } = this.#target(collection, id, options);
    const record = await this.#storage.transaction('readonly', (tx) => tx.getRecord(collection, id, space));
    return record?.value === undefined ? undefined : (toRow(record, `${record.id}\u0000${record.space}`) as Row<ReadValue<S, C>>);
  }

  /** The rows of a query (query.ts), in index order; every space unless `query.space` names one. */
  async query<C extends CollectionName<S>>(query: Query<S, C>): Promise<Row<ReadValue<S, C>>[]> {
    return this.#runQuery(query as Query) as Promise<Row<ReadValue<S, C>>[]>;
  }

  #runQuery(query: Query): Promise<Row[]> {
    this.#checkOpen();
    const def = collectionOf(this.#collections, query.collection);
    return this.#storage.transaction('readonly', (tx) => runQuery(tx, def, query));
  }

  /** How many rows a query would return (without limit, offset or cursor). */
  async count<C extends CollectionName<S>>(query: Omit<Query<S, C>, 'limit' | 'offset' | 'after' | 'order'>): Promise<number> {
    this.#checkOpen();
    const def = collectionOf(this.#collections, query.collection);
    return this.#storage.transaction('readonly', (tx) => countQuery(tx, def, query as Query));
  }

  /**
   * What this replica stores, in one space or (without `space`) in all:
   * records that exist, deleted records whose state it keeps (tombstones),
   * the bytes of their encoded states, and changes not yet acknowledged
   * (`pending`). Reads every stored record: for monitoring, not for a render loop.
   */
  async stats(options: { readonly space?: string } = {}): Promise<ReplicaStats> {
    this.#checkOpen();
    const space = options.space as SpaceId | undefined;
    return this.#storage.transaction('readonly', async (tx) => {
      let records = 0;
      let tombstones = 0;
      let stateBytes = 0;
      for (const collection of this.#collections.keys()) {
        for (const record of await tx.scanRecords(collection, space === undefined ? {} : { space })) {
          if (record.value === undefined) tombstones++;
          else records++;
          stateBytes += recordBytes(record.state);
        }
      }
      return { records, tombstones, stateBytes, pending: await tx.countOutbox(space) };
    });
  }

  /**
   * merge collections: the concurrent versions (siblings) of a record, or []
   * when there is no conflict. Refused with `wrong_policy` on an lww collection.
   */
  async conflicts<C extends MergeCollectionName<S>>(collection: C, id: string, options?: WriteOptions): Promise<readonly Sibling<WriteValue<S, C>>[]> {
    const { space } = this.#target(collection, id, options);
    if (collectionOf(this.#collections, collection).policy !== 'merge') {
      throw new ReplicaError('wrong_policy', `conflicts() needs a merge collection; "${collection}" uses last-writer-wins`);
    }
    const record = await this.#storage.transaction('readonly', (tx) => tx.getRecord(collection, id, space));
    const siblings = record?.state.merge?.siblings ?? [];
    return (siblings.length > 1 ? siblings : []) as readonly Version[] as readonly Sibling<WriteValue<S, C>>[];
  }

  /** Calls back with the query's result now and after every change that alters it. Returns unsubscribe. */
  subscribe<C extends CollectionName<S>>(query: Query<S, C>, callback: QueryCallback<ReadValue<S, C>>, options?: { readonly onError?: (error: Error) => void }): () => void {
    this.#checkOpen();
    const def = collectionOf(this.#collections, query.collection);
    // Refused here like an unknown collection: a live query on a missing index would never call back.
    if (query.index !== undefined && !def.indexes.has(query.index)) {
      throw new ReplicaError('unknown_index', `collection "${def.name}" has no index "${query.index}"; declare it in the schema`);
    }
    const onError = options?.onError;
    return this.#live.subscribe(query as Query, callback as QueryCallback, onError ? (error) => onError(error as Error) : undefined);
  }

  // ---- crdt fields ------------------------------------------------------------

  /**
   * The live Y.Text of a `text` crdt field: edit it and each edit becomes a
   * change (merged per tick); remote edits appear in it. One object per field
   * until `release`. Refused with `unknown_field` for a field the schema does
   * not declare as text.
   */
  text<C extends CollectionName<S>>(collection: C, id: string, field: CrdtFieldName<S, C, 'text'>, options?: WriteOptions): Promise<Y.Text> {
    return this.#crdtRoot(collection, id, field, 'text', options) as Promise<Y.Text>;
  }
  /** The live Y.Map of a `map` crdt field (as `text`). */
  map<C extends CollectionName<S>>(collection: C, id: string, field: CrdtFieldName<S, C, 'map'>, options?: WriteOptions): Promise<Y.Map<unknown>> {
    return this.#crdtRoot(collection, id, field, 'map', options) as Promise<Y.Map<unknown>>;
  }
  /** The live Y.Array of an `array` crdt field (as `text`). */
  array<C extends CollectionName<S>>(collection: C, id: string, field: CrdtFieldName<S, C, 'array'>, options?: WriteOptions): Promise<Y.Array<unknown>> {
    return this.#crdtRoot(collection, id, field, 'array', options) as Promise<Y.Array<unknown>>;
  }

  /** Stops tracking a crdt field's live object (pending edits are still written). */
  release<C extends CollectionName<S>>(collection: C, id: string, field: CrdtFieldName<S, C>, options?: WriteOptions): void {
    this.#crdt.release({ ...this.#target(collection, id, options), field });
  }

  async #crdtRoot(collection: string, id: string, field: string, type: 'text' | 'map' | 'array', options?: WriteOptions): Promise<Y.AbstractType<unknown>> {
    const target: CrdtTarget = { ...this.#writeTarget(collection, id, options), field };
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
    if (broadcast) this.#post({ type: 'changed', from: this.#tabId, records: event.records, outbox: event.outbox });
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onError(error as Error);
      }
    }
  }

  /** Tells the other tabs (BroadcastChannel), when there is a channel; a failure goes to onError. */
  #post(message: TabMessage | SpacesMessage | PresenceTabMessage): void {
    if (!this.#channel) return;
    try {
      this.#channel.postMessage(message);
    } catch (error) {
      this.#onError(error as Error);
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
  if (options.sync) checkSyncOptions(options.sync);
  const synced = options.sync?.spaces;
  if (synced && options.space !== undefined && !synced.includes(options.space)) {
    // Every write that names no space would be refused (unsynced_space): say so now.
    throw new ReplicaError('invalid_argument', `createReplica: space "${options.space}" is not one of sync.spaces (${synced.map((s) => JSON.stringify(s)).join(', ')}); writes to it would never leave the device`);
  }
  const storage = await (options.storage ?? indexedDbStorage())(options.name);
  const randomBytes = options.randomBytes ?? defaultRandomBytes;
  const device = options.now ?? (() => Date.now());
  try {
    const { id, clock, collections } = await storage.transaction('readwrite', async (tx) => {
      let id = await tx.getMeta<ReplicaId>(META_REPLICA);
      // A new replica has not reached a server yet: its first welcome re-stamps what its device clock stamped.
      const created = id === undefined;
      if (id === undefined) {
        id = newReplicaId(randomBytes);
        await Promise.all([tx.setMeta(META_REPLICA, id), tx.setMeta(META_CLOCK_UNSYNCED, true)]);
      }
      const [last, offset, accepted, unsynced] = await Promise.all([
        tx.getMeta<HlcString>(META_CLOCK),
        tx.getMeta<number>(META_CLOCK_OFFSET),
        tx.getMeta<HlcString>(META_CLOCK_ACCEPTED),
        tx.getMeta<boolean>(META_CLOCK_UNSYNCED),
      ]);
      const clock = new ReplicaClock({ replica: id, device, last, offset, accepted, unsynced: created || unsynced === true });
      await noteWrittenSpaces(tx);
      const collections = await openCollections(tx, options.schema);
      return { id, clock, collections };
    });
    const tabId = newReplicaId(randomBytes);
    // The constructor is private to keep apps on createReplica; this is its one caller.
    const Ctor = Replica as unknown as new (init: ReplicaInit<S>) => Replica<S>;
    return new Ctor({ options, storage, collections, id, clock, tabId, randomBytes });
  } catch (error) {
    await storage.close();
    throw error;
  }
}

/**
 * A database written before the replica noted the spaces it writes in
 * (META_WRITTEN, read by a rejoin) gets them from its seq counters, once.
 */
async function noteWrittenSpaces(tx: StorageTx): Promise<void> {
  if (!tx.metaKeys || (await tx.getMeta(META_WRITTEN)) !== undefined) return;
  const prefix = seqKey('');
  await tx.setMeta(META_WRITTEN, (await tx.metaKeys(prefix)).map((key) => key.slice(prefix.length)));
}

/**
 * Starts a sync engine on a replica opened without `sync` (createReplica's
 * `sync` option does this for you). The caller closes it (`engine.close()`).
 */
export function startSync(replica: Replica<Schema>, options: SyncOptions): SyncEngine {
  const { port, settings } = internalsOf(replica);
  return new SyncEngine(port, options, settings);
}

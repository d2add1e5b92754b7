/**
 * The server's own writer: what the backend API writes (api.ts) is stamped and
 * stored here as the changes of one replica of this server process, through
 * the same checks, quotas, group commit and relay as a client's push, so
 * replicas see it live and merge it like any other replica's writes.
 *
 * Its id is `api-` and 16 random characters, new for each process: two server
 * instances sharing a database never write under one id, so each (replica,
 * seq) names one change. Writes to one space are made one after the other, so
 * the seqs follow each other; a batch is one request, stored whole or not at
 * all.
 *
 * Liveness, and why it may re-stamp: a change of this writer exists nowhere
 * before its append commits, and the append stores all of it or nothing. So
 * when storage refuses it as below the stability horizon, the writer stamps it
 * again past the horizon; when its id was retired, it takes a new one; when
 * the outcome is unknown (the database failed at commit), it reads how far
 * its seqs got before it writes again. None of these can lose or duplicate a
 * write, and each is tried a bounded number of times.
 *
 * Stability: every change is stamped after every stamp of the records it
 * writes (and after the space's horizon), so an API write wins over what it
 * replaces even when a device clock ran ahead; and while the process runs, the
 * writer tells storage at each collection pass that its later changes will be
 * stamped after its clock now (a floor), so it holds no horizon back by being
 * idle. The server retires it when it closes. A process that is killed leaves
 * it to be retired for inactivity (gc.retireAfterMs) or by an operator.
 */
import { randomBytes } from 'node:crypto';
import {
  applyChange,
  contextFor,
  formatTimestamp,
  Hlc,
  joinRecordStates,
  latestStamp,
  SynclineError,
  type Change,
  type Fields,
  type RecordState,
  type ReplicaId,
  type SpaceId,
} from '@syncline/core/internal';
import { checkChange } from './change-checks.js';
import { refusalLevel } from './storage/horizon.js';
import type { Committer } from './committer.js';
import { capFloor } from './gc.js';
import type { AppendRequest, AppendResult, ServerStorage } from './storage/types.js';

/** One write of the backend API: an lww put, patch or delete, or a merge version. */
export type WriteOp =
  | { readonly op: 'put'; readonly collection: string; readonly id: string; readonly fields: Fields }
  | { readonly op: 'patch'; readonly collection: string; readonly id: string; readonly fields: Fields; readonly unset: readonly string[] }
  | { readonly op: 'delete'; readonly collection: string; readonly id: string }
  | { readonly op: 'version'; readonly collection: string; readonly id: string; readonly value: Fields | null };

/** What a write stored (the API's response body). */
export interface WriteResult {
  readonly space: SpaceId;
  /** The writer's replica id. */
  readonly replica: ReplicaId;
  /** Each write's change, in order: its seq and stamp. */
  readonly changes: ReadonlyArray<{ readonly collection: string; readonly id: string; readonly op: WriteOp['op']; readonly seq: number; readonly hlc: string }>;
}

/** A write refused for what it is (answered 4xx); `code` is the error code. */
export class WriteRefused extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface WriterContext {
  readonly storage: ServerStorage;
  readonly committer: Committer;
  readonly now: () => number;
}

/** How often one write is stamped again (a horizon that moved, a retired id, an unknown outcome) before it fails. */
const ATTEMPTS = 5;

/** An idempotent write's key and what identifies its request (a retry with another request under the key is refused). */
export interface WriteKey {
  readonly key: string;
  readonly fingerprint: string;
}

/** What a stored key replays. */
interface Replay {
  readonly fingerprint: string;
  readonly result: WriteResult;
}

/** What the writer keeps per space it writes. */
interface SpaceState {
  /** The last seq handed out (undefined: read how far storage holds first). */
  seq: number | undefined;
  /** Requests submitted and not yet settled. */
  inflight: number;
  /** Per record written by requests in flight, its state with their changes, and how many of them touch it. */
  readonly overlay: Map<string, { state: RecordState; requests: number }>;
  /** A request failed or was replayed: the next one waits until none is in flight, then reads storage afresh. */
  broken: boolean;
  /** Resolved when nothing is in flight. */
  settled: Promise<void>;
  settle: () => void;
}

export class ServerWriter {
  readonly #ctx: WriterContext;
  #hlc: Hlc | undefined;
  readonly #spaces = new Map<SpaceId, SpaceState>();
  /** Per space, the tail of the chain of stamping sections. */
  readonly #queues = new Map<SpaceId, Promise<unknown>>();

  constructor(ctx: WriterContext) {
    this.#ctx = ctx;
  }

  /** The writer's replica id; undefined until it first writes. */
  get replica(): ReplicaId | undefined {
    return this.#hlc?.replica;
  }

  /**
   * Stamps and stores `ops` as one request (all or nothing), after the writes
   * to `space` already under way. With `key`, a request stored under the same
   * key in the last 24 hours is not stored again: its result is returned with
   * `replayed` (a WriteRefused `idempotency_mismatch` when it was another
   * request).
   *
   * Requests to one space are stamped one after the other (seqs in turn, each
   * after the previous one's stamps and versions), but committed together:
   * those that arrive while a commit runs share the next one (group commit).
   * @throws WriteRefused for a write that cannot be stored (invalid, too large,
   * over a quota); SynclineError when storage fails.
   */
  async write(space: SpaceId, ops: readonly WriteOp[], key?: WriteKey): Promise<{ result: WriteResult; replayed: boolean }> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(space, ops, key);
      if (outcome !== 'again') return outcome;
      if (attempt >= ATTEMPTS) throw new Error(`the server's writer could not store a write to ${space} in ${ATTEMPTS} attempts`);
    }
  }

  /**
   * Tells storage, for each space written and idle, that every later change is
   * stamped after this moment (capped as clients' floors are): run before each
   * collection pass, so an idle writer holds no horizon back. (A space with
   * writes in flight is held back by their stamps once stored, which are recent.)
   */
  async noteFloors(): Promise<void> {
    const hlc = this.#hlc;
    if (!hlc) return;
    await Promise.all(
      [...this.#spaces].map(([space, state]) =>
        this.#serial(space, async () => {
          if (state.inflight > 0) return;
          const now = this.#ctx.now();
          await this.#ctx.storage.noteWriter(space, hlc.replica, capFloor(formatTimestamp(hlc.now()), now), now);
        }),
      ),
    );
  }

  /** Resolves when every write begun so far has ended. */
  async settle(): Promise<void> {
    while (this.#queues.size > 0) await Promise.all([...this.#queues.values()]);
    await Promise.all([...this.#spaces.values()].map((state) => state.settled));
  }

  #serial<T>(space: SpaceId, fn: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(space) ?? Promise.resolve()).then(fn, fn);
    const tail = run.then(noop, noop);
    this.#queues.set(space, tail);
    void tail.then(() => this.#queues.get(space) === tail && this.#queues.delete(space));
    return run;
  }

  #clock(): Hlc {
    this.#hlc ??= newClock(this.#ctx.now);
    return this.#hlc;
  }

  #state(space: SpaceId): SpaceState {
    let state = this.#spaces.get(space);
    if (!state) {
      const fresh: SpaceState = { seq: undefined, inflight: 0, overlay: new Map(), broken: false, settled: Promise.resolve(), settle: noop };
      this.#spaces.set(space, (state = fresh));
    }
    return state;
  }

  /**
   * One try: stamp the changes in the space's serial section, submit them, and
   * leave the section (the next request stamps while this one commits). Resolves
   * to 'again' when the request must be stamped anew (nothing of it stored).
   */
  async #attempt(space: SpaceId, ops: readonly WriteOp[], key: WriteKey | undefined): Promise<{ result: WriteResult; replayed: boolean } | 'again'> {
    const state = this.#state(space);
    const stamped = await this.#serial(space, async () => {
      if (state.broken) {
        // After a failure, nothing in flight can be counted on: wait, then read storage afresh.
        await state.settled;
        state.broken = false;
        state.seq = undefined;
        state.overlay.clear();
      }
      const built = await this.#stamp(space, state, ops, key);
      if (state.inflight++ === 0) state.settled = new Promise((resolve) => (state.settle = resolve));
      for (const at of built.touched) {
        const entry = state.overlay.get(at.key);
        if (entry) {
          entry.state = at.state;
          entry.requests++;
        } else state.overlay.set(at.key, { state: at.state, requests: 1 });
      }
      return { ...built, submitted: this.#ctx.committer.submit(built.request) };
    });
    const { request, result, touched } = stamped;
    let stored: AppendResult | undefined;
    let failure: unknown;
    try {
      stored = await stamped.submitted;
    } catch (error) {
      failure = error;
    } finally {
      for (const at of touched) {
        const entry = state.overlay.get(at.key);
        if (entry && --entry.requests === 0) state.overlay.delete(at.key);
      }
      if (--state.inflight === 0) state.settle();
    }
    if (stored !== undefined && stored.replayed === undefined && stored.stored.length === request.changes.length) return { result, replayed: false };
    // Anything else leaves this writer's seqs (and the states it stamped after) uncertain.
    state.broken = true;
    if (stored?.replayed !== undefined) {
      const replay = JSON.parse(stored.replayed) as Replay;
      if (replay.fingerprint !== key?.fingerprint) {
        throw new WriteRefused('idempotency_mismatch', `the Idempotency-Key ${JSON.stringify(key?.key)} was used for another request in the last 24 hours`);
      }
      return { result: replay.result, replayed: true };
    }
    // Seqs found held already: an earlier outcome was misread. Stamped again, as new changes.
    if (stored !== undefined) return 'again';
    const code = failure instanceof SynclineError ? failure.code : undefined;
    if (code === 'quota_exceeded') throw new WriteRefused(code, (failure as Error).message);
    if (code === 'invalid_change') throw new WriteRefused('invalid_request', (failure as Error).message);
    // Storage refused it whole: below the horizon (stamped again after it), a retired id (a new one), a seq
    // after one that failed (stamped again in turn).
    if (code === 'below_horizon' || code === 'sequence_gap') return 'again';
    if (code === 'replica_retired') {
      if (this.#hlc?.replica === request.replica) this.#hlc = newClock(this.#ctx.now, this.#hlc);
      return 'again';
    }
    // Storage failed: whether it stored the request is unknown, so it is not stored again here (the
    // caller retries with its Idempotency-Key).
    throw failure;
  }

  /** The request for `ops`: stamped after the horizon and after every stamp of the records they write (stored or in flight). */
  async #stamp(space: SpaceId, state: SpaceState, ops: readonly WriteOp[], key: WriteKey | undefined) {
    const { storage } = this.#ctx;
    const hlc = this.#clock();
    const replica = hlc.replica;
    // After the refusal level (with peers it may be above the collection horizon).
    const level = refusalLevel(await storage.stability(space));
    if (level.hlc !== undefined) hlc.receive(level.hlc);
    const states = new Map<string, RecordState | undefined>();
    for (const op of ops) {
      const at = JSON.stringify([op.collection, op.id]);
      if (states.has(at)) continue;
      const stored = await storage.record(space, op.collection, op.id);
      const pending = state.overlay.get(at)?.state;
      const current = stored && pending ? joinRecordStates(stored, pending) : (stored ?? pending);
      states.set(at, current);
      const latest = current && latestStamp(current);
      if (latest !== undefined) hlc.receive(latest);
    }
    let seq = state.seq ?? (await storage.replicaProgress(space, [replica])).get(replica) ?? 0;
    const changes: Change[] = [];
    for (const [i, op] of ops.entries()) {
      seq++;
      const head = { space, collection: op.collection, id: op.id, replica, seq, hlc: formatTimestamp(hlc.now()) };
      const at = JSON.stringify([op.collection, op.id]);
      let change: Change;
      if (op.op === 'put') change = { ...head, op: 'put', fields: op.fields };
      else if (op.op === 'patch') change = { ...head, op: 'patch', fields: op.fields, unset: op.unset };
      else if (op.op === 'delete') change = { ...head, op: 'delete' };
      // Supersedes every version of the record it knows of, those of earlier writes (of this batch, in flight) too.
      else change = { ...head, op: 'version', value: op.value, context: new Map(contextFor(states.get(at)?.merge)) };
      try {
        checkChange(change);
      } catch (error) {
        const code = error instanceof SynclineError ? error.code : 'invalid_message';
        throw new WriteRefused(code === 'invalid_change' ? 'invalid_request' : code, `write ${i} refused: ${(error as Error).message}`);
      }
      changes.push(change);
      states.set(at, applyChange(states.get(at), change));
    }
    state.seq = seq;
    const result: WriteResult = { space, replica, changes: changes.map((c) => ({ collection: c.collection, id: c.id, op: c.op as WriteOp['op'], seq: c.seq, hlc: c.hlc })) };
    const idempotency = key && { key: key.key, at: this.#ctx.now(), response: JSON.stringify({ fingerprint: key.fingerprint, result } satisfies Replay) };
    const request: AppendRequest = { space, replica, changes, ...(idempotency ? { idempotency } : {}) };
    const touched = [...states].map(([at, current]) => ({ key: at, state: current as RecordState }));
    return { request, result, touched };
  }
}

/** A clock under a new id `api-…` that goes on from `after`'s last timestamp. */
function newClock(now: () => number, after?: Hlc): Hlc {
  const replica = `api-${randomBytes(12).toString('base64url')}` as ReplicaId;
  return new Hlc({ replica, now, ...(after ? { last: { ...after.last, replica } } : {}) });
}

function noop(): void {}

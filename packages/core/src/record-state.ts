/**
 * The state of one record: the join of every change applied to it, whatever the
 * order, duplication or delay. The lww, merge and crdt parts are each a join
 * semilattice, so their product is one too. `materialize` derives what an app sees.
 */
import type { Change } from './change.js';
import { applyCrdt, canonicalCrdtUpdate, crdtValue, joinCrdt, type CrdtField } from './crdt.js';
import { InvalidChangeError } from './errors.js';
import type { HlcString } from './hlc.js';
import type { ReplicaId } from './ids.js';
import { canonicalJson, setOwn, type Fields, type Json } from './json.js';
import { applyLww, EMPTY_LWW, joinLww, lwwDeletedAt, lwwEntries, lwwFields, type LwwState } from './lww.js';
import { applyVersion, EMPTY_MERGE, joinMerge, latestWins, withoutWriters, type MergeState, type Resolver, type Version } from './merge.js';
import { toEntries } from './version-vector.js';

/**
 * Everything known about one record: the join of every change applied to it.
 * Opaque to apps (read records through a replica); servers store it as it is
 * and send it in snapshots.
 */
export interface RecordState {
  /** The lww part: field registers, put/delete stamps (lww.ts). */
  readonly lww?: LwwState;
  /** The merge part: versions and siblings (merge.ts). */
  readonly merge?: MergeState;
  /** The crdt fields, by name: each one's merged Yjs update (crdt.ts). */
  readonly crdt?: ReadonlyMap<string, CrdtField>;
}

/** The state of a record nothing was applied to. */
export const EMPTY_RECORD: RecordState = {};

/**
 * Applies one change. Pure: returns a new state and never mutates `state`.
 * Idempotent, and the order of changes does not matter: the result is a join.
 * Does not validate the change (validate input first); throws
 * InvalidChangeError (`invalid_change`) for a crdt update Yjs cannot read.
 */
export function applyChange(state: RecordState | undefined, change: Change): RecordState {
  const base = state ?? EMPTY_RECORD;
  switch (change.op) {
    case 'put':
    case 'patch':
    case 'delete': {
      const lww = applyLww(base.lww ?? EMPTY_LWW, change, change.hlc);
      // Most records have lww fields only: no spread of the other parts.
      return base.merge === undefined && base.crdt === undefined ? { lww } : { ...base, lww };
    }
    case 'version':
      return { ...base, merge: applyVersion(base.merge ?? EMPTY_MERGE, change, change.replica, change.seq, change.hlc) };
    case 'crdt': {
      const crdt = new Map(base.crdt);
      try {
        crdt.set(change.field, applyCrdt(crdt.get(change.field), change, change.hlc));
      } catch (cause) {
        throw new InvalidChangeError(`not a valid Yjs update: ${(cause as Error).message}`, 'update');
      }
      return { ...base, crdt };
    }
  }
}

/** Applies changes in turn (see applyChange); `state` undefined starts from EMPTY_RECORD. */
export function applyChanges(state: RecordState | undefined, changes: Iterable<Change>): RecordState {
  let out = state ?? EMPTY_RECORD;
  for (const change of changes) out = applyChange(out, change);
  return out;
}

/** Join of two record states (a snapshot with local history, two servers' views). */
export function joinRecordStates(a: RecordState, b: RecordState): RecordState {
  const out: { lww?: LwwState; merge?: MergeState; crdt?: Map<string, CrdtField> } = {};
  if (a.lww || b.lww) out.lww = a.lww && b.lww ? joinLww(a.lww, b.lww) : (a.lww ?? b.lww);
  if (a.merge || b.merge) out.merge = a.merge && b.merge ? joinMerge(a.merge, b.merge) : (a.merge ?? b.merge);
  if (a.crdt || b.crdt) {
    const crdt = new Map(a.crdt);
    for (const [name, field] of b.crdt ?? []) {
      const mine = crdt.get(name);
      crdt.set(name, mine ? joinCrdt(mine, field) : field);
    }
    out.crdt = crdt;
  }
  return out;
}

/**
 * `state` without the merge-context entries of retired writers that hold no
 * sibling (merge.ts, withoutWriters): the server drops them from what it
 * stores once those writers are retired. `state` itself when nothing goes.
 */
export function withoutRetired(state: RecordState, retired: (replica: ReplicaId) => boolean): RecordState {
  if (!state.merge) return state;
  const merge = withoutWriters(state.merge, retired);
  return merge === state.merge ? state : { ...state, merge };
}

/** What an app sees of a record state (`materialize`). */
export interface RecordView {
  /** False when the record was never written or its latest state is deleted. */
  readonly exists: boolean;
  /** Visible fields, crdt fields included (text as a string, map as an object, array as an array). */
  readonly value: Fields | undefined;
  /** For merge records: the concurrent versions, oldest first (length > 1 means a conflict). */
  readonly siblings: readonly Version[];
}

/** Options of `materialize`. */
export interface MaterializeOptions {
  /** merge records: chooses the visible value from the siblings (default: highest HLC). */
  readonly resolve?: Resolver;
}

const NO_SIBLINGS: readonly Version[] = Object.freeze([]);

/** An lww-only record exists: written, and not deleted since. */
function lwwExists(lww: LwwState): boolean {
  return (lww.touched !== undefined || lww.deleted !== undefined) && lwwDeletedAt(lww) === undefined;
}

/** materialize(state).exists, without building the value for the common lww-only record (quota counts). */
export function recordExists(state: RecordState | undefined): boolean {
  if (state?.lww && !state.merge && !state.crdt) return lwwExists(state.lww);
  return materialize(state).exists;
}

/**
 * The visible record of a state: whether it exists, its fields (lww fields, or
 * the resolved merge version, plus crdt fields as JSON) and its merge siblings.
 * Deterministic: equal states give equal views on every replica.
 */
export function materialize(state: RecordState | undefined, options: MaterializeOptions = {}): RecordView {
  if (!state) return { exists: false, value: undefined, siblings: NO_SIBLINGS };
  // Most records: lww fields only.
  if (state.lww && !state.merge && !state.crdt) {
    if (!lwwExists(state.lww)) return { exists: false, value: undefined, siblings: NO_SIBLINGS };
    return { exists: true, value: lwwFields(state.lww), siblings: NO_SIBLINGS };
  }
  let base: Fields | null = null;
  let deletedAt: HlcString | undefined;
  /** The latest record delete, even if later writes revived the record: crdt fields last edited before it are gone. */
  let tombstone: HlcString | undefined;
  let written = false;
  const siblings = state.merge?.siblings ?? [];
  if (state.merge && siblings.length > 0) {
    written = true;
    base = (options.resolve ?? latestWins)(siblings);
    if (base === null) deletedAt = (siblings[siblings.length - 1] as Version).hlc;
    tombstone = deletedAt;
  } else if (state.lww) {
    written = state.lww.touched !== undefined || state.lww.deleted !== undefined;
    deletedAt = lwwDeletedAt(state.lww);
    tombstone = state.lww.deleted;
    base = deletedAt === undefined ? lwwFields(state.lww) : null;
  }
  let revivedByCrdt = false;
  const crdtValues: Array<[string, Json]> = [];
  for (const name of [...(state.crdt?.keys() ?? [])].sort()) {
    const field = state.crdt?.get(name) as CrdtField;
    written = true;
    // Like an lww field, a crdt field edited before the delete does not come back with the record.
    if (tombstone !== undefined && field.touched < tombstone) continue;
    revivedByCrdt ||= deletedAt !== undefined;
    crdtValues.push([name, crdtValue(field)]);
  }
  const exists = written && (deletedAt === undefined || revivedByCrdt);
  if (!exists) return { exists: false, value: undefined, siblings };
  // The lww fields are the state's own (shared with it, never changed): no copy (a resolver's choice is copied, since it may be anyone's).
  if (crdtValues.length === 0 && !(state.merge && siblings.length > 0)) return { exists: true, value: base ?? {}, siblings };
  const value: Record<string, Json> = {};
  for (const [name, v] of Object.entries(base ?? {})) setOwn(value, name, v);
  for (const [name, v] of crdtValues) setOwn(value, name, v);
  return { exists: true, value, siblings };
}

/**
 * A canonical string of a record state: equal for two replicas that applied the
 * same set of changes. Used by convergence checks and anti-entropy.
 */
export function canonicalState(state: RecordState | undefined): string {
  if (!state) return '{}';
  const parts: string[] = [];
  if (state.lww) {
    const { cleared, deleted, touched } = state.lww;
    const fields = [...lwwEntries(state.lww)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    parts.push(
      `lww:${JSON.stringify([cleared ?? null, deleted ?? null, touched ?? null])}:${fields
        .map(([name, f]) => `${JSON.stringify(name)}=${f.hlc}:${f.value === undefined ? '-' : canonicalJson(f.value)}`)
        .join(',')}`,
    );
  }
  if (state.merge) {
    parts.push(
      `merge:${JSON.stringify(toEntries(state.merge.seen))}:${state.merge.siblings
        .map((v) => `${v.replica}:${v.seq}:${v.hlc}:${v.value === null ? '-' : canonicalJson(v.value)}:${JSON.stringify(toEntries(v.context))}`)
        .join(',')}`,
    );
  }
  if (state.crdt) {
    for (const name of [...state.crdt.keys()].sort()) {
      const field = state.crdt.get(name) as CrdtField;
      parts.push(`crdt:${JSON.stringify(name)}:${field.type}:${field.touched}:${hex(canonicalCrdtUpdate(field))}`);
    }
  }
  return parts.join('\n');
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

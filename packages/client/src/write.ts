/**
 * Turns a local write into a change and the record's next stored form. Pure
 * functions; the replica runs them inside one storage transaction.
 */
import {
  applyChange,
  collectibleAt,
  contextFor,
  materialize,
  setOwn,
  type Change,
  type CrdtType,
  type Fields,
  type HlcString,
  type Json,
  type RecordState,
  type ReplicaId,
  type SpaceId,
} from '@syncline/core/internal';
import { indexKeys, NO_KEYS, type CollectionDef } from './schema.js';
import type { StoredRecord } from './storage/types.js';
import type { Trim } from './retired.js';

export type WriteOp =
  | { readonly kind: 'put'; readonly collection: string; readonly id: string; readonly space: SpaceId; readonly value: Fields }
  | { readonly kind: 'patch'; readonly collection: string; readonly id: string; readonly space: SpaceId; readonly patch: Readonly<Record<string, Json | undefined>> }
  | { readonly kind: 'delete'; readonly collection: string; readonly id: string; readonly space: SpaceId }
  | {
      readonly kind: 'crdt';
      readonly collection: string;
      readonly id: string;
      readonly space: SpaceId;
      readonly field: string;
      readonly type: CrdtType;
      readonly update: Uint8Array;
    };

/** The fields an lww patch sets (undefined values mean unset). */
export function splitPatch(patch: Readonly<Record<string, Json | undefined>>): { fields: Fields; unset: string[] } {
  const fields: Record<string, Json> = {};
  const unset: string[] = [];
  for (const name of Object.keys(patch)) {
    const v = patch[name];
    if (v === undefined) unset.push(name);
    else setOwn(fields, name, v);
  }
  return { fields, unset };
}

/** The value a merge-policy patch writes: the visible value with the patch applied. */
export function patched(base: Fields | undefined, patch: Readonly<Record<string, Json | undefined>>): Fields {
  const out: Record<string, Json> = {};
  for (const name of Object.keys(base ?? {})) setOwn(out, name, (base as Fields)[name] as Json);
  for (const name of Object.keys(patch)) {
    const v = patch[name];
    if (v === undefined) delete out[name];
    else setOwn(out, name, v);
  }
  return out;
}

/** Drops crdt fields from a merge-policy base value (they live in their own documents). */
function withoutCrdt(def: CollectionDef, value: Fields | undefined): Fields | undefined {
  if (!value || def.crdt.size === 0) return value;
  const out: Record<string, Json> = {};
  for (const name of Object.keys(value)) if (!def.crdt.has(name)) setOwn(out, name, value[name] as Json);
  return out;
}

export function buildChange(op: WriteOp, def: CollectionDef, state: RecordState | undefined, replica: ReplicaId, seq: number, hlc: HlcString): Change {
  const header = { space: op.space, collection: op.collection, id: op.id, replica, seq, hlc };
  if (op.kind === 'crdt') return { ...header, op: 'crdt', field: op.field, type: op.type, update: op.update };
  if (def.policy === 'merge') {
    const context = contextFor(state?.merge);
    if (op.kind === 'delete') return { ...header, op: 'version', value: null, context };
    const base = withoutCrdt(def, materialize(state, { resolve: def.resolve }).value);
    const value = op.kind === 'put' ? op.value : patched(base, op.patch);
    return { ...header, op: 'version', value, context };
  }
  switch (op.kind) {
    case 'put':
      return { ...header, op: 'put', fields: op.value };
    case 'patch':
      return { ...header, op: 'patch', ...splitPatch(op.patch) };
    case 'delete':
      return { ...header, op: 'delete' };
  }
}

/**
 * The write that makes `change` (of any replica) again at `target`: what a
 * rejoining replica writes anew for a change it never synced. A merge version
 * is a put of its value (a delete when null).
 */
export function writeOpOf(change: Change, target: { collection: string; id: string; space: SpaceId }): WriteOp {
  switch (change.op) {
    case 'put':
      return { kind: 'put', ...target, value: change.fields };
    case 'patch': {
      const patch: Record<string, Json | undefined> = { ...change.fields };
      for (const name of change.unset) patch[name] = undefined;
      return { kind: 'patch', ...target, patch };
    }
    case 'delete':
      return { kind: 'delete', ...target };
    case 'version':
      return change.value === null ? { kind: 'delete', ...target } : { kind: 'put', ...target, value: change.value as Fields };
    case 'crdt':
      return { kind: 'crdt', ...target, field: change.field, type: change.type, update: change.update };
  }
}

/** The stored form of a record after a change: state, visible value, index keys. */
export function storedRecord(def: CollectionDef | undefined, key: { collection: string; id: string; space: SpaceId }, state: RecordState): StoredRecord {
  const view = materialize(state, { resolve: def?.resolve });
  const value = view.exists ? view.value : undefined;
  const dead = value === undefined ? collectibleAt(state) : undefined;
  // Built in the order the memory store keeps records (one object shape).
  return { space: key.space, collection: key.collection, id: key.id, state, value, ix: def ? indexKeys(def, key.id, key.space, value) : NO_KEYS, ...(dead !== undefined ? { dead } : {}) };
}

/**
 * `record` with `change` applied. `trim`: the replica's retired replicas
 * (retired.ts), whose merge-context entries the result keeps only where a
 * sibling needs them.
 */
export function applyToStored(def: CollectionDef | undefined, record: StoredRecord | undefined, change: Change, trim?: Trim): StoredRecord {
  const applied = applyChange(record?.state, change);
  const state = trim && applied.merge ? trim(applied) : applied;
  return storedRecord(def, { collection: change.collection, id: change.id, space: change.space }, state);
}

/**
 * Checks a write before it is queued: values and patches must be JSON and
 * must not name crdt fields (those are edited through their Yjs objects), and
 * a collection's validator must accept the value the write would produce.
 */
import { isFields, type Fields, type Json } from '@syncline/core/internal';
import { ReplicaError } from './errors.js';
import { collectionOf } from './query.js';
import type { CollectionDef } from './schema.js';
import type { WriteOp } from './write.js';

type Collections = ReadonlyMap<string, CollectionDef>;
export type Patch = Readonly<Record<string, Json | undefined>>;

export function checkValue(collections: Collections, collection: string, value: Fields): Fields {
  if (!isFields(value)) throw new ReplicaError('invalid_argument', `value for "${collection}" must be a plain object of JSON values`);
  checkNoCrdt(collections, collection, Object.keys(value));
  return value;
}

export function checkPatch(collections: Collections, collection: string, patch: Patch): Patch {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new ReplicaError('invalid_argument', 'patch must be an object');
  for (const name of Object.keys(patch)) {
    const v = patch[name];
    if (v !== undefined && !isFields({ v })) throw new ReplicaError('invalid_argument', `patch field "${name}" is not a JSON value`);
  }
  checkNoCrdt(collections, collection, Object.keys(patch));
  return patch;
}

function checkNoCrdt(collections: Collections, collection: string, names: string[]): void {
  const def = collectionOf(collections, collection);
  for (const name of names) {
    if (def.crdt.has(name)) throw new ReplicaError('invalid_argument', `"${name}" is a crdt field of "${collection}"; edit it through replica.${def.crdt.get(name)}()`);
  }
}

/** Runs collection validators on the value each write would produce (`current` reads a record's value now). */
export async function validateWrites(collections: Collections, ops: readonly WriteOp[], current: (op: WriteOp) => Promise<{ readonly value: Fields } | undefined>): Promise<void> {
  for (const op of ops) {
    const def = collectionOf(collections, op.collection);
    if (!def.validate || op.kind === 'delete' || op.kind === 'crdt') continue;
    let value: Fields;
    if (op.kind === 'put') value = op.value;
    else {
      const merged: Record<string, Json | undefined> = { ...((await current(op))?.value ?? {}) };
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

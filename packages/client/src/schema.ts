/**
 * The app's schema: collections, each with a conflict policy, indexes, crdt
 * fields and an optional Standard Schema validator (zod, valibot, arktype …).
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { isName, type CrdtType, type Fields, type Json, type Resolver } from '@syncline/core/internal';
import { ReplicaError } from './errors.js';
import { isKeyPart, type Key } from './storage/keys.js';
import type { CheckedSchema, Typed } from './value-type.js';

/** One collection of a schema. */
export interface CollectionSchema {
  /** The value type of its records, for the compiler: `type: typed<Event>()` (typed.ts). Checks nothing at run time. */
  readonly type?: Typed<object>;
  /** 'lww' (default): last writer wins per field. 'merge': concurrent writes are kept as siblings. */
  readonly policy?: 'lww' | 'merge';
  /** merge: picks the visible value from the siblings; deterministic and pure. Default: the latest (HLC). */
  readonly resolve?: Resolver;
  /** Indexes by name: the field names whose values form the index key, in order. */
  readonly indexes?: Readonly<Record<string, readonly string[]>>;
  /** Fields that hold a Yjs type: edited through replica.text()/map()/array(). */
  readonly crdt?: Readonly<Record<string, CrdtType>>;
  /**
   * A Standard Schema validator (zod, valibot, arktype …) run on the whole value
   * each local write would produce (crdt fields excluded); a refusal is a
   * ReplicaError `validation_failed` and nothing is written. The value is stored
   * as written (the validator checks; it does not transform). Without `type`,
   * its input type types the collection.
   */
  readonly validate?: StandardSchemaV1;
}

/** An app's schema: collection names to their definitions. */
export type Schema = Readonly<Record<string, CollectionSchema>>;

/** Identity function that keeps the literal types of a schema (for `typeof schema` in hooks and helpers). */
export function defineSchema<const S extends Schema>(schema: S & CheckedSchema<S>): S {
  return schema;
}

/** One index of a collection as the replica opened it (`replica.collections`). */
export interface IndexDef {
  /** The collection it indexes. */
  readonly collection: string;
  /** The index's name in the schema. */
  readonly name: string;
  /**
   * The field names whose values form the index key, in order. A record is in
   * the index only when each of them holds a number (not NaN) or a string.
   */
  readonly fields: readonly string[];
  /** Stable number stored in every index key; assigned once per database. */
  readonly number: number;
}

/** One collection as the replica opened it (`replica.collections`): its CollectionSchema with the defaults filled in. */
export interface CollectionDef {
  /** The collection's name in the schema. */
  readonly name: string;
  /** Its conflict policy; 'lww' when the schema gives none. */
  readonly policy: 'lww' | 'merge';
  /** merge: the schema's resolver; undefined when it gives none (the latest version wins). */
  readonly resolve: Resolver | undefined;
  /** Crdt field names to their Yjs type; empty when the schema declares none. */
  readonly crdt: ReadonlyMap<string, CrdtType>;
  /** Its indexes by name; empty when the schema declares none. */
  readonly indexes: ReadonlyMap<string, IndexDef>;
  /** The schema's Standard Schema validator, if any. */
  readonly validate: StandardSchemaV1 | undefined;
}

/** Index name key in the persisted numbering (collection and index names are data). */
export const indexKey = (collection: string, index: string): string => JSON.stringify([collection, index]);

export function checkSchema(schema: Schema): void {
  for (const [name, def] of Object.entries(schema)) {
    if (!isName(name)) throw new ReplicaError('invalid_argument', `invalid collection name ${JSON.stringify(name)}`);
    if (def.policy !== undefined && def.policy !== 'lww' && def.policy !== 'merge') {
      throw new ReplicaError('invalid_argument', `collection "${name}": policy must be "lww" or "merge"`);
    }
    for (const [index, fields] of Object.entries(def.indexes ?? {})) {
      if (!Array.isArray(fields) || fields.length === 0 || !fields.every(isName)) {
        throw new ReplicaError('invalid_argument', `collection "${name}" index "${index}": list one or more field names`);
      }
    }
    for (const [field, type] of Object.entries(def.crdt ?? {})) {
      if (type !== 'text' && type !== 'map' && type !== 'array') {
        throw new ReplicaError('invalid_argument', `collection "${name}" crdt field "${field}": type must be text, map or array`);
      }
    }
  }
}

/** The index keys of a record no index covers: one frozen array for all of them. */
export const NO_KEYS: readonly Key[] = Object.freeze([]);

/** The index keys of a record: [indexNumber, ...values, id, space] per index whose fields are all indexable. */
export function indexKeys(collection: CollectionDef, id: string, space: string, value: Fields | undefined): readonly Key[] {
  if (value === undefined || collection.indexes.size === 0) return NO_KEYS;
  const out: Key[] = [];
  // One array per key, built in place: this runs for every record written or received.
  collection.indexes.forEach((index) => {
    const key: Key[] = [index.number];
    for (const field of index.fields) {
      const v: Json | undefined = Object.hasOwn(value, field) ? value[field] : undefined;
      if (!isKeyPart(v)) return;
      key.push(v);
    }
    key.push(id, space);
    out.push(key);
  });
  return out;
}

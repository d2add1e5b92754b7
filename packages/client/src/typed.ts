/**
 * Types that follow from the app's schema: collection names, index names, crdt
 * field names and record values. Only types: the `typed()` marker is in value-type.ts.
 *
 * A collection's value type comes from, in order: a type the app declares
 * (`type: typed<Event>()`), the input type of its Standard Schema validator
 * (`validate`), or plain JSON fields. A schema typed only as `Schema` (built at
 * run time) gives plain strings and JSON fields everywhere, as before.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Fields, Json, Version } from '@syncline/core/internal';
import type { Schema } from './schema.js';
import type { Typed } from './value-type.js';

/** True for a schema typed only as `Schema`: every name is a string. */
type IsWide<K> = string extends K ? true : false;

/** The collection names of a schema. */
export type CollectionName<S extends Schema> = keyof S & string;

/** The index names declared on collection `C`. */
export type IndexName<S extends Schema, C extends CollectionName<S>> =
  S[C] extends {
    /** The collection's `indexes` map (CollectionSchema.indexes): its keys are the index names. */
    readonly indexes?: infer I
  } ? (IsWide<keyof NonNullable<I>> extends true ? string : keyof NonNullable<I> & string) : never;

/** The crdt map of collection `C` (field name to Yjs type). */
type CrdtMap<S extends Schema, C extends CollectionName<S>> = S[C] extends { readonly crdt?: infer M } ? NonNullable<M> : Record<never, never>;

/** The crdt fields of collection `C` whose Yjs type is `K` (any crdt type by default). */
export type CrdtFieldName<S extends Schema, C extends CollectionName<S>, K extends string = 'text' | 'map' | 'array'> =
  IsWide<keyof CrdtMap<S, C>> extends true ? string : { [F in keyof CrdtMap<S, C>]: CrdtMap<S, C>[F] extends K ? F : never }[keyof CrdtMap<S, C>] & string;

/** The collections whose policy is `merge` (those `conflicts()` reads). */
export type MergeCollectionName<S extends Schema> =
  IsWide<keyof S> extends true ? string : { [C in keyof S]: S[C] extends {
    /** The collection's policy (CollectionSchema.policy): only collections declared 'merge' match. */
    readonly policy: 'merge'
  } ? C : never }[keyof S] & string;

/** The value type the schema gives collection `C`, crdt fields included as declared. */
type DeclaredValue<S extends Schema, C extends CollectionName<S>> = S[C] extends { readonly type: Typed<infer T> }
  ? T
  : S[C] extends { readonly validate: infer V extends StandardSchemaV1 }
    ? StandardSchemaV1.InferInput<V>
    : Fields;

/** Omit that keeps a union a union (each member loses the keys). */
type OmitEach<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The crdt fields as reads show them: a text as its string, a map as an object, an array as an array. */
type CrdtValues<S extends Schema, C extends CollectionName<S>> = {
  readonly [F in keyof CrdtMap<S, C>]?: CrdtMap<S, C>[F] extends 'text' ? string : CrdtMap<S, C>[F] extends 'map' ? { readonly [key: string]: Json } : readonly Json[];
};

/** What `put` takes for collection `C`: its value without the crdt fields (edited through their Yjs objects). */
export type WriteValue<S extends Schema, C extends CollectionName<S>> = [CrdtFieldName<S, C>] extends [never]
  ? DeclaredValue<S, C>
  : IsWide<CrdtFieldName<S, C>> extends true
    ? DeclaredValue<S, C>
    : OmitEach<DeclaredValue<S, C>, CrdtFieldName<S, C>>;

/** What `patch` takes for collection `C`: some fields of its value; a field given as undefined is removed. */
export type PatchValue<S extends Schema, C extends CollectionName<S>> =
  WriteValue<S, C> extends infer W ? (W extends unknown ? { readonly [K in keyof W]?: W[K] | undefined } : never) : never;

/** What reads return for collection `C`: its value, with the crdt fields' current contents. */
export type ReadValue<S extends Schema, C extends CollectionName<S>> = [CrdtFieldName<S, C>] extends [never]
  ? DeclaredValue<S, C>
  : IsWide<CrdtFieldName<S, C>> extends true
    ? DeclaredValue<S, C>
    : WriteValue<S, C> & CrdtValues<S, C>;

/** A sibling of a merge record (`conflicts()`), its value typed by the collection. */
export type Sibling<T = Fields> = Omit<Version, 'value'> & {
  /** The version's value; null when the version is a delete. */
  readonly value: T | null;
};

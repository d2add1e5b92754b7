/**
 * The declared value type of a collection (`type: typed<Event>()`) and the
 * schema checks that use it. Apart from typed.ts, which derives the API's
 * types from a whole schema, so that schema.ts can use these without a cycle.
 */

declare const VALUE_TYPE: unique symbol;

/** The marker `typed<T>()` returns: it carries a collection's value type for the compiler only. */
export interface Typed<T> {
  /** Never set: the type exists for the compiler only. */
  readonly [VALUE_TYPE]?: T;
}

const MARKER: Typed<never> = Object.freeze({});

/**
 * Declares the value type of a collection's records: `events: { type: typed<Event>(), … }`.
 * `put` then takes an `Event` (less its crdt fields), `patch` a part of one, and
 * reads return `Event`s; a value of another shape is a compile error. At run
 * time it is an empty object and checks nothing: add a `validate` for that.
 */
export function typed<T extends object>(): Typed<T> {
  return MARKER as Typed<T>;
}

/**
 * The checks a schema's literal type must pass beyond `Schema`: where a
 * collection declares its value type (`type: typed<T>()`), each index names
 * fields of T. A misspelt index field is then a compile error in
 * `defineSchema` (createReplica does not check it, so that generic wrappers of
 * createReplica keep compiling).
 */
export type CheckedSchema<S> = {
  readonly [C in keyof S]: S[C] extends { readonly type: Typed<infer T>; readonly indexes: infer I }
    ? { readonly indexes: { readonly [K in keyof I]: readonly (keyof T & string)[] } }
    : unknown;
};

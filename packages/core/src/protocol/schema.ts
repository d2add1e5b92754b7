/**
 * A small schema language for the wire protocol. Each schema reads an untrusted
 * value parsed from a frame (checking it and building the typed result in one
 * pass), writes a typed value back to its JSON form, and describes itself so a
 * test can hash the whole protocol and catch wire changes made without a version bump.
 *
 * Why not a general validation library: wire values carry binary attachments
 * (Yjs updates travel as bytes, not base64) that must be resolved while reading,
 * and user field names such as `__proto__` must pass through as data; the
 * libraries we tried either drop such keys or assign them onto plain objects.
 */
import { ProtocolError } from '../errors.js';
import { findNonJson, isPlainObject, type Fields, type Json } from '../json.js';

export interface ReadContext {
  /** How many attachments the frame has. */
  readonly attachmentCount: number;
  /** A copy of attachment `index` (0 <= index < attachmentCount): copied only when a field points to it. */
  attachment(index: number): Uint8Array;
}
export interface WriteContext {
  readonly attachments: Uint8Array[];
}

export interface Schema<T> {
  /** Stable description of the wire shape; part of the protocol hash. */
  readonly describe: string;
  /** True when write() returns its input unchanged (no bytes or Maps inside). */
  readonly identity: boolean;
  read(value: unknown, ctx: ReadContext, path: string): T;
  write(value: T, ctx: WriteContext): unknown;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

export function invalid(path: string, expected: string): never {
  throw new ProtocolError('invalid_message', `expected ${expected}`, path || '$');
}

function leaf<T>(describe: string, check: (value: unknown) => boolean, expected = describe): Schema<T> {
  return {
    describe,
    identity: true,
    read: (value, _ctx, path) => (check(value) ? (value as T) : invalid(path, expected)),
    write: (value) => value,
  };
}

export function string<T extends string = string>(name: string, check: (value: string) => boolean = () => true): Schema<T> {
  return leaf<T>(`string:${name}`, (v) => typeof v === 'string' && check(v), name);
}

export function int(min = 0, max = Number.MAX_SAFE_INTEGER): Schema<number> {
  return leaf(`int:${min}:${max}`, (v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max, `an integer in [${min}, ${max}]`);
}

export const boolean: Schema<boolean> = leaf('boolean', (v) => typeof v === 'boolean');

export function literal<const T extends string>(value: T): Schema<T> {
  return leaf(`literal:${value}`, (v) => v === value, JSON.stringify(value));
}

export function oneOf<const T extends string>(values: readonly T[]): Schema<T> {
  return leaf(`oneOf:${values.join('|')}`, (v) => values.includes(v as T), `one of ${values.join(', ')}`);
}

/** Any JSON value (as parsed; objects keep `__proto__` as an own key). */
export const json: Schema<Json> = {
  describe: 'json',
  identity: true,
  read(value, _ctx, path) {
    const bad = findNonJson(value, path);
    return bad === undefined ? (value as Json) : invalid(bad, 'a JSON value');
  },
  write: (value) => value,
};

/** A record's fields: a JSON object whose keys are data. */
export const fields: Schema<Fields> = {
  describe: 'fields',
  identity: true,
  read(value, ctx, path) {
    if (!isPlainObject(value)) invalid(path, 'an object of fields');
    return json.read(value, ctx, path) as Fields;
  },
  write: (value) => value,
};

/** Bytes travel as attachments; the JSON holds the attachment's index. */
export const bytes: Schema<Uint8Array> = {
  describe: 'bytes',
  identity: false,
  read(value, ctx, path) {
    if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) >= ctx.attachmentCount) {
      invalid(path, 'an attachment index');
    }
    return ctx.attachment(value as number);
  },
  write(value, ctx) {
    ctx.attachments.push(value);
    return ctx.attachments.length - 1;
  },
};

export function optional<T>(schema: Schema<T>): Schema<T | undefined> {
  return {
    describe: `optional(${schema.describe})`,
    identity: schema.identity,
    read: (value, ctx, path) => (value === undefined || value === null ? undefined : schema.read(value, ctx, path)),
    write: (value, ctx) => (value === undefined ? undefined : schema.write(value, ctx)),
  };
}

export function nullable<T>(schema: Schema<T>): Schema<T | null> {
  return {
    describe: `nullable(${schema.describe})`,
    identity: schema.identity,
    read: (value, ctx, path) => (value === null ? null : schema.read(value, ctx, path)),
    write: (value, ctx) => (value === null ? null : schema.write(value, ctx)),
  };
}

export function array<T>(item: Schema<T>, max = Number.MAX_SAFE_INTEGER): Schema<T[]> {
  return {
    describe: `array(${item.describe},${max})`,
    identity: item.identity,
    read(value, ctx, path) {
      if (!Array.isArray(value) || value.length > max) invalid(path, `an array of at most ${max} items`);
      const out = new Array<T>(value.length);
      for (let i = 0; i < value.length; i++) out[i] = item.read(value[i], ctx, `${path}[${i}]`);
      return out;
    },
    write: (value, ctx) => (item.identity ? value : value.map((v) => item.write(v, ctx))),
  };
}

type TupleOf<S extends readonly Schema<unknown>[]> = { -readonly [K in keyof S]: Infer<S[K]> };

export function tuple<const S extends readonly Schema<unknown>[]>(...items: S): Schema<TupleOf<S>> {
  const identity = items.every((s) => s.identity);
  return {
    describe: `tuple(${items.map((s) => s.describe).join(',')})`,
    identity,
    read(value, ctx, path) {
      if (!Array.isArray(value) || value.length !== items.length) invalid(path, `an array of ${items.length} items`);
      return items.map((s, i) => s.read(value[i], ctx, `${path}[${i}]`)) as TupleOf<S>;
    },
    write: (value, ctx) => (identity ? value : items.map((s, i) => s.write(value[i], ctx))),
  };
}

type Shape = Readonly<Record<string, Schema<unknown>>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: undefined extends Infer<S[K]> ? K : never }[keyof S];
export type ObjectOf<S extends Shape> = { readonly [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & {
  readonly [K in OptionalKeys<S>]?: Infer<S[K]>;
};

/**
 * An object with known keys (protocol names, never user data); unknown keys are
 * dropped when reading and never written, and keys are written in sorted order, so
 * the encoding depends neither on the caller's key order nor on extra properties.
 */
export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  const keys = Object.keys(shape).sort();
  return {
    describe: `object{${keys.map((k) => `${k}:${(shape[k] as Schema<unknown>).describe}`).join(',')}}`,
    identity: false,
    read(value, ctx, path) {
      if (!isPlainObject(value)) invalid(path, 'an object');
      const out: Record<string, unknown> = {};
      for (const key of keys) {
        const v = (shape[key] as Schema<unknown>).read(Object.hasOwn(value, key) ? value[key] : undefined, ctx, `${path}.${key}`);
        if (v !== undefined) out[key] = v;
      }
      return out as ObjectOf<S>;
    },
    write(value, ctx) {
      const out: Record<string, unknown> = {};
      const input = value as Record<string, unknown>;
      for (const key of keys) {
        if (input[key] !== undefined) out[key] = (shape[key] as Schema<unknown>).write(input[key], ctx);
      }
      return out;
    },
  };
}

/**
 * A union told apart by one key: each variant is an object schema whose
 * `key` entry is a literal. The result keeps the discriminant.
 */
export function variants<K extends string, V extends Record<string, Schema<Record<string, unknown>>>>(
  key: K,
  options: V,
): Schema<Infer<V[keyof V]>> {
  const names = Object.keys(options).sort();
  return {
    describe: `variants(${key};${names.map((n) => `${n}=${(options[n] as Schema<unknown>).describe}`).join(';')})`,
    identity: names.every((n) => (options[n] as Schema<unknown>).identity),
    read(value, ctx, path) {
      if (!isPlainObject(value)) invalid(path, 'an object');
      const tag = value[key];
      if (typeof tag !== 'string' || !Object.hasOwn(options, tag)) invalid(`${path}.${key}`, `one of ${names.join(', ')}`);
      return (options[tag] as Schema<Infer<V[keyof V]>>).read(value, ctx, path);
    },
    write(value, ctx) {
      const tag = (value as Record<string, unknown>)[key] as string;
      return (options[tag] as Schema<Infer<V[keyof V]>>).write(value, ctx);
    },
  };
}

/** Maps a wire shape to a richer in-memory type (pairs to a Map, for example). */
export function transform<W, T>(
  wire: Schema<W>,
  name: string,
  toValue: (wire: W, path: string) => T,
  toWire: (value: T) => W,
): Schema<T> {
  return {
    describe: `${name}(${wire.describe})`,
    identity: false,
    read: (value, ctx, path) => toValue(wire.read(value, ctx, path), path),
    write: (value, ctx) => wire.write(toWire(value), ctx),
  };
}

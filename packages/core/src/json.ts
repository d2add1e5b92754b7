/**
 * JSON values as Syncline stores them. Object keys are data: every object built
 * here gets its keys through defineProperty so `__proto__` stays an ordinary key.
 */
/** A JSON value: null, a boolean, a finite number, a string, an array or a plain object of JSON values. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };
/** A record's fields: own enumerable properties only. */
export type Fields = { readonly [field: string]: Json };

/** The deepest nesting of arrays and objects a value may have: 64. */
export const MAX_JSON_DEPTH = 64;

/**
 * Sets an own, enumerable property, even for keys like `__proto__`. Keys that
 * Object.prototype has (`__proto__`, `toString`, …) are defined, since assigning
 * them would call a setter or fail on frozen intrinsics; any other key is
 * assigned, which is the same for a plain object and several times faster.
 */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  if (key in Object.prototype) Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** True for an object whose prototype is Object.prototype or null (not an array, a Map or a class instance). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns the path of the first thing that is not JSON (undefined, NaN, a class
 * instance, a cycle, too deep), or undefined when the whole value is JSON.
 */
export function findNonJson(value: unknown, path = '$', depth = 0): string | undefined {
  const rest = nonJsonAt(value, depth);
  return rest === undefined ? undefined : `${path}${rest}`;
}

/**
 * The path below `value` to its first non-JSON part ('' for `value` itself). The path is
 * built on the way back from a failure only: every record received is checked, and
 * building a path string per key made the check allocate more than the record.
 */
function nonJsonAt(value: unknown, depth: number): string | undefined {
  if (depth > MAX_JSON_DEPTH) return ` (deeper than ${MAX_JSON_DEPTH})`;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : '';
    case 'object': {
      if (value === null) return undefined;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const bad = nonJsonAt(value[i], depth + 1);
          if (bad !== undefined) return `[${i}]${bad}`;
        }
        return undefined;
      }
      if (!isPlainObject(value)) return '';
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue;
        const bad = nonJsonAt(value[key], depth + 1);
        if (bad !== undefined) return `.${key}${bad}`;
      }
      return undefined;
    }
    default:
      return '';
  }
}

/**
 * A deep copy of JSON fields (checked with isFields first), the top level's keys
 * sorted, frozen all the way down. What a local write stores: the record's
 * state, its visible value and the outbox's change share this one copy, and no
 * later mutation of the app's object reaches them.
 */
export function frozenFieldsCopy(fields: Fields): Fields {
  const names = Object.keys(fields).sort();
  const out: Record<string, Json> = {};
  for (const name of names) setOwn(out, name, frozenJsonCopy(fields[name] as Json));
  return Object.freeze(out);
}

function frozenJsonCopy(value: Json): Json {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return Object.freeze((value as readonly Json[]).map(frozenJsonCopy));
  const out: Record<string, Json> = {};
  for (const key in value) if (Object.hasOwn(value, key)) setOwn(out, key, frozenJsonCopy((value as Fields)[key] as Json));
  return Object.freeze(out);
}

/**
 * An upper bound of the UTF-8 bytes of JSON.stringify(value), by a walk that
 * builds no string: a string takes at most 6 bytes per UTF-16 unit (an escape)
 * and its quotes, a number at most 24. Size checks use it to skip the exact
 * measure of values far below a limit.
 */
export function jsonBytesBound(value: Json | undefined): number {
  switch (typeof value) {
    case 'string':
      return 2 + 6 * value.length;
    case 'number':
      return 24;
    case 'boolean':
      return 5;
    case 'undefined':
      return 0;
    default: {
      if (value === null) return 4;
      let bytes = 2;
      if (Array.isArray(value)) {
        for (const item of value as readonly Json[]) bytes += 1 + jsonBytesBound(item);
        return bytes;
      }
      for (const key in value) if (Object.hasOwn(value, key)) bytes += 4 + 6 * key.length + jsonBytesBound((value as Fields)[key]);
      return bytes;
    }
  }
}

/** True when `value` is JSON: no undefined, NaN, Infinity, function, class instance or cycle, and at most MAX_JSON_DEPTH deep. */
export function isJson(value: unknown): value is Json {
  return findNonJson(value) === undefined;
}

/** True when `value` can be a record's fields: a plain object whose values are all JSON (see isJson). */
export function isFields(value: unknown): value is Fields {
  return isPlainObject(value) && findNonJson(value) === undefined;
}

/**
 * A canonical string for a JSON value: object keys sorted. Used to break ties
 * deterministically and to compare values; never parsed back.
 */
export function canonicalJson(value: Json): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${(value as readonly Json[]).map(canonicalJson).join(',')}]`;
  const obj = value as { readonly [key: string]: Json };
  const keys = Object.keys(obj).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k] as Json)}`).join(',')}}`;
}

/** Builds a Fields object from entries, keeping every key as data. */
export function fieldsFromEntries(entries: Iterable<readonly [string, Json]>): Fields {
  const out: Record<string, Json> = {};
  for (const [key, value] of entries) setOwn(out, key, value);
  return out;
}

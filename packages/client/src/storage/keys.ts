/**
 * Keys in IndexedDB order (numbers < strings < arrays; arrays compared element by
 * element), so the memory adapter sorts exactly like IndexedDB does.
 */
export type Key = number | string | readonly Key[];

/**
 * A range of keys, as an IDBKeyRange: a bound left out leaves that side
 * unbounded. A range no key can fall in (lower above upper, or equal bounds
 * with an open side) is empty, not an error.
 */
export interface KeyRange {
  /** The lowest key in the range (itself included unless `lowerOpen`). */
  readonly lower?: Key;
  /** The highest key in the range (itself included unless `upperOpen`). */
  readonly upper?: Key;
  /** True: `lower` itself is not in the range. Default false. */
  readonly lowerOpen?: boolean;
  /** True: `upper` itself is not in the range. Default false. */
  readonly upperOpen?: boolean;
}

function rank(key: Key): number {
  return typeof key === 'number' ? 0 : typeof key === 'string' ? 1 : 2;
}

/**
 * Compares two keys in IndexedDB order: negative when `a` sorts first, positive
 * when `b` does, 0 when they are equal. Strings compare by UTF-16 code unit;
 * an array sorts before the longer arrays it is a prefix of.
 */
export function compareKeys(a: Key, b: Key): number {
  // Same-type numbers and strings first: index keys are arrays of them, compared by the thousand.
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  const aa = a as readonly Key[];
  const bb = b as readonly Key[];
  const n = Math.min(aa.length, bb.length);
  for (let i = 0; i < n; i++) {
    const x = aa[i] as Key;
    const y = bb[i] as Key;
    // Equal parts are the common case (an index number, a shared prefix); NaN is never a key.
    if (x === y) continue;
    const c = compareKeys(x, y);
    if (c !== 0) return c;
  }
  return aa.length - bb.length;
}

export function inRange(key: Key, range: KeyRange): boolean {
  if (range.lower !== undefined) {
    const c = compareKeys(key, range.lower);
    if (c < 0 || (c === 0 && range.lowerOpen)) return false;
  }
  if (range.upper !== undefined) {
    const c = compareKeys(key, range.upper);
    if (c > 0 || (c === 0 && range.upperOpen)) return false;
  }
  return true;
}

/** A value that can be part of an index key (IndexedDB rejects NaN, objects, booleans, null). */
export function isKeyPart(value: unknown): value is number | string {
  return (typeof value === 'number' && !Number.isNaN(value)) || typeof value === 'string';
}

/** An array key that sorts after every array key starting with `prefix`. */
export const MAX_KEY: Key = [[]];

/**
 * A string key for a record address, unambiguous for any strings (length-prefixed)
 * and cheaper to build than a JSON array.
 */
export function addressKey(collection: string, id: string, space: string): string {
  return `${collection.length}:${collection}${id.length}:${id}${space}`;
}

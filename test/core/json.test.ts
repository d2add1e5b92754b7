/**
 * findNonJson names the first part of a value that is not JSON by its path (the
 * path of a refused write or frame in error messages), and finds nothing in JSON.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findNonJson, frozenFieldsCopy, isJson, jsonBytesBound, type Fields, type Json } from '@syncline/core/internal';

class Point {
  x = 1;
}

describe('findNonJson', () => {
  it.each([
    ['undefined at the top', undefined, '$'],
    ['NaN in an array in an object', { a: [1, Number.NaN] }, '$.a[1]'],
    ['JSON with __proto__ as a key', JSON.parse('{"__proto__": {"deep": [0]}}') as unknown, undefined],
    ['a class instance', { list: [{ ok: true }, new Point()] }, '$.list[1]'],
    ['a function in a nested array', [[0, [() => 1]]], '$[0][1][0]'],
    ['a bigint', { n: 1n }, '$.n'],
    ['a Date', { at: new Date(0) }, '$.at'],
    ['a plain object with a null prototype', Object.assign(Object.create(null) as object, { a: 1 }), undefined],
  ])('%s', (_, value, path) => {
    expect(findNonJson(value)).toBe(path);
    expect(findNonJson(value, '$.fields')).toBe(path === undefined ? undefined : `$.fields${path.slice(1)}`);
  });

  it('names the first bad key of an object with __proto__ as data', () => {
    const value = JSON.parse('{"__proto__": {"ok": 1}, "b": 2}') as Record<string, unknown>;
    (value.__proto__ as Record<string, unknown>).bad = undefined;
    expect(findNonJson(value)).toBe('$.__proto__.bad');
  });

  it('ignores enumerable properties inherited from a polluted prototype', () => {
    const proto = Object.prototype as Record<string, unknown>;
    Object.defineProperty(proto, 'polluted', { value: undefined, enumerable: true, writable: true, configurable: true });
    try {
      expect(findNonJson({ a: 1 })).toBeUndefined();
    } finally {
      delete proto.polluted;
    }
  });

  it('stops at the depth limit, cycles included', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(findNonJson(cycle)).toMatch(/^\$(\.self)+ \(deeper than 64\)$/);
  });

  it('finds nothing in any JSON text parsed back', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(isJson(JSON.parse(text))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('frozenFieldsCopy and jsonBytesBound', () => {
  it('frozenFieldsCopy: equal JSON, top-level keys sorted, frozen all the way down, sharing nothing with the input', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })), (fields) => {
        const copy = frozenFieldsCopy(fields as Fields);
        expect(copy).toEqual(fields);
        // Sorted as a put's stored fields are (integer-like keys come first in any JS object).
        const inSortedOrder: Record<string, true> = {};
        for (const key of Object.keys(fields).sort()) Object.defineProperty(inSortedOrder, key, { value: true, enumerable: true });
        expect(Object.keys(copy)).toEqual(Object.keys(inSortedOrder));
        const walk = (a: unknown, b: unknown): void => {
          if (typeof a !== 'object' || a === null) return;
          expect(Object.isFrozen(a)).toBe(true);
          expect(a).not.toBe(b);
          for (const key of Object.keys(a)) walk((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]);
        };
        walk(copy, fields);
      }),
    );
    const proto = frozenFieldsCopy(JSON.parse('{"__proto__": {"x": 1}, "a": 2}') as Fields);
    expect(Object.keys(proto)).toEqual(['__proto__', 'a']);
  });

  it('jsonBytesBound is never below the UTF-8 bytes of JSON.stringify', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.string({ unit: 'binary' }), (value, text) => {
        for (const v of [value as Json, text, { [text]: text }, [text, value as Json]]) {
          expect(jsonBytesBound(v)).toBeGreaterThanOrEqual(Buffer.byteLength(JSON.stringify(v)));
        }
      }),
    );
  });
});

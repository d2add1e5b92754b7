/**
 * Record ids and field names are data (DESIGN.md "Data model"): `__proto__`,
 * `constructor`, `toString` and `hasOwnProperty` are ordinary names and must never
 * reach an object prototype.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import {
  CRDT_ROOT,
  applyChange,
  applyChanges,
  canonicalJson,
  canonicalState,
  contextFor,
  fieldsFromEntries,
  formatTimestamp,
  isFields,
  joinRecordStates,
  materialize,
  recordKey,
  replicaId,
  spaceId,
  validateChange,
  type Change,
  type ChangeOp,
  type Json,
  type RecordState,
} from '@syncline/core/internal';

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'] as const;
const SPACE = spaceId('space-1');
const ALICE = replicaId('alice');
const BOB = replicaId('bob');

let seq = 0;
function change(id: string, wall: number, op: ChangeOp, collection = 'events', replica = ALICE): Change {
  return { space: SPACE, collection, id, replica, seq: ++seq, hlc: formatTimestamp({ wall, counter: 0, replica }), ...op } as Change;
}

/** A value for each name that would do damage if it reached a prototype or shadowed a method. */
function valueFor(name: string): Json {
  return JSON.parse(`{"${name}": {"polluted": true}, "kept": "${name}"}`) as Json;
}

/** Fields named by NAMES, built without ever assigning through `obj[name] = ...`. */
const fieldsOfNames = () => fieldsFromEntries(NAMES.map((name) => [name, valueFor(name)]));

/** The values Object.prototype holds, to check nothing was added or replaced. */
function prototypeSnapshot(): Array<[string, unknown]> {
  return Object.getOwnPropertyNames(Object.prototype).map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value]);
}

/** Checks `value` has exactly these own fields. Expected values are entries: an object literal `{ __proto__: x }` would set a prototype. */
function expectOwnFields(value: unknown, entries: Array<[string, Json]>): void {
  const expected = fieldsFromEntries(entries);
  expect(value).toBeDefined();
  const obj = value as Record<string, Json>;
  expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
  expect(Object.keys(obj).sort()).toEqual(Object.keys(expected).sort());
  for (const name of Object.keys(expected)) {
    expect(Object.hasOwn(obj, name), name).toBe(true);
    expect(canonicalJson(obj[name] as Json), name).toBe(canonicalJson(expected[name] as Json));
  }
  // The value survives a JSON round trip with the same keys (what a codec or storage does).
  expect(canonicalJson(JSON.parse(JSON.stringify(obj)) as Json)).toBe(canonicalJson(obj));
  expect(isFields(obj)).toBe(true);
}

describe('special names as record ids and field names', () => {
  let before: Array<[string, unknown]>;
  beforeEach(() => {
    before = prototypeSnapshot();
  });
  afterEach(() => {
    // Object.prototype untouched, and no plain object picked up anything.
    expect(prototypeSnapshot()).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(typeof ({} as { toString: unknown }).toString).toBe('function');
  });

  it('validateChange accepts them as record ids and field names, for every op', () => {
    for (const id of NAMES) {
      const ops: ChangeOp[] = [
        { op: 'put', fields: fieldsOfNames() },
        { op: 'patch', fields: fieldsFromEntries([[NAMES[0], 1]]), unset: [...NAMES.slice(1)] },
        { op: 'delete' },
        { op: 'version', value: fieldsOfNames(), context: new Map() },
        { op: 'crdt', field: id, type: 'text', update: new Uint8Array([0, 0]) },
      ];
      for (const op of ops) expect(() => validateChange(change(id, 1_000, op, id))).not.toThrow();
    }
    // Both set and unset is still refused, also for these names.
    expect(() => validateChange(change('x', 1, { op: 'patch', fields: fieldsFromEntries([['__proto__', 1]]), unset: ['__proto__'] }))).toThrow(
      expect.objectContaining({ code: 'invalid_change' }),
    );
  });

  it('lww: put, patch and unset of these fields on records with these ids', () => {
    const states = new Map<string, RecordState>();
    const apply = (c: Change) => states.set(recordKey(c), applyChange(states.get(recordKey(c)), c));
    for (const id of NAMES) {
      apply(change(id, 1_000, { op: 'put', fields: fieldsOfNames() }));
      apply(change(id, 2_000, { op: 'patch', fields: fieldsFromEntries([['constructor', 'patched']]), unset: ['toString'] }));
    }
    expect(states.size).toBe(NAMES.length);
    for (const id of NAMES) {
      const view = materialize(states.get(recordKey({ collection: 'events', id })));
      expect(view.exists).toBe(true);
      expectOwnFields(view.value, [
        ['__proto__', valueFor('__proto__')],
        ['constructor', 'patched'],
        ['hasOwnProperty', valueFor('hasOwnProperty')],
      ]);
      // Methods are still methods on the materialized object's prototype, values are data.
      expect(Object.getOwnPropertyDescriptor(view.value, '__proto__')?.value).toEqual(valueFor('__proto__'));
    }
    // The canonical form names the fields; two states from different orders agree.
    const id = '__proto__';
    const changes = [
      change(id, 1_000, { op: 'put', fields: fieldsOfNames() }, 'c2'),
      change(id, 2_000, { op: 'patch', fields: fieldsFromEntries([['__proto__', 2]]), unset: ['constructor'] }, 'c2', BOB),
    ];
    const forward = applyChanges(undefined, changes);
    const backward = applyChanges(undefined, [...changes].reverse());
    expect(canonicalState(forward)).toBe(canonicalState(backward));
    expect(canonicalState(forward)).toContain('"__proto__"=');
    expectOwnFields(materialize(forward).value, [
      ['__proto__', 2],
      ['toString', valueFor('toString')],
      ['hasOwnProperty', valueFor('hasOwnProperty')],
    ]);
  });

  it('merge: versions with these fields, on records with these ids, round-trip', () => {
    for (const id of NAMES) {
      const a = change(id, 1_000, { op: 'version', value: fieldsOfNames(), context: new Map() }, 'merged');
      const b = change(id, 1_001, { op: 'version', value: fieldsFromEntries([['toString', 'b']]), context: new Map() }, 'merged', BOB);
      const state = applyChanges(undefined, [a, b]);
      const view = materialize(state);
      expect(view.siblings).toHaveLength(2);
      expectOwnFields(view.value, [['toString', 'b']]);
      expectOwnFields(view.siblings[0]?.value, NAMES.map((n) => [n, valueFor(n)]));
      const c = change(id, 1_002, { op: 'version', value: fieldsOfNames(), context: contextFor(state.merge) }, 'merged');
      const resolved = materialize(applyChange(state, c));
      expect(resolved.siblings).toHaveLength(1);
      expectOwnFields(resolved.value, NAMES.map((n) => [n, valueFor(n)]));
    }
  });

  it('crdt: fields with these names, on records with these ids, mixed with lww fields', () => {
    for (const id of NAMES) {
      const changes: Change[] = [change(id, 1_000, { op: 'put', fields: fieldsFromEntries([['hasOwnProperty', 'lww']]) }, 'docs')];
      for (const name of ['__proto__', 'constructor', 'toString'] as const) {
        const doc = new Y.Doc();
        doc.getText(CRDT_ROOT).insert(0, `text of ${name}`);
        changes.push(change(id, 1_100, { op: 'crdt', field: name, type: 'text', update: Y.encodeStateAsUpdate(doc) }, 'docs'));
        doc.destroy();
      }
      const state = applyChanges(undefined, changes);
      expect([...(state.crdt?.keys() ?? [])].sort()).toEqual(['__proto__', 'constructor', 'toString']);
      expectOwnFields(materialize(state).value, [
        ['__proto__', 'text of __proto__'],
        ['constructor', 'text of constructor'],
        ['toString', 'text of toString'],
        ['hasOwnProperty', 'lww'],
      ]);
      // Joining two halves keeps every field.
      const joined = joinRecordStates(applyChanges(undefined, changes.slice(0, 2)), applyChanges(undefined, changes.slice(2)));
      expect(canonicalState(joined)).toBe(canonicalState(state));
    }
  });

  it('crdt map fields keep these names as keys of the value', () => {
    const doc = new Y.Doc();
    const map = doc.getMap(CRDT_ROOT);
    map.set('__proto__', { polluted: true });
    map.set('constructor', 'c');
    map.set('toString', 1);
    const nested = new Y.Map<unknown>();
    map.set('nested', nested);
    nested.set('__proto__', 'deep');
    const state = applyChange(undefined, change('m', 1_000, { op: 'crdt', field: 'attendees', type: 'map', update: Y.encodeStateAsUpdate(doc) }, 'maps'));
    doc.destroy();
    const value = materialize(state).value as Record<string, Json>;
    expectOwnFields(value.attendees, [
      ['__proto__', { polluted: true }],
      ['constructor', 'c'],
      ['toString', 1],
      ['nested', fieldsFromEntries([['__proto__', 'deep']])],
    ]);
    expect((value.attendees as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('record ids that look like other keys stay apart', () => {
    const a = change('b/c', 1_000, { op: 'put', fields: fieldsFromEntries([['v', 1]]) }, 'a');
    const b = change('c', 1_000, { op: 'put', fields: fieldsFromEntries([['v', 2]]) }, 'a/b');
    expect(recordKey(a)).not.toBe(recordKey(b));
    expect(recordKey(change('__proto__', 1, { op: 'delete' }))).toBe('6:events/__proto__');
  });
});

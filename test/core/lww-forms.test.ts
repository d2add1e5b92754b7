/**
 * An lww state holds a put's fields as one object (`stamped`) and every other field
 * as an entry of `fields`. Both forms must mean exactly what the entries-only form
 * meant: this checks applyLww, joinLww and materialize against a reference model
 * that keeps one entry per field (the lww rules as DESIGN.md states them), on the
 * colliding histories of helpers/changes.ts, in any delivery order, with states
 * of either form mixed in joins. It also checks that the cheap form is used where
 * it should be, so the comparison is not vacuous.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyChange,
  canonicalJson,
  canonicalState,
  joinRecordStates,
  lwwEntries,
  materialize,
  replicaId,
  spaceId,
  type Change,
  type HlcString,
  type Json,
  type LwwField,
  type LwwState,
  type RecordState,
} from '@syncline/core/internal';
import { arbHistoryAndDelivery } from './helpers/changes.js';

type Ref = { cleared?: HlcString; deleted?: HlcString; touched?: HlcString; fields: Map<string, LwwField> };

const max = (a: HlcString | undefined, b: HlcString | undefined): HlcString | undefined => (a === undefined ? b : b === undefined ? a : a > b ? a : b);
const key = (f: LwwField): string => (f.value === undefined ? '' : canonicalJson(f.value));
const beats = (x: LwwField, y: LwwField | undefined): boolean => y === undefined || x.hlc > y.hlc || (x.hlc === y.hlc && key(x) > key(y));

/** The reference: one entry per field, every rule applied literally. */
function refApply(s: Ref, c: Change): Ref {
  if (c.op !== 'put' && c.op !== 'patch' && c.op !== 'delete') return s;
  const cleared = c.op === 'patch' ? s.cleared : max(s.cleared, c.hlc);
  const out: Ref = { cleared, deleted: c.op === 'delete' ? max(s.deleted, c.hlc) : s.deleted, touched: c.op === 'delete' ? s.touched : max(s.touched, c.hlc), fields: new Map() };
  for (const [n, f] of s.fields) if (cleared === undefined || f.hlc >= cleared) out.fields.set(n, f);
  if (c.op === 'delete' || (cleared !== undefined && c.hlc < cleared)) return out;
  const writes: Array<[string, Json | undefined]> = Object.keys(c.fields).map((n) => [n, c.fields[n] as Json]);
  if (c.op === 'patch') for (const n of c.unset) writes.push([n, undefined]);
  for (const [n, value] of writes) {
    const candidate = { hlc: c.hlc, value };
    if (beats(candidate, out.fields.get(n))) out.fields.set(n, candidate);
  }
  return out;
}

function refJoin(a: Ref, b: Ref): Ref {
  const cleared = max(a.cleared, b.cleared);
  const out: Ref = { cleared, deleted: max(a.deleted, b.deleted), touched: max(a.touched, b.touched), fields: new Map() };
  for (const source of [a.fields, b.fields]) for (const [n, f] of source) if ((cleared === undefined || f.hlc >= cleared) && beats(f, out.fields.get(n))) out.fields.set(n, f);
  return out;
}

/** The reference's visible value, keys sorted, or undefined when the record is deleted or unwritten. */
function refValue(s: Ref): string | undefined {
  const written = s.touched !== undefined || s.deleted !== undefined;
  const deleted = s.deleted !== undefined && !(s.touched !== undefined && s.touched > s.deleted);
  if (!written || deleted) return undefined;
  const names = [...s.fields.keys()].sort().filter((n) => s.fields.get(n)?.value !== undefined);
  return `{${names.map((n) => `${JSON.stringify(n)}:${canonicalJson(s.fields.get(n)?.value as Json)}`).join(',')}}`;
}

const refCanonical = (s: Ref): string => canonicalState({ lww: { cleared: s.cleared, deleted: s.deleted, touched: s.touched, fields: s.fields } });

/** The value exactly as materialize gives it: key order included (JSON.stringify keeps it), `__proto__` as data. */
function valueString(state: RecordState): string | undefined {
  const view = materialize(state);
  if (!view.exists) return undefined;
  const value = view.value as Record<string, Json>;
  return `{${Object.keys(value).map((n) => `${JSON.stringify(n)}:${canonicalJson(value[n] as Json)}`).join(',')}}`;
}

/** The same state with every field as an entry (the form states had before `stamped`). */
function entriesOnly(state: RecordState): RecordState {
  if (!state.lww) return state;
  const { cleared, deleted, touched } = state.lww;
  return { lww: { cleared, deleted, touched, fields: new Map(lwwEntries(state.lww)) } };
}

const recordKey = (c: Change): string => `${c.collection}/${c.id}`;

function applyBoth(changes: readonly Change[], start = new Map<string, [RecordState | undefined, Ref]>()): Map<string, [RecordState | undefined, Ref]> {
  const out = new Map(start);
  for (const c of changes) {
    const [state, ref] = out.get(recordKey(c)) ?? [undefined, { fields: new Map() }];
    out.set(recordKey(c), [applyChange(state, c), refApply(ref, c)]);
  }
  return out;
}

function expectSame(state: RecordState | undefined, ref: Ref, what: string): void {
  expect(canonicalState(state), what).toBe(refCanonical(ref));
  expect(state === undefined ? undefined : valueString(state), what).toBe(refValue(ref));
}

describe('lww states: the stamped form means what one entry per field meant', () => {
  it('applying changes in any order, with duplicates, matches the reference state and value (key order included)', () => {
    let stamped = 0;
    fc.assert(
      fc.property(arbHistoryAndDelivery('lww'), ({ delivery }) => {
        for (const [k, [state, ref]] of applyBoth(delivery)) {
          expectSame(state, ref, k);
          if (state?.lww?.stamped !== undefined) stamped++;
        }
      }),
      { numRuns: 1000 },
    );
    // Most records end as a put later than all else: the cheap form must have been exercised.
    expect(stamped).toBeGreaterThan(100);
  });

  it('joins of two partial histories match the reference, whichever form each side is in', () => {
    fc.assert(
      fc.property(arbHistoryAndDelivery('lww'), fc.nat(), fc.boolean(), fc.boolean(), ({ delivery }, cut, flatA, flatB) => {
        const at = cut % (delivery.length + 1);
        const a = applyBoth(delivery.slice(0, at));
        const b = applyBoth(delivery.slice(at));
        for (const k of new Set([...a.keys(), ...b.keys()])) {
          const [sa, ra] = a.get(k) ?? [undefined, { fields: new Map() }];
          const [sb, rb] = b.get(k) ?? [undefined, { fields: new Map() }];
          const left = flatA && sa ? entriesOnly(sa) : (sa ?? {});
          const right = flatB && sb ? entriesOnly(sb) : (sb ?? {});
          const joined = joinRecordStates(left, right);
          expectSame(joined, refJoin(ra, rb), `${k} join`);
          expect(canonicalState(joinRecordStates(right, left)), `${k} join commutes`).toBe(canonicalState(joined));
          // Changes applied on top of a joined state of either form keep matching.
          const rest = delivery.filter((c) => recordKey(c) === k).slice(0, 3);
          let s: RecordState = joined;
          let r = refJoin(ra, rb);
          for (const c of rest) {
            s = applyChange(s, c);
            r = refApply(r, c);
          }
          expectSame(s, r, `${k} join then apply`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a put later than everything holds its fields as one object, shared with the value and sorted by name', () => {
    const hlc = (n: number): HlcString => `0000000000${n.toString().padStart(2, '0')}-0000-w` as HlcString;
    const header = { space: spaceId('s'), collection: 'c', id: 'i', replica: replicaId('w'), seq: 1 };
    const put = (n: number, fields: Record<string, Json>): Change => ({ ...header, hlc: hlc(n), op: 'put', fields });
    const patch = (n: number, fields: Record<string, Json>, unset: string[] = []): Change => ({ ...header, hlc: hlc(n), op: 'patch', fields, unset });
    const fields = JSON.parse('{"title":"t","__proto__":{"x":1},"a":2}') as Record<string, Json>;
    const state = applyChange(applyChange(undefined, patch(1, { old: 1 })), put(2, fields));
    const lww = state.lww as LwwState;
    expect(lww.fields.size).toBe(0);
    expect(Object.keys(lww.stamped ?? {})).toEqual(['__proto__', 'a', 'title']);
    expect(lww.stamped).not.toBe(fields); // a copy: the writer's object stays theirs
    expect(materialize(state).value).toBe(lww.stamped);
    // A put older than a field the record holds keeps that field beside its own: the general form.
    const older = applyChange(applyChange(undefined, patch(5, { late: true })), put(3, { title: 'early' }));
    expect(older.lww?.stamped).toBeUndefined();
    expect(materialize(older).value).toEqual({ late: true, title: 'early' });
    // A patch on the stamped form moves every field into entries and keeps the put's fields.
    const patched = applyChange(state, patch(4, { b: 3 }, ['a']));
    expect(patched.lww?.stamped).toBeUndefined();
    expect(JSON.stringify(Object.keys(materialize(patched).value ?? {}))).toBe('["__proto__","b","title"]');
  });
});

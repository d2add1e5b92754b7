/**
 * The core invariant (DESIGN.md, "Conflict policies"): whatever the order,
 * duplication or delay in which changes arrive, applying the same set of changes
 * gives the same state, for every policy. Histories come from helpers/changes.ts:
 * 5 replicas with skewed clocks writing colliding records and fields.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_RECORD,
  fieldsFromEntries,
  joinRecordStates,
  type Change,
  type Json,
  type RecordState,
  type Resolver,
} from '@syncline/core';
import {
  POLICIES,
  applyAll,
  arbDelivery,
  arbHistory,
  arbHistoryAndDelivery,
  canonicalStates,
  viewStrings,
  type History,
  type Policy,
} from './helpers/changes.js';

const RUNS = { numRuns: 1000 };

/**
 * A deterministic app resolver: every field of every live sibling, a later sibling
 * (HLC order) overriding an earlier one; null when every sibling is a delete.
 */
const unionResolver: Resolver = (siblings) => {
  const live = siblings.filter((s) => s.value !== null);
  if (live.length === 0) return null;
  const entries: Array<[string, Json]> = [];
  for (const s of live) for (const [name, value] of Object.entries(s.value ?? {})) entries.push([name, value]);
  return fieldsFromEntries(entries);
};

type States = ReadonlyMap<string, RecordState>;

/** Everything that must be equal between two replicas holding the same changes. */
function observe(states: States, policy: Policy): unknown {
  return {
    canonical: canonicalStates(states),
    views: viewStrings(states),
    ...(policy === 'merge' ? { resolved: viewStrings(states, { resolve: unionResolver }) } : {}),
  };
}

function joinAll(a: States, b: States): Map<string, RecordState> {
  const out = new Map<string, RecordState>();
  for (const key of new Set([...a.keys(), ...b.keys()])) out.set(key, joinRecordStates(a.get(key) ?? EMPTY_RECORD, b.get(key) ?? EMPTY_RECORD));
  return out;
}

/** The generator must produce what the properties are about, or they would pass vacuously. */
describe('the history generator', () => {
  it.each(POLICIES)('%s histories collide on records and fields and arrive out of order', (policy) => {
    const histories = fc.sample(arbHistory(policy), { numRuns: 300, seed: 42 });
    const all = histories.flatMap((h) => h.changes);
    const replicas = new Set(all.map((c) => c.replica));
    expect(replicas.size).toBeGreaterThanOrEqual(5);
    expect(new Set(all.map((c) => c.id))).toEqual(new Set(['__proto__', 'constructor', 'note-1']));
    // Per replica, seq is 1, 2, 3 ... and HLCs increase.
    for (const h of histories) {
      for (const r of h.replicas) {
        const mine = h.changes.filter((c) => c.replica === r);
        expect(mine.map((c) => c.seq)).toEqual(mine.map((_, i) => i + 1));
        expect([...mine.map((c) => c.hlc)].sort()).toEqual(mine.map((c) => c.hlc));
      }
    }
    const ops = new Set(all.map((c) => c.op));
    const conflicted = histories.filter((h) => [...applyAll(h.changes).values()].some((s) => (s.merge?.siblings.length ?? 0) > 1));
    switch (policy) {
      case 'lww':
        expect(ops).toEqual(new Set(['put', 'patch', 'delete']));
        expect(all.some((c) => c.op === 'patch' && c.unset.length > 0)).toBe(true);
        expect(all.some((c) => c.op !== 'delete' && Object.hasOwn(c.fields, '__proto__'))).toBe(true);
        break;
      case 'merge': {
        expect(ops).toEqual(new Set(['version']));
        expect(all.some((c) => c.op === 'version' && c.value === null)).toBe(true);
        // Contexts reflect what writers saw: some cover other replicas' writes, some do not.
        expect(all.some((c) => c.op === 'version' && [...c.context.keys()].some((r) => r !== c.replica))).toBe(true);
        expect(conflicted.length).toBeGreaterThan(30);
        break;
      }
      case 'crdt':
        expect(ops).toEqual(new Set(['crdt', 'put', 'patch', 'delete']));
        expect(new Set(all.flatMap((c) => (c.op === 'crdt' ? [c.type] : [])))).toEqual(new Set(['text', 'map', 'array']));
        break;
    }
    // Clocks are skewed and step backwards: a later change can carry a lower HLC than an earlier one.
    expect(histories.some((h) => h.changes.some((c, i) => i > 0 && c.hlc < (h.changes[i - 1] as Change).hlc))).toBe(true);
  });
});

describe.each(POLICIES)('%s policy', (policy) => {
  it('every order of the changes, with duplicates, gives the same state and view', () => {
    fc.assert(
      fc.property(arbHistoryAndDelivery(policy), ({ history, delivery }) => {
        const expected = observe(applyAll(history.changes), policy);
        expect(observe(applyAll(delivery), policy)).toEqual(expected);
      }),
      RUNS,
    );
  });

  it('every replica converges once it receives the changes it lacks (and the rest again)', () => {
    fc.assert(
      fc.property(
        arbHistory(policy).chain((history) => fc.tuple(fc.constant(history), arbDelivery(history.changes))),
        ([history, delivery]: [History, Change[]]) => {
          const expected = observe(applyAll(history.changes), policy);
          for (const local of history.localStates) expect(observe(applyAll(delivery, local), policy)).toEqual(expected);
        },
      ),
      RUNS,
    );
  });

  it('splitting the changes in two, applying each part and joining gives the same state; join is commutative and idempotent', () => {
    fc.assert(
      fc.property(
        arbHistoryAndDelivery(policy).chain(({ history, delivery }) =>
          // 0: first part only, 1: second part only, 2: both parts.
          fc.tuple(fc.constant(history), fc.constant(delivery), fc.array(fc.nat({ max: 2 }), { minLength: delivery.length, maxLength: delivery.length })),
        ),
        ([history, delivery, parts]) => {
          const expected = observe(applyAll(history.changes), policy);
          const a = applyAll(delivery.filter((_, i) => parts[i] !== 1));
          const b = applyAll(delivery.filter((_, i) => parts[i] !== 0));
          const ab = joinAll(a, b);
          expect(observe(ab, policy)).toEqual(expected);
          expect(observe(joinAll(b, a), policy)).toEqual(expected);
          expect(observe(joinAll(a, a), policy)).toEqual(observe(a, policy));
          expect(observe(joinAll(ab, b), policy)).toEqual(expected);
          expect(observe(joinAll(a, ab), policy)).toEqual(expected);
        },
      ),
      RUNS,
    );
  });

  it('join is associative and agrees with applying the missing changes', () => {
    fc.assert(
      fc.property(
        arbHistoryAndDelivery(policy).chain(({ history, delivery }) =>
          // A non-empty subset of three parts per change, so the parts overlap and cover everything.
          fc.tuple(fc.constant(history), fc.constant(delivery), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: delivery.length, maxLength: delivery.length })),
        ),
        ([history, delivery, parts]) => {
          const expected = observe(applyAll(history.changes), policy);
          const [a, b, c] = [1, 2, 4].map((bit) => applyAll(delivery.filter((_, i) => ((parts[i] ?? 0) & bit) !== 0))) as [States, States, States];
          expect(observe(joinAll(joinAll(a, b), c), policy)).toEqual(expected);
          expect(observe(joinAll(a, joinAll(b, c)), policy)).toEqual(expected);
          // A joined state keeps accepting changes: applying c's changes to join(a, b) gives the same result.
          const cChanges = delivery.filter((_, i) => ((parts[i] ?? 0) & 4) !== 0);
          expect(observe(applyAll(cChanges, joinAll(a, b)), policy)).toEqual(expected);
        },
      ),
      RUNS,
    );
  });
});

// Guard against a silently broken comparison: observe() distinguishes different states.
describe('observe()', () => {
  it('tells states apart', () => {
    const histories = fc.sample(arbHistory('merge'), { numRuns: 50, seed: 7 }).filter((h) => h.changes.length > 3);
    const h = histories[0] as History;
    const full = applyAll(h.changes);
    const partial = applyAll(h.changes.slice(0, -1));
    expect(observe(full, 'merge')).not.toEqual(observe(partial, 'merge'));
  });
});

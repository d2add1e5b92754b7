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
  formatTimestamp,
  joinRecordStates,
  materialize,
  replicaId,
  spaceId,
  validateChange,
  vv,
  type Change,
  type Json,
  type RecordState,
  type ReplicaId,
  type Resolver,
} from '@syncline/core/internal';
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

interface Observation {
  readonly canonical: Array<[string, string]>;
  readonly views: Array<[string, string]>;
  readonly resolved?: Array<[string, string]>;
}

/** Everything that must be equal between two replicas holding the same changes. */
function observe(states: States, policy: Policy): Observation {
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
    const histories = fc.sample(arbHistory(policy), { numRuns: 200, seed: 42 });
    const finals = histories.map((h) => [...applyAll(h.changes).values()]);
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
    const conflicted = finals.filter((states) => states.some((s) => (s.merge?.siblings.length ?? 0) > 1));
    switch (policy) {
      case 'lww':
        expect(ops).toEqual(new Set(['put', 'patch', 'delete']));
        expect(all.some((c) => c.op === 'patch' && c.unset.length > 0)).toBe(true);
        expect(all.some((c) => (c.op === 'put' || c.op === 'patch') && Object.hasOwn(c.fields, '__proto__'))).toBe(true);
        break;
      case 'merge': {
        expect(ops).toEqual(new Set(['version']));
        expect(all.some((c) => c.op === 'version' && c.value === null)).toBe(true);
        // Contexts reflect what writers saw: some cover other replicas' writes, some do not.
        expect(all.some((c) => c.op === 'version' && [...c.context.keys()].some((r) => r !== c.replica))).toBe(true);
        expect(conflicted.length).toBeGreaterThan(30);
        break;
      }
      case 'crdt': {
        expect(ops).toEqual(new Set(['crdt', 'put', 'patch', 'delete']));
        expect(new Set(all.flatMap((c) => (c.op === 'crdt' ? [c.type] : [])))).toEqual(new Set(['text', 'map', 'array']));
        // Records that show crdt and lww fields together.
        const mixed = finals.filter((states) =>
          states.some((state) => {
            const value = materialize(state).value ?? {};
            return Object.hasOwn(value, '__proto__') && Object.hasOwn(value, 'title');
          }),
        );
        expect(mixed.length).toBeGreaterThan(30);
        break;
      }
    }
    // Changes arrive out of order: some replica receives a writer's change before an earlier one of the same writer.
    const outOfOrder = histories.filter((h) =>
      h.received.some((list) => list.some((x, i) => list.slice(i + 1).some((y) => y.replica === x.replica && y.seq < x.seq))),
    );
    expect(outOfOrder.length).toBeGreaterThan(30);
    // Clocks are skewed and step backwards: a later change can carry a lower HLC than an earlier one.
    expect(histories.some((h) => h.changes.some((c, i) => i > 0 && c.hlc < (h.changes[i - 1] as Change).hlc))).toBe(true);
  });
});

describe.each(POLICIES)('%s policy', (policy) => {
  // 5 replicas, up to 8 writes each; crdt histories are capped at 30 writes in all (Yjs makes them the slowest).
  const options = policy === 'crdt' ? { maxSteps: 30 } : {};
  it('every order of the changes, with duplicates, gives the same state and view, also on top of any replica local state', () => {
    fc.assert(
      fc.property(
        arbHistoryAndDelivery(policy, options).chain((hd) => fc.tuple(fc.constant(hd), fc.nat({ max: hd.history.localStates.length - 1 }))),
        ([{ history, delivery }, replica]) => {
          const expected = observe(applyAll(history.changes), policy);
          expect(observe(applyAll(delivery), policy)).toEqual(expected);
          // A replica that already holds part of the history (in its own order) converges
          // once it receives everything, the changes it already holds included.
          const local = history.localStates[replica] as States;
          expect(canonicalStates(applyAll(delivery, local))).toEqual(expected.canonical);
        },
      ),
      RUNS,
    );
  });

  it('splitting the changes, applying each part and joining gives the same state; join is commutative, idempotent and associative', () => {
    fc.assert(
      fc.property(
        arbHistoryAndDelivery(policy, options).chain(({ history, delivery }) =>
          // Each change goes to a non-empty subset of three parts, so parts overlap and cover everything.
          fc.tuple(fc.constant(history), fc.constant(delivery), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: delivery.length, maxLength: delivery.length })),
        ),
        ([history, delivery, parts]) => {
          const expected = observe(applyAll(history.changes), policy);
          const part = (bits: number): Change[] => delivery.filter((_, i) => ((parts[i] ?? 0) & bits) !== 0);
          // Two halves (a change may be in both): the first part, and the other two.
          const first = applyAll(part(1));
          const rest = applyAll(part(6));
          const joined = joinAll(first, rest);
          expect(observe(joined, policy)).toEqual(expected);
          // Commutative and idempotent (joined equals the full state, so comparing with it suffices).
          expect(canonicalStates(joinAll(rest, first))).toEqual(expected.canonical);
          expect(canonicalStates(joinAll(joined, rest))).toEqual(expected.canonical);
          const firstCanonical = canonicalStates(first);
          expect(canonicalStates(joinAll(first, first))).toEqual(firstCanonical);
          // A part alone lacks changes others depend on (update before insert): it is still order independent.
          expect(canonicalStates(applyAll([...part(1)].reverse()))).toEqual(firstCanonical);
          // Three parts: associative, and a joined state keeps accepting changes.
          const [b, c] = [applyAll(part(2)), applyAll(part(4))];
          expect(canonicalStates(joinAll(joinAll(first, b), c))).toEqual(expected.canonical);
          expect(canonicalStates(joinAll(first, joinAll(b, c)))).toEqual(expected.canonical);
          expect(canonicalStates(applyAll(part(4), joinAll(first, b)))).toEqual(expected.canonical);
        },
      ),
      RUNS,
    );
  });
});

/**
 * Version changes with arbitrary contexts that validateChange accepts (buggy or hostile
 * writers): the server stores and materializes them, so they must converge too.
 */
describe('merge policy with arbitrary (valid) contexts', () => {
  const writers = ['a', 'b', 'c'].map(replicaId);
  const arbVersions = fc
    .array(
      fc.record({
        writer: fc.nat({ max: writers.length - 1 }),
        wall: fc.nat({ max: 5 }),
        value: fc.option(fc.nat({ max: 3 }), { nil: null }),
        context: fc.array(fc.tuple(fc.nat({ max: writers.length - 1 }), fc.integer({ min: 1, max: 6 })), { maxLength: 3 }),
      }),
      { minLength: 1, maxLength: 12 },
    )
    .map((specs) => {
      const seqs = new Map<ReplicaId, number>();
      return specs.map((spec): Change => {
        const replica = writers[spec.writer] as ReplicaId;
        const seq = (seqs.get(replica) ?? 0) + 1;
        seqs.set(replica, seq);
        // Any context, except that a version cannot have seen itself.
        const context = vv.vector(spec.context.map(([w, n]) => [writers[w] as ReplicaId, writers[w] === replica ? Math.min(n, seq - 1) : n] as const));
        const change: Change = {
          space: spaceId('space-1'),
          collection: 'events',
          id: 'x',
          replica,
          seq,
          hlc: formatTimestamp({ wall: 1_000 + spec.wall, counter: seq, replica }),
          op: 'version',
          value: spec.value === null ? null : fieldsFromEntries([['v', spec.value]]),
          context,
        };
        validateChange(change);
        return change;
      });
    });

  it('any order with duplicates, and any split joined, gives the same state', () => {
    fc.assert(
      fc.property(
        arbVersions.chain((changes) => fc.tuple(fc.constant(changes), arbDelivery(changes), fc.array(fc.nat({ max: 2 }), { minLength: changes.length, maxLength: changes.length }))),
        ([changes, delivery, parts]) => {
          const expected = observe(applyAll(changes), 'merge');
          expect(observe(applyAll(delivery), 'merge')).toEqual(expected);
          const a = applyAll(delivery.filter((_, i) => parts[i % parts.length] !== 1));
          const b = applyAll(delivery.filter((_, i) => parts[i % parts.length] !== 0));
          expect(observe(joinAll(a, b), 'merge')).toEqual(expected);
          expect(canonicalStates(joinAll(b, a))).toEqual(expected.canonical);
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

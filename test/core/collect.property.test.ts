/**
 * Collection at the stability horizon (DESIGN.md, "Stability and bounded
 * growth"): once every change that can still arrive is stamped after a horizon
 * H, forgetting the records that collectibleAt() puts at or below H changes
 * nothing an app can see, whatever arrives later and in whatever order; and it
 * is not vacuous (records are collected), nor safe without the horizon (a
 * change stamped below it can bring a collected record back).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectibleAt, materialize, type Change, type HlcString, type RecordState, type Resolver } from '@syncline/core/internal';
import { POLICIES, applyAll, arbHistory, viewStrings } from './helpers/changes.js';

/** Both views an app can get of merge records: the default and a resolver that looks at every sibling. */
const everySibling: Resolver = (siblings) => (siblings.length === 0 ? null : { n: siblings.length, last: siblings[siblings.length - 1]?.value ?? null });

function collect(states: ReadonlyMap<string, RecordState>, horizon: HlcString): Map<string, RecordState> {
  const out = new Map<string, RecordState>();
  for (const [key, state] of states) {
    const at = collectibleAt(state);
    if (at === undefined || at > horizon) out.set(key, state);
  }
  return out;
}

/** What an app sees: the records that exist or have siblings (a record never written and a deleted one look alike). */
function views(states: ReadonlyMap<string, RecordState>): unknown {
  const seen = new Map([...states].filter(([, s]) => materialize(s).exists || materialize(s).siblings.length > 0));
  return [viewStrings(seen), viewStrings(seen, { resolve: everySibling })];
}

/** A history cut at one of its own stamps: what came before the horizon, and the rest, shuffled. */
const arbCut = (policy: (typeof POLICIES)[number]) =>
  arbHistory(policy).chain((history) =>
    fc.record({ index: fc.nat({ max: Math.max(0, history.changes.length - 1) }), order: fc.infiniteStream(fc.nat()) }).map(({ index, order }) => {
      const stamps = history.changes.map((c) => c.hlc).sort();
      const horizon = (stamps[index] ?? stamps[0]) as HlcString;
      const past = history.changes.filter((c) => c.hlc <= horizon);
      const future = history.changes.filter((c) => c.hlc > horizon);
      const shuffled = [...future];
      const it = order[Symbol.iterator]();
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = (it.next().value as number) % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j] as Change, shuffled[i] as Change];
      }
      return { horizon, past, future: shuffled };
    }),
  );

describe('collection at the horizon', () => {
  it.each(POLICIES)('%s: collected and kept states show the same records whatever arrives after the horizon', (policy) => {
    fc.assert(
      fc.property(arbCut(policy), ({ horizon, past, future }) => {
        const kept = applyAll(past);
        const collected = collect(kept, horizon);
        expect(views(applyAll(future, collected))).toEqual(views(applyAll(future, kept)));
      }),
      { numRuns: 500 },
    );
  });

  it('collects: deleted lww records at or below the horizon are dropped', () => {
    const cuts = fc.sample(arbCut('lww'), { numRuns: 300, seed: 7 });
    const dropped = cuts.reduce((n, { horizon, past }) => {
      const kept = applyAll(past);
      return n + kept.size - collect(kept, horizon).size;
    }, 0);
    expect(dropped).toBeGreaterThan(30);
  });

  it('keeps records with merge versions or crdt fields (their deletes depend on what writers saw, or hide crdt edits)', () => {
    for (const policy of ['merge', 'crdt'] as const) {
      for (const { horizon, past } of fc.sample(arbCut(policy), { numRuns: 100, seed: 3 })) {
        const kept = applyAll(past);
        const collected = collect(kept, horizon);
        for (const [key, state] of kept) if (state.merge || state.crdt) expect(collected.get(key)).toBe(state);
      }
    }
  });

  it('is not safe without the horizon: a change stamped below it brings a collected record back', () => {
    // The counterexample a TTL would produce: a patch written before the delete arrives after collection.
    const found = fc.sample(arbCut('lww'), { numRuns: 2000, seed: 11 }).some(({ horizon, past }) => {
      const kept = applyAll(past);
      const collected = collect(kept, horizon);
      return past.some((late) => {
        const key = [...kept.keys()].find((k) => !collected.has(k) && k.includes(JSON.stringify(late.id).slice(1, -1)));
        if (key === undefined || late.op === 'delete') return false;
        const others = past.filter((c) => c !== late);
        const truth = materialize(applyAll([...others, late]).get(key)).exists;
        const afterCollection = materialize(applyAll([late], collect(applyAll(others), horizon)).get(key)).exists;
        return truth !== afterCollection;
      });
    });
    expect(found).toBe(true);
  });
});

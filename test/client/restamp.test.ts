/**
 * Re-stamping (packages/client/src/restamp.ts, packages/core/src/stamps.ts): the
 * repair for local writes a wrong clock stamped far from the server's time.
 *
 * The headers state why it is safe: the new stamps keep the moved changes' order
 * and lie above every other stamp the replica holds (what the server accepted,
 * the outbox changes that stay), so the renaming is strictly increasing on every
 * stamp a record holds, and renaming the stored states (restampState) gives the
 * states that applying the renamed changes would give. This file checks each of
 * those claims: planRestamp's plan on generated outboxes, the state equivalence
 * on realistic multi-replica histories (helpers/changes.ts) for lww, merge, crdt
 * and records mixing them, latestStamp, and applyRestamp on both storages.
 */
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_COUNTER,
  applyChange,
  canonicalState,
  formatTimestamp,
  hlcWall,
  latestStamp,
  lwwEntries,
  materialize,
  maxHlc,
  parseTimestamp,
  recordKey,
  replicaId,
  restampState,
  spaceId,
  type Change,
  type HlcString,
  type RecordState,
  type ReplicaId,
  type SpaceId,
  type Timestamp,
} from '@syncline/core/internal';
import { createReplica, defineSchema, indexedDbStorage, memoryStorage, type StorageFactory } from '@syncline/client';
import { applyRestamp, planRestamp, RESTAMP_MARGIN_MS, type RestampInput, type RestampPlan } from '../../packages/client/src/restamp.js';
import { openCollections } from '../../packages/client/src/schema-migration.js';
import { portOf, storageOf } from '../internals.js';
import { hlcArb, recordStateArb } from '../core/helpers/arbitraries.js';
import { EPOCH, applyAll, arbScript, canonicalStates, simulate, viewStrings, type History, type Policy, type Step } from '../core/helpers/changes.js';
import { nextCommit, uniqueName } from './helpers.js';

const L = replicaId('local');
/** Other replicas' ids sort below and above the local one: ties on (wall, counter) go both ways. */
const BELOW = replicaId('aaa');
const ABOVE = replicaId('zzz');
const SPACES = [spaceId('a'), spaceId('b')] as const;

// ---------------------------------------------------------------------------
// planRestamp on generated outboxes

interface PlanCase {
  readonly input: RestampInput;
  /** The outbox sorted by HLC (the order the changes were written in). */
  readonly sorted: readonly Change[];
}

const stamp = (wall: number, counter: number, replica: ReplicaId): HlcString => formatTimestamp({ wall, counter, replica });
const tick = (t: Timestamp): Timestamp => (t.counter < MAX_COUNTER ? { ...t, counter: t.counter + 1 } : { ...t, wall: t.wall + 1, counter: 0 });

function localChange(space: SpaceId, seq: number, hlc: HlcString): Change {
  return { space, collection: 'notes', id: `n${seq}`, replica: L, seq, hlc, op: 'put', fields: { seq } };
}

/**
 * A local outbox (stamps strictly increasing in write order, spread over two spaces, handed
 * over in [space, seq] order or reversed), the latest accepted stamp (none, tied on (wall,
 * counter) with an outbox stamp from a replica sorting below or above, or near one), the
 * server's time, a threshold and a delta, all placed around the outbox's stamps.
 */
const planCaseArb: fc.Arbitrary<PlanCase> = fc
  .record({
    base: fc.oneof(fc.constant(0), fc.nat(3_000), fc.constant(EPOCH)),
    stamps: fc.uniqueArray(fc.tuple(fc.oneof(fc.nat(20), fc.nat(400_000)), fc.oneof(fc.nat(3), fc.constant(MAX_COUNTER), fc.constant(MAX_COUNTER - 1))), {
      selector: ([w, c]) => `${w}:${c}`,
      maxLength: 12,
    }),
    spaces: fc.array(fc.nat(1), { minLength: 12, maxLength: 12 }),
    reverse: fc.boolean(),
    accepted: fc.oneof(
      fc.constant(undefined),
      fc.record({ kind: fc.constant('tie' as const), at: fc.nat(), replica: fc.constantFrom(BELOW, ABOVE, L) }),
      fc.record({ kind: fc.constant('near' as const), at: fc.nat(), offset: fc.integer({ min: -1_000, max: 1_000 }), counter: fc.nat(3), replica: fc.constantFrom(BELOW, ABOVE) }),
      fc.record({ kind: fc.constant('free' as const), wall: fc.integer({ min: -1_000, max: 500_000 }), counter: fc.nat(3), replica: fc.constantFrom(BELOW, ABOVE) }),
    ),
    all: fc.boolean(),
    now: fc.oneof(fc.integer({ min: -1_000, max: 500_000 }), fc.integer({ min: 0, max: 25 })),
    threshold: fc.integer({ min: -1_000, max: 450_000 }),
    delta: fc.oneof(fc.integer({ min: -999, max: 999 }), fc.constantFrom(0, -1_000, 1_000, -1, 1), fc.integer({ min: -500_000, max: 500_000 }), fc.constant('back-to-now' as const)),
  })
  .map(({ base, stamps, spaces, reverse, accepted: a, all, now, threshold, delta }) => {
    const sortedStamps = [...stamps].sort(([w1, c1], [w2, c2]) => w1 - w2 || c1 - c2).map(([w, c]) => stamp(base + w, c, L));
    const seqs = [0, 0];
    const sorted = sortedStamps.map((hlc, i) => {
      const s = spaces[i] ?? 0;
      seqs[s] = (seqs[s] ?? 0) + 1;
      return localChange(SPACES[s] as SpaceId, seqs[s] as number, hlc);
    });
    const bySpaceSeq = [...sorted].sort((x, y) => (x.space < y.space ? -1 : x.space > y.space ? 1 : x.seq - y.seq));
    let accepted: HlcString | undefined;
    const pick = (at: number) => (sortedStamps.length === 0 ? undefined : parseTimestamp(sortedStamps[at % sortedStamps.length] as HlcString));
    if (a?.kind === 'tie') {
      const t = pick(a.at);
      accepted = t && t.replica !== a.replica ? stamp(t.wall, t.counter, a.replica) : undefined;
    } else if (a?.kind === 'near') {
      const t = pick(a.at);
      accepted = t ? stamp(Math.max(0, t.wall + a.offset), a.counter, a.replica) : undefined;
    } else if (a?.kind === 'free') accepted = stamp(Math.max(0, base + a.wall), a.counter, a.replica);
    const lastWall = sortedStamps.length > 0 ? hlcWall(sortedStamps[sortedStamps.length - 1] as HlcString) : base;
    const input: RestampInput = {
      replica: L,
      outbox: reverse ? bySpaceSeq.reverse() : bySpaceSeq,
      all,
      threshold: base + threshold,
      delta: delta === 'back-to-now' ? base + now - lastWall : delta,
      now: Math.max(0, base + now),
      accepted,
    };
    return { input, sorted };
  });

/** The changes planRestamp is meant to move: above accepted, and (threshold mode) with a wall time beyond the threshold. */
const movingOf = ({ input, sorted }: PlanCase): Change[] =>
  sorted.filter((c) => (input.all || hlcWall(c.hlc) > input.threshold) && (input.accepted === undefined || c.hlc > input.accepted));

const newStamp = (plan: RestampPlan, c: Change): HlcString => plan.renames.get(c.hlc) ?? c.hlc;

/** The stamp each change that moves is meant to get: moved by delta (a small first-welcome delta is noise: 0), at most to now, at least 0. */
function shifted(input: RestampInput, c: Change): Timestamp {
  const delta = input.all && Math.abs(input.delta) < 1_000 ? 0 : input.delta;
  const old = parseTimestamp(c.hlc);
  return { wall: Math.max(0, Math.min(old.wall + delta, input.now)), counter: old.counter, replica: L };
}

/** The floor: the latest of what the server accepted and the outbox changes that stay. */
function floorOf(pc: PlanCase): HlcString | undefined {
  const moving = new Set(movingOf(pc));
  let floor = pc.input.accepted;
  for (const c of pc.sorted) if (!moving.has(c)) floor = maxHlc(floor, c.hlc);
  return floor;
}

const RUNS = { numRuns: 2_000 };

describe('planRestamp', () => {
  it('the generated cases reach every branch (the properties are not vacuous)', () => {
    const cases = fc.sample(planCaseArb, { numRuns: 2_000, seed: 11 });
    const plans = cases.map((pc) => [pc, planRestamp(pc.input)] as const);
    expect(plans.filter(([, p]) => p.renames.size > 0).length).toBeGreaterThan(500);
    // Moved past the floor (forced), clamped to now, some moving changes left as they were.
    expect(plans.some(([pc, p]) => movingOf(pc).some((c) => p.renames.has(c.hlc) && hlcWall(newStamp(p, c)) > pc.input.now))).toBe(true);
    expect(plans.some(([pc, p]) => movingOf(pc).some((c) => hlcWall(newStamp(p, c)) === pc.input.now && hlcWall(c.hlc) > pc.input.now))).toBe(true);
    expect(plans.some(([pc, p]) => movingOf(pc).some((c) => !p.renames.has(c.hlc)))).toBe(true);
    expect(plans.some(([pc]) => !pc.input.all && movingOf(pc).length > 0 && movingOf(pc).length < pc.sorted.length)).toBe(true);
  });

  it('the moved changes keep their order: sorted by old HLC, the new HLCs strictly increase (and belong to the replica)', () => {
    fc.assert(
      fc.property(planCaseArb, (pc) => {
        const plan = planRestamp(pc.input);
        const moved = pc.sorted.filter((c) => plan.renames.has(c.hlc)).map((c) => newStamp(plan, c));
        for (let i = 1; i < moved.length; i++) expect(moved[i] as string > (moved[i - 1] as string), `${moved[i - 1]} < ${moved[i]}`).toBe(true);
        for (const [old, renamed] of plan.renames) {
          expect(renamed).not.toBe(old);
          expect(parseTimestamp(renamed).replica).toBe(L);
        }
      }),
      RUNS,
    );
  });

  it('every new stamp is above accepted and above every outbox stamp that stays; the whole renaming is strictly increasing on the stamps the replica holds', () => {
    fc.assert(
      fc.property(planCaseArb, (pc) => {
        const plan = planRestamp(pc.input);
        const moving = new Set(movingOf(pc));
        const stays = pc.sorted.filter((c) => !moving.has(c));
        for (const renamed of plan.renames.values()) {
          if (pc.input.accepted !== undefined) expect(renamed > pc.input.accepted, `${renamed} > accepted ${pc.input.accepted}`).toBe(true);
          for (const c of stays) expect(renamed > c.hlc, `${renamed} > staying ${c.hlc}`).toBe(true);
        }
        // Every stamp the replica holds, old order -> new order: strictly increasing (restampState's precondition).
        const held = [...pc.sorted.map((c) => c.hlc), ...(pc.input.accepted === undefined ? [] : [pc.input.accepted])].sort();
        const renamed = held.map((h) => plan.renames.get(h) ?? h);
        for (let i = 1; i < renamed.length; i++) expect(renamed[i] as string > (renamed[i - 1] as string), `${held[i - 1]} -> ${renamed[i - 1]}, ${held[i]} -> ${renamed[i]}`).toBe(true);
        // Only moving changes are renamed.
        for (const old of plan.renames.keys()) expect([...moving].some((c) => c.hlc === old)).toBe(true);
      }),
      RUNS,
    );
  });

  it('no new stamp has a wall time above now unless forced up by the floor (it is then the stamp right after the one before it)', () => {
    fc.assert(
      fc.property(planCaseArb, (pc) => {
        const plan = planRestamp(pc.input);
        let previous = floorOf(pc);
        for (const c of movingOf(pc)) {
          const now = newStamp(plan, c);
          if (plan.renames.has(c.hlc) && hlcWall(now) > pc.input.now) {
            expect(previous, `${c.hlc} -> ${now} is past now ${pc.input.now} with no floor`).toBeDefined();
            const p = parseTimestamp(previous as HlcString);
            expect(p.wall).toBeGreaterThanOrEqual(pc.input.now);
            expect(now).toBe(formatTimestamp(tick({ ...p, replica: L })));
          }
          previous = now;
        }
      }),
      RUNS,
    );
  });

  it('each moving change gets its stamp moved by delta (at most to now), or the stamp right after the previous one when that would not be above it; renames lists exactly the changed ones', () => {
    fc.assert(
      fc.property(planCaseArb, (pc) => {
        const plan = planRestamp(pc.input);
        let previous = floorOf(pc);
        const expected = new Map<HlcString, HlcString>();
        for (const c of movingOf(pc)) {
          let t = shifted(pc.input, c);
          // Timestamp order: (wall, counter), then the replica id.
          if (previous !== undefined && formatTimestamp(t) <= previous) t = tick({ ...parseTimestamp(previous), replica: L });
          const s = formatTimestamp(t);
          if (s !== c.hlc) expected.set(c.hlc, s);
          previous = s;
        }
        expect(new Map(plan.renames)).toEqual(expected);
      }),
      RUNS,
    );
  });

  it('all mode: every change above accepted moves, unless its shift is 0 and its stamp is unchanged; changes at or below accepted stay', () => {
    fc.assert(
      fc.property(
        planCaseArb.filter((pc) => pc.input.all),
        (pc) => {
          const plan = planRestamp(pc.input);
          let previous = pc.input.accepted;
          for (const c of pc.sorted) {
            const above = pc.input.accepted === undefined || c.hlc > pc.input.accepted;
            if (!above) {
              expect(plan.renames.has(c.hlc)).toBe(false);
              continue;
            }
            if (!plan.renames.has(c.hlc)) {
              // Not renamed: its stamp moved by nothing (delta 0 or noise, not ahead of now), or the
              // stamp it was forced to (right after the previous one) is its own.
              const ownByForce = previous !== undefined && formatTimestamp(tick({ ...parseTimestamp(previous), replica: L })) === c.hlc;
              if (!ownByForce) expect(formatTimestamp(shifted(pc.input, c))).toBe(c.hlc);
            }
            previous = newStamp(plan, c);
          }
        },
      ),
      RUNS,
    );
  });

  it('threshold mode: exactly the changes with a wall time beyond the threshold (and above accepted) move', () => {
    fc.assert(
      fc.property(
        planCaseArb.filter((pc) => !pc.input.all),
        (pc) => {
          const plan = planRestamp(pc.input);
          for (const c of pc.sorted) {
            const eligible = hlcWall(c.hlc) > pc.input.threshold && (pc.input.accepted === undefined || c.hlc > pc.input.accepted);
            if (!eligible) expect(plan.renames.has(c.hlc), `${c.hlc} at or below the threshold ${pc.input.threshold} or accepted`).toBe(false);
          }
          // With a real move back (none clamped to 0) every eligible change is renamed, unless the
          // stamp it is forced to (right after the previous one) happens to be its own.
          if (pc.input.delta < 0 && pc.sorted.every((c) => hlcWall(c.hlc) + pc.input.delta > 0)) {
            let previous = floorOf(pc);
            for (const c of movingOf(pc)) {
              const ownByForce = previous !== undefined && formatTimestamp(tick({ ...parseTimestamp(previous), replica: L })) === c.hlc;
              if (!ownByForce) expect(plan.renames.has(c.hlc), `${c.hlc} moved back by ${-pc.input.delta}`).toBe(true);
              previous = newStamp(plan, c);
            }
          }
        },
      ),
      RUNS,
    );
  });

  it('last is the latest stamp the replica then holds (undefined when it holds none)', () => {
    fc.assert(
      fc.property(planCaseArb, (pc) => {
        const plan = planRestamp(pc.input);
        let latest = pc.input.accepted;
        for (const c of pc.sorted) latest = maxHlc(latest, newStamp(plan, c));
        expect(plan.last).toBe(latest);
      }),
      RUNS,
    );
  });

  it('all mode with |delta| under 1,000 ms moves nothing that is not ahead of now', () => {
    fc.assert(
      fc.property(
        planCaseArb.filter((pc) => pc.input.all && Math.abs(pc.input.delta) < 1_000),
        (pc) => {
          const plan = planRestamp(pc.input);
          for (const old of plan.renames.keys()) expect(hlcWall(old), `${old} moved, now ${pc.input.now}, accepted ${pc.input.accepted}`).toBeGreaterThan(pc.input.now);
        },
      ),
      RUNS,
    );
  });

  it('all mode, delta 0: a change tied on (wall, counter) with accepted but above it (its replica id sorts higher) is not moved', () => {
    // The change is above accepted as a stamp and not ahead of now: nothing calls for a new stamp.
    const change = localChange(SPACES[0], 1, stamp(5_000, 3, L));
    const plan = planRestamp({ replica: L, outbox: [change], all: true, threshold: 0, delta: 0, now: 10_000, accepted: stamp(5_000, 3, BELOW) });
    expect([...plan.renames]).toEqual([]);
    expect(plan.last).toBe(change.hlc);
  });

  it('examples: the first welcome moves by the measured offset; a clock jump is undone down to now; the floor forces stamps up', () => {
    const changes = [stamp(10_000, 0, L), stamp(10_000, 1, L), stamp(10_500, 0, L)].map((h, i) => localChange(SPACES[0], i + 1, h));
    // First welcome: the device was 1 h behind the server.
    const hour = 3_600_000;
    const first = planRestamp({ replica: L, outbox: changes, all: true, threshold: 0, delta: hour, now: 20_000 + hour, accepted: undefined });
    expect([...first.renames.values()]).toEqual([stamp(10_000 + hour, 0, L), stamp(10_000 + hour, 1, L), stamp(10_500 + hour, 0, L)]);
    // Later: a jump of 1 h ahead, undone; the result is capped at now.
    const ahead = changes.map((c) => ({ ...c, hlc: stamp(hlcWall(c.hlc) + hour, parseTimestamp(c.hlc).counter, L) }));
    const back = planRestamp({ replica: L, outbox: ahead, all: false, threshold: 10_000 + 60_000, delta: -hour, now: 10_200, accepted: stamp(9_000, 0, BELOW) });
    expect([...back.renames.values()]).toEqual([stamp(10_000, 0, L), stamp(10_000, 1, L), stamp(10_200, 0, L)]);
    expect(back.last).toBe(stamp(10_200, 0, L));
    // The server accepted a stamp above where the changes would land: they go right after it.
    const forced = planRestamp({ replica: L, outbox: ahead, all: false, threshold: 0, delta: -hour, now: 10_200, accepted: stamp(12_000, MAX_COUNTER, ABOVE) });
    expect([...forced.renames.values()]).toEqual([stamp(12_001, 0, L), stamp(12_001, 1, L), stamp(12_001, 2, L)]);
    // Nothing to move.
    expect(planRestamp({ replica: L, outbox: [], all: true, threshold: 0, delta: hour, now: 0, accepted: undefined })).toEqual({ renames: new Map(), last: undefined });
    expect(planRestamp({ replica: L, outbox: [], all: false, threshold: 0, delta: 0, now: 0, accepted: stamp(7, 0, BELOW) }).last).toBe(stamp(7, 0, BELOW));
  });

  it('RESTAMP_MARGIN_MS: with the replica threshold (now + maxClockDrift + margin), a change at the threshold stays and one 1 ms beyond moves', () => {
    expect(RESTAMP_MARGIN_MS).toBe(60_000);
    const now = 1_000_000;
    const drift = 300_000;
    const threshold = now + drift + RESTAMP_MARGIN_MS;
    const at = localChange(SPACES[0], 1, stamp(threshold, 0, L));
    const beyond = localChange(SPACES[0], 2, stamp(threshold + 1, 0, L));
    const plan = planRestamp({ replica: L, outbox: [at, beyond], all: false, threshold, delta: -(threshold + 1 - now), now, accepted: undefined });
    expect(plan.renames.has(at.hlc)).toBe(false);
    // Forced above the change that stays (the floor), though now is below it.
    expect(plan.renames.get(beyond.hlc)).toBe(stamp(threshold, 1, L));
  });
});

// ---------------------------------------------------------------------------
// Renaming stored states = applying renamed changes (realistic histories)

type Kind = Policy | 'mixed';
const KINDS: readonly Kind[] = ['lww', 'merge', 'crdt', 'mixed'];

/** Every stamp a state holds. */
function stampsOf(state: RecordState): HlcString[] {
  const out: HlcString[] = [];
  if (state.lww) {
    for (const h of [state.lww.cleared, state.lww.deleted, state.lww.touched]) if (h !== undefined) out.push(h);
    for (const [, field] of lwwEntries(state.lww)) out.push(field.hlc);
  }
  for (const v of state.merge?.siblings ?? []) out.push(v.hlc);
  for (const f of state.crdt?.values() ?? []) out.push(f.touched);
  return out;
}

/** A history's changes with every replica id prefixed (stamps and merge contexts too), in one collection; and the changes some other replica received. */
function relabel(history: History, prefix: string, collection: string): { changes: Change[]; seen: Set<Change> } {
  const rid = (r: ReplicaId) => replicaId(`${prefix}${r}`);
  const map = new Map<Change, Change>();
  for (const c of history.changes) {
    const t = parseTimestamp(c.hlc);
    const base = { ...c, collection, replica: rid(c.replica), hlc: formatTimestamp({ ...t, replica: rid(t.replica) }) };
    map.set(c, (c.op === 'version' ? { ...base, context: new Map([...c.context].map(([r, s]) => [rid(r), s])) } : base) as Change);
  }
  const seen = new Set<Change>();
  history.received.forEach((list, i) => {
    for (const c of list) if (c.replica !== history.replicas[i]) seen.add(map.get(c) as Change);
  });
  return { changes: history.changes.map((c) => map.get(c) as Change), seen };
}

interface Scenario {
  readonly kind: Kind;
  readonly changes: readonly Change[];
  readonly seen: ReadonlySet<Change>;
  readonly pick: {
    readonly local: number;
    readonly k: number;
    readonly earlier: number;
    readonly jump: number;
    readonly all: boolean;
    readonly threshold: number;
    readonly now: number;
    readonly delta: number | 'undo';
    readonly order: readonly number[];
    readonly duplicates: readonly number[];
  };
}

const HISTORY = { replicas: 4, maxWritesPerReplica: 6 };
const CRDT_HISTORY = { replicas: 3, maxWritesPerReplica: 5, maxSteps: 14 };

/** Steps a replica writes with, after everything else, delivered to no one (what a replica writes offline). */
const tailArb = (replicas: number): fc.Arbitrary<Step[]> =>
  fc
    .record({
      writer: fc.nat(replicas - 1),
      steps: fc.array(
        fc.record({
          advance: fc.nat(3),
          record: fc.nat(2),
          kind: fc.nat(9),
          set: fc.nat(15),
          unset: fc.nat(15),
          values: fc.array(fc.nat(8), { minLength: 4, maxLength: 4 }),
          edit: fc.record({ field: fc.nat(2), pos: fc.nat(16), len: fc.nat(2), item: fc.nat(30) }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    })
    .map(({ writer, steps }) => steps.map((step) => ({ ...step, writer, clockJump: 0, deliveries: [] })));

/** A realistic history (helpers/changes.ts) and then a few writes of one replica that no one else receives. */
function arbHistoryWithTail(policy: Policy, options: typeof HISTORY & { maxSteps?: number }): fc.Arbitrary<History> {
  return fc
    .tuple(arbScript(policy, options), tailArb(options.replicas))
    .map(([script, tail]) => simulate({ ...script, steps: [...script.steps, ...tail], maxWritesPerReplica: script.maxWritesPerReplica + tail.length }));
}

function arbScenario(kind: Kind): fc.Arbitrary<Scenario> {
  const histories: fc.Arbitrary<Array<{ changes: Change[]; seen: Set<Change> }>> =
    kind === 'mixed'
      ? fc
          .tuple(arbHistoryWithTail('lww', HISTORY), arbHistoryWithTail('merge', HISTORY), arbHistoryWithTail('crdt', CRDT_HISTORY))
          .map(([l, m, c]) => [relabel(l, 'l-', 'mixed'), relabel(m, 'm-', 'mixed'), relabel(c, 'c-', 'mixed')])
      : arbHistoryWithTail(kind, kind === 'crdt' ? CRDT_HISTORY : HISTORY).map((h) => [relabel(h, '', h.changes[0]?.collection ?? 'x')]);
  return fc.record({
    histories,
    pick: fc.record({
      local: fc.nat(),
      k: fc.nat(),
      earlier: fc.nat(3),
      jump: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 7_200_000 })),
      all: fc.boolean(),
      threshold: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
      now: fc.double({ min: -0.2, max: 1.2, noNaN: true }),
      delta: fc.oneof({ weight: 3, arbitrary: fc.constant('undo' as const) }, fc.integer({ min: -999, max: 999 }), fc.integer({ min: -8_000_000, max: 8_000_000 })),
      order: fc.array(fc.nat(), { minLength: 120, maxLength: 120 }),
      duplicates: fc.array(fc.nat(), { maxLength: 6 }),
    }),
  }).map(({ histories: hs, pick }) => ({
    kind,
    changes: hs.flatMap((h) => h.changes),
    seen: new Set(hs.flatMap((h) => [...h.seen])),
    pick,
  }));
}

interface Built {
  /** Every change as stored and delivered (the local replica's last k shifted ahead). */
  readonly changes: readonly Change[];
  readonly delivery: readonly Change[];
  readonly plan: RestampPlan;
  readonly input: RestampInput;
  readonly moved: readonly Change[];
}

/**
 * The local replica's last k changes, which no one else received, get stamps above
 * every other one (its clock ran ahead); its outbox is those and a few earlier ones;
 * accepted is the latest of every other stamp. Undefined when no replica has such
 * changes.
 */
function build(s: Scenario): Built | undefined {
  const replicas = [...new Set(s.changes.map((c) => c.replica))];
  const unseenTail = (r: ReplicaId): Change[] => {
    const mine = s.changes.filter((c) => c.replica === r).sort((a, b) => a.seq - b.seq);
    let i = mine.length;
    while (i > 0 && !s.seen.has(mine[i - 1] as Change)) i--;
    return mine.slice(i);
  };
  const candidates = replicas.filter((r) => unseenTail(r).length > 0);
  if (candidates.length === 0) return undefined;
  const local = candidates[s.pick.local % candidates.length] as ReplicaId;
  const tail = unseenTail(local);
  const k = 1 + (s.pick.k % tail.length);
  const ahead = new Set(tail.slice(tail.length - k));
  const others = s.changes.filter((c) => !ahead.has(c));
  const maxOtherWall = Math.max(0, ...others.map((c) => hlcWall(c.hlc)));
  const minAheadWall = Math.min(...[...ahead].map((c) => hlcWall(c.hlc)));
  const jump = maxOtherWall - minAheadWall + s.pick.jump;
  const shiftedOf = new Map<Change, Change>();
  for (const c of ahead) {
    const t = parseTimestamp(c.hlc);
    shiftedOf.set(c, { ...c, hlc: formatTimestamp({ ...t, wall: t.wall + jump }) });
  }
  const changes = s.changes.map((c) => shiftedOf.get(c) ?? c);
  let accepted: HlcString | undefined;
  for (const c of others) accepted = maxHlc(accepted, c.hlc);
  const mine = changes.filter((c) => c.replica === local).sort((a, b) => a.seq - b.seq);
  const outbox = mine.slice(Math.max(0, mine.length - k - s.pick.earlier));
  const walls = changes.map((c) => hlcWall(c.hlc));
  const [lo, hi] = [Math.min(...walls), Math.max(...walls)];
  const input: RestampInput = {
    replica: local,
    outbox,
    all: s.pick.all,
    threshold: Math.round(lo + (hi - lo) * s.pick.threshold),
    delta: s.pick.delta === 'undo' ? -jump : s.pick.delta,
    now: Math.max(0, Math.round(lo + (hi - lo) * s.pick.now)),
    accepted,
  };
  const plan = planRestamp(input);
  // A delivery: every change in a random order, some twice.
  const keyed = changes.map((c, i) => [s.pick.order[i % s.pick.order.length] as number, i, c] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const delivery = keyed.map(([, , c]) => c);
  for (const d of s.pick.duplicates) delivery.splice(d % (delivery.length + 1), 0, changes[d % changes.length] as Change);
  return { changes, delivery, plan, input, moved: outbox.filter((c) => plan.renames.has(c.hlc)) };
}

const renamed = (renames: ReadonlyMap<HlcString, HlcString>) => (c: Change): Change => (renames.has(c.hlc) ? { ...c, hlc: renames.get(c.hlc) as HlcString } : c);

describe('restampState: renaming a state = applying the renamed changes', () => {
  const runs: Record<Kind, number> = { lww: 300, merge: 300, crdt: 120, mixed: 120 };

  it.each(KINDS)('%s records: apply then rename equals rename then apply (canonical state and materialized view); untouched states are returned as they are', (kind) => {
    let vacuous = 0;
    const stats = new Set<boolean>();
    let renamedStates = 0;
    let kept = 0;
    let total = 0;
    fc.assert(
      fc.property(arbScenario(kind), (scenario) => {
        total++;
        const b = build(scenario);
        if (!b || b.plan.renames.size === 0) {
          vacuous++;
          return;
        }
        stats.add(b.input.all);
        const { renames } = b.plan;
        // The precondition, on realistic data: strictly increasing on every stamp any record holds.
        const all = [...new Set(b.changes.map((c) => c.hlc))].sort();
        const to = all.map((h) => renames.get(h) ?? h);
        for (let i = 1; i < to.length; i++) expect(to[i] as string > (to[i - 1] as string)).toBe(true);

        const applied = applyAll(b.delivery);
        const restamped = new Map<string, RecordState>();
        for (const [key, state] of applied) {
          const out = restampState(state, renames);
          restamped.set(key, out);
          if (stampsOf(state).some((h) => renames.has(h))) {
            renamedStates++;
            expect(out).not.toBe(state);
          } else {
            kept++;
            expect(out, key).toBe(state);
          }
        }
        const expected = applyAll(b.delivery.map(renamed(renames)));
        expect(canonicalStates(restamped)).toEqual(canonicalStates(expected));
        expect(viewStrings(restamped)).toEqual(viewStrings(expected));
        for (const [key, state] of restamped) expect(materialize(state).value, key).toEqual(materialize(expected.get(key)).value);
        // The renamed changes, applied on top of the renamed states, change nothing more (idempotence).
        expect(canonicalStates(applyAll(b.changes.map(renamed(renames)), restamped))).toEqual(canonicalStates(expected));
      }),
      { numRuns: runs[kind] },
    );
    expect(vacuous).toBeLessThan(total / 3);
    // Both modes reached; most runs rename some stored state.
    expect([...stats].sort()).toEqual([false, true]);
    expect(renamedStates).toBeGreaterThan(total / 3);
    expect(kept).toBeGreaterThan(0);
  });

  it('returns the very same object when no stamp it holds is renamed (empty map, or renames of other stamps)', () => {
    fc.assert(
      fc.property(recordStateArb, fc.array(fc.tuple(hlcArb, hlcArb), { maxLength: 5 }), (state, pairs) => {
        expect(restampState(state, new Map())).toBe(state);
        const held = new Set(stampsOf(state));
        const renames = new Map(pairs.filter(([from]) => !held.has(from)));
        expect(restampState(state, renames)).toBe(state);
      }),
      { numRuns: 500 },
    );
  });

  it('renames every kind of stamp a state holds: lww cleared, deleted, touched and fields, merge siblings, crdt touched', () => {
    fc.assert(
      fc.property(recordStateArb, (state) => {
        const held = [...new Set(stampsOf(state))].sort();
        fc.pre(held.length > 0);
        // A strictly increasing renaming of every held stamp into fresh ones of a replica no one has.
        const renames = new Map(held.map((h, i) => [h, formatTimestamp({ wall: i + 1, counter: 0, replica: replicaId('renamed') })] as const));
        const out = restampState(state, renames);
        expect(stampsOf(out).sort()).toEqual(stampsOf(state).map((h) => renames.get(h) as HlcString).sort());
        // Nothing else changes: renaming back gives the state's canonical form.
        const back = new Map([...renames].map(([a, b]) => [b, a] as const));
        expect(canonicalState(restampState(out, back))).toBe(canonicalState(state));
      }),
      { numRuns: 500 },
    );
  });
});

describe('latestStamp', () => {
  it.each(KINDS)('%s records: the latest HLC of every change applied, in any order, before and after re-stamping', (kind) => {
    fc.assert(
      fc.property(arbScenario(kind), (scenario) => {
        const b = build(scenario);
        const changes = b?.changes ?? scenario.changes;
        const delivery = b?.delivery ?? scenario.changes;
        const states = applyAll(delivery);
        const latest = new Map<string, HlcString>();
        for (const [key] of states) latest.set(key, changes.filter((c) => recordKey(c) === key).reduce<HlcString | undefined>((m, c) => maxHlc(m, c.hlc), undefined) as HlcString);
        for (const [key, state] of states) expect(latestStamp(state), key).toBe(latest.get(key));
        if (b) {
          for (const [key, state] of states) {
            const expected = changes.filter((c) => recordKey(c) === key).map(renamed(b.plan.renames)).reduce<HlcString | undefined>((m, c) => maxHlc(m, c.hlc), undefined);
            expect(latestStamp(restampState(state, b.plan.renames)), key).toBe(expected);
          }
        }
      }),
      { numRuns: kind === 'crdt' || kind === 'mixed' ? 80 : 200 },
    );
  });

  it('an empty state has none', () => {
    expect(latestStamp({})).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// applyRestamp on a real storage

const schema = defineSchema({
  notes: { indexes: { byTitle: ['title'], byRank: ['rank', 'title'] } },
  events: { policy: 'merge', indexes: { byDay: ['day'] } },
  docs: { crdt: { body: 'text' }, indexes: { byKind: ['kind'] } },
});

const STORAGES: ReadonlyArray<readonly [string, () => StorageFactory]> = [
  ['memory', () => memoryStorage()],
  ['indexeddb', () => indexedDbStorage({ indexedDB: new IDBFactory(), IDBKeyRange })],
];

describe.each(STORAGES)('applyRestamp on %s storage', (_name, makeStorage) => {
  const SERVER_NOW = EPOCH + 86_400_000;
  const JUMP = 3_600_000;
  const OTHER = spaceId('other');

  async function setup() {
    let device = SERVER_NOW + JUMP;
    const replica = await createReplica({ name: uniqueName('restamp'), schema, storage: makeStorage(), tabs: false, now: () => device });
    // Remote changes first, stamped by the server's time: the records hold other replicas' stamps too.
    const remote = replicaId('remote');
    const remoteChanges: Change[] = [
      { space: replica.defaultSpace, collection: 'notes', id: 'n1', replica: remote, seq: 1, hlc: stamp(SERVER_NOW - 10_000, 0, remote), op: 'put', fields: { title: 'remote', rank: 0, extra: 'r' } },
      { space: replica.defaultSpace, collection: 'notes', id: 'untouched', replica: remote, seq: 2, hlc: stamp(SERVER_NOW - 9_000, 0, remote), op: 'put', fields: { title: 'zzz', rank: 9 } },
      { space: replica.defaultSpace, collection: 'events', id: 'e1', replica: remote, seq: 3, hlc: stamp(SERVER_NOW - 8_000, 0, remote), op: 'version', value: { day: 'mon', by: 'remote' }, context: new Map() },
    ];
    await portOf(replica).applyRemote(remoteChanges);
    // Local writes, stamped an hour ahead of the server, in several transactions and two spaces.
    await replica.patch('notes', 'n1', { title: 'local', rank: 2 });
    await replica.batch((batch) => {
      batch.put('notes', 'n2', { title: 'b', rank: 1 });
      batch.put('notes', 'n3', { title: 'c', rank: 1 });
      batch.put('notes', 'n2', { title: 'b2', rank: 1 }, { space: OTHER });
    });
    device += 5;
    await replica.delete('notes', 'n3');
    await replica.put('notes', '__proto__', { title: 'proto', rank: 3 });
    await replica.put('events', 'e2', { day: 'tue', n: 1 });
    await replica.patch('events', 'e2', { n: 2 });
    const doc = await replica.text('docs', 'd1', 'body');
    const committed = nextCommit(replica, 'the crdt edit');
    doc.insert(0, 'hello');
    await committed;
    await replica.patch('docs', 'd1', { kind: 'memo' });
    return { replica, remoteChanges };
  }

  async function snapshot(replica: Awaited<ReturnType<typeof setup>>['replica']) {
    const storage = storageOf(replica);
    return storage.transaction('readonly', async (tx) => {
      const records = [...(await tx.scanRecords('notes')), ...(await tx.scanRecords('events')), ...(await tx.scanRecords('docs'))];
      return { records, outbox: await tx.readOutbox(undefined, Number.MAX_SAFE_INTEGER), counts: [await tx.countOutbox(), await tx.countOutbox(replica.defaultSpace), await tx.countOutbox(OTHER)] };
    });
  }

  const queries = (replica: Awaited<ReturnType<typeof setup>>['replica']) =>
    Promise.all([
      replica.query({ collection: 'notes', index: 'byTitle' }),
      replica.query({ collection: 'notes', index: 'byRank', eq: [1] }),
      replica.query({ collection: 'notes', index: 'byTitle', space: OTHER }),
      replica.query({ collection: 'events', index: 'byDay' }),
      replica.query({ collection: 'docs', index: 'byKind', eq: ['memo'] }),
      replica.query({ collection: 'notes' }),
    ]);

  it('renames the outbox and the records it touched; values, index entries and the other records stay', async () => {
    const { replica, remoteChanges } = await setup();
    try {
      const beforeSnap = await snapshot(replica);
      const beforeRows = await queries(replica);
      expect(beforeSnap.outbox.length).toBeGreaterThanOrEqual(9);
      expect(beforeSnap.outbox.every((c) => hlcWall(c.hlc) >= SERVER_NOW + JUMP)).toBe(true);
      let plan: RestampPlan | undefined;
      const moved = await storageOf(replica).transaction('readwrite', async (tx) => {
        const collections = await openCollections(tx, schema);
        const outbox = await tx.readOutbox(undefined, Number.MAX_SAFE_INTEGER);
        plan = planRestamp({
          replica: replica.id,
          outbox,
          all: false,
          threshold: SERVER_NOW + 300_000 + RESTAMP_MARGIN_MS,
          delta: -JUMP,
          now: SERVER_NOW,
          accepted: remoteChanges.map((c) => c.hlc).reduce<HlcString | undefined>((m, h) => maxHlc(m, h), undefined),
        });
        return applyRestamp(tx, collections, outbox, plan);
      });
      const { renames } = plan as RestampPlan;
      expect(moved).toBe(beforeSnap.outbox.length);
      expect(renames.size).toBe(beforeSnap.outbox.length);
      const afterSnap = await snapshot(replica);
      // The outbox: the same changes in [space, seq] order, with the new stamps; counts unchanged.
      expect(afterSnap.outbox).toEqual(beforeSnap.outbox.map(renamed(renames)));
      expect(afterSnap.outbox.every((c) => hlcWall(c.hlc) <= SERVER_NOW)).toBe(true);
      expect(afterSnap.counts).toEqual(beforeSnap.counts);
      // The records: states renamed, values and index keys as they were; the untouched record is the same.
      expect(afterSnap.records.map((r) => [r.collection, r.id, r.space])).toEqual(beforeSnap.records.map((r) => [r.collection, r.id, r.space]));
      beforeSnap.records.forEach((old, i) => {
        const now = afterSnap.records[i] as (typeof afterSnap.records)[number];
        const what = `${old.collection}/${old.id}@${old.space}`;
        expect(canonicalState(now.state), what).toBe(canonicalState(restampState(old.state, renames)));
        expect(now.value, what).toEqual(old.value);
        expect(now.ix, what).toEqual(old.ix);
        expect(stampsOf(now.state).some((h) => renames.has(h) && !([...renames.values()] as string[]).includes(h)), what).toBe(false);
        if (old.id === 'untouched') expect(now).toEqual(old);
      });
      // The states are what applying the renamed changes gives (the remote ones included).
      const expected = new Map<string, RecordState>();
      const at = (r: { collection: string; id: string; space: SpaceId }) => JSON.stringify([r.collection, r.id, r.space]);
      for (const c of [...remoteChanges, ...beforeSnap.outbox.map(renamed(renames))]) expected.set(at(c), applyChange(expected.get(at(c)), c));
      for (const r of afterSnap.records) expect(canonicalState(r.state), at(r)).toBe(canonicalState(expected.get(at(r))));
      // Queries by every index give the same rows.
      const afterRows = await queries(replica);
      expect(afterRows.map((rows) => rows.map((r) => [r.id, r.space, r.value]))).toEqual(beforeRows.map((rows) => rows.map((r) => [r.id, r.space, r.value])));
      expect(beforeRows.map((rows) => rows.length)).toEqual([5, 2, 1, 2, 1, 5]);
      // The merge record's versions carry the new stamps.
      const conflicts = await replica.conflicts('events', 'e2');
      for (const v of conflicts) expect([...renames.values()]).toContain(v.hlc);
    } finally {
      await replica.close();
    }
  });

  it('a plan that renames nothing writes nothing', async () => {
    const { replica } = await setup();
    try {
      const beforeSnap = await snapshot(replica);
      const moved = await storageOf(replica).transaction('readwrite', async (tx) => {
        const outbox = await tx.readOutbox(undefined, Number.MAX_SAFE_INTEGER);
        // Threshold beyond every stamp: nothing moves.
        const plan = planRestamp({ replica: replica.id, outbox, all: false, threshold: SERVER_NOW + 10 * JUMP, delta: -JUMP, now: SERVER_NOW, accepted: undefined });
        expect(plan.renames.size).toBe(0);
        return applyRestamp(tx, await openCollections(tx, schema), outbox, plan);
      });
      expect(moved).toBe(0);
      expect(await snapshot(replica)).toEqual(beforeSnap);
    } finally {
      await replica.close();
    }
  });
});

/**
 * Dropping retired writers' merge-context entries (merge.ts, withoutWriters;
 * DESIGN.md, "Stability and bounded growth"): once some writers write no more
 * and none of their versions is applied again (the server refuses a retired
 * replica and never applies a seq twice), a state without their entries that
 * no sibling needs shows the same siblings and values as the full state,
 * whatever the other writers write next, with contexts taken from a full
 * state, a trimmed one or their own stale one. Not vacuous (entries go), and
 * not safe without its premise (a retired writer's old version applied again
 * comes back as a sibling).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyChange, contextFor, formatTimestamp, recordKey, withoutRetired, type Change, type RecordState, type ReplicaId, type Resolver } from '@syncline/core/internal';
import { EPOCH, VALUES, applyAll, arbHistory, viewString, type History } from './helpers/changes.js';

const everySibling: Resolver = (siblings) => (siblings.length === 0 ? null : { n: siblings.length, last: siblings[siblings.length - 1]?.value ?? null });

function views(states: ReadonlyMap<string, RecordState>): string[] {
  return [...states.keys()].sort().flatMap((key) => [viewString(states.get(key)), viewString(states.get(key), { resolve: everySibling })]);
}

function trimAll(states: ReadonlyMap<string, RecordState>, gone: (r: ReplicaId) => boolean): Map<string, RecordState> {
  return new Map([...states].map(([key, state]) => [key, withoutRetired(state, gone)] as const));
}

function entries(states: ReadonlyMap<string, RecordState>): number {
  let n = 0;
  for (const state of states.values()) {
    if (!state.merge) continue;
    n += state.merge.seen.size;
    for (const v of state.merge.siblings) n += v.context.size;
  }
  return n;
}

/** A later write: by a writer that is not retired, with the context of the server's view of the record or of its own (stale) one. */
interface Later {
  readonly writer: number;
  readonly record: number;
  readonly from: 'server' | 'own';
  readonly value: number;
  readonly deletes: boolean;
}

const arbCase = fc.record({
  history: arbHistory('merge', { replicas: 5, maxWritesPerReplica: 6 }),
  retired: fc.uniqueArray(fc.nat({ max: 4 }), { minLength: 1, maxLength: 4 }),
  later: fc.array(
    fc.record({
      writer: fc.nat({ max: 4 }),
      record: fc.nat({ max: 2 }),
      from: fc.constantFrom('server' as const, 'own' as const),
      value: fc.nat({ max: VALUES.length - 1 }),
      deletes: fc.boolean(),
    }),
    { maxLength: 12 },
  ),
});

/**
 * Two worlds after the history: in one the server keeps full states, in the
 * other it trims them after every change (as each pass does); each writer
 * writes the same steps, with the context its view holds in its world (a
 * replica that bootstraps gets the server's states; one that does not keeps
 * its own, untrimmed). Resolves to both servers' states.
 */
function run(history: History, retired: readonly number[], later: readonly Later[]): { full: Map<string, RecordState>; trimmed: Map<string, RecordState> } {
  const gone = new Set(retired.map((i) => history.replicas[i] as ReplicaId));
  const trim = (states: ReadonlyMap<string, RecordState>) => trimAll(states, (r) => gone.has(r));
  const worlds = [false, true].map((trims) => {
    const server = applyAll(history.changes);
    return { trims, server: trims ? trim(server) : server, own: history.localStates.map((states) => new Map(states)) };
  });
  const records = [...new Map(history.changes.map((c) => [recordKey(c), c] as const)).values()];
  const seqs = new Map<ReplicaId, number>();
  for (const c of history.changes) seqs.set(c.replica, Math.max(seqs.get(c.replica) ?? 0, c.seq));
  let wall = EPOCH + 3_600_000;
  for (const step of later) {
    if (retired.includes(step.writer)) continue;
    const replica = history.replicas[step.writer] as ReplicaId;
    const { space, collection, id } = records[step.record % records.length] as Change;
    const key = recordKey({ collection, id });
    const seq = (seqs.get(replica) ?? 0) + 1;
    seqs.set(replica, seq);
    const hlc = formatTimestamp({ wall: wall++, counter: 0, replica });
    for (const world of worlds) {
      const own = world.own[step.writer] as Map<string, RecordState>;
      const view = step.from === 'server' ? world.server : own;
      const change = { space, collection, id, replica, seq, hlc, op: 'version', value: step.deletes ? null : { title: VALUES[step.value] }, context: contextFor(view.get(key)?.merge) } as Change;
      world.server = applyAll([change], world.server);
      if (world.trims) world.server = trim(world.server);
      own.set(key, applyChange(own.get(key), change));
    }
  }
  return { full: (worlds[0] as { server: Map<string, RecordState> }).server, trimmed: (worlds[1] as { server: Map<string, RecordState> }).server };
}

describe('merge contexts without retired writers', () => {
  it('show the same siblings and values as full ones, whatever the other writers write next', () => {
    fc.assert(
      fc.property(arbCase, ({ history, retired, later }) => {
        const gone = new Set(retired.map((i) => history.replicas[i] as ReplicaId));
        const full = applyAll(history.changes);
        expect(views(trimAll(full, (r) => gone.has(r)))).toEqual(views(full));
        const after = run(history, retired, later);
        expect(views(after.trimmed)).toEqual(views(after.full));
      }),
      { numRuns: 400 },
    );
  });

  it('drops entries: about what the retired writers held, and nothing of a writer that holds a sibling', () => {
    let before = 0;
    let after = 0;
    for (const { history, retired } of fc.sample(arbCase, { numRuns: 200, seed: 11 })) {
      const gone = new Set(retired.map((i) => history.replicas[i] as ReplicaId));
      const full = applyAll(history.changes);
      const trimmed = trimAll(full, (r) => gone.has(r));
      before += entries(full);
      after += entries(trimmed);
      for (const state of trimmed.values()) {
        const writers = new Set(state.merge?.siblings.map((v) => v.replica));
        for (const replica of state.merge?.seen.keys() ?? []) expect(gone.has(replica) && !writers.has(replica)).toBe(false);
        for (const replica of writers) if (gone.has(replica)) expect(state.merge?.seen.has(replica)).toBe(true);
      }
      expect(trimAll(trimmed, (r) => gone.has(r))).toEqual(trimmed);
    }
    expect(after).toBeLessThan(before * 0.8);
  });

  it('needs its premise: a retired writer’s superseded version applied again comes back as a sibling', () => {
    const found = fc.sample(arbCase, { numRuns: 300, seed: 5 }).some(({ history, retired }) => {
      const gone = new Set(retired.map((i) => history.replicas[i] as ReplicaId));
      const full = applyAll(history.changes);
      const trimmed = trimAll(full, (r) => gone.has(r));
      return history.changes.some((c) => gone.has(c.replica) && viewString(applyAll([c], trimmed).get(recordKey(c))) !== viewString(applyAll([c], full).get(recordKey(c))));
    });
    expect(found).toBe(true);
  });
});

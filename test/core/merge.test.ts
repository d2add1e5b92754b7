/**
 * merge policy (DESIGN.md "Conflict policies" 2): concurrent writes are detected
 * and kept as siblings; every replica computes the same visible value; a write made
 * after reading the siblings supersedes them all.
 */
import { describe, expect, it } from 'vitest';
import {
  Hlc,
  applyChange,
  canonicalState,
  contextFor,
  fieldsFromEntries,
  formatTimestamp,
  materialize,
  replicaId,
  spaceId,
  validateChange,
  vv,
  type Change,
  type Fields,
  type Json,
  type RecordState,
  type ReplicaId,
  type Resolver,
  type Version,
} from '@syncline/core/internal';

const SPACE = spaceId('calendar-1');

/** One replica's view of one merge record. */
class Replica {
  readonly id: ReplicaId;
  readonly clock: Hlc;
  seq = 0;
  state: RecordState | undefined;
  time: number;

  constructor(name: string, start: number) {
    this.id = replicaId(name);
    this.time = start;
    this.clock = new Hlc({ replica: this.id, now: () => this.time });
  }

  /** A local write made in the context of everything this replica has seen of the record. */
  write(value: Fields | null): Change {
    const change: Change = {
      space: SPACE,
      collection: 'events',
      id: 'standup',
      replica: this.id,
      seq: ++this.seq,
      hlc: this.clock.nowString(),
      op: 'version',
      value,
      context: contextFor(this.state?.merge),
    };
    validateChange(change);
    this.state = applyChange(this.state, change);
    return change;
  }

  receive(...changes: Change[]): this {
    for (const change of changes) {
      if (change.replica !== this.id) this.clock.receive(change.hlc);
      this.state = applyChange(this.state, change);
    }
    return this;
  }
}

const fields = (obj: Record<string, Json>): Fields => fieldsFromEntries(Object.entries(obj));
const dots = (siblings: readonly Version[]): string[] => siblings.map((s) => `${s.replica}:${s.seq}`);

/** Three replicas with skewed clocks; bob's clock is ahead, so bob's concurrent write has the highest HLC. */
function trio(): { alice: Replica; bob: Replica; carol: Replica } {
  return { alice: new Replica('alice', 10_000), bob: new Replica('bob', 10_500), carol: new Replica('carol', 9_000) };
}

describe('merge policy', () => {
  it('keeps two concurrent writes as siblings on every replica, whatever the delivery order', () => {
    const { alice, bob, carol } = trio();
    const a1 = alice.write(fields({ title: 'Standup', room: 'A' }));
    const b1 = bob.write(fields({ title: 'Daily standup' }));
    alice.receive(b1);
    bob.receive(a1);
    carol.receive(b1, a1, b1, a1); // other order, with duplicates

    const expected = canonicalState(alice.state);
    for (const r of [alice, bob, carol]) {
      const view = materialize(r.state);
      expect(dots(view.siblings), r.id).toEqual(['alice:1', 'bob:1']);
      expect(view.exists).toBe(true);
      // Default: the sibling with the highest HLC (bob's clock is ahead).
      expect(view.value).toEqual({ title: 'Daily standup' });
      expect(canonicalState(r.state)).toBe(expected);
    }
    expect(b1.hlc > a1.hlc).toBe(true);
  });

  it('a custom resolve gives the same visible value everywhere', () => {
    const { alice, bob, carol } = trio();
    const a1 = alice.write(fields({ title: 'Standup', room: 'A' }));
    const b1 = bob.write(fields({ title: 'Daily standup' }));
    alice.receive(b1);
    bob.receive(a1);
    carol.receive(a1, b1);
    // The app keeps the longest title and the union of the other fields, whatever the HLC says.
    const resolve: Resolver = (siblings) => {
      const live = siblings.filter((s) => s.value !== null).map((s) => s.value as Fields);
      const title = live.map((v) => String(v.title)).sort((x, y) => y.length - x.length || (x < y ? -1 : 1))[0] ?? '';
      return fields({ ...Object.assign({}, ...live), title });
    };
    const seen = new Set<string>();
    const calls: number[] = [];
    for (const r of [alice, bob, carol]) {
      const view = materialize(r.state, {
        resolve: (s) => {
          calls.push(s.length);
          return resolve(s);
        },
      });
      expect(view.value).toEqual({ title: 'Daily standup', room: 'A' });
      seen.add(JSON.stringify(view.value));
    }
    expect(seen.size).toBe(1);
    expect(calls).toEqual([2, 2, 2]);
    // A resolver picking the oldest sibling shows that the choice is the resolver's, not the HLC's.
    const oldest: Resolver = (siblings) => (siblings[0] as Version).value;
    for (const r of [alice, bob, carol]) expect(materialize(r.state, { resolve: oldest }).value).toEqual({ title: 'Standup', room: 'A' });
  });

  it('a write made after reading both siblings supersedes them on every replica, whatever arrives first', () => {
    const { alice, bob, carol } = trio();
    const dave = new Replica('dave', 10_000);
    const a1 = alice.write(fields({ title: 'Standup' }));
    const b1 = bob.write(fields({ title: 'Daily standup' }));
    carol.receive(a1, b1);
    expect(materialize(carol.state).siblings).toHaveLength(2);
    // carol resolves the conflict; her clock is behind both writers, but receiving them advanced it.
    const c1 = carol.write(fields({ title: 'Standup at 9:30' }));
    expect(vv.toEntries(c1.op === 'version' ? c1.context : new Map())).toEqual([
      ['alice', 1],
      ['bob', 1],
    ]);
    expect(c1.hlc > b1.hlc && c1.hlc > a1.hlc).toBe(true);

    alice.receive(b1, c1);
    bob.receive(c1, a1); // the superseding write arrives before one of the siblings
    dave.receive(c1, b1, a1, c1); // before both, with a duplicate

    const expected = canonicalState(carol.state);
    for (const r of [alice, bob, carol, dave]) {
      const view = materialize(r.state);
      expect(dots(view.siblings), r.id).toEqual(['carol:1']);
      expect(view.value).toEqual({ title: 'Standup at 9:30' });
      expect(canonicalState(r.state)).toBe(expected);
    }
  });

  it('a write that has seen only one sibling supersedes only that one', () => {
    const { alice, bob, carol } = trio();
    const a1 = alice.write(fields({ title: 'A' }));
    const b1 = bob.write(fields({ title: 'B' }));
    const b2 = bob.write(fields({ title: 'B2' })); // bob has not seen a1
    carol.receive(b2, a1, b1);
    alice.receive(b1, b2);
    bob.receive(a1);
    for (const r of [alice, bob, carol]) {
      expect(dots(materialize(r.state).siblings), r.id).toEqual(['alice:1', 'bob:2']);
      expect(canonicalState(r.state)).toBe(canonicalState(carol.state));
    }
  });

  it("a replica's own later write supersedes its earlier one, also when they arrive in reverse", () => {
    const { alice, carol } = trio();
    const a1 = alice.write(fields({ title: 'draft' }));
    alice.time += 5;
    const a2 = alice.write(fields({ title: 'final' }));
    carol.receive(a2, a1);
    for (const r of [alice, carol]) {
      const view = materialize(r.state);
      expect(dots(view.siblings)).toEqual(['alice:2']);
      expect(view.value).toEqual({ title: 'final' });
    }
  });

  it('a delete concurrent with an update is a conflict; the visible result follows the HLC', () => {
    // bob's clock is ahead: his delete has the highest HLC.
    const { alice, bob, carol } = trio();
    const a1 = alice.write(fields({ title: 'Standup' }));
    bob.receive(a1);
    carol.receive(a1);
    const a2 = alice.write(fields({ title: 'Standup (moved)' }));
    const b2 = bob.write(null);
    expect(b2.hlc > a2.hlc).toBe(true);
    alice.receive(b2);
    bob.receive(a2);
    carol.receive(b2, a2);
    for (const r of [alice, bob, carol]) {
      const view = materialize(r.state);
      expect(dots(view.siblings), r.id).toEqual(['alice:2', 'bob:1']);
      expect(view.siblings.map((s) => s.value)).toEqual([{ title: 'Standup (moved)' }, null]);
      // The delete wins by default, but the conflict is still reported.
      expect(view.exists).toBe(false);
      expect(view.value).toBeUndefined();
      // An app that prefers keeping data can resolve to the update.
      const keep = materialize(r.state, { resolve: (s) => s.find((v) => v.value !== null)?.value ?? null });
      expect(keep).toMatchObject({ exists: true, value: { title: 'Standup (moved)' } });
    }

    // The other way round: the update has the highest HLC, the record exists, the conflict shows.
    const x = trio();
    const x1 = x.carol.write(fields({ title: 'Retro' }));
    x.alice.receive(x1);
    x.bob.receive(x1);
    const del = x.carol.write(null);
    const upd = x.bob.write(fields({ title: 'Retro (Friday)' }));
    x.carol.receive(upd);
    x.bob.receive(del);
    for (const r of [x.bob, x.carol]) {
      const view = materialize(r.state);
      expect(dots(view.siblings)).toEqual(['carol:2', 'bob:1']);
      expect(view).toMatchObject({ exists: true, value: { title: 'Retro (Friday)' } });
    }
    // Resolving the conflict with a delete removes the record everywhere.
    const gone = x.carol.write(null);
    x.bob.receive(gone);
    for (const r of [x.bob, x.carol]) expect(materialize(r.state)).toMatchObject({ exists: false, siblings: [{ replica: 'carol', seq: 3, value: null }] });
  });

  it('converges even when a version does not list its own writer\'s earlier version in its context', () => {
    // validateChange accepts this (a buggy or hostile client, or a replica that lost its local state);
    // every replica must still compute the same state whatever the order.
    const hlc = (wall: number) => formatTimestamp({ wall, counter: 0, replica: replicaId('mallory') });
    const base = { space: SPACE, collection: 'events', id: 'standup', replica: replicaId('mallory'), op: 'version' } as const;
    const first: Change = { ...base, seq: 1, hlc: hlc(1_000), value: fields({ title: 'one' }), context: new Map() };
    const second: Change = { ...base, seq: 2, hlc: hlc(2_000), value: fields({ title: 'two' }), context: new Map() };
    validateChange(first);
    validateChange(second);
    const forward = new Replica('alice', 0).receive(first, second).state;
    const backward = new Replica('bob', 0).receive(second, first).state;
    expect(canonicalState(forward)).toBe(canonicalState(backward));
    expect(materialize(forward)).toEqual(materialize(backward));
  });

  it('keeps the siblings in HLC order in the state and in the view', () => {
    const replicas = ['erin', 'dave', 'carol', 'bob', 'alice'].map((name, i) => new Replica(name, 20_000 - i * 100));
    const writes = replicas.map((r) => r.write(fields({ by: r.id })));
    const everyone = new Replica('zed', 0).receive(...[...writes].reverse());
    const view = materialize(everyone.state);
    expect(view.siblings.map((s) => s.hlc)).toEqual(writes.map((w) => w.hlc).sort());
    expect(view.value).toEqual({ by: 'erin' });
  });
});

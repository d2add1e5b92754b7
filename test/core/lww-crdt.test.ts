/**
 * lww and crdt policies (DESIGN.md "Conflict policies" 1 and 3): field-level
 * last-writer-wins by HLC, record tombstones, Yjs fields merged by Yjs, and records
 * that mix both.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import {
  CRDT_ROOT,
  InvalidChangeError,
  SynclineError,
  applyChange,
  applyChanges,
  canonicalState,
  fieldsFromEntries,
  formatTimestamp,
  materialize,
  replicaId,
  spaceId,
  validateChange,
  type Change,
  type ChangeOp,
  type CrdtType,
  type Json,
  type RecordState,
  type ReplicaId,
} from '@syncline/core/internal';

const SPACE = spaceId('calendar-1');
const ALICE = replicaId('alice');
const BOB = replicaId('bob');
const CAROL = replicaId('carol');

const seqs = new Map<string, number>();
/** A change of record `ev-1` stamped (wall, replica); seq counts per replica. */
function change(replica: ReplicaId, wall: number, op: ChangeOp, id = 'ev-1'): Change {
  const seq = (seqs.get(replica) ?? 0) + 1;
  seqs.set(replica, seq);
  const c = { space: SPACE, collection: 'events', id, replica, seq, hlc: formatTimestamp({ wall, counter: 0, replica }), ...op } as Change;
  validateChange(c);
  return c;
}
const f = (obj: Record<string, Json>) => fieldsFromEntries(Object.entries(obj));
const put = (replica: ReplicaId, wall: number, fields: Record<string, Json>) => change(replica, wall, { op: 'put', fields: f(fields) });
const patch = (replica: ReplicaId, wall: number, fields: Record<string, Json>, unset: string[] = []) =>
  change(replica, wall, { op: 'patch', fields: f(fields), unset });
const del = (replica: ReplicaId, wall: number) => change(replica, wall, { op: 'delete' });

/** Every order of a small list. */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

/** Applies `changes` in every order (and once more with every change duplicated): all give `expected`. */
function expectEveryOrder(changes: readonly Change[], expected: { exists: boolean; value?: Record<string, Json> }): RecordState {
  const reference = applyChanges(undefined, changes);
  expect(materialize(reference)).toMatchObject(expected.exists ? { exists: true, value: expected.value } : { exists: false, value: undefined });
  if (expected.exists) expect(Object.keys(materialize(reference).value ?? {}).sort()).toEqual(Object.keys(expected.value ?? {}).sort());
  for (const order of permutations(changes)) {
    const state = applyChanges(undefined, [...order, ...order]);
    expect(canonicalState(state)).toBe(canonicalState(reference));
    expect(materialize(state)).toEqual(materialize(reference));
  }
  return reference;
}

describe('lww policy', () => {
  it('concurrent patches of different fields both survive', () => {
    expectEveryOrder([put(CAROL, 1_000, { title: 'Standup', room: 'A' }), patch(ALICE, 2_000, { title: 'Daily' }), patch(BOB, 1_900, { room: 'B' })], {
      exists: true,
      value: { title: 'Daily', room: 'B' },
    });
  });

  it('concurrent writes of the same field: the higher HLC wins, whatever the order', () => {
    expectEveryOrder([patch(ALICE, 2_000, { title: 'alice' }), patch(BOB, 2_001, { title: 'bob' }), patch(CAROL, 1_999, { title: 'carol' })], {
      exists: true,
      value: { title: 'bob' },
    });
    // Same wall time and counter: the replica id breaks the tie.
    expectEveryOrder([patch(ALICE, 3_000, { title: 'alice' }), patch(BOB, 3_000, { title: 'bob' })], { exists: true, value: { title: 'bob' } });
  });

  it('put removes the fields it omits, as of its timestamp', () => {
    expectEveryOrder([patch(ALICE, 1_000, { title: 'Standup', room: 'A', notes: 'x' }), put(BOB, 2_000, { title: 'Retro' })], {
      exists: true,
      value: { title: 'Retro' },
    });
    // A patch stamped after the put keeps its fields, even when it arrives first.
    expectEveryOrder([patch(ALICE, 1_000, { room: 'A' }), put(BOB, 2_000, { title: 'Retro' }), patch(CAROL, 3_000, { notes: 'later' })], {
      exists: true,
      value: { title: 'Retro', notes: 'later' },
    });
    // An older put does not remove newer fields.
    expectEveryOrder([put(BOB, 1_000, { title: 'Old' }), patch(ALICE, 2_000, { room: 'A' })], { exists: true, value: { title: 'Old', room: 'A' } });
  });

  it('unset removes a field, and an older write of it does not bring it back', () => {
    expectEveryOrder([put(ALICE, 1_000, { title: 'Standup', room: 'A' }), patch(BOB, 3_000, {}, ['room']), patch(CAROL, 2_000, { room: 'C' })], {
      exists: true,
      value: { title: 'Standup' },
    });
    expectEveryOrder([patch(BOB, 3_000, {}, ['room']), patch(CAROL, 4_000, { room: 'C' })], { exists: true, value: { room: 'C' } });
  });

  it('a delete tombstones the record; a later patch revives it with only the later fields', () => {
    const created = put(ALICE, 1_000, { title: 'Standup', room: 'A' });
    const deleted = del(BOB, 2_000);
    expectEveryOrder([created, deleted], { exists: false });
    const revived = patch(CAROL, 3_000, { room: 'B' });
    expectEveryOrder([created, deleted, revived], { exists: true, value: { room: 'B' } });
    // Deleting again hides it again.
    expectEveryOrder([created, deleted, revived, del(ALICE, 4_000)], { exists: false });
  });

  it('an older patch that arrives after the delete does not revive the record', () => {
    const created = put(ALICE, 1_000, { title: 'Standup' });
    const deleted = del(BOB, 3_000);
    const older = patch(CAROL, 2_000, { room: 'B' });
    // Delivered in this order on some replica: the older patch comes last.
    const state = applyChanges(undefined, [created, deleted, older]);
    expect(materialize(state)).toEqual({ exists: false, value: undefined, siblings: [] });
    expectEveryOrder([created, deleted, older], { exists: false });
    // A later write still revives it with only its own fields.
    expectEveryOrder([created, deleted, older, patch(ALICE, 4_000, { notes: 'n' })], { exists: true, value: { notes: 'n' } });
  });

  it('a record never written does not exist; a delete alone does not create it', () => {
    expect(materialize(undefined)).toEqual({ exists: false, value: undefined, siblings: [] });
    expect(materialize(applyChange(undefined, del(ALICE, 1_000))).exists).toBe(false);
  });

  it('applyChange is pure', () => {
    const before = applyChange(undefined, put(ALICE, 1_000, { title: 'a' }));
    const snapshot = canonicalState(before);
    applyChange(before, patch(BOB, 2_000, { title: 'b' }));
    applyChange(before, del(BOB, 3_000));
    expect(canonicalState(before)).toBe(snapshot);
    expect(materialize(before).value).toEqual({ title: 'a' });
  });
});

// ---------------------------------------------------------------------------
// crdt

/** One replica's Yjs documents for the crdt fields of one record. */
class CrdtWriter {
  readonly docs = new Map<string, Y.Doc>();
  constructor(
    readonly replica: ReplicaId,
    readonly clientId: number,
  ) {}

  doc(field: string): Y.Doc {
    let doc = this.docs.get(field);
    if (!doc) {
      doc = new Y.Doc();
      doc.clientID = this.clientId;
      this.docs.set(field, doc);
    }
    return doc;
  }

  /** Runs a local edit and returns the change carrying the update captured from doc.on('update'). */
  edit(wall: number, field: string, type: CrdtType, fn: (doc: Y.Doc) => void, id = 'ev-1'): Change {
    const doc = this.doc(field);
    const updates: Uint8Array[] = [];
    const listener = (update: Uint8Array, origin: unknown) => {
      if (origin !== 'remote') updates.push(update);
    };
    doc.on('update', listener);
    doc.transact(() => fn(doc));
    doc.off('update', listener);
    expect(updates).toHaveLength(1);
    return change(this.replica, wall, { op: 'crdt', field, type, update: updates[0] as Uint8Array }, id);
  }

  receive(...changes: Change[]): void {
    for (const c of changes) if (c.op === 'crdt' && c.replica !== this.replica) Y.applyUpdate(this.doc(c.field), c.update, 'remote');
  }
}

describe('crdt policy', () => {
  it('text edits from two replicas are both present, in every order', () => {
    const alice = new CrdtWriter(ALICE, 1);
    const bob = new CrdtWriter(BOB, 2);
    const base = alice.edit(1_000, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(0, 'agenda'));
    bob.receive(base);
    const a = alice.edit(2_000, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(0, 'ALICE '));
    const b = bob.edit(2_000, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(6, ' BOB'));
    const b2 = bob.edit(2_100, 'notes', 'text', (d) => d.getText(CRDT_ROOT).delete(0, 1));
    const state = expectEveryOrder([base, a, b, b2], { exists: true, value: { notes: 'ALICE genda BOB' } });
    // Yjs itself agrees with what the replicas see after exchanging updates.
    alice.receive(b, b2);
    bob.receive(a);
    expect(alice.doc('notes').getText(CRDT_ROOT).toString()).toBe('ALICE genda BOB');
    expect(bob.doc('notes').getText(CRDT_ROOT).toString()).toBe('ALICE genda BOB');
    expect(state.crdt?.get('notes')?.type).toBe('text');
  });

  it('map and array fields merge concurrent edits', () => {
    const alice = new CrdtWriter(ALICE, 1);
    const bob = new CrdtWriter(BOB, 2);
    const m1 = alice.edit(1_000, 'attendees', 'map', (d) => d.getMap(CRDT_ROOT).set('alice', 'yes'));
    const m2 = bob.edit(1_001, 'attendees', 'map', (d) => d.getMap(CRDT_ROOT).set('bob', 'maybe'));
    const a1 = alice.edit(1_002, 'agenda', 'array', (d) => d.getArray(CRDT_ROOT).insert(0, ['intro']));
    const a2 = bob.edit(1_003, 'agenda', 'array', (d) => d.getArray(CRDT_ROOT).insert(0, [{ topic: 'budget' }]));
    const state = expectEveryOrder([m1, m2, a1, a2], {
      exists: true,
      value: { attendees: { alice: 'yes', bob: 'maybe' }, agenda: materialize(applyChanges(undefined, [a1, a2])).value?.agenda ?? null },
    });
    const agenda = materialize(state).value?.agenda as Json[];
    expect([...agenda].map((x) => JSON.stringify(x)).sort()).toEqual(['"intro"', '{"topic":"budget"}']);
  });

  it('mixes crdt fields with lww fields in one record', () => {
    const alice = new CrdtWriter(ALICE, 1);
    const bob = new CrdtWriter(BOB, 2);
    const created = put(ALICE, 1_000, { title: 'Planning', room: 'A' });
    const text = alice.edit(1_100, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(0, 'hello'));
    const renamed = patch(BOB, 1_200, { title: 'Sprint planning' });
    const tags = bob.edit(1_300, 'tags', 'array', (d) => d.getArray(CRDT_ROOT).insert(0, ['q3']));
    const noRoom = patch(CAROL, 1_400, {}, ['room']);
    expectEveryOrder([created, text, renamed, tags, noRoom], {
      exists: true,
      value: { title: 'Sprint planning', notes: 'hello', tags: ['q3'] },
    });
  });

  it('a delete hides crdt fields too; a later crdt edit revives the record with only the later fields', () => {
    const alice = new CrdtWriter(ALICE, 1);
    const bob = new CrdtWriter(BOB, 2);
    const created = put(ALICE, 1_000, { title: 'Planning' });
    const notes = alice.edit(1_100, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(0, 'old notes'));
    const deleted = del(CAROL, 2_000);
    expectEveryOrder([created, notes, deleted], { exists: false });
    // An edit of another crdt field after the delete: the record is back with that field only.
    const tags = bob.edit(3_000, 'tags', 'array', (d) => d.getArray(CRDT_ROOT).insert(0, ['new']));
    expectEveryOrder([created, notes, deleted, tags], { exists: true, value: { tags: ['new'] } });
    // Same with an lww patch after the delete.
    const renamed = patch(BOB, 3_100, { title: 'Replanned' });
    expectEveryOrder([created, notes, deleted, renamed], { exists: true, value: { title: 'Replanned' } });
    // Editing the old crdt field after the delete brings that field back (with its whole document).
    const moreNotes = alice.edit(3_200, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(9, '!'));
    expectEveryOrder([created, notes, deleted, moreNotes], { exists: true, value: { notes: 'old notes!' } });
  });

  it('a crdt edit older than the delete does not revive the record', () => {
    const alice = new CrdtWriter(ALICE, 1);
    const created = put(ALICE, 1_000, { title: 'Planning' });
    const deleted = del(BOB, 3_000);
    const older = alice.edit(2_000, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(0, 'late'));
    expectEveryOrder([created, deleted, older], { exists: false });
  });

  it('an invalid Yjs update is refused with InvalidChangeError (code invalid_change), not a raw exception', () => {
    const alice = new CrdtWriter(ALICE, 1);
    const good = alice.edit(1_000, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(0, 'ok'));
    const garbage = [new Uint8Array([1, 2, 3]), new Uint8Array([0xff, 0xff, 0xff, 0xff]), new TextEncoder().encode('not yjs'), new Uint8Array([])];
    for (const update of garbage) {
      const bad = change(BOB, 2_000, { op: 'crdt', field: 'notes', type: 'text', update });
      // As the first update of the field and on top of a valid one.
      for (const state of [undefined, applyChange(undefined, good)]) {
        let error: unknown;
        try {
          applyChange(state, bad);
        } catch (e) {
          error = e;
        }
        expect(error, `update ${[...update].join(',')}`).toBeInstanceOf(InvalidChangeError);
        expect(error).toBeInstanceOf(SynclineError);
        expect((error as InvalidChangeError).code).toBe('invalid_change');
      }
    }
    // The refused update left the state usable.
    const state = applyChange(undefined, good);
    expect(materialize(state).value).toEqual({ notes: 'ok' });
  });

  it('random valid updates never throw and converge in any order (fast-check)', () => {
    const ops = fc.array(fc.tuple(fc.nat({ max: 2 }), fc.nat({ max: 5 }), fc.constantFrom('a', 'b', 'c')), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(
        ops.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list.map((_, i) => i), { minLength: list.length, maxLength: list.length }))),
        ([list, order]) => {
          const writers = [new CrdtWriter(ALICE, 1), new CrdtWriter(BOB, 2), new CrdtWriter(CAROL, 3)];
          const changes: Change[] = [];
          list.forEach(([who, pos, ch], i) => {
            const w = writers[who] as CrdtWriter;
            const c = w.edit(10_000 + i, 'notes', 'text', (d) => d.getText(CRDT_ROOT).insert(pos % (d.getText(CRDT_ROOT).length + 1), ch));
            changes.push(c);
            // The next writer sees this edit (a chain of partial syncs).
            writers[(who + 1) % 3]?.receive(c);
          });
          const expected = applyChanges(undefined, changes);
          const shuffled = applyChanges(undefined, order.map((i) => changes[i] as Change));
          expect(canonicalState(shuffled)).toBe(canonicalState(expected));
          expect(materialize(shuffled)).toEqual(materialize(expected));
          expect((materialize(expected).value?.notes as string).length).toBe(list.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});

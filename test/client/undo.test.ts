/**
 * replica.undo() and redo(): this replica's own writes undone as new writes. A
 * field goes back to its value before the step unless another write has set it
 * since; a record the step created is deleted again, one it deleted comes
 * back; merge records only while the step's version is current; crdt text
 * through Yjs's undo of this replica's edits. Replicas exchange their outboxes
 * through the sync port (applyRemote), as the engine does. Property: whatever
 * the interleaving of writes, deliveries, undos and redos, an undo or redo never
 * overwrites a field whose current write is another replica's, and replicas
 * that exchange everything converge.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { lwwField, type HlcString } from '@syncline/core/internal';
import { createReplica, defineSchema, memoryStorage, type Replica } from '@syncline/client';
import { nextCommit, outboxOf, uniqueName } from './helpers.js';
import { portOf, storageOf } from '../internals.js';

const schema = defineSchema({
  events: {},
  docs: { policy: 'merge' },
  pads: { crdt: { body: 'text' } },
});
const T0 = 1_800_000_000_000;
const idBytes = (byte: number) => (n: number) => new Uint8Array(n).fill(byte);
const open: Replica<typeof schema>[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) await r.close();
});

async function device(byte: number, now: () => number, undo?: { limit?: number; captureMs?: number }): Promise<Replica<typeof schema>> {
  const r = await createReplica({ name: uniqueName(`undo${byte}`), schema, storage: memoryStorage(), tabs: false, now, randomBytes: idBytes(byte), ...(undo ? { undo } : {}) });
  open.push(r);
  return r;
}

/** Applies `from`'s whole outbox to `to` (what it holds already is a no-op). */
async function deliver(from: Replica<typeof schema>, to: Replica<typeof schema>): Promise<void> {
  await portOf(to).applyRemote(await outboxOf(from));
}

const valueOf = async (r: Replica<typeof schema>, collection: 'events' | 'docs', id: string) => (await r.get(collection, id))?.value;

describe('undo and redo of local writes', () => {
  it('undoes a patch, then the put that created the record (deleted again); redo brings both back', async () => {
    let time = T0;
    const a = await device(1, () => time++);
    await a.put('events', 'e', { title: 'Standup', start: 9 });
    await a.patch('events', 'e', { title: 'Retro' });
    expect(a.history.canUndo).toBe(true);
    expect(a.history.canRedo).toBe(false);

    expect(await a.undo()).toBe(true);
    expect(await valueOf(a, 'events', 'e')).toEqual({ title: 'Standup', start: 9 });
    expect(await a.undo()).toBe(true);
    expect(await a.get('events', 'e')).toBeUndefined();
    expect(await a.undo()).toBe(false);
    expect(a.history.canRedo).toBe(true);

    expect(await a.redo()).toBe(true);
    expect(await valueOf(a, 'events', 'e')).toEqual({ title: 'Standup', start: 9 });
    expect(await a.redo()).toBe(true);
    expect(await valueOf(a, 'events', 'e')).toEqual({ title: 'Retro', start: 9 });
    expect(await a.redo()).toBe(false);
    // Each undo and redo is a write that syncs like any other.
    expect((await outboxOf(a)).map((c) => c.op)).toEqual(['put', 'patch', 'patch', 'delete', 'patch', 'patch']);
  });

  it('undoes a delete: the record comes back with its fields', async () => {
    let time = T0;
    const a = await device(1, () => time++);
    await a.put('events', 'e', { title: 'Lunch', start: 12 });
    await a.delete('events', 'e');
    expect(await a.get('events', 'e')).toBeUndefined();
    await a.undo();
    expect(await valueOf(a, 'events', 'e')).toEqual({ title: 'Lunch', start: 12 });
  });

  it('undoes a delete of a record with a crdt field: its text comes back as it was', async () => {
    let time = T0;
    const a = await device(1, () => time++);
    const b = await device(2, () => time++);
    await a.put('pads', 'p', { title: 'Agenda' });
    const text = await a.text('pads', 'p', 'body');
    const written = nextCommit(a, 'the text edit');
    text.insert(0, 'demo, then lunch');
    await written;
    await a.delete('pads', 'p');
    expect(await a.get('pads', 'p')).toBeUndefined();
    await a.undo();
    expect((await a.get('pads', 'p'))?.value).toEqual({ title: 'Agenda', body: 'demo, then lunch' });
    // And on another device that gets the same changes.
    await deliver(a, b);
    expect((await b.get('pads', 'p'))?.value).toEqual({ title: 'Agenda', body: 'demo, then lunch' });
  });

  it('a batch is one step; a new write clears the redo steps; subscribe hears every change of canUndo/canRedo', async () => {
    let time = T0;
    const a = await device(1, () => time++);
    let heard = 0;
    const off = a.history.subscribe(() => heard++);
    await a.batch((b) => {
      b.put('events', 'x', { n: 1 });
      b.put('events', 'y', { n: 2 });
    });
    await a.undo();
    expect(await a.get('events', 'x')).toBeUndefined();
    expect(await a.get('events', 'y')).toBeUndefined();
    expect(a.history.canRedo).toBe(true);
    await a.put('events', 'z', { n: 3 });
    expect(a.history.canRedo).toBe(false);
    expect(heard).toBeGreaterThanOrEqual(3);
    off();
    a.history.clear();
    expect([a.history.canUndo, a.history.canRedo]).toEqual([false, false]);
  });

  it('keeps at most `limit` steps; limit 0 keeps none', async () => {
    let time = T0;
    const a = await device(1, () => time++, { limit: 2 });
    for (let n = 1; n <= 4; n++) await a.put('events', 'e', { n });
    expect(await a.undo()).toBe(true);
    expect(await a.undo()).toBe(true);
    expect(await a.undo()).toBe(false);
    expect(await valueOf(a, 'events', 'e')).toEqual({ n: 2 });
    const none = await device(2, () => time++, { limit: 0 });
    await none.put('events', 'e', { n: 1 });
    expect([none.history.canUndo, await none.undo()]).toEqual([false, false]);
  });

  it('after a remote edit of another field of the same record, only my field reverts, on both devices', async () => {
    let time = T0;
    const a = await device(1, () => time);
    const b = await device(2, () => time + 5);
    await a.put('events', 'e', { title: 'Planning', start: 10, room: 'A' });
    await deliver(a, b);
    time += 100;
    await a.patch('events', 'e', { start: 11 });
    await b.patch('events', 'e', { room: 'B' });
    await deliver(b, a);
    await deliver(a, b);
    expect(await valueOf(a, 'events', 'e')).toEqual({ title: 'Planning', start: 11, room: 'B' });

    await a.undo();
    await deliver(a, b);
    for (const r of [a, b]) expect(await valueOf(r, 'events', 'e')).toEqual({ title: 'Planning', start: 10, room: 'B' });
  });

  it('leaves a field alone that another replica wrote after my write; reverts the rest', async () => {
    let time = T0;
    const a = await device(1, () => time);
    const b = await device(2, () => time + 5);
    await a.put('events', 'e', { title: 'One', start: 1 });
    await deliver(a, b);
    time += 100;
    await a.patch('events', 'e', { title: 'Two', start: 2 });
    await deliver(a, b);
    await b.patch('events', 'e', { title: 'Theirs' });
    await deliver(b, a);
    await a.undo();
    await deliver(a, b);
    for (const r of [a, b]) expect(await valueOf(r, 'events', 'e')).toEqual({ title: 'Theirs', start: 1 });
  });

  it('an undo does not delete a record I created once another replica has written to it; it unsets only my fields', async () => {
    const time = T0;
    const a = await device(1, () => time);
    const b = await device(2, () => time + 5);
    await a.put('events', 'e', { title: 'Mine' });
    await deliver(a, b);
    await b.patch('events', 'e', { note: 'theirs' });
    await deliver(b, a);
    await a.undo();
    expect(await valueOf(a, 'events', 'e')).toEqual({ note: 'theirs' });
  });

  it('an undo of my delete does not undo a later delete by another replica, nor revive what it deleted', async () => {
    let time = T0;
    const a = await device(1, () => time);
    const b = await device(2, () => time + 5);
    await a.put('events', 'e', { title: 'x' });
    await deliver(a, b);
    await a.patch('events', 'e', { title: 'y' });
    await deliver(a, b);
    time += 100;
    await b.delete('events', 'e');
    await deliver(b, a);
    await a.undo();
    expect(await a.get('events', 'e')).toBeUndefined();
  });

  it('merge records: undone while my version is the current one, left alone once another replica superseded it', async () => {
    const time = T0;
    const a = await device(1, () => time);
    const b = await device(2, () => time + 5);
    await a.put('docs', 'd', { v: 1 });
    await a.put('docs', 'd', { v: 2 });
    await a.undo();
    expect(await valueOf(a, 'docs', 'd')).toEqual({ v: 1 });
    await a.redo();
    expect(await valueOf(a, 'docs', 'd')).toEqual({ v: 2 });
    await deliver(a, b);
    await b.put('docs', 'd', { v: 'theirs' });
    await deliver(b, a);
    await a.undo();
    expect(await valueOf(a, 'docs', 'd')).toEqual({ v: 'theirs' });
    expect(await a.conflicts('docs', 'd')).toHaveLength(0);
  });

  it("crdt text: undo removes my edits only, not another replica's; edits within captureMs are one step", async () => {
    const time = T0;
    const a = await device(1, () => time, { captureMs: 10_000 });
    const b = await device(2, () => time + 5);
    const textA = await a.text('pads', 'p', 'body');
    let written = nextCommit(a, 'a first edit');
    textA.insert(0, 'hello');
    await written;
    written = nextCommit(a, 'a second edit');
    textA.insert(5, ' world');
    await written;
    await deliver(a, b);
    const textB = await b.text('pads', 'p', 'body');
    written = nextCommit(b, "b's edit");
    textB.insert(0, '> ');
    await written;
    await deliver(b, a);
    expect(textA.toString()).toBe('> hello world');

    written = nextCommit(a, 'the undo of the text');
    expect(await a.undo()).toBe(true);
    await written;
    expect(textA.toString()).toBe('> ');
    await deliver(a, b);
    expect(textB.toString()).toBe('> ');
    written = nextCommit(a, 'the redo of the text');
    expect(await a.redo()).toBe(true);
    await written;
    expect(textA.toString()).toBe('> hello world');
  });

  it('steps of records and of text undo in the order they were made', async () => {
    let time = T0;
    const a = await device(1, () => time++);
    await a.put('pads', 'p', { title: 'T1' });
    const text = await a.text('pads', 'p', 'body');
    const written = nextCommit(a, 'the text edit');
    text.insert(0, 'abc');
    await written;
    await a.patch('pads', 'p', { title: 'T2' });
    await a.undo();
    expect([(await a.get('pads', 'p'))?.value?.title, text.toString()]).toEqual(['T1', 'abc']);
    const undone = nextCommit(a, 'the undo of the text');
    await a.undo();
    await undone;
    expect([(await a.get('pads', 'p'))?.value?.title, text.toString()]).toEqual(['T1', '']);
  });
});

/** Per lww field of A's records, the stamp of its current write and the replica it came from. */
async function fieldWriters(r: Replica<typeof schema>, ids: readonly string[]): Promise<Map<string, HlcString>> {
  const out = new Map<string, HlcString>();
  const records = await storageOf(r).transaction('readonly', (tx) => tx.getRecords(ids.map((id) => ({ collection: 'events', id, space: r.defaultSpace }))));
  records.forEach((record, i) => {
    const lww = record?.state.lww;
    if (!lww) return;
    for (const name of FIELDS) {
      const field = lwwField(lww, name);
      if (field && (lww.cleared === undefined || field.hlc > lww.cleared)) out.set(`${ids[i]}.${name}`, field.hlc);
      else if (lww.cleared !== undefined) out.set(`${ids[i]}.${name}`, lww.cleared);
    }
  });
  return out;
}

const IDS = ['r1', 'r2'] as const;
const FIELDS = ['f', 'g', 'h'] as const;
const replicaOf = (hlc: HlcString): string => hlc.slice(18);

type Command =
  | { kind: 'put'; by: 0 | 1; id: (typeof IDS)[number]; fields: Partial<Record<(typeof FIELDS)[number], number>> }
  | { kind: 'patch'; by: 0 | 1; id: (typeof IDS)[number]; field: (typeof FIELDS)[number]; value: number | undefined }
  | { kind: 'delete'; by: 0 | 1; id: (typeof IDS)[number] }
  | { kind: 'undo' | 'redo'; by: 0 | 1 }
  | { kind: 'deliver'; from: 0 | 1 }
  | { kind: 'tick'; ms: number };

const by = fc.constantFrom<0 | 1>(0, 1);
const field = fc.constantFrom(...FIELDS);
// Weighted towards what makes undo interesting: deliveries between the writes and undos of both sides, on mostly one record.
const oneRecord = fc.constantFrom<(typeof IDS)[number]>('r1', 'r1', 'r1', 'r2');
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('put' as const), by, id: oneRecord, fields: fc.record({ f: fc.integer({ min: 0, max: 9 }), g: fc.integer({ min: 0, max: 9 }), h: fc.integer({ min: 0, max: 9 }) }, { requiredKeys: [] }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('patch' as const), by, id: oneRecord, field, value: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined }) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), by, id: oneRecord }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constantFrom('undo' as const, 'redo' as const), by }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('deliver' as const), from: by }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: -30, max: 30 }) }), weight: 1 },
);

describe('undo against concurrent remote writes (property)', () => {
  it('an undo or redo never overwrites a field whose current write is another replica’s, and replicas converge', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 40 }), fc.integer({ min: -50, max: 50 }), async (commands, skew) => {
        let time = T0;
        const replicas = [await device(1, () => time), await device(2, () => time + skew)] as const;
        try {
          for (const c of commands) {
            if (c.kind === 'tick') time += Math.abs(c.ms) + 1;
            else if (c.kind === 'deliver') await deliver(replicas[c.from], replicas[1 - c.from] as Replica<typeof schema>);
            else if (c.kind === 'put') await replicas[c.by].put('events', c.id, c.fields);
            else if (c.kind === 'patch') await replicas[c.by].patch('events', c.id, { [c.field]: c.value });
            else if (c.kind === 'delete') await replicas[c.by].delete('events', c.id);
            else {
              const r = replicas[c.by];
              const before = await fieldWriters(r, IDS);
              const values = await Promise.all(IDS.map((rid) => valueOf(r, 'events', rid)));
              await (c.kind === 'undo' ? r.undo() : r.redo());
              const after = await Promise.all(IDS.map((rid) => valueOf(r, 'events', rid)));
              // A field whose current write is another replica's (a value, or its absence after their put or
              // delete) keeps its value.
              for (const [name, stamp] of before) {
                if (replicaOf(stamp) === r.id) continue;
                const [rid, f] = name.split('.') as [string, string];
                const i = IDS.indexOf(rid as (typeof IDS)[number]);
                expect(after[i]?.[f], `${c.kind} by ${r.id} overwrote ${name}, written by ${replicaOf(stamp)}`).toEqual(values[i]?.[f]);
              }
            }
          }
          await deliver(replicas[0], replicas[1]);
          await deliver(replicas[1], replicas[0]);
          for (const rid of IDS) expect(await valueOf(replicas[1], 'events', rid)).toEqual(await valueOf(replicas[0], 'events', rid));
        } finally {
          for (const r of replicas) await r.close();
          open.length = 0;
        }
      }),
      { numRuns: Number(process.env.UNDO_RUNS ?? 500) },
    );
  });

  it('with nothing else written, each undo restores the value before its write and each redo the value after it (liveness)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ f: fc.integer({ min: 0, max: 9 }), g: fc.integer({ min: 0, max: 9 }) }, { requiredKeys: [] }), { minLength: 1, maxLength: 6 }), async (values) => {
        let time = T0;
        const a = await device(3, () => time++);
        try {
          const seen: Array<unknown> = [];
          for (const value of values) {
            seen.push(await valueOf(a, 'events', 'e'));
            await a.put('events', 'e', value);
          }
          for (let i = values.length - 1; i >= 0; i--) {
            await a.undo();
            expect(await valueOf(a, 'events', 'e')).toEqual(seen[i]);
          }
          // And redo takes it forward again, write by write.
          for (const value of values) {
            await a.redo();
            expect(await valueOf(a, 'events', 'e')).toEqual(value);
          }
        } finally {
          await a.close();
          open.length = 0;
        }
      }),
      { numRuns: Number(process.env.UNDO_RUNS ?? 200) },
    );
  });
});

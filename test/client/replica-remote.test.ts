/**
 * Remote changes on every storage: applyRemote is idempotent and order
 * independent for every policy (lww, merge with real causal contexts, crdt), and
 * replicas that exchange their outboxes converge: crdt texts merge, concurrent
 * merge writes become siblings on both sides and a later write resolves them.
 * Changes come from real replicas doing real writes (memory storage, no tabs).
 */
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Change, Fields } from '@syncline/core/internal';
import { createReplica, defineSchema, memoryStorage, type Replica, type StorageFactory } from '@syncline/client';
import { nextCommit, outboxOf, storedStates, STORAGES, uniqueName, within } from './helpers.js';
import { portOf } from '../internals.js';

const schema = defineSchema({
  notes: { indexes: { byRank: ['rank'] } },
  docs: { policy: 'merge', indexes: { byTitle: ['title'] } },
  pads: { crdt: { body: 'text' }, indexes: { byTitle: ['title'] } },
});
const COLLECTIONS = ['notes', 'docs', 'pads'] as const;
const T0 = 1_800_000_000_000;

/** A replica id from a fixed byte, so a failing run is reproducible. */
const idBytes = (byte: number) => (n: number) => new Uint8Array(n).fill(byte);

async function writer(byte: number, now: () => number): Promise<Replica> {
  return (await createReplica({ name: uniqueName(`writer${byte}`), schema, storage: memoryStorage(), tabs: false, now, randomBytes: idBytes(byte) })) as unknown as Replica;
}

/** Applies a replica's whole outbox to others (re-applying what they already hold is a no-op). */
async function deliver(from: Replica, ...to: Replica[]): Promise<void> {
  const changes = await outboxOf(from);
  for (const r of to) await portOf(r).applyRemote(changes);
}

async function editText(r: Replica, id: string, edit: (text: Awaited<ReturnType<Replica['text']>>) => void): Promise<void> {
  const text = await r.text('pads', id, 'body');
  const written = nextCommit(r, `the text edit of ${id}`);
  edit(text);
  await written;
}

/**
 * Three writers with skewed clocks, exchanging some changes mid-way so merge
 * contexts are real: superseded versions, concurrent siblings, a delete that saw
 * one version but not another, crdt edits that depend on other replicas' edits.
 */
async function scenario(): Promise<Change[]> {
  let time = T0;
  const a = await writer(1, () => time);
  const b = await writer(2, () => time + 7);
  const c = await writer(3, () => time - 40);
  try {
    // lww: puts, patches of different fields, deletes, resurrection by a later patch.
    await a.put('notes', 'n1', { title: 'a1', rank: 1 });
    await b.put('notes', 'n1', { title: 'b1', rank: 2, color: 'red' });
    await c.patch('notes', 'n1', { done: true });
    await a.put('notes', 'n2', { title: 'a2', rank: 5 });
    time += 5;
    await deliver(a, b);
    await b.patch('notes', 'n2', { rank: 6, extra: undefined });
    await c.delete('notes', 'n2');
    await a.delete('notes', 'n3');
    time += 50;
    await b.patch('notes', 'n3', { title: 'revived' });
    await c.put('notes', 'n4', { title: 'c4', rank: 3, '\u00e9': 'x' });

    // merge: a writes, b overwrites having seen it, c writes concurrently; a patches knowing only its own.
    await a.put('docs', 'd1', { title: 'v1' });
    await deliver(a, b);
    time += 3;
    await b.put('docs', 'd1', { title: 'v2 (saw v1)' });
    await c.put('docs', 'd1', { title: 'v3 (concurrent)' });
    await a.patch('docs', 'd1', { tag: 'a-only' });
    // d2: created, then deleted by b after seeing it, while c edits without seeing it.
    await a.put('docs', 'd2', { title: 'd2' });
    await deliver(a, b);
    await b.delete('docs', 'd2');
    await c.put('docs', 'd2', { title: 'd2 by c' });
    // d3: superseded cleanly (b saw everything).
    await c.put('docs', 'd3', { title: 'one' });
    await deliver(c, b);
    await b.put('docs', 'd3', { title: 'two' });

    // crdt text with an lww field beside it; b's later edits depend on a's.
    await editText(a, 'p1', (t) => t.insert(0, 'hello'));
    await editText(b, 'p1', (t) => t.insert(0, 'world '));
    await deliver(a, b);
    await editText(b, 'p1', (t) => {
      t.insert(t.length, '!');
      t.delete(0, 1);
    });
    await c.put('pads', 'p1', { title: 'pad' });
    await editText(c, 'p2', (t) => t.insert(0, 'solo'));
    await a.delete('pads', 'p2');

    return [...(await outboxOf(a)), ...(await outboxOf(b)), ...(await outboxOf(c))];
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
}

/** Everything a replica shows and stores, for comparison. */
async function snapshot(r: Replica): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const collection of COLLECTIONS) {
    out[`${collection}:query`] = (await r.query({ collection })).map((row) => [row.id, row.value]);
    out[`${collection}:stored`] = await storedStates(r, collection);
  }
  out['notes:byRank'] = (await r.query({ collection: 'notes', index: 'byRank' })).map((row) => row.id);
  out['docs:byTitle'] = (await r.query({ collection: 'docs', index: 'byTitle' })).map((row) => row.id);
  for (const id of ['d1', 'd2', 'd3']) out[`conflicts:${id}`] = await r.conflicts('docs', id);
  return out;
}

describe.each(STORAGES)('remote changes on %s storage', (_kind, makeStorage) => {
  const opened: Replica[] = [];
  let fresh = 100;
  async function open(storage: StorageFactory = makeStorage(), now: () => number = () => T0 + 1_000): Promise<Replica> {
    const replica = (await createReplica({ name: uniqueName('remote'), schema, storage, tabs: false, now, randomBytes: idBytes(fresh++ % 256) })) as unknown as Replica;
    opened.push(replica);
    return replica;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
  });

  describe('applyRemote is idempotent and order independent', () => {
    let changes: Change[];
    let reference: unknown;

    beforeAll(async () => {
      changes = await scenario();
      const r = await open();
      await portOf(r).applyRemote(changes);
      reference = await snapshot(r);
      await r.close();
    });

    it('the scenario covers every policy and its interesting states', () => {
      const ops = new Set(changes.map((c) => c.op));
      expect([...ops].sort()).toEqual(['crdt', 'delete', 'patch', 'put', 'version']);
      const ref = reference as Record<string, unknown>;
      // n1: b's put is the latest put, so c's earlier patch (c's clock is behind) is cleared.
      // n2: c's delete is stamped before a's put (clock skew), so b's patch survives it.
      expect(ref['notes:query']).toEqual([
        ['n1', { title: 'b1', rank: 2, color: 'red' }],
        ['n2', { title: 'a2', rank: 6 }],
        ['n3', { title: 'revived' }],
        ['n4', { title: 'c4', rank: 3, '\u00e9': 'x' }],
      ]);
      // d1: v1 superseded by v2; v2, v3 and a's patch are concurrent.
      expect((ref['conflicts:d1'] as Array<{ value: Fields }>).map((v) => v.value?.title).sort()).toEqual(['v1', 'v2 (saw v1)', 'v3 (concurrent)']);
      expect((ref['conflicts:d1'] as Array<{ value: Fields }>).find((v) => v.value?.tag === 'a-only')?.value).toEqual({ title: 'v1', tag: 'a-only' });
      // d2: b's delete and c's unseen write are siblings; d3 has none.
      expect((ref['conflicts:d2'] as Array<{ value: Fields | null }>).map((v) => v.value)).toEqual(expect.arrayContaining([null, { title: 'd2 by c' }]));
      expect(ref['conflicts:d3']).toEqual([]);
      // The visible value is the latest sibling: b's delete hides d2.
      expect((ref['docs:query'] as Array<[string, Fields]>).map(([id]) => id)).toEqual(['d1', 'd3']);
      const pads = ref['pads:query'] as Array<[string, Fields]>;
      // Yjs orders the two concurrent inserts at 0 by its random client ids; b then appended '!' and deleted the first character.
      expect(pads.map(([id, value]) => [id, value.title])).toEqual([['p1', 'pad']]);
      expect(['orld hello!', 'elloworld !']).toContain(pads[0]?.[1].body);
    });

    it('shuffled, duplicated and split deliveries give the same state', async () => {
      const n = changes.length;
      const indexes = Array.from({ length: n }, (_, i) => i);
      const delivery = fc
        .tuple(
          fc.shuffledSubarray(indexes, { minLength: n, maxLength: n }),
          fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n)), { maxLength: n }),
          fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 8 }),
        )
        .map(([order, duplicates, chunks]) => {
          const sequence = [...order];
          for (const [which, at] of duplicates) sequence.splice(Math.min(at, sequence.length), 0, which);
          return { sequence, chunks };
        });
      await fc.assert(
        fc.asyncProperty(delivery, async ({ sequence, chunks }) => {
          const r = await open();
          try {
            for (let i = 0, k = 0; i < sequence.length; k++) {
              const size = chunks[k % chunks.length] as number;
              await portOf(r).applyRemote(sequence.slice(i, i + size).map((j) => changes[j] as Change));
              i += size;
            }
            // Everything again, in order: nothing changes.
            await portOf(r).applyRemote(changes);
            expect(await snapshot(r)).toEqual(reference);
          } finally {
            await r.close();
            opened.splice(opened.indexOf(r), 1);
          }
        }),
        { numRuns: 50, seed: 3 },
      );
    });

    it('the writers themselves converge to the same state after exchanging everything', async () => {
      // Writers hold their own changes locally; applying everyone's (their own included) must agree.
      const r = await open();
      const byWriter = new Map<string, Change[]>();
      for (const c of changes) byWriter.set(c.replica, [...(byWriter.get(c.replica) ?? []), c]);
      expect(byWriter.size).toBe(3);
      for (const own of byWriter.values()) await portOf(r).applyRemote(own);
      expect(await snapshot(r)).toEqual(reference);
    });
  });

  it('crdt: text edits become outbox changes; two replicas exchanging them end with both texts, live', async () => {
    const a = await open();
    const b = await open();
    const textA = await a.text('pads', 'p', 'body');
    const committed = nextCommit(a, 'the edit of a');
    textA.insert(0, 'alpha');
    await committed;
    const outA = await outboxOf(a);
    expect(outA).toHaveLength(1);
    expect(outA[0]).toMatchObject({ op: 'crdt', collection: 'pads', id: 'p', field: 'body', type: 'text', seq: 1, replica: a.id });
    expect((outA[0] as Change & { update: Uint8Array }).update).toBeInstanceOf(Uint8Array);

    await editText(b, 'p', (t) => t.insert(0, 'beta'));
    await b.patch('pads', 'p', { title: 'shared' });

    const textChanged = within(new Promise<void>((resolve) => textA.observe(() => textA.toString().length === 9 && resolve())), 5_000, 'the open text of a to receive b');
    await deliver(b, a);
    await textChanged;
    await deliver(a, b);
    const va = (await a.get('pads', 'p'))?.value;
    const vb = (await b.get('pads', 'p'))?.value;
    expect(va).toEqual(vb);
    expect(va?.title).toBe('shared');
    expect([...(va?.body as string)].sort().join('')).toBe([...'alphabeta'].sort().join(''));
    expect(['alphabeta', 'betaalpha']).toContain(va?.body);
    expect(textA.toString()).toBe(va?.body);
    // Remote edits are applied, not re-sent: each outbox holds only its own writes.
    expect((await outboxOf(a)).map((c) => c.replica)).toEqual([a.id]);
    expect(new Set((await outboxOf(b)).map((c) => c.replica))).toEqual(new Set([b.id]));

    // A further edit on the live text reaches the other replica too.
    await editText(a, 'p', (t) => t.insert(t.length, '+'));
    await deliver(a, b);
    expect((await b.get('pads', 'p'))?.value?.body).toBe(textA.toString());
    expect((await b.text('pads', 'p', 'body')).toString()).toBe(textA.toString());
  });

  it('merge: concurrent puts become two siblings on both replicas; a later put resolves them', async () => {
    const a = await open(makeStorage(), () => T0 + 1_000);
    const b = await open(makeStorage(), () => T0 + 1_500);
    await a.put('docs', 'x', { title: 'from a' });
    await b.put('docs', 'x', { title: 'from b' });
    expect(await a.conflicts('docs', 'x')).toEqual([]);
    await deliver(a, b);
    await deliver(b, a);
    for (const r of [a, b]) {
      const siblings = await r.conflicts('docs', 'x');
      expect(siblings.map((v) => v.value)).toEqual([{ title: 'from a' }, { title: 'from b' }]);
      expect(siblings.map((v) => v.replica)).toEqual([a.id, b.id]);
    }
    // Same visible value on both: the latest sibling (b's clock is ahead).
    expect((await a.get('docs', 'x'))?.value).toEqual({ title: 'from b' });
    expect((await b.get('docs', 'x'))?.value).toEqual({ title: 'from b' });
    expect((await a.query({ collection: 'docs', index: 'byTitle' })).map((row) => row.value)).toEqual([{ title: 'from b' }]);

    // a write made after seeing both siblings supersedes them everywhere.
    await a.put('docs', 'x', { title: 'resolved' });
    expect(await a.conflicts('docs', 'x')).toEqual([]);
    await deliver(a, b);
    await deliver(b, a);
    for (const r of [a, b]) {
      expect(await r.conflicts('docs', 'x')).toEqual([]);
      expect((await r.get('docs', 'x'))?.value).toEqual({ title: 'resolved' });
    }
    expect(await storedStates(a, 'docs')).toEqual(await storedStates(b, 'docs'));
  });
});

/**
 * A retired replica rejoins under a new id (README, "Bounded growth"): the
 * transaction that sets its unsynced changes aside and starts every space over,
 * and, once a space has caught up, the one that writes them again as new
 * changes of the new id. The replica runs both (replica.ts, #rejoin and
 * #reapply) and the sync engine decides when (sync-engine.ts).
 *
 * With regions a replica rejoins in place instead (renameOutbox): a region
 * that retired it may not hold everything it wrote (another region stored it,
 * and the link has not brought it yet), so a snapshot from there is no base to
 * write the unsynced changes again on.
 */
import { applyChange, type Change, type Fields, type HlcString, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { ReplicaClock } from './clock.js';
import { ReplicaError } from './errors.js';
import { asideKey, META_CLOCK, META_REPLICA, META_WRITTEN, positionKey, seqKey } from './meta.js';
import type { CollectionDef } from './schema.js';
import type { StorageTx } from './storage/types.js';
import { validateWrites } from './validate.js';
import { storedRecord, writeOpOf, type WriteOp } from './write.js';

/**
 * In one transaction: `id` becomes the replica's; per space (those synced, and
 * every one it has written in, META_WRITTEN), the unsynced changes are set aside
 * (asideKey, after any set aside before), the outbox emptied, seq and position
 * back to 0, so that the space bootstraps from a snapshot and the new id's
 * changes start at seq 1. Returns how many changes were set aside.
 */
export async function setAside(tx: StorageTx, synced: readonly SpaceId[], id: ReplicaId): Promise<number> {
  const spaces = new Set([...synced, ...((await tx.getMeta<SpaceId[]>(META_WRITTEN)) ?? [])]);
  let aside = 0;
  for (const space of spaces) {
    const [outbox, earlier] = await Promise.all([tx.readOutbox(space, Number.MAX_SAFE_INTEGER), tx.getMeta<Change[]>(asideKey(space))]);
    aside += outbox.length;
    const last = outbox.at(-1);
    await Promise.all([
      ...(last ? [tx.setMeta(asideKey(space), [...(earlier ?? []), ...outbox]), tx.ackOutbox(space, last.seq)] : []),
      tx.setMeta(seqKey(space), 0),
      tx.setMeta(positionKey(space), { upTo: 0 }),
    ]);
  }
  await tx.setMeta(META_REPLICA, id);
  return aside;
}

/**
 * In one transaction, a rejoin in place (with regions): `id` becomes the
 * replica's, and in every space (those synced, and every one it has written
 * in) its unsynced changes become changes of `id`, seqs from 1, stamped after
 * `horizons` (the levels the server refused at, per space) and after
 * everything the clock holds, in their order (the clock already goes by `id`). Records and positions stay: the
 * state the replica holds is kept, and each record takes the new changes on
 * top (every register an old change set, the new one sets too with a later
 * stamp; a merge version supersedes the one it replaces, whose dot its context
 * names). A region may hold an old change (stored, its acknowledgement lost):
 * wherever it arrives, the new one covers it, so all converge. Returns how
 * many changes moved and the records rewritten.
 */
export async function renameOutbox(
  tx: StorageTx,
  ctx: { readonly clock: ReplicaClock; readonly collections: ReadonlyMap<string, CollectionDef> },
  synced: readonly SpaceId[],
  id: ReplicaId,
  horizons: ReadonlyMap<SpaceId, HlcString>,
): Promise<{ readonly moved: number; readonly records: { readonly collection: string; readonly id: string; readonly space: SpaceId }[] }> {
  const spaces = new Set([...synced, ...((await tx.getMeta<SpaceId[]>(META_WRITTEN)) ?? [])]);
  const { clock } = ctx;
  for (const hlc of horizons.values()) clock.hlc.receive(hlc);
  let moved = 0;
  const touched: { collection: string; id: string; space: SpaceId }[] = [];
  for (const space of spaces) {
    const outbox = await tx.readOutbox(space, Number.MAX_SAFE_INTEGER);
    const renamed: Change[] = outbox.map((c, i) => {
      const hlc = clock.hlc.nowString();
      if (c.op !== 'version') return { ...c, replica: id, seq: i + 1, hlc };
      const context = new Map(c.context);
      if ((context.get(c.replica) ?? 0) < c.seq) context.set(c.replica, c.seq);
      return { ...c, replica: id, seq: i + 1, hlc, context };
    });
    const last = outbox.at(-1);
    if (last) await tx.ackOutbox(space, last.seq);
    const current = await tx.getRecords(renamed.map((c) => ({ collection: c.collection, id: c.id, space })));
    const states = new Map<string, { collection: string; id: string; state: ReturnType<typeof applyChange> }>();
    renamed.forEach((change, i) => {
      const key = JSON.stringify([change.collection, change.id]);
      const base = states.get(key)?.state ?? current[i]?.state ?? {};
      states.set(key, { collection: change.collection, id: change.id, state: applyChange(base, change) });
    });
    await Promise.all([
      tx.addOutbox(renamed),
      tx.setMeta(seqKey(space), renamed.length),
      ...[...states.values()].map((r) => tx.putRecord(storedRecord(ctx.collections.get(r.collection), { collection: r.collection, id: r.id, space }, r.state))),
    ]);
    moved += renamed.length;
    for (const r of states.values()) touched.push({ collection: r.collection, id: r.id, space });
  }
  await Promise.all([tx.setMeta(META_REPLICA, id), tx.setMeta(META_CLOCK, clock.last)]);
  return { moved, records: touched };
}

/** A change's dot: its replica and seq. */
const dotOf = (change: Change): string => `${change.replica}:${change.seq}`;

/**
 * The set-aside changes the schema refuses now (a collection no longer in it,
 * a validator), as dots. Validators may be async, so this runs before the
 * writing transaction, which must wait on nothing else. `current` reads a
 * record's value (a patch is validated on top of it).
 */
export async function refusedNow(
  aside: readonly Change[],
  collections: ReadonlyMap<string, CollectionDef>,
  current: (op: WriteOp) => Promise<{ readonly value: Fields } | undefined>,
): Promise<Set<string>> {
  const refused = new Set<string>();
  for (const change of aside) {
    if (!collections.has(change.collection)) refused.add(dotOf(change));
    else await validateWrites(collections, [writeOpOf(change, { collection: change.collection, id: change.id, space: change.space })], current).catch(() => refused.add(dotOf(change)));
  }
  return refused;
}

/**
 * In the transaction that forgets them: the set-aside changes of `space`
 * written again through `write` (the replica's write path: new seqs, stamped
 * after everything the replica holds). A put (or a merge version) is written
 * whatever is there; a patch or crdt update only to a record that exists (one
 * that was deleted, and maybe forgotten, stays deleted); a delete only of one
 * that exists. One `refused` names (refusedNow), or that the write path refuses
 * (too large), is dropped: retrying would refuse it again. Dropped ones come
 * back as "collection/id"; undefined when nothing was set aside (any more).
 */
export async function writeAgain(
  tx: StorageTx,
  space: SpaceId,
  refused: ReadonlySet<string>,
  write: (tx: StorageTx, ops: readonly WriteOp[]) => Promise<Change[]>,
): Promise<{ changes: Change[]; dropped: string[] } | undefined> {
  const held = await tx.getMeta<Change[]>(asideKey(space));
  if (held === undefined) return undefined; // written again meanwhile (another tab)
  const records = await tx.getRecords(held.map((c) => ({ collection: c.collection, id: c.id, space })));
  const exists = new Map<string, boolean>();
  records.forEach((r, i) => {
    const c = held[i] as Change;
    exists.set(`${c.collection}\u0000${c.id}`, r?.value !== undefined);
  });
  const changes: Change[] = [];
  const dropped: string[] = [];
  for (const change of held) {
    const key = `${change.collection}\u0000${change.id}`;
    const op = writeOpOf(change, { collection: change.collection, id: change.id, space });
    if (refused.has(dotOf(change)) || (op.kind !== 'put' && !exists.get(key))) {
      if (op.kind !== 'delete') dropped.push(`${change.collection}/${change.id}`);
      continue;
    }
    try {
      changes.push(...(await write(tx, [op])));
    } catch (error) {
      // Refused before anything of it was written (too_large): the rest go on.
      if (!(error instanceof ReplicaError)) throw error;
      dropped.push(`${change.collection}/${change.id}`);
      continue;
    }
    exists.set(key, op.kind !== 'delete');
  }
  await tx.setMeta(asideKey(space), undefined);
  return { changes, dropped };
}

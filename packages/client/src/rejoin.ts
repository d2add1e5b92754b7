/**
 * A retired replica rejoins under a new id (README, "Bounded growth"): the
 * transaction that sets its unsynced changes aside and starts every space over,
 * and, once a space has caught up, the one that writes them again as new
 * changes of the new id. The replica runs both (replica.ts, #rejoin and
 * #reapply) and the sync engine decides when (sync-engine.ts).
 */
import type { Change, Fields, ReplicaId, SpaceId } from '@syncline/core/internal';
import { ReplicaError } from './errors.js';
import { asideKey, META_REPLICA, META_WRITTEN, positionKey, seqKey } from './meta.js';
import type { CollectionDef } from './schema.js';
import type { StorageTx } from './storage/types.js';
import { validateWrites } from './validate.js';
import { writeOpOf, type WriteOp } from './write.js';

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

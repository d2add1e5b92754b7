/**
 * The stability horizon on the client (DESIGN.md, "Stability and bounded
 * growth"; client README, "Bounded growth").
 *
 * The server announces each space's horizon H with a log position P: every
 * change it stored after P is stamped after H, and it refuses changes stamped
 * at or below H (`below_horizon`). Three things follow here:
 *  - the floor this replica tells the server (hello, `floor` messages): every
 *    change of it the server lacks is stamped after it;
 *  - re-stamping, after a `below_horizon` refusal: a change of the outbox the
 *    server does not hold, stamped at or below H, can never be stored, so it
 *    (and every later one) is stamped again, after H and after everything this
 *    replica holds. Safe to rename because no server holds them (none ever
 *    will under the old stamps). The records they touched take the new changes on top: every
 *    register the old change set, the new one sets too with a later stamp, so
 *    the old one's effect is covered, and the state is what a replica that
 *    only ever saw the new change holds (merge versions keep their dot and
 *    take the new stamp);
 *  - collection: once this replica has applied the log up to P, nothing it
 *    can still receive is stamped at or below H, so the records collectibleAt()
 *    puts there can be forgotten.
 */
import {
  MAX_COUNTER,
  applyChange,
  collectibleAt,
  formatTimestamp,
  hlcWall,
  restampState,
  type Change,
  type HlcString,
  type ReplicaId,
  type SpaceId,
} from '@syncline/core/internal';
import type { ReplicaClock } from './clock.js';
import { META_CLOCK, positionKey, readCursor } from './meta.js';
import type { CollectionDef } from './schema.js';
import type { StorageTx, StoredRecord } from './storage/types.js';
import { storedRecord } from './write.js';

/** The latest timestamp before `hlc` that this replica could name: 1 ms earlier, the last counter. */
function justBefore(hlc: HlcString, replica: ReplicaId): HlcString | undefined {
  const wall = hlcWall(hlc);
  return wall > 0 ? formatTimestamp({ wall: wall - 1, counter: MAX_COUNTER, replica }) : undefined;
}

/**
 * How far below the replica's estimate of the server's time a floor is taken
 * (ms): covers the estimate's error (the server also holds floors this far
 * below its own clock).
 */
export const FLOOR_MARGIN_MS = 60_000;

/**
 * This replica's floor in `space`: every change of it the server does not hold
 * yet, and every one it will write, is stamped after it. The server's time as
 * this replica estimates it, less FLOOR_MARGIN_MS, or just before the earliest
 * unacknowledged change if that is earlier. The clock receives the floor
 * (and keeps it across restarts), so every later stamp is after it even if
 * the device clock steps back. Undefined before the replica's first welcome:
 * until then its clock is the device's alone, and the welcome may move every
 * unacknowledged stamp. Runs in a read-write transaction.
 */
export async function floorOf(tx: StorageTx, clock: ReplicaClock, replica: ReplicaId, space: SpaceId): Promise<HlcString | undefined> {
  if (clock.unsynced) return undefined;
  const now = formatTimestamp({ wall: Math.max(0, Math.floor(clock.physical()) - FLOOR_MARGIN_MS), counter: 0, replica });
  if (now > clock.last) {
    clock.hlc.receive(now);
    await tx.setMeta(META_CLOCK, clock.last);
  }
  let earliest: HlcString | undefined;
  for (const change of await tx.readOutbox(space, Number.MAX_SAFE_INTEGER)) if (earliest === undefined || change.hlc < earliest) earliest = change.hlc;
  return earliest !== undefined && earliest <= now ? justBefore(earliest, replica) : now;
}

/**
 * After a `below_horizon` refusal: re-stamps the outbox changes of `space`
 * from the first one (in seq order) stamped at or below `horizon` on (see the
 * top), in seq order, after the horizon and everything the clock holds, so
 * that a replica's stamps still grow with its seqs. Only after a refusal: the
 * server acknowledges what it holds before it refuses, so the outbox then
 * starts with a change it does not hold; a change at or below the horizon
 * that it stored before the horizon passed it (an acknowledgement lost) keeps
 * its stamp. And the later ones are safe to move: the server stores a
 * replica's changes in seq order, never the one at or below the horizon, so
 * it holds none of them. Returns how many moved and the records rewritten.
 * The caller runs it alone in its commit queue.
 */
export async function restampBelow(
  tx: StorageTx,
  ctx: { readonly clock: ReplicaClock; readonly collections: ReadonlyMap<string, CollectionDef> },
  space: SpaceId,
  horizon: HlcString,
): Promise<{ readonly moved: number; readonly records: StoredRecord[] }> {
  const outbox = await tx.readOutbox(space, Number.MAX_SAFE_INTEGER);
  const first = outbox.findIndex((c) => c.hlc <= horizon);
  if (first < 0) return { moved: 0, records: [] };
  const below = outbox.slice(first);
  const { clock } = ctx;
  clock.hlc.receive(horizon);
  const moved: Change[] = below.map((c) => ({ ...c, hlc: clock.hlc.nowString() }));
  const touched = await tx.getRecords(moved.map((c) => ({ collection: c.collection, id: c.id, space: c.space })));
  const records = new Map<string, StoredRecord>();
  moved.forEach((change, i) => {
    const key = JSON.stringify([change.collection, change.id]);
    // A record this replica forgot at the horizon (collection) starts again from nothing: the same, for a change after it.
    const record = records.get(key) ?? touched[i];
    const base = record?.state ?? {};
    const old = below[i] as Change;
    // A merge version keeps its dot: it is renamed. Every other change is applied again on top.
    const state = change.op === 'version' && record ? restampState(base, new Map([[old.hlc, change.hlc]])) : applyChange(base, change);
    records.set(key, storedRecord(ctx.collections.get(change.collection), { collection: change.collection, id: change.id, space: change.space }, state));
  });
  await Promise.all([tx.replaceOutbox(moved), ...[...records.values()].map((r) => tx.putRecord(r)), tx.setMeta(META_CLOCK, clock.last)]);
  return { moved: moved.length, records: [...records.values()] };
}

/**
 * Forgets the records of `space` that collectibleAt() puts at or below
 * `horizon`, once this replica has applied the space's log up to `upTo`
 * (a position of the log of `region`, the announcing server's region).
 * Returns how many.
 */
export async function collectBelow(tx: StorageTx, collections: Iterable<string>, space: SpaceId, horizon: HlcString, upTo: number, region?: string): Promise<number> {
  const cursor = readCursor(await tx.getMeta(positionKey(space)));
  // A position of another region's log says nothing about this one's horizon.
  if (cursor.region !== region || cursor.upTo < upTo) return 0;
  const known = new Set(collections);
  // By the storage's index of deleted records when it has one (what is forgotten, not the whole space), else a scan.
  const candidates = tx.collectible ? await tx.collectible(space, horizon) : (await Promise.all([...known].map((c) => tx.scanRecords(c, { space })))).flat();
  const forget = [];
  for (const record of candidates) {
    // The state decides, not the index entry.
    const at = collectibleAt(record.state);
    if (known.has(record.collection) && at !== undefined && at <= horizon) forget.push({ collection: record.collection, id: record.id, space });
  }
  if (forget.length > 0) await tx.forgetRecords(forget);
  return forget.length;
}


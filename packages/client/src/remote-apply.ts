/**
 * Applying what the server sends: other replicas' changes, snapshot records
 * and acknowledgements. Each runs inside one storage transaction that writes
 * the records (or the outbox), the space's log position and the clock
 * together; the clock receives the latest timestamp applied, so the replica's
 * next write is ordered after it, and notes what the server accepted.
 */
import { afterHorizon, applyChange, canonicalState, joinRecordStates, latestStamp, maxHlc, type Change, type HlcString, type RecordState, type SnapshotRecord, type SpaceId } from '@syncline/core/internal';
import type { ReplicaClock } from './clock.js';
import { META_CLOCK, META_CLOCK_ACCEPTED, positionKey, readCursor, type LogCursor } from './meta.js';
import { RecordCache } from './record-cache.js';
import type { RetiredTrim } from './retired.js';
import type { CollectionDef } from './schema.js';
import type { RecordAddress, StorageTx, StoredRecord } from './storage/types.js';
import { applyToStored, storedRecord } from './write.js';

export interface ApplyContext {
  readonly collections: ReadonlyMap<string, CollectionDef>;
  readonly clock: ReplicaClock;
  /** The replica's retired replicas (retired.ts): their merge-context entries are dropped from what is applied. */
  readonly retired?: RetiredTrim;
}

/** Stores records in one call where the adapter can, one call each where it cannot. */
export function putAll(tx: StorageTx, records: readonly StoredRecord[], options?: { readonly handOver?: boolean }): Promise<unknown> {
  return tx.putRecords ? tx.putRecords(records, options) : Promise.all(records.map((record) => tx.putRecord(record, options)));
}

/** Keeps the in-memory clock at or above what other tabs stored. */
export async function syncClock(tx: StorageTx, clock: ReplicaClock): Promise<void> {
  const stored = await tx.getMeta<HlcString>(META_CLOCK);
  if (stored !== undefined && stored > clock.last) clock.hlc.receive(stored);
}

/** Receives `latest` into the clock and writes the clock's state; inside the applying transaction. */
function receive(tx: StorageTx, clock: ReplicaClock, latest: HlcString | undefined): Array<Promise<void>> {
  if (latest === undefined) return [];
  clock.hlc.receive(latest);
  const writes = [tx.setMeta(META_CLOCK, clock.last)];
  if (clock.accept(latest)) writes.push(tx.setMeta(META_CLOCK_ACCEPTED, clock.accepted));
  return writes;
}

/** How far a message takes a replica in a space's log (sync engine → replica). */
export interface LogAdvance {
  /** The position it has then applied, in `region`'s log. */
  readonly upTo: number;
  /** The region of the server that sent it (absent: a server without a region). */
  readonly region?: string | undefined;
  /** Per origin region, how far it then holds that region's own log (protocol 5). */
  readonly origins?: ReadonlyArray<{ readonly region: string; readonly upTo: number }> | undefined;
}

/**
 * Moves the space's cursor (meta.ts) to `to`, inside the applying transaction:
 * the position and region are replaced, the origin vector only grows.
 */
async function advance(tx: StorageTx, space: SpaceId, to: LogAdvance): Promise<void> {
  const before = readCursor(await tx.getMeta(positionKey(space)));
  const origins: Record<string, number> = { ...before.origins };
  for (const { region, upTo } of to.origins ?? []) if (upTo > (origins[region] ?? 0)) origins[region] = upTo;
  const cursor: LogCursor = { upTo: to.upTo, ...(to.region !== undefined ? { region: to.region } : {}), ...(Object.keys(origins).length > 0 ? { origins } : {}) };
  await tx.setMeta(positionKey(space), cursor);
}

/**
 * Applies changes of other replicas: idempotent and order independent. With
 * `position`, records that the space's log is applied up to it. The changes are
 * handed over: their values become part of the stored records, frozen.
 */
export async function applyChanges(tx: StorageTx, ctx: ApplyContext, changes: readonly Change[], position?: LogAdvance & { readonly space: SpaceId }): Promise<StoredRecord[]> {
  // Retired replicas' entries (retired.ts): read only for merge versions from a server without a region.
  const versions = position?.region === undefined && changes.some((c) => c.op === 'version');
  const [, cache, trim] = await Promise.all([syncClock(tx, ctx.clock), RecordCache.load(tx, changes), versions ? ctx.retired?.of(tx) : undefined]);
  let latest: HlcString | undefined;
  for (const change of changes) {
    latest = maxHlc(latest, change.hlc);
    cache.set(applyToStored(ctx.collections.get(change.collection), cache.get(change), change, trim));
  }
  const written = cache.changed();
  await Promise.all([
    // Built from the changes, which the replica now owns: kept, not copied.
    putAll(tx, written, { handOver: true }),
    ...(position ? [advance(tx, position.space, position)] : []),
    ...receive(tx, ctx.clock, latest),
  ]);
  return written;
}

/**
 * The records a snapshot from a server without a region has sent so far, by
 * [collection, id] (the replica keeps one per space while it bootstraps).
 */
export type SnapshotKeys = Set<string>;

/** What applying a snapshot chunk did. */
export interface SnapshotApplied {
  /** Records written. */
  readonly written: StoredRecord[];
  /** Records forgotten (the last chunk of a replacing snapshot). */
  readonly forgotten: RecordAddress[];
}

const keyOf = (collection: string, id: string): string => JSON.stringify([collection, id]);

/**
 * How a snapshot chunk applies: `replace` (a server without a region), with
 * the records of the snapshot sent so far; or `joined` (regions), with them
 * too (undefined: a chunk whose first one was not seen) and the region's
 * collection `horizon` when the replica heard one.
 */
export type SnapshotMode = { readonly replace: SnapshotKeys | undefined } | { readonly joined: SnapshotKeys | undefined; readonly horizon: HlcString | undefined };

/**
 * Applies a snapshot chunk (materialized states from the server). Unacknowledged
 * local changes always stay, in the records and in the outbox. The records are
 * handed over, like changes.
 *
 * Replacing (a server without a region): the snapshot replaces what the
 * replica held: each record becomes the server's state with this replica's
 * unacknowledged changes applied on top, and with the last chunk (`position`)
 * a local record the snapshot did not hold is forgotten, or rebuilt from its
 * unacknowledged changes alone. That is exact: everything the replica held
 * came from that server's log up to its position or from its own changes, and
 * the snapshot is taken later, so it holds all of it, unless the server
 * forgot the record at its stability horizon (a deleted record), which a join
 * would bring back.
 *
 * Joined (regions: another region may not hold yet what this replica got from
 * the first): the snapshot is joined into the local records, so nothing is
 * lost. With the region's collection horizon H (server README, "Bounded
 * growth", "With regions"), every change stamped at or below H is in the
 * region's state or in its log after the snapshot's position (which the
 * catch-up sends next): so of what the replica holds only the registers after
 * H are joined in (core afterHorizon), and with the last chunk a local record
 * the snapshot did not hold keeps only those (the region forgot the rest, a
 * deleted record). Without H, a plain join.
 */
export async function applySnapshot(
  tx: StorageTx,
  ctx: ApplyContext,
  records: readonly SnapshotRecord[],
  space: SpaceId,
  position: LogAdvance | undefined,
  mode: SnapshotMode,
): Promise<SnapshotApplied> {
  const keys = 'replace' in mode ? mode.replace : mode.joined;
  const replace = 'replace' in mode;
  const horizon = 'joined' in mode ? mode.horizon : undefined;
  // One read for the whole chunk (an empty replica learns that nothing exists at once).
  const [, existing, outbox, trim] = await Promise.all([
    syncClock(tx, ctx.clock),
    tx.getRecords(records.map(({ collection, id }) => ({ collection, id, space }))),
    replace && keys ? tx.readOutbox(space, Number.MAX_SAFE_INTEGER) : [],
    // Retired replicas' entries (retired.ts): a replacing snapshot comes from a server without a region.
    replace && keys ? ctx.retired?.of(tx) : undefined,
  ]);
  const own = new Map<string, Change[]>();
  for (const change of outbox) {
    const key = keyOf(change.collection, change.id);
    const list = own.get(key);
    if (list) list.push(change);
    else own.set(key, [change]);
  }
  // Own changes made before the replica heard of a retirement may name the retired replica: trimmed too.
  const mine = (key: string, state: RecordState): RecordState => {
    const next = (own.get(key) ?? []).reduce(applyChange, state);
    return trim && next.merge ? trim(next) : next;
  };
  /** What of a local state a joined snapshot keeps: the registers after the region's horizon. */
  const kept = (state: RecordState): RecordState | undefined => (horizon === undefined ? state : afterHorizon(state, horizon));
  let latest: HlcString | undefined;
  const written = records.map(({ collection, id, state }, i) => {
    latest = maxHlc(latest, latestStamp(state));
    const record = existing[i];
    keys?.add(keyOf(collection, id));
    let next: RecordState;
    if (replace && keys) next = mine(keyOf(collection, id), state);
    else {
      const local = record ? kept(record.state) : undefined;
      next = local ? joinRecordStates(local, state) : state;
    }
    return storedRecord(ctx.collections.get(collection), { collection, id, space }, next);
  });
  const forgotten: RecordAddress[] = [];
  if (keys && position !== undefined && (replace || horizon !== undefined)) {
    for (const collection of ctx.collections.keys()) {
      for (const record of await tx.scanRecords(collection, { space })) {
        const key = keyOf(collection, record.id);
        if (keys.has(key)) continue;
        if (replace) {
          if (own.has(key)) written.push(storedRecord(ctx.collections.get(collection), { collection, id: record.id, space }, mine(key, {})));
          else forgotten.push({ collection, id: record.id, space });
          continue;
        }
        const left = kept(record.state);
        if (left === undefined) forgotten.push({ collection, id: record.id, space });
        else if (canonicalState(left) !== canonicalState(record.state)) written.push(storedRecord(ctx.collections.get(collection), { collection, id: record.id, space }, left));
      }
    }
  }
  await Promise.all([
    putAll(tx, written, { handOver: true }),
    ...(forgotten.length > 0 ? [tx.forgetRecords(forgotten)] : []),
    ...(position !== undefined ? [advance(tx, space, position)] : []),
    ...receive(tx, ctx.clock, latest),
  ]);
  return { written, forgotten };
}

/**
 * The server holds this replica's changes of `space` up to seq `upTo`: they
 * leave the outbox, and the last one's stamp (`hlc`, read from the outbox when
 * the caller does not know it) is noted as accepted.
 */
export async function applyAck(tx: StorageTx, clock: ReplicaClock, space: SpaceId, upTo: number, hlc: HlcString | undefined): Promise<void> {
  let last = hlc;
  if (last === undefined) {
    // Not pushed on this connection (the server held it already): read its stamp before it goes.
    const [oldest] = await tx.readOutbox(space, 1);
    if (oldest && oldest.seq <= upTo) last = (await tx.readOutbox(space, upTo - oldest.seq + 1)).at(-1)?.hlc;
  }
  const writes: Array<Promise<unknown>> = [tx.ackOutbox(space, upTo)];
  if (clock.accept(last)) writes.push(tx.setMeta(META_CLOCK_ACCEPTED, clock.accepted));
  await Promise.all(writes);
}

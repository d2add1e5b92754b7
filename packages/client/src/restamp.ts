/**
 * Re-stamping: the repair for local writes whose timestamps a wrong clock put
 * far from the server's time, made before anyone else saw them.
 *
 * Two cases (client README, "Clocks"):
 *  - at the replica's first welcome, every change still in its outbox was
 *    stamped by the device clock alone: each is moved by the offset the welcome
 *    measured (server - device), so it carries about the time it was written;
 *  - later, a change stamped further ahead of the server's time than the server
 *    accepts (`maxClockDrift`) plus a margin (the device clock jumped while the
 *    replica was offline) is moved back by the jump, at most to now.
 *
 * Why this is safe: a re-stamped change was never stored by the server (before
 * the first welcome nothing was pushed; a change further ahead than the server
 * accepts is refused whole, and the margin covers pushes still in flight from
 * an older connection), so only this replica holds it. New stamps keep the
 * changes' order and are above every other timestamp the replica holds (the
 * floor: what the server accepted, and the outbox's other changes), while the
 * old ones were above all of those too; so the renaming is strictly increasing
 * on every timestamp any record holds, and renaming the records' timestamps
 * (restampState) gives the states that applying the new changes would give.
 */
import { compareTimestamps, formatTimestamp, hlcWall, maxHlc, MAX_COUNTER, parseTimestamp, restampState, type Change, type HlcString, type ReplicaId, type Timestamp } from '@syncline/core/internal';
import type { ReplicaClock } from './clock.js';
import { META_CLOCK, META_CLOCK_OFFSET, META_CLOCK_UNSYNCED } from './meta.js';
import type { CollectionDef } from './schema.js';
import type { StorageTx, StoredRecord } from './storage/types.js';
import { storedRecord } from './write.js';

/**
 * How far past the server's tolerance a change must be before it is re-stamped
 * (ms). A push sent on an older connection may reach the server after the
 * replica reconnected; the margin keeps a change the server could still accept
 * from being renamed under it. A change inside the margin is accepted once the
 * server's clock has moved on (at most this long).
 */
export const RESTAMP_MARGIN_MS = 60_000;

/** A clock move smaller than this at the first welcome is measurement noise, not a wrong clock. */
const FIRST_WELCOME_TOLERANCE_MS = 1_000;

export interface RestampInput {
  /** This replica's id (the stamps' tie-breaker). */
  readonly replica: ReplicaId;
  /** The outbox, any order. */
  readonly outbox: readonly Change[];
  /** Re-stamp every change (the first welcome), or only those ahead of `threshold`. */
  readonly all: boolean;
  /** Wall time (ms) beyond which a change is re-stamped (when not `all`). */
  readonly threshold: number;
  /** How far to move each change's wall time (ms). */
  readonly delta: number;
  /** The server's time now (ms): no change is moved past it. */
  readonly now: number;
  /** The latest timestamp the server accepted that this replica knows of. */
  readonly accepted: HlcString | undefined;
}

export interface RestampPlan {
  /** Old stamp -> new stamp, for the changes that move. */
  readonly renames: ReadonlyMap<HlcString, HlcString>;
  /** What the clock must stand at afterwards: the latest stamp the replica then holds. */
  readonly last: HlcString | undefined;
}

function next(t: Timestamp): Timestamp {
  return t.counter < MAX_COUNTER ? { ...t, counter: t.counter + 1 } : { ...t, wall: t.wall + 1, counter: 0 };
}

/** The new stamps (pure: property-tested in test/client/restamp.test.ts). */
export function planRestamp(input: RestampInput): RestampPlan {
  const sorted = [...input.outbox].sort((a, b) => (a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : 0));
  // Only stamps above everything the server accepted move (always true of a change ahead of the
  // server's tolerance; at the first welcome, true unless the app applied remote changes itself).
  const { accepted } = input;
  const moving = sorted.filter((c) => (input.all || hlcWall(c.hlc) > input.threshold) && (accepted === undefined || c.hlc > accepted));
  const delta = input.all && Math.abs(input.delta) < FIRST_WELCOME_TOLERANCE_MS ? 0 : input.delta;
  let floor = accepted;
  // Changes are stamped in order: those that stay are the ones before the first that moves.
  for (const change of sorted.slice(0, sorted.length - moving.length)) floor = maxHlc(floor, change.hlc);
  const renames = new Map<HlcString, HlcString>();
  let previous: Timestamp | undefined = floor === undefined ? undefined : parseTimestamp(floor);
  for (const change of moving) {
    const old = parseTimestamp(change.hlc);
    let stamp: Timestamp = { wall: Math.max(0, Math.min(old.wall + delta, input.now)), counter: old.counter, replica: input.replica };
    if (previous !== undefined && compareTimestamps(stamp, previous) <= 0) stamp = next({ ...previous, replica: input.replica });
    const renamed = formatTimestamp(stamp);
    if (renamed !== change.hlc) renames.set(change.hlc, renamed);
    previous = stamp;
  }
  return { renames, last: previous === undefined ? undefined : formatTimestamp(previous) };
}

/**
 * Applies a plan inside a storage transaction: the outbox's changes and every
 * record they touched get the new stamps. Returns how many changes moved.
 */
export async function applyRestamp(tx: StorageTx, collections: ReadonlyMap<string, CollectionDef>, outbox: readonly Change[], plan: RestampPlan): Promise<number> {
  const { renames } = plan;
  if (renames.size === 0) return 0;
  const moved = outbox.filter((c) => renames.has(c.hlc)).map((c) => ({ ...c, hlc: renames.get(c.hlc) as HlcString }));
  const addresses = new Map<string, { collection: string; id: string; space: Change['space'] }>();
  for (const c of moved) addresses.set(JSON.stringify([c.collection, c.id, c.space]), { collection: c.collection, id: c.id, space: c.space });
  const records = await tx.getRecords([...addresses.values()]);
  const rewritten: StoredRecord[] = [];
  for (const record of records) {
    if (!record) continue; // a record that was never written cannot hold a moved stamp
    const state = restampState(record.state, renames);
    if (state !== record.state) rewritten.push(storedRecord(collections.get(record.collection), record, state));
  }
  await Promise.all([tx.replaceOutbox(moved), ...rewritten.map((r) => tx.putRecord(r))]);
  return moved.length;
}

/**
 * One re-stamping pass in a storage transaction: plans from the whole outbox
 * and the clock, applies the plan, and saves the clock's offset (and, when
 * anything moved, the point the clock goes back to). The caller rewinds the
 * in-memory clock to `rewindTo` once the transaction has committed, and runs
 * this alone in its commit queue (no write may be stamped meanwhile).
 */
export async function restampOutbox(
  tx: StorageTx,
  ctx: { readonly replica: ReplicaId; readonly clock: ReplicaClock; readonly collections: ReadonlyMap<string, CollectionDef> },
  options: { readonly maxClockDrift: number; readonly all?: boolean; readonly delta?: number },
): Promise<{ readonly moved: number; readonly rewindTo: HlcString | undefined }> {
  const { clock } = ctx;
  const outbox = await tx.readOutbox(undefined, Number.MAX_SAFE_INTEGER);
  const now = clock.physical();
  const plan = planRestamp({
    replica: ctx.replica,
    outbox,
    all: options.all ?? false,
    threshold: now + options.maxClockDrift + RESTAMP_MARGIN_MS,
    delta: options.delta ?? 0,
    now,
    accepted: clock.accepted,
  });
  const moved = await applyRestamp(tx, ctx.collections, outbox, plan);
  const rewindTo = moved > 0 ? maxHlc(plan.last, clock.accepted) : undefined;
  await Promise.all([
    tx.setMeta(META_CLOCK_OFFSET, clock.offset),
    tx.setMeta(META_CLOCK_UNSYNCED, false),
    ...(rewindTo !== undefined ? [tx.setMeta(META_CLOCK, rewindTo)] : []),
  ]);
  return { moved, rewindTo };
}

/**
 * The outbox's stored form, shared by the adapters: one entry per addOutbox call
 * (a transaction's changes of one space), keyed [space, from], holding the
 * changes with seqs from..to (contiguous, ascending).
 */
import type { Change, SpaceId } from '@syncline/core/internal';

export interface OutboxEntry {
  readonly space: SpaceId;
  /** seq of the first change (the entry's key is [space, from]). */
  readonly from: number;
  /** seq of the last change. */
  readonly to: number;
  readonly changes: readonly Change[];
}

/**
 * The meta key under which the IndexedDB adapter keeps every space's count of
 * unacknowledged changes (OutboxCounts), so that countOutbox reads no entry.
 */
export const META_OUTBOX = 'outbox';
export type OutboxCounts = ReadonlyMap<string, number>;

/** Checks that `changes` can form one entry (one space, contiguous ascending seqs) and returns it; undefined when empty. */
export function outboxEntry(changes: readonly Change[]): OutboxEntry | undefined {
  const first = changes[0];
  if (first === undefined) return undefined;
  if (!Number.isSafeInteger(first.seq)) throw new RangeError(`addOutbox: seq ${String(first.seq)} is not an integer`);
  for (let i = 1; i < changes.length; i++) {
    const c = changes[i] as Change;
    if (c.space !== first.space) throw new RangeError(`addOutbox: changes of spaces "${first.space}" and "${c.space}" in one entry`);
    if (c.seq !== first.seq + i) throw new RangeError(`addOutbox: seq ${c.seq} after ${first.seq + i - 1} in space "${first.space}"; seqs of an entry must be contiguous and ascending`);
  }
  return { space: first.space, from: first.seq, to: first.seq + changes.length - 1, changes };
}

/**
 * Groups changes in [space, seq] order (a v1 outbox, one change per row) into
 * entries of contiguous seqs, each of at most `max` changes.
 */
export function groupOutbox(changes: readonly Change[], max: number): OutboxEntry[] {
  const entries: OutboxEntry[] = [];
  let run: Change[] = [];
  const flush = () => {
    const entry = outboxEntry(run);
    if (entry) entries.push(entry);
    run = [];
  };
  for (const change of changes) {
    const last = run[run.length - 1];
    if (last && (last.space !== change.space || last.seq + 1 !== change.seq || run.length >= max)) flush();
    run.push(change);
  }
  flush();
  return entries;
}

/**
 * Most changes in one outbox entry. A transaction's changes of a space go into one
 * entry (a request per entry, not per change); bounding it keeps reading a push's
 * worth of changes and rewriting a partly acknowledged entry small.
 */
const OUTBOX_ENTRY_MAX = 1_000;

/** A transaction's changes (seqs ascending per space) as addOutbox arguments: per space, chunks of contiguous seqs. */
export function outboxEntries(changes: readonly Change[]): Change[][] {
  const bySpace = new Map<SpaceId, Change[][]>();
  for (const change of changes) {
    let chunks = bySpace.get(change.space);
    if (!chunks) bySpace.set(change.space, (chunks = [[]]));
    let chunk = chunks[chunks.length - 1] as Change[];
    if (chunk.length === OUTBOX_ENTRY_MAX) chunks.push((chunk = []));
    chunk.push(change);
  }
  return [...bySpace.values()].flat();
}


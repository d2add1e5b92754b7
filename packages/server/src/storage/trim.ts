/**
 * What both storages share of trimRetired (ServerStorage): where a call starts,
 * how many records a page reads, and the rewrite of one page's rows.
 */
import { decodeRecordState, encodeRecordState, withoutRetired, type ReplicaId } from '@syncline/core/internal';
import type { TrimMark } from './types.js';

/** Records trimRetired reads per page (SQLite: per transaction). */
export const TRIM_PAGE = 500;

/** The position after which a trimRetired call reads records: `since.head`, or 0 (every record) when replicas were retired since. */
export function trimAfter(since: TrimMark | undefined, retired: number): number {
  return since && since.retired === retired ? since.head : 0;
}

/** A row that loses entries: its new state's bytes, and how many bytes that saves. */
export type Trimmed<R> = R & { readonly bytes: Uint8Array; readonly saved: number };

/** The rows of a page whose state loses retired replicas' entries (core withoutRetired), re-encoded. */
export function trimRows<R extends { readonly state: Uint8Array }>(rows: readonly R[], retired: ReadonlySet<string>): Array<Trimmed<R>> {
  const gone = (replica: ReplicaId): boolean => retired.has(replica);
  return rows.flatMap((row) => {
    const state = decodeRecordState(row.state);
    const next = withoutRetired(state, gone);
    if (next === state) return [];
    const bytes = encodeRecordState(next);
    return [{ ...row, bytes, saved: row.state.length - bytes.length }];
  });
}

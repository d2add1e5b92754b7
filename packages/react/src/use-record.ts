import { useMemo, useSyncExternalStore } from 'react';
import type { Fields, Replica, Row, WriteOptions } from '@syncline/client';
import { useReplica } from './context.js';
import { sameRow } from './compare.js';
import { LiveValue } from './live-value.js';
import { watchRecord, type RecordTarget } from './watch-record.js';

/** What useRecord returns. */
export interface RecordResult<T = Fields> {
  /** The record now; undefined while loading, or when it does not exist (or was deleted). */
  readonly row: Row<T> | undefined;
  /** True until the first read of this record finishes. */
  readonly loading: boolean;
  /** Why the record could not be read (unknown collection, invalid id, closed replica). */
  readonly error: Error | undefined;
}

const LOADING: RecordResult = Object.freeze({ row: undefined, loading: true, error: undefined });

function sameResult(a: RecordResult, b: RecordResult): boolean {
  return a === b || (a.loading === b.loading && a.error === b.error && sameRow(a.row, b.row));
}

function liveRecord(replica: Replica, target: RecordTarget): LiveValue<RecordResult> {
  return new LiveValue<RecordResult>(
    LOADING,
    (sink) =>
      watchRecord(
        replica,
        target,
        () => replica.get(target.collection, target.id, { space: target.space }),
        (row) => sink.publish({ row, loading: false, error: undefined }),
        (error) => sink.publish({ row: undefined, loading: false, error }),
      ),
    sameResult,
  );
}

/**
 * One record, live: re-read after every commit that touches it (local, another
 * tab's, remote). Re-renders only when the row's value changes. `options.space`
 * defaults to the replica's default space.
 */
export function useRecord(collection: string, id: string, options?: WriteOptions): RecordResult {
  const replica = useReplica();
  const space = options?.space ?? replica.defaultSpace;
  const live = useMemo(() => liveRecord(replica, { collection, id, space }), [replica, collection, id, space]);
  return useSyncExternalStore(live.subscribe, live.getSnapshot, live.getSnapshot);
}

import { useMemo, useSyncExternalStore } from 'react';
import type { Fields, Query, Replica, Row } from '@syncline/client';
import { useReplica } from './context.js';
import { queryKey, sameRows } from './compare.js';
import { LiveValue, toError } from './live-value.js';

/** What useQuery returns. */
export interface QueryResult<T = Fields> {
  /** The rows of the query's latest result; empty while loading. */
  readonly rows: readonly Row<T>[];
  /** True until the first result of this query arrives. */
  readonly loading: boolean;
  /** Why the query could not be subscribed (unknown collection or index, closed replica). */
  readonly error: Error | undefined;
}

const NO_ROWS: readonly Row[] = Object.freeze([]);
const LOADING: QueryResult = Object.freeze({ rows: NO_ROWS, loading: true, error: undefined });

function sameResult(a: QueryResult, b: QueryResult): boolean {
  // The live query calls back only when its rows changed; rows are compared only
  // when they may repeat what is shown (see connect), so this stays cheap.
  return a === b || (a.loading === b.loading && a.error === b.error && a.rows === b.rows);
}

function liveQuery(replica: Replica, query: Query): LiveValue<QueryResult> {
  return new LiveValue<QueryResult>(
    LOADING,
    (sink) => {
      // After a reconnect (Strict Mode, or a component that unmounted and came back)
      // the first result may be the one already shown: compare it once.
      let first = true;
      try {
        return replica.subscribe(query, (rows) => {
          const shown = sink.current();
          if (first && !shown.loading && shown.error === undefined && sameRows(shown.rows, rows)) {
            first = false;
            return;
          }
          first = false;
          sink.publish({ rows, loading: false, error: undefined });
        }, { onError: (error) => sink.publish({ rows: NO_ROWS, loading: false, error: toError(error) }) });
      } catch (error) {
        sink.publish({ rows: NO_ROWS, loading: false, error: toError(error) });
        return () => undefined;
      }
    },
    sameResult,
  );
}

/**
 * A live query: the rows now, then again after every change (local, another
 * tab's, remote) that alters the result. The component re-renders only when the
 * result changes. A query with new content (compared by value, so an inline
 * object literal is fine) is a new subscription and starts loading again.
 */
export function useQuery(query: Query): QueryResult {
  const replica = useReplica();
  const key = queryKey(query);
  // Keyed by content, not identity: `query` is read only when the key changes.
  const live = useMemo(() => liveQuery(replica, query), [replica, key]);
  return useSyncExternalStore(live.subscribe, live.getSnapshot, live.getSnapshot);
}

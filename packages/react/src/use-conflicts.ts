import { useMemo, useSyncExternalStore } from 'react';
import type { Version } from '@syncline/core/internal';
import type { Replica, WriteOptions } from '@syncline/client';
import { useReplica } from './context.js';
import { sameVersions } from './compare.js';
import { LiveValue } from './live-value.js';
import { watchRecord, type RecordTarget } from './watch-record.js';

interface ConflictsState {
  readonly versions: readonly Version[];
  readonly error: Error | undefined;
}

const NONE: ConflictsState = Object.freeze({ versions: Object.freeze([]), error: undefined });

function sameState(a: ConflictsState, b: ConflictsState): boolean {
  return a === b || (a.error === b.error && sameVersions(a.versions, b.versions));
}

function liveConflicts(replica: Replica, target: RecordTarget): LiveValue<ConflictsState> {
  return new LiveValue<ConflictsState>(
    NONE,
    (sink) =>
      watchRecord(
        replica,
        target,
        () => replica.conflicts(target.collection, target.id, { space: target.space }),
        (versions) => sink.publish({ versions, error: undefined }),
        (error) => sink.publish({ versions: NONE.versions, error }),
      ),
    sameState,
  );
}

/**
 * The concurrent versions (siblings) of a record of a merge collection, live:
 * [] when there is no conflict (and until the first read), two or more while
 * writers disagree; re-read after every commit that touches the record. Resolve
 * a conflict by writing the record. A refusal (a collection that is not a merge
 * collection, a closed replica) is thrown from the render, to the nearest error
 * boundary.
 */
export function useConflicts(collection: string, id: string, options?: WriteOptions): readonly Version[] {
  const replica = useReplica();
  const space = options?.space ?? replica.defaultSpace;
  const live = useMemo(() => liveConflicts(replica, { collection, id, space }), [replica, collection, id, space]);
  const state = useSyncExternalStore(live.subscribe, live.getSnapshot, live.getSnapshot);
  if (state.error) throw state.error;
  return state.versions;
}

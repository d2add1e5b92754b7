import { useMemo, useSyncExternalStore } from 'react';
import type { SyncEngine, SyncStatus } from '@syncline/client';
import { useReplica } from './context.js';
import { sameStatus } from './compare.js';
import { LiveValue } from './live-value.js';

function liveStatus(sync: SyncEngine): LiveValue<SyncStatus | undefined> {
  return new LiveValue<SyncStatus | undefined>(
    sync.status,
    (sink) => {
      // The status may have moved while no one listened.
      sink.publish(sync.status);
      return sync.onStatus((status) => sink.publish(status));
    },
    sameStatus,
  );
}

/** A replica without sync: nothing to listen to, and no status. */
const noChanges = (): (() => void) => () => undefined;
const noStatus = (): undefined => undefined;

/**
 * The replica's sync status (`offline` | `connecting` | `syncing` | `synced`,
 * pending changes, bootstrap progress, last error), live; undefined when the
 * replica was created without `sync`. Re-renders only when a field changes.
 */
export function useSyncStatus(): SyncStatus | undefined {
  const sync = useReplica().sync;
  const live = useMemo(() => (sync ? liveStatus(sync) : undefined), [sync]);
  return useSyncExternalStore(live?.subscribe ?? noChanges, live?.getSnapshot ?? noStatus, live?.getSnapshot ?? noStatus);
}

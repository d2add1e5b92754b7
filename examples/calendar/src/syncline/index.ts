/**
 * The Syncline hooks the app uses: @syncline/react, plus whether this tab holds
 * the sync connection (only one tab per replica connects; the others share its
 * database and see its changes).
 */
import { useEffect, useState } from 'react';
import type { SyncStatus } from '@syncline/client';
import { useReplica, useSyncStatus as useReactSyncStatus } from '@syncline/react';

export { SynclineProvider, useReplica, useQuery, useRecord, useConflicts, usePresence, useUndo, type QueryResult } from '@syncline/react';

const OFFLINE: SyncStatus = { state: 'offline', pending: 0 };

/** True in the tab that holds this replica's sync connection. */
export function useIsLeader(): boolean {
  const replica = useReplica();
  const [leader, setLeader] = useState(replica.isLeader);
  useEffect(() => {
    setLeader(replica.isLeader);
    return replica.onLeaderChange(setLeader);
  }, [replica]);
  return leader;
}

/** The sync status (offline for a replica without sync) and whether this tab is the one syncing. */
export function useSyncStatus(): SyncStatus & { readonly leader: boolean } {
  const status = useReactSyncStatus() ?? OFFLINE;
  const leader = useIsLeader();
  return { ...status, leader };
}

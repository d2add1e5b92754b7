/**
 * The replica the hooks read, given once near the root of the tree. Each
 * provider is its own replica: two providers (two replicas) can live side by side.
 */
import { createContext, useContext, type ReactNode } from 'react';
import type { Replica } from '@syncline/client';

const ReplicaContext = createContext<Replica | undefined>(undefined);
ReplicaContext.displayName = 'SynclineReplica';

/** Props of SynclineProvider. */
export interface SynclineProviderProps {
  /** An open replica (from createReplica). The provider does not close it. */
  readonly replica: Replica;
  /** The tree whose hooks read `replica`. */
  readonly children?: ReactNode;
}

/** Makes `replica` the one the hooks below it read. */
export function SynclineProvider({ replica, children }: SynclineProviderProps): ReactNode {
  return <ReplicaContext.Provider value={replica}>{children}</ReplicaContext.Provider>;
}

/** The replica of the nearest SynclineProvider; throws when there is none. */
export function useReplica(): Replica {
  const replica = useContext(ReplicaContext);
  if (replica === undefined) throw new Error('useReplica() and the Syncline hooks need a <SynclineProvider replica={…}> above the component');
  return replica;
}

import { useCallback, useMemo, useSyncExternalStore } from 'react';
import type { Json, PresencePeer } from '@syncline/client';
import { useReplica } from './context.js';

/** What usePresence returns: the other replicas' states in the space, and this replica's own. */
export interface PresenceResult {
  /** The other connected replicas' states, by replica id (empty while offline). */
  readonly peers: readonly PresencePeer[];
  /** Sets this replica's state in the space (null: none); see replica.presence.set. */
  readonly set: (state: Json | null) => void;
}

/**
 * Presence in a space (default: the replica's default space), live: who else
 * is connected there and what each says about itself, and a setter for this
 * replica's own state. Re-renders when the others' states change. See the
 * client README, "Presence".
 */
export function usePresence(space?: string): PresenceResult {
  const presence = useReplica().presence;
  const options = useMemo(() => (space === undefined ? undefined : { space }), [space]);
  const subscribe = useCallback((onChange: () => void) => presence.subscribe(() => onChange(), options), [presence, options]);
  const snapshot = useCallback(() => presence.peers(options), [presence, options]);
  const peers = useSyncExternalStore(subscribe, snapshot, snapshot);
  const set = useCallback((state: Json | null) => presence.set(state, options), [presence, options]);
  return useMemo(() => ({ peers, set }), [peers, set]);
}

import { useCallback, useMemo, useSyncExternalStore } from 'react';
import { useReplica } from './context.js';

/** What useUndo returns: the replica's undo and redo, and whether each has a step. */
export interface UndoControls {
  /** Undoes this replica's latest write step (replica.undo()); resolves true when there was one. */
  readonly undo: () => Promise<boolean>;
  /** Redoes the latest undone step (replica.redo()). */
  readonly redo: () => Promise<boolean>;
  /** True when undo() has a step to undo. */
  readonly canUndo: boolean;
  /** True when redo() has a step to redo. */
  readonly canRedo: boolean;
}

/** canUndo and canRedo as one snapshot number (stable for useSyncExternalStore). */
const flags = (canUndo: boolean, canRedo: boolean): number => (canUndo ? 1 : 0) | (canRedo ? 2 : 0);

/**
 * Undo and redo of this replica's own writes (see replica.undo() in
 * @syncline/client: a field another replica wrote since is left alone), with
 * `canUndo` and `canRedo` live: a component re-renders only when one of them
 * changes.
 */
export function useUndo(): UndoControls {
  const replica = useReplica();
  const history = replica.history;
  const subscribe = useCallback((onChange: () => void) => history.subscribe(onChange), [history]);
  const snapshot = useCallback(() => flags(history.canUndo, history.canRedo), [history]);
  const state = useSyncExternalStore(subscribe, snapshot, snapshot);
  const undo = useCallback(() => replica.undo(), [replica]);
  const redo = useCallback(() => replica.redo(), [replica]);
  return useMemo(() => ({ undo, redo, canUndo: (state & 1) !== 0, canRedo: (state & 2) !== 0 }), [undo, redo, state]);
}

/**
 * `@syncline/react`: React 18 and 19 hooks over a Syncline replica. Every hook reads the
 * local replica (instant, online or not), stays live, and re-renders its
 * component only when its own result changes.
 *
 * @packageDocumentation
 * @module @syncline/react
 */
export { SynclineProvider, useReplica, type SynclineProviderProps } from './context.js';
export { useQuery, type QueryResult } from './use-query.js';
export { useRecord, type RecordResult } from './use-record.js';
export { useConflicts } from './use-conflicts.js';
export { useSyncStatus } from './use-sync-status.js';
export { useUndo, type UndoControls } from './use-undo.js';
export { usePresence, type PresenceResult } from './use-presence.js';
export { createHooks, type TypedHooks } from './typed-hooks.js';

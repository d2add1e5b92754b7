import { SynclineError, type ErrorCode } from '@syncline/core/internal';

/**
 * Codes of the refusals a replica makes. Every one has a message that says what to do.
 *  - validation_failed: the collection's validator refused the value (`issues` says why)
 *  - unknown_collection / unknown_index / unknown_field: not declared in the schema
 *  - invalid_argument: an id, value or query that cannot be stored or run
 *  - closed: the replica (or its storage) was closed
 *  - storage_quota: the browser refused to store more
 *  - upgrade_blocked: another tab holds the database open with an older version
 *  - storage_unavailable: IndexedDB could not be opened
 *  - wrong_policy: an operation that the collection's conflict policy does not support
 *  - too_large: a change larger than MAX_CHANGE_BYTES (256 KiB), which no push could carry
 *  - unsynced_space: a write to a space the replica's sync does not sync (it would never leave the device)
 */
export type ReplicaErrorCode =
  | 'validation_failed'
  | 'unknown_collection'
  | 'unknown_index'
  | 'unknown_field'
  | 'invalid_argument'
  | 'closed'
  | 'storage_quota'
  | 'upgrade_blocked'
  | 'storage_unavailable'
  | 'wrong_policy'
  | 'too_large'
  | 'unsynced_space';

/** One problem a collection's validator found. */
export interface ValidationIssue {
  /** The validator's message. */
  readonly message: string;
  /** Where in the value, when the validator says. */
  readonly path?: readonly PropertyKey[];
}

/** A refusal by the replica: nothing of the call was written. `code` says why (ReplicaErrorCode). */
export class ReplicaError extends SynclineError {
  override name = 'ReplicaError';
  constructor(
    /** Why the replica refused (see ReplicaErrorCode). */
    override readonly code: ReplicaErrorCode,
    message: string,
    options?: { cause?: unknown; issues?: readonly ValidationIssue[] },
  ) {
    super(code, message, options);
    this.issues = options?.issues ?? [];
  }
  /** For `validation_failed`: what the validator found; otherwise empty. */
  readonly issues: readonly ValidationIssue[];
}

/**
 * Why `replica.sync.flushed()` could not resolve: a server error code that
 * stopped the engine or the space, `closed` (the replica or engine closed), or
 * `timeout` (the `timeoutMs` given ran out), or `space_removed` (a space it
 * waited for was removed with `removeSpace`; its changes stay on the device).
 */
export type SyncErrorCode = ErrorCode | 'closed' | 'timeout' | 'space_removed';

/** Why `replica.sync.flushed()` rejected; `code` is a SyncErrorCode. */
export class SyncError extends SynclineError {
  override name = 'SyncError';
  constructor(
    /** Why `flushed()` rejected (see SyncErrorCode). */
    override readonly code: SyncErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

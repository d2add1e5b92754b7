import { SynclineError, type ErrorCode } from '@syncline/core';

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
  | 'too_large';

export interface ValidationIssue {
  readonly message: string;
  readonly path?: readonly PropertyKey[];
}

export class ReplicaError extends SynclineError {
  override name = 'ReplicaError';
  constructor(
    override readonly code: ReplicaErrorCode,
    message: string,
    options?: { cause?: unknown; issues?: readonly ValidationIssue[] },
  ) {
    super(code, message, options);
    this.issues = options?.issues ?? [];
  }
  readonly issues: readonly ValidationIssue[];
}

/**
 * Why `replica.sync.flushed()` could not resolve: a server error code that
 * stopped the engine or the space, `closed` (the replica or engine closed), or
 * `timeout` (the `timeoutMs` given ran out).
 */
export type SyncErrorCode = ErrorCode | 'closed' | 'timeout';

export class SyncError extends SynclineError {
  override name = 'SyncError';
  constructor(
    override readonly code: SyncErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

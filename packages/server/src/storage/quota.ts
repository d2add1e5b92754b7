/**
 * Per-space quotas: the stored bytes of a space's records and how many of them
 * exist. Both adapters keep each space's usage beside its head (updated in the
 * same transaction as the records) and refuse a request that would grow a space
 * past a quota; one that shrinks it (deletes, smaller values) always goes
 * through, so a full space can be cleaned up. The log is not counted: it is
 * bounded by compaction.
 */
import { recordExists, SynclineError, type RecordState, type SpaceId } from '@syncline/core/internal';

/** The quotas append() holds each space to (from Limits: maxSpaceBytes, maxSpaceRecords). */
export interface SpaceQuotas {
  /** Bytes of the records' stored states in one space. */
  readonly maxSpaceBytes: number;
  /** Records that exist (deleted ones are not counted) in one space. */
  readonly maxSpaceRecords: number;
}

/** A request refused because it would grow its space past a quota; its code is `quota_exceeded`. */
export class QuotaError extends SynclineError {
  /** 'QuotaError'. */
  override name = 'QuotaError';
  constructor(message: string) {
    super('quota_exceeded', message);
  }
}

/** How one request changes a space's usage. */
export class UsageDelta {
  bytes = 0;
  records = 0;

  /** A record's state went from `before` (stored in `beforeBytes` bytes; undefined: new) to `after` (in `afterBytes`). */
  record(before: RecordState | undefined, beforeBytes: number, after: RecordState, afterBytes: number): void {
    this.bytes += afterBytes - beforeBytes;
    this.records += (recordExists(after) ? 1 : 0) - (recordExists(before) ? 1 : 0);
  }

  /** Throws QuotaError when the request would grow the space past a quota. */
  check(space: SpaceId, usage: { readonly bytes: number; readonly records: number }, quotas: SpaceQuotas | undefined): void {
    if (!quotas) return;
    if (this.bytes > 0 && usage.bytes + this.bytes > quotas.maxSpaceBytes) {
      throw new QuotaError(`space "${space}" holds ${usage.bytes} bytes of records; this push would bring it to ${usage.bytes + this.bytes}, over its quota of ${quotas.maxSpaceBytes}`);
    }
    if (this.records > 0 && usage.records + this.records > quotas.maxSpaceRecords) {
      throw new QuotaError(`space "${space}" holds ${usage.records} records; this push would bring it to ${usage.records + this.records}, over its quota of ${quotas.maxSpaceRecords}`);
    }
  }
}

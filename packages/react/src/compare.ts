/**
 * Keys and equality for hook results. A hook re-subscribes when its query's
 * content changes, not its identity (an inline `{ collection: 'events' }` is a
 * new object on every render), and publishes a result only when it differs.
 */
import { canonicalJson, type Version } from '@syncline/core/internal';
import type { Query, Row, SyncStatus } from '@syncline/client';

/** Canonical text of a query: same content, same key, whatever the property order. */
export function queryKey(query: Query): string {
  return stableKey(query);
}

function stableKey(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableKey).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      // An option given as undefined means the same as one left out.
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableKey(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

export function sameRow(a: Row | undefined, b: Row | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return a.id === b.id && a.space === b.space && canonicalJson(a.value) === canonicalJson(b.value);
}

export function sameRows(a: readonly Row[], b: readonly Row[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  return a.every((row, i) => sameRow(row, b[i]));
}

/** A version is named by its dot (replica, seq): one dot never has two values. */
export function sameVersions(a: readonly Version[], b: readonly Version[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  return a.every((v, i) => v.replica === b[i]?.replica && v.seq === b[i]?.seq);
}

export function sameStatus(a: SyncStatus | undefined, b: SyncStatus | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return (
    a.state === b.state &&
    a.pending === b.pending &&
    a.lastSyncedAt === b.lastSyncedAt &&
    a.clockOffset === b.clockOffset &&
    a.bootstrap?.space === b.bootstrap?.space &&
    a.bootstrap?.received === b.bootstrap?.received &&
    a.bootstrap?.total === b.bootstrap?.total &&
    a.error?.code === b.error?.code &&
    a.error?.message === b.error?.message &&
    a.error?.space === b.error?.space &&
    a.error?.fatal === b.error?.fatal
  );
}

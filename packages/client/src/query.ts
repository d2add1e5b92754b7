/**
 * Queries: equality on a prefix of an index's fields, an optional range on the
 * next field, order, limit, offset or a cursor. Runs on the storage's ordered
 * index, so results come back in index order without sorting in memory.
 */
import type { Fields, SpaceId } from '@syncline/core/internal';
import { ReplicaError } from './errors.js';
import type { CollectionDef, Schema } from './schema.js';
import { compareKeys, isKeyPart, MAX_KEY, type Key, type KeyRange } from './storage/keys.js';
import type { Direction, StorageTx, StoredRecord } from './storage/types.js';
import type { CollectionName, IndexName } from './typed.js';

/** A value of an index field in a query (`eq`, `range`): a number (not NaN) or a string; anything else is a ReplicaError `invalid_argument`. */
export type KeyPart = number | string;

/**
 * A range on the index field after the `eq` fields, in index key order
 * (numbers before strings). A bound left out leaves that side open; with both
 * `gt` and `gte` given, `gt` is used, and `lt` over `lte`. A bound when the
 * `eq` fields leave no index field is a ReplicaError `invalid_argument`.
 */
export interface Range {
  /** Values greater than this. */
  readonly gt?: KeyPart;
  /** Values greater than or equal to this. */
  readonly gte?: KeyPart;
  /** Values less than this. */
  readonly lt?: KeyPart;
  /** Values less than or equal to this. */
  readonly lte?: KeyPart;
}

/**
 * A query on one collection: equality on the first fields of an index, a range
 * on the next one, order, paging. Typed by the schema: `collection` must be one
 * of its collections and `index` one of that collection's indexes.
 */
export interface Query<S extends Schema = Schema, C extends CollectionName<S> = CollectionName<S>> {
  /** The collection to read. */
  readonly collection: C;
  /** Index to read; without one, records come in id order. */
  readonly index?: IndexName<S, C>;
  /** Values for the first fields of the index, in order. */
  readonly eq?: readonly KeyPart[];
  /** A range on the index field after the `eq` fields. */
  readonly range?: Range;
  /** 'asc' (default) or 'desc', in index order (id order without an index). */
  readonly order?: Direction;
  /** Most rows to return. Default: all. */
  readonly limit?: number;
  /** Rows to skip first. Default 0. */
  readonly offset?: number;
  /** Continue after this cursor (from a previous page's `cursor`). */
  readonly after?: Cursor;
  /** Only records of this space. */
  readonly space?: string;
}

/** An opaque position in a query's order: the index key of the last row seen. */
export type Cursor = readonly Key[] | string;

/** A record as reads return it. */
export interface Row<T = Fields> {
  /** The record's id. */
  readonly id: string;
  /** The space it lives in. */
  readonly space: SpaceId;
  /** Its visible value (for a merge record with siblings: the resolved one). */
  readonly value: T;
  /** Position of this row, to pass as `after` for the next page. */
  readonly cursor: Cursor;
}

export function collectionOf(collections: ReadonlyMap<string, CollectionDef>, name: string): CollectionDef {
  const def = collections.get(name);
  if (!def) throw new ReplicaError('unknown_collection', `collection "${name}" is not in the schema; declare it in createReplica({ schema })`);
  return def;
}

function checkPart(value: unknown, what: string): KeyPart {
  if (!isKeyPart(value)) throw new ReplicaError('invalid_argument', `${what} must be a number or a string`);
  return value;
}

export function toRow(record: StoredRecord, cursor: Cursor): Row {
  return { id: record.id, space: record.space, value: record.value as Fields, cursor };
}

/** Index range for a query on `index`, honouring eq, range and cursor. */
function indexRange(query: Query, number: number, fieldCount: number): KeyRange {
  const eq = (query.eq ?? []).map((v, i) => checkPart(v, `eq[${i}]`));
  if (eq.length > fieldCount) throw new ReplicaError('invalid_argument', `eq has ${eq.length} values but the index has ${fieldCount} fields`);
  const prefix: Key[] = [number, ...eq];
  const r = query.range ?? {};
  let lower: Key = prefix;
  let lowerOpen = false;
  let upper: Key = [...prefix, MAX_KEY];
  let upperOpen = false;
  if (r.gt !== undefined || r.gte !== undefined || r.lt !== undefined || r.lte !== undefined) {
    if (eq.length >= fieldCount) throw new ReplicaError('invalid_argument', 'range needs an index field after the eq fields');
    if (r.gte !== undefined) lower = [...prefix, checkPart(r.gte, 'range.gte')];
    if (r.gt !== undefined) {
      lower = [...prefix, checkPart(r.gt, 'range.gt'), MAX_KEY];
      lowerOpen = true;
    }
    if (r.lte !== undefined) upper = [...prefix, checkPart(r.lte, 'range.lte'), MAX_KEY];
    if (r.lt !== undefined) {
      upper = [...prefix, checkPart(r.lt, 'range.lt')];
      upperOpen = true;
    }
  }
  if (query.after !== undefined) {
    if (!Array.isArray(query.after)) throw new ReplicaError('invalid_argument', 'after: this cursor belongs to another index');
    const after = query.after as Key;
    if (query.order === 'desc') {
      upper = after;
      upperOpen = true;
    } else {
      lower = after;
      lowerOpen = true;
    }
  }
  return { lower, upper, lowerOpen, upperOpen };
}

function checkPaging(query: Query): void {
  for (const k of ['limit', 'offset'] as const) {
    const v = query[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new ReplicaError('invalid_argument', `${k} must be a non-negative integer`);
  }
}

export async function runQuery(tx: StorageTx, def: CollectionDef, query: Query): Promise<Row[]> {
  checkPaging(query);
  if (query.index === undefined) {
    if (query.eq !== undefined || query.range !== undefined) throw new ReplicaError('invalid_argument', 'eq and range need an index');
    const records = await tx.scanRecords(def.name, { direction: query.order ?? 'asc', ...(query.space !== undefined ? { space: query.space as SpaceId } : {}) });
    const live = records.filter((r) => r.value !== undefined);
    let start = 0;
    if (query.after !== undefined) {
      if (typeof query.after !== 'string') throw new ReplicaError('invalid_argument', 'after: this cursor belongs to an index query');
      // Position by key, not by finding the cursor's row: that row may have been deleted
      // since (paging would start over). Space ids never contain \u0000, ids may.
      const cut = query.after.lastIndexOf('\u0000');
      if (cut < 0) throw new ReplicaError('invalid_argument', 'after: not a cursor of this query');
      const after: Key = [query.after.slice(0, cut), query.after.slice(cut + 1)];
      const sign = query.order === 'desc' ? -1 : 1;
      start = live.findIndex((r) => sign * compareKeys([r.id, r.space], after) > 0);
      if (start < 0) start = live.length;
    }
    const offset = start + (query.offset ?? 0);
    const page = live.slice(offset, query.limit === undefined ? undefined : offset + query.limit);
    return page.map((r) => toRow(r, `${r.id}\u0000${r.space}`));
  }
  const index = def.indexes.get(query.index);
  if (!index) throw new ReplicaError('unknown_index', `collection "${def.name}" has no index "${query.index}"; declare it in the schema`);
  const range = indexRange(query, index.number, index.fields.length);
  const needsFilter = query.space !== undefined;
  const records = await tx.scanIndex(range, {
    direction: query.order ?? 'asc',
    limit: needsFilter ? undefined : query.limit,
    offset: needsFilter ? undefined : query.offset,
  });
  const rows: Row[] = [];
  for (const record of records) {
    if (query.space !== undefined && record.space !== query.space) continue;
    const key = record.ix.find((k) => Array.isArray(k) && (k as Key[])[0] === index.number) as Key[];
    rows.push(toRow(record, key));
  }
  if (!needsFilter) return rows;
  const offset = query.offset ?? 0;
  return rows.slice(offset, query.limit === undefined ? undefined : offset + query.limit);
}

export async function countQuery(tx: StorageTx, def: CollectionDef, query: Omit<Query, 'limit' | 'offset' | 'after' | 'order'>): Promise<number> {
  if (query.index === undefined && query.eq === undefined && query.range === undefined) {
    const space = query.space as SpaceId | undefined;
    if (tx.countLive) return tx.countLive(def.name, space);
    const records = await tx.scanRecords(def.name, space === undefined ? {} : { space });
    return records.filter((r) => r.value !== undefined).length;
  }
  if (query.index !== undefined && query.space === undefined) {
    const index = def.indexes.get(query.index);
    if (!index) throw new ReplicaError('unknown_index', `collection "${def.name}" has no index "${query.index}"`);
    return tx.countIndex(indexRange(query, index.number, index.fields.length));
  }
  return (await runQuery(tx, def, query)).length;
}

/**
 * Record states, as the server stores them and as snapshots carry them.
 *
 * The compact form exists because a record written by one put is most records:
 * its cleared, touched and every field's HLC are the same timestamp, and
 * writing it once per field made a snapshot three times the size of the records'
 * JSON. A record state is `[lww, merge, crdt]` (trailing nulls dropped), and its
 * lww part is
 *
 *   [touched, fields]                                  cleared = touched, no delete,
 *                                                      every field set at touched
 *   [touched, fields, cleared, deleted, groups]        anything else
 *
 * where `fields` are the fields set at `touched` (a plain JSON object, so user
 * keys stay data) and `groups` are `[hlc, setFields, unsetNames?]` for the
 * fields stamped at other times. A snapshot chunk also carries a clock table
 * (a base wall time and the replicas its lww timestamps name), so that each
 * timestamp travels as one integer instead of a 40-character string.
 *
 * The server's store may still hold states in the first, object form
 * (`{lww?, merge?, crdt?}`, one HLC per field): they are read as before.
 */
import { CRDT_TYPES } from '../change.js';
import type { CrdtField } from '../crdt.js';
import { formatTimestamp, isHlcString, MAX_WALL, type HlcString } from '../hlc.js';
import { isName, type ReplicaId } from '../ids.js';
import { setOwn, type Fields, type Json } from '../json.js';
import { lwwEntries, NO_FIELDS, sortedFields, type LwwField, type LwwState } from '../lww.js';
import type { MergeState, Version } from '../merge.js';
import type { RecordState } from '../record-state.js';
import { hlc, MAX_CHANGES_PER_MESSAGE, name, recordId, replicaId, seq, versionVector } from './common.js';
import { array, bytes, fields, int, invalid, json, nullable, object, oneOf, optional, transform, tuple, type ReadContext, type Schema, type WriteContext } from './schema.js';

/** One record of a snapshot (and of a server's storage): where it is and its whole state. */
export type SnapshotRecord = {
  /** The record's collection. */
  readonly collection: string;
  /** The record's id. */
  readonly id: string;
  /** The record's state: the join of every change applied to it (opaque to apps). */
  readonly state: RecordState;
};

const version: Schema<Version> = object({ replica: replicaId, seq, hlc, value: nullable(fields), context: versionVector });
const mergeState: Schema<MergeState> = object({ seen: versionVector, siblings: array(version) });
const crdtFields: Schema<ReadonlyMap<string, CrdtField>> = transform(
  array(tuple(name, oneOf(CRDT_TYPES), bytes, hlc)),
  'crdtFields',
  (entries) => new Map(entries.map(([n, type, update, touched]): [string, CrdtField] => [n, { type, update, touched }])),
  (m) => [...m].map(([n, f]) => [n, f.type, f.update, f.touched] as [string, (typeof CRDT_TYPES)[number], Uint8Array, HlcString]),
);

// ---- timestamps ------------------------------------------------------------------

/** How a compact state writes and reads its lww timestamps. */
interface HlcCodec {
  read(value: unknown, path: string): HlcString;
  write(value: HlcString): string | number;
}

/** Timestamps as HLC strings (the stored form). */
const hlcStrings: HlcCodec = {
  read: (value, path) => (isHlcString(value) ? value : invalid(path, 'an hlc')),
  write: (value) => value,
};

const COUNTER_SPAN = 0x10000;
const WALL_DIGITS = 12;

/**
 * A snapshot chunk's clock table: a timestamp is the integer
 * `((wall - base) * 65536 + counter) * R + r`, with `r` its replica's index
 * among the table's R replicas. One that would not be a safe integer (a chunk
 * spanning years with many replicas) stays an HLC string.
 */
export class HlcTable implements HlcCodec {
  readonly #numbers = new Map<HlcString, number | HlcString>();
  readonly #index = new Map<string, number>();

  constructor(
    readonly base: number,
    readonly replicas: readonly ReplicaId[],
  ) {
    replicas.forEach((replica, i) => this.#index.set(replica, i));
  }

  /** The table for the lww timestamps of these states. */
  static of(states: Iterable<RecordState>): HlcTable {
    return HlcTable.build((visit) => {
      for (const { lww } of states) {
        if (!lww) continue;
        visit(lww.cleared);
        visit(lww.deleted);
        visit(lww.touched);
        for (const field of lww.fields.values()) visit(field.hlc);
      }
    });
  }

  /** The table for the timestamps `each` visits, and for the `replicas` named besides. */
  static build(each: (visit: (h: HlcString | undefined) => void) => void, named: Iterable<string> = []): HlcTable {
    let base = Infinity;
    const replicas = new Set<string>(named);
    // Fields written together share one string: each distinct timestamp is parsed once.
    let last: HlcString | undefined;
    const visit = (h: HlcString | undefined): void => {
      if (h === undefined || h === last) return;
      last = h;
      const wall = Number.parseInt(h.slice(0, WALL_DIGITS), 16);
      if (wall < base) base = wall;
      replicas.add(h.slice(WALL_DIGITS + 6));
    };
    each(visit);
    // Sorted, so a chunk has one encoding whatever the order its fields were built in.
    return new HlcTable(base === Infinity ? 0 : base, [...replicas].sort() as ReplicaId[]);
  }

  /** The index of a replica of the table (undefined if it has none). */
  indexOf(replica: string): number | undefined {
    return this.#index.get(replica);
  }

  write(value: HlcString): number | HlcString {
    let out = this.#numbers.get(value);
    if (out === undefined) {
      const wall = Number.parseInt(value.slice(0, WALL_DIGITS), 16);
      const counter = Number.parseInt(value.slice(WALL_DIGITS + 1, WALL_DIGITS + 5), 16);
      const r = this.#index.get(value.slice(WALL_DIGITS + 6)) as number;
      const n = ((wall - this.base) * COUNTER_SPAN + counter) * this.replicas.length + r;
      out = Number.isSafeInteger(n) && wall >= this.base ? n : value;
      this.#numbers.set(value, out);
    }
    return out;
  }

  read(value: unknown, path: string): HlcString {
    if (typeof value !== 'number') return hlcStrings.read(value, path);
    const R = this.replicas.length;
    if (!Number.isSafeInteger(value) || value < 0 || R === 0) invalid(path, 'an hlc (string, or an integer of the clock table)');
    const r = value % R;
    const q = (value - r) / R;
    const counter = q % COUNTER_SPAN;
    const wall = this.base + (q - counter) / COUNTER_SPAN;
    if (wall > MAX_WALL) invalid(path, 'an hlc within the clock range');
    return formatTimestamp({ wall, counter, replica: this.replicas[r] as ReplicaId });
  }
}

// ---- clocked bodies ------------------------------------------------------------------

/**
 * The body shared by snapshots and relayed changes: `[base, replicas, [[key, [item, ...]], ...]]`,
 * a clock table and the items in order, consecutive items of one key (collection, space) in a group.
 */
export function readClocked<K, T>(
  value: unknown,
  ctx: ReadContext,
  path: string,
  max: number,
  key: Schema<K>,
  readItem: (item: unknown, key: K, clock: HlcTable, path: string) => T,
): T[] {
  if (!Array.isArray(value) || value.length !== 3) invalid(path, 'a [base, replicas, groups] body');
  const clock = new HlcTable(int(0).read(value[0], ctx, `${path}[0]`), array(replicaId, max).read(value[1], ctx, `${path}[1]`));
  const groups: unknown = value[2];
  if (!Array.isArray(groups)) invalid(`${path}[2]`, 'an array of [key, items] groups');
  const out: T[] = [];
  for (let g = 0; g < groups.length; g++) {
    const group: unknown = groups[g];
    const at = `${path}[2][${g}]`;
    if (!Array.isArray(group) || group.length !== 2 || !Array.isArray(group[1])) invalid(at, 'a [key, items] group');
    const k = key.read(group[0], ctx, `${at}[0]`);
    const items = group[1] as unknown[];
    if (out.length + items.length > max) invalid(at, `at most ${max} items`);
    for (let i = 0; i < items.length; i++) out.push(readItem(items[i], k, clock, `${at}[1][${i}]`));
  }
  return out;
}

export function writeClocked<T, K>(items: readonly T[], clock: HlcTable, keyOf: (item: T) => K, writeItem: (item: T) => unknown[]): unknown[] {
  const groups: Array<[K, unknown[][]]> = [];
  let current: [K, unknown[][]] | undefined;
  for (const item of items) {
    const k = keyOf(item);
    if (current?.[0] !== k) groups.push((current = [k, []]));
    current[1].push(writeItem(item));
  }
  return [clock.base, clock.replicas, groups];
}

// ---- the compact form -----------------------------------------------------------------

const unsetNames = array(name);

function writeLww(state: LwwState, clock: HlcCodec): unknown[] {
  const { touched, cleared, deleted } = state;
  let short = touched !== undefined && cleared === touched && deleted === undefined;
  // A put's fields are written as they are held; a copy only when other fields share their stamp.
  let atTouched: Fields = touched === undefined ? {} : (state.stamped ?? {});
  let copied = touched === undefined || state.stamped === undefined;
  const groups = new Map<HlcString, [Record<string, Json>, string[]]>();
  for (const [field, { hlc: stamp, value }] of state.fields) {
    if (stamp === touched && value !== undefined) {
      if (!copied) {
        atTouched = { ...atTouched };
        copied = true;
      }
      setOwn(atTouched as Record<string, Json>, field, value);
      continue;
    }
    short = false;
    let group = groups.get(stamp);
    if (!group) groups.set(stamp, (group = [{}, []]));
    if (value === undefined) group[1].push(field);
    else setOwn(group[0], field, value);
  }
  const t = touched === undefined ? null : clock.write(touched);
  if (short) return [t, atTouched];
  const rest = [...groups]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([stamp, [set, unset]]) => (unset.length > 0 ? [clock.write(stamp), set, unset] : [clock.write(stamp), set]));
  return [t, atTouched, cleared === undefined ? null : clock.write(cleared), deleted === undefined ? null : clock.write(deleted), rest];
}

function addFields(out: Map<string, LwwField>, stamped: Fields, set: Fields, stamp: HlcString, path: string): void {
  for (const field of Object.keys(set)) {
    if (!isName(field)) invalid(path, 'field names');
    if (out.has(field) || Object.hasOwn(stamped, field)) invalid(path, `one entry per field ("${field}" twice)`);
    out.set(field, { hlc: stamp, value: set[field] as Json });
  }
}

function readLww(value: unknown, ctx: ReadContext, path: string, clock: HlcCodec): LwwState {
  if (!Array.isArray(value) || (value.length !== 2 && value.length !== 5)) invalid(path, 'an lww state: [touched, fields] or [touched, fields, cleared, deleted, groups]');
  const touched = value[0] === null ? undefined : clock.read(value[0], `${path}[0]`);
  const atTouched = fields.read(value[1], ctx, `${path}[1]`);
  const names = Object.keys(atTouched);
  if (touched === undefined && names.length > 0) invalid(`${path}[1]`, 'no fields when touched is null');
  for (const field of names) if (!isName(field)) invalid(`${path}[1]`, 'field names');
  // The fields set at touched stay one object (the decoded one, when its keys are already in order).
  const stamped = names.length === 0 ? undefined : sortedFields(atTouched, true);
  if (value.length === 2) {
    if (touched === undefined) invalid(`${path}[0]`, 'an hlc');
    return { cleared: touched, deleted: undefined, touched, stamped, fields: NO_FIELDS };
  }
  const cleared = value[2] === null ? undefined : clock.read(value[2], `${path}[2]`);
  const deleted = value[3] === null ? undefined : clock.read(value[3], `${path}[3]`);
  const groups: unknown = value[4];
  if (!Array.isArray(groups)) invalid(`${path}[4]`, 'an array of [hlc, fields, unset?] groups');
  const out = new Map<string, LwwField>();
  for (let i = 0; i < groups.length; i++) {
    const group: unknown = groups[i];
    const at = `${path}[4][${i}]`;
    if (!Array.isArray(group) || (group.length !== 2 && group.length !== 3)) invalid(at, 'a [hlc, fields, unset?] group');
    const stamp = clock.read(group[0], `${at}[0]`);
    addFields(out, atTouched, fields.read(group[1], ctx, `${at}[1]`), stamp, `${at}[1]`);
    if (group.length === 3) {
      for (const field of unsetNames.read(group[2], ctx, `${at}[2]`)) {
        if (out.has(field) || Object.hasOwn(atTouched, field)) invalid(`${at}[2]`, `one entry per field ("${field}" twice)`);
        out.set(field, { hlc: stamp, value: undefined });
      }
    }
  }
  return { cleared, deleted, touched, stamped, fields: out.size === 0 ? NO_FIELDS : out };
}

/** [lww, merge, crdt] with trailing nulls dropped. */
function writeState(state: RecordState, ctx: WriteContext, clock: HlcCodec): unknown[] {
  const out = [
    state.lww ? writeLww(state.lww, clock) : null,
    state.merge ? mergeState.write(state.merge, ctx) : null,
    state.crdt ? crdtFields.write(state.crdt, ctx) : null,
  ];
  while (out.length > 0 && out[out.length - 1] === null) out.pop();
  return out;
}

/** Reads the state parts of `value` from index `from` on. */
function readState(value: readonly unknown[], from: number, ctx: ReadContext, path: string, clock: HlcCodec): RecordState {
  if (value.length - from > 3) invalid(path, 'at most three state parts: lww, merge, crdt');
  const part = (i: number): unknown => (from + i < value.length ? value[from + i] : null);
  const out: { lww?: LwwState; merge?: MergeState; crdt?: ReadonlyMap<string, CrdtField> } = {};
  if (part(0) !== null) out.lww = readLww(part(0), ctx, `${path}[${from}]`, clock);
  if (part(1) !== null) out.merge = mergeState.read(part(1), ctx, `${path}[${from + 1}]`);
  if (part(2) !== null) out.crdt = crdtFields.read(part(2), ctx, `${path}[${from + 2}]`);
  return out;
}

// ---- the first (object) form, still read from stores written before ---------------------

const legacyLwwField: Schema<readonly [string, LwwField]> = {
  describe: 'lwwField(name,hlc,json?)',
  identity: false,
  read(value, ctx, path) {
    if (!Array.isArray(value) || (value.length !== 2 && value.length !== 3)) invalid(path, 'a [name, hlc, value?] entry');
    const n = name.read(value[0], ctx, `${path}[0]`);
    const h = hlc.read(value[1], ctx, `${path}[1]`);
    return [n, { hlc: h, value: value.length === 3 ? json.read(value[2], ctx, `${path}[2]`) : undefined }];
  },
  write: ([n, f]) => (f.value === undefined ? [n, f.hlc] : [n, f.hlc, f.value]),
};
const legacyRecordState: Schema<RecordState> = object({
  lww: optional(
    transform(
      object({ cleared: optional(hlc), deleted: optional(hlc), touched: optional(hlc), fields: array(legacyLwwField) }),
      'lwwState',
      (w) => ({ cleared: w.cleared, deleted: w.deleted, touched: w.touched, fields: new Map(w.fields) }),
      (s) => ({ cleared: s.cleared, deleted: s.deleted, touched: s.touched, fields: [...lwwEntries(s)] }),
    ),
  ),
  merge: optional(mergeState),
  crdt: optional(crdtFields),
});

// ---- schemas ------------------------------------------------------------------------

/** A stored record state: written in the compact form, read in either form. */
export const recordState: Schema<RecordState> = {
  describe: `recordState(compact:[lww?,merge:${mergeState.describe}?,crdt:${crdtFields.describe}?]|${legacyRecordState.describe})`,
  identity: false,
  read(value, ctx, path) {
    if (Array.isArray(value)) return readState(value, 0, ctx, path, hlcStrings);
    return legacyRecordState.read(value, ctx, path);
  },
  write: (value, ctx) => writeState(value, ctx, hlcStrings),
};

/**
 * A snapshot chunk's records: `[base, replicas, [[collection, [[id, lww?, merge?, crdt?], ...]], ...]]`,
 * records grouped by collection in their order, lww timestamps as integers of the clock table.
 */
export const snapshotRecords: Schema<SnapshotRecord[]> = {
  describe: `snapshotRecords(base:int,replicas:${replicaId.describe},collection:${name.describe},id:${recordId.describe},${recordState.describe},${MAX_CHANGES_PER_MESSAGE})`,
  identity: false,
  read: (value, ctx, path) =>
    readClocked(value, ctx, path, MAX_CHANGES_PER_MESSAGE, name, (record, collection, clock, where): SnapshotRecord => {
      if (!Array.isArray(record) || record.length === 0) invalid(where, 'an [id, lww?, merge?, crdt?] record');
      return { collection, id: recordId.read(record[0], ctx, `${where}[0]`), state: readState(record, 1, ctx, where, clock) };
    }),
  write(records, ctx) {
    const clock = HlcTable.of(records.map((r) => r.state));
    return writeClocked(records, clock, (r) => r.collection, ({ id, state }) => [id, ...writeState(state, ctx, clock)]);
  },
};

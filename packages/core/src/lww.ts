/**
 * lww policy: every field is a last-writer-wins register ordered by HLC.
 *
 * The state is a product of max-registers, so applying changes is a join
 * (idempotent, commutative, associative):
 *  - `cleared`: latest put or delete; fields stamped earlier are gone for good;
 *  - `deleted`: latest delete; `touched`: latest put or patch. The record
 *    exists when it was touched after its latest delete;
 *  - per field, the write with the highest HLC (value undefined = unset).
 * HLC strings are unique per change, so ties between different writes cannot
 * occur for valid input; a tie is still broken by value so the join stays total.
 *
 * A state holds its fields in two places: `stamped`, the fields set at
 * `touched` as one JSON object with sorted keys (what a put leaves behind, and
 * most records are one put), and `fields`, one entry per other field. Keeping a
 * put's fields as one object, shared with the materialized value, is what makes
 * applying and storing a record cheap; `fields` alone is also a valid state
 * (states stored before `stamped` existed have only it). Read fields through
 * `lwwEntries` and `lwwField`, never through `fields` alone.
 */
import type { DeleteOp, PatchOp, PutOp } from './change.js';
import { maxHlc, type HlcString } from './hlc.js';
import { canonicalJson, setOwn, type Fields, type Json } from './json.js';

/** One lww field register: the write with the highest timestamp. */
export interface LwwField {
  /** The timestamp of the write that set (or unset) the field. */
  readonly hlc: HlcString;
  /** undefined: the field was unset at `hlc`. */
  readonly value: Json | undefined;
}

/** The lww part of a record's state (see the top of lww.ts). Read its fields through `stamped` and `fields` together. */
export interface LwwState {
  /** The latest put or delete: fields stamped before it are gone. */
  readonly cleared: HlcString | undefined;
  /** The latest delete. */
  readonly deleted: HlcString | undefined;
  /** The latest put or patch: the record exists when this is after `deleted`. */
  readonly touched: HlcString | undefined;
  /** Fields set at `touched`, keys sorted; never a name that `fields` also has. Only with `touched`. */
  readonly stamped?: Fields | undefined;
  /** Every other field, by name. */
  readonly fields: ReadonlyMap<string, LwwField>;
}

export const NO_FIELDS: ReadonlyMap<string, LwwField> = new Map();

export const EMPTY_LWW: LwwState = { cleared: undefined, deleted: undefined, touched: undefined, stamped: undefined, fields: NO_FIELDS };

export type LwwOp = PutOp | PatchOp | DeleteOp;

/** Every field of a state with its stamp, `stamped` first. */
export function* lwwEntries(state: LwwState): Generator<[string, LwwField]> {
  const { stamped, touched } = state;
  if (stamped !== undefined && touched !== undefined) for (const name of Object.keys(stamped)) yield [name, { hlc: touched, value: stamped[name] }];
  yield* state.fields;
}

/** One field of a state, with its stamp. */
export function lwwField(state: LwwState, name: string): LwwField | undefined {
  const { stamped, touched } = state;
  if (stamped !== undefined && touched !== undefined && Object.hasOwn(stamped, name)) return { hlc: touched, value: stamped[name] };
  return state.fields.get(name);
}

function wins(candidate: LwwField, current: LwwField | undefined): boolean {
  if (current === undefined || candidate.hlc > current.hlc) return true;
  if (candidate.hlc < current.hlc) return false;
  return valueKey(candidate.value) > valueKey(current.value);
}

function valueKey(value: Json | undefined): string {
  return value === undefined ? '' : canonicalJson(value);
}

/** `fields` with its keys sorted: a copy, or `fields` itself when `mayKeep` and already sorted (`__proto__` stays a key). */
export function sortedFields(fields: Fields, mayKeep = false): Fields {
  const names = Object.keys(fields);
  if (mayKeep && isSorted(names)) return fields;
  sortNames(names);
  const out: Record<string, Json> = {};
  for (const name of names) setOwn(out, name, fields[name] as Json);
  return out;
}

function isSorted(names: readonly string[]): boolean {
  for (let i = 1; i < names.length; i++) if ((names[i - 1] as string) > (names[i] as string)) return false;
  return true;
}

/**
 * Sorts names in place. A record has a handful of fields: insertion sort, which
 * allocates nothing (Array.prototype.sort allocated more than the record itself).
 */
function sortNames(names: string[]): void {
  if (names.length > 32) {
    names.sort();
    return;
  }
  for (let i = 1; i < names.length; i++) {
    const name = names[i] as string;
    let j = i - 1;
    while (j >= 0 && (names[j] as string) > name) {
      names[j + 1] = names[j] as string;
      j--;
    }
    names[j + 1] = name;
  }
}

/** True when `hlc` is later than every stamp of the state. */
function laterThanAll(state: LwwState, hlc: HlcString): boolean {
  const { cleared, deleted, touched } = state;
  if ((cleared !== undefined && cleared >= hlc) || (deleted !== undefined && deleted >= hlc) || (touched !== undefined && touched >= hlc)) return false;
  for (const field of state.fields.values()) if (field.hlc >= hlc) return false;
  return true;
}

export function applyLww(state: LwwState, op: LwwOp, hlc: HlcString): LwwState {
  // The common case: a put later than everything the record holds replaces all of it.
  if (op.op === 'put' && laterThanAll(state, hlc)) {
    // A local put's fields are a sorted, frozen copy already (frozenFieldsCopy): shared, not copied again.
    return { cleared: hlc, deleted: state.deleted, touched: hlc, stamped: sortedFields(op.fields, Object.isFrozen(op.fields)), fields: NO_FIELDS };
  }
  const cleared = op.op === 'patch' ? state.cleared : maxHlc(state.cleared, hlc);
  const deleted = op.op === 'delete' ? maxHlc(state.deleted, hlc) : state.deleted;
  const touched = op.op === 'delete' ? state.touched : maxHlc(state.touched, hlc);
  const fields = new Map<string, LwwField>();
  const { stamped } = state;
  if (stamped !== undefined && state.touched !== undefined && (cleared === undefined || state.touched >= cleared)) {
    for (const name of Object.keys(stamped)) fields.set(name, { hlc: state.touched, value: stamped[name] });
  }
  state.fields.forEach((field, name) => {
    if (cleared === undefined || field.hlc >= cleared) fields.set(name, field);
  });
  if (op.op !== 'delete' && (cleared === undefined || hlc >= cleared)) {
    for (const name of Object.keys(op.fields)) {
      const candidate: LwwField = { hlc, value: op.fields[name] as Json };
      if (wins(candidate, fields.get(name))) fields.set(name, candidate);
    }
    if (op.op === 'patch') {
      for (const name of op.unset) {
        const candidate: LwwField = { hlc, value: undefined };
        if (wins(candidate, fields.get(name))) fields.set(name, candidate);
      }
    }
  }
  return { cleared, deleted, touched, stamped: undefined, fields };
}

/** Join of two states: what applying both histories gives. */
export function joinLww(a: LwwState, b: LwwState): LwwState {
  const cleared = maxHlc(a.cleared, b.cleared);
  const deleted = maxHlc(a.deleted, b.deleted);
  const touched = maxHlc(a.touched, b.touched);
  // One side is all the other has and more (a snapshot's record joined with what a replica already had).
  if (coversAll(b, a, cleared, deleted, touched)) return b;
  if (coversAll(a, b, cleared, deleted, touched)) return a;
  const fields = new Map<string, LwwField>();
  for (const source of [a, b]) {
    for (const [name, field] of lwwEntries(source)) {
      if (cleared !== undefined && field.hlc < cleared) continue;
      if (wins(field, fields.get(name))) fields.set(name, field);
    }
  }
  return { cleared, deleted, touched, stamped: undefined, fields };
}

/**
 * True when `x` is one put's state (everything at `touched`, cleared then too)
 * holding the join's stamps, and every field of `y` was stamped before it:
 * the join is `x` itself.
 */
function coversAll(x: LwwState, y: LwwState, cleared: HlcString | undefined, deleted: HlcString | undefined, touched: HlcString | undefined): boolean {
  if (x.stamped === undefined || x.fields.size > 0 || x.touched === undefined || x.cleared !== x.touched) return false;
  if (x.cleared !== cleared || x.deleted !== deleted || x.touched !== touched) return false;
  if (y.stamped !== undefined && y.touched !== undefined && y.touched >= x.touched && Object.keys(y.stamped).length > 0) return false;
  for (const field of y.fields.values()) if (field.hlc >= x.touched) return false;
  return true;
}

/** The delete that hides the record, or undefined when it is live (or never written). */
export function lwwDeletedAt(state: LwwState): HlcString | undefined {
  if (state.deleted === undefined) return undefined;
  return state.touched !== undefined && state.touched > state.deleted ? undefined : state.deleted;
}

/**
 * The visible fields, keys sorted. A state that is one put's fields returns
 * its `stamped` object itself: the value and the state share it.
 */
export function lwwFields(state: LwwState): Fields {
  if (state.fields.size === 0) return state.stamped ?? {};
  const out: Record<string, Json> = {};
  const names = [...state.fields.keys()];
  if (state.stamped !== undefined) names.push(...Object.keys(state.stamped));
  sortNames(names);
  for (const name of names) {
    const field = lwwField(state, name) as LwwField;
    if (field.value !== undefined) setOwn(out, name, field.value);
  }
  return out;
}

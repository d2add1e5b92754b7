/**
 * lww policy: every field is a last-writer-wins register ordered by HLC.
 *
 * The state is a product of max-registers, so applying changes is a join
 * (idempotent, commutative, associative):
 *  - `cleared`: latest put or delete; fields stamped earlier are gone for good;
 *  - `deleted`: latest delete; `touched`: latest put or patch. The record
 *    exists when it was touched after its latest delete;
 *  - `fields`: per field, the write with the highest HLC (value undefined = unset).
 * HLC strings are unique per change, so ties between different writes cannot
 * occur for valid input; a tie is still broken by value so the join stays total.
 */
import type { DeleteOp, PatchOp, PutOp } from './change.js';
import { maxHlc, type HlcString } from './hlc.js';
import { canonicalJson, setOwn, type Fields, type Json } from './json.js';

export interface LwwField {
  readonly hlc: HlcString;
  /** undefined: the field was unset at `hlc`. */
  readonly value: Json | undefined;
}

export interface LwwState {
  readonly cleared: HlcString | undefined;
  readonly deleted: HlcString | undefined;
  readonly touched: HlcString | undefined;
  readonly fields: ReadonlyMap<string, LwwField>;
}

export const EMPTY_LWW: LwwState = { cleared: undefined, deleted: undefined, touched: undefined, fields: new Map() };

export type LwwOp = PutOp | PatchOp | DeleteOp;

function wins(candidate: LwwField, current: LwwField | undefined): boolean {
  if (current === undefined || candidate.hlc > current.hlc) return true;
  if (candidate.hlc < current.hlc) return false;
  return valueKey(candidate.value) > valueKey(current.value);
}

function valueKey(value: Json | undefined): string {
  return value === undefined ? '' : canonicalJson(value);
}

export function applyLww(state: LwwState, op: LwwOp, hlc: HlcString): LwwState {
  const cleared = op.op === 'patch' ? state.cleared : maxHlc(state.cleared, hlc);
  const deleted = op.op === 'delete' ? maxHlc(state.deleted, hlc) : state.deleted;
  const touched = op.op === 'delete' ? state.touched : maxHlc(state.touched, hlc);
  const fields = new Map<string, LwwField>();
  for (const [name, field] of state.fields) if (cleared === undefined || field.hlc >= cleared) fields.set(name, field);
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
  return { cleared, deleted, touched, fields };
}

/** Join of two states: what applying both histories gives. */
export function joinLww(a: LwwState, b: LwwState): LwwState {
  const cleared = maxHlc(a.cleared, b.cleared);
  const fields = new Map<string, LwwField>();
  for (const source of [a.fields, b.fields]) {
    for (const [name, field] of source) {
      if (cleared !== undefined && field.hlc < cleared) continue;
      if (wins(field, fields.get(name))) fields.set(name, field);
    }
  }
  return { cleared, deleted: maxHlc(a.deleted, b.deleted), touched: maxHlc(a.touched, b.touched), fields };
}

/** The delete that hides the record, or undefined when it is live (or never written). */
export function lwwDeletedAt(state: LwwState): HlcString | undefined {
  if (state.deleted === undefined) return undefined;
  return state.touched !== undefined && state.touched > state.deleted ? undefined : state.deleted;
}

export function lwwFields(state: LwwState): Fields {
  const out: Record<string, Json> = {};
  for (const name of [...state.fields.keys()].sort()) {
    const field = state.fields.get(name) as LwwField;
    if (field.value !== undefined) setOwn(out, name, field.value);
  }
  return out;
}

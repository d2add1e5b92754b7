/**
 * The timestamps inside a record state: the latest one (a replica receives it
 * into its clock, so its next write is ordered after everything it holds), and
 * re-stamping (renaming some timestamps to others).
 *
 * Re-stamping is how a replica repairs writes its wrong clock stamped far
 * ahead before anyone else saw them. A state is a join of max-registers over
 * HLCs (lww fields, cleared, deleted, touched; merge versions ordered by HLC;
 * crdt touched), so renaming timestamps by a map that is strictly increasing
 * on every timestamp the state holds gives exactly the state that applying the
 * renamed changes would have given. The caller keeps that precondition.
 */
import type { CrdtField } from './crdt.js';
import { maxHlc, type HlcString } from './hlc.js';
import type { LwwField, LwwState } from './lww.js';
import { compareVersions, type MergeState, type Version } from './merge.js';
import type { RecordState } from './record-state.js';

/** The latest timestamp a state holds, or undefined for an empty state. */
export function latestStamp(state: RecordState): HlcString | undefined {
  let latest: HlcString | undefined;
  const { lww, merge, crdt } = state;
  if (lww) {
    latest = maxHlc(maxHlc(maxHlc(latest, lww.cleared), lww.deleted), lww.touched);
    for (const field of lww.fields.values()) latest = maxHlc(latest, field.hlc);
  }
  if (merge) for (const version of merge.siblings) latest = maxHlc(latest, version.hlc);
  if (crdt) for (const field of crdt.values()) latest = maxHlc(latest, field.touched);
  return latest;
}

/**
 * The stability horizon at which a record state can be dropped whole, or
 * undefined when it never can (DESIGN.md, "Stability and bounded growth").
 *
 * A record with lww fields only that is deleted (its latest delete is at or
 * after its latest put or patch) holds no field: every field is stamped before
 * the delete, which cleared it. Once every change that can still arrive is
 * stamped after the state's latest stamp (the horizon passed it), applying
 * those changes to this state or to no state at all gives the same visible
 * record: every stamp they carry beats every stamp the state holds. So the
 * record can be forgotten, and returns that latest stamp.
 *
 * Merge records are not collected by the timestamp horizon: whether a later
 * version supersedes a deleted one depends on what its writer had seen (its
 * causal context), not on when it was stamped, so dropping the delete could
 * change a sibling set. Crdt fields keep Yjs's own garbage collection, and a
 * record delete hides crdt fields edited before it, so such records stay too.
 */
export function collectibleAt(state: RecordState): HlcString | undefined {
  const { lww } = state;
  if (!lww || state.merge || state.crdt || lww.deleted === undefined) return undefined;
  if (lww.touched !== undefined && lww.touched > lww.deleted) return undefined;
  return latestStamp(state);
}

/**
 * What a replica that forgot this record at `horizon` (collectibleAt) holds of
 * it once the rest of `state` reaches it: the lww registers stamped after the
 * horizon (its merge and crdt parts, which are never collected, as they are).
 * Undefined when nothing is left. A region merging a peer's state uses it for
 * a record it does not hold: every change stamped at or below its horizon has
 * reached it, so such a record was collected there, and the peer's older
 * registers must not bring it back (server README, "Bounded growth").
 */
export function afterHorizon(state: RecordState, horizon: HlcString): RecordState | undefined {
  const { lww } = state;
  let next: LwwState | undefined;
  if (lww) {
    const after = (hlc: HlcString | undefined): HlcString | undefined => (hlc !== undefined && hlc > horizon ? hlc : undefined);
    const fields = new Map<string, LwwField>();
    for (const [name, field] of lww.fields) if (field.hlc > horizon) fields.set(name, field);
    const touched = after(lww.touched);
    const cleared = after(lww.cleared);
    const deleted = after(lww.deleted);
    if (touched !== undefined || cleared !== undefined || deleted !== undefined || fields.size > 0) {
      next = { cleared, deleted, touched, stamped: touched === undefined ? undefined : lww.stamped, fields: fields.size === lww.fields.size ? lww.fields : fields };
    }
  }
  if (next === undefined && state.merge === undefined && state.crdt === undefined) return undefined;
  const out: { lww?: LwwState; merge?: MergeState; crdt?: ReadonlyMap<string, CrdtField> } = {};
  if (next) out.lww = next;
  if (state.merge) out.merge = state.merge;
  if (state.crdt) out.crdt = state.crdt;
  return out;
}

/**
 * `state` with every timestamp that `renames` maps replaced by its new name.
 * Returns `state` itself when it holds none of them.
 */
export function restampState(state: RecordState, renames: ReadonlyMap<HlcString, HlcString>): RecordState {
  const rename = <T extends HlcString | undefined>(hlc: T): T => (hlc === undefined ? hlc : ((renames.get(hlc) ?? hlc) as T));
  let changed = false;
  const out: { lww?: LwwState; merge?: MergeState; crdt?: ReadonlyMap<string, CrdtField> } = {};
  if (state.lww) {
    const lww = state.lww;
    const fields = new Map<string, LwwField>();
    let fieldsChanged = false;
    lww.fields.forEach((field, name) => {
      const hlc = rename(field.hlc);
      if (hlc !== field.hlc) fieldsChanged = true;
      fields.set(name, hlc === field.hlc ? field : { hlc, value: field.value });
    });
    const next: LwwState = { cleared: rename(lww.cleared), deleted: rename(lww.deleted), touched: rename(lww.touched), stamped: lww.stamped, fields: fieldsChanged ? fields : lww.fields };
    const same = !fieldsChanged && next.cleared === lww.cleared && next.deleted === lww.deleted && next.touched === lww.touched;
    out.lww = same ? lww : next;
    changed ||= !same;
  }
  if (state.merge) {
    const merge = state.merge;
    const siblings = merge.siblings.map((v) => (renames.has(v.hlc) ? { ...v, hlc: rename(v.hlc) } : v));
    const same = siblings.every((v, i) => v === merge.siblings[i]);
    // Siblings are kept in HLC order; a renaming that is not order-preserving (horizon.ts) reorders them
    // (a state whose siblings were out of order to begin with is left as it was).
    const ordered = merge.siblings.every((v, i) => i === 0 || compareVersions(merge.siblings[i - 1] as Version, v) <= 0);
    if (!same && ordered) siblings.sort(compareVersions);
    out.merge = same ? merge : { seen: merge.seen, siblings };
    changed ||= !same;
  }
  if (state.crdt) {
    const crdt = new Map<string, CrdtField>();
    let same = true;
    for (const [name, field] of state.crdt) {
      const touched = rename(field.touched);
      if (touched !== field.touched) same = false;
      crdt.set(name, touched === field.touched ? field : { ...field, touched });
    }
    out.crdt = same ? state.crdt : crdt;
    changed ||= !same;
  }
  return changed ? out : state;
}

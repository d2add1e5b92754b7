/**
 * Undo and redo of this replica's own writes, as new writes.
 *
 * A step is what one write call committed (`put`, `patch`, `delete`, `batch`),
 * or consecutive edits of one crdt field within `captureMs` of each other. To
 * undo a step, each field it wrote goes back to the value it had before the
 * step, unless another write has set that field since (another replica's, or a
 * later one of this replica's): then the field is left alone. Whether a field is
 * still the step's is told by its lww stamp, read in the same storage
 * transaction as the undo writes, so a remote write that lands first is never
 * overwritten. A record the step created is deleted again when nothing else
 * was written to it since; a record it deleted comes back with the fields that
 * nobody wrote since. A merge-policy record is set back to its value before the
 * step only while the step's version is its one current version (no sibling, not
 * superseded). Crdt (Yjs) fields use Yjs's own UndoManager, which tracks only
 * this replica's edits of the open document.
 *
 * Undoing a step makes a redo step (the undo's own writes, undone the same way);
 * a new write clears the redo steps.
 */
import {
  lwwDeletedAt,
  lwwEntries,
  lwwField,
  materialize,
  type Change,
  type Fields,
  type HlcString,
  type Json,
  type LwwState,
  type RecordState,
  type SpaceId,
} from '@syncline/core/internal';
import type * as Y from 'yjs';
import type { CollectionDef } from './schema.js';
import type { WriteOp } from './write.js';

/** What one record looked like before a step, and which of its fields the step wrote last at which stamp. */
export interface RecordUndo {
  readonly collection: string;
  readonly id: string;
  readonly space: SpaceId;
  /** The record existed (had a value) before the step. */
  readonly existed: boolean;
  /** Its visible fields before the step (crdt fields left out). */
  readonly before: Fields;
  /** Its crdt fields that had a value before the step: undoing the step's delete shows them again. */
  readonly crdtBefore: readonly string[];
  /** lww: per field the step wrote (set, unset, or cleared by a put or delete), the stamp of its last write of it. */
  readonly fields: Map<string, HlcString>;
  /** lww: per field in `fields`, its stamp before the step. */
  readonly beforeStamps: Map<string, Stamp>;
  /** The stamp of the step's last write of the record (merge: of its version). */
  last: HlcString;
  /** merge: the stamp of the record's one current version before the step, if it had exactly one. */
  readonly beforeLast: HlcString | undefined;
  /** lww: the stamp of the step's last put or patch of the record (what makes it exist), if any. */
  touch: HlcString | undefined;
  /** lww: the record's latest put or patch before the step. */
  readonly beforeTouch: HlcString | undefined;
  /** lww: the stamp of the step's last put or delete of the record (which clears every field), if any. */
  clears: HlcString | undefined;
  /** lww: the record's latest put or delete before the step. */
  readonly beforeCleared: HlcString | undefined;
}

/**
 * The stamp of a field's last write: a register's, or (`clear`) the put or
 * delete that cleared it; undefined when nothing ever wrote it.
 */
export interface Stamp {
  readonly hlc: HlcString | undefined;
  readonly clear: boolean;
}

/** Keys of History's stand-ins besides field names: a record's clear, touch and merge version. */
const CLEAR = '\u0000clear';
const TOUCH = '\u0000touch';
const VERSION = '\u0000version';

export type UndoStep = { readonly kind: 'records'; readonly records: readonly RecordUndo[] } | { readonly kind: 'crdt'; readonly manager: Y.UndoManager };

/** Options of a replica's undo history (ReplicaOptions.undo). */
export interface UndoOptions {
  /** How many steps are kept (the oldest are dropped); default 100, 0 turns undo off. */
  readonly limit?: number;
  /** Edits of one crdt field less than this many ms apart are one step; default 500. */
  readonly captureMs?: number;
}

/** What a replica's `history` shows of its undo and redo steps. */
export interface UndoHistory {
  /** True when undo() has a step to undo. */
  readonly canUndo: boolean;
  /** True when redo() has a step to redo. */
  readonly canRedo: boolean;
  /** Calls `listener` whenever canUndo or canRedo may have changed; returns unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** Forgets every undo and redo step. */
  clear(): void;
}

export const DEFAULT_UNDO_LIMIT = 100;
export const DEFAULT_CAPTURE_MS = 500;

/** The undo and redo stacks (the replica runs the writes). */
export class History implements UndoHistory {
  readonly #undo: UndoStep[] = [];
  readonly #redo: UndoStep[] = [];
  readonly #listeners = new Set<() => void>();
  /**
   * What undos and redos wrote stands for what they restored: per stamp they
   * wrote and per field (or CLEAR, TOUCH, VERSION), the stamp of the state they
   * gave back. An older step finds its own writes through them: the replica's
   * own undo is not "another write since". A put or delete also clears fields
   * that were absent already, and an undo cannot move a record's clear back, so
   * the clear of an undone step stands for the clear before it.
   */
  readonly #stands = new Map<string, Stamp>();

  constructor(readonly limit: number) {}

  /** `hlc` (written by an undo or redo, or a step's clear that one undid) stands for `before` as to `what`. */
  standsFor(hlc: HlcString, what: string, before: Stamp): void {
    if (this.limit > 0) this.#stands.set(`${hlc}\u0001${what}`, before);
  }

  /**
   * True when `stamp` is `mine`, or stands for it (as to `what`: a field name,
   * TOUCH or VERSION) through undos and redos: what `mine` wrote is still there,
   * restored by this replica if at all. A stamp of another replica's write
   * stands for nothing, so it never is.
   */
  owns(stamp: Stamp, what: string, mine: HlcString): boolean {
    let { hlc, clear } = stamp;
    for (let hops = 0; hlc !== undefined && hops < 100_000; hops++) {
      if (hlc === mine) return true;
      const next = this.#stands.get(`${hlc}\u0001${what}`) ?? (clear ? this.#stands.get(`${hlc}\u0001${CLEAR}`) : undefined);
      if (next === undefined) return false;
      ({ hlc, clear } = next);
    }
    return false;
  }

  /**
   * An undo or redo of `step` wrote `changes`: each stands for what it gave
   * back, and each clear the step undid for the clear before it.
   */
  unwound(step: { readonly records: readonly RecordUndo[] }, changes: readonly Change[]): void {
    for (const entry of step.records) if (entry.clears !== undefined) this.standsFor(entry.clears, CLEAR, { hlc: entry.beforeCleared, clear: true });
    for (const change of changes) {
      const entry = step.records.find((e) => e.collection === change.collection && e.id === change.id && e.space === change.space);
      if (!entry) continue;
      if (change.op === 'version') {
        this.standsFor(change.hlc, VERSION, { hlc: entry.beforeLast, clear: false });
        continue;
      }
      for (const [field, before] of entry.beforeStamps) if (fieldWritten(change, field)) this.standsFor(change.hlc, field, before);
      if (change.op === 'put' || change.op === 'patch') this.standsFor(change.hlc, TOUCH, { hlc: entry.beforeTouch, clear: false });
      if (change.op === 'delete') this.standsFor(change.hlc, CLEAR, { hlc: entry.beforeCleared, clear: true });
    }
  }

  get canUndo(): boolean {
    return this.#undo.length > 0;
  }

  get canRedo(): boolean {
    return this.#redo.length > 0;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  clear(): void {
    this.#undo.length = 0;
    this.#redo.length = 0;
    this.#stands.clear();
    this.#changed();
  }

  /** A new step of the app's own (not an undo or redo): redo steps are gone. */
  record(step: UndoStep): void {
    this.#redo.length = 0;
    this.#push(this.#undo, step);
  }

  popUndo(): UndoStep | undefined {
    const step = this.#undo.pop();
    if (step) this.#changed();
    return step;
  }

  popRedo(): UndoStep | undefined {
    const step = this.#redo.pop();
    if (step) this.#changed();
    return step;
  }

  /** What undoing a step wrote: a step of the other stack. */
  pushUndo(step: UndoStep): void {
    this.#push(this.#undo, step);
  }

  pushRedo(step: UndoStep): void {
    this.#push(this.#redo, step);
  }

  #push(stack: UndoStep[], step: UndoStep): void {
    if (this.limit <= 0) return;
    stack.push(step);
    if (stack.length > this.limit) stack.splice(0, stack.length - this.limit);
    this.#changed();
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

/**
 * The step made by committed changes, given each one's record state before it
 * (`before`, in change order: a record written twice keeps its first state).
 */
export function stepOf(changes: readonly Change[], before: (change: Change) => RecordState | undefined, defOf: (collection: string) => CollectionDef | undefined): UndoStep | undefined {
  const records = new Map<string, RecordUndo & { beforeLww: LwwState | undefined }>();
  for (const change of changes) {
    if (change.op === 'crdt') continue;
    const key = JSON.stringify([change.collection, change.id, change.space]);
    let entry = records.get(key);
    if (!entry) {
      const state = before(change);
      const view = materialize(state, { resolve: defOf(change.collection)?.resolve });
      const crdt = defOf(change.collection)?.crdt;
      const visible: Record<string, Json> = {};
      const crdtBefore: string[] = [];
      for (const [name, value] of Object.entries(view.value ?? {})) {
        if (crdt?.has(name)) crdtBefore.push(name);
        else Object.defineProperty(visible, name, { value, enumerable: true, writable: true, configurable: true });
      }
      const siblings = state?.merge?.siblings ?? [];
      entry = {
        collection: change.collection, id: change.id, space: change.space, existed: view.exists, before: visible, crdtBefore, fields: new Map(), beforeStamps: new Map(),
        last: change.hlc, beforeLast: siblings.length === 1 ? siblings[0]?.hlc : undefined, touch: undefined, beforeTouch: state?.lww?.touched,
        clears: undefined, beforeCleared: state?.lww?.cleared, beforeLww: state?.lww,
      };
      records.set(key, entry);
    }
    entry.last = change.hlc;
    if (change.op === 'put' || change.op === 'patch') entry.touch = change.hlc;
    if (change.op === 'put' || change.op === 'delete') entry.clears = change.hlc;
    const names: string[] = [];
    // A put or delete writes every field the record had a register for (unset ones too): their stamps
    // before it are what an undo gives back.
    const registers = (): string[] => (entry.beforeLww ? [...lwwEntries(entry.beforeLww)].map(([name]) => name) : []);
    switch (change.op) {
      case 'put':
        names.push(...Object.keys(entry.before), ...registers(), ...Object.keys(change.fields));
        break;
      case 'patch':
        names.push(...Object.keys(change.fields), ...change.unset);
        break;
      case 'delete':
        names.push(...Object.keys(entry.before), ...registers());
        break;
      case 'version':
        break;
    }
    for (const name of names) {
      if (!entry.beforeStamps.has(name)) entry.beforeStamps.set(name, fieldStamp(entry.beforeLww, name));
      entry.fields.set(name, change.hlc);
    }
  }
  return records.size > 0 ? { kind: 'records', records: [...records.values()].map(({ beforeLww: _, ...entry }) => entry) } : undefined;
}

/** True when `change` (lww) wrote field `name`: set or unset it, or cleared it (a put or delete). */
export function fieldWritten(change: Change, name: string): boolean {
  switch (change.op) {
    case 'put':
    case 'delete':
      return true;
    case 'patch':
      return Object.hasOwn(change.fields, name) || change.unset.includes(name);
    default:
      return false;
  }
}

/** The stamp of a field's last write in a state (Stamp). */
function fieldStamp(lww: LwwState | undefined, name: string): Stamp {
  if (!lww) return { hlc: undefined, clear: false };
  const field = lwwField(lww, name);
  if (field && (lww.cleared === undefined || field.hlc > lww.cleared)) return { hlc: field.hlc, clear: false };
  return { hlc: lww.cleared, clear: true };
}

/** A Yjs update that changes nothing: written to a crdt field, it stamps the field after a delete, so its content shows again. */
const EMPTY_UPDATE = new Uint8Array([0, 0]);

/**
 * The writes that undo `entry` given the record's state now (`current`): none
 * when nothing of it is still the step's.
 */
export function revertOps(entry: RecordUndo, current: RecordState | undefined, def: CollectionDef, history: History): WriteOp[] {
  const target = { collection: entry.collection, id: entry.id, space: entry.space };
  if (def.policy === 'merge') {
    const siblings = current?.merge?.siblings ?? [];
    if (siblings.length !== 1 || !history.owns({ hlc: siblings[0]?.hlc, clear: false }, VERSION, entry.last)) return [];
    return [entry.existed ? { kind: 'put', ...target, value: entry.before } : { kind: 'delete', ...target }];
  }
  const lww = current?.lww;
  const mine = [...entry.fields].filter(([name, hlc]) => history.owns(fieldStamp(lww, name), name, hlc)).map(([name]) => name);
  const touchedLast = entry.touch !== undefined && history.owns({ hlc: lww?.touched, clear: false }, TOUCH, entry.touch);
  const view = materialize(current, { resolve: def.resolve });
  const patch: Record<string, Json | undefined> = {};
  for (const name of mine) Object.defineProperty(patch, name, { value: entry.before[name], enumerable: true, writable: true, configurable: true });
  const patchOp: WriteOp = { kind: 'patch', ...target, patch };
  if (!entry.existed) {
    // Created by the step: deleted again when every field it has now is the step's (and the step wrote
    // some of them, or touched the record last: a put of no fields).
    if (!view.exists) return [];
    const others = Object.keys(view.value ?? {}).some((name) => !def.crdt.has(name) && !mine.includes(name));
    if (!others && (mine.length > 0 || touchedLast)) return [{ kind: 'delete', ...target }];
    return mine.length > 0 ? [patchOp] : [];
  }
  if (!view.exists) {
    // Gone now: back with its fields when the step's delete is what hides it, left alone when another did.
    if (!lww || lwwDeletedAt(lww) !== entry.last) return [];
    // Its crdt fields (notes) were hidden by the delete, not changed: a write that changes nothing shows them again.
    const crdt = entry.crdtBefore.flatMap((field): WriteOp[] => {
      const type = def.crdt.get(field);
      return type ? [{ kind: 'crdt', ...target, field, type, update: EMPTY_UPDATE }] : [];
    });
    return [patchOp, ...crdt];
  }
  // A put or patch of nothing new still made the record's latest touch: an empty patch takes it over, so
  // that undoing the step before (which may have created the record) finds it as that step left it.
  if (mine.length === 0 && !touchedLast) return [];
  return [patchOp];
}

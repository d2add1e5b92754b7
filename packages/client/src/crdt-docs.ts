/**
 * Live Yjs objects for crdt fields. Local edits on the returned Y.Text / Y.Map /
 * Y.Array become crdt changes (one per microtask, merged); remote changes and
 * other tabs' edits are applied to the open document with the REMOTE origin so
 * they are not written back.
 */
import type { CrdtType, SpaceId } from '@syncline/core/internal';
import { crdtRoot, MAX_CHANGE_BYTES } from '@syncline/core/internal';
import * as Y from 'yjs';

export const REMOTE = Symbol('syncline-remote');

export interface CrdtTarget {
  readonly collection: string;
  readonly id: string;
  readonly space: SpaceId;
  readonly field: string;
}

interface Entry {
  readonly target: CrdtTarget;
  readonly doc: Y.Doc;
  readonly type: CrdtType;
  pending: Uint8Array[];
  /** Tracks this replica's edits of the document (origin null: the app's), for replica.undo(). */
  readonly undo: Y.UndoManager | undefined;
}

/**
 * How open documents take part in a replica's undo history (undo.ts): a new
 * Yjs undo item is a step ('edit': the app edited; 'undone' and 'redone': the
 * replica's undo or redo of a step ran it).
 */
export interface CrdtUndo {
  readonly captureMs: number;
  step(manager: Y.UndoManager, kind: 'edit' | 'undone' | 'redone'): void;
}

export const crdtKey = (t: Pick<CrdtTarget, 'collection' | 'id' | 'space'>, field?: string): string =>
  JSON.stringify(field === undefined ? [t.collection, t.id, t.space] : [t.collection, t.id, t.space, field]);

export class CrdtDocs {
  readonly #open = new Map<string, Entry>();
  readonly #byRecord = new Map<string, Set<Entry>>();

  constructor(
    private readonly write: (target: CrdtTarget, update: Uint8Array, type: CrdtType) => Promise<void>,
    private readonly onError: (error: unknown) => void,
    /** A fresh Yjs client id for each opened document (the replica's random source, so simulations replay). */
    private readonly newClientId: () => number,
    private readonly undo?: CrdtUndo,
  ) {}

  /** The open document for a field, creating it from the stored update. */
  open(target: CrdtTarget, type: CrdtType, stored: Uint8Array | undefined): Y.Doc {
    const key = crdtKey(target, target.field);
    const existing = this.#open.get(key);
    if (existing) return existing.doc;
    const doc = new Y.Doc();
    doc.clientID = this.newClientId();
    if (stored) Y.applyUpdate(doc, stored, REMOTE);
    const entry: Entry = { target, doc, type, pending: [], undo: this.undo ? this.#undoManager(doc, type, this.undo) : undefined };
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === REMOTE) return;
      if (entry.pending.push(update) === 1) queueMicrotask(() => this.#flush(entry));
    });
    this.#open.set(key, entry);
    const recordKey = crdtKey(target);
    let set = this.#byRecord.get(recordKey);
    if (!set) this.#byRecord.set(recordKey, (set = new Set()));
    set.add(entry);
    return doc;
  }

  #undoManager(doc: Y.Doc, type: CrdtType, undo: CrdtUndo): Y.UndoManager {
    // Remote edits and other tabs' come with the REMOTE origin: not tracked, so undo never reverts them.
    const manager = new Y.UndoManager(crdtRoot(doc, type), { captureTimeout: undo.captureMs, trackedOrigins: new Set([null]) });
    manager.on('stack-item-added', (event: { type: 'undo' | 'redo' }) => {
      if (event.type === 'redo') undo.step(manager, 'undone');
      else undo.step(manager, manager.redoing ? 'redone' : 'edit');
    });
    return manager;
  }

  /** The next edit of any open document (but `except`'s) starts a new undo step: the replica recorded another step. */
  stopCapturing(except?: Y.UndoManager): void {
    for (const entry of this.#open.values()) if (entry.undo !== except) entry.undo?.stopCapturing();
  }

  root(doc: Y.Doc, type: CrdtType): Y.Text | Y.Map<unknown> | Y.Array<unknown> {
    return crdtRoot(doc, type);
  }

  #flush(entry: Entry): void {
    const updates = entry.pending;
    entry.pending = [];
    if (updates.length === 0) return;
    const update = updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates);
    // A change may take MAX_CHANGE_BYTES: edits that merge past it are written one by one instead
    // (a single edit past it is refused: onError gets the too_large ReplicaError).
    const parts = update.length > MAX_CHANGE_BYTES / 2 && updates.length > 1 ? updates : [update];
    for (const part of parts) this.write(entry.target, part, entry.type).catch(this.onError);
  }

  /** Open fields of a record, to refresh after it changed elsewhere. */
  fieldsOf(collection: string, id: string, space: string): string[] {
    // Asked for every record a snapshot brings: no key to build while no document is open.
    if (this.#byRecord.size === 0) return [];
    return [...(this.#byRecord.get(crdtKey({ collection, id, space: space as SpaceId })) ?? [])].map((e) => e.target.field);
  }

  applyRemote(target: CrdtTarget, update: Uint8Array): void {
    const entry = this.#open.get(crdtKey(target, target.field));
    if (entry) Y.applyUpdate(entry.doc, update, REMOTE);
  }

  /** Closes a field's document; later edits to it are not recorded. */
  release(target: CrdtTarget): void {
    const key = crdtKey(target, target.field);
    const entry = this.#open.get(key);
    if (!entry) return;
    this.#flush(entry);
    this.#open.delete(key);
    const recordKey = crdtKey(target);
    const set = this.#byRecord.get(recordKey);
    set?.delete(entry);
    if (set?.size === 0) this.#byRecord.delete(recordKey);
    // Its undo steps are gone with it: undo() of one of them does nothing.
    entry.undo?.clear();
    entry.undo?.destroy();
    entry.doc.destroy();
  }

  /** Writes pending edits of every open document. */
  flushAll(): void {
    for (const entry of this.#open.values()) this.#flush(entry);
  }

  destroy(): void {
    this.flushAll();
    for (const entry of this.#open.values()) {
      entry.undo?.destroy();
      entry.doc.destroy();
    }
    this.#open.clear();
    this.#byRecord.clear();
  }
}

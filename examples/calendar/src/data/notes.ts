/**
 * Event notes are a crdt text field: replica.text('events', id, 'notes', { space })
 * gives a live Y.Text whose edits become changes. A textarea is bound to it by
 * turning each input into the smallest delete + insert (so two people typing in
 * different places both keep their text), and remote edits into a new value with
 * the caret moved past text inserted before it.
 */
import type { Replica } from '@syncline/client';
import type * as Y from 'yjs';

/** Origin of the textarea's own edits (Yjs passes it to observers). */
export const TEXTAREA = Symbol('calendar-textarea');

interface Entry {
  count: number;
  readonly promise: Promise<Y.Text>;
}

const open = new WeakMap<Replica, Map<string, Entry>>();

/**
 * Opens an event's notes, shared between components; release() closes the
 * replica's live document when the last user is done (replica.release).
 */
export function acquireNotes(replica: Replica, id: string, space: string): { readonly text: Promise<Y.Text>; release(): void } {
  let byKey = open.get(replica);
  if (!byKey) open.set(replica, (byKey = new Map()));
  const key = JSON.stringify([id, space]);
  let entry = byKey.get(key);
  if (!entry) {
    entry = { count: 0, promise: replica.text('events', id, 'notes', { space }) };
    byKey.set(key, entry);
  }
  entry.count++;
  const mine = entry;
  let released = false;
  return {
    text: entry.promise,
    release() {
      if (released) return;
      released = true;
      mine.count--;
      if (mine.count > 0) return;
      const settle = () => {
        if (mine.count > 0 || byKey.get(key) !== mine) return;
        byKey.delete(key);
        if (!replica.closed) replica.release('events', id, 'notes', { space });
      };
      mine.promise.then(settle, settle);
    },
  };
}

/** Applies the change from `before` to `after` as one delete and one insert. */
export function applyDiff(text: Y.Text, before: string, after: string): void {
  if (before === after) return;
  let start = 0;
  const max = Math.min(before.length, after.length);
  while (start < max && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let endBefore = before.length;
  let endAfter = after.length;
  while (endBefore > start && endAfter > start && before.charCodeAt(endBefore - 1) === after.charCodeAt(endAfter - 1)) {
    endBefore--;
    endAfter--;
  }
  const run = () => {
    if (endBefore > start) text.delete(start, endBefore - start);
    if (endAfter > start) text.insert(start, after.slice(start, endAfter));
  };
  if (text.doc) text.doc.transact(run, TEXTAREA);
  else run();
}

type Delta = ReadonlyArray<{ insert?: unknown; delete?: number; retain?: number }>;

/** Where a caret at `pos` of the old text is after the change `delta`. */
export function transformPosition(pos: number, delta: Delta): number {
  let old = 0;
  let result = pos;
  for (const op of delta) {
    if (old > pos) break;
    if (op.retain !== undefined) old += op.retain;
    else if (op.insert !== undefined) {
      const length = typeof op.insert === 'string' ? op.insert.length : 1;
      if (old < pos) result += length;
    } else if (op.delete !== undefined) {
      if (old < pos) result -= Math.min(op.delete, pos - old);
      old += op.delete;
    }
  }
  return Math.max(0, result);
}

/** Seeds a new event's notes (or replaces an imported description the user has not edited). */
export async function writeNotes(replica: Replica, id: string, space: string, value: string, options: { onlyIfEmpty?: boolean } = {}): Promise<void> {
  const handle = acquireNotes(replica, id, space);
  try {
    const text = await handle.text;
    const current = text.toString();
    if (current === value || (options.onlyIfEmpty && current.length > 0)) return;
    applyDiff(text, current, value);
  } finally {
    handle.release();
  }
}

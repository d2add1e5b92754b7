/**
 * crdt policy: a field holds a Yjs document whose updates are merged by Yjs.
 *
 * Each crdt field is its own Y.Doc with one root type named ROOT. The stored form
 * is the merge of every update received (Y.mergeUpdates), which Yjs guarantees to
 * be order-independent in content; `touched` is the latest HLC of an update, so a
 * crdt edit after a delete brings the record back like an lww field write.
 */
import * as Y from 'yjs';
import type { CrdtOp, CrdtType } from './change.js';
import { maxHlc, type HlcString } from './hlc.js';
import { setOwn, type Json } from './json.js';

/** Name of the root type inside each field's document. */
export const ROOT = 'value';

/** One crdt field of a record's state. */
export interface CrdtField {
  /** The field's Yjs type. */
  readonly type: CrdtType;
  /** Every update received, merged into one (Y.mergeUpdates). */
  readonly update: Uint8Array;
  /** The latest timestamp of an update: an edit after a record delete brings the record back. */
  readonly touched: HlcString;
}

export function applyCrdt(current: CrdtField | undefined, op: CrdtOp, hlc: HlcString): CrdtField {
  if (current === undefined) {
    // Y.mergeUpdates returns a single update without reading it: decode it here so an
    // invalid first update is refused like any other instead of failing at materialize.
    Y.decodeUpdate(op.update);
    return { type: op.type, update: op.update, touched: hlc };
  }
  return {
    // Two replicas that disagree on a field's type still agree on the result.
    type: current.type > op.type ? current.type : op.type,
    update: Y.mergeUpdates([current.update, op.update]),
    touched: maxHlc(current.touched, hlc),
  };
}

export function joinCrdt(a: CrdtField, b: CrdtField): CrdtField {
  return {
    type: a.type > b.type ? a.type : b.type,
    update: Y.mergeUpdates([a.update, b.update]),
    touched: maxHlc(a.touched, b.touched),
  };
}

/**
 * Throws unless `update` is a Yjs update every replica can use: it must decode
 * (what merging reads) and apply to a fresh document (what materializing does).
 * Yjs accepts some byte strings on one path and not the other.
 */
export function checkCrdtUpdate(update: Uint8Array): void {
  Y.decodeUpdate(update);
  Y.applyUpdate(new Y.Doc({ gc: true, guid: 'syncline-check' }), update);
}

/** Loads a field's update into a fresh document. */
export function crdtDoc(update: Uint8Array): Y.Doc {
  // A fixed guid: generating a random one costs more than reading a small document.
  const doc = new Y.Doc({ gc: true, guid: 'syncline-field' });
  if (update.length > 0) Y.applyUpdate(doc, update);
  return doc;
}

/** The root type of a field document, by declared type. */
export function crdtRoot(doc: Y.Doc, type: CrdtType): Y.Text | Y.Map<unknown> | Y.Array<unknown> {
  switch (type) {
    case 'text':
      return doc.getText(ROOT);
    case 'map':
      return doc.getMap(ROOT);
    case 'array':
      return doc.getArray(ROOT);
  }
}

/** The JSON value of a crdt field: a string for text, an object for map, an array for array. */
export function crdtValue(field: CrdtField): Json {
  const doc = crdtDoc(field.update);
  try {
    return toJson(crdtRoot(doc, field.type));
  } finally {
    doc.destroy();
  }
}

/**
 * Yjs content as JSON. Y.Map#toJSON assigns keys with `obj[key] =`, so a key
 * `__proto__` would set the value's prototype; map keys become own properties here.
 */
function toJson(value: unknown): Json {
  if (value instanceof Y.Text) return value.toString();
  if (value instanceof Y.Map) {
    const out: Record<string, Json> = {};
    for (const key of [...value.keys()].sort()) setOwn(out, key, toJson(value.get(key)));
    return out;
  }
  if (value instanceof Y.Array) return value.toArray().map(toJson);
  if (value instanceof Y.AbstractType) return value.toJSON() as Json;
  return value as Json;
}

/**
 * A canonical encoding of the field's content: equal for two replicas that hold
 * the same set of updates, whatever order they were merged in.
 */
export function canonicalCrdtUpdate(field: CrdtField): Uint8Array {
  const doc = crdtDoc(field.update);
  try {
    return Y.encodeStateAsUpdate(doc);
  } finally {
    doc.destroy();
  }
}

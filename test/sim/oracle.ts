/**
 * The expected visible state of a space, computed from the server's log by
 * rules written from the specification (DESIGN.md, change.ts docs), not by the
 * policy code the replicas run (lww.ts, merge.ts, record-state.ts). A bug that
 * every replica shares (so they still converge) shows up as a difference here.
 *
 * lww: a put or delete clears every field stamped before it; a patch stamps only
 *   its fields; a field's value is that of its highest-HLC write since the last
 *   clear; the record is deleted when its latest delete is later than its latest
 *   put or patch. Nothing a later delete removed comes back.
 * merge: a version is a sibling unless another version's context-plus-dot
 *   covers it; the visible value is the highest-HLC sibling's (null: deleted).
 * crdt: a field's value is the Yjs document of all its updates; a field last
 *   edited before the record's latest delete is gone; one edited after revives it.
 */
import type { Change, Fields, Json } from '@syncline/core/internal';
import * as Y from 'yjs';

export interface ExpectedRecord {
  readonly exists: boolean;
  /** Canonical JSON of the visible value (crdt fields included). */
  readonly value: string | undefined;
  /** merge records: "replica:seq" of each sibling, sorted. */
  readonly siblings: readonly string[];
}

/** Key: collection + "\0" + id. */
export function expectedState(changes: readonly Change[]): Map<string, ExpectedRecord> {
  const byRecord = new Map<string, Change[]>();
  for (const change of changes) {
    const key = `${change.collection}\u0000${change.id}`;
    let list = byRecord.get(key);
    if (!list) byRecord.set(key, (list = []));
    list.push(change);
  }
  const out = new Map<string, ExpectedRecord>();
  for (const [key, list] of byRecord) out.set(key, expectRecord(list));
  return out;
}

function max(a: string | undefined, b: string): string {
  return a === undefined || b > a ? b : a;
}

function expectRecord(changes: readonly Change[]): ExpectedRecord {
  let base: Record<string, Json> | null = null;
  let deletedAt: string | undefined;
  let tombstone: string | undefined;
  let written = false;
  let siblings: string[] = [];

  const versions = changes.flatMap((c) => (c.op === 'version' ? [c] : []));
  const lww = changes.filter((c) => c.op === 'put' || c.op === 'patch' || c.op === 'delete');
  if (versions.length > 0) {
    written = true;
    const dominated = (v: (typeof versions)[number]): boolean =>
      versions.some((w) => w !== v && ((w.replica === v.replica && w.seq >= v.seq) || (w.context.get(v.replica) ?? 0) >= v.seq));
    const alive = versions.filter((v) => !dominated(v));
    alive.sort((a, b) => (a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : a.seq - b.seq));
    siblings = alive.map((v) => `${v.replica}:${v.seq}`).sort();
    const top = alive[alive.length - 1];
    if (top) {
      base = top.value === null ? null : { ...top.value };
      if (top.value === null) deletedAt = tombstone = top.hlc;
    }
  } else if (lww.length > 0) {
    let cleared: string | undefined;
    let deleted: string | undefined;
    let touched: string | undefined;
    for (const c of lww) {
      if (c.op !== 'patch') cleared = max(cleared, c.hlc);
      if (c.op === 'delete') deleted = max(deleted, c.hlc);
      else touched = max(touched, c.hlc);
    }
    written = true;
    const fields = new Map<string, { hlc: string; value: Json | undefined }>();
    for (const c of lww) {
      if (c.op === 'delete' || (cleared !== undefined && c.hlc < cleared)) continue;
      const writes: Array<[string, Json | undefined]> = Object.entries(c.fields as Fields);
      if (c.op === 'patch') for (const name of c.unset) writes.push([name, undefined]);
      for (const [name, value] of writes) {
        const current = fields.get(name);
        if (!current || c.hlc > current.hlc) fields.set(name, { hlc: c.hlc, value });
      }
    }
    tombstone = deleted;
    deletedAt = deleted !== undefined && !(touched !== undefined && touched > deleted) ? deleted : undefined;
    base = {};
    for (const [name, f] of fields) if (f.value !== undefined) base[name] = f.value;
  }

  const crdt = new Map<string, { touched: string; type: string; updates: Uint8Array[] }>();
  for (const c of changes) {
    if (c.op !== 'crdt') continue;
    written = true;
    const field = crdt.get(c.field) ?? { touched: c.hlc, type: c.type, updates: [] };
    field.touched = max(field.touched, c.hlc);
    field.updates.push(c.update);
    crdt.set(c.field, field);
  }
  let revived = false;
  const crdtValues: Record<string, Json> = {};
  for (const [name, field] of crdt) {
    if (tombstone !== undefined && field.touched < tombstone) continue;
    revived ||= deletedAt !== undefined;
    const doc = new Y.Doc();
    for (const update of field.updates) Y.applyUpdate(doc, update);
    crdtValues[name] = field.type === 'text' ? doc.getText('value').toString() : field.type === 'map' ? (doc.getMap('value').toJSON() as Json) : (doc.getArray('value').toJSON() as Json);
    doc.destroy();
  }
  const exists = written && (deletedAt === undefined || revived);
  if (!exists) return { exists: false, value: undefined, siblings };
  return { exists: true, value: canonical({ ...(base ?? {}), ...crdtValues }), siblings };
}

/** JSON with object keys sorted, for comparing values. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

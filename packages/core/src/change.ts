/**
 * A change is one local write, named everywhere by (replica, seq) and ordered by
 * its HLC. The `op` says which conflict policy it follows, so a server can store,
 * materialize and compact it without knowing the app's schema.
 */
import { InvalidChangeError } from './errors.js';
import { isHlcString, type HlcString } from './hlc.js';
import { isName, isRecordId, isReplicaId, isSpaceId, type ReplicaId, type SpaceId } from './ids.js';
import { findNonJson, isPlainObject, type Fields } from './json.js';
import type { VersionVector } from './version-vector.js';

/** The Yjs type a crdt field holds: Y.Text, Y.Map or Y.Array. */
export type CrdtType = 'text' | 'map' | 'array';
/** Every CrdtType, in a fixed order. */
export const CRDT_TYPES: readonly CrdtType[] = ['text', 'map', 'array'];

/** What every change carries, whatever its op: the record it addresses and its name (replica, seq) and stamp. */
export interface ChangeHeader {
  /** The space the record lives in. */
  readonly space: SpaceId;
  /** The record's collection (a name: 1-128 UTF-16 units, well-formed Unicode). */
  readonly collection: string;
  /** The record's id (1-512 UTF-16 units, well-formed Unicode). */
  readonly id: string;
  /** The replica that wrote the change. */
  readonly replica: ReplicaId;
  /** 1, 2, 3 … per replica, with no gaps. */
  readonly seq: number;
  /** The writer's HLC; its replica part equals `replica`. */
  readonly hlc: HlcString;
}

/** lww: replace the record; fields it omits are removed as of its timestamp. */
export interface PutOp {
  /** 'put'. */
  readonly op: 'put';
  /** The record's fields after the put. */
  readonly fields: Fields;
}
/** lww: stamp only the named fields; `unset` removes fields. */
export interface PatchOp {
  /** 'patch'. */
  readonly op: 'patch';
  /** Fields set, each stamped with the change's HLC. */
  readonly fields: Fields;
  /** Names of fields removed (never also in `fields`). */
  readonly unset: readonly string[];
}
/** lww: record tombstone. */
export interface DeleteOp {
  /** 'delete'. */
  readonly op: 'delete';
}
/**
 * merge: a whole new version of the record (null deletes it), made after seeing
 * `context`: every version it supersedes is covered by context.
 */
export interface VersionOp {
  /** 'version'. */
  readonly op: 'version';
  /** The record's whole value in this version; null deletes it. */
  readonly value: Fields | null;
  /** The versions of the record its writer had seen (their (replica, seq)); it supersedes them. */
  readonly context: VersionVector;
}
/** crdt: a Yjs update (bytes) for one field. */
export interface CrdtOp {
  /** 'crdt'. */
  readonly op: 'crdt';
  /** The crdt field the update is for. */
  readonly field: string;
  /** The field's Yjs type. */
  readonly type: CrdtType;
  /** A Yjs update (Y.encodeStateAsUpdate / an update event's bytes). */
  readonly update: Uint8Array;
}

/** The payload of a change, by op: put, patch and delete follow lww, version follows merge, crdt carries a Yjs update. */
export type ChangeOp = PutOp | PatchOp | DeleteOp | VersionOp | CrdtOp;
/**
 * One local write, as stored and sent: a header naming the record, the writer
 * and its (replica, seq), and an op. `(space, replica, seq)` names it
 * everywhere; applying it twice changes nothing.
 */
export type Change = ChangeHeader & ChangeOp;
/** The op names: 'put' | 'patch' | 'delete' | 'version' | 'crdt'. */
export type OpKind = ChangeOp['op'];

/** Where a change is addressed: one record of one collection in one space. */
export function recordKey(change: Pick<ChangeHeader, 'collection' | 'id'>): string {
  // The collection name is length-prefixed so no id can forge another key.
  return `${change.collection.length}:${change.collection}/${change.id}`;
}

/** (replica, seq) as one string. */
export function changeKey(change: Pick<ChangeHeader, 'replica' | 'seq'>): string {
  return `${change.replica}:${change.seq}`;
}

/**
 * Checks a change's values beyond its shape: ids, HLC owner, JSON fields, version
 * contexts. Throws InvalidChangeError naming the offending field.
 */
export function validateChange(change: Change): void {
  const fail = (message: string, path: string): never => {
    throw new InvalidChangeError(message, path);
  };
  if (!isSpaceId(change.space)) fail('invalid space id', 'space');
  if (!isName(change.collection)) fail('invalid collection name', 'collection');
  if (!isRecordId(change.id)) fail('invalid record id', 'id');
  if (!isReplicaId(change.replica)) fail('invalid replica id', 'replica');
  if (!Number.isSafeInteger(change.seq) || change.seq < 1) fail('seq must be a positive integer', 'seq');
  if (!isHlcString(change.hlc)) fail('invalid HLC timestamp', 'hlc');
  if (!change.hlc.endsWith(`-${change.replica}`) || change.hlc.length !== 18 + change.replica.length) {
    fail('the HLC timestamp belongs to another replica', 'hlc');
  }
  switch (change.op) {
    case 'put':
    case 'patch': {
      if (!isPlainObject(change.fields)) fail('fields must be an object', 'fields');
      for (const name of Object.keys(change.fields)) if (!isName(name)) fail('invalid field name', 'fields');
      const bad = findNonJson(change.fields, 'fields');
      if (bad !== undefined) fail('field values must be JSON', bad);
      if (change.op === 'patch') {
        if (!Array.isArray(change.unset)) fail('unset must be an array', 'unset');
        for (const name of change.unset) {
          if (!isName(name)) fail('invalid field name', 'unset');
          if (Object.hasOwn(change.fields, name)) fail('a field cannot be both set and unset', 'unset');
        }
      }
      return;
    }
    case 'delete':
      return;
    case 'version': {
      if (change.value !== null) {
        if (!isPlainObject(change.value)) fail('value must be an object or null', 'value');
        const bad = findNonJson(change.value, 'value');
        if (bad !== undefined) fail('field values must be JSON', bad);
      }
      if (!(change.context instanceof Map)) fail('context must be a version vector', 'context');
      for (const [replica, seq] of change.context) {
        if (!isReplicaId(replica) || !Number.isSafeInteger(seq) || seq < 1) fail('invalid version vector entry', 'context');
      }
      if ((change.context.get(change.replica) ?? 0) >= change.seq) fail('a version cannot have seen itself', 'context');
      return;
    }
    case 'crdt':
      if (!isName(change.field)) fail('invalid field name', 'field');
      if (!CRDT_TYPES.includes(change.type)) fail('crdt type must be text, map or array', 'type');
      if (!(change.update instanceof Uint8Array)) fail('update must be bytes', 'update');
      return;
    default:
      fail(`unknown op ${JSON.stringify((change as { op: unknown }).op)}`, 'op');
  }
}

/** Wire schemas shared by both directions: ids, changes, version vectors, record states. */
import type { Change } from '../change.js';
import { CRDT_TYPES } from '../change.js';
import type { CrdtField } from '../crdt.js';
import { isHlcString, type HlcString } from '../hlc.js';
import { isName, isRecordId, isReplicaId, isSpaceId, type ReplicaId, type SpaceId } from '../ids.js';
import type { LwwField, LwwState } from '../lww.js';
import type { MergeState, Version } from '../merge.js';
import type { RecordState } from '../record-state.js';
import type { VersionVector } from '../version-vector.js';
import { array, bytes, fields, int, invalid, json, literal, nullable, object, oneOf, optional, string, transform, tuple, variants, type Schema } from './schema.js';

/** Hard caps that no configuration can raise; servers set lower limits of their own. */
export const MAX_CHANGES_PER_MESSAGE = 100_000;
export const MAX_SPACES_PER_HELLO = 1_000;

export const replicaId = string<ReplicaId>('replicaId', isReplicaId);
export const spaceId = string<SpaceId>('spaceId', isSpaceId);
export const name = string('name', isName);
export const recordId = string('recordId', isRecordId);
export const hlc = string<HlcString>('hlc', isHlcString);
export const seq = int(1);
export const position = int(0);

/** Version vectors travel as [replica, seq] pairs: replica ids never become object keys. */
export const versionVector: Schema<VersionVector> = transform(
  array(tuple(replicaId, seq)),
  'versionVector',
  (pairs) => new Map(pairs),
  (v) => [...v].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
);

const header = { space: spaceId, collection: name, id: recordId, replica: replicaId, seq, hlc };

export const change = variants('op', {
  put: object({ ...header, op: literal('put'), fields }),
  patch: object({ ...header, op: literal('patch'), fields, unset: array(name) }),
  delete: object({ ...header, op: literal('delete') }),
  version: object({ ...header, op: literal('version'), value: nullable(fields), context: versionVector }),
  crdt: object({ ...header, op: literal('crdt'), field: name, type: oneOf(CRDT_TYPES), update: bytes }),
}) as unknown as Schema<Change>;

/** [name, hlc, value] for a set field, [name, hlc] for an unset one (JSON null is a value). */
const lwwField: Schema<readonly [string, LwwField]> = {
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
const lwwState: Schema<LwwState> = transform(
  object({ cleared: optional(hlc), deleted: optional(hlc), touched: optional(hlc), fields: array(lwwField) }),
  'lwwState',
  (w) => ({ cleared: w.cleared, deleted: w.deleted, touched: w.touched, fields: new Map(w.fields) }),
  (s) => ({ cleared: s.cleared, deleted: s.deleted, touched: s.touched, fields: [...s.fields] }),
);

const version: Schema<Version> = object({ replica: replicaId, seq, hlc, value: nullable(fields), context: versionVector });
const mergeState: Schema<MergeState> = object({ seen: versionVector, siblings: array(version) });
const crdtFields: Schema<ReadonlyMap<string, CrdtField>> = transform(
  array(tuple(name, oneOf(CRDT_TYPES), bytes, hlc)),
  'crdtFields',
  (entries) => new Map(entries.map(([n, type, update, touched]): [string, CrdtField] => [n, { type, update, touched }])),
  (m) => [...m].map(([n, f]) => [n, f.type, f.update, f.touched] as [string, (typeof CRDT_TYPES)[number], Uint8Array, HlcString]),
);

export const recordState: Schema<RecordState> = object({
  lww: optional(lwwState),
  merge: optional(mergeState),
  crdt: optional(crdtFields),
});

export const snapshotRecord = object({ collection: name, id: recordId, state: recordState });
export type SnapshotRecord = { readonly collection: string; readonly id: string; readonly state: RecordState };

/** Wire schemas shared by both directions: ids, changes, version vectors, record states. */
import type { Change } from '../change.js';
import { CRDT_TYPES } from '../change.js';
import { isHlcString, type HlcString } from '../hlc.js';
import { isName, isRecordId, isReplicaId, isSpaceId, type ReplicaId, type SpaceId } from '../ids.js';
import type { VersionVector } from '../version-vector.js';
import { array, bytes, fields, int, literal, nullable, object, oneOf, string, transform, tuple, variants, type Schema } from './schema.js';

/**
 * Most changes (or snapshot records) one message can carry: 100,000. A hard cap
 * of the wire format that no configuration can raise; servers set lower limits
 * of their own (`maxBatch`).
 */
export const MAX_CHANGES_PER_MESSAGE = 100_000;
/** Most spaces one hello (and its welcome) can name: 1,000. A hard cap of the wire format. */
export const MAX_SPACES_PER_HELLO = 1_000;

/** Most replica ids one `retired` message names (protocol 7). */
export const MAX_RETIRED_PER_MESSAGE = 5_000;

export const replicaId = string<ReplicaId>('replicaId', isReplicaId);
export const spaceId = string<SpaceId>('spaceId', isSpaceId);
export const name = string('name', isName);
export const recordId = string('recordId', isRecordId);
export const hlc = string<HlcString>('hlc', isHlcString);
export const seq = int(1);
export const position = int(0);

/** A region name: 1 to 64 letters, digits, '.', '_' or '-'. */
export function isRegionName(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(value);
}
export const regionName = string('region', isRegionName);

/** Most regions an origin vector names. */
export const MAX_ORIGINS = 64;

/**
 * An origin vector (protocol 5): per region, a position of that region's own
 * log (the changes that entered through it) up to which every entry is held.
 */
export const originVector = array(object({ region: regionName, upTo: position }), MAX_ORIGINS);

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

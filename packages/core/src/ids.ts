/**
 * Branded identifiers: a record id cannot be passed where a replica id belongs.
 * All of them are data: `__proto__` is a valid record id and must only ever be
 * used as a Map key or a property created with defineProperty.
 */
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/**
 * A replica's id: 1-64 characters of `[A-Za-z0-9_-]` (it ends every HLC string,
 * so it must sort the same everywhere). Make one with `replicaId()` (checked) or
 * let `createReplica` choose one.
 */
export type ReplicaId = Brand<string, 'ReplicaId'>;
/** A space's id: 1-128 printable ASCII characters without spaces (safe in URLs, SQL and log lines). Make one with `spaceId()`. */
export type SpaceId = Brand<string, 'SpaceId'>;

/** Replica ids end every HLC string, so they are restricted to characters that sort the same everywhere. */
const REPLICA_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Printable ASCII without spaces: safe in URLs, SQL and log lines. */
const SPACE_ID = /^[\x21-\x7e]{1,128}$/;
/** The longest record id, in UTF-16 code units: 512. */
export const MAX_RECORD_ID_LENGTH = 512;
/** The longest collection or field name, in UTF-16 code units: 128. */
export const MAX_NAME_LENGTH = 128;

/** True when `value` is a valid ReplicaId: a string of 1-64 characters of `[A-Za-z0-9_-]`. */
export function isReplicaId(value: unknown): value is ReplicaId {
  return typeof value === 'string' && REPLICA_ID.test(value);
}

/** True when `value` is a valid SpaceId: a string of 1-128 printable ASCII characters without spaces. */
export function isSpaceId(value: unknown): value is SpaceId {
  return typeof value === 'string' && SPACE_ID.test(value);
}

/** A lone surrogate: half of a UTF-16 pair without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Well-formed Unicode: no lone surrogates. Ids and names become keys in SQLite,
 * PostgreSQL and IndexedDB, which store text as UTF-8 and would turn a lone
 * surrogate into U+FFFD: two ids would collide and a snapshot would carry ids
 * nobody wrote.
 */
function wellFormed(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}

/** Record ids: any non-empty well-formed string up to MAX_RECORD_ID_LENGTH UTF-16 units. */
export function isRecordId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_RECORD_ID_LENGTH && wellFormed(value);
}

/** Collection and field names: any non-empty well-formed string up to MAX_NAME_LENGTH. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_LENGTH && wellFormed(value);
}

/**
 * `value` as a ReplicaId.
 * @throws TypeError when it is not 1-64 characters of `[A-Za-z0-9_-]`.
 */
export function replicaId(value: string): ReplicaId {
  if (!isReplicaId(value)) throw new TypeError(`invalid replica id ${JSON.stringify(value)}: expected 1-64 of [A-Za-z0-9_-]`);
  return value;
}

/**
 * `value` as a SpaceId.
 * @throws TypeError when it is not 1-128 printable ASCII characters without spaces.
 */
export function spaceId(value: string): SpaceId {
  if (!isSpaceId(value)) throw new TypeError(`invalid space id ${JSON.stringify(value)}: expected 1-128 printable ASCII characters without spaces`);
  return value;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/**
 * A new random replica id (21 characters, 126 bits). `randomBytes` is injected so
 * simulations stay deterministic; the client passes crypto.getRandomValues.
 */
export function newReplicaId(randomBytes: (n: number) => Uint8Array): ReplicaId {
  const bytes = randomBytes(21);
  let id = '';
  for (const byte of bytes) id += ALPHABET[byte & 63];
  return id as ReplicaId;
}

/**
 * fast-check arbitraries for the wire protocol: ids, HLC strings, JSON values whose
 * keys include `__proto__` and friends, changes of every op (crdt ones carry real
 * Yjs update bytes), record states, and every upstream and downstream message.
 *
 * Every value generated here is valid for the protocol schemas, so encode then
 * decode must give it back. Objects with user keys are built with defineProperty
 * (fieldsFromEntries), never with literals, so `__proto__` is always an own key.
 */
import fc from 'fast-check';
import * as Y from 'yjs';
import {
  ACCESS_LEVELS,
  CRDT_TYPES,
  ERROR_CODES,
  FRAME_MARKER,
  MAX_COUNTER,
  MAX_WALL,
  crdtRoot,
  fieldsFromEntries,
  formatTimestamp,
  isName,
  isRecordId,
  setOwn,
  writeFrame,
  type Change,
  type CrdtField,
  type CrdtType,
  type DownstreamMessage,
  type ErrorCode,
  type Fields,
  type HlcString,
  type Json,
  type LwwField,
  type LwwState,
  type MergeState,
  type RecordState,
  type ReplicaId,
  type SnapshotRecord,
  type SpaceId,
  type UpstreamMessage,
  type Version,
  type VersionVector,
} from '@syncline/core/internal';

type Of<U, T extends string> = Extract<U, { type: T }>;

/** Names that must stay data: they collide with Object.prototype or JSON.stringify. */
export const SPECIAL_KEYS = ['__proto__', 'constructor', 'toString', 'prototype', 'hasOwnProperty', 'valueOf', 'toJSON', '__defineGetter__'] as const;

// ---------------------------------------------------------------------------
// Strings and ids

/** Any UTF-16 code unit, lone surrogates included (JSON.stringify escapes them). */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

/** Strings from ASCII, full Unicode and raw UTF-16 (lone surrogates) alphabets. */
export function textArb(minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ minLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: codeUnit, minLength, maxLength }) },
  );
}

const REPLICA_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'.split('');

export const replicaIdArb: fc.Arbitrary<ReplicaId> = fc
  .oneof(
    { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...REPLICA_CHARS), minLength: 1, maxLength: 8 }) },
    { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...REPLICA_CHARS), minLength: 1, maxLength: 64 }) },
  )
  .map((s) => s as ReplicaId);

const printableAscii = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
export const spaceIdArb: fc.Arbitrary<SpaceId> = fc
  .oneof(
    { weight: 4, arbitrary: fc.string({ unit: printableAscii, minLength: 1, maxLength: 12 }) },
    { weight: 1, arbitrary: fc.string({ unit: printableAscii, minLength: 1, maxLength: 128 }) },
    { weight: 1, arbitrary: fc.constantFrom(...SPECIAL_KEYS) },
  )
  .map((s) => s as SpaceId);

/** Collection and field names: 1..128 UTF-16 units of anything. */
export const nameArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_KEYS) },
  { weight: 4, arbitrary: textArb(1, 10).filter(isName) },
  { weight: 1, arbitrary: textArb(1, 128).filter(isName) },
);

export const recordIdArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_KEYS) },
  { weight: 4, arbitrary: textArb(1, 16).filter(isRecordId) },
  { weight: 1, arbitrary: textArb(1, 512).filter(isRecordId) },
);

// ---------------------------------------------------------------------------
// Numbers and clocks

const safeNat = fc.oneof(fc.nat(1000), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
/** Log positions: 0 means nothing yet. */
export const positionArb: fc.Arbitrary<number> = safeNat;
/** Sequence numbers start at 1. */
export const seqArb: fc.Arbitrary<number> = safeNat.map((n) => Math.max(1, n));
/** Wall-clock milliseconds. */
export const timeArb: fc.Arbitrary<number> = safeNat;
export const protocolArb: fc.Arbitrary<number> = fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 65535 }));

const wallArb = fc.oneof(fc.constantFrom(0, MAX_WALL), fc.maxSafeNat().map((n) => n % (MAX_WALL + 1)));
const counterArb = fc.oneof(fc.constantFrom(0, MAX_COUNTER), fc.integer({ min: 0, max: MAX_COUNTER }));

/** An HLC string owned by `replica`. */
export function hlcOf(replica: fc.Arbitrary<ReplicaId>): fc.Arbitrary<HlcString> {
  return fc.record({ wall: wallArb, counter: counterArb, replica }).map(formatTimestamp);
}
export const hlcArb: fc.Arbitrary<HlcString> = hlcOf(replicaIdArb);

// ---------------------------------------------------------------------------
// JSON values and fields

/** Object keys anywhere inside a value: anything, the empty string included. */
const jsonKeyArb = fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...SPECIAL_KEYS) }, { weight: 3, arbitrary: textArb(0, 8) });

/**
 * Finite doubles other than -0: JSON has no -0 (JSON.stringify writes it as 0),
 * so -0 cannot round-trip; protocol-codec.test.ts pins that behaviour separately.
 */
const numberArb = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, 1e21, 0.1),
);

const jsonLeafArb: fc.Arbitrary<Json> = fc.oneof(fc.constant(null), fc.boolean(), numberArb, textArb(0, 12));

/** A JSON value of at most a few levels; objects may carry `__proto__` as an own key. */
export const jsonArb: fc.Arbitrary<Json> = fc.letrec<{ value: Json; array: Json[]; object: Fields }>((tie) => ({
  value: fc.oneof({ maxDepth: 4, depthSize: 'small' }, jsonLeafArb, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.array(fc.tuple(jsonKeyArb, tie('value')), { maxLength: 4 }).map(fieldsFromEntries),
})).value;

/** A record's fields: names as keys (special names included), JSON values. */
export const fieldsArb: fc.Arbitrary<Fields> = fc.array(fc.tuple(nameArb, jsonArb), { maxLength: 5 }).map(fieldsFromEntries);

export const versionVectorArb: fc.Arbitrary<VersionVector> = fc
  .uniqueArray(fc.tuple(replicaIdArb, seqArb), { selector: ([replica]) => replica, maxLength: 4 })
  .map((pairs) => new Map(pairs));

// ---------------------------------------------------------------------------
// Yjs updates

export type YjsEdit = { readonly at: number; readonly text: string; readonly remove: number };

/** A real Yjs update (v1 encoding) for one crdt field of `type`, built from `edits`. */
export function yjsUpdate(type: CrdtType, clientId: number, edits: readonly YjsEdit[], incremental: boolean): Uint8Array {
  const doc = new Y.Doc({ gc: true });
  doc.clientID = clientId;
  try {
    const root = crdtRoot(doc, type);
    const half = Math.floor(edits.length / 2);
    let before: Uint8Array | undefined;
    edits.forEach((edit, i) => {
      if (i === half) before = Y.encodeStateVector(doc);
      doc.transact(() => {
        if (root instanceof Y.Text) {
          root.insert(edit.at % (root.length + 1), edit.text);
          if (edit.remove > 0 && root.length > 0) root.delete(edit.at % root.length, Math.min(edit.remove, root.length - (edit.at % root.length)));
        } else if (root instanceof Y.Map) {
          if (edit.remove > 0) root.delete(edit.text);
          else root.set(edit.text, edit.at);
        } else {
          root.insert(edit.at % (root.length + 1), [edit.text, edit.at]);
          if (edit.remove > 0 && root.length > 0) root.delete(edit.at % root.length, 1);
        }
      });
    });
    return incremental && before ? Y.encodeStateAsUpdate(doc, before) : Y.encodeStateAsUpdate(doc);
  } finally {
    doc.destroy();
  }
}

const yjsEditArb: fc.Arbitrary<YjsEdit> = fc.record({ at: fc.nat(20), text: fc.string({ maxLength: 6 }), remove: fc.nat(2) });

export const crdtTypeArb: fc.Arbitrary<CrdtType> = fc.constantFrom(...CRDT_TYPES);

/** A crdt type and a real Yjs update for a field of that type. */
export const crdtUpdateArb: fc.Arbitrary<{ type: CrdtType; update: Uint8Array }> = fc
  .record({
    type: crdtTypeArb,
    clientId: fc.integer({ min: 1, max: 0x7fffffff }),
    edits: fc.array(yjsEditArb, { maxLength: 5 }),
    incremental: fc.boolean(),
  })
  .map(({ type, clientId, edits, incremental }) => ({ type, update: yjsUpdate(type, clientId, edits, incremental) }));

// ---------------------------------------------------------------------------
// Changes

const headerFields = {
  space: spaceIdArb,
  collection: nameArb,
  id: recordIdArb,
  seq: seqArb,
  wall: wallArb,
  counter: counterArb,
};

/** A change header whose HLC belongs to its replica. */
function withHeader<T extends object>(
  op: fc.Arbitrary<T>,
): fc.Arbitrary<
  T & { space: SpaceId; collection: string; id: string; replica: ReplicaId; seq: number; hlc: HlcString }
> {
  return fc.record({ ...headerFields, replica: replicaIdArb, op }).map(({ wall, counter, replica, op: body, ...header }) => ({
    ...header,
    replica,
    hlc: formatTimestamp({ wall, counter, replica }),
    ...body,
  }));
}

export const putChangeArb: fc.Arbitrary<Change> = withHeader(fc.record({ op: fc.constant('put' as const), fields: fieldsArb }));

export const patchChangeArb: fc.Arbitrary<Change> = withHeader(
  fc
    .record({ fields: fieldsArb, unset: fc.uniqueArray(nameArb, { maxLength: 3 }) })
    .map(({ fields, unset }) => ({ op: 'patch' as const, fields, unset: unset.filter((n) => !Object.hasOwn(fields, n)) })),
);

export const deleteChangeArb: fc.Arbitrary<Change> = withHeader(fc.record({ op: fc.constant('delete' as const) }));

export const versionChangeArb: fc.Arbitrary<Change> = withHeader(
  fc.record({ op: fc.constant('version' as const), value: fc.option(fieldsArb, { nil: null }), context: versionVectorArb }),
);

export const crdtChangeArb: fc.Arbitrary<Change> = withHeader(
  fc.record({ field: nameArb, crdt: crdtUpdateArb }).map(({ field, crdt }) => ({ op: 'crdt' as const, field, type: crdt.type, update: crdt.update })),
);

export const changeArbs = {
  put: putChangeArb,
  patch: patchChangeArb,
  delete: deleteChangeArb,
  version: versionChangeArb,
  crdt: crdtChangeArb,
} as const;

export const changeArb: fc.Arbitrary<Change> = fc.oneof(...Object.values(changeArbs));

/** Changes of one space, as a push or a changes message carries them. */
export function changesOf(space: SpaceId, changes: readonly Change[]): Change[] {
  return changes.map((c) => ({ ...c, space }));
}

// ---------------------------------------------------------------------------
// Record states

/** An lww field: a value (null included) or unset (value undefined). */
export const lwwFieldArb: fc.Arbitrary<LwwField> = fc.record({
  hlc: hlcArb,
  value: fc.oneof(fc.constant(undefined), fc.constant(null), jsonArb),
});

/**
 * An lww state: every field in `fields` (the form states stored before `stamped` had),
 * or, when touched is set, some of the fields set at touched held in `stamped` instead.
 */
export const lwwStateArb: fc.Arbitrary<LwwState> = fc
  .record({
    cleared: fc.option(hlcArb, { nil: undefined }),
    deleted: fc.option(hlcArb, { nil: undefined }),
    touched: fc.option(hlcArb, { nil: undefined }),
    fields: fc.uniqueArray(fc.tuple(nameArb, lwwFieldArb), { selector: ([n]) => n, maxLength: 4 }),
    stamped: fc.option(fc.uniqueArray(fc.tuple(nameArb, jsonArb), { selector: ([n]) => n, maxLength: 4 }), { nil: undefined }),
  })
  .map(({ cleared, deleted, touched, fields, stamped }) => {
    if (touched === undefined || stamped === undefined) return { cleared, deleted, touched, fields: new Map(fields) };
    const held: Record<string, Json> = {};
    for (const [name, value] of [...stamped].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) setOwn(held, name, value);
    return { cleared, deleted, touched, stamped: held, fields: new Map(fields.filter(([name]) => !Object.hasOwn(held, name))) };
  });

export const versionArb: fc.Arbitrary<Version> = fc.record({
  replica: replicaIdArb,
  seq: seqArb,
  hlc: hlcArb,
  value: fc.option(fieldsArb, { nil: null }),
  context: versionVectorArb,
});

export const mergeStateArb: fc.Arbitrary<MergeState> = fc.record({
  seen: versionVectorArb,
  siblings: fc.array(versionArb, { maxLength: 3 }),
});

export const crdtFieldArb: fc.Arbitrary<CrdtField> = fc
  .record({ crdt: crdtUpdateArb, touched: hlcArb })
  .map(({ crdt, touched }) => ({ type: crdt.type, update: crdt.update, touched }));

export const crdtFieldsArb: fc.Arbitrary<ReadonlyMap<string, CrdtField>> = fc
  .uniqueArray(fc.tuple(nameArb, crdtFieldArb), { selector: ([n]) => n, maxLength: 3 })
  .map((e) => new Map(e));

export const recordStateArb: fc.Arbitrary<RecordState> = fc.record(
  { lww: lwwStateArb, merge: mergeStateArb, crdt: crdtFieldsArb },
  { requiredKeys: [] },
);

export const snapshotRecordArb: fc.Arbitrary<SnapshotRecord> = fc.record({ collection: nameArb, id: recordIdArb, state: recordStateArb });

// ---------------------------------------------------------------------------
// Messages

const changeListArb = fc.array(changeArb, { maxLength: 4 });

export const helloArb: fc.Arbitrary<Of<UpstreamMessage, 'hello'>> = fc.record(
  {
    type: fc.constant('hello' as const),
    protocol: protocolArb,
    replica: replicaIdArb,
    token: fc.oneof(fc.string({ maxLength: 40 }), textArb(0, 16_384).filter((t) => t.length <= 16_384)),
    spaces: fc.array(fc.record({ space: spaceIdArb, after: positionArb }), { maxLength: 4 }),
    time: timeArb,
  },
  { requiredKeys: ['type', 'protocol', 'replica', 'spaces', 'time'] },
);

export const pushArb: fc.Arbitrary<Of<UpstreamMessage, 'push'>> = fc
  .record({ space: spaceIdArb, changes: changeListArb })
  .map(({ space, changes }) => ({ type: 'push' as const, space, changes: changesOf(space, changes) }));

export const pingArb: fc.Arbitrary<Of<UpstreamMessage, 'ping'>> = fc.record({ type: fc.constant('ping' as const), id: safeNat });
export const pongArb: fc.Arbitrary<Of<UpstreamMessage, 'pong'>> = fc.record({ type: fc.constant('pong' as const), id: safeNat });

export const welcomeArb: fc.Arbitrary<Of<DownstreamMessage, 'welcome'>> = fc.record({
  type: fc.constant('welcome' as const),
  protocol: protocolArb,
  server: textArb(1, 128).filter((s) => s.length > 0 && s.length <= 128),
  time: timeArb,
  spaces: fc.array(fc.record({ space: spaceIdArb, access: fc.constantFrom(...ACCESS_LEVELS), head: positionArb }), { maxLength: 4 }),
});

export const ackArb: fc.Arbitrary<Of<DownstreamMessage, 'ack'>> = fc.record({ type: fc.constant('ack' as const), space: spaceIdArb, upTo: seqArb });

export const changesArb: fc.Arbitrary<Of<DownstreamMessage, 'changes'>> = fc
  .record({ space: spaceIdArb, changes: changeListArb, upTo: positionArb })
  .map(({ space, changes, upTo }) => ({ type: 'changes' as const, space, changes: changesOf(space, changes), upTo }));

export const snapshotArb: fc.Arbitrary<Of<DownstreamMessage, 'snapshot'>> = fc
  .record({
    space: spaceIdArb,
    position: positionArb,
    chunks: fc.integer({ min: 1, max: 50 }),
    chunk: fc.nat(),
    total: fc.oneof(fc.nat(10_000), fc.maxSafeNat()),
    records: fc.array(snapshotRecordArb, { maxLength: 3 }),
  })
  .map(({ chunk, chunks, ...rest }) => ({ type: 'snapshot' as const, ...rest, chunk: chunk % chunks, chunks }));

export const syncedArb: fc.Arbitrary<Of<DownstreamMessage, 'synced'>> = fc.record({ type: fc.constant('synced' as const), space: spaceIdArb, upTo: positionArb });

export const errorCodeArb: fc.Arbitrary<ErrorCode> = fc.constantFrom(...(Object.keys(ERROR_CODES) as ErrorCode[]));

export const errorArb: fc.Arbitrary<Of<DownstreamMessage, 'error'>> = fc.record(
  {
    type: fc.constant('error' as const),
    code: errorCodeArb,
    message: fc.oneof(textArb(0, 60), textArb(0, 4096).filter((m) => m.length <= 4096)),
    fatal: fc.boolean(),
    space: spaceIdArb,
  },
  { requiredKeys: ['type', 'code', 'message', 'fatal'] },
);

/** One arbitrary per upstream message type. */
export const upstreamArbs = { hello: helloArb, push: pushArb, ping: pingArb, pong: pongArb } as const;

/** One arbitrary per downstream message type. */
export const downstreamArbs = {
  welcome: welcomeArb,
  ack: ackArb,
  changes: changesArb,
  snapshot: snapshotArb,
  synced: syncedArb,
  error: errorArb,
  ping: pingArb,
  pong: pongArb,
} as const;

export const upstreamMessageArb: fc.Arbitrary<UpstreamMessage> = fc.oneof(...Object.values(upstreamArbs));
export const downstreamMessageArb: fc.Arbitrary<DownstreamMessage> = fc.oneof(...Object.values(downstreamArbs));

/** Unsigned LEB128, as the frame layout writes its lengths. */
export function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** A byte-level edit of a frame (fuzzing). */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'truncate'; at: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

/** Applies the edits in order; positions wrap around the current length. */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = Array.from(bytes);
  for (const m of mutations) {
    const at = m.at % (out.length + 1);
    switch (m.kind) {
      case 'flip':
        if (at < out.length) out[at] = (out[at] as number) ^ (1 << m.bit);
        break;
      case 'set':
        if (at < out.length) out[at] = m.byte;
        break;
      case 'insert':
        out.splice(at, 0, ...m.bytes);
        break;
      case 'delete':
        out.splice(at, m.count);
        break;
      case 'truncate':
        out = out.slice(0, at);
        break;
    }
  }
  return Uint8Array.from(out);
}

/** Random bytes, from noise to well-formed frames carrying nonsense (decoder and live-server fuzzing). */
export const randomFrameBytesArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  // Past the marker check.
  fc.uint8Array({ maxLength: 64 }).map((b) => Uint8Array.from([FRAME_MARKER, ...b])),
  // A plausible header: few attachments, small lengths, then noise.
  fc
    .record({ lengths: fc.array(fc.nat(8), { maxLength: 3 }), json: fc.nat(40), tail: fc.uint8Array({ maxLength: 60 }) })
    .map(({ lengths, json, tail }) => Uint8Array.from([FRAME_MARKER, lengths.length, ...lengths, json, ...tail])),
  // Random JSON in a correct frame, with random attachments.
  fc
    .record({ json: fc.jsonValue({ maxDepth: 3 }), attachments: fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 3 }) })
    .map(({ json, attachments }) => writeFrame(json, attachments)),
  // Random objects that carry a real message type.
  fc
    .record({
      type: fc.constantFrom('hello', 'push', 'ping', 'pong', 'welcome', 'ack', 'changes', 'snapshot', 'synced', 'error'),
      rest: fc.dictionary(
        fc.constantFrom('id', 'space', 'changes', 'upTo', 'protocol', 'replica', 'spaces', 'time', 'records', 'code', 'message', 'fatal', '__proto__'),
        fc.jsonValue({ maxDepth: 2 }),
        { maxKeys: 6 },
      ),
    })
    .map(({ type, rest }) => writeFrame({ ...rest, type }, [])),
);

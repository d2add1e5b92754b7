/**
 * Frame generators and the response oracle for the live-server fuzz
 * (test/server/fuzz-live.test.ts, long runs through `npm run fuzz`).
 *
 * fast-check generates *recipes*: plain data saying what to send (a valid push
 * of some ops, a push with a given defect, a valid frame with byte mutations or
 * wrong JSON values, random bytes, a text frame, an oversized frame, ...).
 * `build` turns a recipe into the bytes for one connection's current state (its
 * replica, the spaces it subscribed to, the seqs the server holds), so valid
 * sequences stay valid across the bad frames interleaved with them.
 *
 * `predict` is the oracle. It decodes the bytes with the protocol's own decoder
 * and replays the server's documented checks (PROTOCOL.md, session.ts): what
 * the server must answer (a fatal error with a given code and a close, a
 * non-fatal refusal, an ack of the given seq, a pong, a welcome) and what a push
 * stores. It never looks at how a frame was made, so a mutation that happens
 * to produce a valid message is expected to be accepted.
 */
import fc from 'fast-check';
import * as Y from 'yjs';
import { mutate, mutationArb, randomFrameBytesArb, yjsUpdate, type Mutation } from '../core/helpers/arbitraries.js';
import {
  CRDT_TYPES,
  FRAME_MARKER,
  MAX_PRESENCE_BYTES,
  MAX_WALL,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeUpstream,
  encodeUpstream,
  fieldsFromEntries,
  formatTimestamp,
  hlcWall,
  isName,
  isRecordId,
  isSupportedProtocol,
  readFrame,
  setOwn,
  validateChange,
  writeFrame,
  type Change,
  type ErrorCode,
  type Fields,
  type Json,
  type ReplicaId,
  type SpaceId,
  type UpstreamMessage,
} from '@syncline/core/internal';

type Push = Extract<UpstreamMessage, { type: 'push' }>;
type Hello = Extract<UpstreamMessage, { type: 'hello' }>;

export interface FuzzLimits {
  readonly maxFrameBytes: number;
  readonly maxBatch: number;
  readonly maxClockDrift: number;
}

/**
 * Spaces and replica ids of one fuzz worker (workers never share a replica id).
 * A worker moves to new spaces every few dozen connections (its `epoch`), so
 * no space's log or record states grow without bound over a long run.
 */
export const ownSpaces = (worker: number, epoch: number): SpaceId[] => ['a', 'b', 'c'].map((s) => `fz${worker}.${epoch}-${s}` as SpaceId);
const poolReplica = (worker: number, n: number): ReplicaId => `fz${worker}r${n % 6}` as ReplicaId;
const freshReplica = (worker: number, n: number): ReplicaId => `fz${worker}x${n}` as ReplicaId;

/** What one connection knows about itself. */
export interface ConnView {
  readonly worker: number;
  readonly epoch: number;
  readonly phase: 'hello' | 'ready';
  /** Set once the hello was accepted. */
  readonly replica: ReplicaId | undefined;
  /** Spaces granted in welcome. */
  readonly subscribed: readonly SpaceId[];
}

/** The rest of the world as the generators and the oracle see it. */
export interface World {
  readonly limits: FuzzLimits;
  /** Spaces no fuzz frame may write to (the test snapshots them). */
  readonly protectedSpaces: ReadonlySet<SpaceId>;
  /** Highest seq of `replica` the server holds in `space` (from acks). */
  held(space: SpaceId, replica: ReplicaId): number;
  /** Best knowledge of a space's log head. */
  head(space: SpaceId): number;
  /** False when another worker uses this replica id. */
  mayUse(replica: ReplicaId, worker: number): boolean;
  /** Send frames that hit KNOWN_BUGS (and expect the correct answer). */
  readonly knownBugs: boolean;
  now(): number;
}

// ---------------------------------------------------------------------------
// Recipes

interface ChangeBody {
  /** A valid change of some op; its header is replaced when built. */
  readonly change: Change;
  /** Use a small pool of collections and ids, so changes of different ops meet on one record. */
  readonly collide: boolean;
  readonly coll: number;
  readonly rid: number;
  /** How far in the past its HLC wall is (ms). */
  readonly back: number;
  readonly counter: number;
}

type SeqMode = 'next' | 'overlap' | 'resend';

interface PushRecipe {
  readonly k: 'push';
  readonly bodies: readonly ChangeBody[];
  readonly seq: SeqMode;
  readonly pick: number;
  /** Any subscribed space, protected ones included. */
  readonly anySpace: boolean;
  /** Unknown keys (`__proto__` among them) added to the message and changes: dropped by the decoder. */
  readonly extraKeys: boolean;
}

export const DEFECTS = [
  'foreignSpace',
  'foreignReplica',
  'foreignHlc',
  'gapInside',
  'reversed',
  'dupInside',
  'gapAfter',
  'maxSafeSeq',
  'future',
  'maxWall',
  'notYjs',
  'setAndUnset',
  'seenItself',
  'badFieldName',
  'oversizeBatch',
  'unsubscribed',
  'empty',
  // Refused by the decoder (fatal):
  'zeroSeq',
  'negativeSeq',
  'floatSeq',
  'unsafeSeq',
  'infiniteSeq',
  'stringSeq',
  'deepJson',
  'attachmentIndex',
  'unknownOp',
  'badHlc',
] as const;
export type Defect = (typeof DEFECTS)[number];

interface BadPushRecipe {
  readonly k: 'badPush';
  readonly defect: Defect;
  readonly bodies: readonly ChangeBody[];
  readonly at: number;
  readonly pick: number;
  readonly bytes: Uint8Array;
  readonly n: number;
}

interface HelloRecipe {
  readonly k: 'hello';
  readonly replica: { readonly pool: number } | { readonly fresh: number } | { readonly random: ReplicaId };
  readonly own: readonly boolean[];
  readonly control: boolean;
  readonly defaultSpace: boolean;
  readonly extra: readonly SpaceId[];
  /** Many spaces in one hello (up to the protocol's cap of 1,000). */
  readonly many: number;
  readonly after: 'head' | 'zero' | 'random' | 'beyond';
  readonly afterValue: number;
  readonly token: string | undefined;
  /** 'ok', or a protocol number (out of range: unsupported_protocol, or invalid_message past 65535). */
  readonly protocol: 'ok' | number;
  readonly dup: boolean;
  readonly empty: boolean;
  readonly time: number | 'now';
}

interface PingRecipe {
  readonly k: 'ping' | 'pong';
  readonly id: number;
}

type BaseRecipe = PushRecipe | HelloRecipe | PingRecipe;

type Edit =
  | { readonly kind: 'replace'; readonly target: number; readonly value: unknown }
  | { readonly kind: 'delete'; readonly target: number }
  | { readonly kind: 'wrap'; readonly target: number }
  | { readonly kind: 'addKey'; readonly target: number; readonly key: string; readonly value: unknown }
  | { readonly kind: 'attachments'; readonly drop: number; readonly add: number };

export type Recipe =
  | BaseRecipe
  | BadPushRecipe
  | { readonly k: 'mutate'; readonly base: BaseRecipe; readonly region: 'frame' | 'json' | 'attachments'; readonly mutations: readonly Mutation[] }
  | { readonly k: 'edit'; readonly base: BaseRecipe; readonly edits: readonly Edit[] }
  | { readonly k: 'splice'; readonly a: BaseRecipe; readonly b: BaseRecipe; readonly cutA: number; readonly cutB: number; readonly concat: boolean }
  | { readonly k: 'random'; readonly bytes: Uint8Array }
  | { readonly k: 'text'; readonly text: string; readonly json: BaseRecipe | undefined }
  | { readonly k: 'oversize'; readonly cut: boolean; readonly extra: number };

// ---------------------------------------------------------------------------
// Values: ids, names, JSON (keys like `__proto__` included), Yjs updates.
// Like test/core/helpers/arbitraries.ts, but with cheap string units: fast-check's
// 'binary' unit builds a map of every code point each time a string arbitrary is made.

const SPECIAL_KEYS = ['__proto__', 'constructor', 'toString', 'prototype', 'hasOwnProperty', 'valueOf', 'toJSON'] as const;
const asciiChar = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
// Non-ASCII, astral (a surrogate pair), private use, NUL, line separators, JSON escapes; lone surrogates apart.
const OTHER_CHARS = ['ü', '字', '😀', '\ue000', '\u0000', '\u2028', '"', '\\', '\n'];
const LONE_SURROGATES = ['\ud800', '\udbff', '\udc00', '\udfff'];
const charArb = (lone: boolean): fc.Arbitrary<string> =>
  fc.oneof({ weight: 12, arbitrary: asciiChar }, { weight: 1, arbitrary: fc.constantFrom(...OTHER_CHARS, ...(lone ? LONE_SURROGATES : [])) });
const textOf = (minLength: number, maxLength: number, lone = true): fc.Arbitrary<string> => fc.string({ unit: charArb(lone), minLength, maxLength });
const REPLICA_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'.split('');
const replicaIdArb: fc.Arbitrary<ReplicaId> = fc
  .oneof({ weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...REPLICA_CHARS), minLength: 1, maxLength: 8 }) }, { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...REPLICA_CHARS), minLength: 1, maxLength: 64 }) })
  .map((s) => s as ReplicaId);
const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const spaceIdArb: fc.Arbitrary<SpaceId> = fc
  .oneof(
    { weight: 4, arbitrary: fc.string({ unit: printable, minLength: 1, maxLength: 12 }) },
    { weight: 1, arbitrary: fc.string({ unit: printable, minLength: 128, maxLength: 128 }) },
    { weight: 1, arbitrary: fc.constantFrom(...SPECIAL_KEYS) },
  )
  .map((s) => s as SpaceId);
const nameOf = (lone: boolean): fc.Arbitrary<string> =>
  fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...SPECIAL_KEYS) }, { weight: 5, arbitrary: textOf(1, 10, lone) }, { weight: 1, arbitrary: textOf(112, 120, lone) }).filter(isName);
const nameArb = nameOf(true);
const recordIdOf = (lone: boolean): fc.Arbitrary<string> =>
  fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...SPECIAL_KEYS) }, { weight: 5, arbitrary: textOf(1, 16, lone) }, { weight: 1, arbitrary: textOf(490, 500, lone) }).filter(isRecordId);
const numberArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, 1e21, 2 ** 53 + 2),
);
const jsonKeyArb = fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...SPECIAL_KEYS) }, { weight: 3, arbitrary: textOf(0, 8) });
const jsonArb: fc.Arbitrary<Json> = fc.letrec<{ value: Json; array: Json[]; object: Fields }>((tie) => ({
  value: fc.oneof({ maxDepth: 4, depthSize: 'small' }, fc.constant(null), fc.boolean(), numberArb, textOf(0, 12), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.array(fc.tuple(jsonKeyArb, tie('value')), { maxLength: 4 }).map(fieldsFromEntries),
})).value;
const fieldsArb: fc.Arbitrary<Fields> = fc.array(fc.tuple(nameArb, jsonArb), { maxLength: 5 }).map(fieldsFromEntries);


/** The op part of a valid change (the header is filled in by changeOf). */
const opArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ op: fc.constant('put'), fields: fieldsArb }),
  fc.record({ fields: fieldsArb, unset: fc.uniqueArray(nameArb, { maxLength: 3 }) }).map(({ fields, unset }) => ({ op: 'patch', fields, unset: unset.filter((n) => !Object.hasOwn(fields, n)) })),
  fc.constant({ op: 'delete' }),
  fc.record({
    op: fc.constant('version'),
    value: fc.option(fieldsArb, { nil: null }),
    context: fc.uniqueArray(fc.tuple(replicaIdArb, fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER))), { selector: ([r]) => r, maxLength: 4 }).map((pairs) => new Map(pairs)),
  }),
  fc
    .record({
      field: nameArb,
      type: fc.constantFrom(...CRDT_TYPES),
      clientId: fc.integer({ min: 1, max: 0x7fffffff }),
      edits: fc.array(fc.record({ at: fc.nat(20), text: fc.string({ maxLength: 6 }), remove: fc.nat(2) }), { maxLength: 5 }),
      incremental: fc.boolean(),
    })
    .map(({ field, type, clientId, edits, incremental }) => ({ op: 'crdt', field, type, update: yjsUpdate(type, clientId, edits, incremental) })),
);

/**
 * A valid change of any op. Lone surrogates (valid UTF-16 units, so valid in a
 * name or a record id) stay out of collections and record ids unless asked for:
 * the SQLite storage keeps those in TEXT columns, which cannot hold them (see
 * KNOWN_BUGS), and every run would trip over that one bug.
 */
const changeArb = (loneSurrogateIds: boolean): fc.Arbitrary<Change> =>
  fc
    .record({ collection: nameOf(loneSurrogateIds), id: recordIdOf(loneSurrogateIds), op: opArb })
    .map(({ collection, id, op }) => ({ space: 'x', collection, id, replica: 'x', seq: 1, hlc: '', ...op }) as unknown as Change);

/**
 * Server bugs this fuzz found, both fixed: lone surrogates are refused in names
 * and record ids (core ids.ts), and the session checks crdt updates the way the
 * storage reads them (checkCrdtUpdate) and answers a refused change with a
 * non-fatal `invalid_message`. The fuzz sends these frames by default and
 * expects the correct answer; with World.knownBugs false (FUZZ_KNOWN_BUGS=0) it
 * steers around them, as it did before the fixes.
 *
 * - loneSurrogateIds: a record whose collection or id holds a lone surrogate
 *   comes back from SqliteStorage.snapshotPage renamed (each lone surrogate read
 *   back from the TEXT column as three U+FFFD). Snapshots then carry the wrong
 *   id, two such records share one id, paging by (collection, id) skips records,
 *   and an id near 512 units grows past the limit so the snapshot frame does not
 *   decode: no new device can bootstrap the space. Steered around by keeping lone
 *   surrogates out of generated collections and ids.
 * - crdtDecode: a crdt update that Y.applyUpdate accepts (the session's check)
 *   but Y.decodeUpdate refuses (the storage's applyCrdt) fails the commit; the
 *   session answers `internal`, fatal, instead of a non-fatal `invalid_message`
 *   (nothing is stored). Steered around by not sending such a push.
 */
export const KNOWN_BUGS = {
  loneSurrogateIds: 'snapshots rename collections and record ids holding lone surrogates',
  crdtDecode: "a crdt update Y.applyUpdate accepts but Y.decodeUpdate refuses gets 'internal' (fatal), not 'invalid_message'",
} as const;

/** Unsigned LEB128, as the frame layout writes its lengths. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

// ---------------------------------------------------------------------------
// Arbitraries

const DAY = 86_400_000;

let changePool: Change[] | undefined;

/**
 * Recipes draw their changes from a pool of valid changes of every op, sampled
 * once per seed: generating Yjs updates and deep JSON for every frame would cost
 * more than sending it. Headers, seqs, clocks and defects still vary per frame.
 */
export function useChangePool(seed: number, options: { size?: number; loneSurrogateIds?: boolean } = {}): void {
  changePool = fc.sample(changeArb(options.loneSurrogateIds ?? false), { seed, numRuns: options.size ?? 2000 });
}

const pooledChangeArb: fc.Arbitrary<Change> = fc.nat().map((i) => {
  changePool ??= fc.sample(changeArb(false), { seed: 0, numRuns: 2000 });
  return changePool[i % changePool.length] as Change;
});

const changeBodyArb: fc.Arbitrary<ChangeBody> = fc.record({
  change: pooledChangeArb,
  collide: fc.nat(3).map((n) => n === 0),
  coll: fc.nat(2),
  rid: fc.nat(5),
  back: fc.oneof(fc.nat(1000), fc.nat(30 * DAY), fc.constant(0)),
  counter: fc.nat(0xffff),
});

const bodiesArb = (max: number): fc.Arbitrary<ChangeBody[]> => fc.array(changeBodyArb, { minLength: 1, maxLength: max });

const pushArb: fc.Arbitrary<PushRecipe> = fc.record({
  k: fc.constant('push' as const),
  bodies: fc.oneof({ weight: 6, arbitrary: bodiesArb(3) }, { weight: 1, arbitrary: bodiesArb(10) }),
  seq: fc.constantFrom<SeqMode>('next', 'next', 'next', 'overlap', 'resend'),
  pick: fc.nat(),
  anySpace: fc.nat(4).map((n) => n === 0),
  extraKeys: fc.nat(4).map((n) => n === 0),
});

const badPushArb = (defects: readonly Defect[]): fc.Arbitrary<BadPushRecipe> =>
  fc.record({
    k: fc.constant('badPush' as const),
    defect: fc.constantFrom(...defects),
    bodies: bodiesArb(4),
    at: fc.nat(),
    pick: fc.nat(),
    bytes: fc.uint8Array({ maxLength: 24 }),
    n: fc.nat(1000),
  });

const helloArb: fc.Arbitrary<HelloRecipe> = fc.record({
  k: fc.constant('hello' as const),
  replica: fc.oneof(
    { weight: 8, arbitrary: fc.record({ pool: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ fresh: fc.nat(1_000_000) }) },
    { weight: 1, arbitrary: fc.record({ random: replicaIdArb }) },
  ),
  own: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  control: fc.boolean(),
  defaultSpace: fc.boolean(),
  extra: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(spaceIdArb, { maxLength: 3 }) }),
  many: fc.oneof({ weight: 150, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 50, max: 1000 }) }),
  after: fc.oneof({ weight: 20, arbitrary: fc.constant('head' as const) }, { weight: 1, arbitrary: fc.constantFrom('zero' as const, 'random' as const, 'beyond' as const) }),
  afterValue: fc.oneof(fc.nat(50), fc.maxSafeNat()),
  token: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
  protocol: fc.oneof({ weight: 30, arbitrary: fc.constant('ok' as const) }, { weight: 1, arbitrary: fc.oneof(fc.integer({ min: 2, max: 65535 }), fc.constantFrom(65536, 0, 2 ** 53)) }),
  dup: fc.nat(40).map((n) => n === 0),
  empty: fc.nat(40).map((n) => n === 0),
  time: fc.oneof({ weight: 4, arbitrary: fc.constant('now' as const) }, { weight: 1, arbitrary: fc.maxSafeNat() }),
});

const safeNat = fc.oneof(fc.nat(1000), fc.maxSafeNat());
const pingArb: fc.Arbitrary<PingRecipe> = fc.record({ k: fc.constant('ping' as const), id: safeNat });
const pongArb: fc.Arbitrary<PingRecipe> = fc.record({ k: fc.constant('pong' as const), id: safeNat });

const baseArb = (hello: number): fc.Arbitrary<BaseRecipe> =>
  fc.oneof({ weight: 6, arbitrary: pushArb }, { weight: hello, arbitrary: helloArb }, { weight: 1, arbitrary: pingArb });


/** Wrong values: every JSON type, edge and huge numbers, strings that look like ids, clocks or types. */
const wrongValueArb: fc.Arbitrary<unknown> = fc
  .oneof(
    fc.constantFrom(null, true, false, 0, -1, 0.5, 1.5, 2 ** 53, -(2 ** 53), 1e308, -1e308, 65536, Number.MAX_SAFE_INTEGER, '', 'x', '0', '__proto__', 'constructor'),
    fc.constantFrom('000000000001-0000-r1', 'ping', 'push', 'hello', 'crdt', 'text', 'version', [], {}, [[]], [0], [['r1', 1]], JSON.parse('{"__proto__":{"type":"ping"}}') as unknown),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 10 }),
    jsonArb,
  )
  .map((v) => (typeof v === 'object' && v !== null ? (JSON.parse(JSON.stringify(v)) as unknown) : v));

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('replace' as const), target: fc.nat(), value: wrongValueArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), target: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), target: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('addKey' as const), target: fc.nat(), key: fc.constantFrom('__proto__', 'constructor', 'type', 'op', 'x'), value: wrongValueArb }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('attachments' as const), drop: fc.nat(2), add: fc.nat(2) }) },
);


const textArb: fc.Arbitrary<{ k: 'text'; text: string; json: BaseRecipe | undefined }> = fc.record({
  k: fc.constant('text' as const),
  text: fc.string({ maxLength: 40 }),
  json: fc.option(baseArb(1), { nil: undefined }),
});

const oversizeArb = fc.record({ k: fc.constant('oversize' as const), cut: fc.boolean(), extra: fc.nat(4096) });

const NON_FATAL_DEFECTS: readonly Defect[] = DEFECTS.slice(0, DEFECTS.indexOf('empty') + 1);
const FATAL_DEFECTS: readonly Defect[] = DEFECTS.slice(DEFECTS.indexOf('empty') + 1);

/** Recipes for a connection that has not sent hello yet. */
export const preHelloArb: fc.Arbitrary<Recipe> = fc.oneof(
  { weight: 70, arbitrary: helloArb },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('mutate' as const), base: helloArb, region: fc.constantFrom('frame' as const, 'json' as const), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('edit' as const), base: helloArb, edits: fc.array(editArb, { minLength: 1, maxLength: 2 }) }) },
  { weight: 5, arbitrary: pingArb },
  { weight: 2, arbitrary: pongArb },
  { weight: 3, arbitrary: pushArb },
  { weight: 8, arbitrary: fc.record({ k: fc.constant('random' as const), bytes: randomFrameBytesArb }) },
  { weight: 3, arbitrary: textArb },
  { weight: 2, arbitrary: oversizeArb },
);

/**
 * Recipes for a connection after welcome: mostly frames that keep it open
 * (about 1 in 9 closes it), valid and refused ones mixed. Frames refused whatever
 * the state (random bytes, text) come mostly before hello, where they cost a
 * connection but no handshake.
 */
export const readyArb: fc.Arbitrary<Recipe> = fc.oneof(
  { weight: 20, arbitrary: pingArb },
  { weight: 6, arbitrary: pongArb },
  { weight: 44, arbitrary: pushArb },
  { weight: 80, arbitrary: badPushArb(NON_FATAL_DEFECTS) },
  { weight: 4, arbitrary: badPushArb(FATAL_DEFECTS) },
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('mutate' as const),
      base: baseArb(1),
      region: fc.constantFrom('frame' as const, 'json' as const, 'attachments' as const),
      mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('edit' as const), base: baseArb(1), edits: fc.array(editArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('splice' as const), a: baseArb(1), b: baseArb(1), cutA: fc.nat(), cutB: fc.nat(), concat: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('random' as const), bytes: randomFrameBytesArb }) },
  { weight: 1, arbitrary: textArb },
  { weight: 1, arbitrary: oversizeArb },
  { weight: 1, arbitrary: helloArb },
);

/**
 * An endless deterministic stream of recipes: fast-check samples them in chunks
 * with seeds derived from (seed, stream, chunk).
 */
export function recipeStream(arb: fc.Arbitrary<Recipe>, seed: number, stream: number, chunk = 200): () => Recipe {
  let buffer: Recipe[] = [];
  let index = 0;
  return () => {
    if (buffer.length === 0) buffer = fc.sample(arb, { seed: mix(seed, stream, index++), numRuns: chunk }).reverse();
    return buffer.pop() as Recipe;
  };
}

function mix(...values: number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    h ^= v | 0;
    h = Math.imul(h, 0x01000193);
    h ^= h >>> 15;
  }
  return h | 0;
}

// ---------------------------------------------------------------------------
// Building frames

export interface Frame {
  readonly data: Uint8Array | string;
  readonly label: string;
}

const COLLECTIONS = ['events', 'notes', '__proto__'];
const RECORD_IDS = ['a', 'b', 'c', 'constructor', 'x-1', 'ü'];

function changeOf(body: ChangeBody, space: SpaceId, replica: ReplicaId, seq: number, now: number): Change {
  const out = { ...body.change } as Record<string, unknown>;
  out['space'] = space;
  out['replica'] = replica;
  out['seq'] = seq;
  out['hlc'] = formatTimestamp({ wall: Math.max(0, now - body.back), counter: body.counter, replica });
  if (body.collide) {
    out['collection'] = COLLECTIONS[body.coll % COLLECTIONS.length];
    out['id'] = RECORD_IDS[body.rid % RECORD_IDS.length];
  }
  if (body.change.op === 'version') out['context'] = new Map([...body.change.context].filter(([r]) => r !== replica));
  return out as unknown as Change;
}

/** The connection's replica, or a plausible one of its worker before hello. */
function replicaOf(view: ConnView, pick: number): ReplicaId {
  return view.replica ?? poolReplica(view.worker, pick);
}

/**
 * A space to push to: a subscribed one that fuzz frames may write, when there is
 * one; with `any`, any subscribed space, protected ones included (the oracle
 * skips a frame that would write there).
 */
function targetSpace(view: ConnView, world: World, pick: number, any = false): SpaceId {
  const writable = any ? view.subscribed : view.subscribed.filter((s) => !world.protectedSpaces.has(s));
  const from = writable.length > 0 ? writable : view.subscribed.length > 0 ? view.subscribed : ownSpaces(view.worker, view.epoch);
  return from[pick % from.length] as SpaceId;
}

function firstSeq(mode: SeqMode, held: number, count: number, pick: number): number {
  if (mode === 'next' || held === 0) return held + 1;
  if (mode === 'overlap') return Math.max(1, held - (pick % Math.max(1, count - 1)));
  return Math.max(1, held - count + 1 - (pick % 3));
}

function pushMessage(r: PushRecipe, view: ConnView, world: World): Push {
  const space = targetSpace(view, world, r.pick, r.anySpace);
  const replica = replicaOf(view, r.pick);
  const first = firstSeq(r.seq, world.held(space, replica), r.bodies.length, r.pick);
  const now = world.now();
  return { type: 'push', space, changes: r.bodies.map((b, i) => changeOf(b, space, replica, first + i, now)) };
}

function helloMessage(r: HelloRecipe, view: ConnView, world: World): Hello {
  const replica = 'pool' in r.replica ? poolReplica(view.worker, r.replica.pool) : 'fresh' in r.replica ? freshReplica(view.worker, r.replica.fresh) : r.replica.random;
  const own = ownSpaces(view.worker, view.epoch).filter((_, i) => r.own[i]);
  const chosen: SpaceId[] = [...(own.length > 0 || r.extra.length > 0 ? own : ownSpaces(view.worker, view.epoch).slice(0, 1)), ...r.extra];
  if (r.control) chosen.push('control' as SpaceId);
  if (r.defaultSpace) chosen.push('default' as SpaceId);
  for (let i = 0; i < r.many; i++) chosen.push(`fz${view.worker}.${view.epoch}-m${i}` as SpaceId);
  const unique = [...new Set(chosen)];
  const spaces = r.empty ? [] : unique.map((space) => {
    const head = world.head(space);
    const after = r.after === 'head' ? head : r.after === 'zero' ? 0 : r.after === 'beyond' ? head + 1 + (r.afterValue % 1000) : r.afterValue % (head + 1);
    return { space, after };
  });
  if (r.dup && spaces.length > 0) spaces.push({ ...(spaces[0] as { space: SpaceId; after: number }) });
  const protocol = r.protocol === 'ok' ? PROTOCOL_VERSION : r.protocol;
  return { type: 'hello', protocol, replica, spaces, time: r.time === 'now' ? world.now() : r.time, ...(r.token === undefined ? {} : { token: r.token }) };
}

function baseBytes(r: BaseRecipe, view: ConnView, world: World): Uint8Array {
  switch (r.k) {
    case 'push': {
      const message = pushMessage(r, view, world);
      if (!r.extraKeys) return encodeUpstream(message);
      // Unknown keys, `__proto__` among them, are data the decoder drops.
      const raw = readFrame(encodeUpstream(message));
      const json = raw.json as { changes: Array<Record<string, unknown>> } & Record<string, unknown>;
      setOwn(json, '__proto__', { type: 'hello' });
      setOwn(json, 'extra', [1, 2, 3]);
      for (const c of json.changes) setOwn(c, '__proto__', { op: 'delete' });
      return writeFrame(json, raw.attachments);
    }
    case 'hello':
      return encodeUpstream(helloMessage(r, view, world));
    case 'ping':
    case 'pong':
      return encodeUpstream({ type: r.k, id: r.id });
  }
}


/** A frame around arbitrary JSON bytes, lengths correct. */
export function rawFrame(text: Uint8Array, attachments: readonly Uint8Array[]): Uint8Array {
  const header = [FRAME_MARKER, ...varint(attachments.length)];
  for (const a of attachments) header.push(...varint(a.length));
  header.push(...varint(text.length));
  return concat([Uint8Array.from(header), text, ...attachments]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

function slots(value: unknown, out: Slot[] = []): Slot[] {
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push({ parent: value, key: i });
      slots(v, out);
    });
  } else if (typeof value === 'object' && value !== null) {
    for (const key of Object.keys(value)) {
      out.push({ parent: value as Record<string, unknown>, key });
      slots((value as Record<string, unknown>)[key], out);
    }
  }
  return out;
}

function applyEdit(root: { json: unknown; attachments: Uint8Array[] }, edit: Edit): void {
  if (edit.kind === 'attachments') {
    root.attachments = root.attachments.slice(0, Math.max(0, root.attachments.length - edit.drop));
    for (let i = 0; i < edit.add; i++) root.attachments.push(Uint8Array.from([i]));
    return;
  }
  const all = slots(root.json);
  if (edit.kind === 'addKey') {
    const objects = [root.json, ...all.map((s) => (s.parent as Record<string | number, unknown>)[s.key])].filter(
      (v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v),
    );
    if (objects.length > 0) setOwn(objects[edit.target % objects.length] as Record<string, unknown>, edit.key, edit.value);
    return;
  }
  if (all.length === 0) {
    if (edit.kind === 'replace') root.json = edit.value;
    return;
  }
  const { parent, key } = all[edit.target % all.length] as Slot;
  const p = parent as Record<string | number, unknown>;
  if (edit.kind === 'replace') setOwn(p as Record<string, unknown>, String(key), edit.value);
  else if (edit.kind === 'wrap') setOwn(p as Record<string, unknown>, String(key), [p[key]]);
  else if (Array.isArray(parent)) parent.splice(key as number, 1);
  else delete p[key];
}

const utf8 = new TextEncoder();

/** The push JSON of `message` with `edit` applied to its parsed form. */
function editedPush(message: Push, edit: (json: { space: unknown; changes: Array<Record<string, unknown>> }, attachments: Uint8Array[]) => void): Uint8Array {
  const raw = readFrame(encodeUpstream(message));
  const attachments = [...raw.attachments];
  edit(raw.json as { space: unknown; changes: Array<Record<string, unknown>> }, attachments);
  return writeFrame(raw.json, attachments);
}

function badPush(r: BadPushRecipe, view: ConnView, world: World): Uint8Array {
  const space = targetSpace(view, world, r.pick, true);
  const replica = replicaOf(view, r.pick);
  const held = world.held(space, replica);
  const now = world.now();
  const make = (bodies: readonly ChangeBody[], first = held + 1, sp = space, rep = replica): Change[] => bodies.map((b, i) => changeOf(b, sp, rep, first + i, now));
  const changes = make(r.bodies);
  const at = r.at % changes.length;
  const other = (`zz${r.n}` as ReplicaId) === replica ? ('zzz' as ReplicaId) : (`zz${r.n}` as ReplicaId);
  const set = (i: number, patch: Record<string, unknown>): void => {
    changes[i] = { ...changes[i], ...patch } as Change;
  };
  const push = (list: Change[] = changes, sp: SpaceId = space): Uint8Array => encodeUpstream({ type: 'push', space: sp, changes: list });
  switch (r.defect) {
    case 'foreignSpace':
      set(at, { space: `${space === 'fz-other' ? 'fz-other2' : 'fz-other'}` });
      return push();
    case 'foreignReplica':
      set(at, { replica: other, hlc: formatTimestamp({ wall: now, counter: 0, replica: other }) });
      return push();
    case 'foreignHlc':
      set(at, { hlc: formatTimestamp({ wall: now, counter: 0, replica: other }) });
      return push();
    case 'gapInside':
      if (changes.length < 2) changes.push(...make(r.bodies.slice(0, 1), held + 3));
      else for (let i = Math.max(1, at); i < changes.length; i++) set(i, { seq: (changes[i] as Change).seq + 1 });
      return push();
    case 'reversed':
      return push(make([...r.bodies, ...r.bodies].slice(0, Math.max(2, r.bodies.length))).reverse());
    case 'dupInside':
      return push([...changes.slice(0, at + 1), changes[at] as Change, ...changes.slice(at + 1).map((c) => ({ ...c, seq: c.seq + 1 }) as Change)]);
    case 'gapAfter':
      return push(make(r.bodies, held + 2 + (r.n % 5)));
    case 'maxSafeSeq':
      return push(make(r.bodies.slice(0, 1), Number.MAX_SAFE_INTEGER));
    case 'future':
      set(at, { hlc: formatTimestamp({ wall: now + world.limits.maxClockDrift + 120_000 + r.n * 60_000, counter: 0, replica }) });
      return push();
    case 'maxWall':
      set(at, { hlc: formatTimestamp({ wall: MAX_WALL, counter: 0xffff, replica }) });
      return push();
    case 'notYjs':
      set(at, { op: 'crdt', field: 'body', type: 'text', update: r.bytes.length > 0 ? r.bytes : Uint8Array.from([0xff, 0xff, 0xff, 0x01]) });
      return push();
    case 'setAndUnset':
      set(at, { op: 'patch', fields: { f: 1, g: null }, unset: ['g'] });
      return push();
    case 'seenItself': {
      const c = changes[at] as Change;
      set(at, { op: 'version', value: {}, context: new Map([[replica, c.seq + (r.n % 3)]]) });
      return push();
    }
    case 'badFieldName':
      set(at, { op: r.n % 2 ? 'put' : 'patch', fields: { ['']: 1 }, unset: [] });
      return push();
    case 'oversizeBatch': {
      const count = world.limits.maxBatch + 1 + (r.n % (world.limits.maxBatch * 2));
      const bodies = Array.from({ length: count }, (_, i) => ({ ...(r.bodies[i % r.bodies.length] as ChangeBody), change: { ...(r.bodies[0] as ChangeBody).change, op: 'delete' } as Change }));
      return push(make(bodies));
    }
    case 'unsubscribed': {
      const elsewhere = `fz${view.worker}.${view.epoch}-unsub${r.n % 3}` as SpaceId;
      return push(make(r.bodies, 1, elsewhere), elsewhere);
    }
    case 'empty':
      return push([]);
    case 'zeroSeq':
      return editedPush({ type: 'push', space, changes }, (json) => setOwn(json.changes[at] as Record<string, unknown>, 'seq', 0));
    case 'negativeSeq':
      return editedPush({ type: 'push', space, changes }, (json) => setOwn(json.changes[at] as Record<string, unknown>, 'seq', -1 - r.n));
    case 'floatSeq':
      return editedPush({ type: 'push', space, changes }, (json) => setOwn(json.changes[at] as Record<string, unknown>, 'seq', held + 1.5));
    case 'unsafeSeq':
      return editedPush({ type: 'push', space, changes }, (json) => setOwn(json.changes[at] as Record<string, unknown>, 'seq', 2 ** 53 + 2));
    case 'infiniteSeq': {
      // JSON.parse reads 1e999 as Infinity.
      const raw = readFrame(push());
      const text = JSON.stringify(raw.json).replace(/"seq":\d+/, '"seq":1e999');
      return rawFrame(utf8.encode(text), raw.attachments);
    }
    case 'stringSeq':
      return editedPush({ type: 'push', space, changes }, (json) => setOwn(json.changes[at] as Record<string, unknown>, 'seq', String(held + 1)));
    case 'deepJson': {
      let deep: unknown = 1;
      for (let i = 0; i < 65 + (r.n % 200); i++) deep = r.n % 2 ? [deep] : { d: deep };
      set(at, { op: 'put', fields: { deep } });
      return push();
    }
    case 'attachmentIndex':
      set(at, { op: 'crdt', field: 'body', type: 'text', update: Uint8Array.from([0, 0]) });
      return editedPush({ type: 'push', space, changes }, (json, attachments) => setOwn(json.changes[at] as Record<string, unknown>, 'update', attachments.length + (r.n % 3)));
    case 'unknownOp':
      return editedPush({ type: 'push', space, changes }, (json) => setOwn(json.changes[at] as Record<string, unknown>, 'op', ['merge', 'PUT', '', 'constructor'][r.n % 4]));
    case 'badHlc':
      return editedPush({ type: 'push', space, changes }, (json) =>
        setOwn(json.changes[at] as Record<string, unknown>, 'hlc', ['', 'zzzzzzzzzzzz-0000-r', `${'0'.repeat(12)}-00000-${replica}`, `FFFFFFFFFFFF-0000-${replica}`][r.n % 4]),
      );
  }
}

/** The bytes (or text) of a recipe for a connection in the state `view`. */
export function build(recipe: Recipe, view: ConnView, world: World): Frame {
  switch (recipe.k) {
    case 'push':
    case 'hello':
    case 'ping':
    case 'pong':
      return { data: baseBytes(recipe, view, world), label: recipe.k };
    case 'badPush':
      return { data: badPush(recipe, view, world), label: `badPush:${recipe.defect}` };
    case 'mutate': {
      const frame = baseBytes(recipe.base, view, world);
      if (recipe.region === 'frame') return { data: mutate(frame, recipe.mutations), label: `mutate:${recipe.base.k}:frame` };
      const raw = readFrame(frame);
      if (recipe.region === 'json') return { data: rawFrame(mutate(utf8.encode(JSON.stringify(raw.json)), recipe.mutations), raw.attachments), label: `mutate:${recipe.base.k}:json` };
      return { data: writeFrame(raw.json, raw.attachments.map((a) => mutate(a, recipe.mutations))), label: `mutate:${recipe.base.k}:attachments` };
    }
    case 'edit': {
      const raw = readFrame(baseBytes(recipe.base, view, world));
      const root = { json: raw.json, attachments: [...raw.attachments] };
      for (const edit of recipe.edits) applyEdit(root, edit);
      return { data: writeFrame(root.json, root.attachments), label: `edit:${recipe.base.k}` };
    }
    case 'splice': {
      const a = baseBytes(recipe.a, view, world);
      const b = baseBytes(recipe.b, view, world);
      if (recipe.concat) return { data: concat([a, b]), label: 'splice:concat' };
      return { data: concat([a.subarray(0, recipe.cutA % (a.length + 1)), b.subarray(recipe.cutB % (b.length + 1))]), label: 'splice:cut' };
    }
    case 'random':
      return { data: recipe.bytes, label: 'random' };
    case 'text':
      return { data: recipe.json ? JSON.stringify(readFrame(baseBytes(recipe.json, view, world)).json) : recipe.text, label: 'text' };
    case 'oversize': {
      const max = world.limits.maxFrameBytes;
      if (recipe.cut) return { data: new Uint8Array(max * 4 + 1 + recipe.extra).fill(FRAME_MARKER), label: 'oversize:cut' };
      // A push that would be valid but for its size.
      const space = targetSpace(view, world, recipe.extra);
      const replica = replicaOf(view, recipe.extra);
      const change = {
        space,
        collection: 'events',
        id: 'big',
        replica,
        seq: world.held(space, replica) + 1,
        hlc: formatTimestamp({ wall: world.now(), counter: 0, replica }),
        op: 'put',
        fields: { blob: 'x'.repeat(max + recipe.extra) },
      } as Change;
      return { data: encodeUpstream({ type: 'push', space, changes: [change] }), label: 'oversize:frame' };
    }
  }
}

// ---------------------------------------------------------------------------
// The oracle

export type Expect =
  /** An `error` with this code and `fatal: true`, then a close with code 1008. */
  | { readonly kind: 'fatal'; readonly code: ErrorCode }
  /** Past the socket's hard cap (4 x maxFrameBytes): `ws` closes with 1009 before the session sees the frame. */
  | { readonly kind: 'cut' }
  | { readonly kind: 'welcome'; readonly replica: ReplicaId; readonly spaces: readonly SpaceId[] }
  | { readonly kind: 'pong'; readonly id: number }
  /** A non-fatal `error` with this code for this space; the connection stays open. `push`: the decoded push. */
  | { readonly kind: 'refuse'; readonly code: ErrorCode; readonly space: SpaceId; readonly push?: Push }
  /** An `ack` of `upTo`; `fresh` are the changes it newly stores. */
  | { readonly kind: 'ack'; readonly space: SpaceId; readonly replica: ReplicaId; readonly upTo: number; readonly fresh: readonly Change[]; readonly push?: Push }
  /** A valid frame that gets no answer (a pong, an empty push). */
  | { readonly kind: 'silent'; readonly push?: Push }
  /** Not sent: it could write to a protected space, use another worker's replica, or sits on a clock-drift boundary. */
  | { readonly kind: 'skip'; readonly why: string };

/** What the server must do with `data` from a connection in the state `view`. */
export function predict(data: Uint8Array | string, view: ConnView, world: World): Expect {
  if (typeof data === 'string') return { kind: 'fatal', code: 'malformed_frame' };
  if (data.length > world.limits.maxFrameBytes * 4) return { kind: 'cut' };
  if (data.length > world.limits.maxFrameBytes) return { kind: 'fatal', code: 'frame_too_large' };
  let message: UpstreamMessage;
  try {
    message = decodeUpstream(data);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return { kind: 'fatal', code: error.code };
  }
  switch (message.type) {
    case 'ping':
      return { kind: 'pong', id: message.id };
    case 'pong':
      return { kind: 'silent' };
    case 'hello':
      if (view.phase !== 'hello') return { kind: 'fatal', code: 'invalid_message' };
      if (!isSupportedProtocol(message.protocol)) return { kind: 'fatal', code: 'unsupported_protocol' };
      if (new Set(message.spaces.map((s) => s.space)).size !== message.spaces.length) return { kind: 'fatal', code: 'invalid_message' };
      // Open access grants every space asked for; none at all is fatal.
      if (message.spaces.length === 0) return { kind: 'fatal', code: 'forbidden' };
      if (!world.mayUse(message.replica, view.worker)) return { kind: 'skip', why: 'replica of another worker' };
      return { kind: 'welcome', replica: message.replica, spaces: message.spaces.map((s) => s.space) };
    case 'push':
      if (view.phase !== 'ready') return { kind: 'fatal', code: 'not_ready' };
      return withPush(predictPush(message, view, world), message);
    case 'floor':
      // Noted for the stability horizon; nothing is answered.
      return view.phase === 'ready' ? { kind: 'silent' } : { kind: 'fatal', code: 'not_ready' };
    case 'presence': {
      // Relayed to the space's other clients; the sender is answered only with a refusal.
      if (view.phase !== 'ready') return { kind: 'fatal', code: 'not_ready' };
      if (!view.subscribed.includes(message.space)) return { kind: 'refuse', code: 'forbidden', space: message.space };
      if (message.state !== null && Buffer.byteLength(JSON.stringify(message.state)) > MAX_PRESENCE_BYTES) return { kind: 'refuse', code: 'too_large', space: message.space };
      // Whether it is within the per-second presence rate depends on timing the model does not keep.
      return { kind: 'skip', why: 'presence rate' };
    }
  }
}

function withPush(expect: Expect, push: Push): Expect {
  return expect.kind === 'refuse' || expect.kind === 'ack' || expect.kind === 'silent' ? { ...expect, push } : expect;
}

function predictPush(push: Push, view: ConnView, world: World): Expect {
  const { space, changes } = push;
  const replica = view.replica as ReplicaId;
  const refuse = (code: ErrorCode): Expect => ({ kind: 'refuse', code, space });
  if (!view.subscribed.includes(space)) return refuse('forbidden');
  if (changes.length > world.limits.maxBatch) return refuse('batch_too_large');
  const now = world.now();
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as Change;
    if (change.space !== space || change.replica !== replica) return refuse('invalid_message');
    if (i > 0 && change.seq !== (changes[i - 1] as Change).seq + 1) return refuse('sequence_gap');
    try {
      validateChange(change);
      if (change.op === 'crdt') Y.applyUpdate(new Y.Doc({ gc: true, guid: 'fuzz' }), change.update);
    } catch {
      return refuse('invalid_message');
    }
    const ahead = hlcWall(change.hlc) - now;
    // The server reads its clock a moment later: stay clear of the boundary.
    if (Math.abs(ahead - world.limits.maxClockDrift) < 60_000) return { kind: 'skip', why: 'clock drift boundary' };
    if (ahead > world.limits.maxClockDrift) return refuse('clock_drift');
  }
  if (changes.length === 0) return { kind: 'silent' };
  const held = world.held(space, replica);
  const fresh = changes.filter((c) => c.seq > held);
  if (fresh.length === 0) return { kind: 'ack', space, replica, upTo: held, fresh };
  if ((fresh[0] as Change).seq !== held + 1) return refuse('sequence_gap');
  // The storage reads crdt updates with Y.decodeUpdate (KNOWN_BUGS.crdtDecode).
  if (fresh.some((c) => c.op === 'crdt' && !yjsDecodes(c.update))) return world.knownBugs ? refuse('invalid_message') : { kind: 'skip', why: 'known bug: crdtDecode' };
  if (world.protectedSpaces.has(space)) return { kind: 'skip', why: 'valid push to a protected space' };
  return { kind: 'ack', space, replica, upTo: (fresh[fresh.length - 1] as Change).seq, fresh };
}

/** `count` valid changes of every op by `replica` in `space`, seq 1..count (to seed a control space). */
export function seedChanges(space: SpaceId, replica: ReplicaId, count: number, seed: number, now: number): Change[] {
  return fc.sample(changeBodyArb, { seed, numRuns: count }).map((body, i) => changeOf(body, space, replica, i + 1, now));
}

function yjsDecodes(update: Uint8Array): boolean {
  try {
    Y.decodeUpdate(update);
    return true;
  } catch {
    return false;
  }
}

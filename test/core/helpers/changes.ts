/**
 * A generator of realistic change histories for property tests.
 *
 * It simulates several replicas, each with its own skewed (and sometimes
 * backward-stepping) physical clock, its own Hlc, its own local record states and,
 * for crdt fields, its own Y.Doc per field. Replicas write to a small set of
 * record ids and field names (including `__proto__` and `constructor`) so writes
 * collide, and between writes they receive some of the other replicas' changes,
 * in any order. Merge writes carry the context the writer actually had
 * (contextFor(local state)); crdt writes carry the Yjs update captured from
 * doc.on('update') after a local edit.
 *
 * The arbitrary draws a script (plain numbers, so fast-check can shrink it) and
 * `simulate` replays it deterministically into the list of changes.
 */
import fc from 'fast-check';
import * as Y from 'yjs';
import {
  Hlc,
  applyChange,
  canonicalJson,
  canonicalState,
  contextFor,
  crdtRoot,
  fieldsFromEntries,
  formatTimestamp,
  materialize,
  recordKey,
  replicaId,
  spaceId,
  type Change,
  type ChangeOp,
  type CrdtType,
  type Fields,
  type Json,
  type MaterializeOptions,
  type RecordState,
  type ReplicaId,
} from '@syncline/core/internal';

export type Policy = 'lww' | 'merge' | 'crdt';
export const POLICIES: readonly Policy[] = ['lww', 'merge', 'crdt'];

export const SPACE = spaceId('space-1');
/** One collection per policy. */
export const COLLECTIONS: Readonly<Record<Policy, string>> = { lww: 'notes', merge: 'events', crdt: 'docs' };
/** Record ids the writes collide on. */
export const RECORD_IDS: readonly string[] = ['__proto__', 'constructor', 'note-1'];
/** Field names of lww and merge records. */
export const FIELD_NAMES: readonly string[] = ['__proto__', 'constructor', 'title', 'toString'];
/** crdt fields of crdt records, with their Yjs type. */
export const CRDT_FIELDS: ReadonlyArray<readonly [string, CrdtType]> = [
  ['__proto__', 'text'],
  ['constructor', 'map'],
  ['items', 'array'],
];
/** lww fields mixed into crdt records. */
export const CRDT_LWW_FIELDS: readonly string[] = ['title', 'hasOwnProperty'];

/** A small pool of field values, so different writers often write equal values. */
export const VALUES: readonly Json[] = [
  0,
  1,
  'x',
  'y',
  null,
  true,
  [1, 'a'],
  { nested: { n: 1 } },
  JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c"}') as Json,
];
const CRDT_ITEMS: readonly Json[] = ['x', 1, true, null, { n: 2 }];
const MAP_KEYS: readonly string[] = ['a', 'b', 'c'];
const TEXT_CHARS = 'abcxyz';

/** Far from 0 so backward steps never reach negative time. */
export const EPOCH = 1_700_000_000_000;

export interface Step {
  /** Replica index that writes (skipped once it made maxWritesPerReplica writes). */
  readonly writer: number;
  /** True time advance before the step, in ms; 0 makes writes share a millisecond. */
  readonly advance: number;
  /** Change of the writer's physical clock offset: negative steps it backwards. */
  readonly clockJump: number;
  readonly record: number;
  /** 0..9, mapped to an op per policy. */
  readonly kind: number;
  /** Bit masks over the field names: fields set, fields unset (patch). */
  readonly set: number;
  readonly unset: number;
  /** Indexes into VALUES, one per field name. */
  readonly values: readonly number[];
  readonly edit: { readonly field: number; readonly pos: number; readonly len: number; readonly item: number };
  /** After the write: replica `to` receives pending changes chosen by `picks` (any order). */
  readonly deliveries: ReadonlyArray<{ readonly to: number; readonly picks: readonly number[] }>;
}

export interface Script {
  readonly policy: Policy;
  /** Initial physical clock offset of each replica, in ms. */
  readonly skews: readonly number[];
  readonly steps: readonly Step[];
  readonly maxWritesPerReplica: number;
}

export interface HistoryOptions {
  /** Number of replicas (default 5, at least 2). */
  readonly replicas?: number;
  /** Writes per replica (default 8). */
  readonly maxWritesPerReplica?: number;
  /** Steps in the script (default replicas * maxWritesPerReplica). */
  readonly maxSteps?: number;
}

export function arbScript(policy: Policy, options: HistoryOptions = {}): fc.Arbitrary<Script> {
  const replicas = Math.max(2, options.replicas ?? 5);
  const maxWritesPerReplica = options.maxWritesPerReplica ?? 8;
  const maxSteps = options.maxSteps ?? replicas * maxWritesPerReplica;
  const step: fc.Arbitrary<Step> = fc.record({
    writer: fc.nat({ max: replicas - 1 }),
    advance: fc.nat({ max: 3 }),
    clockJump: fc.oneof(
      { weight: 6, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: -5_000, max: 2_000 }) },
    ),
    record: fc.nat({ max: RECORD_IDS.length - 1 }),
    kind: fc.nat({ max: 9 }),
    set: fc.nat({ max: 15 }),
    unset: fc.nat({ max: 15 }),
    values: fc.array(fc.nat({ max: VALUES.length - 1 }), { minLength: 4, maxLength: 4 }),
    edit: fc.record({
      field: fc.nat({ max: CRDT_FIELDS.length - 1 }),
      pos: fc.nat({ max: 16 }),
      len: fc.nat({ max: 2 }),
      item: fc.nat({ max: 30 }),
    }),
    deliveries: fc.array(
      fc.record({ to: fc.nat({ max: replicas - 1 }), picks: fc.array(fc.nat(), { maxLength: 6 }) }),
      { maxLength: 3 },
    ),
  });
  return fc.record({
    policy: fc.constant(policy),
    skews: fc.array(fc.integer({ min: -3_000, max: 3_000 }), { minLength: replicas, maxLength: replicas }),
    steps: fc.array(step, { minLength: 1, maxLength: maxSteps, size: 'max' }),
    maxWritesPerReplica: fc.constant(maxWritesPerReplica),
  });
}

export interface History {
  readonly policy: Policy;
  readonly replicas: readonly ReplicaId[];
  /** Every change made, in the order they were made. */
  readonly changes: readonly Change[];
  /** Each replica's local record states at the end, by recordKey (it has not necessarily received everything). */
  readonly localStates: ReadonlyArray<ReadonlyMap<string, RecordState>>;
  /** The changes each replica applied, its own writes included, in the order it applied them. */
  readonly received: ReadonlyArray<readonly Change[]>;
}

/** Realistic change histories for one policy's collection. */
export function arbHistory(policy: Policy, options: HistoryOptions = {}): fc.Arbitrary<History> {
  return arbScript(policy, options).map(simulate);
}

/** The full list of changes of a realistic history. */
export function arbChanges(policy: Policy, options: HistoryOptions = {}): fc.Arbitrary<Change[]> {
  return arbHistory(policy, options).map((h) => [...h.changes]);
}

const REMOTE = Symbol('remote');
const LOCAL = Symbol('local');
const REPLICA_NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

class SimReplica {
  readonly id: ReplicaId;
  readonly clock: Hlc;
  offset: number;
  seq = 0;
  writes = 0;
  /** Local record states by record id (one collection per history). */
  readonly states = new Map<string, RecordState>();
  readonly held = new Set<Change>();
  readonly received: Change[] = [];
  readonly docs = new Map<string, Y.Doc>();

  constructor(
    readonly index: number,
    skew: number,
    world: { time: number },
  ) {
    this.id = replicaId(REPLICA_NAMES[index] ?? `replica-${index}`);
    this.offset = skew;
    this.clock = new Hlc({ replica: this.id, now: () => world.time + this.offset });
  }

  /**
   * The replica's document for a crdt field, brought up to date with every update
   * of that field the replica has received (as an app loads it before editing).
   */
  doc(record: string, field: string): Y.Doc {
    const key = `${record.length}:${record}/${field}`;
    let doc = this.docs.get(key);
    if (!doc) {
      // A fixed Yjs client id per replica keeps the simulation deterministic (fast-check replays by seed);
      // a fixed guid spares Yjs generating a random uuid (dozens of crypto calls) per document.
      doc = new Y.Doc({ guid: key });
      doc.clientID = this.index + 1;
      this.docs.set(key, doc);
    }
    const received = this.states.get(record)?.crdt?.get(field);
    if (received) Y.applyUpdate(doc, received.update, REMOTE);
    return doc;
  }

  /** Applies a change to the local state; remote changes also advance the clock. */
  deliver(change: Change): void {
    if (this.held.has(change)) return;
    this.held.add(change);
    this.received.push(change);
    if (change.replica !== this.id) this.clock.receive(change.hlc);
    this.states.set(change.id, applyChange(this.states.get(change.id), change));
  }
}

function pickFields(names: readonly string[], mask: number, values: readonly number[]): Fields {
  const entries: Array<[string, Json]> = [];
  names.forEach((name, i) => {
    if (mask & (1 << i)) entries.push([name, VALUES[(values[i] ?? 0) % VALUES.length] as Json]);
  });
  return fieldsFromEntries(entries);
}

function lwwOp(step: Step, names: readonly string[], kind: 'put' | 'patch' | 'delete'): ChangeOp {
  const all = (1 << names.length) - 1;
  if (kind === 'delete') return { op: 'delete' };
  if (kind === 'put') return { op: 'put', fields: pickFields(names, step.set & all, step.values) };
  let set = step.set & all;
  const unsetMask = step.unset & all & ~set;
  if (set === 0 && unsetMask === 0) set = 1;
  const unset = names.filter((_, i) => unsetMask & (1 << i));
  return { op: 'patch', fields: pickFields(names, set, step.values), unset };
}

/** A local Yjs edit on the writer's own document for the field; the update comes from doc.on('update'). */
function crdtOp(replica: SimReplica, record: string, step: Step): ChangeOp {
  const [field, type] = CRDT_FIELDS[step.edit.field % CRDT_FIELDS.length] as readonly [string, CrdtType];
  const doc = replica.doc(record, field);
  const updates: Uint8Array[] = [];
  const onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === LOCAL) updates.push(update);
  };
  doc.on('update', onUpdate);
  try {
    const { pos, len, item } = step.edit;
    doc.transact(() => {
      const root = crdtRoot(doc, type);
      if (root instanceof Y.Text) {
        const length = root.length;
        if (len > 0 && length > 0) root.delete(pos % length, Math.min(len, length - (pos % length)));
        else root.insert(pos % (length + 1), TEXT_CHARS.slice(item % TEXT_CHARS.length, (item % TEXT_CHARS.length) + 1 + (item % 2)));
      } else if (root instanceof Y.Map) {
        const key = MAP_KEYS[pos % MAP_KEYS.length] as string;
        if (len === 0 && root.has(key)) root.delete(key);
        else root.set(key, CRDT_ITEMS[item % CRDT_ITEMS.length] as Json);
      } else {
        const length = root.length;
        if (len > 1 && length > 0) root.delete(pos % length, 1);
        else root.insert(pos % (length + 1), [CRDT_ITEMS[item % CRDT_ITEMS.length] as Json]);
      }
    }, LOCAL);
  } finally {
    doc.off('update', onUpdate);
  }
  if (updates.length !== 1) throw new Error(`expected one Yjs update from a local edit, got ${updates.length}`);
  return { op: 'crdt', field, type, update: updates[0] as Uint8Array };
}

function opFor(policy: Policy, replica: SimReplica, record: string, step: Step): ChangeOp {
  switch (policy) {
    case 'lww':
      return lwwOp(step, FIELD_NAMES, step.kind < 4 ? 'patch' : step.kind < 8 ? 'put' : 'delete');
    case 'merge':
      return {
        op: 'version',
        value: step.kind < 2 ? null : pickFields(FIELD_NAMES, step.set, step.values),
        context: contextFor(replica.states.get(record)?.merge),
      };
    case 'crdt':
      if (step.kind < 6) return crdtOp(replica, record, step);
      return lwwOp(step, CRDT_LWW_FIELDS, step.kind < 8 ? 'patch' : step.kind < 9 ? 'put' : 'delete');
  }
}

/** Replays a script: every write is applied at once to its writer, deliveries follow it. */
export function simulate(script: Script): History {
  const world = { time: EPOCH };
  const replicas = script.skews.map((skew, i) => new SimReplica(i, skew, world));
  const changes: Change[] = [];
  const collection = COLLECTIONS[script.policy];
  for (const step of script.steps) {
    world.time += step.advance;
    const writer = replicas[step.writer % replicas.length] as SimReplica;
    if (writer.writes < script.maxWritesPerReplica) {
      // Offsets stay within a minute of true time, far below the default maxClockDrift.
      writer.offset = Math.max(-60_000, Math.min(60_000, writer.offset + step.clockJump));
      const record = RECORD_IDS[step.record % RECORD_IDS.length] as string;
      const op = opFor(script.policy, writer, record, step);
      writer.writes++;
      writer.seq++;
      const change = {
        space: SPACE,
        collection,
        id: record,
        replica: writer.id,
        seq: writer.seq,
        hlc: formatTimestamp(writer.clock.now()),
        ...op,
      } as Change;
      changes.push(change);
      writer.deliver(change);
    }
    for (const { to, picks } of step.deliveries) {
      const receiver = replicas[to % replicas.length] as SimReplica;
      const pending = changes.filter((c) => !receiver.held.has(c));
      for (const pick of picks) {
        if (pending.length === 0) break;
        const [change] = pending.splice(pick % pending.length, 1);
        receiver.deliver(change as Change);
      }
    }
  }
  for (const replica of replicas) for (const doc of replica.docs.values()) doc.destroy();
  return {
    policy: script.policy,
    replicas: replicas.map((r) => r.id),
    changes,
    localStates: replicas.map((r) => new Map([...r.states].map(([id, state]) => [recordKey({ collection, id }), state] as const))),
    received: replicas.map((r) => r.received),
  };
}

/** Applies changes in the given order, one state per record (keyed by recordKey). */
export function applyAll(changes: Iterable<Change>, initial?: ReadonlyMap<string, RecordState>): Map<string, RecordState> {
  const states = new Map(initial);
  for (const change of changes) {
    const key = recordKey(change);
    states.set(key, applyChange(states.get(key), change));
  }
  return states;
}

/** canonicalState of every record, sorted by record key. */
export function canonicalStates(states: ReadonlyMap<string, RecordState>): Array<[string, string]> {
  return [...states.keys()].sort().map((key) => [key, canonicalState(states.get(key))]);
}

/** A stable string of what an app sees of a record: existence, value and siblings. */
export function viewString(state: RecordState | undefined, options?: MaterializeOptions): string {
  const view = materialize(state, options);
  return JSON.stringify([
    view.exists,
    view.value === undefined ? null : canonicalJson(view.value),
    view.siblings.map((s) => [s.replica, s.seq, s.hlc, s.value === null ? null : canonicalJson(s.value)]),
  ]);
}

/** viewString of every record, sorted by record key. */
export function viewStrings(states: ReadonlyMap<string, RecordState>, options?: MaterializeOptions): Array<[string, string]> {
  return [...states.keys()].sort().map((key) => [key, viewString(states.get(key), options)]);
}

/** A random delivery of `items`: every one of them in a random order, with random duplicates inserted. */
export function arbDelivery<T>(items: readonly T[], maxDuplicates = 8): fc.Arbitrary<T[]> {
  if (items.length === 0) return fc.constant([]);
  return fc
    .tuple(
      fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length }),
      fc.array(fc.tuple(fc.nat({ max: items.length - 1 }), fc.nat()), { maxLength: maxDuplicates }),
    )
    .map(([order, duplicates]) => {
      const out = [...order];
      for (const [which, where] of duplicates) out.splice(where % (out.length + 1), 0, items[which] as T);
      return out;
    });
}

/** A history together with a random delivery of its changes. */
export function arbHistoryAndDelivery(policy: Policy, options: HistoryOptions = {}): fc.Arbitrary<{ history: History; delivery: Change[] }> {
  return arbHistory(policy, options).chain((history) => arbDelivery(history.changes).map((delivery) => ({ history, delivery })));
}

/**
 * The compact record-state codec (protocol/state.ts): stored states and snapshot
 * records round-trip (and the legacy object form still decodes), the short lww
 * form is used exactly when it applies, a snapshot of typical records stays close
 * to the size of their JSON, the clock table survives its edge cases, and broken
 * or mutated input is refused with a coded ProtocolError, never a raw exception.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FRAME_MARKER, MAX_COUNTER, MAX_WALL, ProtocolError, applyChange, applyChanges, canonicalState, decodeDownstream, decodeRecordState,
  encodeDownstream, encodeRecordState, formatTimestamp, lwwEntries, parseTimestamp, readFrame, setOwn, writeFrame,
} from '@syncline/core/internal';
import type { Change, Fields, HlcString, LwwState, RecordState, ReplicaId, Snapshot, SnapshotRecord, SpaceId } from '@syncline/core/internal';
import { changeArbs, mutate, mutationArb, recordStateArb, snapshotArb, snapshotRecordArb, varint } from './helpers/arbitraries.js';

const S = 's' as SpaceId;
const R1 = 'r1' as ReplicaId;
const at = (wall: number, counter = 0, replica: string = R1): HlcString => formatTimestamp({ wall, counter, replica: replica as ReplicaId });
const snapshotOf = (records: readonly SnapshotRecord[]): Snapshot => ({ type: 'snapshot', space: S, position: 1, chunk: 0, chunks: 1, total: records.length, records: [...records] });
const wire = (frame: Uint8Array): unknown => readFrame(frame).json;
type Body = [number, string[], Array<[string, unknown[][]]>];
const bodyOf = (records: readonly SnapshotRecord[]): Body => (wire(encodeDownstream(snapshotOf(records))) as { records: Body }).records;
const decodeRecords = (frame: Uint8Array): SnapshotRecord[] => (decodeDownstream(frame) as Snapshot).records;
const roundTrip = (records: readonly SnapshotRecord[]): SnapshotRecord[] => decodeRecords(encodeDownstream(snapshotOf(records)));
const canonical = (records: readonly SnapshotRecord[]): string[][] => records.map((r) => [r.collection, r.id, canonicalState(r.state)]);

// ---------------------------------------------------------------------------
// Generators (built on helpers/arbitraries.ts)

/**
 * hlcArb spreads walls over the whole clock range, so snapshot timestamps mostly fall
 * back to strings. This maps a state's lww timestamps onto one busy day and three
 * replicas (deterministically, so equal timestamps stay equal) to exercise the integers.
 */
const DAY = Date.UTC(2025, 0, 6);
const CREW = ['alice', 'bob', 'carol'] as const;
function narrow(state: RecordState): RecordState {
  if (!state.lww) return state;
  const n = (h: HlcString | undefined): HlcString | undefined => {
    if (h === undefined) return undefined;
    const t = parseTimestamp(h);
    return at(DAY + (t.wall % 86_400_000), t.counter, CREW[t.wall % 3]);
  };
  const { cleared, deleted, touched } = state.lww;
  return { ...state, lww: { cleared: n(cleared), deleted: n(deleted), touched: n(touched), fields: new Map([...lwwEntries(state.lww)].map(([k, f]) => [k, { ...f, hlc: n(f.hlc) as HlcString }])) } };
}

/** lww states as changes make them (a single put gives the short form). */
const fromChanges: fc.Arbitrary<RecordState> = fc
  .array(fc.oneof(changeArbs.put, changeArbs.put, changeArbs.patch, changeArbs.delete), { minLength: 1, maxLength: 4 })
  .map((changes) => applyChanges(undefined, changes));
const stateArb: fc.Arbitrary<RecordState> = fc.oneof(recordStateArb, recordStateArb.map(narrow), fromChanges, fromChanges.map(narrow));

/** Records that share collections (interleaved, so grouping must keep the order). */
const recordsArb: fc.Arbitrary<SnapshotRecord[]> = fc
  .array(fc.tuple(snapshotRecordArb, fc.option(fc.constantFrom('a', 'b', '__proto__'), { nil: undefined }), fc.option(stateArb, { nil: undefined })), { maxLength: 8 })
  .map((rows) => rows.map(([r, collection, state]) => ({ collection: collection ?? r.collection, id: r.id, state: state ?? r.state })));

const isShort = (l: LwwState): boolean =>
  l.touched !== undefined && l.cleared === l.touched && l.deleted === undefined && [...lwwEntries(l)].map(([, f]) => f).every((f) => f.hlc === l.touched && f.value !== undefined);

/** The first (object) form of a stored state, written out by hand; crdt updates as attachment indexes. */
function legacyFrame(state: RecordState): Uint8Array {
  const attachments: Uint8Array[] = [];
  const json: Record<string, unknown> = {};
  if (state.lww) {
    const { cleared, deleted, touched } = state.lww;
    // Undefined keys are left out of the JSON text, as the object form wrote them.
    json.lww = { cleared, deleted, touched, fields: [...lwwEntries(state.lww)].map(([n, f]) => (f.value === undefined ? [n, f.hlc] : [n, f.hlc, f.value])) };
  }
  const siblings = state.merge?.siblings.map((v) => ({ replica: v.replica, seq: v.seq, hlc: v.hlc, value: v.value, context: [...v.context] }));
  if (state.merge) json.merge = { seen: [...state.merge.seen], siblings };
  if (state.crdt) json.crdt = [...state.crdt].map(([n, f]) => [n, f.type, attachments.push(f.update) - 1, f.touched]);
  return writeFrame(json, attachments);
}

/** Builds a frame around JSON text that may not parse (the frame layout, by hand). */
function rawFrame(text: Uint8Array, attachments: readonly Uint8Array[]): Uint8Array {
  const bytes = [FRAME_MARKER, ...varint(attachments.length), ...attachments.flatMap((a) => varint(a.length)), ...varint(text.length), ...text];
  for (const a of attachments) bytes.push(...a);
  return Uint8Array.from(bytes);
}

type Slot = [Record<string, unknown>, string];
/** Every slot (array item or object key) of a JSON tree, depth first. */
function slotsOf(value: unknown, out: Slot[] = []): Slot[] {
  if (typeof value !== 'object' || value === null) return out;
  for (const [key, v] of Object.entries(value)) {
    out.push([value as Record<string, unknown>, key]);
    slotsOf(v, out);
  }
  return out;
}

const RUNS = { numRuns: 200 };
/** Whole snapshots carry several records (and Yjs updates) each: fewer runs. */
const SNAPSHOT_RUNS = { numRuns: 100 };

// ---------------------------------------------------------------------------

describe('record states round-trip', () => {
  it('stored: decode(encode(s)) has the canonical state of s, lww short exactly when it applies, trailing nulls dropped', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        const frame = encodeRecordState(state);
        expect(canonicalState(decodeRecordState(frame))).toBe(canonicalState(state));
        const json = wire(frame) as unknown[];
        expect(json.length).toBeLessThanOrEqual(3);
        if (json.length > 0) expect(json[json.length - 1]).not.toBeNull();
        if (state.lww) expect((json[0] as unknown[]).length).toBe(isShort(state.lww) ? 2 : 5);
        else if (json.length > 0) expect(json[0]).toBeNull();
      }),
      RUNS,
    );
  });

  it('snapshot: records keep their order, collections, ids and canonical states; the header is kept', () => {
    fc.assert(
      fc.property(snapshotArb, recordsArb, (message, records) => {
        const decoded = decodeDownstream(encodeDownstream({ ...message, records })) as Snapshot;
        expect({ ...decoded, records: [] }).toEqual({ ...message, records: [] });
        expect(canonical(decoded.records)).toEqual(canonical(records));
      }),
      SNAPSHOT_RUNS,
    );
  });

  it('the legacy object form still decodes to the same state', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        expect(canonicalState(decodeRecordState(legacyFrame(state)))).toBe(canonicalState(state));
      }),
      RUNS,
    );
  });
});

describe('the short lww form', () => {
  const wall = Date.UTC(2025, 2, 3, 9, 30);
  const h1 = at(wall);
  const h2 = at(wall + 5);
  const header = { space: S, collection: 'events', id: 'e1', replica: R1 };
  const event = { title: 'Standup', start: '2025-03-03T09:30', end: '2025-03-03T09:45', allDay: false, notes: 'bring coffee', attendees: ['ana', 'ben'] };
  const { title: _title, notes: _notes, ...kept } = event;
  const put = applyChange(undefined, { ...header, seq: 1, hlc: h1, op: 'put', fields: event });
  const patched = applyChange(put, { ...header, seq: 2, hlc: h2, op: 'patch', fields: { title: 'Retro' }, unset: ['notes'] });

  it('one put is stored as [[hlc, fields]] and travels as [[id, [0, fields]]]', () => {
    expect(wire(encodeRecordState(put))).toEqual([[h1, event]]);
    expect(canonicalState(decodeRecordState(encodeRecordState(put)))).toBe(canonicalState(put));
    expect(bodyOf([{ collection: 'events', id: 'e1', state: put }])).toEqual([wall, ['r1'], [['events', [['e1', [0, event]]]]]]);
  });

  it('a later patch uses the five-item form with groups (sorted by hlc, unset names last)', () => {
    const groups = [[h1, kept], [h2, {}, ['notes']]];
    expect(wire(encodeRecordState(patched))).toEqual([[h2, { title: 'Retro' }, h1, null, groups]]);
    // In a snapshot: (5 ms * 65536 + 0) * 1 replica + 0.
    const n2 = 5 * 65536;
    expect(bodyOf([{ collection: 'events', id: 'e1', state: patched }])).toEqual([wall, ['r1'], [['events', [['e1', [n2, { title: 'Retro' }, 0, null, [[0, kept], [n2, {}, ['notes']]]]]]]]]);
    expect(canonicalState(roundTrip([{ collection: 'events', id: 'e1', state: patched }])[0]?.state)).toBe(canonicalState(patched));
  });

  it('a delete after the put uses the five-item form too', () => {
    const deleted = applyChange(put, { ...header, seq: 2, hlc: h2, op: 'delete' });
    expect(wire(encodeRecordState(deleted))).toEqual([[h1, {}, h2, h2, []]]);
    expect(canonicalState(decodeRecordState(encodeRecordState(deleted)))).toBe(canonicalState(deleted));
  });
});

describe('snapshot size', () => {
  it('1,000 one-put calendar events encode to at most 1.2x their JSON', () => {
    const replicas = ['V1StGXR8_Z5jdHi6B-myT', 'Uakgb_J5m9g-0JDMbcJqL', 'ppBqWA9mV0rD-s7r6n5dx'] as ReplicaId[];
    const start = Date.UTC(2025, 0, 1);
    let jsonBytes = 0;
    const records: SnapshotRecord[] = Array.from({ length: 1000 }, (_, i) => {
      const day = `2025-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}`;
      const where = { location: 'Room 4B', description: 'Agree on the rollout plan', attendees: ['ana@example.com', 'ben@example.com'] };
      const fields = { title: `Design review #${i}`, start: `${day}T10:00:00Z`, end: `${day}T11:00:00Z`, ...where, allDay: false };
      jsonBytes += Buffer.byteLength(JSON.stringify(fields));
      const replica = replicas[i % 3] as ReplicaId;
      // Written over 30 days, a few changes in the same millisecond now and then.
      const hlc = at(start + Math.floor(i * 2_592_000.7), i % 7 === 0 ? 3 : 0, replica);
      const change: Change = { space: S, collection: 'events', id: `e${i}`, replica, seq: i + 1, hlc, op: 'put', fields };
      return { collection: 'events', id: `e${i}`, state: applyChange(undefined, change) };
    });
    expect(jsonBytes / records.length).toBeGreaterThan(190);
    expect(jsonBytes / records.length).toBeLessThan(230);
    const frame = encodeDownstream(snapshotOf(records));
    expect(frame.length).toBeLessThanOrEqual(1.2 * jsonBytes);
    expect(canonical(decodeRecords(frame))).toEqual(canonical(records));
  });
});

describe('the clock table', () => {
  type Entry = [string, HlcString, Fields[string] | undefined];
  const state = (touched: HlcString, fields: Entry[] = []): RecordState => ({
    lww: { cleared: touched, deleted: undefined, touched, fields: new Map(fields.map(([n, hlc, value]) => [n, { hlc, value }])) },
  });
  const record = (id: string, s: RecordState): SnapshotRecord => ({ collection: 'c', id, state: s });
  const stamps = (body: Body): unknown[] => body[2].flatMap(([, rs]) => rs.map((r) => (r[1] as unknown[])[0]));

  it('timestamps beyond the safe-integer range fall back to strings and round-trip exactly', () => {
    const many = Array.from({ length: 40 }, (_, i) => `replica-${String(i).padStart(2, '0')}`);
    const records = many.map((r, i) => record(`x${i}`, state(at(i % 2 === 0 ? i : MAX_WALL - i, i % 3 === 0 ? MAX_COUNTER : 0, r), [['f', at(i * 1000, 7, r), i]])));
    records.push(record('last', state(at(MAX_WALL, MAX_COUNTER, 'zz'))), record('first', state(at(0, 0, 'A'))));
    const body = bodyOf(records);
    expect(body[0]).toBe(0);
    expect(body[1]).toEqual([...many, 'A', 'zz'].sort());
    const kinds = stamps(body).map((s) => typeof s);
    expect(kinds).toContain('number');
    expect(kinds).toContain('string');
    expect(stamps(body).at(-2)).toBe(at(MAX_WALL, MAX_COUNTER, 'zz'));
    expect(canonical(roundTrip(records))).toEqual(canonical(records));
  });

  it('switches to strings exactly past Number.MAX_SAFE_INTEGER', () => {
    const edge = at(2 ** 37 - 1, MAX_COUNTER);
    const past = at(2 ** 37, 0);
    const records = [record('a', state(at(0))), record('b', state(edge)), record('c', state(past))];
    expect(stamps(bodyOf(records))).toEqual([0, Number.MAX_SAFE_INTEGER, past]);
    const got = roundTrip(records);
    expect(got.map((r) => r.state.lww?.touched)).toEqual([at(0), edge, past]);
  });

  it('counters 0 and 0xffff round-trip exactly', () => {
    const w = Date.UTC(2025, 5, 1);
    const records = [record('a', state(at(w, 0, 'a'))), record('b', state(at(w, MAX_COUNTER, 'b'))), record('c', state(at(w + 1, 0, 'a'), [['x', at(w, MAX_COUNTER, 'a'), undefined]]))];
    const body = bodyOf(records);
    expect(stamps(body)).toEqual([0, MAX_COUNTER * 2 + 1, 65536 * 2]);
    expect(body[2][0]?.[1][2]?.[1]).toEqual([131072, {}, 131072, null, [[MAX_COUNTER * 2, {}, ['x']]]]);
    const got = roundTrip(records);
    const stampsOf = (r: SnapshotRecord): unknown[] => [r.state.lww?.touched, ...(r.state.lww ? [...lwwEntries(r.state.lww)] : []).map(([, f]) => f.hlc)];
    expect(got.map(stampsOf)).toEqual([[at(w, 0, 'a')], [at(w, MAX_COUNTER, 'b')], [at(w + 1, 0, 'a'), at(w, MAX_COUNTER, 'a')]]);
  });

  it('is empty when no state has an lww part', () => {
    fc.assert(
      fc.property(fc.array(snapshotRecordArb, { maxLength: 4 }), (records) => {
        const noLww = records.map((r) => ({ ...r, state: { merge: r.state.merge, crdt: r.state.crdt } }));
        const body = bodyOf(noLww);
        expect(body.slice(0, 2)).toEqual([0, []]);
        expect(canonical(roundTrip(noLww))).toEqual(canonical(noLww));
      }),
      { numRuns: 50 },
    );
  });
});

describe('broken states are a coded ProtocolError', () => {
  const frameOf = (records: unknown): Uint8Array => writeFrame({ type: 'snapshot', space: 's', position: 1, chunk: 0, chunks: 1, total: 1, records }, []);
  const one = (rec: unknown, replicas: unknown[] = ['r1'], base: unknown = 0): unknown => [base, replicas, [['c', [rec]]]];
  const REC = '$.records[2][0][1][0]';
  const LWW = `${REC}[1]`;
  const h = at(5);
  const cases: Array<[string, unknown, string]> = [
    ['an integer timestamp with an empty replica table', one(['i', [5, {}]], []), `${LWW}[0]`],
    ['a negative timestamp', one(['i', [-1, {}]]), `${LWW}[0]`],
    ['a fractional timestamp', one(['i', [1.5, {}]]), `${LWW}[0]`],
    ['an unsafe integer timestamp', one(['i', [2 ** 53, {}]]), `${LWW}[0]`],
    ['a timestamp past MAX_WALL', one(['i', [65536, {}]], ['r1'], MAX_WALL), `${LWW}[0]`],
    ['a base past MAX_WALL', one(['i', [0, {}]], ['r1'], MAX_WALL + 1), `${LWW}[0]`],
    ['a cleared past MAX_WALL', one(['i', [0, {}, 65536, null, []]], ['r1'], MAX_WALL), `${LWW}[2]`],
    ['a group stamp past MAX_WALL', one(['i', [0, {}, null, null, [[65536, { a: 1 }]]]], ['r1'], MAX_WALL), `${LWW}[4][0][0]`],
    ['a field in the touched fields and a group', one(['i', [0, { a: 1 }, null, null, [[1, { a: 2 }]]]]), `${LWW}[4][0][1]`],
    ['a field in two groups', one(['i', [h, {}, null, null, [[1, { a: 1 }], [2, { a: 2 }]]]]), `${LWW}[4][1][1]`],
    ['a field both set and unset in a group', one(['i', [0, {}, null, null, [[1, { a: 1 }, ['a']]]]]), `${LWW}[4][0][2]`],
    ['a field unset in one group and set in the touched fields', one(['i', [0, { a: 1 }, null, null, [[1, {}, ['a']]]]]), `${LWW}[4][0][2]`],
    ['an lww of three items', one(['i', [0, {}, null]]), LWW],
    ['an lww of four items', one(['i', [0, {}, null, null]]), LWW],
    ['an lww of six items', one(['i', [0, {}, null, null, [], null]]), LWW],
    ['an lww that is an object', one(['i', { touched: h, fields: [] }]), LWW],
    ['a touched of null with fields', one(['i', [null, { a: 1 }, null, null, []]]), `${LWW}[1]`],
    ['a short form [null, {}]', one(['i', [null, {}]]), `${LWW}[0]`],
    ['an empty field name', one(['i', [0, { '': 1 }]]), `${LWW}[1]`],
    ['fields that are an array', one(['i', [0, [1]]]), `${LWW}[1]`],
    ['groups that are not an array', one(['i', [0, {}, null, null, {}]]), `${LWW}[4]`],
    ['an lww group of one item', one(['i', [0, {}, null, null, [[1]]]]), `${LWW}[4][0]`],
    ['an empty record array', one([]), REC],
    ['a record that is not an array', one('i'), REC],
    ['more than three state parts', one(['i', null, null, null, null]), REC],
    ['an invalid record id', one(['', [0, {}]]), `${REC}[0]`],
    ['a replica table entry that is not a replica id', one(['i', [0, {}]], ['not a replica!']), '$.records[1][0]'],
    ['a replica table entry that is a number', one(['i', [0, {}]], [7]), '$.records[1][0]'],
    ['a negative base', one(['i', [0, {}]], ['r1'], -1), '$.records[0]'],
    ['a body of two items', [0, []], '$.records'],
    ['collections that are not an array', [0, [], {}], '$.records[2]'],
    ['a group of one item', [0, ['r1'], [['c']]], '$.records[2][0]'],
    ['a group whose records are an object', [0, ['r1'], [['c', {}]]], '$.records[2][0]'],
    ['a group of three items', [0, ['r1'], [['c', [], []]]], '$.records[2][0]'],
    ['a group that is a string', [0, ['r1'], ['c']], '$.records[2][0]'],
    ['a group with an invalid collection', [0, ['r1'], [['', []]]], '$.records[2][0][0]'],
  ];

  function expectRefused(decode: () => unknown, path: string): void {
    let error: unknown = 'decoded';
    try {
      decode();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProtocolError);
    const { code, path: got, cause } = error as ProtocolError;
    expect({ code, path: got, cause }).toEqual({ code: 'invalid_message', path, cause: undefined });
  }

  it.each(cases)('snapshot: %s', (_name, records, path) => expectRefused(() => decodeDownstream(frameOf(records)), path));

  it.each<[string, unknown, string]>([
    ['an integer timestamp', [[5, {}]], '$[0][0]'],
    ['four state parts', [null, null, null, null], '$'],
    ['a touched of null with fields', [[null, { a: 1 }, null, null, []]], '$[0][1]'],
    ['a legacy lww field of four items', { lww: { fields: [['a', at(1), 1, 2]] } }, '$.lww.fields[0]'],
    ['a state that is a string', 'x', '$'],
  ])('stored: %s', (_name, json, path) => expectRefused(() => decodeRecordState(writeFrame(json, [])), path));
});

describe('mutated snapshots', () => {
  const validSnapshot = fc.tuple(snapshotArb, recordsArb).map(([m, records]) => encodeDownstream({ ...m, records }));
  const wrongValue = fc.constantFrom<unknown>(null, -1, 0, 1, 1.5, 2 ** 53, 65536, MAX_WALL, '', 'x', '000000000001-0000-r1', [], {}, [null], [0, {}], ['c', []], [0, {}, null, null, []]);

  /** Decodes, or is refused by a schema check; a decoded snapshot re-encodes to the same states. */
  function decodesOrRefuses(frame: Uint8Array): void {
    let message: Snapshot;
    try {
      message = decodeDownstream(frame) as Snapshot;
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError);
      const e = error as ProtocolError;
      expect(['invalid_message', 'malformed_frame']).toContain(e.code);
      // Not the codec's catch-all, which wraps an unexpected exception with a cause and no path.
      if (e.code === 'invalid_message') expect([e.path.startsWith('$'), e.cause]).toEqual([true, undefined]);
      return;
    }
    if (message.type !== 'snapshot') return;
    expect(canonical(decodeRecords(encodeDownstream(message)))).toEqual(canonical(message.records));
  }

  it('byte edits of the JSON text decode or throw ProtocolError', () => {
    fc.assert(
      fc.property(validSnapshot, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (frame, mutations) => {
        const raw = readFrame(frame);
        decodesOrRefuses(rawFrame(mutate(new TextEncoder().encode(JSON.stringify(raw.json)), mutations), raw.attachments));
      }),
      SNAPSHOT_RUNS,
    );
  });

  it('value edits inside records decode or throw ProtocolError', () => {
    fc.assert(
      fc.property(validSnapshot, fc.array(fc.tuple(fc.nat(), wrongValue, fc.boolean()), { minLength: 1, maxLength: 3 }), (frame, edits) => {
        const raw = readFrame(frame);
        const json = raw.json as { records: unknown };
        for (const [target, value, remove] of edits) {
          const slots = slotsOf(json.records);
          const [parent, key] = slots[target % Math.max(1, slots.length)] ?? [json, 'records'];
          if (remove && Array.isArray(parent)) parent.splice(Number(key), 1);
          else setOwn(parent, key, structuredClone(value));
        }
        decodesOrRefuses(writeFrame(json, raw.attachments));
      }),
      SNAPSHOT_RUNS,
    );
  });
});

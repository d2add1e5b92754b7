/**
 * The wire codec: every message survives encode -> decode exactly (bytes, Maps,
 * null vs unset, user keys such as `__proto__`), and every broken frame or
 * message is refused with a ProtocolError carrying a code and a path.
 */
import fc from 'fast-check';
import * as Y from 'yjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FRAME_MARKER,
  MAX_ATTACHMENTS,
  MAX_SPACES_PER_HELLO,
  ProtocolError,
  SynclineError,
  decodeDownstream,
  decodeUpstream,
  encodeDownstream,
  encodeUpstream,
  fitFrames,
  formatTimestamp,
  readFrame,
  writeFrame,
  type Change,
  type ChangeHeader,
  type CrdtOp,
  type DownstreamMessage,
  type ErrorCode,
  type Fields,
  type HlcString,
  type LwwField,
  type RecordState,
  type ReplicaId,
  type SpaceId,
  type UpstreamMessage,
  lwwEntries,
  lwwField,
  type LwwState,
} from '@syncline/core/internal';
import { downstreamArbs, upstreamArbs, yjsUpdate, varint } from './helpers/arbitraries.js';

const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();
afterAll(() => {
  // Nothing decoded in this file may have reached Object.prototype.
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_KEYS);
});

// ---------------------------------------------------------------------------
// Helpers

const R = 'r1' as ReplicaId;
const S = 'space-1' as SpaceId;
const hlc = (wall: number, replica = R): HlcString => formatTimestamp({ wall, counter: 0, replica });
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');


/** Builds a frame by hand, following PROTOCOL.md (independently of writeFrame). */
function rawFrame(body: string | Uint8Array, attachments: readonly Uint8Array[] = [], marker = FRAME_MARKER): Uint8Array {
  const text = typeof body === 'string' ? utf8(body) : body;
  const bytes = [marker, ...varint(attachments.length)];
  for (const a of attachments) bytes.push(...varint(a.length));
  bytes.push(...varint(text.length), ...text);
  for (const a of attachments) bytes.push(...a);
  return new Uint8Array(bytes);
}

/**
 * Stricter than toEqual: plain objects must have Object.prototype and the same own
 * keys (`__proto__` included), bytes must be plain Uint8Arrays with equal content,
 * Maps must be Maps, numbers compare with Object.is. Keys whose expected value is
 * undefined may be absent.
 */
function expectExact(actual: unknown, expected: unknown, path = '$'): void {
  if (expected instanceof Uint8Array) {
    expect(actual, path).toBeInstanceOf(Uint8Array);
    expect((actual as Uint8Array).constructor, `${path} is a plain Uint8Array`).toBe(Uint8Array);
    expect(hex(actual as Uint8Array), path).toBe(hex(expected));
    return;
  }
  if (expected instanceof Map) {
    expect(actual, path).toBeInstanceOf(Map);
    const a = actual as Map<unknown, unknown>;
    expect([...a.keys()].sort(), `${path} keys`).toEqual([...expected.keys()].sort());
    for (const [k, v] of expected) expectExact(a.get(k), v, `${path}.get(${JSON.stringify(k)})`);
    return;
  }
  if (Array.isArray(expected)) {
    expect(Array.isArray(actual), `${path} is an array`).toBe(true);
    expect((actual as unknown[]).length, `${path}.length`).toBe(expected.length);
    expected.forEach((v, i) => expectExact((actual as unknown[])[i], v, `${path}[${i}]`));
    return;
  }
  if (typeof expected === 'object' && expected !== null) {
    expect(typeof actual === 'object' && actual !== null, `${path} is an object`).toBe(true);
    expect(Object.getPrototypeOf(actual), `${path} has Object.prototype`).toBe(Object.prototype);
    const definedKeys = (o: object) => Reflect.ownKeys(o).filter((k) => (o as Record<PropertyKey, unknown>)[k] !== undefined);
    expect(definedKeys(actual as object).sort(), `${path} own keys`).toEqual(definedKeys(expected).sort());
    for (const key of Reflect.ownKeys(expected)) {
      const descriptor = Object.getOwnPropertyDescriptor(expected, key) as PropertyDescriptor;
      const got = Object.getOwnPropertyDescriptor(actual, key);
      if (descriptor.value === undefined && got === undefined) continue;
      expect(got, `${path}.${String(key)} is an own data property`).toBeDefined();
      expectExact(got?.value, descriptor.value, `${path}.${String(key)}`);
    }
    return;
  }
  expect(Object.is(actual, expected), `${path}: ${String(actual)} is ${String(expected)}`).toBe(true);
}

function upRoundTrip(message: UpstreamMessage): UpstreamMessage {
  const decoded = decodeUpstream(encodeUpstream(message));
  expect(decoded).toEqual(message);
  expectExact(decoded, message);
  return decoded;
}

/**
 * A snapshot with every lww state as one entry per field: a state may hold the fields
 * set at `touched` in `stamped` or in `fields`, and both mean the same state.
 */
function entriesForm(message: DownstreamMessage): DownstreamMessage {
  if (message.type !== 'snapshot') return message;
  const records = message.records.map((r) => {
    if (!r.state.lww) return r;
    const { cleared, deleted, touched } = r.state.lww;
    const fields = new Map([...lwwEntries(r.state.lww)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return { ...r, state: { ...r.state, lww: { cleared, deleted, touched, fields } } };
  });
  return { ...message, records };
}

function downRoundTrip(message: DownstreamMessage): DownstreamMessage {
  const decoded = decodeDownstream(encodeDownstream(message));
  expect(entriesForm(decoded)).toEqual(entriesForm(message));
  expectExact(entriesForm(decoded), entriesForm(message));
  return decoded;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a ProtocolError, but decoding succeeded');
}

function expectProtocolError(fn: () => unknown, code: ErrorCode, path: string | RegExp, message?: RegExp): ProtocolError {
  const error = caught(fn);
  expect(error).toBeInstanceOf(ProtocolError);
  expect(error).toBeInstanceOf(SynclineError);
  const e = error as ProtocolError;
  expect(e.name).toBe('ProtocolError');
  expect(e.code).toBe(code);
  if (typeof path === 'string') expect(e.path).toBe(path);
  else expect(e.path).toMatch(path);
  if (e.path) expect(e.message).toContain(`(at ${e.path})`);
  if (message) expect(e.message).toMatch(message);
  return e;
}

const update = yjsUpdate('text', 7, [{ at: 0, text: 'hello', remove: 0 }], false);

function header(seq: number) {
  return { space: S, collection: 'docs', id: 'd1', replica: R, seq, hlc: hlc(1000 + seq) };
}

function crdtChange(seq = 1): ChangeHeader & CrdtOp {
  return { ...header(seq), op: 'crdt', field: 'body', type: 'text', update };
}

const push: UpstreamMessage = {
  type: 'push',
  space: S,
  changes: [
    crdtChange(1),
    { space: S, collection: 'c', id: 'i', replica: R, seq: 2, hlc: hlc(2000), op: 'put', fields: { title: 'x' } },
    { space: S, collection: 'c', id: 'i', replica: R, seq: 3, hlc: hlc(3000), op: 'version', value: null, context: new Map([['r2' as ReplicaId, 4]]) },
  ],
};

/** The JSON and attachments of a valid frame, for building broken variants. */
function wire(frame: Uint8Array): { json: Record<string, unknown>; attachments: Uint8Array[] } {
  const raw = readFrame(frame);
  return { json: JSON.parse(JSON.stringify(raw.json)) as Record<string, unknown>, attachments: raw.attachments };
}

function pushWire(): { json: Record<string, unknown>; attachments: Uint8Array[]; change: (i: number) => Record<string, unknown> } {
  const w = wire(encodeUpstream(push));
  return { ...w, change: (i) => (w.json.changes as Record<string, unknown>[])[i] as Record<string, unknown> };
}

// ---------------------------------------------------------------------------

describe('round trip: every upstream message type', () => {
  for (const [type, arb] of Object.entries(upstreamArbs)) {
    it(type, () => {
      fc.assert(
        fc.property(arb as fc.Arbitrary<UpstreamMessage>, (message) => {
          const decoded = upRoundTrip(message);
          expect(decoded.type).toBe(type);
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe('round trip: every downstream message type', () => {
  for (const [type, arb] of Object.entries(downstreamArbs)) {
    it(type, () => {
      fc.assert(
        fc.property(arb as fc.Arbitrary<DownstreamMessage>, (message) => {
          const decoded = downRoundTrip(message);
          expect(decoded.type).toBe(type);
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe('round trip: specifics', () => {
  it('keeps a frame layout a second implementation can build by hand', () => {
    const message: DownstreamMessage = { type: 'ack', space: S, upTo: 300 };
    const body = JSON.stringify({ space: S, type: 'ack', upTo: 300 });
    expect(hex(encodeDownstream(message))).toBe(hex(rawFrame(body)));
    const { json, attachments } = wire(encodeUpstream(push));
    expect(hex(encodeUpstream(push))).toBe(hex(rawFrame(JSON.stringify(json), attachments)));
    expect(attachments).toHaveLength(1);
    expect(hex(attachments[0] as Uint8Array)).toBe(hex(update));
    // The JSON holds the attachment's index, not the bytes.
    expect((json.changes as Record<string, unknown>[])[0]?.update).toBe(0);
    expect(decodeDownstream(rawFrame(body))).toEqual(message);
  });

  it('preserves bytes exactly: empty, every byte value, large, several in order', () => {
    const every = Uint8Array.from({ length: 256 }, (_, i) => i);
    const large = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31 + 7) & 0xff);
    const empty = new Uint8Array(0);
    const changes = [empty, every, large, update].map((bytes, i): Change => ({ ...crdtChange(i + 1), update: bytes }));
    const decoded = upRoundTrip({ type: 'push', space: S, changes }) as Extract<UpstreamMessage, { type: 'push' }>;
    const updates = decoded.changes.map((c) => (c.op === 'crdt' ? c.update : undefined));
    expect(updates.map((u) => u?.length)).toEqual([0, 256, 300_000, update.length]);
    expect(hex(updates[1] as Uint8Array)).toBe(hex(every));
    // A real Yjs update still applies after the trip.
    const doc = new Y.Doc();
    Y.applyUpdate(doc, updates[3] as Uint8Array);
    expect(doc.getText('value').toString()).toBe('hello');
  });

  it('decodes a Node Buffer (what ws delivers) into plain, independent Uint8Arrays', () => {
    const frame = encodeUpstream(push);
    // Buffer.from copies into the shared 8 KiB pool: the frame sits at an offset in a larger ArrayBuffer.
    const buffer = Buffer.from(frame);
    const decoded = decodeUpstream(buffer) as Extract<UpstreamMessage, { type: 'push' }>;
    const got = decoded.changes[0]?.op === 'crdt' ? decoded.changes[0].update : undefined;
    expect(got?.constructor).toBe(Uint8Array);
    expect(got?.buffer).not.toBe(buffer.buffer);
    expect(got?.byteLength).toBe(update.length);
    expect(got?.buffer.byteLength, 'the update does not pin the frame buffer').toBe(update.length);
    expect(decoded).toEqual(push);
  });

  it('copies attachments: reusing the frame buffer afterwards does not change a decoded update', () => {
    const frame = encodeUpstream(push);
    const host = new Uint8Array(frame.length + 10);
    host.set(frame, 5);
    const view = host.subarray(5, 5 + frame.length);
    const decoded = decodeUpstream(view) as Extract<UpstreamMessage, { type: 'push' }>;
    host.fill(0xee);
    expect(decoded).toEqual(push);
  });

  it('keeps version vectors as Maps and encodes them independently of insertion order', () => {
    const a = new Map([['b' as ReplicaId, 2], ['a' as ReplicaId, 1], ['c' as ReplicaId, 9]]);
    const b = new Map([['c' as ReplicaId, 9], ['a' as ReplicaId, 1], ['b' as ReplicaId, 2]]);
    const change = (context: Map<ReplicaId, number>): Change => ({ ...header(1), op: 'version', value: { v: 1 }, context });
    const encodedA = encodeUpstream({ type: 'push', space: S, changes: [change(a)] });
    const encodedB = encodeUpstream({ type: 'push', space: S, changes: [change(b)] });
    expect(hex(encodedA)).toBe(hex(encodedB));
    const decoded = decodeUpstream(encodedA) as Extract<UpstreamMessage, { type: 'push' }>;
    const first = decoded.changes[0];
    expect(first?.op === 'version' && first.context).toBeInstanceOf(Map);
    expect(first?.op === 'version' && [...first.context]).toEqual([['a', 1], ['b', 2], ['c', 9]]);
    // On the wire: sorted [replica, seq] pairs; replica ids never become object keys.
    expect((wire(encodedA).json.changes as Record<string, unknown>[])[0]?.context).toEqual([['a', 1], ['b', 2], ['c', 9]]);
  });

  it('keeps an lww field set to null distinct from an unset field', () => {
    const fields = new Map<string, LwwField>([
      ['isNull', { hlc: hlc(5), value: null }],
      ['isUnset', { hlc: hlc(6), value: undefined }],
      ['isFalse', { hlc: hlc(7), value: false }],
    ]);
    const state: RecordState = { lww: { cleared: undefined, deleted: undefined, touched: hlc(7), fields } };
    const message: DownstreamMessage = { type: 'snapshot', space: S, position: 9, chunk: 0, chunks: 1, total: 1, records: [{ collection: 'c', id: 'i', state }] };
    const frame = encodeDownstream(message);
    // [base, replicas, [[collection, [[id, lww]]]]]; timestamps count from the base wall (5) in
    // steps of 65,536 (the counter's span) times the one replica.
    const onWire = (wire(frame).json.records as [number, string[], [string, unknown[][]][]]);
    expect(onWire[0]).toBe(5);
    expect(onWire[1]).toEqual([R]);
    expect(onWire[2][0]?.[1][0]).toEqual(['i', [2 * 65_536, { isFalse: false }, null, null, [[0, { isNull: null }], [65_536, {}, ['isUnset']]]]]);
    const decoded = downRoundTrip(message) as Extract<DownstreamMessage, { type: 'snapshot' }>;
    const lww = decoded.records[0]?.state.lww as LwwState;
    expect(lwwField(lww, 'isNull')?.value).toBeNull();
    expect(lwwField(lww, 'isUnset')?.value).toBeUndefined();
    expect(lwwField(lww, 'isUnset')?.hlc).toBe(hlc(6));
    expect(lwwField(lww, 'isFalse')).toEqual({ hlc: hlc(7), value: false });
    expect(lwwField(lww, 'missing')).toBeUndefined();
  });

  it('keeps a version value of null (a delete) distinct from an empty object', () => {
    const del: Change = { ...header(1), op: 'version', value: null, context: new Map() };
    const empty: Change = { ...header(2), op: 'version', value: {}, context: new Map() };
    const decoded = upRoundTrip({ type: 'push', space: S, changes: [del, empty] }) as Extract<UpstreamMessage, { type: 'push' }>;
    expect(decoded.changes.map((c) => (c.op === 'version' ? c.value : 'wrong op'))).toEqual([null, {}]);
  });

  it('keeps __proto__, constructor and toString as own data properties, at every depth', () => {
    const fields = JSON.parse(
      '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, "toString": "x",' +
        ' "toJSON": 1, "nested": {"__proto__": {"polluted": true}, "list": [{"__proto__": null}]}}',
    ) as Fields;
    expect(Object.hasOwn(fields, '__proto__')).toBe(true);
    const at = { ...header(1), collection: '__proto__', id: 'constructor' };
    const put: Change = { ...at, op: 'put', fields };
    const patch: Change = { ...at, seq: 2, op: 'patch', fields, unset: ['hasOwnProperty'] };
    const version: Change = { ...at, seq: 3, op: 'version', value: fields, context: new Map() };
    const crdt: Change = { ...crdtChange(4), field: '__proto__' };
    const decoded = upRoundTrip({ type: 'push', space: S, changes: [put, patch, version, crdt] }) as Extract<UpstreamMessage, { type: 'push' }>;
    for (const change of decoded.changes.slice(0, 3)) {
      const got = (change.op === 'version' ? change.value : change.op === 'put' || change.op === 'patch' ? change.fields : null) as Record<string, unknown>;
      expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
      expect(Object.keys(got).sort()).toEqual(['__proto__', 'constructor', 'nested', 'toJSON', 'toString']);
      expect(Object.hasOwn(got, '__proto__')).toBe(true);
      expect(got['__proto__']).toEqual({ polluted: true });
      expect(got.toString).toBe('x');
      const nested = got.nested as Record<string, unknown>;
      expect(Object.hasOwn(nested, '__proto__')).toBe(true);
      expect(Object.getPrototypeOf(nested)).toBe(Object.prototype);
      const item = (nested.list as Record<string, unknown>[])[0] as Record<string, unknown>;
      expect(Object.hasOwn(item, '__proto__')).toBe(true);
      expect(Object.getPrototypeOf(item)).toBe(Object.prototype);
    }
    expect(decoded.changes[0]?.collection).toBe('__proto__');
    expect(decoded.changes[0]?.id).toBe('constructor');
    expect(decoded.changes[3]?.op === 'crdt' && decoded.changes[3].field).toBe('__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_KEYS);
  });

  it('keeps __proto__ as a key of lww and crdt field maps in snapshots', () => {
    const state: RecordState = {
      lww: { cleared: undefined, deleted: undefined, touched: hlc(1), fields: new Map([['__proto__', { hlc: hlc(1), value: JSON.parse('{"__proto__": 1}') as Fields }]]) },
      crdt: new Map([['constructor', { type: 'text', update, touched: hlc(2) }]]),
    };
    const decoded = downRoundTrip({ type: 'snapshot', space: S, position: 0, chunk: 0, chunks: 1, total: 1, records: [{ collection: 'c', id: '__proto__', state }] });
    const record = (decoded as Extract<DownstreamMessage, { type: 'snapshot' }>).records[0];
    const value = lwwField(record?.state.lww as LwwState, '__proto__')?.value as Record<string, unknown>;
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(record?.state.crdt?.get('constructor')?.type).toBe('text');
  });

  it('drops unknown keys instead of passing them on, at the message and change level', () => {
    const { json, attachments, change } = pushWire();
    json.extra = { admin: true };
    json['__proto__'] = { polluted: true };
    change(1).unexpected = 1;
    const decoded = decodeUpstream(writeFrame(json, attachments)) as Record<string, unknown>;
    expect(Object.keys(decoded).sort()).toEqual(['changes', 'space', 'type']);
    expect(Object.keys((decoded.changes as Record<string, unknown>[])[1] as object)).not.toContain('unexpected');
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
  });

  it('never writes properties the schema does not know, and writes keys in one order', () => {
    const ping = { id: 7, type: 'ping', sessionToken: 'secret' } as unknown as UpstreamMessage;
    expect(wire(encodeUpstream(ping)).json).toEqual({ type: 'ping', id: 7 });
    expect(hex(encodeUpstream(ping))).toBe(hex(encodeUpstream({ type: 'ping', id: 7 })));
    const local = { ...push.changes[1], outboxAttempts: 3 } as unknown as Change;
    const sent = wire(encodeUpstream({ type: 'push', space: S, changes: [local] })).json.changes as Record<string, unknown>[];
    expect(Object.keys(sent[0] as object)).toEqual(['collection', 'fields', 'hlc', 'id', 'op', 'replica', 'seq', 'space']);
  });

  it('accepts an optional field sent as null (as absent)', () => {
    const frame = rawFrame('{"type":"error","code":"forbidden","message":"no","fatal":true,"space":null}');
    expect(decodeDownstream(frame)).toEqual({ type: 'error', code: 'forbidden', message: 'no', fatal: true });
  });

  it('sends -0 as 0: JSON cannot carry negative zero', () => {
    const put: Change = { space: S, collection: 'c', id: 'i', replica: R, seq: 1, hlc: hlc(1), op: 'put', fields: { x: -0 } };
    const decoded = decodeUpstream(encodeUpstream({ type: 'push', space: S, changes: [put] })) as Extract<UpstreamMessage, { type: 'push' }>;
    const got = decoded.changes[0]?.op === 'put' ? decoded.changes[0].fields.x : undefined;
    expect(Object.is(got, 0)).toBe(true);
  });

  it('a decoded message re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.oneof(...Object.values(downstreamArbs)), (message) => {
        const frame = encodeDownstream(message);
        expect(hex(encodeDownstream(decodeDownstream(frame)))).toBe(hex(frame));
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------

describe('decode errors: malformed_frame', () => {
  const valid = encodeUpstream(push);
  const validPing = encodeUpstream({ type: 'ping', id: 1 });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['an empty frame', new Uint8Array(0), /marker/],
    ['a wrong frame marker', Uint8Array.from([0x54, ...valid.subarray(1)]), /marker/],
    ['JSON text sent without a frame', utf8('{"type":"ping","id":1}'), /marker/],
    ['a marker and nothing else (truncated header)', Uint8Array.from([FRAME_MARKER]), /truncated/],
    ['an unterminated attachment count', Uint8Array.from([FRAME_MARKER, 0x80]), /truncated/],
    // Too short for its attachment count: refused before a length is read (each needs a length byte and 16 bytes of JSON).
    ['missing attachment lengths (truncated header)', Uint8Array.from([FRAME_MARKER, 0x02, 0x01]), /too many attachments/],
    ['a missing JSON length (truncated header)', Uint8Array.from([FRAME_MARKER, 0x00]), /truncated/],
    ['a varint longer than 7 bytes', Uint8Array.from([FRAME_MARKER, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), /varint/],
    ['too many attachments', Uint8Array.from([FRAME_MARKER, ...varint(MAX_ATTACHMENTS + 1)]), /attachments/],
    ['one byte more than the lengths say', Uint8Array.from([...valid, 0]), /add up/],
    ['one byte less than the lengths say', valid.subarray(0, valid.length - 1), /add up/],
    ['a JSON length past the end', Uint8Array.from([FRAME_MARKER, 0x00, ...varint(50), ...utf8('{}')]), /add up/],
    ['an attachment length past the end', Uint8Array.from([FRAME_MARKER, 0x01, ...varint(1000), 0x12, ...utf8('{"pad":"012345"}'), 1, 2, 3]), /add up/],
    ['lengths that overflow far past the end', Uint8Array.from([FRAME_MARKER, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x00, ...new Array<number>(40).fill(0x20)]), /add up/],
    // Junk attachments cost nothing before the message is checked (issue 16): refused by their count alone.
    ['a million empty attachments', Uint8Array.from([FRAME_MARKER, ...varint(1_000_000), ...new Array<number>(1_000_000).fill(0), 0x02, ...utf8('{}')]), /too many attachments/],
    ['more attachments than the JSON could refer to', Uint8Array.from([FRAME_MARKER, 0x02, 10, 10, 31, ...utf8('{"type":"ping","id":1,"p":"xx"}'), ...new Array<number>(20).fill(7)]), /could refer to/],
    ['invalid UTF-8 (0xff)', rawFrame(Uint8Array.from([0x22, 0xff, 0x22])), /UTF-8 JSON/],
    ['UTF-8 of a lone surrogate (ED A0 80)', rawFrame(Uint8Array.from([0x22, 0xed, 0xa0, 0x80, 0x22])), /UTF-8 JSON/],
    ['an overlong UTF-8 encoding', rawFrame(Uint8Array.from([0x22, 0xc0, 0xaf, 0x22])), /UTF-8 JSON/],
    ['a truncated UTF-8 sequence', rawFrame(Uint8Array.from([0x22, 0xe2, 0x82, 0x22])), /UTF-8 JSON/],
    ['a body that is not JSON', rawFrame('hello'), /UTF-8 JSON/],
    ['an empty body', rawFrame(''), /UTF-8 JSON/],
    ['a NaN literal', rawFrame('{"type":"ping","id":NaN}'), /UTF-8 JSON/],
    ['an Infinity literal', rawFrame('{"type":"ping","id":Infinity}'), /UTF-8 JSON/],
    ['trailing garbage after the JSON', rawFrame('{"type":"ping","id":1}x'), /UTF-8 JSON/],
    ['single-quoted JSON', rawFrame("{'type':'ping','id':1}"), /UTF-8 JSON/],
  ];
  for (const [name, frame, message] of cases) {
    it(name, () => {
      expectProtocolError(() => decodeUpstream(frame), 'malformed_frame', '', message);
      expectProtocolError(() => decodeDownstream(frame), 'malformed_frame', '', message);
    });
  }

  it('a value that is not binary', () => {
    for (const value of ['{"type":"ping","id":1}', validPing.buffer, [...validPing], null, undefined, 42]) {
      expectProtocolError(() => decodeUpstream(value as never), 'malformed_frame', '', /binary/);
      expectProtocolError(() => decodeDownstream(value as never), 'malformed_frame', '', /binary/);
    }
  });

  it('the sanity check: the valid frames above do decode', () => {
    expect(decodeUpstream(valid)).toEqual(push);
    expect(decodeUpstream(validPing)).toEqual({ type: 'ping', id: 1 });
  });
});

describe('decode errors: invalid_message', () => {
  type Case = [name: string, frame: () => Uint8Array, path: string | RegExp, direction?: 'up' | 'down' | 'both'];
  const ping = (body: string) => () => rawFrame(`{"type":"ping",${body}}`);
  const pushWith = (edit: (w: ReturnType<typeof pushWire>) => void, attachments?: Uint8Array[]) => () => {
    const w = pushWire();
    edit(w);
    return writeFrame(w.json, attachments ?? w.attachments);
  };
  const down = (message: DownstreamMessage, edit: (json: Record<string, unknown>) => void) => () => {
    const w = wire(encodeDownstream(message));
    edit(w.json);
    return writeFrame(w.json, w.attachments);
  };
  const hello = (edit: (json: Record<string, unknown>) => void) => () => {
    const w = wire(encodeUpstream({ type: 'hello', protocol: 1, replica: R, spaces: [{ space: S, after: 0 }], time: 1 }));
    edit(w.json);
    return writeFrame(w.json, w.attachments);
  };
  const snapshot: DownstreamMessage = {
    type: 'snapshot',
    space: S,
    position: 3,
    chunk: 0,
    chunks: 1,
    total: 1,
    records: [{ collection: 'c', id: 'i', state: { lww: { cleared: undefined, deleted: undefined, touched: hlc(1), fields: new Map([['f', { hlc: hlc(1), value: 1 }]]) } } }],
  };
  /** The lww part of the snapshot's one record on the wire: records = [base, replicas, [[collection, [[id, lww]]]]]. */
  const lwwOf = (j: Record<string, unknown>): unknown[] => (j.records as [number, string[], [string, unknown[][]][]])[2][0]![1][0]![1] as unknown[];
  const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
  const relayed: DownstreamMessage = {
    type: 'changes',
    space: S,
    upTo: 2,
    changes: [
      { space: S, collection: 'c', id: 'i', replica: R, seq: 1, hlc: hlc(1), op: 'put', fields: { f: 1 } },
      { space: S, collection: 'c', id: 'i', replica: R, seq: 2, hlc: hlc(2), op: 'delete' },
    ],
  };
  /** Row `i` of the relayed changes on the wire: changes = [base, replicas, [[space, [row, ...]]]]. */
  const rowOf = (j: Record<string, unknown>, i: number): unknown[] => (j.changes as [number, string[], [string, unknown[][]][]])[2][0]![1][i]!;
  const tableOf = (j: Record<string, unknown>): [number, string[], unknown] => j.changes as [number, string[], unknown];

  const cases: Case[] = [
    // missing fields
    ['a missing id', ping('"x":1'), '$.id'],
    ['a missing message type', () => rawFrame('{"id":1}'), '$.type'],
    ['a change without hlc', pushWith((w) => delete w.change(0).hlc), '$.changes[0].hlc', 'up'],
    ['a crdt change without update', pushWith((w) => delete w.change(0).update), '$.changes[0].update', 'up'],
    ['a version change without context', pushWith((w) => delete w.change(2).context), '$.changes[2].context', 'up'],
    ['a hello without replica', hello((j) => delete j.replica), '$.replica', 'up'],
    // wrong types
    ['an id that is a string', ping('"id":"1"'), '$.id'],
    ['an id that is null', ping('"id":null'), '$.id'],
    ['an id that is a boolean', ping('"id":true'), '$.id'],
    ['changes that are an object', pushWith((w) => (w.json.changes = {})), '$.changes', 'up'],
    ['fields that are an array', pushWith((w) => (w.change(1).fields = [1])), '$.changes[1].fields', 'up'],
    ['fields that are null', pushWith((w) => (w.change(1).fields = null)), '$.changes[1].fields', 'up'],
    ['a space id with a space in it', pushWith((w) => (w.json.space = 'a b')), '$.space', 'up'],
    ['a replica id with a dot', pushWith((w) => (w.change(0).replica = 'r.1')), '$.changes[0].replica', 'up'],
    ['an empty collection name', pushWith((w) => (w.change(0).collection = '')), '$.changes[0].collection', 'up'],
    ['a crdt type that does not exist', pushWith((w) => (w.change(0).type = 'xml')), '$.changes[0].type', 'up'],
    ['a body that is an array', () => rawFrame('[{"type":"ping","id":1}]'), '$'],
    ['a body that is null', () => rawFrame('null'), '$'],
    ['a body that is a number', () => rawFrame('42'), '$'],
    ['a body that is a string', () => rawFrame('"ping"'), '$'],
    ['a version vector that is an object', pushWith((w) => (w.change(2).context = { r2: 4 })), '$.changes[2].context', 'up'],
    ['a version vector pair of three', pushWith((w) => (w.change(2).context = [['r2', 4, 1]])), '$.changes[2].context[0]', 'up'],
    ['an lww state of four items', down(snapshot, (j) => lwwOf(j).pop()), '$.records[2][0][1][0][1]', 'down'],
    ['a fatal flag that is a string', down({ type: 'error', code: 'internal', message: 'x', fatal: true }, (j) => (j.fatal = 'yes')), '$.fatal', 'down'],
    // unknown message types
    ['an unknown message type', () => rawFrame('{"type":"pang","id":1}'), '$.type'],
    ['a message type of __proto__', () => rawFrame('{"type":"__proto__","id":1}'), '$.type'],
    ['a message type of toString', () => rawFrame('{"type":"toString","id":1}'), '$.type'],
    ['a message type that is a number', () => rawFrame('{"type":1,"id":1}'), '$.type'],
    ['a downstream message sent upstream', () => encodeDownstream({ type: 'ack', space: S, upTo: 1 }), '$.type', 'up'],
    ['an upstream message sent downstream', () => encodeUpstream(push), '$.type', 'down'],
    // attachments
    ['an attachment index past the end', pushWith((w) => (w.change(0).update = 1)), '$.changes[0].update', 'up'],
    ['a negative attachment index', pushWith((w) => (w.change(0).update = -1)), '$.changes[0].update', 'up'],
    ['a fractional attachment index', pushWith((w) => (w.change(0).update = 0.5)), '$.changes[0].update', 'up'],
    ['an attachment index as a string', pushWith((w) => (w.change(0).update = '0')), '$.changes[0].update', 'up'],
    ['an attachment index with no attachments', pushWith(() => undefined, []), '$.changes[0].update', 'up'],
    ['bytes inlined as an array', pushWith((w) => (w.change(0).update = [...update])), '$.changes[0].update', 'up'],
    // clocks
    ['an hlc that is not one', pushWith((w) => (w.change(0).hlc = 'not-an-hlc')), '$.changes[0].hlc', 'up'],
    ['an hlc with uppercase hex', pushWith((w) => (w.change(0).hlc = '0000000003E8-0000-r1')), '$.changes[0].hlc', 'up'],
    ['an hlc with a short wall', pushWith((w) => (w.change(0).hlc = '3e8-0000-r1')), '$.changes[0].hlc', 'up'],
    ['an hlc with an invalid replica', pushWith((w) => (w.change(0).hlc = '0000000003e8-0000-r 1')), '$.changes[0].hlc', 'up'],
    ['an hlc that is a number', pushWith((w) => (w.change(0).hlc = 1000)), '$.changes[0].hlc', 'up'],
    ['a relayed change of an unknown op', down(relayed, (j) => (rowOf(j, 1)[5] = 'upsert')), '$.changes[2][0][1][1][5]', 'down'],
    ['a relayed change of an op named __proto__', down(relayed, (j) => (rowOf(j, 1)[5] = '__proto__')), '$.changes[2][0][1][1][5]', 'down'],
    ['a relayed put without its fields', down(relayed, (j) => rowOf(j, 0).pop()), '$.changes[2][0][1][0]', 'down'],
    ['a relayed delete with a payload', down(relayed, (j) => rowOf(j, 1).push({})), '$.changes[2][0][1][1]', 'down'],
    ['a relayed change whose replica index is past the table', down(relayed, (j) => (rowOf(j, 0)[2] = 1)), '$.changes[2][0][1][0][2]', 'down'],
    ['a relayed change whose replica index is not an integer', down(relayed, (j) => (rowOf(j, 0)[2] = 'r1')), '$.changes[2][0][1][0][2]', 'down'],
    ['a relayed change with an integer hlc and no replica table', down(relayed, (j) => (tableOf(j)[1] = [])), /^\$\.changes\[2\]\[0\]\[1\]\[0\]\[[24]\]$/, 'down'],
    ['a relayed change with a fractional hlc', down(relayed, (j) => (rowOf(j, 0)[4] = 0.5)), '$.changes[2][0][1][0][4]', 'down'],
    ['a relayed change with seq 0', down(relayed, (j) => (rowOf(j, 0)[3] = 0)), '$.changes[2][0][1][0][3]', 'down'],
    ['a relayed change group with a bad space', down(relayed, (j) => ((j.changes as [number, string[], [string, unknown][]])[2][0]![0] = 'has space')), '$.changes[2][0][0]', 'down'],
    ['a relayed change list of two items', down(relayed, (j) => tableOf(j).length === 3 && (j.changes as unknown[]).pop()), '$.changes', 'down'],
    ['an invalid lww touched hlc', down(snapshot, (j) => (lwwOf(j)[0] = 'yesterday')), '$.records[2][0][1][0][1][0]', 'down'],
    // sequence numbers
    ['seq 0', pushWith((w) => (w.change(0).seq = 0)), '$.changes[0].seq', 'up'],
    ['a negative seq', pushWith((w) => (w.change(0).seq = -3)), '$.changes[0].seq', 'up'],
    ['ack upTo 0', () => rawFrame('{"type":"ack","space":"s","upTo":0}'), '$.upTo', 'down'],
    ['seq 0 inside a version vector', pushWith((w) => (w.change(2).context = [['r2', 0]])), '$.changes[2].context[0][1]', 'up'],
    ['snapshot chunks 0', down(snapshot, (j) => (j.chunks = 0)), '$.chunks', 'down'],
    ['hello protocol 0', hello((j) => (j.protocol = 0)), '$.protocol', 'up'],
    ['a negative hello position', hello((j) => ((j.spaces as { after: number }[])[0]!.after = -1)), '$.spaces[0].after', 'up'],
    // NaN-like numbers
    ['an id of 1e999 (Infinity)', ping('"id":1e999'), '$.id'],
    ['an id of -1e999 (-Infinity)', ping('"id":-1e999'), '$.id'],
    ['an id of "NaN"', ping('"id":"NaN"'), '$.id'],
    ['an id of 1.5', ping('"id":1.5'), '$.id'],
    ['an id of 2^53 (not a safe integer)', ping('"id":9007199254740992'), '$.id'],
    ['an id of -1', ping('"id":-1'), '$.id'],
    ['a field value of 1e999', () => rawFrame(`{"type":"push","space":"s","changes":[{"space":"s","collection":"c","id":"i","replica":"r1","seq":1,"hlc":"${hlc(1)}","op":"put","fields":{"x":[1e999]}}]}`), '$.changes[0].fields.x[0]', 'up'],
    ['a seq of 1e999', () => rawFrame(`{"type":"push","space":"s","changes":[{"space":"s","collection":"c","id":"i","replica":"r1","seq":1e999,"hlc":"${hlc(1)}","op":"delete"}]}`), '$.changes[0].seq', 'up'],
    // unknown ops
    ['a change whose op is unknown', pushWith((w) => (w.change(1).op = 'upsert')), '$.changes[1].op', 'up'],
    ['a change whose op is __proto__', pushWith((w) => (w.change(1).op = '__proto__')), '$.changes[1].op', 'up'],
    ['a change whose op is missing', pushWith((w) => delete w.change(1).op), '$.changes[1].op', 'up'],
    ['a change whose op is a number', pushWith((w) => (w.change(1).op = 1)), '$.changes[1].op', 'up'],
    // limits and other values
    ['a hello with too many spaces', hello((j) => (j.spaces = Array.from({ length: MAX_SPACES_PER_HELLO + 1 }, (_, i) => ({ space: `s${i}`, after: 0 })))), '$.spaces', 'up'],
    ['an error code that does not exist', down({ type: 'error', code: 'internal', message: 'x', fatal: false }, (j) => (j.code = 'oops')), '$.code', 'down'],
    ['an access level that does not exist', down({ type: 'welcome', protocol: 1, server: 'srv', time: 1, spaces: [{ space: S, access: 'read', head: 0 }] }, (j) => ((j.spaces as { access: string }[])[0]!.access = 'admin')), '$.spaces[0].access', 'down'],
    ['fields nested deeper than the JSON depth limit', () => rawFrame(`{"type":"push","space":"s","changes":[{"space":"s","collection":"c","id":"i","replica":"r1","seq":1,"hlc":"${hlc(1)}","op":"put","fields":{"x":${nested(80)}}}]}`), /^\$\.changes\[0\]\.fields\.x(\[0\])+ \(deeper than 64\)$/, 'up'],
  ];

  for (const [name, frame, path, direction = 'both'] of cases) {
    it(name, () => {
      const bytes = frame();
      if (direction !== 'down') expectProtocolError(() => decodeUpstream(bytes), 'invalid_message', path);
      if (direction !== 'up') expectProtocolError(() => decodeDownstream(bytes), 'invalid_message', path);
    });
  }

  it('errors come from the schema, not from the catch-all, and say what was expected', () => {
    const frame = pushWith((w) => (w.change(0).seq = 0))();
    const e = expectProtocolError(() => decodeUpstream(frame), 'invalid_message', '$.changes[0].seq');
    expect(e.cause).toBeUndefined();
    expect(e.message).toMatch(/^expected an integer in \[1, \d+\] \(at \$\.changes\[0\]\.seq\)$/);
  });

  it('the sanity check: the unedited frames decode', () => {
    expect(decodeUpstream(pushWith(() => undefined)())).toEqual(push);
    expect(decodeUpstream(ping('"id":0')())).toEqual({ type: 'ping', id: 0 });
    expect(entriesForm(decodeDownstream(down(snapshot, () => undefined)()))).toEqual(entriesForm(snapshot));
    expect(decodeUpstream(hello(() => undefined)())).toMatchObject({ type: 'hello', protocol: 1 });
  });
});

describe('fitFrames: cutting items into frames by bytes', () => {
  const encodeSlice = (slice: readonly string[], last: boolean) => new TextEncoder().encode(JSON.stringify({ last, slice }));

  it('keeps every item once, in order; each frame is within the budget unless it holds one item; last marks the final slice only', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 300 }), { maxLength: 60 }), fc.integer({ min: 1, max: 4_000 }), (items, maxBytes) => {
        const frames = [...fitFrames(items, encodeSlice, maxBytes)];
        expect(frames.flatMap((f) => f.items)).toEqual(items);
        frames.forEach((f, i) => {
          if (f.items.length > 1) expect(f.frame.length).toBeLessThanOrEqual(maxBytes);
          expect(JSON.parse(new TextDecoder().decode(f.frame))).toEqual({ last: i === frames.length - 1, slice: f.items });
        });
      }),
    );
  });

  it('gives the whole list as one frame when it fits, and encodes nothing past the frames taken', () => {
    const items = Array.from({ length: 64 }, (_, i) => `item ${i}`.padEnd(100, '.'));
    expect([...fitFrames(items, encodeSlice, 1_000_000)].map((f) => f.items.length)).toEqual([64]);
    let encoded = 0;
    const counting = (slice: readonly string[], last: boolean) => (encoded++, encodeSlice(slice, last));
    const first = fitFrames(items, counting, 1_000).next();
    expect(first.done).toBe(false);
    // 64 -> 32 -> 16 -> 8 items (about 850 bytes): four encodings, and the rest is never built.
    expect(first.value?.items).toHaveLength(8);
    expect(encoded).toBe(4);
  });
});

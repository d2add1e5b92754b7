/**
 * The protocol's limits (packages/core/src/protocol/limits.ts): the promise that
 * keeps an honest client live. A replica refuses a change whose push frame would
 * be larger than MAX_CHANGE_BYTES (measured by `changeBytes`), and every server
 * accepts at least that frame and at least PROMISED_LIMITS; so `changeBytes` must
 * be exact (an undercount lets a change in that can never be pushed), and a
 * server configured below the promise must refuse to start.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  MAX_CHANGE_BYTES,
  MAX_RECORD_BYTES,
  MIN_FRAME_BYTES,
  PROMISED_LIMITS,
  SynclineError,
  UNANNOUNCED_LIMITS,
  changeBytes,
  checkServerLimits,
  mayExceedChangeLimit,
  encodeUpstream,
  fieldsFromEntries,
  formatTimestamp,
  isName,
  replicaId,
  spaceId,
  type Change,
  type Json,
  type ServerLimits,
  type SpaceId,
} from '@syncline/core/internal';
import { createSyncServer, sqliteStorage, type SyncServerOptions } from '@syncline/server';
import { SPECIAL_KEYS, changeArb, changeArbs, crdtUpdateArb, jsonArb, nameArb, recordIdArb, replicaIdArb, seqArb, spaceIdArb } from './helpers/arbitraries.js';

const RUNS = { numRuns: 1000 };

/** What changeBytes promises to equal: the push frame carrying the change alone, built for real. */
const frameBytes = (change: Change): number => encodeUpstream({ type: 'push', space: change.space, changes: [change] }).length;

const R = replicaId('writer');
const S = spaceId('space-1');

function put(fields: Record<string, Json>, extra: Partial<Change> = {}): Change {
  return { space: S, collection: 'notes', id: 'n1', replica: R, seq: 1, hlc: formatTimestamp({ wall: 1_700_000_000_000, counter: 0, replica: R }), op: 'put', fields: fieldsFromEntries(Object.entries(fields)), ...extra } as Change;
}

/** A well-formed UTF-16 string of `n` code points from `alphabet` (every character the same UTF-8 width). */
const textOf = (alphabet: readonly string[], min: number, max: number): fc.Arbitrary<string> => fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((cs) => cs.join(''));

const ASCII = ['a', 'Z', '0', ' ', '"', '\\', '\n', '\u0000', '\u001f', '~', '<', '&', "'"];
/** 2-byte UTF-8: U+0080..U+07FF. */
const TWO = ['\u0080', 'é', 'ß', 'Ω', 'ж', '\u07ff'];
/** 3-byte UTF-8: U+0800..U+FFFF outside the surrogates (U+2028/9 are escaped by no one: JSON.stringify keeps them). */
const THREE = ['\u0800', '€', '中', '\u2028', '\u2029', '\ufeff', '\uffff', '\ud7ff', '\ue000'];
/** 4-byte UTF-8: U+10000..U+10FFFF, a surrogate pair in UTF-16. */
const FOUR = ['😀', '🎉', '𝄞', '\u{10000}', '\u{10ffff}', '👩‍💻'];
/**
 * Lone surrogates (in values only: names must be well-formed): JSON.stringify writes them as
 * \uXXXX escapes (6 ASCII bytes). A high one is always followed by ASCII here, so that no two
 * units drawn one after the other make a pair.
 */
const LONE = ['\ud800a', '\udbff ', '\udc00', '\udfff'];

/** True when a string of the change (name, id, value, key) holds a surrogate pair: 4 bytes of UTF-8 (JSON.stringify keeps pairs and escapes lone halves). */
const hasPair = (change: Change): boolean => /[\uD800-\uDBFF][\uDC00-\uDFFF]/.test(JSON.stringify(change));

/** Printable ASCII space ids without `"` and `\` (the two JSON escapes). */
const plainSpaceArb: fc.Arbitrary<SpaceId> = spaceIdArb.filter((s) => !s.includes('"') && !s.includes('\\'));

/** A change of any op from the shared arbitraries, in a chosen space, with extra field values from `text`. */
function changeWithText(text: fc.Arbitrary<string>, space: fc.Arbitrary<SpaceId>, base: fc.Arbitrary<Change>): fc.Arbitrary<Change> {
  return fc
    .record({ change: base, space, name: fc.oneof(nameArb, fc.constantFrom(...SPECIAL_KEYS)), value: text })
    .map(({ change, space: s, name, value }) => {
      const c = { ...change, space: s } as Change;
      if (c.op === 'put' || c.op === 'patch') return { ...c, fields: fieldsFromEntries([...Object.entries(c.fields), [name, value]]) } as Change;
      if (c.op === 'version' && c.value !== null) return { ...c, value: fieldsFromEntries([...Object.entries(c.value), [name, value]]) } as Change;
      return c;
    });
}

describe('changeBytes: the exact size of the push frame carrying one change', () => {
  it('the generators reach every op, crdt bytes and special keys (the properties below are not vacuous)', () => {
    const sample = fc.sample(changeArb, { numRuns: 500, seed: 7 });
    expect(new Set(sample.map((c) => c.op))).toEqual(new Set(['put', 'patch', 'delete', 'version', 'crdt']));
    expect(sample.some((c) => c.op === 'crdt' && c.update.length > 0)).toBe(true);
    expect(sample.some((c) => (c.op === 'put' || c.op === 'patch') && Object.hasOwn(c.fields, '__proto__'))).toBe(true);
  });

  it.each(Object.keys(changeArbs) as Array<keyof typeof changeArbs>)('%s changes of the shared arbitraries, with ASCII, 2- and 3-byte UTF-8 and lone surrogates, no 4-byte UTF-8, spaces without JSON escapes', (op) => {
    const text = fc.oneof(textOf(ASCII, 0, 30), textOf(TWO, 1, 30), textOf(THREE, 1, 30), textOf(LONE, 1, 5), textOf([...ASCII, ...TWO, ...THREE, ...LONE], 0, 40));
    const arb = changeWithText(text, plainSpaceArb, changeArbs[op]).filter((c) => !hasPair(c));
    fc.assert(
      fc.property(arb, (change) => {
        expect(changeBytes(change)).toBe(frameBytes(change));
      }),
      { numRuns: 300 },
    );
  });

  it('every op of the shared arbitraries, every valid space id, the whole of Unicode (emoji included)', () => {
    fc.assert(
      fc.property(changeWithText(fc.oneof(textOf([...ASCII, ...TWO, ...THREE, ...FOUR, ...LONE], 0, 20), fc.string({ unit: 'binary', maxLength: 20 })), spaceIdArb, changeArb), (change) => {
        expect(changeBytes(change)).toBe(frameBytes(change));
      }),
      RUNS,
    );
  });

  it('4-byte UTF-8 (surrogate pairs: emoji, U+10000..U+10FFFF) in values, keys, ids and collection names', () => {
    const cases: Change[] = [
      put({ title: '😀' }),
      put({ title: 'a😀b🎉c' }),
      put({ title: '\u{10000}\u{10ffff}' }),
      put({ '😀': 1 }),
      put({ title: 'x' }, { id: 'note-😀' }),
      put({ title: 'x' }, { collection: '𝄞' }),
      put({ nested: { list: ['👩‍💻', { '🎉': '🎉' }] } }),
    ];
    for (const c of cases) expect(changeBytes(c), JSON.stringify(c.op === 'put' ? c.fields : c)).toBe(frameBytes(c));
    // One emoji is 4 bytes of UTF-8: the frame grows by 4 per emoji.
    expect(frameBytes(put({ title: '😀😀' })) - frameBytes(put({ title: '' }))).toBe(8);
    expect(changeBytes(put({ title: '😀😀' })) - changeBytes(put({ title: '' }))).toBe(8);
  });

  it('a change changeBytes lets in (at most MAX_CHANGE_BYTES) fits a frame of the promised maxFrameBytes (70,000 emoji: 280,000 bytes of UTF-8)', () => {
    // What the promise is for: a replica refuses at write time a change above MAX_CHANGE_BYTES, so any change it
    // took can be pushed alone to a server at PROMISED_LIMITS. An undercount breaks that: the change is stuck.
    const c = put({ notes: '😀'.repeat(70_000) });
    expect(changeBytes(c) <= MAX_CHANGE_BYTES ? frameBytes(c) : 0).toBeLessThanOrEqual(PROMISED_LIMITS.maxFrameBytes);
    expect(changeBytes(c)).toBe(frameBytes(c));
  });

  it('space ids holding `"` or `\\` (valid printable ASCII that JSON escapes)', () => {
    for (const space of ['a"b', 'a\\b', '"', '\\', '\\\\""'].map(spaceId)) {
      const c = put({ title: 'x' }, { space });
      expect(changeBytes(c), space).toBe(frameBytes(c));
    }
  });

  it('2- and 3-byte UTF-8 and lone surrogates, one character kind at a time', () => {
    for (const ch of [...TWO, ...THREE, ...LONE, ...ASCII]) {
      const named: boolean = isName(ch);
      const c = put(named ? { title: ch.repeat(3), [ch]: ch } : { title: ch.repeat(3) });
      expect(changeBytes(c), JSON.stringify(ch)).toBe(frameBytes(c));
    }
  });

  it('large values: lengths whose varints take 2, 3 and 4 bytes, big crdt updates, near and above MAX_CHANGE_BYTES', () => {
    const sizes = [126, 127, 128, 16_383, 16_384, 70_000, MAX_CHANGE_BYTES - 200, MAX_CHANGE_BYTES, 2_097_152];
    for (const n of sizes) {
      const text = put({ title: 'x'.repeat(n) });
      expect(changeBytes(text), `text ${n}`).toBe(frameBytes(text));
      const wide = put({ title: 'é中'.repeat(Math.ceil(n / 5)) });
      expect(changeBytes(wide), `wide text ${n}`).toBe(frameBytes(wide));
      const crdt: Change = { space: S, collection: 'docs', id: 'd', replica: R, seq: 9, hlc: put({}).hlc, op: 'crdt', field: 'body', type: 'text', update: new Uint8Array(n).fill(7) };
      expect(changeBytes(crdt), `crdt ${n}`).toBe(frameBytes(crdt));
    }
    // Many values, large seq, deep nesting.
    const many = put(Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`f${i}`, { v: [i, `é${i}`, null, true] }])), { seq: Number.MAX_SAFE_INTEGER });
    expect(changeBytes(many)).toBe(frameBytes(many));
  });

  it('arbitrary changes with large string, JSON and crdt payloads (no 4-byte UTF-8, spaces without JSON escapes)', () => {
    const big = fc.record({
      space: plainSpaceArb,
      id: recordIdArb,
      replica: replicaIdArb,
      seq: seqArb,
      value: fc.oneof(jsonArb, textOf([...ASCII, ...TWO, ...THREE, ...LONE], 0, 200)),
      repeat: fc.oneof(fc.nat(200), fc.integer({ min: 16_000, max: 300_000 })),
      crdt: crdtUpdateArb,
      padding: fc.oneof(fc.nat(200), fc.integer({ min: 16_000, max: 300_000 })),
    });
    fc.assert(
      fc.property(big, ({ space, id, replica, seq, value, repeat, crdt, padding }) => {
        const hlc = formatTimestamp({ wall: 1, counter: 2, replica });
        const header = { space, collection: 'c', id, replica, seq, hlc };
        const long = typeof value === 'string' ? value.repeat(Math.max(1, Math.floor(repeat / Math.max(1, value.length)))) : value;
        const changes: Change[] = [
          { ...header, op: 'put', fields: fieldsFromEntries([['__proto__', long], ['v', value]]) },
          { ...header, op: 'patch', fields: fieldsFromEntries([['constructor', long]]), unset: ['toString'] },
          { ...header, op: 'version', value: fieldsFromEntries([['v', long]]), context: new Map([[replica, seq]]) },
          { ...header, op: 'crdt', field: '__proto__', type: crdt.type, update: crdt.update },
          { ...header, op: 'crdt', field: 'pad', type: 'array', update: new Uint8Array(padding) },
          { ...header, op: 'delete' },
        ];
        for (const c of changes.filter((x) => !hasPair(x))) expect(changeBytes(c), c.op).toBe(frameBytes(c));
      }),
      { numRuns: 60 },
    );
  });
});

describe('mayExceedChangeLimit: the cheap bound that skips changeBytes for small changes', () => {
  it('never says a change is within the limit when changeBytes says it is not; says so for every small change', () => {
    const sized = fc.record({
      change: changeArb,
      text: textOf([...ASCII, ...TWO, ...THREE, ...FOUR, ...LONE], 0, 40),
      repeat: fc.oneof(fc.nat(50), fc.integer({ min: 10_000, max: 150_000 })),
      context: fc.nat(3_000),
      bytes: fc.oneof(fc.nat(1_000), fc.integer({ min: MAX_CHANGE_BYTES - 20_000, max: MAX_CHANGE_BYTES + 1_000 })),
    });
    let exact = 0;
    fc.assert(
      fc.property(sized, ({ change, text, repeat, context, bytes }) => {
        const long = text.repeat(repeat);
        const header = { space: change.space, collection: change.collection, id: change.id, replica: change.replica, seq: change.seq, hlc: change.hlc };
        const candidates: Change[] = [
          change,
          { ...header, op: 'put', fields: fieldsFromEntries([['__proto__', long]]) },
          { ...header, op: 'patch', fields: fieldsFromEntries([['t', long]]), unset: [text || 'x'] },
          { ...header, op: 'version', value: fieldsFromEntries([['t', long]]), context: new Map(Array.from({ length: context }, (_, i) => [replicaId(`r${i}-${'x'.repeat(58)}`), Number.MAX_SAFE_INTEGER - i])) },
          { ...header, op: 'crdt', field: 'f', type: 'text', update: new Uint8Array(bytes) },
        ];
        for (const c of candidates) {
          if (mayExceedChangeLimit(c)) exact++;
          else expect(changeBytes(c), c.op).toBeLessThanOrEqual(MAX_CHANGE_BYTES);
        }
        // A change of a few hundred bytes is never measured.
        if (changeBytes(change) < 1_000) expect(mayExceedChangeLimit(change)).toBe(false);
      }),
      { numRuns: 300 },
    );
    expect(exact).toBeGreaterThan(0);
  });
});

describe('checkServerLimits: the protocol promise', () => {
  const KEYS = Object.keys(PROMISED_LIMITS) as Array<keyof ServerLimits>;

  it('has the four limits and promises what the module says', () => {
    expect([...KEYS].sort()).toEqual(['maxBatch', 'maxClockDrift', 'maxFrameBytes', 'messagesPerSecond']);
    expect(PROMISED_LIMITS).toEqual({ maxFrameBytes: MIN_FRAME_BYTES, maxBatch: 1, messagesPerSecond: 5, maxClockDrift: 60_000 });
    // A frame of the promised size carries one record of the largest size, with room for its envelope.
    expect(MIN_FRAME_BYTES).toBeGreaterThan(MAX_RECORD_BYTES);
    expect(MAX_RECORD_BYTES).toBeGreaterThan(MAX_CHANGE_BYTES);
    // A server that announces nothing ran with at least the promise.
    for (const key of KEYS) expect(UNANNOUNCED_LIMITS[key]).toBeGreaterThanOrEqual(PROMISED_LIMITS[key]);
  });

  it('no problem at the promise, at the unannounced defaults, and anywhere above', () => {
    expect(checkServerLimits(PROMISED_LIMITS)).toEqual([]);
    expect(checkServerLimits(UNANNOUNCED_LIMITS)).toEqual([]);
    const above = (key: keyof ServerLimits) => fc.oneof(fc.constant(PROMISED_LIMITS[key]), fc.double({ min: PROMISED_LIMITS[key], max: 1e15, noNaN: true }), fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(Number.MAX_VALUE));
    fc.assert(
      fc.property(fc.record({ maxFrameBytes: above('maxFrameBytes'), maxBatch: above('maxBatch'), messagesPerSecond: above('messagesPerSecond'), maxClockDrift: above('maxClockDrift') }), (limits) => {
        expect(checkServerLimits(limits)).toEqual([]);
      }),
      RUNS,
    );
  });

  it('one problem per limit below the promise, naming its key; any combination', () => {
    const below = (key: keyof ServerLimits) =>
      fc.oneof(
        fc.double({ min: -1e9, max: PROMISED_LIMITS[key], maxExcluded: true, noNaN: true, noDefaultInfinity: true }),
        fc.constant(PROMISED_LIMITS[key] - 1),
        fc.constant(0),
        fc.constant(-0),
        fc.constant(PROMISED_LIMITS[key] - Number.EPSILON * PROMISED_LIMITS[key] * 4),
      );
    fc.assert(
      fc.property(
        fc.subarray(KEYS, { minLength: 1 }),
        fc.record({ maxFrameBytes: below('maxFrameBytes'), maxBatch: below('maxBatch'), messagesPerSecond: below('messagesPerSecond'), maxClockDrift: below('maxClockDrift') }),
        (broken, low) => {
          const limits = { ...UNANNOUNCED_LIMITS };
          for (const key of broken) limits[key] = low[key];
          const problems = checkServerLimits(limits);
          expect(problems).toHaveLength(broken.length);
          for (const key of broken) expect(problems.filter((p) => p.includes(key)), key).toHaveLength(1);
          for (const key of KEYS.filter((k) => !broken.includes(k))) expect(problems.some((p) => p.includes(key)), key).toBe(false);
        },
      ),
      RUNS,
    );
  });

  it('each limit just below its promise is reported, with the promised value in the message', () => {
    for (const key of KEYS) {
      const problems = checkServerLimits({ ...PROMISED_LIMITS, [key]: PROMISED_LIMITS[key] - 1 });
      expect(problems, key).toHaveLength(1);
      expect(problems[0]).toContain(key);
      expect(problems[0]).toContain(String(PROMISED_LIMITS[key]));
    }
  });

  it('NaN is reported for every limit (it compares false with everything); Infinity is reported too (a welcome cannot carry it as JSON)', () => {
    for (const key of KEYS) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const problems = checkServerLimits({ ...UNANNOUNCED_LIMITS, [key]: bad });
        expect(problems, `${key} = ${bad}`).toHaveLength(1);
        expect(problems[0]).toContain(key);
      }
    }
    expect(checkServerLimits({ maxFrameBytes: Number.NaN, maxBatch: Number.NaN, messagesPerSecond: Number.NaN, maxClockDrift: Number.NaN })).toHaveLength(4);
    // Missing keys (a config object that lost one) read as undefined: reported, not taken as no limit.
    expect(checkServerLimits({ maxFrameBytes: MIN_FRAME_BYTES } as ServerLimits)).toHaveLength(3);
  });
});

describe('createSyncServer refuses limits below the promise', () => {
  const silent = pino({ level: 'silent' });

  /** Creates a server with `options` and closes whatever was opened; returns what the creation threw, if anything. */
  async function tryCreate(options: SyncServerOptions): Promise<unknown> {
    const storage = sqliteStorage({ path: ':memory:' });
    try {
      const server = createSyncServer({ storage, logger: silent, ...options });
      await server.close();
      return undefined;
    } catch (error) {
      await storage.close();
      return error;
    }
  }

  async function expectRefused(options: SyncServerOptions, key: keyof ServerLimits): Promise<void> {
    const error = await tryCreate(options);
    expect(error, JSON.stringify(options)).toBeInstanceOf(SynclineError);
    expect((error as SynclineError).code).toBe('invalid_limits');
    expect((error as SynclineError).message).toContain(key);
  }

  it('maxFrameBytes below MIN_FRAME_BYTES', async () => {
    for (const maxFrameBytes of [MIN_FRAME_BYTES - 1, 1024, 0, -1, Number.NaN]) await expectRefused({ limits: { maxFrameBytes } }, 'maxFrameBytes');
  });

  it('maxBatch below 1', async () => {
    for (const maxBatch of [0, 0.5, -3, Number.NaN]) await expectRefused({ limits: { maxBatch } }, 'maxBatch');
  });

  it('messagesPerSecond below 5', async () => {
    for (const messagesPerSecond of [4, 4.99, 1, 0, -5, Number.NaN]) await expectRefused({ limits: { messagesPerSecond } }, 'messagesPerSecond');
  });

  it('maxClockDrift below 60 s', async () => {
    for (const maxClockDrift of [59_999, 1_000, 0, -60_000, Number.NaN]) await expectRefused({ maxClockDrift }, 'maxClockDrift');
  });

  it('several limits below at once name every one of them', async () => {
    const error = (await tryCreate({ limits: { maxFrameBytes: 10, maxBatch: 0, messagesPerSecond: 1 }, maxClockDrift: 10 })) as SynclineError;
    expect(error.code).toBe('invalid_limits');
    for (const key of ['maxFrameBytes', 'maxBatch', 'messagesPerSecond', 'maxClockDrift']) expect(error.message).toContain(key);
  });

  it('starts at exactly the promised values, with the defaults, and above', async () => {
    const promised = { limits: { maxFrameBytes: MIN_FRAME_BYTES, maxBatch: 1, messagesPerSecond: 5 }, maxClockDrift: 60_000 };
    expect(await tryCreate(promised)).toBeUndefined();
    expect(await tryCreate({})).toBeUndefined();
    expect(await tryCreate({ limits: { maxFrameBytes: 64 * 1024 * 1024, maxBatch: 100_000, messagesPerSecond: 10_000 }, maxClockDrift: 3_600_000 })).toBeUndefined();
    // A server at the promise also listens and closes.
    const server = createSyncServer({ ...promised, port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: silent });
    try {
      expect(await server.listen()).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });
});

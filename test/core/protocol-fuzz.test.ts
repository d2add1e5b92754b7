/**
 * Fuzzing the decoders: whatever bytes arrive, decodeUpstream and decodeDownstream
 * return a message or throw a ProtocolError. Nothing else may escape, because a
 * server decodes inside a `ws` message handler.
 *
 * The codec wraps any unexpected exception in ProtocolError('invalid_message') as
 * a last line of defence, so "is a ProtocolError" alone could never fail here.
 * The check is stricter: an invalid_message must come from a schema check (a path
 * starting at `$`, no `cause`), and a malformed_frame may only wrap the JSON
 * parser's SyntaxError or the UTF-8 decoder's TypeError. A TypeError or RangeError
 * from anywhere else fails the property, with the seed fast-check prints.
 *
 * Cases: 5,000 random byte arrays, 5,000 mutated valid frames, 5,000 valid frames
 * with wrong JSON values: 15,000, each decoded in both directions.
 * Set FC_SEED (and FC_PATH) to replay a failure.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FRAME_MARKER,
  ProtocolError,
  decodeDownstream,
  decodeUpstream,
  encodeDownstream,
  encodeUpstream,
  readFrame,
  setOwn,
  writeFrame,
  type DownstreamMessage,
  type UpstreamMessage,
} from '@syncline/core/internal';
import { downstreamMessageArb, mutate, mutationArb, randomFrameBytesArb, upstreamMessageArb, varint } from './helpers/arbitraries.js';

const RUNS_PER_PROPERTY = 5_000;

const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns,
  ...(seed === undefined ? {} : { seed, path: process.env.FC_PATH }),
});

type Outcome = 'decoded' | 'malformed_frame' | 'invalid_message';
const stats: Record<string, Record<Outcome, number>> = {};
let cases = 0;
const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Fails (throws) unless `error` is a ProtocolError raised on purpose. */
function expectDeliberateProtocolError(error: unknown): ProtocolError {
  if (!(error instanceof ProtocolError)) {
    const name = (error as Error | undefined)?.constructor?.name ?? typeof error;
    throw new Error(`decoder threw ${name} instead of ProtocolError: ${String(error)}`, { cause: error });
  }
  if (error.code === 'invalid_message') {
    if (error.cause !== undefined || !error.path.startsWith('$')) {
      throw new Error(`decoder hit an unexpected exception (caught by the codec's catch-all): ${String(error.cause)}`, { cause: error });
    }
  } else if (error.code === 'malformed_frame') {
    expect(error.path).toBe('');
    if (error.cause !== undefined && !(error.cause instanceof SyntaxError) && !(error.cause instanceof TypeError)) {
      throw new Error(`frame reader hit an unexpected exception: ${String(error.cause)}`, { cause: error });
    }
  } else {
    throw new Error(`unexpected error code ${error.code}`, { cause: error });
  }
  return error;
}

const directions = [
  { name: 'upstream', decode: decodeUpstream as (f: Uint8Array) => unknown, encode: (m: unknown) => encodeUpstream(m as UpstreamMessage) },
  { name: 'downstream', decode: decodeDownstream as (f: Uint8Array) => unknown, encode: (m: unknown) => encodeDownstream(m as DownstreamMessage) },
] as const;

/** Decodes `frame` both ways; returns the outcome per direction. */
function decodeBothWays(kind: string, frame: Uint8Array): Outcome[] {
  cases++;
  const counts = (stats[kind] ??= { decoded: 0, malformed_frame: 0, invalid_message: 0 });
  return directions.map(({ decode, encode }) => {
    let message: unknown;
    try {
      message = decode(frame);
    } catch (error) {
      const code = expectDeliberateProtocolError(error).code as Outcome;
      counts[code]++;
      return code;
    }
    counts.decoded++;
    // Whatever decodes is a well-formed message: it encodes, and its encoding is stable.
    const again = encode(message);
    expect(hex(encode(decode(again)))).toBe(hex(again));
    return 'decoded';
  });
}

// ---------------------------------------------------------------------------
// Generators

const validMessage = fc.oneof(
  upstreamMessageArb.map((m) => encodeUpstream(m)),
  downstreamMessageArb.map((m) => encodeDownstream(m)),
);



const utf8 = new TextEncoder();

/** Where a mutation lands: anywhere, inside the JSON text (lengths fixed up), or inside the attachments. */
const region = fc.constantFrom('frame', 'json', 'attachments');

// Wrong values: every JSON type, edge numbers, strings that look like ids or clocks.
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -0, -1, 0.5, 1.5, 2 ** 53, -(2 ** 53), 1e308, -1e308, 65536, '', 'x', '0', '__proto__', 'constructor'),
  fc.constantFrom('000000000001-0000-r1', 'ping', 'push', 'crdt', 'text', 'read', 'internal', [], {}, [[]], [0], [['r1', 1]], JSON.parse('{"__proto__":{"type":"ping"}}') as unknown),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 10 }),
  fc.jsonValue({ maxDepth: 2 }),
  // A fresh copy each time: constants are shared between runs and edits mutate the tree.
).map((v) => (typeof v === 'object' && v !== null ? (JSON.parse(JSON.stringify(v)) as unknown) : v));

type Edit =
  | { kind: 'replace'; target: number; value: unknown }
  | { kind: 'delete'; target: number }
  | { kind: 'wrap'; target: number }
  | { kind: 'addKey'; target: number; key: string; value: unknown }
  | { kind: 'attachments'; drop: number; add: number };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('replace' as const), target: fc.nat(), value: wrongValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), target: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), target: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('addKey' as const), target: fc.nat(), key: fc.constantFrom('__proto__', 'constructor', 'type', 'op', 'x'), value: wrongValue }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('attachments' as const), drop: fc.nat(2), add: fc.nat(2) }) },
);

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

/** Every slot of the tree (object property or array element), depth first. */
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

function objects(value: unknown): Record<string, unknown>[] {
  const found = [value, ...slots(value).map((s) => (s.parent as Record<string | number, unknown>)[s.key])];
  return found.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v));
}

function applyEdit(root: { json: unknown; attachments: Uint8Array[] }, edit: Edit): void {
  if (edit.kind === 'attachments') {
    root.attachments = root.attachments.slice(0, Math.max(0, root.attachments.length - edit.drop));
    for (let i = 0; i < edit.add; i++) root.attachments.push(Uint8Array.from([i]));
    return;
  }
  if (edit.kind === 'addKey') {
    const targets = objects(root.json);
    if (targets.length > 0) setOwn(targets[edit.target % targets.length] as Record<string, unknown>, edit.key, edit.value);
    return;
  }
  const all = slots(root.json);
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

// ---------------------------------------------------------------------------

describe('decoders never throw anything but a deliberate ProtocolError', () => {
  afterAll(() => {
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_KEYS);
  });

  it(`(a) ${RUNS_PER_PROPERTY} random byte arrays`, () => {
    fc.assert(
      fc.property(randomFrameBytesArb, (bytes) => {
        decodeBothWays('random', bytes);
      }),
      params(RUNS_PER_PROPERTY),
    );
  });

  it(`(b) ${RUNS_PER_PROPERTY} mutated valid frames`, () => {
    fc.assert(
      fc.property(validMessage, region, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (frame, where, mutations) => {
        if (where === 'frame') {
          decodeBothWays('mutated frame', mutate(frame, mutations));
          return;
        }
        const raw = readFrame(frame);
        if (where === 'json') {
          const text = mutate(utf8.encode(JSON.stringify(raw.json)), mutations);
          decodeBothWays('mutated json', rawFrame(text, raw.attachments));
          return;
        }
        // Attachment contents are opaque to the protocol: changing them never breaks decoding.
        const attachments = raw.attachments.map((a) => mutate(a, mutations));
        const outcomes = decodeBothWays('mutated attachments', writeFrame(raw.json, attachments));
        expect(outcomes).toContain('decoded');
      }),
      params(RUNS_PER_PROPERTY),
    );
  });

  it(`(c) ${RUNS_PER_PROPERTY} valid frames with wrong JSON values`, () => {
    fc.assert(
      fc.property(validMessage, fc.array(editArb, { minLength: 1, maxLength: 3 }), (frame, edits) => {
        const raw = readFrame(frame);
        const root = { json: raw.json, attachments: [...raw.attachments] };
        for (const edit of edits) applyEdit(root, edit);
        decodeBothWays('wrong values', writeFrame(root.json, root.attachments));
      }),
      params(RUNS_PER_PROPERTY),
    );
  });

  it('reached every outcome and ran at least 10,000 cases', () => {
    console.log(`protocol fuzz: ${cases} cases`, JSON.stringify(stats));
    expect(cases).toBeGreaterThanOrEqual(10_000);
    // The fuzzing must get past the frame reader into the schemas, and sometimes all the way through.
    for (const kind of ['mutated frame', 'mutated json', 'wrong values']) {
      expect(stats[kind]?.invalid_message, `${kind}: invalid_message`).toBeGreaterThan(0);
      expect(stats[kind]?.decoded, `${kind}: decoded`).toBeGreaterThan(0);
    }
    for (const kind of ['random', 'mutated frame', 'mutated json']) {
      expect(stats[kind]?.malformed_frame, `${kind}: malformed_frame`).toBeGreaterThan(0);
    }
    expect(stats.random?.invalid_message).toBeGreaterThan(0);
  });
});


/** A frame around arbitrary JSON bytes, lengths correct. */
function rawFrame(text: Uint8Array, attachments: readonly Uint8Array[]): Uint8Array {
  const header = [FRAME_MARKER, ...varint(attachments.length)];
  for (const a of attachments) header.push(...varint(a.length));
  header.push(...varint(text.length));
  const parts = [Uint8Array.from(header), text, ...attachments];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Guards the wire format (after Zero's protocol-version.test.ts). The hash of
 * describeProtocol() is recorded per PROTOCOL_VERSION: changing any message schema
 * or the frame changes the hash, and this test fails until PROTOCOL_VERSION is
 * bumped and the new hash recorded below. Old entries stay: they document which
 * wire shape each version had. The golden frames pin the exact bytes too, which
 * catches encoder changes (key order, attachment order, varints) that leave the
 * schema descriptions alone.
 */
import { createHash } from 'node:crypto';
import * as Y from 'yjs';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  errorCodeFor,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  decodeDownstream,
  decodeUpstream,
  describeProtocol,
  encodeDownstream,
  encodeUpstream,
  isSupportedProtocol,
  lwwEntries,
  type DownstreamMessage,
  type Fields,
  type HlcString,
  type LwwState,
  type ReplicaId,
  type SnapshotRecord,
  type SpaceId,
  type UpstreamMessage,
} from '@syncline/core/internal';

/** sha256(describeProtocol()) per protocol version. Append a line per version; never edit an old one. */
const WIRE_HASHES: Readonly<Record<number, string>> = {
  1: '853ad455a33fbfae22b6d692364a3dc0e7a67bb060fc5ebc6425da16e6202625',
  2: '196a0dbeb3b156667b3191da5369003b8934cf59b5e78d33578b09459237e3c1',
  3: '49dfbd138b15e5bee09b5bcdb2b45f63711a5ef18b8302f61565fffe04266b90',
  4: '1dfd52deeaae80c5badc0ebbbf2eb07364ef0f829e0432cb2031d9f4735ccba2',
  5: '15e523e861120c2f672e3c7620c24778ae95812c1b466647e1a178dfcf56b1e5',
  6: '644dd1febf7b9e4403368f4d19da4228bb6f3a97e1dbee22a1dc88b08c833c58',
  7: 'c0a2031fdf85dc2b24412dca2562106df929770ea58ffa5dd8c4b7d6fc3c8821',
  8: 'fd09db2f085d17cf4ad85468b90df9d4eea355df6ce473d516be3bfe2fd17ae0',
};

const hash = (text: string): string => createHash('sha256').update(text).digest('hex');
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const fromHex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

describe('protocol version guard', () => {
  it('the wire format hash is recorded for the current PROTOCOL_VERSION', () => {
    const actual = hash(describeProtocol());
    const recorded = WIRE_HASHES[PROTOCOL_VERSION];
    if (recorded !== actual) {
      const known = Object.entries(WIRE_HASHES).find(([, h]) => h === actual);
      throw new Error(
        'wire format changed: bump PROTOCOL_VERSION in packages/core/src/protocol/version.ts and record the new hash ' +
          `in test/core/protocol-version.test.ts as ${PROTOCOL_VERSION + (recorded === undefined ? 0 : 1)}: '${actual}'` +
          ` (recorded for version ${PROTOCOL_VERSION}: ${recorded === undefined ? 'nothing' : `'${recorded}'`}` +
          `${known ? `; this wire shape is version ${known[0]}'s` : ''})`,
      );
    }
  });

  it('every recorded version has its own wire shape, and none is newer than PROTOCOL_VERSION', () => {
    const versions = Object.keys(WIRE_HASHES).map(Number);
    expect(Math.max(...versions)).toBe(PROTOCOL_VERSION);
    expect(new Set(Object.values(WIRE_HASHES)).size).toBe(versions.length);
    for (const h of Object.values(WIRE_HASHES)) expect(h).toMatch(/^[0-9a-f]{64}$/);
  });

  it('describeProtocol is deterministic and covers every message, field and encoding rule', () => {
    const description = describeProtocol();
    expect(describeProtocol()).toBe(description);
    for (const type of ['hello', 'push', 'presence', 'ping', 'pong', 'welcome', 'ack', 'changes', 'snapshot', 'synced', 'error']) {
      expect(description).toContain(`literal:${type}`);
    }
    for (const op of ['put', 'patch', 'delete', 'version', 'crdt']) expect(description).toContain(`literal:${op}`);
    // Nested shapes are described all the way down, so changing any of them changes the hash.
    // Error codes are listed: a new code is a wire change (older peers cannot decode it).
    expect(description).toContain(`oneOf:${Object.keys(ERROR_CODES).join('|')}`);
    for (const part of ['frame:83', 'bytes', 'versionVector(array(tuple(string:replicaId,int:1:', 'lwwField(name,hlc,json?)', 'lwwState(', 'crdtFields(', 'string:hlc', 'oneOf:text|map|array', 'oneOf:read|write']) {
      expect(description).toContain(part);
    }
  });
});

// ---------------------------------------------------------------------------

const R = 'r1' as ReplicaId;
const S = 'cal/team-7' as SpaceId;
const ts = (wall: number, counter = 0, replica = 'r1'): HlcString =>
  `${wall.toString(16).padStart(12, '0')}-${counter.toString(16).padStart(4, '0')}-${replica}` as HlcString;

/** A real Yjs v1 update: a text root named "value" holding "hi", client id 7. */
const YJS_HI = fromHex('0101070004010576616c756502686900');

const hello: UpstreamMessage = { type: 'hello', protocol: 1, replica: R, token: 'tok', spaces: [{ space: S, after: 42 }], time: 1_700_000_000_000 };

const push: UpstreamMessage = {
  type: 'push',
  space: S,
  changes: [
    { space: S, collection: 'notes', id: 'n1', replica: R, seq: 7, hlc: ts(1_700_000_000_000, 1), op: 'crdt', field: 'body', type: 'text', update: YJS_HI },
    { space: S, collection: 'notes', id: 'n1', replica: R, seq: 8, hlc: ts(1_700_000_000_001), op: 'version', value: { title: 'Hi' }, context: new Map([['r2' as ReplicaId, 3]]) },
  ],
};

const snapshot: DownstreamMessage = {
  type: 'snapshot',
  space: S,
  position: 120,
  chunk: 0,
  chunks: 2,
  total: 3,
  records: [
    {
      collection: 'events',
      id: '__proto__',
      state: {
        lww: {
          cleared: ts(5),
          deleted: undefined,
          touched: ts(6),
          // The field set at touched is held in `stamped` (as decoded); the unset one in `fields`.
          stamped: { title: null },
          fields: new Map([['place', { hlc: ts(6), value: undefined }]]),
        },
        crdt: new Map([['notes', { type: 'text' as const, update: YJS_HI, touched: ts(7, 0, 'r2') }]]),
      },
    },
  ],
};

/** Protocol 3: the server's limits in welcome, how long to wait in an error. */
const welcome: DownstreamMessage = {
  type: 'welcome',
  protocol: 3,
  server: 's1',
  time: 1_700_000_000_000,
  spaces: [{ space: S, access: 'write', head: 9 }],
  limits: { maxFrameBytes: 1_048_576, maxBatch: 1000, messagesPerSecond: 200, maxClockDrift: 300_000 },
};
const rateLimited: DownstreamMessage = { type: 'error', code: 'rate_limited', message: 'slow down', fatal: false, retryAfter: 250 };

/** Exact frames of the current protocol version. A change here is a wire change: see the hash test. */
const GOLDEN: ReadonlyArray<{ name: string; direction: 'up' | 'down'; message: UpstreamMessage | DownstreamMessage; hex: string }> = [
  {
    name: 'hello',
    direction: 'up',
    message: hello,
    hex:
      '53007c7b2270726f746f636f6c223a312c227265706c696361223a227231222c22737061636573223a5b7b2261667465' +
      '72223a34322c227370616365223a2263616c2f7465616d2d37227d5d2c2274696d65223a313730303030303030303030' +
      '302c22746f6b656e223a22746f6b222c2274797065223a2268656c6c6f227d',
  },
  {
    name: 'push with a crdt change carrying bytes',
    direction: 'up',
    message: push,
    hex:
      '530110f3027b226368616e676573223a5b7b22636f6c6c656374696f6e223a226e6f746573222c226669656c64223a22' +
      '626f6479222c22686c63223a223031386263666535363830302d303030312d7231222c226964223a226e31222c226f70' +
      '223a2263726474222c227265706c696361223a227231222c22736571223a372c227370616365223a2263616c2f746561' +
      '6d2d37222c2274797065223a2274657874222c22757064617465223a307d2c7b22636f6c6c656374696f6e223a226e6f' +
      '746573222c22636f6e74657874223a5b5b227232222c335d5d2c22686c63223a223031386263666535363830312d3030' +
      '30302d7231222c226964223a226e31222c226f70223a2276657273696f6e222c227265706c696361223a227231222c22' +
      '736571223a382c227370616365223a2263616c2f7465616d2d37222c2276616c7565223a7b227469746c65223a224869' +
      '227d7d5d2c227370616365223a2263616c2f7465616d2d37222c2274797065223a2270757368227d0101070004010576' +
      '616c756502686900',
  },
  {
    name: 'snapshot chunk with lww null/unset and crdt bytes',
    direction: 'down',
    message: snapshot,
    hex:
      '530110ee017b226368756e6b223a302c226368756e6b73223a322c22706f736974696f6e223a3132302c227265636f72' +
      '6473223a5b352c5b227231225d2c5b5b226576656e7473222c5b5b225f5f70726f746f5f5f222c5b36353533362c7b22' +
      '7469746c65223a6e756c6c7d2c302c6e756c6c2c5b5b36353533362c7b7d2c5b22706c616365225d5d5d5d2c6e756c6c' +
      '2c5b5b226e6f746573222c2274657874222c302c223030303030303030303030372d303030302d7232225d5d5d5d5d5d' +
      '5d2c227370616365223a2263616c2f7465616d2d37222c22746f74616c223a332c2274797065223a22736e617073686f' +
      '74227d0101070004010576616c756502686900',
  },
  {
    name: 'welcome with the server limits',
    direction: 'down',
    message: welcome,
    hex:
      '5300e0017b226c696d697473223a7b226d61784261746368223a313030302c226d6178436c6f636b4472696674223a33' +
      '30303030302c226d61784672616d654279746573223a313034383537362c226d657373616765735065725365636f6e64' +
      '223a3230307d2c2270726f746f636f6c223a332c22736572766572223a227331222c22737061636573223a5b7b226163' +
      '63657373223a227772697465222c2268656164223a392c227370616365223a2263616c2f7465616d2d37227d5d2c2274' +
      '696d65223a313730303030303030303030302c2274797065223a2277656c636f6d65227d',
  },
  {
    name: 'error with retryAfter',
    direction: 'down',
    message: rateLimited,
    hex:
      '53005b7b22636f6465223a22726174655f6c696d69746564222c22666174616c223a66616c73652c226d657373616765' +
      '223a22736c6f7720646f776e222c2272657472794166746572223a3235302c2274797065223a226572726f72227d',
  },
];

describe(`golden frames of protocol version ${PROTOCOL_VERSION}`, () => {
  it('the sample Yjs update is real', () => {
    const doc = new Y.Doc();
    Y.applyUpdate(doc, YJS_HI);
    expect(doc.getText('value').toString()).toBe('hi');
  });

  it('a state held as one entry per field encodes to the same bytes as its stamped form', () => {
    const record = (snapshot as Extract<DownstreamMessage, { type: 'snapshot' }>).records[0] as SnapshotRecord;
    const lww = record.state.lww as LwwState;
    const entries: LwwState = { ...lww, stamped: undefined, fields: new Map(lwwEntries(lww)) };
    const message = { ...snapshot, records: [{ ...record, state: { ...record.state, lww: entries } }] } as DownstreamMessage;
    expect(hex(encodeDownstream(message))).toBe(GOLDEN.find((g) => g.message === snapshot)?.hex);
  });

  for (const { name, direction, message, hex: golden } of GOLDEN) {
    it(`${name}: encodes to the pinned bytes`, () => {
      const bytes = direction === 'up' ? encodeUpstream(message as UpstreamMessage) : encodeDownstream(message as DownstreamMessage);
      expect(hex(bytes), 'wire format changed: bump PROTOCOL_VERSION in packages/core/src/protocol/version.ts and record the new hash').toBe(golden);
    });

    it(`${name}: the pinned bytes decode to the message`, () => {
      const decoded = direction === 'up' ? decodeUpstream(fromHex(golden)) : decodeDownstream(fromHex(golden));
      expect(decoded).toEqual(message);
    });
  }

  it('the push frame carries the Yjs update raw, after the JSON, not inside it', () => {
    const frame = GOLDEN[1]?.hex ?? '';
    expect(frame.endsWith(hex(YJS_HI))).toBe(true);
    const json = Buffer.from(frame, 'hex').toString('latin1');
    expect(json).toContain('"update":0');
    expect(json).not.toContain(Buffer.from(YJS_HI).toString('base64'));
  });

  it('user keys such as __proto__ are written as data in the frame', () => {
    const fields = JSON.parse('{"__proto__":{"x":1}}') as Fields;
    const frame = encodeUpstream({ type: 'push', space: S, changes: [{ space: S, collection: 'c', id: 'i', replica: R, seq: 1, hlc: ts(1), op: 'put', fields }] });
    expect(Buffer.from(frame).toString('utf8')).toContain('"fields":{"__proto__":{"x":1}}');
  });
});

// ---------------------------------------------------------------------------

describe('version negotiation', () => {
  it('the supported range is [MIN_PROTOCOL_VERSION, PROTOCOL_VERSION], integers from 1', () => {
    expect(Number.isInteger(MIN_PROTOCOL_VERSION) && Number.isInteger(PROTOCOL_VERSION)).toBe(true);
    expect(MIN_PROTOCOL_VERSION).toBeGreaterThanOrEqual(1);
    expect(MIN_PROTOCOL_VERSION).toBeLessThanOrEqual(PROTOCOL_VERSION);
  });

  it('isSupportedProtocol accepts exactly the versions in range', () => {
    for (let v = MIN_PROTOCOL_VERSION; v <= PROTOCOL_VERSION; v++) expect(isSupportedProtocol(v), `version ${v}`).toBe(true);
    expect(isSupportedProtocol(MIN_PROTOCOL_VERSION - 1)).toBe(false);
    expect(isSupportedProtocol(PROTOCOL_VERSION + 1)).toBe(false);
    expect(isSupportedProtocol(PROTOCOL_VERSION + 1000)).toBe(false);
    for (const v of [0, -1, 65535, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) expect(isSupportedProtocol(v), `version ${v}`).toBe(false);
  });

  it('isSupportedProtocol refuses non-integers, even between supported versions', () => {
    for (let v = MIN_PROTOCOL_VERSION; v <= PROTOCOL_VERSION; v++) {
      expect(isSupportedProtocol(v - 0.5), `version ${v - 0.5}`).toBe(false);
      expect(isSupportedProtocol(v + 0.5), `version ${v + 0.5}`).toBe(false);
    }
    expect(isSupportedProtocol(MIN_PROTOCOL_VERSION * (1 + Number.EPSILON))).toBe(false);
  });

  it('a hello from a newer or older peer still decodes, so the server can answer unsupported_protocol', () => {
    for (const protocol of [PROTOCOL_VERSION + 1, 65535, ...(MIN_PROTOCOL_VERSION > 1 ? [MIN_PROTOCOL_VERSION - 1] : [])]) {
      const message = { ...hello, protocol } as UpstreamMessage;
      const decoded = decodeUpstream(encodeUpstream(message));
      expect(decoded).toEqual(message);
      expect(isSupportedProtocol((decoded as { protocol: number }).protocol)).toBe(false);
    }
  });

  it('protocol 3 only adds optional fields: a welcome without limits (a protocol 2 server) still decodes, and a reader drops fields it does not know', () => {
    const { limits: _limits, ...old } = welcome as Extract<DownstreamMessage, { type: 'welcome' }>;
    expect(decodeDownstream(encodeDownstream({ ...old, protocol: 2 }))).toEqual({ ...old, protocol: 2 });
    // What a protocol 2 client does with a protocol 3 welcome: keys it does not know are dropped when reading.
    const frame = Buffer.from(encodeDownstream(welcome)).toString('latin1').replace('"limits":', '"future":');
    expect(decodeDownstream(Buffer.from(frame, 'latin1'))).toEqual(old);
  });

  it('protocol 4 adds two error codes: an older peer gets invalid_message instead, which it can read', () => {
    for (const code of ['too_large', 'quota_exceeded'] as const) {
      expect(errorCodeFor(code, 4)).toBe(code);
      for (const older of [2, 3]) expect(errorCodeFor(code, older)).toBe('invalid_message');
    }
    const newer = ['too_large', 'quota_exceeded', 'below_horizon', 'replica_retired'];
    for (const code of Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>) if (!newer.includes(code)) expect(errorCodeFor(code, 2)).toBe(code);
  });

  it('protocol 6 adds below_horizon and replica_retired: a version 5 peer gets invalid_message instead', () => {
    for (const code of ['below_horizon', 'replica_retired'] as const) {
      expect(errorCodeFor(code, 6)).toBe(code);
      for (const older of [2, 3, 4, 5]) expect(errorCodeFor(code, older)).toBe('invalid_message');
    }
  });

  it('the refusal travels as an error message with code unsupported_protocol', () => {
    expect(Object.hasOwn(ERROR_CODES, 'unsupported_protocol')).toBe(true);
    const refusal: DownstreamMessage = {
      type: 'error',
      code: 'unsupported_protocol',
      message: `protocol ${PROTOCOL_VERSION + 1} is not supported; this server speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`,
      fatal: true,
    };
    expect(decodeDownstream(encodeDownstream(refusal))).toEqual(refusal);
  });
});

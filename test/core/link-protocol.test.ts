/**
 * The region link protocol (packages/core/src/protocol/link.ts) is versioned
 * apart from the client protocol: its wire shape's hash is recorded per
 * LINK_PROTOCOL_VERSION, and a change of a link message fails here until the
 * version is bumped. Round trips and refusals as for the client messages.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LINK_PROTOCOL_VERSION,
  ProtocolError,
  decodeLinkDownstream,
  decodeLinkUpstream,
  describeLinkProtocol,
  describeProtocol,
  encodeLinkDownstream,
  encodeLinkUpstream,
  formatTimestamp,
  isRegionName,
  type LinkDownstreamMessage,
  type LinkUpstreamMessage,
  type SpaceId,
} from '@syncline/core/internal';
import { putChange } from '../sync/harness.js';

/**
 * sha256(describeLinkProtocol()) per link protocol version. Append a line per
 * version; never edit one that was released (version 1 gained `read`, and version 3 `state`, before any release).
 */
const LINK_WIRE_HASHES: Readonly<Record<number, string>> = {
  1: 'a7fc8bc846d4cb42830308659897cb920cea4560c0c34db70759b762d423a6cf',
  2: '185473a76b28817919ef90ec606cb83e6522e8261ca12e5698517c9c3d2e1b8a',
  3: '1e7789c75799ea2a19774306e56e7b3e5b686eb53c8417dc1aac7f56a27acc60',
  4: 'e3b2d746d40a15c77893db357f218a8693f05170b62c344ddf96d6e0ad12aef7',
  5: '7d3029d390555681994f8110375ebb0f2e31b1bbcbc540f5d209934cad26d675',
};

const hash = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('region link protocol', () => {
  it('its wire shape hash is recorded for LINK_PROTOCOL_VERSION, and it is not part of the client protocol', () => {
    expect(hash(describeLinkProtocol()), 'link wire format changed: bump LINK_PROTOCOL_VERSION and record the new hash').toBe(LINK_WIRE_HASHES[LINK_PROTOCOL_VERSION]);
    expect(describeProtocol()).not.toContain('follow');
  });

  it('a follow encodes to these exact bytes', () => {
    const frame = encodeLinkUpstream({ type: 'follow', protocol: 1, region: 'b', credential: 's', positions: [{ space: 'team' as SpaceId, after: 3 }], maxFrameBytes: 1_048_576 });
    expect(Buffer.from(frame).toString('hex')).toBe(
      '53007d7b2263726564656e7469616c223a2273222c226d61784672616d654279746573223a313034383537362c22706f736974696f6e73223a5b7b226166746572223a332c227370616365223a227465616d227d5d2c2270726f746f636f6c223a312c22726567696f6e223a2262222c2274797065223a22666f6c6c6f77227d',
    );
  });

  it('round-trips every message both ways', () => {
    const space = 'team' as SpaceId;
    const up: LinkUpstreamMessage[] = [
      { type: 'follow', protocol: LINK_PROTOCOL_VERSION, region: 'eu-west.1', positions: [], maxFrameBytes: 600_000 },
      { type: 'read', space, upTo: 40 },
      { type: 'repair', space, held: [{ origin: 'eu', pos: 17 }], skip: ['us'] },
      { type: 'ping', id: 7 },
      { type: 'pong', id: 7 },
    ];
    for (const m of up) expect(decodeLinkUpstream(encodeLinkUpstream(m))).toEqual(m);
    const down: LinkDownstreamMessage[] = [
      { type: 'linked', region: 'us', heads: [{ space, head: 12 }] },
      { type: 'entries', space, changes: [putChange('r1' as never, space, 1, { title: 'x' }), putChange('r1' as never, space, 2, { title: 'y' })], positions: [31, 38], upTo: 40 },
      { type: 'entries', space, changes: [], positions: [], upTo: 41 },
      { type: 'entries', space, origin: 'eu', changes: [putChange('r2' as never, space, 5, { title: 'z' })], positions: [18], upTo: 18 },
      { type: 'state', space, upTo: 9, records: [{ collection: 'events', id: 'e1', state: {} }] },
      { type: 'state', space, upTo: 9, records: [], done: { progress: new Map([['r1' as never, 4]]), origins: [{ region: 'us', upTo: 9 }] } },
      { type: 'horizon', space, hlc: formatTimestamp({ wall: 1_000, counter: 0, replica: 'r1' as never }), upTo: 12, members: ['eu', 'us'] },
      { type: 'floors', space, writers: [{ replica: 'r1' as never, hlc: formatTimestamp({ wall: 900, counter: 0, replica: 'r1' as never }) }, { replica: 'r2' as never, retired: true }] },
      { type: 'error', code: 'unauthenticated', message: 'wrong or missing peer credential', fatal: true },
    ];
    for (const m of down) expect(decodeLinkDownstream(encodeLinkDownstream(m))).toEqual(m);
  });

  it('refuses bad region names and malformed frames with a ProtocolError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (name) => {
        expect(isRegionName(name)).toBe(/^[A-Za-z0-9._-]{1,64}$/.test(name));
      }),
    );
    expect(() => decodeLinkUpstream(encodeLinkUpstream({ type: 'follow', protocol: 1, region: 'has space', positions: [], maxFrameBytes: 1 } as LinkUpstreamMessage))).toThrow(ProtocolError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeLinkUpstream(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });
});

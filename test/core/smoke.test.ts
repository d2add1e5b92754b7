import { describe, expect, it } from 'vitest';
import { Hlc, applyChanges, materialize, encodeUpstream, decodeUpstream, type Change, type ReplicaId, type SpaceId, PROTOCOL_VERSION } from '@syncline/core/internal';

describe('smoke', () => {
  it('applies and round-trips', () => {
    const clock = new Hlc({ replica: 'r1' as ReplicaId, now: () => 1000 });
    const c: Change = { space: 's' as SpaceId, collection: 'events', id: '__proto__', replica: 'r1' as ReplicaId, seq: 1, hlc: clock.nowString(), op: 'put', fields: JSON.parse('{"__proto__": 1, "constructor": 2, "title": "x"}') };
    const view = materialize(applyChanges(undefined, [c]));
    expect(Object.keys(view.value ?? {})).toEqual(['__proto__', 'constructor', 'title']);
    const msg = decodeUpstream(encodeUpstream({ type: 'push', space: 's' as SpaceId, changes: [c] }));
    expect(msg).toEqual({ type: 'push', space: 's', changes: [c] });
    expect(PROTOCOL_VERSION).toBe(8);
  });
});

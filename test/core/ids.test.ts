/**
 * Names and record ids must be well-formed Unicode: storage keeps them as UTF-8
 * text keys (SQLite, PostgreSQL, IndexedDB), where a lone surrogate becomes
 * U+FFFD and two ids collide. The live fuzz found snapshots renaming such records.
 */
import { describe, expect, it } from 'vitest';
import { decodeUpstream, encodeUpstream, formatTimestamp, isName, isRecordId, ProtocolError, validateChange, type Change, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { createReplica, memoryStorage, ReplicaError } from '@syncline/client';

const replica = 'w' as ReplicaId;
const change = (id: string, collection = 'c'): Change => ({
  space: 's' as SpaceId,
  collection,
  id,
  replica,
  seq: 1,
  hlc: formatTimestamp({ wall: 1_700_000_000_000, counter: 0, replica }),
  op: 'put',
  fields: { x: 1 },
});

describe('lone surrogates in names and record ids', () => {
  it('are refused; surrogate pairs and other characters are not', () => {
    for (const bad of ['a\ud800', '\udc00b', 'a\ud800\ud800\udc00', '\udbff']) {
      expect(isRecordId(bad), JSON.stringify(bad)).toBe(false);
      expect(isName(bad), JSON.stringify(bad)).toBe(false);
      expect(() => validateChange(change(bad))).toThrow(/record id/);
    }
    for (const good of ['a\ud83d\ude00', '😀', '\u0000', '__proto__', 'a\ue000', 'ü']) {
      expect(isRecordId(good), JSON.stringify(good)).toBe(true);
      expect(isName(good), JSON.stringify(good)).toBe(true);
    }
  });

  it('in a pushed change, the frame does not decode (coded error with a path)', () => {
    const frame = encodeUpstream({ type: 'push', space: 's' as SpaceId, changes: [change('okokok')] });
    // Swap the id in place for a JSON escape of a lone surrogate of the same byte length (the frame's lengths still add up).
    const needle = new TextEncoder().encode('"okokok"');
    const at = Buffer.from(frame).indexOf(Buffer.from(needle));
    expect(at).toBeGreaterThan(0);
    const bytes = Uint8Array.from(frame);
    bytes.set(new TextEncoder().encode('"\\ud800"'), at);
    let error: unknown;
    try {
      decodeUpstream(bytes);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({ path: expect.stringContaining('id') });
  });

  it('the replica refuses them with invalid_argument and stores nothing', async () => {
    const r = await createReplica({ name: 'lone-surrogate', schema: { events: {} }, storage: memoryStorage(), tabs: false });
    await expect(r.put('events', 'x\ud800', { a: 1 })).rejects.toBeInstanceOf(ReplicaError);
    await expect(r.put('events', 'x\ud800', { a: 1 })).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(await r.count({ collection: 'events' })).toBe(0);
    await r.close();
  });
});

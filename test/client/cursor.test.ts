/**
 * A replica's cursor in a space's log (client/src/meta.ts, written by
 * remote-apply.ts with what it applies): the position and its region are
 * replaced by each message, the origin vector only grows, whatever order
 * messages of several regions arrive in; a number stored by an earlier
 * version reads as a position without a region. On every storage.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { SpaceId } from '@syncline/core/internal';
import { createReplica, type Replica } from '@syncline/client';
import { STORAGES, uniqueName } from './helpers.js';
import { portOf, storageOf } from '../internals.js';

const SPACE = 'team' as SpaceId;
const opened: Replica[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

describe.each(STORAGES)('the log cursor on %s storage', (_, storage) => {
  async function open(): Promise<Replica> {
    const r = (await createReplica({ name: uniqueName('cursor'), schema: { events: {} }, storage: storage(), tabs: false })) as unknown as Replica;
    opened.push(r);
    return r;
  }

  it('replaces position and region, and keeps per origin the highest position it was told, in any order', async () => {
    const regions = ['a', 'b', 'c'];
    const message = fc.record({
      upTo: fc.nat({ max: 1_000 }),
      region: fc.option(fc.constantFrom(...regions), { nil: undefined }),
      origins: fc.option(fc.array(fc.record({ region: fc.constantFrom(...regions), upTo: fc.nat({ max: 1_000 }) }), { maxLength: 3 }), { nil: undefined }),
      snapshot: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (messages) => {
        const r = await open();
        const port = portOf(r);
        const highest: Record<string, number> = {};
        for (const m of messages) {
          if (m.snapshot) await port.applySnapshot([], SPACE, { upTo: m.upTo, region: m.region, origins: m.origins }, { index: 0, replace: false });
          else await port.applyRemote([], { space: SPACE, upTo: m.upTo, region: m.region, origins: m.origins });
          // Position 0 of an origin holds nothing: it is no entry of the vector.
          for (const o of m.origins ?? []) if (o.upTo > (highest[o.region] ?? 0)) highest[o.region] = o.upTo;
          const cursor = await port.position(SPACE);
          expect(cursor.upTo).toBe(m.upTo);
          expect(cursor.region).toBe(m.region);
          // Never backwards: an origin's position is the highest any message said.
          expect(cursor.origins ?? {}).toEqual(highest);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('reads a position stored by an earlier version (a number) as a position without a region, and a space never synced as 0', async () => {
    const r = await open();
    expect(await portOf(r).position(SPACE)).toEqual({ upTo: 0 });
    await storageOf(r).transaction('readwrite', (tx) => tx.setMeta(`pos\u0000${SPACE}`, 42));
    expect(await portOf(r).position(SPACE)).toEqual({ upTo: 42 });
    await portOf(r).applyRemote([], { space: SPACE, upTo: 43, region: 'a', origins: [{ region: 'a', upTo: 43 }] });
    expect(await portOf(r).position(SPACE)).toEqual({ upTo: 43, region: 'a', origins: { a: 43 } });
  });
});

/**
 * Yjs edits and MAX_CHANGE_BYTES: edits merged in one tick past the maximum are
 * written one by one (nothing is refused that could have been written), and a
 * single edit past it is reported through onError with too_large.
 */
import { describe, expect, it } from 'vitest';
import { createReplica, MAX_CHANGE_BYTES, memoryStorage, ReplicaError } from '@syncline/client';
import { storageOf } from '../internals.js';

const schema = { notes: { crdt: { body: 'text' } } } as const;

async function open(errors: Error[]) {
  return createReplica({ name: `crdt-size-${Math.random()}`, schema, storage: memoryStorage(), tabs: false, onError: (e) => errors.push(e) });
}

const waitFor = async (check: () => Promise<boolean>) => {
  for (let i = 0; i < 200 && !(await check()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

describe('Yjs edits and the size of a change', () => {
  it('edits that merge past the maximum in one tick are written one by one, all of them', async () => {
    const errors: Error[] = [];
    const r = await open(errors);
    const text = await r.text('notes', 'n1', 'body');
    const chunk = 'x'.repeat(Math.floor(MAX_CHANGE_BYTES / 3));
    for (let i = 0; i < 4; i++) text.insert(text.length, chunk); // 4/3 of the maximum, in one tick
    await waitFor(async () => ((await r.get('notes', 'n1'))?.value['body'] as string | undefined)?.length === chunk.length * 4);
    expect(((await r.get('notes', 'n1'))?.value['body'] as string).length).toBe(chunk.length * 4);
    expect(await storageOf(r).transaction('readonly', (tx) => tx.countOutbox())).toBe(4);
    expect(errors).toEqual([]);
    await r.close();
  });

  it('a single edit past the maximum is reported with too_large', async () => {
    const errors: Error[] = [];
    const r = await open(errors);
    const text = await r.text('notes', 'n1', 'body');
    text.insert(0, 'y'.repeat(MAX_CHANGE_BYTES + 1_000));
    await waitFor(async () => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(ReplicaError);
    expect(errors[0]).toMatchObject({ code: 'too_large' });
    expect(await storageOf(r).transaction('readonly', (tx) => tx.countOutbox())).toBe(0);
    await r.close();
  });
});

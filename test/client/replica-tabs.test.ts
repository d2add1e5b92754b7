/**
 * Two tabs: two replicas opened with the same name on the same storage factory,
 * sharing Web Locks (localLocks) and Node's BroadcastChannel. They share one
 * replica id and one sequence counter, see each other's writes live, and elect
 * exactly one leader.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { compareHlc, type Change } from '@syncline/core/internal';
import { createReplica, defineSchema, localLocks, type LocksLike, type Replica, type StorageFactory, type TabsOptions } from '@syncline/client';
import { LiveLog, outboxOf, STORAGES, uniqueName, within } from './helpers.js';

const schema = defineSchema({ events: { indexes: { byN: ['n'] }, crdt: { notes: 'text' } } });

describe.each(STORAGES)('two tabs on %s storage', (_kind, makeStorage) => {
  const opened: Replica[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
  });

  function tabs(locks: LocksLike): TabsOptions {
    return { locks, channel: (name) => new BroadcastChannel(name) };
  }
  async function openTabs(count: number): Promise<{ tabs: Replica[]; storage: StorageFactory; name: string; locks: LocksLike }> {
    const storage = makeStorage();
    const name = uniqueName('tabs');
    const locks = localLocks();
    const replicas = await Promise.all(Array.from({ length: count }, () => createReplica({ name, schema, storage, tabs: tabs(locks) })));
    opened.push(...(replicas as unknown as Replica[]));
    return { tabs: replicas as unknown as Replica[], storage, name, locks };
  }

  it('concurrent writes from both tabs never reuse a sequence number, and each tab sees the other live', async () => {
    const {
      tabs: [a, b],
    } = await openTabs(2);
    if (!a || !b) throw new Error('two tabs expected');
    expect(a.id).toBe(b.id);
    const logA = new LiveLog();
    const logB = new LiveLog();
    a.subscribe({ collection: 'events', index: 'byN' }, logA.callback);
    b.subscribe({ collection: 'events', index: 'byN' }, logB.callback);
    await Promise.all([logA.until((rows) => rows.length === 0, 'tab a initial'), logB.until((rows) => rows.length === 0, 'tab b initial')]);

    const N = 200;
    await Promise.all([
      ...Array.from({ length: N }, (_, i) => a.put('events', `a${i}`, { n: i, tab: 'a' })),
      ...Array.from({ length: N }, (_, i) => b.put('events', `b${i}`, { n: i, tab: 'b' })),
    ]);

    const outbox = await outboxOf(a);
    expect(outbox).toEqual(await outboxOf(b));
    expect(outbox).toHaveLength(2 * N);
    expect(new Set(outbox.map((c) => `${c.space}\u0000${c.seq}`)).size).toBe(2 * N);
    expect(outbox.map((c) => c.seq)).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
    // One writer, one clock: timestamps are unique and grow with the sequence number.
    for (let i = 1; i < outbox.length; i++) expect(compareHlc((outbox[i] as Change).hlc, (outbox[i - 1] as Change).hlc)).toBeGreaterThan(0);
    expect(new Set(outbox.map((c) => c.id)).size).toBe(2 * N);

    const expected = Array.from({ length: N }, (_, i) => [`a${i}`, `b${i}`]).flat();
    const seenByA = await logA.until((rows) => rows.length === 2 * N, 'tab a to see all writes', 10_000);
    const seenByB = await logB.until((rows) => rows.length === 2 * N, 'tab b to see all writes', 10_000);
    expect(seenByA.map((r) => r.id)).toEqual(expected);
    expect(seenByB.map((r) => r.id)).toEqual(expected);

    // A later write in one tab reaches the other's live query.
    await b.patch('events', 'a0', { n: 10_000 });
    const moved = await logA.next((rows) => rows[rows.length - 1]?.id === 'a0', 'tab a to see the patch from tab b');
    expect(moved[moved.length - 1]?.value).toEqual({ n: 10_000, tab: 'a' });
  });

  it('an open Y.Text in one tab receives the other tab edits', async () => {
    const {
      tabs: [a, b],
    } = await openTabs(2);
    if (!a || !b) throw new Error('two tabs expected');
    const textA = await a.text('events', 'e1', 'notes');
    const textB = await b.text('events', 'e1', 'notes');
    const received = within(
      new Promise<void>((resolve) => textA.observe(() => textA.toString() === 'from b' && resolve())),
      5_000,
      'tab a to receive the edit of tab b',
    );
    textB.insert(0, 'from b');
    await received;
    expect((await a.get('events', 'e1'))?.value).toEqual({ notes: 'from b' });
  });

  it('exactly one tab leads; when it closes another takes over', async () => {
    const {
      tabs: [a, b],
      storage,
      name,
      locks,
    } = await openTabs(2);
    if (!a || !b) throw new Error('two tabs expected');
    const leaderChange = (tab: Replica, to: boolean, what: string) =>
      within(
        new Promise<void>((resolve) => {
          if (tab.isLeader === to) resolve();
          const off = tab.onLeaderChange((leader) => {
            if (leader === to) {
              off();
              resolve();
            }
          });
        }),
        5_000,
        what,
      );
    await within(
      new Promise<void>((resolve) => {
        if (a.isLeader || b.isLeader) resolve();
        for (const tab of [a, b]) tab.onLeaderChange((leader) => leader && resolve());
      }),
      5_000,
      'a leader to be elected',
    );
    expect([a.isLeader, b.isLeader].filter(Boolean)).toHaveLength(1);
    const [leader, follower] = a.isLeader ? [a, b] : [b, a];

    // A third tab waits behind the follower.
    const c = (await createReplica({ name, schema, storage, tabs: tabs(locks) })) as unknown as Replica;
    opened.push(c);
    expect([a.isLeader, b.isLeader, c.isLeader].filter(Boolean)).toHaveLength(1);

    const takeover = leaderChange(follower, true, 'the follower to take over');
    const stepDown = leaderChange(leader, false, 'the leader to step down');
    await leader.close();
    await Promise.all([takeover, stepDown]);
    expect(follower.isLeader).toBe(true);
    expect(leader.isLeader).toBe(false);
    expect(c.isLeader).toBe(false);

    const third = leaderChange(c, true, 'the third tab to take over');
    await follower.close();
    await third;
    expect(c.isLeader).toBe(true);
    // The remaining tab still reads what the closed tabs wrote.
    await c.put('events', 'still', { n: 1 });
    expect((await c.query({ collection: 'events', index: 'byN' })).map((r) => r.id)).toEqual(['still']);
  });
});

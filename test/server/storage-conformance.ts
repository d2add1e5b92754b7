/**
 * What every ServerStorage must do (storage/types.ts), as one suite that
 * storage.test.ts runs against each adapter: appends and their positions, seq
 * dedupe and gaps, the log, record states and snapshot pages, compaction,
 * reopening, appends from two storages over the same data at once, what
 * regions need (each entry's origin, reading one origin's entries, and link
 * positions), and stability: the horizon, below_horizon refusals, collection
 * of deleted records, and retirement.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { applyChanges, canonicalState, encodeChange, encodeRecordState, formatTimestamp, materialize, SynclineError, type Change, type HlcString, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { IDEMPOTENCY_TTL_MS, type AppendRequest, type AppendResult, type ServerStorage } from '@syncline/server';
import { cleanupStack, putChange } from '../sync/harness.js';

/** Fresh, empty backing data (a file, a schema) that storages can be opened over. */
export interface Backing {
  /** A storage over this backing; several may be open at once (instances sharing it). */
  open(): Promise<ServerStorage>;
  /** Removes the backing (the storages are closed first). */
  destroy(): Promise<void>;
}

const SPACE = 'conformance' as SpaceId;
const OTHER = 'conformance-other' as SpaceId;
const r = (name: string) => name as ReplicaId;

/** `count` put changes of one replica from `from` on, each to its own record unless `id` is given. */
function changes(replica: string, from: number, count: number, options: { space?: SpaceId; id?: (seq: number) => string } = {}): Change[] {
  return Array.from({ length: count }, (_, i) =>
    putChange(r(replica), options.space ?? SPACE, from + i, { n: from + i, by: replica }, options.id ? { id: options.id(from + i) } : {}),
  );
}

/** Origin positions handed out so far, per origin: a peer's log positions only grow. */
const originHeads = new Map<string, number>();

function request(replica: string, list: Change[], space: SpaceId = SPACE, origin?: string): AppendRequest {
  if (origin === undefined) return { space, replica: r(replica), changes: list };
  if (origin === '') return { space, replica: r(replica), changes: list, origin };
  const originPositions = list.map(() => {
    const next = (originHeads.get(origin) ?? 0) + 1;
    originHeads.set(origin, next);
    return next;
  });
  return { space, replica: r(replica), changes: list, origin, originPositions };
}

function ok(result: AppendResult | Error | undefined): AppendResult {
  if (!(result instanceof Object) || result instanceof Error) throw new Error(`expected an AppendResult, got ${String(result)}`);
  return result;
}

/** Stability tests stamp by hand: walls from T on (storage never checks them against a clock). */
const T = 1_700_000_000_000;
/** A timestamp at T + wall (counter 0), e.g. a floor or a cap. */
const at = (wall: number, replica = 'server'): HlcString => formatTimestamp({ wall: T + wall, counter: 0, replica: r(replica) });
/** A put of record `id` stamped at T + wall (counter: seq, so after at(wall)). */
const putAt = (replica: string, seq: number, wall: number, id: string, space: SpaceId = SPACE): Change => putChange(r(replica), space, seq, { seq }, { id, wall: T + wall });
/** An lww delete of record `id` stamped at T + wall. */
function deleteAt(replica: string, seq: number, wall: number, id: string, space: SpaceId = SPACE): Change {
  const { fields: _, ...header } = putAt(replica, seq, wall, id, space) as Change & { fields: unknown };
  return { ...header, op: 'delete' } as Change;
}
/** A merge version of record `id` (value null deletes it) after seeing `context`, stamped at T + wall. */
function versionAt(replica: string, seq: number, wall: number, id: string, value: { n: number } | null, context: Array<[string, number]>): Change {
  const { fields: _, ...header } = putAt(replica, seq, wall, id) as Change & { fields: unknown };
  return { ...header, op: 'version', value, context: new Map(context) } as unknown as Change;
}

function refusedWith(result: AppendResult | Error | undefined, code: string): void {
  expect(result).toBeInstanceOf(SynclineError);
  expect((result as SynclineError).code).toBe(code);
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function storageConformance(name: string, newBacking: () => Promise<Backing>): void {
  describe(`ServerStorage conformance: ${name}`, () => {
    const cleanup = cleanupStack();
    afterEach(() => cleanup.run());

    /** A backing and a first storage over it, closed and removed after the test. */
    async function setup(): Promise<{ backing: Backing; storage: ServerStorage; another: () => Promise<ServerStorage> }> {
      const backing = await newBacking();
      cleanup.push(() => backing.destroy());
      const another = async () => {
        const s = await backing.open();
        cleanup.push(() => s.close());
        return s;
      };
      return { backing, storage: await another(), another };
    }

    it('starts empty', async () => {
      const { storage } = await setup();
      expect(await storage.head(SPACE)).toBe(0);
      expect(await storage.horizon(SPACE)).toBe(0);
      expect(await storage.readLog(SPACE, 0, 10)).toEqual([]);
      expect(await storage.snapshotPage(SPACE, undefined, 10)).toEqual([]);
      expect(await storage.countRecords(SPACE)).toBe(0);
      expect(await storage.spaces()).toEqual([]);
      expect(await storage.compact(SPACE, 0)).toBe(0);
    });

    it('gives new changes the next positions of their space and reads them back in order', async () => {
      const { storage } = await setup();
      const first = ok((await storage.append([request('alice', changes('alice', 1, 3))]))[0]);
      expect(first.upTo).toBe(3);
      expect(first.stored.map((e) => [e.pos, e.change.seq])).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
      ]);
      // Another replica, another space, one append: positions per space.
      const bobs = changes('bob', 1, 2);
      const [bob, other] = await storage.append([request('bob', bobs), request('alice', changes('alice', 1, 2, { space: OTHER }), OTHER)]);
      expect(ok(bob).stored.map((e) => e.pos)).toEqual([4, 5]);
      expect(ok(other).stored.map((e) => e.pos)).toEqual([1, 2]);
      expect(await storage.head(SPACE)).toBe(5);
      expect(await storage.head(OTHER)).toBe(2);

      const log = await storage.readLog(SPACE, 0, 100);
      expect(log.map((e) => [e.pos, e.change.replica, e.change.seq])).toEqual([
        [1, 'alice', 1],
        [2, 'alice', 2],
        [3, 'alice', 3],
        [4, 'bob', 1],
        [5, 'bob', 2],
      ]);
      // The change comes back as it was pushed.
      expect(log[3]?.change).toEqual(bobs[0]);
      expect((await storage.readLog(SPACE, 2, 2)).map((e) => e.pos)).toEqual([3, 4]);
      expect(await storage.readLog(SPACE, 5, 10)).toEqual([]);
      expect(await storage.spaces()).toEqual([SPACE, OTHER].sort());
    });

    it('stores a change it already holds only once', async () => {
      const { storage } = await setup();
      ok((await storage.append([request('alice', changes('alice', 1, 3))]))[0]);
      // Overlapping: 2..5 stores 4 and 5 only.
      const overlap = ok((await storage.append([request('alice', changes('alice', 2, 4))]))[0]);
      expect(overlap.stored.map((e) => [e.pos, e.change.seq])).toEqual([
        [4, 4],
        [5, 5],
      ]);
      expect(overlap.upTo).toBe(5);
      // Everything held: nothing stored, upTo says how far.
      const again = ok((await storage.append([request('alice', changes('alice', 1, 5))]))[0]);
      expect(again).toEqual({ stored: [], upTo: 5 });
      // The same push twice in one append.
      const [x, y] = await storage.append([request('alice', changes('alice', 6, 1)), request('alice', changes('alice', 6, 1))]);
      expect(ok(x).stored.map((e) => e.pos)).toEqual([6]);
      expect(ok(y)).toEqual({ stored: [], upTo: 6 });
      expect(await storage.head(SPACE)).toBe(6);
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => e.change.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it('refuses a seq gap with sequence_gap and stores nothing of that request', async () => {
      const { storage } = await setup();
      // Starts past what is held.
      const [gap] = await storage.append([request('alice', changes('alice', 2, 2))]);
      expect(gap).toBeInstanceOf(SynclineError);
      expect((gap as SynclineError).code).toBe('sequence_gap');
      expect(await storage.head(SPACE)).toBe(0);
      expect(await storage.spaces()).toEqual([]);
      // A hole inside one push: the part before the hole is not stored either.
      const holey = [...changes('alice', 1, 2), ...changes('alice', 4, 1)];
      const [inner] = await storage.append([request('alice', holey)]);
      expect((inner as SynclineError).code).toBe('sequence_gap');
      expect(await storage.readLog(SPACE, 0, 10)).toEqual([]);
      expect(await storage.countRecords(SPACE)).toBe(0);
      // Requests are independent: the refused one leaves no hole in the positions.
      const results = await storage.append([request('alice', changes('alice', 1, 2)), request('bob', changes('bob', 3, 1)), request('carol', changes('carol', 1, 1))]);
      expect(ok(results[0]).stored.map((e) => e.pos)).toEqual([1, 2]);
      expect((results[1] as SynclineError).code).toBe('sequence_gap');
      expect(ok(results[2]).stored.map((e) => e.pos)).toEqual([3]);
      expect((await storage.readLog(SPACE, 0, 10)).map((e) => [e.pos, e.change.replica])).toEqual([
        [1, 'alice'],
        [2, 'alice'],
        [3, 'carol'],
      ]);
      expect(await storage.countRecords(SPACE)).toBe(3);
      // After the refusal, the replica continues from what is held.
      expect(ok((await storage.append([request('bob', changes('bob', 1, 1))]))[0]).stored.map((e) => e.pos)).toEqual([4]);
    });

    it('keeps each record state as the join of every change to it', async () => {
      const { storage } = await setup();
      // Three replicas writing the same two records, in several appends.
      const same = (seq: number) => `rec-${seq % 2}`;
      const pushed: Change[] = [];
      for (let round = 0; round < 3; round++) {
        const batch = ['alice', 'bob', 'carol'].map((who) => changes(who, round * 2 + 1, 2, { id: same }));
        pushed.push(...batch.flat());
        const results = await storage.append(batch.map((list, i) => request(['alice', 'bob', 'carol'][i] as string, list)));
        for (const result of results) ok(result);
      }
      const deleted: Change = { ...(changes('dave', 1, 1, { id: () => 'rec-0' })[0] as Change), op: 'delete' } as Change;
      delete (deleted as { fields?: unknown }).fields;
      pushed.push(deleted);
      ok((await storage.append([request('dave', [deleted])]))[0]);

      const page = await storage.snapshotPage(SPACE, undefined, 10);
      expect(page.map((p) => p.id)).toEqual(['rec-0', 'rec-1']);
      for (const record of page) {
        const expected = applyChanges(undefined, pushed.filter((c) => c.id === record.id));
        expect(canonicalState(record.state)).toBe(canonicalState(expected));
      }
      expect(await storage.countRecords(SPACE)).toBe(2);
    });

    it('keeps each space\'s usage (bytes of its records, records that exist) and refuses a request that grows a space past a quota, storing nothing of it', async () => {
      const { storage, another } = await setup();
      const other = 'other-space' as SpaceId;
      const sizeOf = async (space: SpaceId) => (await storage.snapshotPage(space, undefined, 1000)).reduce((n, p) => n + encodeRecordState(p.state).length, 0);
      const exists = async (space: SpaceId) => (await storage.snapshotPage(space, undefined, 1000)).filter((p) => materialize(p.state).exists).length;
      const puts = Array.from({ length: 5 }, (_, i) => putChange(r('alice'), SPACE, i + 1, { blob: 'x'.repeat(1000 * (i + 1)) }, { id: `rec-${i}` }));
      ok((await storage.append([request('alice', puts)]))[0]);
      ok((await storage.append([request('bob', changes('bob', 1, 2, { space: other }), other)]))[0]);
      expect(await storage.usage(SPACE)).toEqual({ bytes: await sizeOf(SPACE), records: 5 });
      expect(await storage.usage(other)).toEqual({ bytes: await sizeOf(other), records: 2 });
      expect(await storage.usage('never-written' as SpaceId)).toEqual({ bytes: 0, records: 0 });
      const usage = await storage.usage(SPACE);
      const quotas = { maxSpaceBytes: usage.bytes + 500, maxSpaceRecords: 6 };
      // Growing past the byte quota: refused, nothing stored (the log neither).
      const big = putChange(r('alice'), SPACE, 6, { blob: 'y'.repeat(2_000) }, { id: 'rec-new' });
      const [refused] = await storage.append([request('alice', [big])], quotas);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error & { code?: string }).code).toBe('quota_exceeded');
      expect(await storage.head(SPACE)).toBe(5);
      expect(await storage.usage(SPACE)).toEqual(usage);
      // Other requests of the same group go through; so does one that shrinks the space.
      const shrink = { ...putChange(r('alice'), SPACE, 6, { blob: 'z' }, { id: 'rec-4' }) };
      const [shrunk, elsewhere] = await storage.append([request('alice', [shrink]), request('bob', changes('bob', 3, 1, { space: other }), other)], quotas);
      ok(shrunk);
      ok(elsewhere);
      expect((await storage.usage(SPACE)).bytes).toBe(await sizeOf(SPACE));
      expect((await storage.usage(SPACE)).bytes).toBeLessThan(usage.bytes);
      // A delete lowers the count; a new record may then come, up to the records quota.
      const del = { ...(changes('alice', 7, 1, { id: () => 'rec-0' })[0] as Change), op: 'delete' } as Change;
      delete (del as { fields?: unknown }).fields;
      ok((await storage.append([request('alice', [del])], quotas))[0]);
      expect((await storage.usage(SPACE)).records).toBe(4);
      ok((await storage.append([request('alice', [putChange(r('alice'), SPACE, 8, { n: 1 }, { id: 'rec-a' }), putChange(r('alice'), SPACE, 9, { n: 1 }, { id: 'rec-b' })])], { ...quotas, maxSpaceBytes: Number.MAX_SAFE_INTEGER }))[0]);
      const [tooMany] = await storage.append([request('alice', [putChange(r('alice'), SPACE, 10, { n: 1 }, { id: 'rec-c' })])], { ...quotas, maxSpaceBytes: Number.MAX_SAFE_INTEGER });
      expect((tooMany as Error & { code?: string }).code).toBe('quota_exceeded');
      expect(await storage.usage(SPACE)).toEqual({ bytes: await sizeOf(SPACE), records: await exists(SPACE) });
      expect((await storage.usage(SPACE)).records).toBe(6);
      // What another storage over the same backing reads.
      expect(await (await another()).usage(SPACE)).toEqual(await storage.usage(SPACE));
    });

    it('pages the log and the snapshot by bytes as well as by count: at least one entry, never past maxBytes after it', async () => {
      const { storage } = await setup();
      // Records of 1, 2, 4, 8 … 64 KB, one change each, in id order.
      const sizes = [1, 2, 4, 8, 16, 32, 64].map((k) => k * 1024);
      const pushed = sizes.map((size, i) => putChange(r('alice'), SPACE, i + 1, { blob: 'x'.repeat(size) }, { id: `rec-${i}` }));
      ok((await storage.append([request('alice', pushed)]))[0]);
      const stored = (await storage.readLog(SPACE, 0, 100)).map((e) => encodeChange(e.change).length);
      for (const maxBytes of [1, 3_000, 20_000, 70_000, 200_000]) {
        for (let after = 0; after < sizes.length; after++) {
          const page = await storage.readLog(SPACE, after, 100, maxBytes);
          expect(page.length, `log after ${after}, ${maxBytes} bytes`).toBeGreaterThanOrEqual(1);
          const bytes = page.map((e) => encodeChange(e.change).length);
          if (page.length > 1) expect(bytes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(maxBytes);
          // Greedy: the next entry would not have fit.
          const next = stored[after + page.length];
          if (next !== undefined) expect(bytes.reduce((a, b) => a + b, 0) + next).toBeGreaterThan(maxBytes);
        }
        // The snapshot, page by page under the same byte bound, still holds every record once, in order.
        const ids: string[] = [];
        let last: [string, string] | undefined;
        for (;;) {
          const page = await storage.snapshotPage(SPACE, last, 100, maxBytes);
          if (page.length === 0) break;
          if (page.length > 1) expect(page.reduce((n, p) => n + encodeRecordState(p.state).length, 0)).toBeLessThanOrEqual(maxBytes);
          ids.push(...page.map((p) => p.id));
          const end = page[page.length - 1] as { collection: string; id: string };
          last = [end.collection, end.id];
        }
        expect(ids).toEqual(sizes.map((_, i) => `rec-${i}`));
      }
    });

    it('pages the snapshot in (collection, id) order, byte order of UTF-8, ids of any characters', async () => {
      const { storage } = await setup();
      const keys: Array<[string, string]> = [];
      for (const collection of ['events', 'Events', 'ä-notes', 'tasks']) {
        for (const id of ['b', 'a', 'a\u0000z', 'Z', '\u00e9t\u00e9', '\uffff', '\u{1F600}', '10', '9', 'a b']) keys.push([collection, id]);
      }
      const pushed = keys.map(([collection, id], i) => putChange(r('alice'), SPACE, i + 1, { i }, { collection, id }));
      ok((await storage.append([request('alice', pushed)]))[0]);
      const expected = [...keys].sort((x, y) => utf8Compare(x[0], y[0]) || utf8Compare(x[1], y[1]));

      const all = await storage.snapshotPage(SPACE, undefined, 1000);
      expect(all.map((p) => [p.collection, p.id])).toEqual(expected);
      const paged: Array<[string, string]> = [];
      let after: [string, string] | undefined;
      for (;;) {
        const page = await storage.snapshotPage(SPACE, after, 7);
        paged.push(...page.map((p): [string, string] => [p.collection, p.id]));
        if (page.length < 7) break;
        const last = page[page.length - 1] as { collection: string; id: string };
        after = [last.collection, last.id];
      }
      expect(paged).toEqual(expected);
      expect(await storage.countRecords(SPACE)).toBe(keys.length);
      expect(await storage.countRecords(OTHER)).toBe(0);
      // The log keeps the ids exactly too.
      expect((await storage.readLog(SPACE, 0, 1000)).map((e) => [e.change.collection, e.change.id])).toEqual(keys);
    });

    it('compacts the log below a horizon and keeps going from there', async () => {
      const { storage } = await setup();
      ok((await storage.append([request('alice', changes('alice', 1, 10))]))[0]);
      expect(await storage.compact(SPACE, 20)).toBe(0);
      expect(await storage.horizon(SPACE)).toBe(0);
      expect(await storage.compact(SPACE, 4)).toBe(6);
      expect(await storage.horizon(SPACE)).toBe(6);
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => e.pos)).toEqual([7, 8, 9, 10]);
      // Never moves back, and is idempotent.
      expect(await storage.compact(SPACE, 8)).toBe(0);
      expect(await storage.compact(SPACE, 4)).toBe(0);
      expect(await storage.horizon(SPACE)).toBe(6);
      // The snapshot still holds every record; positions and dedupe carry on.
      expect(await storage.countRecords(SPACE)).toBe(10);
      const more = ok((await storage.append([request('alice', changes('alice', 3, 10))]))[0]);
      expect(more.stored.map((e) => e.pos)).toEqual([11, 12]);
      expect(await storage.head(SPACE)).toBe(12);
      expect(await storage.compact(SPACE, 0)).toBe(6);
      expect(await storage.horizon(SPACE)).toBe(12);
      expect(await storage.readLog(SPACE, 0, 100)).toEqual([]);
      expect(await storage.head(SPACE)).toBe(12);
      // An unknown space has nothing to compact.
      expect(await storage.compact('nowhere' as SpaceId, 0)).toBe(0);
    });

    it("stores each entry's origin and returns it: '' for a request without one or with '', the peer's name when given", async () => {
      const { storage, another } = await setup();
      const [alice, bob, carol, other] = await storage.append([
        request('alice', changes('alice', 1, 2)),
        request('bob', changes('bob', 1, 2), SPACE, 'eu-west'),
        request('carol', changes('carol', 1, 1), SPACE, ''),
        request('dave', changes('dave', 1, 1, { space: OTHER }), OTHER, 'us-east'),
      ]);
      expect(ok(alice).stored.map((e) => [e.pos, e.origin])).toEqual([
        [1, ''],
        [2, ''],
      ]);
      expect(ok(bob).stored.map((e) => [e.pos, e.origin])).toEqual([
        [3, 'eu-west'],
        [4, 'eu-west'],
      ]);
      expect(ok(carol).stored.map((e) => [e.pos, e.origin])).toEqual([[5, '']]);
      expect(ok(other).stored.map((e) => [e.pos, e.origin])).toEqual([[1, 'us-east']]);
      const want = [
        [1, 'alice', ''],
        [2, 'alice', ''],
        [3, 'bob', 'eu-west'],
        [4, 'bob', 'eu-west'],
        [5, 'carol', ''],
      ];
      // Without a filter (and with an empty one), every entry with its origin; the same through another storage.
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => [e.pos, e.change.replica, e.origin])).toEqual(want);
      expect((await storage.readLog(SPACE, 0, 100, undefined, {})).map((e) => [e.pos, e.change.replica, e.origin])).toEqual(want);
      expect((await (await another()).readLog(SPACE, 0, 100)).map((e) => [e.pos, e.change.replica, e.origin])).toEqual(want);
      expect((await storage.readLog(OTHER, 0, 100)).map((e) => [e.pos, e.origin])).toEqual([[1, 'us-east']]);
      // A peer's name is kept exactly (any characters but NUL, which PostgreSQL text refuses).
      const odd = 'région ü \u{1F600} "x\'';
      expect(ok((await storage.append([request('erin', changes('erin', 1, 1), SPACE, odd)]))[0]).stored.map((e) => e.origin)).toEqual([odd]);
      expect((await storage.readLog(SPACE, 0, 100, undefined, { origin: odd })).map((e) => [e.pos, e.origin])).toEqual([[6, odd]]);
    });

    it("reads one origin's entries with their own positions, honouring limit and maxBytes", async () => {
      const { storage } = await setup();
      // Interleaved: local (alice, carol), from eu (bob), from us (dave); local changes of growing sizes.
      let aliceSeq = 1;
      let bobSeq = 1;
      const local: Array<{ pos: number; bytes: number }> = [];
      for (let round = 0; round < 6; round++) {
        const size = 1024 * 2 ** round;
        const mine = [putChange(r('alice'), SPACE, aliceSeq, { blob: 'x'.repeat(size) }, { id: `a-${aliceSeq}` })];
        aliceSeq++;
        const results = await storage.append([
          request('bob', changes('bob', bobSeq, 3), SPACE, 'eu'),
          request('alice', mine),
          request('dave', changes('dave', round + 1, 1), SPACE, 'us'),
        ]);
        bobSeq += 3;
        for (const e of ok(results[1]).stored) local.push({ pos: e.pos, bytes: encodeChange(e.change).length });
      }
      ok((await storage.append([request('carol', changes('carol', 1, 2), SPACE, '')]))[0]);
      ok((await storage.append([request('bob', changes('bob', bobSeq, 4), SPACE, 'eu')]))[0]);
      const all = await storage.readLog(SPACE, 0, 1000);
      expect(all.map((e) => e.pos)).toEqual(all.map((_, i) => i + 1));
      const localPositions = all.filter((e) => e.origin === '').map((e) => e.pos);
      expect(localPositions).toEqual([4, 9, 14, 19, 24, 29, 31, 32]);

      // Only local entries, at their real positions; each as readLog without a filter has it.
      const mine = await storage.readLog(SPACE, 0, 1000, undefined, { origin: '' });
      expect(mine.map((e) => e.pos)).toEqual(localPositions);
      expect(mine.map((e) => e.change.replica)).toEqual(['alice', 'alice', 'alice', 'alice', 'alice', 'alice', 'carol', 'carol']);
      for (const entry of mine) expect(entry).toEqual(all[entry.pos - 1]);
      // Other origins alike; an origin never seen has nothing.
      expect((await storage.readLog(SPACE, 0, 1000, undefined, { origin: 'us' })).map((e) => e.pos)).toEqual([5, 10, 15, 20, 25, 30]);
      expect((await storage.readLog(SPACE, 0, 1000, undefined, { origin: 'eu' })).map((e) => e.pos)).toEqual(all.filter((e) => e.origin === 'eu').map((e) => e.pos));
      expect(await storage.readLog(SPACE, 0, 1000, undefined, { origin: 'nowhere' })).toEqual([]);
      expect(await storage.readLog(OTHER, 0, 1000, undefined, { origin: '' })).toEqual([]);

      // `after` is a position of the whole log, also one of another origin; `limit` counts returned entries.
      expect((await storage.readLog(SPACE, 4, 2, undefined, { origin: '' })).map((e) => e.pos)).toEqual([9, 14]);
      expect((await storage.readLog(SPACE, 5, 2, undefined, { origin: '' })).map((e) => e.pos)).toEqual([9, 14]);
      expect((await storage.readLog(SPACE, 29, 10, undefined, { origin: '' })).map((e) => e.pos)).toEqual([31, 32]);
      expect(await storage.readLog(SPACE, 32, 10, undefined, { origin: '' })).toEqual([]);
      // Paging by limit, from the last position returned, visits every local entry once.
      const paged: number[] = [];
      for (let after = 0; ; ) {
        const page = await storage.readLog(SPACE, after, 3, undefined, { origin: '' });
        if (page.length === 0) break;
        expect(page.length).toBeLessThanOrEqual(3);
        paged.push(...page.map((e) => e.pos));
        after = (page[page.length - 1] as { pos: number }).pos;
      }
      expect(paged).toEqual(localPositions);
      // maxBytes counts the returned entries' bytes only: at least one, greedy, never past it after the first.
      const bytesOf = (pos: number) => encodeChange((all[pos - 1] as { change: Change }).change).length;
      for (const maxBytes of [1, 3_000, 10_000, 40_000, 1_000_000]) {
        for (const after of [0, 4, 6, 24]) {
          const page = await storage.readLog(SPACE, after, 100, maxBytes, { origin: '' });
          const rest = localPositions.filter((p) => p > after);
          expect(page.length, `after ${after}, ${maxBytes} bytes`).toBeGreaterThanOrEqual(1);
          expect(page.map((e) => e.pos)).toEqual(rest.slice(0, page.length));
          const bytes = page.reduce((n, e) => n + bytesOf(e.pos), 0);
          if (page.length > 1) expect(bytes).toBeLessThanOrEqual(maxBytes);
          const next = rest[page.length];
          if (next !== undefined) expect(bytes + bytesOf(next)).toBeGreaterThan(maxBytes);
        }
      }
      expect(local.map((l) => l.pos)).toEqual(localPositions.slice(0, 6));
    });

    it('stores a change it already holds only once whatever its origin: the first origin stays', async () => {
      const { storage } = await setup();
      // First from a peer region.
      expect(ok((await storage.append([request('alice', changes('alice', 1, 3), SPACE, 'eu')]))[0]).stored.map((e) => [e.pos, e.origin])).toEqual([
        [1, 'eu'],
        [2, 'eu'],
        [3, 'eu'],
      ]);
      // Then pushed by the replica itself (reconnected here): only what is new, as local.
      const overlap = ok((await storage.append([request('alice', changes('alice', 1, 5))]))[0]);
      expect(overlap.stored.map((e) => [e.pos, e.change.seq, e.origin])).toEqual([
        [4, 4, ''],
        [5, 5, ''],
      ]);
      // From another peer: nothing new.
      expect(ok((await storage.append([request('alice', changes('alice', 2, 4), SPACE, 'us')]))[0])).toEqual({ stored: [], upTo: 5 });
      // The same changes from two origins in one append: stored once, with the first request's origin.
      const [x, y] = await storage.append([request('alice', changes('alice', 6, 2), SPACE, 'us'), request('alice', changes('alice', 6, 2))]);
      expect(ok(x).stored.map((e) => [e.pos, e.origin])).toEqual([
        [6, 'us'],
        [7, 'us'],
      ]);
      expect(ok(y)).toEqual({ stored: [], upTo: 7 });
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => [e.pos, e.change.seq, e.origin])).toEqual([
        [1, 1, 'eu'],
        [2, 2, 'eu'],
        [3, 3, 'eu'],
        [4, 4, ''],
        [5, 5, ''],
        [6, 6, 'us'],
        [7, 7, 'us'],
      ]);
      expect(await storage.head(SPACE)).toBe(7);
      // A gap is a gap whatever the origin.
      expect(((await storage.append([request('alice', changes('alice', 9, 1), SPACE, 'eu')]))[0] as SynclineError).code).toBe('sequence_gap');
    });

    it('compacts entries of every origin at or below the horizon', async () => {
      const { storage } = await setup();
      for (let i = 0; i < 4; i++) {
        for (const result of await storage.append([request('alice', changes('alice', i * 2 + 1, 2)), request('bob', changes('bob', i + 1, 1), SPACE, 'eu')])) ok(result);
      }
      expect(await storage.head(SPACE)).toBe(12);
      expect(await storage.compact(SPACE, 5)).toBe(7);
      expect(await storage.horizon(SPACE)).toBe(7);
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => [e.pos, e.origin])).toEqual([
        [8, ''],
        [9, 'eu'],
        [10, ''],
        [11, ''],
        [12, 'eu'],
      ]);
      expect((await storage.readLog(SPACE, 0, 100, undefined, { origin: 'eu' })).map((e) => e.pos)).toEqual([9, 12]);
      expect((await storage.readLog(SPACE, 0, 100, undefined, { origin: '' })).map((e) => e.pos)).toEqual([8, 10, 11]);
      expect(await storage.compact(SPACE, 0)).toBe(5);
      expect(await storage.readLog(SPACE, 0, 100, undefined, { origin: 'eu' })).toEqual([]);
      expect(await storage.readLog(SPACE, 0, 100, undefined, { origin: '' })).toEqual([]);
    });

    it("keeps each entry's origin position, and answers origin vectors and resume points, compacted entries included", async () => {
      const { storage, another } = await setup();
      const from = (replica: string, first: number, origin: string, originPositions: number[]): AppendRequest => ({
        space: SPACE,
        replica: r(replica),
        changes: changes(replica, first, originPositions.length),
        origin,
        originPositions,
      });
      ok((await storage.append([request('alice', changes('alice', 1, 2))]))[0]);
      ok((await storage.append([from('bob', 1, 'eu', [10, 11])]))[0]);
      ok((await storage.append([from('carol', 1, 'us', [5]), request('alice', changes('alice', 3, 1)), from('bob', 3, 'eu', [14])]))[0]);
      const log = await storage.readLog(SPACE, 0, 100);
      expect(log.map((e) => [e.pos, e.origin, e.originPos])).toEqual([
        [1, '', 1],
        [2, '', 2],
        [3, 'eu', 10],
        [4, 'eu', 11],
        [5, 'us', 5],
        [6, '', 6],
        [7, 'eu', 14],
      ]);
      // One origin's entries read by its own positions.
      expect((await storage.readLog(SPACE, 10, 100, undefined, { origin: 'eu' })).map((e) => [e.pos, e.originPos])).toEqual([
        [4, 11],
        [7, 14],
      ]);
      // The origin vector of a prefix of the log: per origin, the highest origin position in it.
      expect(await storage.originVector(SPACE, 0)).toEqual(new Map());
      expect(await storage.originVector(SPACE, 4)).toEqual(new Map([['', 2], ['eu', 11]]));
      expect(await storage.originVector(SPACE, 7)).toEqual(new Map([['', 6], ['eu', 14], ['us', 5]]));
      // Resume points: the last position up to which a holder of the vector holds everything.
      const resume = (held: Record<string, number>) => storage.resumeAfter(SPACE, new Map(Object.entries(held)));
      expect(await resume({})).toBe(0);
      expect(await resume({ '': 6, eu: 14, us: 5 })).toBe(7);
      expect(await resume({ '': 9, eu: 99, us: 9, ap: 3 })).toBe(7);
      expect(await resume({ '': 2, eu: 11, us: 5 })).toBe(5);
      expect(await resume({ '': 6, eu: 10, us: 5 })).toBe(3);
      expect(await resume({ eu: 14, us: 5 })).toBe(0);
      expect(await storage.resumeAfter(OTHER, new Map([['', 3]]))).toBe(0);
      // How far each replica is held, whatever the origins its changes came by.
      expect(await storage.replicaProgress(SPACE, [r('alice'), r('bob'), r('carol'), r('nobody')])).toEqual(new Map([[r('alice'), 3], [r('bob'), 3], [r('carol'), 1]]));
      expect(await storage.replicaProgress(OTHER, [r('alice')])).toEqual(new Map());
      expect(await storage.replicaProgress(SPACE, [])).toEqual(new Map());
      // A request of another origin needs one ascending position per change; refused alone, nothing stored.
      const refused = await storage.append([
        { space: SPACE, replica: r('dave'), changes: changes('dave', 1, 2), origin: 'eu' },
        from('erin', 1, 'eu', [20, 20]),
        { ...request('frank', changes('frank', 1, 1)), originPositions: [3] },
      ]);
      for (const result of refused) expect(result).toBeInstanceOf(RangeError);
      expect(await storage.head(SPACE)).toBe(7);
      // Compaction keeps, per origin, how far it dropped: the vector still counts it, and a holder
      // that lacks a dropped entry is told it needs a snapshot (undefined).
      expect(await storage.compact(SPACE, 2)).toBe(5);
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => e.pos)).toEqual([6, 7]);
      for (const s of [storage, await another()]) {
        expect(await s.originVector(SPACE, 7)).toEqual(new Map([['', 6], ['eu', 14], ['us', 5]]));
        expect(await s.originVector(SPACE, 5)).toEqual(new Map([['', 2], ['eu', 11], ['us', 5]]));
        expect(await s.resumeAfter(SPACE, new Map(Object.entries({ '': 2, eu: 11, us: 5 })))).toBe(5);
        expect(await s.resumeAfter(SPACE, new Map(Object.entries({ '': 6, eu: 14, us: 5 })))).toBe(7);
        expect(await s.resumeAfter(SPACE, new Map(Object.entries({ '': 1, eu: 11, us: 5 })))).toBeUndefined();
        expect(await s.resumeAfter(SPACE, new Map(Object.entries({ '': 6, eu: 14 })))).toBeUndefined();
      }
    });

    it('reports what it holds over every space: records, tombstones, record bytes and log entries', async () => {
      const { storage } = await setup();
      expect(await storage.stats()).toEqual({ spaces: 0, records: 0, tombstones: 0, recordBytes: 0, logEntries: 0 });
      ok((await storage.append([request('alice', changes('alice', 1, 5))]))[0]);
      ok((await storage.append([request('bob', changes('bob', 1, 2, { space: OTHER }), OTHER)]))[0]);
      // alice deletes two of her five records.
      const deletes = [6, 7].map((seq, i) => {
        const d = { ...(changes('alice', seq, 1, { id: () => `alice-${i + 1}` })[0] as Change), op: 'delete' } as Change;
        delete (d as { fields?: unknown }).fields;
        return d;
      });
      ok((await storage.append([request('alice', deletes)]))[0]);
      const stored = [...(await storage.snapshotPage(SPACE, undefined, 100)), ...(await storage.snapshotPage(OTHER, undefined, 100))];
      expect(await storage.stats()).toEqual({ spaces: 2, records: 5, tombstones: 2, recordBytes: stored.reduce((n, r) => n + encodeRecordState(r.state).length, 0), logEntries: 9 });
      await storage.compact(SPACE, 0);
      expect((await storage.stats()).logEntries).toBe(2);
    });

    it("merges another region's state: joins records (twice is once), raises progress and floors, and compacts through one new position", async () => {
      const { storage } = await setup();
      // This region: alice wrote rec-0 and rec-1 (positions 1, 2).
      const mine = changes('alice', 1, 2, { id: (seq) => `rec-${seq - 1}` });
      ok((await storage.append([request('alice', mine)]))[0]);
      // The peer's state: bob's three changes to rec-1 and rec-2, never in this log.
      const theirs = changes('bob', 1, 3, { id: (seq) => `rec-${Math.min(2, seq)}` });
      const peerState = ['rec-1', 'rec-2'].map((id) => ({ collection: 'events', id, state: applyChanges(undefined, theirs.filter((c) => c.id === id)) }));
      expect(await storage.mergeState(SPACE, peerState.slice(0, 1))).toBe(2);
      // A part merged again, and the last part with what the state covers.
      const head = await storage.mergeState(SPACE, peerState, { progress: new Map([[r('bob'), 3]]), floors: new Map([['b', 7]]) });
      expect(head).toBe(3);
      expect(await storage.head(SPACE)).toBe(3);
      expect(await storage.horizon(SPACE)).toBe(3);
      // The log is kept (links read it by origin floors); the horizon sends clients below it a snapshot.
      expect((await storage.readLog(SPACE, 0, 10)).map((e) => e.pos)).toEqual([1, 2]);
      const page = await storage.snapshotPage(SPACE, undefined, 10);
      expect(page.map((p) => p.id)).toEqual(['rec-0', 'rec-1', 'rec-2']);
      for (const record of page) {
        const expected = applyChanges(undefined, [...mine, ...theirs].filter((c) => c.id === record.id));
        expect(canonicalState(record.state), record.id).toBe(canonicalState(expected));
      }
      expect(await storage.usage(SPACE)).toEqual({ bytes: page.reduce((n, p) => n + encodeRecordState(p.state).length, 0), records: 3 });
      // Bob's changes are held: seen again they are not stored, and his next one follows without a gap.
      expect(await storage.replicaProgress(SPACE)).toEqual(new Map([[r('alice'), 2], [r('bob'), 3]]));
      expect(ok((await storage.append([request('bob', [...theirs, ...changes('bob', 4, 1)])]))[0]).stored.map((e) => [e.pos, e.change.seq])).toEqual([[4, 4]]);
      // Floors: the peer's; this region's own entries are untouched.
      expect(await storage.originVector(SPACE, 0)).toEqual(new Map([['b', 7]]));
      expect(await storage.originVector(SPACE, 4)).toEqual(new Map([['', 4], ['b', 7]]));
      expect(await storage.resumeAfter(SPACE, new Map([['', 2], ['b', 6]]))).toBeUndefined();
      expect(await storage.resumeAfter(SPACE, new Map([['', 2], ['b', 7]]))).toBe(3);
    });

    it('keeps link positions per peer and space, never lowers them, and keeps them across close and reopen', async () => {
      const { backing, storage, another } = await setup();
      expect(await storage.linkPositions('eu')).toEqual(new Map());
      await storage.setLinkPosition('eu', SPACE, 5);
      await storage.setLinkPosition('eu', OTHER, 2);
      await storage.setLinkPosition('us', SPACE, 1);
      expect(await storage.linkPositions('eu')).toEqual(new Map([[SPACE, 5], [OTHER, 2]]));
      expect(await storage.linkPositions('us')).toEqual(new Map([[SPACE, 1]]));
      // Never lower; the same position again changes nothing; higher moves it.
      await storage.setLinkPosition('eu', SPACE, 3);
      await storage.setLinkPosition('eu', SPACE, 0);
      await storage.setLinkPosition('eu', SPACE, 5);
      expect((await storage.linkPositions('eu')).get(SPACE)).toBe(5);
      await storage.setLinkPosition('eu', SPACE, 9);
      // Peers are independent, and listed in order.
      expect(await storage.linkPositions('us')).toEqual(new Map([[SPACE, 1]]));
      expect(await storage.linkPeers()).toEqual(['eu', 'us']);
      expect(await storage.linkPositions('ap')).toEqual(new Map());
      // A position at 0 is a space read (nothing yet), so it is present.
      await storage.setLinkPosition('ap', OTHER, 0);
      expect(await storage.linkPositions('ap')).toEqual(new Map([[OTHER, 0]]));
      // Not a position: refused, nothing changed.
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) await expect(storage.setLinkPosition('eu', SPACE, bad)).rejects.toBeInstanceOf(RangeError);
      expect(await storage.linkPositions('eu')).toEqual(new Map([[SPACE, 9], [OTHER, 2]]));
      // Link positions are not spaces' contents.
      expect(await storage.spaces()).toEqual([]);
      // Another storage over the same data sees them; so does one opened after closing.
      expect(await (await another()).linkPositions('eu')).toEqual(new Map([[SPACE, 9], [OTHER, 2]]));
      await storage.close();
      await expect(storage.linkPositions('eu')).rejects.toMatchObject({ code: 'closed' });
      await expect(storage.setLinkPosition('eu', SPACE, 10)).rejects.toMatchObject({ code: 'closed' });
      const reopened = await backing.open();
      cleanup.push(() => reopened.close());
      expect(await reopened.linkPositions('eu')).toEqual(new Map([[SPACE, 9], [OTHER, 2]]));
      expect(await reopened.linkPositions('us')).toEqual(new Map([[SPACE, 1]]));
      await reopened.setLinkPosition('eu', SPACE, 4);
      await reopened.setLinkPosition('us', SPACE, 7);
      expect(await reopened.linkPositions('eu')).toEqual(new Map([[SPACE, 9], [OTHER, 2]]));
      expect(await reopened.linkPositions('us')).toEqual(new Map([[SPACE, 7]]));
    });

    it('moves a link position only forward when two storages over the same data set it at once', async () => {
      const { storage, another } = await setup();
      const second = await another();
      const positions = Array.from({ length: 40 }, (_, i) => (i * 17) % 41);
      await Promise.all(positions.map((pos, i) => (i % 2 === 0 ? storage : second).setLinkPosition('eu', SPACE, pos)));
      expect((await storage.linkPositions('eu')).get(SPACE)).toBe(Math.max(...positions));
    });

    it('keeps everything across close and reopen, and refuses calls once closed', async () => {
      const { backing, storage } = await setup();
      ok((await storage.append([request('alice', changes('alice', 1, 3))]))[0]);
      await storage.compact(SPACE, 1);
      await storage.close();
      await storage.close(); // idempotent
      await expect(storage.head(SPACE)).rejects.toMatchObject({ code: 'closed' });
      await expect(storage.append([request('alice', changes('alice', 4, 1))])).rejects.toMatchObject({ code: 'closed' });

      const reopened = await backing.open();
      cleanup.push(() => reopened.close());
      expect(await reopened.head(SPACE)).toBe(3);
      expect(await reopened.horizon(SPACE)).toBe(2);
      expect((await reopened.readLog(SPACE, 0, 10)).map((e) => e.pos)).toEqual([3]);
      expect(ok((await reopened.append([request('alice', changes('alice', 1, 4))]))[0]).stored.map((e) => [e.pos, e.change.seq])).toEqual([[4, 4]]);
    });

    it('stores concurrent appends from two storages over the same data with contiguous positions, each change once', async () => {
      const { storage, another } = await setup();
      const second = await another();
      const stores = [storage, second];
      const writers = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5'];
      const results: AppendResult[] = [];
      // Writers at once; each like a client, one push in flight. Even writers push each batch to both
      // storages at once (a client failing over while its push is in flight): stored once.
      await Promise.all(
        writers.map(async (writer, i) => {
          let seq = 1;
          for (let round = 0; round < 10; round++) {
            const list = changes(writer, seq, 1 + ((round + i) % 3), { id: (n) => `${writer}-${n % 4}` });
            seq += list.length;
            const targets = i % 2 === 0 ? stores : [stores[(round + i) % 2] as ServerStorage];
            for (const result of (await Promise.all(targets.map((target) => target.append([request(writer, list)])))).flat()) {
              expect(ok(result).upTo).toBe(seq - 1);
              results.push(ok(result));
            }
          }
        }),
      );

      // Positions 1..N, no gaps; each (replica, seq) once, in seq order per writer.
      const log = await storage.readLog(SPACE, 0, 10_000);
      expect(log.map((e) => e.pos)).toEqual(log.map((_, i) => i + 1));
      expect(await second.head(SPACE)).toBe(log.length);
      expect(new Set(log.map((e) => `${e.change.replica}:${e.change.seq}`)).size).toBe(log.length);
      for (const [i, writer] of writers.entries()) {
        const seqs = log.filter((e) => e.change.replica === writer).map((e) => e.change.seq);
        const total = Array.from({ length: 10 }, (_, round) => 1 + ((round + i) % 3)).reduce((a, b) => a + b, 0);
        expect(seqs).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      }
      // Every position an append reported holds the change it reported, and each was reported once.
      const byPos = new Map(log.map((e) => [e.pos, e.change]));
      const reported = results.flatMap((x) => x.stored);
      expect(reported.map((e) => e.pos).sort((a, b) => a - b)).toEqual(log.map((e) => e.pos));
      for (const e of reported) expect(byPos.get(e.pos)).toEqual(e.change);
      // Record states are the join of the log in any order.
      for (const record of await storage.snapshotPage(SPACE, undefined, 1000)) {
        const expected = applyChanges(undefined, log.map((e) => e.change).filter((c) => c.collection === record.collection && c.id === record.id));
        expect(canonicalState(record.state)).toBe(canonicalState(expected));
      }
    });

    it('reads one record state, deleted ones too, and none for a record never written', async () => {
      const { storage } = await setup();
      const list = changes('alice', 1, 2, { id: () => 'same' });
      ok((await storage.append([request('alice', list)]))[0]);
      const state = await storage.record(SPACE, list[0]!.collection, 'same');
      expect(state && canonicalState(state)).toBe(canonicalState(applyChanges(undefined, list)));
      ok((await storage.append([request('alice', [deleteAt('alice', 3, Date.now() - T + 60_000, 'same')])]))[0]);
      expect(materialize(await storage.record(SPACE, list[0]!.collection, 'same')).exists).toBe(false);
      expect(await storage.record(SPACE, list[0]!.collection, 'other')).toBeUndefined();
      expect(await storage.record(OTHER, list[0]!.collection, 'same')).toBeUndefined();
    });

    it('stores a request with an idempotency key once per space and key, also from two storages at once; a key expires after a day', async () => {
      const { storage, another } = await setup();
      const second = await another();
      const keyed = (replica: string, seq: number, key: string, at: number, space: SpaceId = SPACE): AppendRequest => ({
        ...request(replica, changes(replica, seq, 2, { space }), space),
        idempotency: { key, at, response: `${replica}:${seq}` },
      });
      const first = ok((await storage.append([keyed('api-a', 1, 'k', T)]))[0]);
      expect(first.stored).toHaveLength(2);
      expect(first.replayed).toBeUndefined();
      // The same key from another writer (a restarted server) stores nothing and replays the first response.
      const again = ok((await second.append([keyed('api-b', 1, 'k', T + 1000)]))[0]);
      expect(again).toEqual({ stored: [], upTo: 0, replayed: 'api-a:1' });
      // Another space, another key: stored.
      expect(ok((await storage.append([keyed('api-b', 1, 'k', T, OTHER)]))[0]).stored).toHaveLength(2);
      // Racing from two storages under one new key: one request stores, the other replays it.
      const [x, y] = await Promise.all([storage.append([keyed('api-c', 1, 'race', T)]), second.append([keyed('api-d', 1, 'race', T)])]);
      const both = [ok(x?.[0]), ok(y?.[0])];
      expect(both.filter((b) => b.replayed === undefined).map((b) => b.stored.length)).toEqual([2]);
      const winner = both.find((b) => b.replayed === undefined)?.stored[0]?.change.replica as string;
      expect(both.find((b) => b.replayed !== undefined)?.replayed).toBe(`${winner}:1`);
      expect(await storage.head(SPACE)).toBe(4);
      // A day later the key is free again; storing it drops the space's expired keys.
      const expired = ok((await storage.append([keyed('api-a', 3, 'k', T + IDEMPOTENCY_TTL_MS + 1)]))[0]);
      expect(expired.stored).toHaveLength(2);
      expect(ok((await second.append([keyed('api-e', 1, 'k', T + IDEMPOTENCY_TTL_MS + 2)]))[0]).replayed).toBe('api-a:3');
      // Kept across close and reopen.
      await storage.close();
      const reopened = await another();
      expect(ok((await reopened.append([keyed('api-f', 1, 'k', T + IDEMPOTENCY_TTL_MS + 3)]))[0]).replayed).toBe('api-a:3');
    });

    it('raises the stability horizon to the earliest bound of its writers (the later of last stamp and floor), capped, never back', async () => {
      const { storage, another } = await setup();
      expect(await storage.stability(SPACE)).toEqual({ hlc: undefined, upTo: 0 });
      const alice = [putAt('alice', 1, 5, 'x'), putAt('alice', 2, 10, 'x')];
      for (const result of await storage.append([request('alice', alice), request('bob', [putAt('bob', 1, 30, 'y')])])) ok(result);
      // alice's last stamp is the earliest bound.
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual({ hlc: (alice[1] as Change).hlc, upTo: 3 });
      // alice's floor is later than her last stamp: it holds her; bob's floor is earlier than his: his stamp holds him.
      await storage.noteWriter(SPACE, r('alice'), at(20), 1);
      await storage.noteWriter(SPACE, r('bob'), at(15), 1);
      ok((await storage.append([request('bob', [putAt('bob', 2, 40, 'y')])]))[0]);
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual({ hlc: at(20), upTo: 4 });
      // alice at 60, bob at 40: capped at 25.
      ok((await storage.append([request('alice', [putAt('alice', 3, 60, 'x')])]))[0]);
      expect(await storage.advanceHorizon(SPACE, at(25))).toEqual({ hlc: at(25), upTo: 5 });
      // Never back: a lower cap, or a new writer with an earlier floor, leaves it (and upTo) as it is.
      ok((await storage.append([request('bob', [putAt('bob', 3, 70, 'y')])]))[0]);
      expect(await storage.advanceHorizon(SPACE, at(15))).toEqual({ hlc: at(25), upTo: 5 });
      await storage.noteWriter(SPACE, r('carol'), at(1), 1);
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual({ hlc: at(25), upTo: 5 });
      // carol's floor moves past the others: alice's last stamp (60) is the earliest.
      await storage.noteWriter(SPACE, r('carol'), at(80), 1);
      const raised = { hlc: putAt('alice', 3, 60, 'x').hlc, upTo: 6 };
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual(raised);
      expect(await storage.stability(SPACE)).toEqual(raised);
      expect(await (await another()).stability(SPACE)).toEqual(raised);
      // A writer with neither stamp nor floor holds it where it is (alice and bob moved on: 90, 70 otherwise) …
      await storage.noteWriter(SPACE, r('dave'), undefined, 1);
      ok((await storage.append([request('alice', [putAt('alice', 4, 90, 'x')])]))[0]);
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual(raised);
      // … until it has a floor; a floor noted again without one, or earlier, stays.
      await storage.noteWriter(SPACE, r('dave'), at(95), 1);
      await storage.noteWriter(SPACE, r('dave'), undefined, 1);
      await storage.noteWriter(SPACE, r('dave'), at(2), 1);
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual({ hlc: putAt('bob', 3, 70, 'y').hlc, upTo: 7 });
      // … and undefined when there was none yet.
      ok((await storage.append([request('alice', [putAt('alice', 1, 5, 'o', OTHER)], OTHER)]))[0]);
      await storage.noteWriter(OTHER, r('dave'), undefined, 1);
      expect(await storage.advanceHorizon(OTHER, at(100))).toEqual({ hlc: undefined, upTo: 0 });
      expect(await storage.stability(OTHER)).toEqual({ hlc: undefined, upTo: 0 });
      await storage.noteWriter(OTHER, r('dave'), at(50), 1);
      expect(await storage.advanceHorizon(OTHER, at(100))).toEqual({ hlc: putAt('alice', 1, 5, 'o', OTHER).hlc, upTo: 1 });
    });

    it('refuses a new change stamped at or below the horizon with below_horizon, storing nothing of its request; a change already held is acknowledged', async () => {
      const { storage } = await setup();
      const alice = [putAt('alice', 1, 10, 'x'), putAt('alice', 2, 20, 'y')];
      for (const result of await storage.append([request('alice', alice), request('bob', [putAt('bob', 1, 30, 'z')])])) ok(result);
      const horizon = at(15, 'carol');
      expect(await storage.advanceHorizon(SPACE, horizon)).toEqual({ hlc: horizon, upTo: 3 });
      const log = await storage.readLog(SPACE, 0, 100);
      const records = await storage.snapshotPage(SPACE, undefined, 100);
      // Stamped exactly at the horizon; stamped below after a change above it (the whole request is refused).
      // Another request of the same group is stored.
      const [exactly, mixed, bob] = await storage.append([
        request('carol', [{ ...putAt('carol', 1, 15, 'c'), hlc: horizon } as Change]),
        request('dave', [putAt('dave', 1, 50, 'd'), putAt('dave', 2, 14, 'd')]),
        request('bob', [putAt('bob', 2, 40, 'z')]),
      ]);
      refusedWith(exactly, 'below_horizon');
      refusedWith(mixed, 'below_horizon');
      expect(ok(bob).stored.map((e) => e.pos)).toEqual([4]);
      expect(await storage.head(SPACE)).toBe(4);
      expect(await storage.readLog(SPACE, 0, 100)).toEqual([...log, ...ok(bob).stored]);
      expect((await storage.snapshotPage(SPACE, undefined, 100)).map((p) => p.id)).toEqual(records.map((p) => p.id));
      expect(await storage.replicaProgress(SPACE, [r('carol'), r('dave')])).toEqual(new Map());
      // alice's changes pushed again (the first below the horizon): held, acknowledged; a new one above it after them is stored.
      expect(ok((await storage.append([request('alice', alice)]))[0])).toEqual({ stored: [], upTo: 2 });
      expect(ok((await storage.append([request('alice', [...alice, putAt('alice', 3, 16, 'x')])]))[0]).stored.map((e) => [e.pos, e.change.seq])).toEqual([[5, 3]]);
      // carol, stamped above it this time: stored.
      expect(ok((await storage.append([request('carol', [putAt('carol', 1, 16, 'c')])]))[0]).stored.map((e) => e.pos)).toEqual([6]);
      expect(await storage.head(SPACE)).toBe(6);
    });

    it('collects the deleted lww records whose latest stamp is at or below the horizon, and nothing else', async () => {
      const { storage } = await setup();
      const bytesOf = async (space: SpaceId) => (await storage.snapshotPage(space, undefined, 100)).reduce((n, p) => n + encodeRecordState(p.state).length, 0);
      // gone-1, gone-2: put then deleted. back: deleted, then put again. late: deleted after the horizon.
      // live: put. merged: a merge record whose last version deletes it.
      const writes = [
        putAt('alice', 1, 1, 'gone-1'),
        putAt('alice', 2, 2, 'gone-2'),
        putAt('alice', 3, 3, 'back'),
        putAt('alice', 4, 4, 'late'),
        putAt('alice', 5, 5, 'live'),
        versionAt('alice', 6, 6, 'merged', { n: 1 }, []),
        deleteAt('alice', 7, 7, 'gone-1'),
        deleteAt('alice', 8, 8, 'gone-2'),
        deleteAt('alice', 9, 9, 'back'),
        versionAt('alice', 10, 10, 'merged', null, [['alice', 6]]),
        putAt('alice', 11, 11, 'back'),
      ];
      ok((await storage.append([request('alice', writes)]))[0]);
      // Another space, with no horizon: nothing collected there.
      ok((await storage.append([request('bob', [putAt('bob', 1, 1, 'o', OTHER), deleteAt('bob', 2, 2, 'o', OTHER)], OTHER)]))[0]);
      expect(await storage.collect(SPACE)).toBe(0); // no horizon yet
      await storage.noteWriter(SPACE, r('alice'), at(25), 1);
      expect(await storage.advanceHorizon(SPACE, at(20))).toEqual({ hlc: at(20), upTo: 11 });
      ok((await storage.append([request('alice', [deleteAt('alice', 12, 30, 'late')])]))[0]);

      const before = { page: await storage.snapshotPage(SPACE, undefined, 100), usage: await storage.usage(SPACE), stats: await storage.stats() };
      expect(before.page.map((p) => p.id)).toEqual(['back', 'gone-1', 'gone-2', 'late', 'live', 'merged']);
      expect(before.usage.records).toBe(2);
      expect(before.stats.tombstones).toBe(5); // gone-1, gone-2, late, merged; o in OTHER
      const gone = before.page.filter((p) => p.id.startsWith('gone-')).reduce((n, p) => n + encodeRecordState(p.state).length, 0);

      expect(await storage.collect(SPACE)).toBe(2);
      const page = await storage.snapshotPage(SPACE, undefined, 100);
      expect(page.map((p) => p.id)).toEqual(['back', 'late', 'live', 'merged']);
      expect(page).toEqual(before.page.filter((p) => !p.id.startsWith('gone-')));
      expect(await storage.countRecords(SPACE)).toBe(4);
      expect(await storage.usage(SPACE)).toEqual({ bytes: before.usage.bytes - gone, records: 2 });
      expect((await storage.usage(SPACE)).bytes).toBe(await bytesOf(SPACE));
      expect(await storage.stats()).toEqual({ ...before.stats, tombstones: 3, recordBytes: before.stats.recordBytes - gone });
      expect(await storage.countRecords(OTHER)).toBe(1);
      expect(await storage.collect(SPACE)).toBe(0);

      // A later change to a collected record creates it afresh.
      const again = putAt('alice', 13, 40, 'gone-1');
      ok((await storage.append([request('alice', [again])]))[0]);
      const revived = (await storage.snapshotPage(SPACE, undefined, 100)).find((p) => p.id === 'gone-1');
      expect(canonicalState(revived?.state)).toBe(canonicalState(applyChanges(undefined, [again])));
      expect(await storage.usage(SPACE)).toEqual({ bytes: await bytesOf(SPACE), records: 3 });
    });

    it("with peers: only local writers hold the refusal level back; the collection horizon follows the peers' level, never back; collect and mergeState keep to it", async () => {
      const { storage, another } = await setup();
      // alice said hello here (local); eve is known only by a region link's changes (origin 'eu').
      await storage.noteWriter(SPACE, r('alice'), at(10), 1);
      const written = [putAt('alice', 1, 11, 'gone'), putAt('alice', 2, 12, 'kept'), deleteAt('alice', 3, 13, 'gone')];
      ok((await storage.append([request('alice', written)]))[0]);
      ok((await storage.append([request('eve', [putAt('eve', 1, 2, 'eve-1')], SPACE, 'eu')]))[0]);
      // eve's last stamp (2) would hold it at 2: only alice (13) counts. Some peer's level unknown: nothing to collect at.
      expect(await storage.advanceHorizon(SPACE, at(100), false)).toEqual({ hlc: undefined, upTo: 0, refused: { hlc: putAt('alice', 3, 13, 'gone').hlc, upTo: 4 } });
      expect(await storage.collect(SPACE)).toBe(0);
      // The peers refuse at or below 5: the collection horizon is 5, below the refusal level, and 'gone' (13) stays.
      const five = await storage.advanceHorizon(SPACE, at(100), at(5));
      expect(five).toEqual({ hlc: at(5), upTo: 4, refused: { hlc: putAt('alice', 3, 13, 'gone').hlc, upTo: 4 } });
      expect(await (await another()).stability(SPACE)).toEqual(five);
      expect(await storage.collect(SPACE)).toBe(0);
      // The local refusal level, not the collection horizon, refuses: 12 is refused, 14 is stored.
      refusedWith((await storage.append([request('carol', [putAt('carol', 1, 12, 'c')])]))[0], 'below_horizon');
      ok((await storage.append([request('carol', [putAt('carol', 1, 14, 'c')])]))[0]);
      // A region link's change below both is not refused (its region accepted it).
      ok((await storage.append([request('eve', [putAt('eve', 2, 3, 'eve-2')], SPACE, 'eu')]))[0]);
      // The peers' level rises past alice's: the collection horizon stops at the refusal level (alice's floor, 40,
      // carol's last stamp, 14: 14). 'gone' is collected. A lower peers' level, or false, never moves it back.
      await storage.noteWriter(SPACE, r('alice'), at(40), 1);
      await storage.noteWriter(SPACE, r('carol'), at(50), 1);
      const settled = await storage.advanceHorizon(SPACE, at(100), at(90));
      expect(settled).toEqual({ hlc: at(40), upTo: 6 });
      expect(await storage.advanceHorizon(SPACE, at(100), at(20))).toEqual(settled);
      expect(await storage.advanceHorizon(SPACE, at(100), false)).toEqual(settled);
      expect(await storage.collect(SPACE)).toBe(1);
      expect((await storage.snapshotPage(SPACE, undefined, 100)).map((p) => p.id)).toEqual(['c', 'eve-1', 'eve-2', 'kept']);
      // A peer's state that still has 'gone' alive (it lacked the delete) does not bring it back; of a record not
      // held here only the registers after the horizon come; a record held here is joined whole.
      const old = putAt('bob', 1, 11, 'gone');
      const late = { ...putAt('bob', 2, 60, 'gone'), op: 'patch', unset: [] } as unknown as Change;
      const fresh = putAt('bob', 3, 70, 'new');
      const lowNew = putAt('bob', 4, 30, 'old-only');
      const kept = putAt('bob', 5, 20, 'kept');
      const peer = [
        { collection: 'events', id: 'gone', state: applyChanges(undefined, [old]) },
        { collection: 'events', id: 'kept', state: applyChanges(undefined, [kept]) },
        { collection: 'events', id: 'new', state: applyChanges(undefined, [fresh]) },
        { collection: 'events', id: 'old-only', state: applyChanges(undefined, [lowNew]) },
      ];
      const keptBefore = (await storage.snapshotPage(SPACE, undefined, 100)).find((p) => p.id === 'kept');
      await storage.mergeState(SPACE, peer);
      let page = await storage.snapshotPage(SPACE, undefined, 100);
      expect(page.map((p) => p.id)).toEqual(['c', 'eve-1', 'eve-2', 'kept', 'new']);
      expect(canonicalState(page.find((p) => p.id === 'kept')?.state)).toBe(canonicalState(applyChanges(keptBefore?.state, [kept])));
      expect(canonicalState(page.find((p) => p.id === 'new')?.state)).toBe(canonicalState(applyChanges(undefined, [fresh])));
      await storage.mergeState(SPACE, [{ collection: 'events', id: 'gone', state: applyChanges(undefined, [old, late]) }]);
      page = await storage.snapshotPage(SPACE, undefined, 100);
      expect(canonicalState(page.find((p) => p.id === 'gone')?.state)).toBe(canonicalState(applyChanges(undefined, [late])));
      expect((await storage.usage(SPACE)).bytes).toBe(page.reduce((n, p) => n + encodeRecordState(p.state).length, 0));
    });

    it('lists the writers of a space with their progress, when last seen, and whether retired', async () => {
      const { storage } = await setup();
      await storage.noteWriter(SPACE, r('alice'), at(10), 1_000);
      await storage.noteWriter(SPACE, r('bob'), undefined, 2_000);
      ok((await storage.append([request('alice', [putAt('alice', 1, 11, 'a'), putAt('alice', 2, 12, 'b')])]))[0]);
      await storage.retire([r('bob')], 3_000);
      const writers = await storage.writers(SPACE);
      expect(writers.map(({ replica, seq, retired }) => ({ replica, seq, retired }))).toEqual([
        { replica: 'alice', seq: 2, retired: false },
        { replica: 'bob', seq: 0, retired: true },
      ]);
      expect(writers.find((w) => w.replica === 'bob')?.seen).toBe(2_000);
      expect(await storage.writers(OTHER)).toEqual([]);
    });

    it("raises the floors of local writers that another region was told (never lowers them, never makes a writer local), and lists each writer's floor and whether it is local", async () => {
      const { storage, another } = await setup();
      await storage.noteWriter(SPACE, r('alice'), at(10), 1_000);
      await storage.noteWriter(SPACE, r('bob'), at(30), 1_000);
      ok((await storage.append([request('eve', [putAt('eve', 1, 5, 'e')], SPACE, 'eu')]))[0]);
      await storage.raiseFloors(SPACE, [{ replica: r('alice'), hlc: at(20) }, { replica: r('bob'), hlc: at(25) }, { replica: r('eve'), hlc: at(90) }, { replica: r('nobody'), hlc: at(90) }], 5_000);
      await storage.raiseFloors(OTHER, [{ replica: r('alice'), hlc: at(99) }], 6_000);
      const writers = await (await another()).writers(SPACE);
      expect(writers.map(({ replica, floor, local, seen }) => ({ replica, floor, local, seen }))).toEqual([
        { replica: 'alice', floor: at(20), local: true, seen: 5_000 },
        { replica: 'bob', floor: at(30), local: true, seen: 5_000 },
        { replica: 'eve', floor: undefined, local: false, seen: expect.any(Number) },
      ]);
      expect(await storage.writers(OTHER)).toEqual([]);
      // The refusal level follows the raised floor: alice at 20 (eve, not local, holds nothing).
      expect((await storage.advanceHorizon(SPACE, at(100))).refused?.hlc ?? (await storage.stability(SPACE)).hlc).toBe(at(20));
      // A retired writer's floor is left as it was.
      await storage.retire([r('alice')], 7_000);
      await storage.raiseFloors(SPACE, [{ replica: r('alice'), hlc: at(80) }], 8_000);
      expect((await storage.writers(SPACE)).find((w) => w.replica === 'alice')).toMatchObject({ floor: at(20), retired: true, seen: 5_000 });
    });

    it('retires replicas for good: they no longer hold the horizon back and their pushes are refused with replica_retired', async () => {
      const { storage, another } = await setup();
      const alice = putAt('alice', 1, 10, 'x');
      const bob = putAt('bob', 1, 50, 'y');
      for (const result of await storage.append([request('alice', [alice]), request('bob', [bob])])) ok(result);
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual({ hlc: alice.hlc, upTo: 2 });
      expect(await storage.retire([r('alice')], 1_000)).toEqual([r('alice')]);
      expect(await storage.retire([r('alice'), r('nobody')], 2_000)).toEqual([r('nobody')]);
      expect(await storage.isRetired(r('alice'))).toBe(true);
      expect(await (await another()).isRetired(r('alice'))).toBe(true);
      expect(await storage.isRetired(r('bob'))).toBe(false);
      // alice no longer holds the horizon: bob's stamp does.
      expect(await storage.advanceHorizon(SPACE, at(100))).toEqual({ hlc: bob.hlc, upTo: 2 });
      // Her pushes are refused, in any space, storing nothing; bob's go on.
      const [here, elsewhere, his] = await storage.append([
        request('alice', [putAt('alice', 2, 200, 'x')]),
        request('alice', [putAt('alice', 1, 200, 'o', OTHER)], OTHER),
        request('bob', [putAt('bob', 2, 200, 'y')]),
      ]);
      refusedWith(here, 'replica_retired');
      refusedWith(elsewhere, 'replica_retired');
      expect(ok(his).stored.map((e) => e.pos)).toEqual([3]);
      expect((await storage.readLog(SPACE, 0, 100)).map((e) => e.change.replica)).toEqual(['alice', 'bob', 'bob']);
      expect(await storage.head(OTHER)).toBe(0);
      // With every writer retired, the horizon goes to the cap.
      await storage.retire([r('bob')], 3_000);
      // Listed in the order they were retired, in pages.
      await storage.retire([r('zed'), r('amy')], 3_000);
      expect(await storage.retiredList(0, 10)).toEqual({ replicas: ['alice', 'nobody', 'amy', 'bob', 'zed'], total: 5 });
      expect(await storage.retiredList(1, 2)).toEqual({ replicas: ['nobody', 'amy'], total: 5 });
      expect(await (await another()).retiredList(4, 10)).toEqual({ replicas: ['zed'], total: 5 });
      expect(await storage.advanceHorizon(SPACE, at(300))).toEqual({ hlc: at(300), upTo: 3 });
    });

    it('drops retired replicas’ merge-context entries that no sibling needs, from records changed since its mark or from all after new retirements', async () => {
      const { storage, another } = await setup();
      const state = async (id: string) => (await storage.snapshotPage(SPACE, undefined, 100)).find((p) => p.id === id)?.state.merge;
      const writers = (v: ReadonlyMap<string, number> | undefined) => [...(v?.keys() ?? [])].sort();
      // rec-1: alice, then bob after her, then carol after bob; dave concurrently with carol. rec-2: erin alone.
      const written = [
        request('alice', [versionAt('alice', 1, 1, 'rec-1', { n: 1 }, [])]),
        request('bob', [versionAt('bob', 1, 2, 'rec-1', { n: 2 }, [['alice', 1]])]),
        request('carol', [versionAt('carol', 1, 3, 'rec-1', { n: 3 }, [['alice', 1], ['bob', 1]])]),
        request('dave', [versionAt('dave', 1, 4, 'rec-1', { n: 4 }, [['alice', 1], ['bob', 1]])]),
        request('erin', [versionAt('erin', 1, 5, 'rec-2', { n: 5 }, [])]),
      ];
      for (const result of await storage.append(written)) ok(result);
      expect(writers((await state('rec-1'))?.seen)).toEqual(['alice', 'bob', 'carol', 'dave']);
      // Nobody retired: nothing to do.
      expect(await storage.trimRetired(SPACE, undefined)).toEqual({ head: 5, retired: 0, records: 0 });
      const bytesBefore = (await storage.usage(SPACE)).bytes;
      const siblingsBefore = (await state('rec-1'))?.siblings.map((v) => [v.replica, v.seq, v.hlc, v.value]);

      // alice, bob and dave retired: alice's and bob's entries go (superseded), dave's stays (his version is a sibling).
      await storage.retire([r('alice'), r('bob'), r('dave')], 1_000);
      const mark = await storage.trimRetired(SPACE, { head: 5, retired: 0 });
      expect(mark).toEqual({ head: 5, retired: 3, records: 1 });
      const trimmed = await state('rec-1');
      expect(writers(trimmed?.seen)).toEqual(['carol', 'dave']);
      for (const v of trimmed?.siblings ?? []) expect(writers(v.context)).toEqual([]);
      expect(trimmed?.siblings.map((v) => [v.replica, v.seq, v.hlc, v.value])).toEqual(siblingsBefore);
      expect((await storage.usage(SPACE)).bytes).toBeLessThan(bytesBefore);
      expect((await storage.stats()).recordBytes).toBe((await storage.usage(SPACE)).bytes);
      // Another storage over the same data sees it; a second call with the mark reads nothing changed.
      expect(writers((await (await another()).snapshotPage(SPACE, undefined, 100)).find((p) => p.id === 'rec-1')?.state.merge?.seen)).toEqual(['carol', 'dave']);
      expect(await storage.trimRetired(SPACE, mark)).toEqual({ head: 5, retired: 3, records: 0 });

      // carol writes after seeing everything (her context names the retired again, as an old replica's does): the
      // record changed after the mark, so the next call reads it; dave no longer holds a sibling, and his entry goes.
      ok((await storage.append([request('carol', [versionAt('carol', 2, 6, 'rec-1', { n: 6 }, [['alice', 1], ['bob', 1], ['carol', 1], ['dave', 1]])])]))[0]);
      expect(writers((await state('rec-1'))?.seen)).toEqual(['alice', 'bob', 'carol', 'dave']);
      expect(await storage.trimRetired(SPACE, mark)).toEqual({ head: 6, retired: 3, records: 1 });
      expect(writers((await state('rec-1'))?.seen)).toEqual(['carol']);
      expect((await state('rec-1'))?.siblings.map((v) => [v.replica, v.seq])).toEqual([['carol', 2]]);

      // A new retirement makes the next call read every record, also those older than the mark.
      await storage.retire([r('erin')], 2_000);
      expect(await storage.trimRetired(SPACE, { head: 6, retired: 3 })).toEqual({ head: 6, retired: 4, records: 0 }); // erin holds rec-2's sibling
      ok((await storage.append([request('carol', [versionAt('carol', 3, 7, 'rec-2', { n: 7 }, [['erin', 1]])])]))[0]);
      expect(await storage.trimRetired(SPACE, { head: 7, retired: 4 })).toEqual({ head: 7, retired: 4, records: 0 }); // nothing after 7
      expect(writers((await state('rec-2'))?.seen)).toEqual(['carol', 'erin']);
      expect(await storage.trimRetired(SPACE, undefined)).toEqual({ head: 7, retired: 4, records: 1 });
      expect(writers((await state('rec-2'))?.seen)).toEqual(['carol']);
    });

    it('lists the writers last seen before a time, over every space, except those kept and those retired', async () => {
      const { storage } = await setup();
      ok((await storage.append([request('active', [putAt('active', 1, 1, 'x')])]))[0]); // seen now
      await storage.noteWriter(SPACE, r('old'), undefined, 1_000);
      await storage.noteWriter(OTHER, r('old'), at(5), 2_000);
      await storage.noteWriter(OTHER, r('split'), undefined, 1_000);
      await storage.noteWriter(SPACE, r('split'), undefined, 9_000); // seen last in another space
      await storage.noteWriter(SPACE, r('kept'), undefined, 1_500);
      await storage.noteWriter(SPACE, r('recent'), undefined, 5_000);
      await storage.noteWriter(SPACE, r('recent'), undefined, 500); // never seen earlier than it was
      const inactive = async (before: number, keep: string[] = []) => (await storage.inactiveWriters(before, new Set(keep.map(r)))).sort();
      expect(await inactive(3_000)).toEqual(['kept', 'old']);
      expect(await inactive(3_000, ['kept'])).toEqual(['old']);
      expect(await inactive(2_000)).toEqual(['kept']);
      expect(await inactive(10_000)).toEqual(['kept', 'old', 'recent', 'split']);
      await storage.retire([r('old')], 10_000);
      expect(await inactive(10_000, ['split'])).toEqual(['kept', 'recent']);
    });
  });
}

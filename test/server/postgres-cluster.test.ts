/**
 * Several server instances on one PostgreSQL schema: a change accepted by one
 * reaches the clients of every other, in log order; replicas on different
 * instances converge; a client given every instance's URL keeps syncing when
 * its instance closes or is killed (kill -9 of a `syncline-server --postgres`
 * process), and nothing acknowledged is lost.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeAll, expect, it } from 'vitest';
import type { ReplicaId, SpaceId } from '@syncline/core/internal';
import type { SyncOptions } from '@syncline/client';
import { postgresStorage, type ServerStorage, type SyncServer, type SyncServerOptions } from '@syncline/server';
import {
  cleanupStack,
  countOf,
  isSynced,
  ManualClock,
  putChange,
  RawClient,
  recordingSocket,
  replica,
  startServer,
  sync,
  uniqueName,
  visibleState,
  waitUntil,
  within,
  withOverrides,
} from '../sync/harness.js';
import { buildDist, ROOT } from './fixtures/build.js';
import { spawnServer } from './fixtures/child.js';
import { describePg, freshSchema, PG_URL } from './fixtures/postgres.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

const schema = { events: {} } as const;

describePg('several server instances on one PostgreSQL', () => {
  beforeAll(() => buildDist(), 120_000);

  function schemaForTest(): string {
    const { schema: name, drop } = freshSchema();
    cleanup.push(drop);
    return name;
  }

  async function instance(schemaName: string, options: SyncServerOptions = {}): Promise<SyncServer> {
    const server = await startServer({ storage: postgresStorage({ connectionString: PG_URL, schema: schemaName, maxConnections: 5, onError: () => undefined }), ...options });
    cleanup.push(() => server.close());
    return server;
  }

  /**
   * Two instances, a writer W on A and a replica R on B, on one clock (moved past the floors, a minute
   * behind, by the tests); `socket`: R's WebSocket.
   */
  async function writerAndReader(tag: string, options: SyncServerOptions = {}, socket?: SyncOptions['WebSocket']) {
    const name = schemaForTest();
    const clock = new ManualClock(Date.now() - 60 * 60_000);
    const [a, b] = [await instance(name, { now: clock.now, ...options }), await instance(name, { now: clock.now, ...options })];
    return { clock, a, b, ...(await pairOn(a, b, tag, { now: clock.now, sync: { pingIntervalMs: 100 }, ...(socket ? { readerSocket: socket } : {}) })) };
  }

  /** A writer W syncing with `a` and a replica R syncing with `b` (closed after the test); `readerSocket`: R's WebSocket. */
  async function pairOn(a: SyncServer, b: SyncServer, tag: string, options: { now?: () => number; sync?: Partial<SyncOptions>; readerSocket?: SyncOptions['WebSocket'] } = {}) {
    const clock = options.now ? { now: options.now } : {};
    const w = await replica({ schema, name: uniqueName(`${tag}-w`), ...clock });
    const r = await replica({ schema, name: uniqueName(`${tag}-r`), ...clock });
    cleanup.push(() => w.close(), () => r.close());
    const sw = sync(w, a.url, options.sync);
    const sr = sync(r, b.url, { ...options.sync, ...(options.readerSocket ? { WebSocket: options.readerSocket } : {}) });
    cleanup.push(() => sw.close(), () => sr.close());
    return { w, r, sw, sr };
  }

  it('relays a change accepted by one instance to the clients of the other, in log order', async () => {
    const name = schemaForTest();
    const [a, b] = [await instance(name), await instance(name)];
    const space = 'cluster' as SpaceId;
    // Something in the log first: a session at position 0 is sent a snapshot, and this one must read the log.
    const seed = await RawClient.open(a.url);
    cleanup.push(() => seed.close());
    await seed.hello('seed' as ReplicaId, [{ space }]);
    seed.send({ type: 'push', space, changes: [1, 2].map((seq) => putChange('seed' as ReplicaId, space, seq, { seq })) });
    await seed.next('ack', (m) => m.upTo === 2);
    // A raw client of B that writes nothing: it must see every change, in log order.
    const watcher = await RawClient.open(b.url);
    cleanup.push(() => watcher.close());
    await watcher.hello('watcher' as ReplicaId, [{ space, after: 2 }]);
    await watcher.next('synced');

    // Writers on both instances at once, in several pushes each.
    const writers = await Promise.all(
      ['wa1', 'wa2', 'wb1'].map(async (id) => {
        const client = await RawClient.open(id.startsWith('wa') ? a.url : b.url);
        cleanup.push(() => client.close());
        await client.hello(id as ReplicaId, [{ space }]);
        return { id: id as ReplicaId, client };
      }),
    );
    const perWriter = 40;
    await Promise.all(
      writers.map(async ({ id, client }) => {
        for (let seq = 1; seq <= perWriter; seq += 4) {
          client.send({ type: 'push', space, changes: [0, 1, 2, 3].map((k) => putChange(id, space, seq + k, { n: seq + k }, { id: `${id}-${(seq + k) % 7}` })) });
          await client.next('ack', (m) => m.upTo === seq + 3, 0, 10_000);
        }
      }),
    );
    const total = perWriter * writers.length;
    const received = () => watcher.of('changes').flatMap((m) => m.changes);
    await waitUntil(() => received().length >= total, 15_000, () => `the watcher on B to receive ${total} changes (has ${received().length})`);

    const log = await b.storage.readLog(space, 2, 10_000);
    expect(log.map((e) => e.pos)).toEqual(Array.from({ length: total }, (_, i) => i + 3));
    // Exactly the log, in its order, each change once, no snapshot.
    expect(received().map((c) => `${c.replica}:${c.seq}`)).toEqual(log.map((e) => `${e.change.replica}:${e.change.seq}`));
    const upTos = watcher.of('changes').map((m) => m.upTo);
    expect(upTos).toEqual([...upTos].sort((x, y) => x - y));
    expect(new Set(upTos).size).toBe(upTos.length);
    expect(upTos[upTos.length - 1]).toBe(total + 2);
    expect(watcher.of('snapshot')).toEqual([]);
    // Changes from A reached B's client (not only B's own writer's).
    expect(received().filter((c) => c.replica.startsWith('wa')).length).toBe(2 * perWriter);

    // With nothing written through B, a change accepted by A still reaches B's client.
    const [wa1] = writers as [{ id: ReplicaId; client: RawClient }];
    wa1.client.send({ type: 'push', space, changes: [putChange(wa1.id, space, perWriter + 1, { last: true })] });
    await watcher.next('changes', (m) => m.upTo === total + 3, 0, 5_000);
    expect(received().at(-1)).toMatchObject({ replica: wa1.id, seq: perWriter + 1 });
  });

  it("a reader that joined an empty space reads the other instance's first commits from the log, each change once (no snapshot)", async () => {
    const name = schemaForTest();
    const [a, b] = [await instance(name), await instance(name)];
    const space = 'empty-first' as SpaceId;
    const watcher = await RawClient.open(b.url);
    cleanup.push(() => watcher.close());
    await watcher.hello('watcher' as ReplicaId, [{ space }]);
    await watcher.next('synced', (m) => m.upTo === 0);
    const writer = await RawClient.open(a.url);
    cleanup.push(() => writer.close());
    await writer.hello('writer' as ReplicaId, [{ space }]);
    // One change at a time, as apps write: B hears each commit and its first one finds no relay position yet.
    for (let seq = 1; seq <= 6; seq++) {
      writer.send({ type: 'push', space, changes: [putChange('writer' as ReplicaId, space, seq, { seq }, { id: `e${seq}` })] });
      await writer.next('ack', (m) => m.upTo === seq);
    }
    await watcher.next('changes', (m) => m.upTo === 6, 0, 10_000);
    expect(watcher.of('snapshot')).toEqual([]);
    expect(watcher.of('changes').flatMap((m) => m.changes.map((c) => c.seq))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a commit of the other instance notified while a catch-up ends (announcing the horizon) still reaches the client', async () => {
    const name = schemaForTest();
    const a = await instance(name);
    // B's storage: what its watch reported, and one stability read held until the test lets it go.
    const storage = postgresStorage({ connectionString: PG_URL, schema: name, maxConnections: 5, onError: () => undefined });
    let notified = 0;
    let hold: Promise<void> | undefined;
    let holding = false;
    const gated: ServerStorage = withOverrides(storage, {
      watch: (listener: (space: SpaceId, head: number) => void) =>
        storage.watch?.((space, head) => {
          notified = Math.max(notified, head);
          listener(space, head);
        }),
      stability: async (space: SpaceId) => {
        if (hold) {
          holding = true;
          const wait = hold;
          hold = undefined;
          await wait;
        }
        return storage.stability(space);
      },
    });
    const b = await startServer({ storage: gated });
    cleanup.push(() => b.close());
    // R's session catches up when it connects, and its catch-up ends by reading the horizon: held there,
    // while W's commits on A reach B.
    let release: () => void = () => undefined;
    hold = new Promise((resolve) => (release = resolve));
    const { w, r, sw, sr } = await pairOn(a, b, 'cluster');
    await waitUntil(() => isSynced(sr) && isSynced(sw), 10_000, 'both synced');
    await waitUntil(() => holding, 10_000, 'R’s catch-up to end at the horizon');
    await w.put('events', 'first', { n: 1 });
    await w.put('events', 'second', { n: 2 });
    await w.put('events', 'third', { n: 3 });
    await sw.flushed();
    const head = await a.storage.head(w.defaultSpace as SpaceId);
    await waitUntil(() => notified >= head, 10_000, 'B to hear of the third event while the catch-up is held');
    release();
    await waitUntil(async () => (await r.get('events', 'third')) !== undefined, 5_000, 'the third event to reach R');
    expect(await visibleState(r, ['events'])).toEqual(await visibleState(w, ['events']));
  });

  it('a session hears each horizon once, in order, however the commits of the other instance reach it', async () => {
    const rec = recordingSocket();
    const { clock, a, b, w, r, sw, sr } = await writerAndReader('cluster-h', {}, rec.factory);
    await w.put('events', 'gone', { n: 0 });
    await w.delete('events', 'gone');
    await sw.flushed();
    clock.value += 5 * 60_000;
    // A horizon past the delete (passes until the server's clock has moved past its stamp).
    await waitUntil(async () => (await a.collect()).collected > 0, 15_000, 'A to collect the deleted record');
    // One at a time, each read by R before the next.
    for (let i = 0; i < 10; i++) {
      await w.put('events', `e${i}`, { n: i });
      await waitUntil(async () => (await r.get('events', `e${i}`)) !== undefined, 10_000, `R to hold e${i}`);
    }
    await waitUntil(() => isSynced(sr), 10_000, 'R synced');
    // B's own pass tells what A's pass did (B relays A's commits from memory: no catch-up per commit tells it).
    await b.collect();
    await waitUntil(async () => (await r.stats()).tombstones === 0, 15_000, 'R to forget the deleted record');
    // Each horizon once, the last the current one.
    const told = rec.of('horizon').map((m) => m.hlc);
    expect(told.length).toBeLessThan(10);
    expect(told).toEqual([...new Set(told)].sort());
    expect(told.at(-1)).toBe((await b.storage.stability(w.defaultSpace as SpaceId)).hlc);
  });

  it('the clients of an instance whose pass forgot nothing (another instance did) still hear the horizon and forget too', async () => {
    const { clock, a, b, w, r, sw, sr } = await writerAndReader('cluster-g', { gc: { intervalMs: 0 } });
    await w.put('events', 'gone', { n: 0 });
    await w.delete('events', 'gone');
    await sw.flushed();
    await waitUntil(async () => isSynced(sr) && (await r.stats()).tombstones === 1, 10_000, 'R to hold the delete');

    // A's pass forgets the record; nothing is written after it, so no catch-up on B tells R.
    clock.value += 5 * 60_000;
    await waitUntil(async () => (await a.collect()).collected > 0, 5_000, 'A to forget the deleted record');
    expect((await r.stats()).tombstones).toBe(1);
    // B's own pass (its timer) finds nothing left to forget, and tells its clients the horizon.
    expect((await b.collect()).collected).toBe(0);
    await waitUntil(async () => (await r.stats()).tombstones === 0, 5_000, 'R, a client of B, to forget the record');
    expect(await visibleState(r, ['events'])).toEqual(await visibleState(w, ['events']));
  });

  it("relays another instance's commits to its readers from one read of the log: statements per write do not grow with the readers", async () => {
    const name = schemaForTest();
    /** B's pool, counting every statement sent through it. */
    class CountingPool extends pg.Pool {
      statements = 0;
      // pool.query() connects with a callback (counted as one statement by query below); the storage's own
      // transactions connect without one, and each statement of theirs is counted on the client.
      override connect(...args: unknown[]): never {
        if (args.length > 0) return (super.connect as (...a: unknown[]) => never)(...args);
        return this.#counted() as never;
      }
      async #counted(): Promise<pg.PoolClient> {
        const client = await super.connect();
        const marked = client as pg.PoolClient & { counted?: boolean };
        if (!marked.counted) {
          marked.counted = true;
          const query = client.query.bind(client) as (...args: unknown[]) => unknown;
          (client as { query: unknown }).query = (...args: unknown[]) => {
            this.statements++;
            return query(...args);
          };
        }
        return client;
      }
      override query(...args: unknown[]): never {
        this.statements++;
        return (super.query as (...a: unknown[]) => never)(...args);
      }
    }
    const pool = new CountingPool({ connectionString: PG_URL, max: 5 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end());
    const a = await instance(name);
    const b = await startServer({ storage: postgresStorage({ pool, schema: name, onError: () => undefined }) });
    cleanup.push(() => b.close());
    const space = 'hot' as SpaceId;
    const writer = await RawClient.open(a.url);
    cleanup.push(() => writer.close());
    await writer.hello('hot-writer' as ReplicaId, [{ space }]);
    // The space exists before the readers come: they resume from its log (a position), not a snapshot.
    writer.send({ type: 'push', space, changes: [putChange('hot-writer' as ReplicaId, space, 1, { k: 0 })] });
    await writer.next('ack', (m) => m.upTo >= 1, 0, 10_000);
    await waitUntil(async () => (await b.storage.head(space)) === 1, 10_000, 'B to see the first write');
    let seq = 1;
    /** Statements B sends per write, with `readers` of the space connected to B; every reader receives every write. */
    const perWrite = async (readers: number): Promise<number> => {
      const raws = await Promise.all(Array.from({ length: readers }, () => RawClient.open(b.url)));
      cleanup.push(...raws.map((raw) => () => raw.close()));
      const head = await b.storage.head(space);
      await Promise.all(raws.map((raw, i) => raw.hello(uniqueName(`hot-reader-${readers}-${i}`) as ReplicaId, [{ space, after: head }])));
      await Promise.all(raws.map((raw) => raw.next('synced', () => true, 0, 10_000)));
      const before = pool.statements;
      const writes = 20;
      for (let k = 0; k < writes; k++) {
        seq++;
        writer.send({ type: 'push', space, changes: [putChange('hot-writer' as ReplicaId, space, seq, { k })] });
        await writer.next('ack', (m) => m.upTo >= seq, 0, 10_000);
        const upTo = await a.storage.head(space);
        await Promise.all(raws.map((raw) => raw.next('changes', (m) => m.upTo >= upTo, 0, 10_000)));
      }
      const statements = (pool.statements - before) / writes;
      await Promise.all(raws.map((raw) => raw.close()));
      return statements;
    };
    const few = await perWrite(2);
    const many = await perWrite(16);
    console.log(`statements on B per remote write: ${few.toFixed(2)} with 2 readers, ${many.toFixed(2)} with 16`);
    // One read of the log per remote commit (and what B's own timers do), whatever the readers: not 5 per reader.
    expect(few).toBeLessThan(4);
    expect(many).toBeLessThan(4);
  });

  it('converges replicas connected to different instances', async () => {
    const name = schemaForTest();
    const [a, b] = [await instance(name), await instance(name)];
    const replicas = await Promise.all([0, 1, 2, 3].map(() => replica({ schema, name: uniqueName('cluster') })));
    const engines = replicas.map((r, i) => sync(r, (i % 2 === 0 ? a : b).url));
    cleanup.push(...replicas.map((r) => () => r.close()), ...engines.map((e) => () => e.close()));
    // Concurrent writes to the same records from both sides.
    await Promise.all(
      replicas.map(async (r, i) => {
        for (let round = 0; round < 10; round++) {
          await r.batch((w) => {
            for (let k = 0; k < 3; k++) w.put('events', `e${(round * 3 + k) % 12}`, { by: i, round });
          });
        }
      }),
    );
    let differ: string[] = [];
    await waitUntil(
      async () => {
        if (!engines.every(isSynced)) return false;
        const states = await Promise.all(replicas.map((r) => visibleState(r, ['events'])));
        differ = states.map((s, i) => `replica ${i}: ${s.filter((row) => !states[0]?.includes(row)).length} rows unlike replica 0's`);
        return states.every((s) => JSON.stringify(s) === JSON.stringify(states[0]));
      },
      15_000,
      () => `the four replicas to converge (${engines.map((e) => e.status.state).join(', ')}; ${differ.join(', ')})`,
    );
    expect(await countOf(replicas[0] as (typeof replicas)[number], 'events')).toBe(12);
    expect(await a.storage.head(replicas[0]?.defaultSpace as SpaceId)).toBe(4 * 10 * 3);
  });

  it('three instances, writers on each writing one change at a time: every replica converges (commits of the others relayed from one read each)', async () => {
    const name = schemaForTest();
    const instances = [await instance(name), await instance(name), await instance(name)];
    const replicas = await Promise.all(Array.from({ length: 6 }, () => replica({ schema, name: uniqueName('tri') })));
    const engines = replicas.map((r, i) => sync(r, (instances[i % 3] as SyncServer).url));
    cleanup.push(...replicas.map((r) => () => r.close()), ...engines.map((e) => () => e.close()));
    await waitUntil(() => engines.every(isSynced), 10_000, 'every replica synced');
    await Promise.all(
      replicas.map(async (r, i) => {
        for (let k = 0; k < 40; k++) {
          // Own records, and every fourth write to a record all of them write.
          await r.put('events', k % 4 === 0 ? `shared${k % 8}` : `r${i}-${k}`, { by: i, k });
          if (Math.random() < 0.3) await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 5)));
          else await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    await waitUntil(
      async () => {
        if (!engines.every(isSynced)) return false;
        const states = await Promise.all(replicas.map((r) => visibleState(r, ['events'])));
        return states.every((st) => JSON.stringify(st) === JSON.stringify(states[0]));
      },
      20_000,
      'the six replicas to converge',
    );
    expect(await countOf(replicas[0] as (typeof replicas)[number], 'events')).toBe(6 * 30 + 2);
  });

  it("a reader of the other instance gets every change when the log is compacted under the instance's read of it", async () => {
    const name = schemaForTest();
    const [a, b] = [await instance(name), await instance(name)];
    const { w, r, sw, sr } = await pairOn(a, b, 'compact');
    await waitUntil(() => isSynced(sw) && isSynced(sr), 10_000, 'both synced');
    // One write at a time, the log compacted to its head every few: B's read of A's commits finds them gone
    // (then its readers catch up from a snapshot) or reads them (then relays them).
    for (let i = 0; i < 40; i++) {
      await w.put('events', `c${i % 15}`, { i });
      if (i % 4 === 3) {
        await sw.flushed();
        await a.compact(0);
      }
    }
    await sw.flushed();
    await waitUntil(async () => isSynced(sr) && JSON.stringify(await visibleState(r, ['events'])) === JSON.stringify(await visibleState(w, ['events'])), 15_000, 'R to hold what W wrote');
    expect(await countOf(r, 'events')).toBe(15);
  });

  it('fails a client over to the other instance when its instance closes, losing nothing acknowledged', async () => {
    const name = schemaForTest();
    const [a, b] = [await instance(name), await instance(name)];
    const writer = await replica({ schema, name: uniqueName('failover-writer') });
    const reader = await replica({ schema, name: uniqueName('failover-reader') });
    cleanup.push(() => writer.close(), () => reader.close());
    let closing: Promise<void> | undefined;
    const rec = recordingSocket((message) => {
      if (message.type === 'ack' && message.upTo >= 60) closing ??= a.close();
    });
    const sw = sync(writer, [a.url, b.url], { WebSocket: rec.factory, batchSize: 10 });
    const sr = sync(reader, b.url);
    cleanup.push(() => sw.close(), () => sr.close());
    await waitUntil(() => a.connections === 1, 5_000, 'the writer to connect to A (its first URL)');

    const writing = (async () => {
      for (let batch = 0; batch < 20; batch++) {
        await writer.batch((w) => {
          for (let k = 0; k < 10; k++) w.put('events', `e${batch * 10 + k}`, { n: batch * 10 + k });
        });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await waitUntil(() => closing !== undefined, 10_000, 'the writer to pass seq 60 on A');
    await closing;
    const acked = Math.max(...rec.of('ack').map((m) => m.upTo));
    await writing;
    await waitUntil(async () => isSynced(sw) && isSynced(sr) && (await countOf(reader, 'events')) === 200, 15_000, 'all 200 events to reach the reader through B');
    expect(b.connections).toBe(2); // the writer is on B now
    const log = await b.storage.readLog(writer.defaultSpace as SpaceId, 0, 10_000);
    // Every change once, in seq order, including every one acknowledged by A before it closed.
    expect(log.map((e) => e.change.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(acked).toBeGreaterThanOrEqual(60);
  });

  it('fails a client over when its `syncline-server --postgres` process is killed (kill -9)', async () => {
    const name = schemaForTest();
    const bin = join(ROOT, 'packages/server/bin/syncline-server.js');
    const args = [bin, '--port', '0', '--postgres', PG_URL, '--postgres-schema', name, '--log-level', 'info'];
    const [childA, childB] = await Promise.all([spawnServer(args), spawnServer(args)]);
    cleanup.push(
      () => childA.process.kill('SIGKILL'),
      () => childB.process.kill('SIGKILL'),
    );
    const [urlA, urlB] = [childA, childB].map((c) => `ws://127.0.0.1:${c.port}/sync`) as [string, string];
    const writer = await replica({ schema, name: uniqueName('kill-writer') });
    const reader = await replica({ schema, name: uniqueName('kill-reader') });
    cleanup.push(() => writer.close(), () => reader.close());
    let killed = false;
    const rec = recordingSocket((message) => {
      if (message.type === 'ack' && message.upTo >= 60 && !killed) {
        killed = true;
        childA.process.kill('SIGKILL');
      }
    });
    const sw = sync(writer, [urlA, urlB], { WebSocket: rec.factory, batchSize: 10 });
    const sr = sync(reader, urlB);
    cleanup.push(() => sw.close(), () => sr.close());

    const writing = (async () => {
      for (let batch = 0; batch < 20; batch++) {
        await writer.batch((w) => {
          for (let k = 0; k < 10; k++) w.put('events', `e${batch * 10 + k}`, { n: batch * 10 + k });
        });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await waitUntil(() => killed, 10_000, 'the writer to pass seq 60 on A');
    expect(await within(childA.exited, 5_000, 'A to die')).toEqual({ code: null, signal: 'SIGKILL' });
    const acked = Math.max(...rec.of('ack').map((m) => m.upTo));
    await writing;
    await waitUntil(async () => isSynced(sw) && isSynced(sr) && (await countOf(reader, 'events')) === 200, 20_000, 'all 200 events to reach the reader through B');
    expect(rec.sockets.length).toBeGreaterThanOrEqual(2); // reconnected (to B: A is gone)
    expect(acked).toBeGreaterThanOrEqual(60);

    // The database holds every change once, in seq order: everything A acknowledged survived its death.
    const check = postgresStorage({ connectionString: PG_URL, schema: name, maxConnections: 1 });
    cleanup.push(() => check.close());
    const log = await check.readLog(writer.defaultSpace as SpaceId, 0, 10_000);
    expect(log.map((e) => e.change.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(log.map((e) => e.pos)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });
});

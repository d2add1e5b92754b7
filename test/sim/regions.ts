/**
 * The simulation with regions: two or three regions, each the real
 * @syncline/server on its own SQLite file with its own (skewed) clock, linked
 * all-to-all over the simulated network; replicas (the real @syncline/client on
 * fake-indexeddb) given every region's URL, home region first, so that every
 * dropped connection fails them over to the next region, mid-push or not. The
 * plan cuts and heals replicas and links, partitions replicas from one region
 * or from all, crashes and restarts regions and, in some runs, destroys one
 * region's database for good while every replica pushes with `quorum:2`.
 * Everything runs in virtual time from one seed, so a run replays exactly.
 *
 * Checks, after the network heals and the system goes quiet: each change is in
 * each surviving region's log exactly once; nothing any replica wrote is lost
 * (and, with quorum:2, nothing a region acknowledged, whatever happened to it);
 * every replica converges to what the oracle computes from the union of the
 * changes, and every region to the same record states; a replica's per-origin
 * positions never go backwards.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReplica, indexedDbStorage, type Replica } from '@syncline/client';
import { canonicalState, collectibleAt, decodeDownstream, formatTimestamp, hlcWall, type Change, type Durability, type HlcString, type Json, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { createSyncServer, sqliteStorage, type AppendResult, type ServerStorage, type SyncServer } from '@syncline/server';
import 'fake-indexeddb/auto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { pino } from 'pino';
import { checkConvergence, firstDifference, withoutHistory } from './dump.js';
import { SimNetwork, type CutMode } from './network.js';
import { Background, drive, editCrdt, enqueue, Failure } from './common.js';
import { Rng } from './rng.js';
import { VirtualTime } from './virtual-time.js';
import { randomOp, SCHEMA, type Op } from './workload.js';
import { webSocketConnect } from '../../packages/client/src/sync/connection.js';
import { Pusher } from '../../packages/client/src/sync/pusher.js';
import { positionKey, readCursor } from '../../packages/client/src/meta.js';
import { portOf, storageOf } from '../internals.js';

/** Bugs the regions simulation must find (test/sim/regions-planted.test.ts). */
export type RegionsBug =
  /** A region's log reader skips an entry it sends over a link. */
  | 'link-skips-entry'
  /** The client lets a change go at the first region's ack under quorum:2 (its pusher ignores `stable`). */
  | 'quorum-drop'
  /** No anti-entropy: a region's reads of other origins for a repair come back empty. */
  | 'no-repair'
  /** Each region's refusal level follows a time to live (every writer is taken to have passed `now - TTL`), not its writers. */
  | 'gc-by-ttl'
  /** Regions ignore the floors their peers tell them (link `floors`): a writer that moved on holds the region it left. */
  | 'no-floors';

/** The planted 'gc-by-ttl' bug's time to live (virtual ms). */
const PLANTED_TTL_MS = 30_000;

export interface RegionsConfig {
  readonly regions: number;
  /** Each region's server clock error, ms (NTP-synced servers: seconds, either way). */
  readonly regionSkews: readonly number[];
  readonly replicas: number;
  readonly spaces: readonly string[];
  readonly follows: ReadonlyArray<readonly string[]>;
  /** Each replica's home region: the first of its URLs. */
  readonly home: readonly number[];
  readonly durability: readonly Durability[];
  /** Device clock errors. */
  readonly skews: readonly number[];
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly duplicate: number;
  /** One region's database is destroyed during the run (every replica pushes with quorum:2). */
  readonly destroy: boolean;
  /** The last region starts mid-run, after the others compacted: it catches up from their state. */
  readonly late: boolean;
}

export type RegionsAction =
  | { readonly t: 'wait'; readonly ms: number }
  | { readonly t: 'op'; readonly replica: number; readonly space: string; readonly op: Op }
  /** Replicas cut off from every region. */
  | { readonly t: 'partition'; readonly replicas: readonly number[]; readonly mode: CutMode }
  /** One replica cut off from one region: it fails over. */
  | { readonly t: 'isolate'; readonly replica: number; readonly region: number; readonly mode: CutMode }
  | { readonly t: 'cut'; readonly replica: number; readonly mode: CutMode }
  /** The link by which `from` follows `to` is cut, and stays down until a heal. */
  | { readonly t: 'cut-link'; readonly from: number; readonly to: number; readonly mode: CutMode }
  | { readonly t: 'heal' }
  | { readonly t: 'crash-region'; readonly region: number }
  | { readonly t: 'restart-region'; readonly region: number }
  | { readonly t: 'restart-replica'; readonly replica: number }
  /** The region's database is gone: it never comes back. */
  | { readonly t: 'destroy-region'; readonly region: number }
  /** A region that was not started yet starts (config.late). */
  | { readonly t: 'start-region'; readonly region: number }
  /** The region compacts its log (keeping what its followers have not stored). */
  | { readonly t: 'compact'; readonly region: number; readonly keepLast: number };

export interface RegionsStats {
  ops: number;
  faults: number;
  regionCrashes: number;
  regionRestarts: number;
  destroyed: number;
  failovers: number;
  linkCuts: number;
  /** Log entries compaction removed. */
  compacted: number;
  /** Peer states merged by a region below a peer's horizon. */
  merges: number;
  /** Deleted records regions forgot below their collection horizons (gc passes). */
  collected: number;
  /** Replicas retired by a region that refused their push below its level, each going on under a new id. */
  rejoins: number;
  frames: number;
  changes: number;
  virtualMs: number;
}

export interface RegionsResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failures: readonly string[];
  readonly config: RegionsConfig;
  readonly plan: readonly RegionsAction[];
  readonly digest: string;
  readonly stats: RegionsStats;
}

const T0 = Date.UTC(2026, 0, 1);
const NAMES = ['a', 'b', 'c'];
const SETTLE_LIMIT_MS = 30 * 60_000;
/** How often each region runs a collection pass (virtual ms). */
const GC_INTERVAL_MS = 5_000;
/** How long the run goes on with nothing written after its first checks, for every horizon to pass every delete. */
const SETTLE_GC_MS = 3 * 60_000;
const QUIESCE_LIMIT_MS = 60 * 60_000;
const silent = pino({ level: 'silent' });

export function makeRegionsConfig(rng: Rng): RegionsConfig {
  const regions = rng.between(2, 3);
  const replicas = rng.between(3, 6);
  const spaces = ['alpha', 'beta'].slice(0, rng.between(1, 2));
  const follows = Array.from({ length: replicas }, (_, i) => (i < 2 ? spaces : rng.subset(spaces).length > 0 ? rng.subset(spaces) : [spaces[0] as string]));
  // Destroying a region loses what only it held unless every writer asked for a second region: those runs use quorum:2.
  // With two regions, quorum:2 cannot be met once one is gone (those writes wait for it for good): three.
  const destroy = regions === 3 && rng.chance(0.4);
  const minDelayMs = rng.between(1, 20);
  return {
    regions,
    regionSkews: Array.from({ length: regions }, () => (rng.chance(0.5) ? 0 : (rng.chance(0.5) ? -1 : 1) * rng.between(1, 20_000))),
    replicas,
    spaces,
    follows: follows.map((f) => [...new Set(f)].sort()),
    home: Array.from({ length: replicas }, (_, i) => i % regions),
    durability: Array.from({ length: replicas }, () => (destroy || rng.chance(0.4) ? 'quorum:2' : 'region')),
    skews: Array.from({ length: replicas }, () => (rng.chance(0.4) ? 0 : (rng.chance(0.5) ? -1 : 1) * rng.between(1_000, 6 * 3_600_000))),
    minDelayMs,
    maxDelayMs: minDelayMs + rng.between(5, 300),
    duplicate: rng.chance(0.5) ? 0 : 0.02,
    destroy,
    late: regions === 3 && !destroy && rng.chance(0.5),
  };
}

export function makeRegionsPlan(rng: Rng, config: RegionsConfig, steps: number): RegionsAction[] {
  const plan: RegionsAction[] = [];
  const everyone = Array.from({ length: config.replicas }, (_, i) => i);
  const mode = (): CutMode => rng.pick(['hard', 'half-open', 'soft'] as const);
  const other = (region: number): number => (region + 1 + rng.int(config.regions - 1)) % config.regions;
  for (let i = 0; i < steps; i++) {
    const roll = rng.next();
    if (roll < 0.5) {
      const replica = rng.int(config.replicas);
      plan.push({ t: 'op', replica, space: rng.pick(config.follows[replica] as readonly string[]), op: randomOp(rng, { largeValues: false }) });
    } else if (roll < 0.72) {
      plan.push({ t: 'wait', ms: rng.chance(0.1) ? rng.between(10_000, 5 * 60_000) : rng.between(1, 800) });
    } else {
      const f = rng.next();
      const replica = rng.int(config.replicas);
      const region = rng.int(config.regions);
      if (f < 0.1) plan.push({ t: 'partition', replicas: rng.subset(everyone), mode: mode() });
      else if (f < 0.28) plan.push({ t: 'isolate', replica, region: config.home[replica] as number, mode: mode() });
      else if (f < 0.4) plan.push({ t: 'cut', replica, mode: mode() });
      else if (f < 0.6) plan.push({ t: 'cut-link', from: other(region), to: region, mode: mode() });
      else if (f < 0.75) plan.push({ t: 'heal' });
      else if (f < 0.85) plan.push({ t: 'crash-region', region });
      else if (f < 0.92) plan.push({ t: 'restart-region', region });
      else if (f < 0.96) plan.push({ t: 'compact', region, keepLast: rng.between(0, 5) });
      else plan.push({ t: 'restart-replica', replica });
    }
  }
  if (config.late) {
    // The others compact (they know no follower in the late region), then it starts.
    const at = rng.between(Math.floor(steps / 3), Math.floor((2 * steps) / 3));
    const late = config.regions - 1;
    plan.splice(at, 0, ...Array.from({ length: late }, (_, region): RegionsAction => ({ t: 'compact', region, keepLast: rng.between(0, 3) })), { t: 'start-region', region: late });
    for (let i = 0; i < plan.length; i++) {
      const action = plan[i] as RegionsAction;
      const touches = 'region' in action && action.region === late && action.t !== 'start-region';
      if (i < at && (touches || (action.t === 'cut-link' && (action.from === late || action.to === late)))) plan[i] = { t: 'wait', ms: 100 };
    }
  }
  if (config.destroy) {
    // The region to destroy is cut off from its followers for a while first, so that it holds changes
    // nobody else has when its disk goes: what quorum:2 is for.
    const victim = rng.int(config.regions);
    const cutAt = rng.between(Math.floor(steps / 4), Math.floor(steps / 2));
    const destroyAt = rng.between(cutAt + 5, steps);
    const cuts: RegionsAction[] = [];
    for (let from = 0; from < config.regions; from++) if (from !== victim) cuts.push({ t: 'cut-link', from, to: victim, mode: 'hard' });
    plan.splice(destroyAt, 0, { t: 'destroy-region', region: victim });
    plan.splice(cutAt, 0, ...cuts);
    // No heal between the cut and the destruction.
    for (let i = cutAt + cuts.length; i < plan.length && plan[i]?.t !== 'destroy-region'; i++) if (plan[i]?.t === 'heal') plan[i] = { t: 'wait', ms: 100 };
  }
  return plan;
}

export function describeRegionsAction(action: RegionsAction): string {
  switch (action.t) {
    case 'op':
      return `r${action.replica} ${action.space} ${JSON.stringify(action.op)}`;
    case 'wait':
      return `wait ${action.ms} ms`;
    case 'partition':
      return `partition [${action.replicas.map((r) => `r${r}`).join(' ')}] from every region (${action.mode})`;
    case 'isolate':
      return `cut r${action.replica} off from region ${NAMES[action.region]} (${action.mode})`;
    case 'cut':
      return `cut r${action.replica} (${action.mode})`;
    case 'cut-link':
      return `cut the link ${NAMES[action.from]} follows ${NAMES[action.to]} by (${action.mode})`;
    case 'crash-region':
    case 'restart-region':
    case 'start-region':
    case 'destroy-region':
      return `${action.t} ${NAMES[action.region]}`;
    case 'restart-replica':
      return `restart r${action.replica}`;
    case 'compact':
      return `compact region ${NAMES[action.region]}'s log to its last ${action.keepLast} entries`;
    default:
      return action.t;
  }
}

/** A region: one server process on one SQLite file, reachable on its own network. */
interface Region {
  readonly index: number;
  readonly name: string;
  readonly url: string;
  readonly network: SimNetwork;
  readonly dbPath: string;
  readonly skew: number;
  server: SyncServer | undefined;
  storage: ServerStorage | undefined;
  /** The storage the running process uses is dead (killed): nothing more reaches the file. */
  dead: { value: boolean };
  destroyed: boolean;
  starting: boolean;
  epoch: number;
  /** Every change committed to the region's log, by space and position (what compaction drops stays here). */
  readonly archive: Map<string, Map<number, Change>>;
  /** Per space, the positions that stand for a merged peer state, and per replica the seqs those states hold. */
  readonly merged: Map<string, { readonly positions: Set<number>; readonly progress: Map<string, number> }>;
  /**
   * Replicas that pushed a change this region stored, per space ("replica\0space"): writers that hold its refusal level there, so it never refuses
   * (and retires) one of them (a region whose disk is destroyed never comes back, so this is never forgotten).
   */
  readonly writers: Set<string>;
}

/** What a region's log of a space holds (RegionsWorld.#log). */
interface RegionLog {
  /** Every change committed, in position order. */
  readonly changes: Change[];
  /** How often each change (replica:seq) was committed. */
  readonly counts: Map<string, number>;
  /** Per replica, the seqs held by merged peer states. */
  readonly mergedProgress: ReadonlyMap<string, number>;
}

interface Slot {
  readonly index: number;
  readonly name: string;
  readonly spaces: readonly SpaceId[];
  readonly factory: IDBFactory;
  readonly rng: Rng;
  readonly skew: number;
  readonly urls: readonly string[];
  replica: Replica | undefined;
  chain: Promise<void>;
  busy: number;
  /** The region of the last welcome (a failover is a welcome from another). */
  region: string | undefined;
  /** Per space, the highest per-origin positions seen in the replica's stored cursor. */
  readonly origins: Map<string, Map<string, number>>;
}

class RegionsWorld {
  readonly time = new VirtualTime(T0);
  readonly rng: Rng;
  readonly bugRng: Rng;
  readonly config: RegionsConfig;
  readonly regions: Region[];
  readonly slots: Slot[];
  readonly dir: string;
  readonly failures: string[] = [];
  readonly stats: RegionsStats = { ops: 0, faults: 0, regionCrashes: 0, regionRestarts: 0, destroyed: 0, failovers: 0, linkCuts: 0, compacted: 0, merges: 0, collected: 0, rejoins: 0, frames: 0, changes: 0, virtualMs: 0 };
  readonly hash = createHash('sha256');
  /** (replica id, space) → the highest seq a region said is held at the replica's durability (`stable`, or `upTo` at `region`). */
  readonly stable = new Map<string, number>();
  readonly #background = new Background((message) => this.fail(message));

  constructor(
    readonly seed: number,
    readonly bug: RegionsBug | undefined,
  ) {
    const root = new Rng(seed);
    this.rng = root.fork('runtime');
    this.bugRng = root.fork('bug');
    this.config = makeRegionsConfig(root.fork('config'));
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    this.dir = mkdtempSync(join(base, 'syncline-regions-'));
    const { minDelayMs, maxDelayMs, duplicate } = this.config;
    this.regions = this.config.regionSkews.map((skew, index) => {
      const name = NAMES[index] as string;
      const network = new SimNetwork(this.rng.fork(`network-${name}`), { minDelayMs, maxDelayMs, duplicate });
      network.onFrame = (event) => this.#observe(name, event.dir, event.client, event.bytes);
      return { index, name, url: `ws://${name}/sync`, network, dbPath: join(this.dir, `${name}.db`), skew, server: undefined, storage: undefined, dead: { value: false }, destroyed: false, starting: false, epoch: 0, archive: new Map(), merged: new Map(), writers: new Set() };
    });
    this.slots = this.config.skews.map((skew, index) => {
      const home = this.config.home[index] as number;
      const urls = this.regions.map((_, i) => (this.regions[(home + i) % this.regions.length] as Region).url);
      return {
        index,
        name: `r${index}`,
        spaces: (this.config.follows[index] as readonly string[]).map((s) => s as SpaceId),
        factory: new IDBFactory(),
        rng: root.fork(`replica-${index}`),
        skew,
        urls,
        replica: undefined,
        chain: Promise.resolve(),
        busy: 0,
        region: undefined,
        origins: new Map(),
      };
    });
  }

  fail(message: string): void {
    this.failures.push(message);
  }

  #observe(region: string, dir: 'up' | 'down', client: string, bytes: Uint8Array): void {
    this.hash.update(`${this.time.now}|${region}|${dir}|${client}|`).update(bytes);
    if (dir !== 'down' || client.startsWith('link:')) return;
    let message;
    try {
      message = decodeDownstream(bytes);
    } catch {
      return;
    }
    const slot = this.slots.find((s) => s.name === client);
    if (!slot) return;
    if (message.type === 'welcome') {
      if (slot.region !== undefined && slot.region !== region) this.stats.failovers++;
      slot.region = region;
    }
    // A writer a region holds its level for is never refused below it there (DESIGN.md, "Stability").
    if (message.type === 'error' && message.code === 'replica_retired' && slot.replica && this.regions.find((r) => r.name === region)?.writers.has(`${slot.replica.id}\u0000${message.space ?? ''}`)) {
      this.fail(`${client} pushed changes that region ${region} stored, and was retired there for a push below its level: it passed a writer that holds it back (${message.message})`);
    }
    if (message.type === 'ack' && slot.replica) {
      const durability = this.config.durability[slot.index];
      const held = durability === 'region' ? message.upTo : message.stable;
      if (held === undefined) return;
      const key = `${slot.replica.id}\u0000${message.space}`;
      this.stable.set(key, Math.max(this.stable.get(key) ?? 0, held));
    }
  }

  // ---- regions --------------------------------------------------------------------

  #regionOf(url: string): Region {
    const host = new URL(url).host;
    const region = this.regions.find((r) => r.name === host);
    if (!region) throw new Error(`no region at ${url}`);
    return region;
  }

  /** Storage that dies with its process (a kill), and carries the planted link bug. */
  #storage(region: Region): ServerStorage {
    const inner = sqliteStorage({ path: region.dbPath });
    const dead = { value: false };
    region.dead = dead;
    const skipsEntries = this.bug === 'link-skips-entry' ? this.bugRng : undefined;
    const noRepair = this.bug === 'no-repair';
    const byTtl = this.bug === 'gc-by-ttl';
    const noFloors = this.bug === 'no-floors';
    const stats = this.stats;
    const archive = (pos: number, change: Change): void => {
      let log = region.archive.get(change.space);
      if (!log) region.archive.set(change.space, (log = new Map()));
      if (log.has(pos)) this.fail(`region ${region.name}: position ${pos} of ${change.space} was assigned twice`);
      log.set(pos, change);
    };
    return new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function' || property === 'close') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) => {
          if (dead.value) return Promise.reject(new Error('the server process is gone'));
          const origin = property === 'readLog' ? (args[4] as { origin?: string } | undefined)?.origin : undefined;
          if (noRepair && origin !== undefined && origin !== '') return Promise.resolve([]);
          if (noFloors && property === 'raiseFloors') return Promise.resolve();
          if (byTtl && property === 'advanceHorizon') {
            // Every writer that said hello here is taken to have passed now - TTL, however long it has been away.
            const [space] = args as [SpaceId];
            const ttl = formatTimestamp({ wall: (args[1] as string) ? hlcWall(args[1] as HlcString) - PLANTED_TTL_MS : 0, counter: 0, replica: '0' as ReplicaId });
            return target
              .writers(space)
              .then((writers) => Promise.all(writers.filter((w) => w.local).map((w) => target.noteWriter(space, w.replica, ttl, hlcWall(args[1] as HlcString)))))
              .then(() => (value as (...a: unknown[]) => unknown).apply(target, args));
          }
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (property === 'mergeState' && args[2] !== undefined) {
            const [space, , final] = args as [string, unknown, { progress: ReadonlyMap<string, number> }];
            return (result as Promise<number>).then((head) => {
              let merged = region.merged.get(space);
              if (!merged) region.merged.set(space, (merged = { positions: new Set(), progress: new Map() }));
              merged.positions.add(head);
              stats.merges++;
              for (const [replica, seq] of final.progress) merged.progress.set(replica, Math.max(merged.progress.get(replica) ?? 0, seq));
              return head;
            });
          }
          if (property === 'collect') {
            return (result as Promise<number>).then((n) => {
              stats.collected += n;
              return n;
            });
          }
          if (property === 'append') {
            const requests = args[0] as ReadonlyArray<{ readonly replica: string; readonly space: string; readonly origin?: string }>;
            return (result as Promise<Array<AppendResult | Error>>).then((results) => {
              results.forEach((r, i) => {
                const request = requests[i];
                if (!(r instanceof Error) && r.stored.length > 0 && request && (request.origin ?? '') === '') region.writers.add(`${request.replica}\u0000${request.space}`);
              });
              for (const r of results) if (!(r instanceof Error)) for (const entry of r.stored) archive(entry.pos, entry.change);
              return results;
            });
          }
          if (skipsEntries && origin === '') {
            return (result as Promise<unknown[]>).then((entries) => {
              if (entries.length >= 2 && skipsEntries.chance(0.3)) entries.splice(skipsEntries.int(entries.length), 1);
              return entries;
            });
          }
          return result;
        };
      },
    });
  }

  startRegion(region: Region): void {
    if (region.destroyed) return;
    const storage = this.#storage(region);
    region.storage = storage;
    region.server = createSyncServer({
      storage,
      logger: process.env['REGIONS_LOG'] ? pino({ level: 'info' }) : silent,
      serverId: `${region.name}-${++region.epoch}`,
      region: region.name,
      peers: this.regions.filter((r) => r !== region).map((r) => `ws://${r.name}`),
      now: () => Date.now() + region.skew,
      connectPeer: (url) => this.#regionOf(url).network.open(`link:${region.name}`, url),
      limits: { relayBatch: 50, snapshotChunk: 7 },
      // Collection passes often (virtual time), so that runs collect while links are cut and regions come and go.
      gc: { intervalMs: GC_INTERVAL_MS },
    });
    region.network.server = region.server;
  }

  /** Like SIGKILL: its connections (and its links into other regions) vanish; nothing more is stored. */
  crashRegion(region: Region, why: string, restart = true): void {
    const { server } = region;
    if (!server) return;
    this.hash.update(`crash ${region.name} ${why}`);
    region.dead.value = true;
    region.server = undefined;
    region.storage = undefined;
    region.network.serverDied();
    for (const other of this.regions) if (other !== region) other.network.cutClient(`link:${region.name}`, 'hard');
    this.#background.track(server.close());
    if (restart) this.#restartLater(region, this.rng.between(100, 20_000));
  }

  restartRegion(region: Region): void {
    const { server } = region;
    if (!server) return;
    this.stats.regionRestarts++;
    region.server = undefined;
    region.network.server = undefined;
    this.#background.track(
      server.close().then(() => {
        region.network.epoch++;
      }),
    );
    this.#restartLater(region, this.rng.between(100, 5_000));
  }

  #restartLater(region: Region, ms: number): void {
    if (region.starting) return;
    region.starting = true;
    this.#background.track(
      new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => {
        region.starting = false;
        if (!region.server) this.startRegion(region);
      }),
    );
  }

  // ---- replicas -------------------------------------------------------------------

  async openReplica(slot: Slot): Promise<void> {
    const open = (url: string) => this.#regionOf(url).network.open(slot.name, url);
    const factory = class {
      constructor(url: string) {
        return open(url);
      }
    };
    const replica = await createReplica({
      name: slot.name,
      schema: SCHEMA,
      storage: indexedDbStorage({ indexedDB: slot.factory, IDBKeyRange }),
      tabs: false,
      now: () => Date.now() + slot.skew,
      randomBytes: (n) => slot.rng.bytes(n),
      // A push refused below a region's refusal level retires the id there: the replica goes on under a new one
      // in place and says so. Anything else is a failure.
      onError: (error) => {
        if (error.name === 'SyncError' && (error as { code?: string }).code === 'replica_retired') this.stats.rejoins++;
        else this.fail(`r${slot.index} reported an error: ${error.message}`);
      },
      sync: {
        url: slot.urls[0] as string,
        spaces: slot.spaces,
        durability: this.config.durability[slot.index] as Durability,
        connect: webSocketConnect(() => slot.urls, factory as unknown as Parameters<typeof webSocketConnect>[1]),
        random: () => slot.rng.next(),
      },
    });
    const port = portOf(replica);
    // After every apply, the replica's stored per-origin positions: none may go backwards.
    const watch = <A extends unknown[]>(apply: (...args: A) => Promise<void>) => async (...args: A) => {
      await apply(...args);
      await this.#checkOrigins(slot, replica);
    };
    port.applyRemote = watch(port.applyRemote.bind(port));
    port.applySnapshot = watch(port.applySnapshot.bind(port));
    replica.sync?.onStatus((status) => {
      if (status.error?.message.includes('a push went unanswered')) this.fail(`r${slot.index}: ${status.error.message}`);
    });
    slot.replica = replica;
  }

  async #checkOrigins(slot: Slot, replica: Replica): Promise<void> {
    for (const space of slot.spaces) {
      const cursor = readCursor(await storageOf(replica).transaction('readonly', (tx) => tx.getMeta(positionKey(space))));
      let seen = slot.origins.get(space);
      if (!seen) slot.origins.set(space, (seen = new Map()));
      for (const [origin, pos] of Object.entries(cursor.origins ?? {})) {
        const before = seen.get(origin) ?? 0;
        if (pos < before) this.fail(`r${slot.index}'s position of origin ${origin} in ${space} went back from ${before} to ${pos}`);
        seen.set(origin, Math.max(before, pos));
      }
    }
  }

  enqueue(slot: Slot, what: string, task: (replica: Replica) => Promise<void>): void {
    enqueue(slot, what, task, (message) => this.fail(message));
  }

  act(action: RegionsAction): void {
    this.hash.update(`${this.time.now} ${describeRegionsAction(action)}`);
    if (action.t !== 'op' && action.t !== 'wait') this.stats.faults++;
    const everywhere = (client: string, mode: CutMode): void => {
      for (const region of this.regions) {
        region.network.partitioned.add(client);
        region.network.cutClient(client, mode);
      }
    };
    switch (action.t) {
      case 'op': {
        const slot = this.slots[action.replica];
        if (!slot) return;
        this.stats.ops++;
        this.enqueue(slot, describeRegionsAction(action), (r) => applyOp(r, action.space, action.op));
        return;
      }
      case 'partition':
        for (const i of action.replicas) everywhere(`r${i}`, action.mode);
        return;
      case 'isolate': {
        const region = this.regions[action.region];
        region?.network.partition([`r${action.replica}`], action.mode);
        return;
      }
      case 'cut':
        for (const region of this.regions) region.network.cutClient(`r${action.replica}`, action.mode);
        return;
      case 'cut-link': {
        const to = this.regions[action.to];
        const from = this.regions[action.from];
        if (!to || !from || to === from) return;
        this.stats.linkCuts++;
        to.network.partition([`link:${from.name}`], action.mode);
        return;
      }
      case 'heal':
        for (const region of this.regions) region.network.heal();
        return;
      case 'crash-region': {
        const region = this.regions[action.region];
        if (region?.server) {
          this.stats.regionCrashes++;
          this.crashRegion(region, 'at a random moment');
        }
        return;
      }
      case 'restart-region': {
        const region = this.regions[action.region];
        if (region) this.restartRegion(region);
        return;
      }
      case 'destroy-region': {
        const region = this.regions[action.region];
        if (!region || region.destroyed) return;
        this.stats.destroyed++;
        region.destroyed = true;
        if (region.server) this.crashRegion(region, 'its disk destroyed', false);
        rmSync(region.dbPath, { force: true });
        return;
      }
      case 'start-region': {
        const region = this.regions[action.region];
        if (region && !region.server && !region.destroyed) this.startRegion(region);
        return;
      }
      case 'compact': {
        const region = this.regions[action.region];
        const { server } = region ?? {};
        if (!region || !server) return;
        const dead = region.dead;
        server.compact(action.keepLast).then(
          (removed) => {
            this.stats.compacted += removed;
          },
          (error: unknown) => {
            if (!dead.value) this.fail(`compaction of region ${region.name} failed: ${String(error)}`);
          },
        );
        return;
      }
      case 'restart-replica': {
        const slot = this.slots[action.replica];
        if (!slot) return;
        this.enqueue(slot, 'restart', async (r) => {
          await r.close();
          slot.replica = undefined;
          await this.openReplica(slot);
        });
        return;
      }
      case 'wait':
        return;
    }
  }

  /** Runs virtual time until the promise settles (bounded). */
  drive<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
    return drive(this.time, promise, limitMs);
  }

  // ---- quiescence and checks ------------------------------------------------------------

  #live(): Region[] {
    return this.regions.filter((r) => !r.destroyed);
  }

  async quiesce(): Promise<void> {
    for (const region of this.regions) region.network.heal();
    const start = this.time.now;
    while (this.slots.some((s) => s.busy > 0) || this.#background.size > 0) {
      if (this.time.now - start > SETTLE_LIMIT_MS) throw new Failure('operations or restarts still pending 30 min after the network healed');
      await this.time.runFor(100);
    }
    for (const region of this.#live()) if (!region.server) this.startRegion(region);
    // Quiet twice in a row, a second apart: one look reads the replicas and regions one after the other
    // while virtual time runs, so a replica read early can be caught up with a head that grows later
    // in the same look (a relay still in flight).
    let why = await this.#why();
    for (let quiet = 0; quiet < 2; ) {
      if (this.time.now - start > QUIESCE_LIMIT_MS) throw new Failure(`not quiescent 60 min after the network healed: ${why}; ${await this.#regionsState()}`);
      quiet = why === '' ? quiet + 1 : 0;
      if (quiet === 2) break;
      await this.time.runFor(1_000);
      why = await this.#why();
    }
  }

  /** Each live region's links and what it holds per replica, for a failure's message. */
  async #regionsState(): Promise<string> {
    const parts: string[] = [];
    const ids = this.slots.flatMap((s) => (s.replica ? [s.replica.id] : []));
    for (const region of this.#live()) {
      const links = region.server?.links().map((l) => `${l.region ?? l.url} ${l.up ? 'up' : 'down'} lag ${l.lag}`) ?? [];
      const held: string[] = [];
      for (const space of this.config.spaces) {
        const progress = await (region.storage as ServerStorage).replicaProgress(space as SpaceId, ids);
        held.push(`${space} [${ids.map((id, i) => `r${i}:${progress.get(id) ?? 0}`).join(' ')}] head ${await (region.storage as ServerStorage).head(space as SpaceId)}`);
      }
      parts.push(`region ${region.name}: links [${links.join(', ')}], ${held.join('; ')}`);
    }
    return parts.join(' | ');
  }

  /**
   * Every change committed to a region's log of a space (compacted ones too: the archive of its commits),
   * by id (replica:seq) with how often, after checking that the positions are those commits and the merges
   * of peer states, and that what compaction left is their suffix; and what the merged states hold.
   */
  async #log(region: Region, space: string): Promise<RegionLog> {
    const archived = region.archive.get(space) ?? new Map<number, Change>();
    const merged = region.merged.get(space) ?? { positions: new Set<number>(), progress: new Map<string, number>() };
    const storage = region.storage as ServerStorage;
    const [head, entries] = await Promise.all([storage.head(space as SpaceId), storage.readLog(space as SpaceId, 0, 1_000_000)]);
    const changes: Change[] = [];
    for (let pos = 1; pos <= head; pos++) {
      const change = archived.get(pos);
      if (change) changes.push(change);
      else if (!merged.positions.has(pos)) throw new Failure(`region ${region.name}'s log of ${space} has no position ${pos} (head ${head})`);
    }
    if (archived.size + merged.positions.size !== head) this.fail(`region ${region.name}'s head of ${space} is ${head}; ${archived.size} changes were committed and ${merged.positions.size} states merged`);
    // What compaction left: every committed entry from the first one left on, each as committed.
    const first = entries[0]?.pos ?? head + 1;
    const kept = [...archived.keys()].filter((pos) => pos >= first).sort((a, b) => a - b);
    if (kept.join() !== entries.map((e) => e.pos).join()) this.fail(`region ${region.name}'s log of ${space} holds positions [${entries.slice(0, 8).map((e) => e.pos).join(',')}…], not every committed one from ${first} on`);
    for (const e of entries) {
      const committed = archived.get(e.pos);
      if (!committed || `${e.change.replica}:${e.change.seq}` !== `${committed.replica}:${committed.seq}`) this.fail(`region ${region.name}'s log of ${space} at ${e.pos} is not what was committed there`);
    }
    const counts = new Map<string, number>();
    for (const c of changes) counts.set(`${c.replica}:${c.seq}`, (counts.get(`${c.replica}:${c.seq}`) ?? 0) + 1);
    return { changes, counts, mergedProgress: merged.progress };
  }

  /** The union of the changes of a space over the live regions, and per region the ids of that union it does not hold. */
  async #holdings(live: readonly Region[], space: string): Promise<{ union: Change[]; logs: RegionLog[]; lacking: string[][] }> {
    const logs = await Promise.all(live.map((region) => this.#log(region, space)));
    const union = new Map<string, Change>();
    for (const log of logs) for (const c of log.changes) union.set(`${c.replica}:${c.seq}`, c);
    const lacking = logs.map((log) => [...union.entries()].filter(([id, c]) => !log.counts.has(id) && c.seq > (log.mergedProgress.get(c.replica) ?? 0)).map(([id]) => id));
    return { union: [...union.values()], logs, lacking };
  }

  /** Why the system is not quiet yet ('' when it is): replicas synced and caught up, regions holding the same changes. */
  async #why(): Promise<string> {
    const live = this.#live();
    for (const region of live) if (!region.storage) return `region ${region.name} down`;
    for (const slot of this.slots) {
      const r = slot.replica;
      if (!r) return `r${slot.index} closed`;
      const status = r.sync?.status;
      if (status?.state !== 'synced' || status.pending > 0) return `r${slot.index} ${status?.state} pending ${status?.pending} error ${status?.error?.code ?? '-'}`;
      for (const space of slot.spaces) {
        const { upTo, region } = await this.drive(portOf(r).position(space));
        const at = live.find((g) => g.name === region);
        if (!at) return `r${slot.index} is at a position of region ${region ?? '(none)'} in ${space}`;
        const head = await (at.storage as ServerStorage).head(space as SpaceId);
        if (upTo !== head) return `r${slot.index} at ${upTo} of ${head} in region ${at.name}'s ${space}`;
      }
    }
    for (const space of this.config.spaces) {
      const { lacking } = await this.#holdings(live, space);
      for (const [i, ids] of lacking.entries()) if (ids.length > 0) return `region ${live[i]?.name} lacks ${ids.length} changes of ${space} (${ids.slice(0, 3).join(' ')})`;
    }
    return '';
  }

  /** The checks; `collected`: also that every live region and every replica forgot every deleted record. */
  async check(collected = false): Promise<void> {
    const live = this.#live().filter((region) => region.storage !== undefined);
    if (collected) {
      // Deleted records that collection forgets (collectibleAt: lww tombstones; merge and crdt parts are kept).
      const END = '\uffff' as HlcString;
      for (const region of live) {
        let left = 0;
        for (const space of this.config.spaces) {
          left += (await (region.storage as ServerStorage).snapshotPage(space as SpaceId, undefined, 1_000_000)).filter((r) => collectibleAt(r.state) !== undefined).length;
        }
        if (left > 0) this.fail(`region ${region.name} still holds ${left} deleted records ${SETTLE_GC_MS / 60_000} min after the last write (horizon ${JSON.stringify(await this.#horizons(region))})`);
      }
      for (const slot of this.slots) {
        const r = slot.replica;
        if (!r) continue;
        let left = 0;
        for (const space of slot.spaces) left += await this.drive(storageOf(r as never).transaction('readonly', async (tx) => (tx.collectible ? (await tx.collectible(space as SpaceId, END)).length : 0)));
        if (left > 0) this.fail(`r${slot.index} still holds ${left} deleted records ${SETTLE_GC_MS / 60_000} min after the last write`);
      }
      return;
    }
    const union = new Map<string, Change[]>();
    for (const space of this.config.spaces) {
      const { union: changes, logs, lacking } = await this.#holdings(live, space);
      // Each change is in each region's log at most once, and every region holds every change (in its log, or
      // in a peer's state it merged).
      logs.forEach(({ counts }, i) => {
        for (const [id, n] of counts) if (n > 1) this.fail(`region ${live[i]?.name} holds ${id} of ${space} ${n} times`);
      });
      lacking.forEach((ids, i) => {
        if (ids.length > 0) this.fail(`region ${live[i]?.name} lacks [${ids.slice(0, 5).join(' ')}] of ${space} (${ids.length} changes)`);
      });
      union.set(space, changes);
      this.stats.changes += changes.length;

      // The regions' record states agree.
      const states = await Promise.all(live.map((region) => this.#states(region, space)));
      states.slice(1).forEach((s, i) => {
        if (s !== states[0]) this.fail(`regions ${live[0]?.name} and ${live[i + 1]?.name} hold different records of ${space}: ${firstDifference(states[0] as string, s)}`);
      });
    }

    // Nothing written is lost: each replica's seqs 1..counter are in the log, and so is everything a region
    // acknowledged at the replica's durability, whatever became of that region.
    for (const slot of this.slots) {
      const r = slot.replica as Replica;
      for (const space of slot.spaces) {
        const counter = (await this.drive(storageOf(r).transaction('readonly', (tx) => tx.getMeta<number>(`seq\u0000${space}`)))) ?? 0;
        const held = new Set((union.get(space) ?? []).filter((c) => c.replica === r.id).map((c) => c.seq));
        const lost = Array.from({ length: counter }, (_, i) => i + 1).filter((seq) => !held.has(seq));
        if (lost.length > 0) this.fail(`r${slot.index} (${this.config.durability[slot.index]}) wrote seqs 1..${counter} of ${space}; no region holds [${lost.slice(0, 10).join(',')}]`);
        const stable = this.stable.get(`${r.id}\u0000${space}`) ?? 0;
        const lostStable = lost.filter((seq) => seq <= stable);
        if (lostStable.length > 0) this.fail(`r${slot.index} was told seqs up to ${stable} of ${space} are held at ${this.config.durability[slot.index]}; [${lostStable.slice(0, 10).join(',')}] are gone`);
        const outbox = await this.drive(storageOf(r).transaction('readonly', (tx) => tx.countOutbox(space)));
        if (outbox !== 0) this.fail(`r${slot.index} still has ${outbox} outbox entries for ${space}`);
      }
      const status = r.sync?.status;
      if (status?.stoppedSpaces?.length) this.fail(`r${slot.index} stopped spaces: ${status.stoppedSpaces.map((e) => `${e.space} ${e.code}`).join(', ')}`);
    }

    // Every replica converges to what the oracle computes from the union of the changes.
    for (const space of this.config.spaces) {
      const holders = this.slots.filter((slot) => slot.spaces.includes(space as SpaceId)).map((slot) => ({ label: `r${slot.index}`, replica: slot.replica as Replica }));
      const dumps = await checkConvergence(space, union.get(space) ?? [], holders, (m) => this.fail(m), (p) => this.drive(p));
      for (const dump of dumps) this.hash.update(dump);
    }
  }

  async #horizons(region: Region): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const space of this.config.spaces) {
      const writers = (await (region.storage as ServerStorage).writers(space as SpaceId)).filter((w) => w.local && !w.retired).map((w) => `${w.replica}:${w.floor ?? '-'}`);
      out[space] = { ...(await (region.storage as ServerStorage).stability(space as SpaceId)), writers };
    }
    return out;
  }

  async #states(region: Region, space: string): Promise<string> {
    const lines: string[] = [];
    let after: readonly [string, string] | undefined;
    for (;;) {
      const page = await (region.storage as ServerStorage).snapshotPage(space as SpaceId, after, 500);
      // As for replicas (dump.ts): a deleted record one region forgot and another holds shows the same.
      for (const record of page) if (collectibleAt(record.state) === undefined) lines.push(`${record.collection}/${record.id}=${canonicalState(withoutHistory(record.state))}`);
      const last = page[page.length - 1];
      if (!last || page.length < 500) break;
      after = [last.collection, last.id];
    }
    return lines.sort().join('\n');
  }

  async shutdown(): Promise<void> {
    try {
      const closing = [...this.slots.map((s) => s.replica?.close()), ...this.regions.map((r) => r.server?.close())].filter((p): p is Promise<void> => p !== undefined);
      await this.drive(Promise.all(closing), 120_000).catch(() => undefined);
    } finally {
      this.time.uninstall();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** One workload operation on a replica (the regions simulation checks outcomes at the end, not each read). */
async function applyOp(replica: Replica, space: string, op: Op): Promise<void> {
  const options = { space };
  const patchOf = (fields: Record<string, Json | null>) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v === null ? undefined : v]));
  switch (op.kind) {
    case 'put':
      return replica.put(op.collection, op.id, op.blob === undefined ? op.fields : { ...op.fields, blob: 'b'.repeat(op.blob) }, options);
    case 'patch':
      return replica.patch(op.collection, op.id, patchOf(op.fields), options);
    case 'delete':
      return replica.delete(op.collection, op.id, options);
    case 'text':
    case 'map':
      return editCrdt(replica, space, op);
    case 'burst':
      for (const sub of op.ops) await applyOp(replica, space, sub);
      return;
    case 'batch':
      return replica.batch((b) => {
        for (const sub of op.ops) {
          if (sub.kind === 'put') b.put(sub.collection, sub.id, sub.fields, options);
          else if (sub.kind === 'delete') b.delete(sub.collection, sub.id, options);
          else b.patch(sub.collection, sub.id, patchOf(sub.fields), options);
        }
      });
  }
}

/** Plants the client bug by patching the real Pusher's prototype for one run; returns the undo. */
function plant(bug: RegionsBug | undefined): () => void {
  if (bug !== 'quorum-drop') return () => undefined;
  const ack = Object.getOwnPropertyDescriptor(Pusher.prototype, 'ack') as PropertyDescriptor;
  Pusher.prototype.ack = function (this: Pusher, space: SpaceId, upTo: number) {
    return (ack.value as Pusher['ack']).call(this, space, upTo); // `stable` ignored: the outbox empties at the first ack
  };
  return () => Object.defineProperty(Pusher.prototype, 'ack', ack);
}

export async function runRegionsSimulation(options: { seed: number; steps?: number; bug?: RegionsBug; plan?: readonly RegionsAction[] }): Promise<RegionsResult> {
  const world = new RegionsWorld(options.seed, options.bug);
  const plan = options.plan ? [...options.plan] : makeRegionsPlan(new Rng(options.seed).fork('plan'), world.config, options.steps ?? 60);
  const unplant = plant(options.bug);
  // Links jitter their retries with Math.random: seeded too, so that a run replays.
  const random = Math.random;
  const jitter = world.rng.fork('math-random');
  Math.random = () => jitter.next();
  world.time.install();
  try {
    for (const region of world.regions) if (!(world.config.late && region.index === world.regions.length - 1)) world.startRegion(region);
    for (const slot of world.slots) await world.drive(world.openReplica(slot));
    for (const action of plan) {
      world.act(action);
      await world.time.runFor(action.t === 'wait' ? action.ms : 0);
      if (world.time.crashes.length > 0) break;
    }
    // When the run does not go quiet, the checks still say what was lost or differs.
    await world.quiesce().catch((error: unknown) => world.fail(error instanceof Error ? error.message : String(error)));
    await world.check();
    // Then time passes with nothing written: every region's horizon passes every delete, each region forgets
    // them, and so do the replicas; the same checks hold again.
    if (world.failures.length === 0) {
      await world.time.runFor(SETTLE_GC_MS);
      await world.quiesce().catch((error: unknown) => world.fail(error instanceof Error ? error.message : String(error)));
      await world.check();
      // A destroyed region's peers never hear its level again: they stop collecting (server README).
      if (world.failures.length === 0 && !world.regions.some((r) => r.destroyed)) await world.check(true);
    }
  } catch (error) {
    world.fail(error instanceof Failure ? error.message : `the run threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    for (const crash of world.time.crashes) world.fail(`a timer callback threw: ${crash instanceof Error ? (crash.stack ?? crash.message) : String(crash)}`);
    world.stats.virtualMs = world.time.now - T0;
    world.stats.frames = world.regions.reduce((n, r) => n + r.network.stats.frames, 0);
    await world.shutdown();
    Math.random = random;
    unplant();
  }
  return { seed: options.seed, ok: world.failures.length === 0, failures: world.failures, config: world.config, plan, digest: world.hash.digest('hex'), stats: world.stats };
}

export function formatRegionsFailure(result: RegionsResult): string {
  const lines = [`regions simulation failed: seed ${result.seed} (replay: npm run sim -- --regions --seed ${result.seed})`, `config: ${JSON.stringify(result.config)}`, ...result.failures.slice(0, 10).map((f) => `  ✗ ${f}`)];
  if (result.failures.length > 10) lines.push(`  … ${result.failures.length - 10} more`);
  lines.push('plan:', ...result.plan.map((a, i) => `  ${i + 1}. ${describeRegionsAction(a)}`));
  return lines.join('\n');
}

/**
 * The plan of a simulation run: workload operations and faults, generated from
 * the seed up front so that a failing plan can be shrunk (actions removed) and
 * replayed. Everything random at run time (network delays, replica ids, jitter)
 * comes from other streams of the same seed.
 */
import { MAX_CHANGE_BYTES, MIN_FRAME_BYTES, type Json } from '@syncline/core/internal';
import type { CutMode } from './network.js';
import type { Rng } from './rng.js';

export const SCHEMA = {
  notes: { crdt: { body: 'text' } },
  status: { policy: 'merge' },
  boards: { crdt: { cells: 'map' } },
} as const;

export const COLLECTIONS = Object.keys(SCHEMA) as Array<keyof typeof SCHEMA>;
export const MERGE_COLLECTIONS: ReadonlySet<string> = new Set(['status']);

export type Op =
  /** `blob`: a field of that many characters is added (values up to the documented maximum, and past it: refused). */
  | { readonly kind: 'put'; readonly collection: string; readonly id: string; readonly fields: Record<string, Json>; readonly blob?: number }
  | { readonly kind: 'patch'; readonly collection: 'notes' | 'boards'; readonly id: string; readonly fields: Record<string, Json | null> }
  | { readonly kind: 'delete'; readonly collection: string; readonly id: string }
  | { readonly kind: 'text'; readonly id: string; readonly at: number; readonly remove: number; readonly insert: string }
  | { readonly kind: 'map'; readonly id: string; readonly key: string; readonly value: Json | null }
  | { readonly kind: 'batch'; readonly ops: ReadonlyArray<Op & { readonly kind: 'put' | 'patch' | 'delete' }> }
  /** Writes one at a time, each awaited before the next, as apps do (pushes race their acks). */
  | { readonly kind: 'burst'; readonly ops: ReadonlyArray<Op & { readonly kind: 'put' | 'patch' | 'delete' }> };

export type Action =
  | { readonly t: 'wait'; readonly ms: number }
  | { readonly t: 'op'; readonly replica: number; readonly space: string; readonly op: Op }
  | { readonly t: 'partition'; readonly replicas: readonly number[]; readonly mode: CutMode }
  | { readonly t: 'heal' }
  | { readonly t: 'cut'; readonly replica: number; readonly mode: CutMode }
  | { readonly t: 'restart-replica'; readonly replica: number }
  /** The device's database is lost (a new device): it bootstraps from a snapshot. */
  | { readonly t: 'wipe-replica'; readonly replica: number }
  | { readonly t: 'restart-server' }
  | { readonly t: 'crash-server' }
  | { readonly t: 'crash-after-store' }
  | { readonly t: 'compact'; readonly keepLast: number }
  /** An operator retires the replica's id (server.retire): it rejoins under a new one (issue 19). */
  | { readonly t: 'retire'; readonly replica: number }
  | { readonly t: 'clock-step'; readonly replica: number; readonly ms: number };

/** Server limits of a run: the defaults, or small ones that pushes must fit. */
export interface SimLimits {
  readonly maxFrameBytes: number;
  readonly maxBatch: number;
  readonly messagesPerSecond: number;
}

export interface Config {
  readonly replicas: number;
  readonly spaces: readonly string[];
  /** Spaces each replica syncs (and writes to). */
  readonly follows: ReadonlyArray<readonly string[]>;
  /** Initial device clock error per replica, ms: minutes, hours or days, either way. */
  readonly skews: readonly number[];
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly duplicate: number;
  /** Server limits; undefined: the defaults. */
  readonly limits: SimLimits | undefined;
  /** False: the welcome reaches the replicas without its limits (a protocol 2 server), so they learn them from refusals. */
  readonly announced: boolean;
  /** The replicas' sync batch size; undefined: the default (500). */
  readonly batchSize: number | undefined;
  /** Puts may carry values up to MAX_CHANGE_BYTES (and some past it, which must be refused). */
  readonly largeValues: boolean;
  /** The server's garbage collection interval (virtual ms): horizons move and records are forgotten that often. */
  readonly gcIntervalMs: number;
}

/** Device clocks are off by up to this much, either way. */
export const MAX_SKEW_MS = 4 * 86_400_000;

/** A device clock error: minutes (most), hours or days, either way. */
function skew(rng: Rng): number {
  const sign = rng.chance(0.5) ? 1 : -1;
  const roll = rng.next();
  if (roll < 0.5) return sign * rng.between(0, 10 * 60_000);
  if (roll < 0.8) return sign * rng.between(3_600_000, 12 * 3_600_000);
  return sign * rng.between(86_400_000, 3 * 86_400_000);
}

export function makeConfig(rng: Rng): Config {
  const replicas = rng.between(2, 5);
  const spaces = ['alpha', 'beta', 'gamma'].slice(0, rng.between(1, 3));
  const follows = Array.from({ length: replicas }, () => rng.subset(spaces));
  // Every space has at least two replicas when there are enough of them, so something has to converge.
  for (const space of spaces) {
    const holders = follows.filter((f) => f.includes(space)).length;
    if (holders < 2) for (let i = 0; i < Math.min(2, replicas) - holders; i++) (follows[rng.int(replicas)] as string[]).push(space);
  }
  const minDelayMs = rng.between(1, 20);
  const small = rng.chance(0.4);
  return {
    replicas,
    spaces,
    follows: follows.map((f) => [...new Set(f)].sort()),
    skews: Array.from({ length: replicas }, () => (rng.chance(0.3) ? 0 : skew(rng))),
    minDelayMs,
    maxDelayMs: minDelayMs + rng.between(5, 400),
    duplicate: rng.chance(0.5) ? 0 : 0.02,
    limits: small
      ? { maxFrameBytes: rng.between(MIN_FRAME_BYTES, 2 * MIN_FRAME_BYTES), maxBatch: rng.between(1, 8), messagesPerSecond: rng.between(5, 20) }
      : undefined,
    announced: !small || rng.chance(0.6),
    batchSize: rng.chance(0.5) ? undefined : rng.between(2, 40),
    largeValues: rng.chance(0.4),
    gcIntervalMs: rng.between(15_000, 90_000),
  };
}

const WORDS = ['plan', 'sync', 'meet', 'ship', 'draft', 'lunch', 'review', 'call', 'demo', 'trip'];

function fields(rng: Rng): Record<string, Json> {
  const out: Record<string, Json> = { title: rng.pick(WORDS) };
  if (rng.chance(0.6)) out['n'] = rng.int(100);
  if (rng.chance(0.4)) out['done'] = rng.chance(0.5);
  if (rng.chance(0.3)) out['tags'] = rng.subset(WORDS).slice(0, 3);
  return out;
}

/** A put carrying a large value: mostly up to the maximum a change may take, sometimes past it. */
function largePut(rng: Rng, pastTheMaximum = true): Op & { kind: 'put' } {
  const collection = rng.pick(COLLECTIONS);
  const blob = pastTheMaximum && rng.chance(0.15) ? MAX_CHANGE_BYTES + rng.between(1, 100_000) : rng.between(rng.chance(0.5) ? MAX_CHANGE_BYTES / 2 : 1_000, MAX_CHANGE_BYTES - 2_000);
  return { kind: 'put', collection, id: `${collection[0]}${rng.int(4)}`, fields: fields(rng), blob };
}

function writeOp(rng: Rng): Op & { kind: 'put' | 'patch' | 'delete' } {
  const collection = rng.pick(COLLECTIONS);
  const id = `${collection[0]}${rng.int(4)}`;
  const roll = rng.next();
  if (roll < 0.15) return { kind: 'delete', collection, id };
  if (roll < 0.45 && collection !== 'status') {
    const patch: Record<string, Json | null> = {};
    for (const [k, v] of Object.entries(fields(rng))) if (rng.chance(0.6)) patch[k] = v;
    if (rng.chance(0.3)) patch[rng.pick(['n', 'done', 'tags'])] = null;
    return { kind: 'patch', collection, id, fields: patch };
  }
  return { kind: 'put', collection, id, fields: fields(rng) };
}

/** One workload operation (a write, a CRDT edit, a batch or a burst of awaited writes). */
export function randomOp(rng: Rng, config: Pick<Config, 'largeValues'>): Op {
  if (config.largeValues && rng.chance(0.25)) return largePut(rng);
  if (rng.chance(0.08)) return { kind: 'burst', ops: Array.from({ length: rng.between(5, 60) }, () => (config.largeValues && rng.chance(0.3) ? largePut(rng, false) : writeOp(rng))) };
  const roll = rng.next();
  if (roll < 0.2) return { kind: 'text', id: `n${rng.int(4)}`, at: rng.next(), remove: rng.chance(0.3) ? rng.between(1, 4) : 0, insert: rng.chance(0.85) ? `${rng.pick(WORDS)} ` : '' };
  if (roll < 0.3) return { kind: 'map', id: `b${rng.int(4)}`, key: rng.pick(['x', 'y', 'z']), value: rng.chance(0.2) ? null : rng.int(1000) };
  if (roll < 0.38) return { kind: 'batch', ops: Array.from({ length: rng.between(2, 5) }, () => writeOp(rng)) };
  return writeOp(rng);
}

export function makePlan(rng: Rng, config: Config, steps: number): Action[] {
  const plan: Action[] = [];
  const everyone = Array.from({ length: config.replicas }, (_, i) => i);
  for (let i = 0; i < steps; i++) {
    const roll = rng.next();
    if (roll < 0.5) {
      const replica = rng.int(config.replicas);
      plan.push({ t: 'op', replica, space: rng.pick(config.follows[replica] as readonly string[]), op: randomOp(rng, config) });
    } else if (roll < 0.78) {
      plan.push({ t: 'wait', ms: rng.chance(0.1) ? rng.between(10_000, 15 * 60_000) : rng.between(1, 800) });
    } else {
      const f = rng.next();
      const replica = rng.int(config.replicas);
      const mode: CutMode = rng.pick(['hard', 'half-open', 'soft'] as const);
      if (f < 0.2) plan.push({ t: 'partition', replicas: rng.subset(everyone), mode });
      else if (f < 0.38) plan.push({ t: 'heal' });
      else if (f < 0.5) plan.push({ t: 'cut', replica, mode });
      else if (f < 0.58) plan.push({ t: 'restart-replica', replica });
      else if (f < 0.62) plan.push({ t: 'wipe-replica', replica });
      else if (f < 0.7) plan.push({ t: 'restart-server' });
      else if (f < 0.78) plan.push({ t: 'crash-server' });
      else if (f < 0.85) plan.push({ t: 'crash-after-store' });
      else if (f < 0.88) plan.push({ t: 'compact', keepLast: rng.between(0, 5) });
      else if (f < 0.9) plan.push({ t: 'retire', replica });
      else if (rng.chance(0.8)) plan.push({ t: 'clock-step', replica, ms: rng.chance(0.7) ? -rng.between(1_000, 5 * 60_000) : rng.between(1_000, 5 * 60_000) });
      // Rarely, the device clock is set hours or days off (by hand, or a dead RTC battery).
      else plan.push({ t: 'clock-step', replica, ms: (rng.chance(0.5) ? -1 : 1) * rng.between(3_600_000, 2 * 86_400_000) });
    }
  }
  return plan;
}

export function describe(action: Action): string {
  switch (action.t) {
    case 'op':
      return `r${action.replica} ${action.space} ${JSON.stringify(action.op)}${action.op.kind === 'put' && action.op.blob ? ` (a value of ${action.op.blob} characters)` : ''}`;
    case 'wait':
      return `wait ${action.ms} ms`;
    case 'partition':
      return `partition [${action.replicas.map((r) => `r${r}`).join(' ')}] (${action.mode})`;
    case 'cut':
      return `cut r${action.replica} (${action.mode})`;
    case 'wipe-replica':
      return `wipe r${action.replica} (a new device)`;
    case 'restart-replica':
      return `restart r${action.replica}`;
    case 'compact':
      return `compact the log to its last ${action.keepLast} entries`;
    case 'retire':
      return `retire r${action.replica}'s id`;
    case 'clock-step':
      return `clock of r${action.replica} steps ${action.ms > 0 ? '+' : ''}${action.ms} ms`;
    default:
      return action.t;
  }
}

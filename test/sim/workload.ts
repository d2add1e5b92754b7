/**
 * The plan of a simulation run: workload operations and faults, generated from
 * the seed up front so that a failing plan can be shrunk (actions removed) and
 * replayed. Everything random at run time (network delays, replica ids, jitter)
 * comes from other streams of the same seed.
 */
import type { Json } from '@syncline/core';
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
  | { readonly kind: 'put'; readonly collection: string; readonly id: string; readonly fields: Record<string, Json> }
  | { readonly kind: 'patch'; readonly collection: 'notes' | 'boards'; readonly id: string; readonly fields: Record<string, Json | null> }
  | { readonly kind: 'delete'; readonly collection: string; readonly id: string }
  | { readonly kind: 'text'; readonly id: string; readonly at: number; readonly remove: number; readonly insert: string }
  | { readonly kind: 'map'; readonly id: string; readonly key: string; readonly value: Json | null }
  | { readonly kind: 'batch'; readonly ops: ReadonlyArray<Op & { readonly kind: 'put' | 'patch' | 'delete' }> };

export type Action =
  | { readonly t: 'wait'; readonly ms: number }
  | { readonly t: 'op'; readonly replica: number; readonly space: string; readonly op: Op }
  | { readonly t: 'partition'; readonly replicas: readonly number[]; readonly mode: CutMode }
  | { readonly t: 'heal' }
  | { readonly t: 'cut'; readonly replica: number; readonly mode: CutMode }
  | { readonly t: 'restart-replica'; readonly replica: number }
  | { readonly t: 'restart-server' }
  | { readonly t: 'crash-server' }
  | { readonly t: 'crash-after-store' }
  | { readonly t: 'compact'; readonly keepLast: number }
  | { readonly t: 'clock-step'; readonly replica: number; readonly ms: number };

export interface Config {
  readonly replicas: number;
  readonly spaces: readonly string[];
  /** Spaces each replica syncs (and writes to). */
  readonly follows: ReadonlyArray<readonly string[]>;
  /** Initial clock skew per replica, ms (|skew| ≤ 10 min). */
  readonly skews: readonly number[];
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly duplicate: number;
}

export const MAX_SKEW_MS = 10 * 60_000;

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
  return {
    replicas,
    spaces,
    follows: follows.map((f) => [...new Set(f)].sort()),
    skews: Array.from({ length: replicas }, () => (rng.chance(0.3) ? 0 : rng.between(-MAX_SKEW_MS, MAX_SKEW_MS))),
    minDelayMs,
    maxDelayMs: minDelayMs + rng.between(5, 400),
    duplicate: rng.chance(0.5) ? 0 : 0.02,
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

function op(rng: Rng): Op {
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
      plan.push({ t: 'op', replica, space: rng.pick(config.follows[replica] as readonly string[]), op: op(rng) });
    } else if (roll < 0.78) {
      plan.push({ t: 'wait', ms: rng.chance(0.1) ? rng.between(10_000, 15 * 60_000) : rng.between(1, 800) });
    } else {
      const f = rng.next();
      const replica = rng.int(config.replicas);
      const mode: CutMode = rng.pick(['hard', 'half-open', 'soft'] as const);
      if (f < 0.2) plan.push({ t: 'partition', replicas: rng.subset(everyone), mode });
      else if (f < 0.38) plan.push({ t: 'heal' });
      else if (f < 0.5) plan.push({ t: 'cut', replica, mode });
      else if (f < 0.62) plan.push({ t: 'restart-replica', replica });
      else if (f < 0.7) plan.push({ t: 'restart-server' });
      else if (f < 0.78) plan.push({ t: 'crash-server' });
      else if (f < 0.85) plan.push({ t: 'crash-after-store' });
      else if (f < 0.9) plan.push({ t: 'compact', keepLast: rng.between(0, 5) });
      else plan.push({ t: 'clock-step', replica, ms: rng.chance(0.7) ? -rng.between(1_000, 5 * 60_000) : rng.between(1_000, 5 * 60_000) });
    }
  }
  return plan;
}

export function describe(action: Action): string {
  switch (action.t) {
    case 'op':
      return `r${action.replica} ${action.space} ${JSON.stringify(action.op)}`;
    case 'wait':
      return `wait ${action.ms} ms`;
    case 'partition':
      return `partition [${action.replicas.map((r) => `r${r}`).join(' ')}] (${action.mode})`;
    case 'cut':
      return `cut r${action.replica} (${action.mode})`;
    case 'restart-replica':
      return `restart r${action.replica}`;
    case 'compact':
      return `compact the log to its last ${action.keepLast} entries`;
    case 'clock-step':
      return `clock of r${action.replica} steps ${action.ms > 0 ? '+' : ''}${action.ms} ms`;
    default:
      return action.t;
  }
}

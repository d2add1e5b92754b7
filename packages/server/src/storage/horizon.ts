/**
 * What both storages share of the two stability levels (ServerStorage,
 * "Stability"): the refusal level `stable` (a space's own clients' changes at
 * or below it are refused) and the collection horizon `settled` (what clients
 * are told, and what collect() forgets below). Without peers they are equal;
 * with peers the collection horizon is the lower of the refusal level and
 * every peer's, which advanceHorizon receives as `peers`.
 */
import type { HlcString } from '@syncline/core/internal';
import type { Stability } from './types.js';

/** A space's row as both storages read it (positions may come back as strings from PostgreSQL). */
export interface HorizonRow {
  readonly stable: string | null;
  readonly stable_pos: number | string;
  readonly settled: string | null;
  readonly settled_pos: number | string;
}

/** The level a space's own clients' changes are refused at or below, and the head when it was raised. */
export function refusalLevel(stability: Stability): { readonly hlc: HlcString | undefined; readonly upTo: number } {
  return stability.refused ?? stability;
}

/** The Stability of a space's row (none: no horizon). */
export function stabilityFrom(row: HorizonRow | undefined): Stability {
  const hlc = (row?.settled ?? undefined) as HlcString | undefined;
  const refused = (row?.stable ?? undefined) as HlcString | undefined;
  const out = { hlc, upTo: Number(row?.settled_pos ?? 0) };
  return refused !== undefined && refused !== hlc ? { ...out, refused: { hlc: refused, upTo: Number(row?.stable_pos ?? 0) } } : out;
}

/**
 * Where the collection horizon may go once the refusal level is `stable`:
 * to it without peers (`peers` undefined), to the lower of it and the peers'
 * lowest level (a timestamp), nowhere when some peer's level is not known
 * (`false`). The caller raises it only when this is later (it never moves back).
 */
export function settleCandidate(stable: HlcString | null, peers: HlcString | false | undefined): HlcString | undefined {
  if (stable === null || peers === false) return undefined;
  return peers === undefined || stable < peers ? stable : peers;
}

/**
 * merge policy: concurrent writes are detected and kept as siblings.
 *
 * Each version is named by its change's dot (replica, seq) and carries the causal
 * context it was written in. D(v) = context(v) + dot(v). The state is a pure
 * function of the set A of versions applied, which makes apply a join:
 *   seen     = the join of D(w) for every w in A
 *   siblings = { v in A : no other w in A has D(w) covering dot(v) }
 * A replica's own later write covers its earlier ones (its context always holds
 * them), so superseded versions can be dropped and never come back.
 */
import type { VersionOp } from './change.js';
import { compareHlc, type HlcString } from './hlc.js';
import type { ReplicaId } from './ids.js';
import type { Fields } from './json.js';
import { covers, merge, vector, type VersionVector } from './version-vector.js';

/**
 * One version of a merge-policy record: what one `version` change wrote. Named
 * by its change's (replica, seq). Concurrent versions are kept as siblings.
 */
export interface Version {
  /** The replica that wrote it. */
  readonly replica: ReplicaId;
  /** Its change's sequence number at that replica. */
  readonly seq: number;
  /** Its change's timestamp: siblings are ordered by it. */
  readonly hlc: HlcString;
  /** null: this version deletes the record. */
  readonly value: Fields | null;
  /** The versions its writer had seen: every version it supersedes is covered by it. */
  readonly context: VersionVector;
}

/** The merge part of a record's state (see the top of merge.ts). */
export interface MergeState {
  /** Every version applied, with the contexts they carried: what this state has seen. */
  readonly seen: VersionVector;
  /** Versions no other version has seen past, in HLC order. */
  readonly siblings: readonly Version[];
}

export const EMPTY_MERGE: MergeState = { seen: new Map(), siblings: [] };

/** Picks the visible value from the siblings; must be deterministic and pure. */
export type Resolver = (siblings: readonly Version[]) => Fields | null;

function dotted(version: Version): VersionVector {
  return merge(version.context, vector([[version.replica, version.seq]]));
}

export function applyVersion(state: MergeState, op: VersionOp, replica: ReplicaId, seq: number, hlc: HlcString): MergeState {
  const version: Version = { replica, seq, hlc, value: op.value, context: op.context };
  if (hasSibling(state, version)) return state;
  const known = covers(state.seen, replica, seq);
  // D(version), not just its context: `seen` (hence `known` and joinMerge) counts the dot too,
  // so a version also supersedes its writer's earlier ones even if its context omits them.
  const d = dotted(version);
  const siblings = state.siblings.filter((s) => !covers(d, s.replica, s.seq));
  if (!known) {
    siblings.push(version);
    siblings.sort(compareVersions);
  }
  return { seen: merge(state.seen, d), siblings };
}

/**
 * Join of two states. A sibling of one side survives unless the other side's
 * history covers it without keeping it as a sibling of its own.
 */
export function joinMerge(a: MergeState, b: MergeState): MergeState {
  const survivors = new Map<string, Version>();
  for (const [mine, other] of [
    [a, b],
    [b, a],
  ] as const) {
    for (const v of mine.siblings) {
      if (hasSibling(other, v) || !covers(other.seen, v.replica, v.seq)) survivors.set(`${v.replica}:${v.seq}`, v);
    }
  }
  return { seen: merge(a.seen, b.seen), siblings: [...survivors.values()].sort(compareVersions) };
}

function hasSibling(state: MergeState, v: Version): boolean {
  return state.siblings.some((s) => s.replica === v.replica && s.seq === v.seq);
}

export function compareVersions(a: Version, b: Version): number {
  return compareHlc(a.hlc, b.hlc) || (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : a.seq - b.seq);
}

/** The default resolution: the sibling with the highest HLC. */
export const latestWins: Resolver = (siblings) => (siblings.length === 0 ? null : (siblings[siblings.length - 1] as Version).value);

/** The causal context a new local write should carry to supersede every sibling. */
export function contextFor(state: MergeState | undefined): VersionVector {
  return state?.seen ?? new Map();
}

/**
 * `state` without the entries of writers that will never write again (retired
 * replicas: `gone`) and that hold no sibling: in `seen` and in every sibling's
 * context. Returns `state` itself when it holds none.
 *
 * Why nothing changes: every version of such a writer is already stored (the
 * server refuses it from retirement on, and never applies a seq twice), so
 * none arrives again to be known or not; and the ones this state holds are
 * superseded (none is a sibling), so a later write need not name them to
 * supersede them. Siblings, and what every later version does, are what they
 * would have been. Not for a state that is joined with another (joinMerge
 * counts on `seen`), which is why regions do not trim.
 */
export function withoutWriters(state: MergeState, gone: (replica: ReplicaId) => boolean): MergeState {
  const keep = new Set(state.siblings.map((v) => v.replica));
  const drop = (replica: ReplicaId): boolean => !keep.has(replica) && gone(replica);
  const trim = (v: VersionVector): VersionVector => {
    let out: Map<ReplicaId, number> | undefined;
    for (const replica of v.keys()) {
      if (!drop(replica)) continue;
      out ??= new Map(v);
      out.delete(replica);
    }
    return out ?? v;
  };
  const seen = trim(state.seen);
  let changed = seen !== state.seen;
  const siblings = state.siblings.map((v) => {
    const context = trim(v.context);
    if (context === v.context) return v;
    changed = true;
    return { ...v, context };
  });
  return changed ? { seen, siblings } : state;
}

/**
 * Version vectors: { replica -> highest contiguous sequence number held }.
 *
 * A vector says exactly which changes a party holds when it holds every change
 * of each replica from 1 up to the number given. Changes can arrive out of order
 * (all-to-all relays, retries), so SeqSet tracks what is held beyond a gap and
 * only the contiguous prefix enters the vector.
 */
import type { ReplicaId } from './ids.js';

/**
 * A version vector: for each replica, the highest sequence number n such that
 * every change 1..n of that replica is held (replicas absent: 0). On the wire,
 * sorted [replica, seq] pairs.
 */
export type VersionVector = ReadonlyMap<ReplicaId, number>;

/** How one version vector relates to another in causal order (`compare`). */
export type Ordering = 'before' | 'after' | 'equal' | 'concurrent';

/** A vector from [replica, seq] pairs: entries of 0 or less are dropped, and a replica listed twice keeps its highest seq. */
export function vector(entries: Iterable<readonly [ReplicaId, number]> = []): VersionVector {
  const out = new Map<ReplicaId, number>();
  for (const [replica, seq] of entries) if (seq > 0) out.set(replica, Math.max(seq, out.get(replica) ?? 0));
  return out;
}

/** The highest contiguous seq `v` holds for `replica` (0: none). */
export function get(v: VersionVector, replica: ReplicaId): number {
  return v.get(replica) ?? 0;
}

/** Pointwise maximum. */
export function merge(a: VersionVector, b: VersionVector): VersionVector {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const out = new Map(a);
  for (const [replica, seq] of b) if (seq > (out.get(replica) ?? 0)) out.set(replica, seq);
  return out;
}

/** True when `a` holds everything `b` holds. */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  for (const [replica, seq] of b) if ((a.get(replica) ?? 0) < seq) return false;
  return true;
}

/** How `a` relates to `b` in causal order. */
export function compare(a: VersionVector, b: VersionVector): Ordering {
  const aCoversB = dominates(a, b);
  const bCoversA = dominates(b, a);
  if (aCoversB && bCoversA) return 'equal';
  if (aCoversB) return 'after';
  if (bCoversA) return 'before';
  return 'concurrent';
}

/** True when `v` holds change `seq` of `replica` (and so every earlier one). */
export function covers(v: VersionVector, replica: ReplicaId, seq: number): boolean {
  return (v.get(replica) ?? 0) >= seq;
}

/** An inclusive range of one replica's sequence numbers. */
export interface SeqRange {
  /** Whose changes. */
  readonly replica: ReplicaId;
  /** The first seq of the range (>= 1). */
  readonly from: number;
  /** The last seq of the range (>= from). */
  readonly to: number;
}

/** The changes `theirs` holds and `mine` lacks, as ranges (both contiguous vectors). */
export function missing(mine: VersionVector, theirs: VersionVector): SeqRange[] {
  const out: SeqRange[] = [];
  for (const [replica, seq] of theirs) {
    const have = mine.get(replica) ?? 0;
    if (seq > have) out.push({ replica, from: have + 1, to: seq });
  }
  return out.sort((x, y) => (x.replica < y.replica ? -1 : x.replica > y.replica ? 1 : 0));
}

/** Sorted pairs: the stable serialized form (vectors are Maps in memory). */
export function toEntries(v: VersionVector): Array<[ReplicaId, number]> {
  return [...v].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

/** True when `a` and `b` hold the same changes. */
export function equals(a: VersionVector, b: VersionVector): boolean {
  return compare(a, b) === 'equal';
}

/**
 * The set of sequence numbers held per replica, gaps included. `vector()` is the
 * contiguous prefix; `missing()` lists what is absent up to another party's vector,
 * so a change held beyond a gap is never requested again.
 */
export class SeqSet {
  readonly #contiguous = new Map<ReplicaId, number>();
  /** Sequence numbers above the contiguous prefix, per replica. */
  readonly #beyond = new Map<ReplicaId, Set<number>>();

  /** A set holding exactly what vector `v` holds. */
  static from(v: VersionVector): SeqSet {
    const set = new SeqSet();
    for (const [replica, seq] of v) set.#contiguous.set(replica, seq);
    return set;
  }

  /** True when change `seq` of `replica` is held. */
  has(replica: ReplicaId, seq: number): boolean {
    return seq <= (this.#contiguous.get(replica) ?? 0) || (this.#beyond.get(replica)?.has(seq) ?? false);
  }

  /**
   * Adds a sequence number; returns false when it was already held.
   * @throws RangeError when `seq` is not a safe integer >= 1.
   */
  add(replica: ReplicaId, seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`sequence numbers start at 1, got ${seq}`);
    if (this.has(replica, seq)) return false;
    let top = this.#contiguous.get(replica) ?? 0;
    if (seq !== top + 1) {
      let beyond = this.#beyond.get(replica);
      if (!beyond) this.#beyond.set(replica, (beyond = new Set()));
      beyond.add(seq);
      return true;
    }
    top = seq;
    const beyond = this.#beyond.get(replica);
    if (beyond) {
      while (beyond.delete(top + 1)) top++;
      if (beyond.size === 0) this.#beyond.delete(replica);
    }
    this.#contiguous.set(replica, top);
    return true;
  }

  /** Highest contiguous sequence per replica. */
  vector(): VersionVector {
    return new Map(this.#contiguous);
  }

  /** Replicas with a gap, and the sequence numbers held beyond it. */
  gaps(): Map<ReplicaId, number[]> {
    const out = new Map<ReplicaId, number[]>();
    for (const [replica, seqs] of this.#beyond) out.set(replica, [...seqs].sort((a, b) => a - b));
    return out;
  }

  /** What `theirs` holds that this set lacks, skipping numbers held beyond a gap. */
  missing(theirs: VersionVector): SeqRange[] {
    const out: SeqRange[] = [];
    for (const [replica, upTo] of theirs) {
      let from = (this.#contiguous.get(replica) ?? 0) + 1;
      const held = [...(this.#beyond.get(replica) ?? [])].filter((s) => s <= upTo).sort((a, b) => a - b);
      for (const seq of held) {
        if (seq > from) out.push({ replica, from, to: seq - 1 });
        from = seq + 1;
      }
      if (from <= upTo) out.push({ replica, from, to: upTo });
    }
    return out.sort((x, y) => (x.replica < y.replica ? -1 : x.replica > y.replica ? 1 : x.from - y.from));
  }
}

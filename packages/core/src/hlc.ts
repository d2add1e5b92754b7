/**
 * Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks", 2014).
 *
 * A timestamp is (wall, counter, replica): `wall` tracks the largest physical time
 * seen in milliseconds, `counter` orders events within one `wall` value, and the
 * replica id breaks ties, so timestamps form a total order. Invariants:
 *  - now() and receive() return strictly increasing timestamps, even when the
 *    injected physical clock steps backwards;
 *  - after receive(r), every later local timestamp is greater than r, however far
 *    ahead r is: causality comes first (a write is ordered after everything its
 *    writer had seen). Whether r is too far ahead is the caller's judgement
 *    (`aheadBy`) against a time it trusts: replicas judge it against the sync
 *    server's clock, and the server refuses pushes stamped too far ahead of it;
 *  - wall - physical time stays bounded by how far ahead received timestamps were,
 *    plus counter overflow (1 ms per 65,536 events);
 *  - rewind() is the one way back, for a caller that re-stamps every timestamp it
 *    issued above the rewind point before anyone saw them (the client's re-stamping).
 */
import { SynclineError } from './errors.js';
import { isReplicaId, type ReplicaId } from './ids.js';

/** A hybrid logical clock timestamp, parsed. Compare two with compareTimestamps. */
export interface Timestamp {
  /** Wall time: the largest physical time seen, ms since the epoch (at most MAX_WALL). */
  readonly wall: number;
  /** Orders events within one `wall` value: 0 to MAX_COUNTER. */
  readonly counter: number;
  /** The replica that issued it: breaks ties, so timestamps are totally ordered. */
  readonly replica: ReplicaId;
}

/** Fixed widths make the string form sort like the timestamps it encodes. */
const WALL_DIGITS = 12; // hex milliseconds: enough until the year 10889
const COUNTER_DIGITS = 4;
/** The largest counter (65,535); one more event in the same millisecond moves the wall time 1 ms ahead. */
export const MAX_COUNTER = 0xffff;
/** The largest wall time a timestamp holds, ms (16^12 - 1: the year 10889). */
export const MAX_WALL = 16 ** WALL_DIGITS - 1;
/**
 * Default tolerance for timestamps ahead of a clock, ms: 300,000 (5 minutes).
 * The server refuses pushes stamped further ahead of its clock (`clock_drift`);
 * a replica reports a device clock further off than this as `clockSkew`.
 */
export const DEFAULT_MAX_CLOCK_DRIFT = 5 * 60_000;

/**
 * A timestamp as a string, "wwwwwwwwwwww-cccc-replica" (12 hex digits of wall
 * time, 4 of counter, the replica id): strings compare in timestamp order, so it
 * can be a database or IndexedDB key. Make one with formatTimestamp or Hlc.nowString.
 */
export type HlcString = string & {
  /** Brand only (never present at run time): a plain string is not an HlcString. */
  readonly __hlc: true;
};

/** The string form of a timestamp (see HlcString). */
export function formatTimestamp(ts: Timestamp): HlcString {
  return `${ts.wall.toString(16).padStart(WALL_DIGITS, '0')}-${ts.counter
    .toString(16)
    .padStart(COUNTER_DIGITS, '0')}-${ts.replica}` as HlcString;
}

const HLC_PATTERN = /^([0-9a-f]{12})-([0-9a-f]{4})-([A-Za-z0-9_-]{1,64})$/;

/** True when `value` is a well-formed HlcString. */
export function isHlcString(value: unknown): value is HlcString {
  return typeof value === 'string' && HLC_PATTERN.test(value);
}

/**
 * Parses an HlcString.
 * @throws SynclineError with code `invalid_timestamp` when `value` is not one.
 */
export function parseTimestamp(value: string): Timestamp {
  const match = HLC_PATTERN.exec(value);
  if (!match) throw new SynclineError('invalid_timestamp', `not an HLC timestamp: ${JSON.stringify(value)}`);
  return {
    wall: Number.parseInt(match[1] as string, 16),
    counter: Number.parseInt(match[2] as string, 16),
    replica: match[3] as ReplicaId,
  };
}

/** Negative, 0 or positive as `a` is before, equal to or after `b` (wall, then counter, then replica id). */
export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  return a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0;
}

/** Compares two HlcStrings without parsing them: the same order as compareTimestamps on the parsed values. */
export function compareHlc(a: HlcString, b: HlcString): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The later of two timestamps; undefined only when both are. */
export function maxHlc<T extends HlcString | undefined>(a: T, b: T): T {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return (a as string) >= (b as string) ? a : b;
}

/** The wall time encoded in an HLC string, without a full parse. */
export function hlcWall(value: HlcString): number {
  return Number.parseInt(value.slice(0, WALL_DIGITS), 16);
}

/** Options of `new Hlc(...)`. */
export interface HlcOptions {
  /** The replica whose timestamps this clock issues (it ends each of them). */
  readonly replica: ReplicaId;
  /** Physical clock in milliseconds since the epoch; injected for tests and simulation. */
  readonly now: () => number;
  /** The last timestamp issued before a restart; the clock never goes below it. */
  readonly last?: Timestamp | HlcString;
}

/**
 * A hybrid logical clock for one replica: `now()` for local events, `receive()`
 * for timestamps seen from others. See the invariants at the top of hlc.ts.
 *
 * Its methods throw SynclineError with code `invalid_clock` when the injected
 * physical clock returns something other than a non-negative safe integer of
 * milliseconds, and `clock_overflow` when the wall time cannot advance past MAX_WALL.
 */
export class Hlc {
  /** The replica whose timestamps this clock issues. */
  readonly replica: ReplicaId;
  readonly #physical: () => number;
  #wall = 0;
  #counter = 0;

  /**
   * @throws TypeError when `options.replica` is not a valid ReplicaId;
   * SynclineError (`invalid_timestamp`) when `options.last` is a malformed HlcString.
   */
  constructor(options: HlcOptions) {
    if (!isReplicaId(options.replica)) throw new TypeError(`invalid replica id ${JSON.stringify(options.replica)}`);
    this.replica = options.replica;
    this.#physical = options.now;
    if (options.last !== undefined) {
      const last = typeof options.last === 'string' ? parseTimestamp(options.last) : options.last;
      this.#wall = last.wall;
      this.#counter = last.counter;
    }
  }

  /** The last timestamp issued or received; persist it to keep the clock monotonic across restarts. */
  get last(): Timestamp {
    return { wall: this.#wall, counter: this.#counter, replica: this.replica };
  }

  /** A timestamp for a local event (send or local write). */
  now(): Timestamp {
    const physical = this.#readPhysical();
    if (physical > this.#wall) {
      this.#wall = physical;
      this.#counter = 0;
    } else {
      this.#increment();
    }
    return this.last;
  }

  /** Shorthand for formatTimestamp(now()). */
  nowString(): HlcString {
    return formatTimestamp(this.now());
  }

  /**
   * Merges a remote timestamp into the clock (a receive event) and returns the
   * new local timestamp, which is greater than both the remote and every earlier
   * local timestamp. Never refuses: see `aheadBy` for judging drift.
   */
  receive(remote: Timestamp | HlcString): Timestamp {
    const r = typeof remote === 'string' ? parseTimestamp(remote) : remote;
    const physical = this.#readPhysical();
    const wall = Math.max(this.#wall, r.wall, physical);
    if (wall === this.#wall && wall === r.wall) {
      this.#counter = Math.max(this.#counter, r.counter);
      this.#increment();
    } else if (wall === this.#wall) {
      this.#increment();
    } else if (wall === r.wall) {
      this.#wall = wall;
      this.#counter = r.counter;
      this.#increment();
    } else {
      this.#wall = wall;
      this.#counter = 0;
    }
    return this.last;
  }

  /** How far (ms) a timestamp's wall time is ahead of the physical clock now (negative: behind). */
  aheadBy(remote: Timestamp | HlcString): number {
    const r = typeof remote === 'string' ? parseTimestamp(remote) : remote;
    return r.wall - this.#readPhysical();
  }

  /**
   * Moves the clock to `to`, backwards too. Only for a caller that re-stamps
   * every timestamp it issued above `to` before anyone else sees them: otherwise
   * the clock would issue a timestamp twice.
   */
  rewind(to: Timestamp | HlcString): void {
    const t = typeof to === 'string' ? parseTimestamp(to) : to;
    this.#wall = t.wall;
    this.#counter = t.counter;
  }

  /**
   * Counter overflow moves the clock 1 ms ahead of its wall time instead of failing:
   * the order stays strict and the drift this adds is bounded by the event rate.
   */
  #increment(): void {
    if (this.#counter < MAX_COUNTER) {
      this.#counter++;
      return;
    }
    if (this.#wall >= MAX_WALL) throw new SynclineError('clock_overflow', 'hybrid logical clock reached its maximum value');
    this.#wall++;
    this.#counter = 0;
  }

  #readPhysical(): number {
    const value = Math.floor(this.#physical());
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new SynclineError('invalid_clock', `physical clock returned ${value}; expected milliseconds since the epoch`);
    }
    return Math.min(value, MAX_WALL);
  }
}

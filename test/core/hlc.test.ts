/**
 * Hybrid logical clock (DESIGN.md "Data model"; Kulkarni et al. 2014). The physical
 * clock is always injected, so every test controls time exactly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Hlc,
  MAX_COUNTER,
  MAX_WALL,
  compareHlc,
  compareTimestamps,
  formatTimestamp,
  hlcWall,
  isHlcString,
  maxHlc,
  parseTimestamp,
  replicaId,
  type HlcString,
  type Timestamp,
} from '@syncline/core/internal';

const A = replicaId('alice');
const B = replicaId('bob');

/** A physical clock the test sets by hand. */
function manualClock(start: number): { now: () => number; set: (ms: number) => void } {
  let time = start;
  return { now: () => time, set: (ms) => void (time = ms) };
}

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
const less = (a: Timestamp, b: Timestamp): boolean => compareTimestamps(a, b) < 0;

describe('Hlc.now()', () => {
  it('follows the physical clock when it moves forward', () => {
    const phys = manualClock(1_000);
    const clock = new Hlc({ replica: A, now: phys.now });
    expect(clock.now()).toEqual({ wall: 1_000, counter: 0, replica: A });
    phys.set(1_005);
    expect(clock.now()).toEqual({ wall: 1_005, counter: 0, replica: A });
  });

  it('is strictly increasing while the physical clock stands still', () => {
    const clock = new Hlc({ replica: A, now: () => 42_000 });
    let previous = clock.now();
    for (let i = 1; i < 1_000; i++) {
      const next = clock.now();
      expect(less(previous, next)).toBe(true);
      expect(next).toEqual({ wall: 42_000, counter: i, replica: A });
      previous = next;
    }
  });

  it('keeps increasing when the wall clock steps backwards (10,000 -> 5,000)', () => {
    const phys = manualClock(10_000);
    const clock = new Hlc({ replica: A, now: phys.now });
    const before = clock.now();
    phys.set(5_000);
    const stamps = [before];
    for (let i = 0; i < 10; i++) stamps.push(clock.now());
    for (let i = 1; i < stamps.length; i++) expect(less(stamps[i - 1] as Timestamp, stamps[i] as Timestamp)).toBe(true);
    // The clock holds its wall time and counts; it does not follow the physical clock back.
    expect(stamps.at(-1)).toEqual({ wall: 10_000, counter: 10, replica: A });
    // Once physical time passes the old wall time again, the clock follows it.
    phys.set(10_001);
    expect(clock.now()).toEqual({ wall: 10_001, counter: 0, replica: A });
  });

  it('stays strictly increasing through counter overflow and moves wall by at most 1 ms per 65,536 events', () => {
    const clock = new Hlc({ replica: A, now: () => 1_000 });
    const events = 3 * 65_536 + 10;
    let previous = clock.now();
    for (let n = 2; n <= events; n++) {
      const next = clock.now();
      if (!less(previous, next)) throw new Error(`event ${n}: ${JSON.stringify(next)} is not after ${JSON.stringify(previous)}`);
      // n events in one physical millisecond: the wall ran ahead by floor((n - 1) / 65,536) ms.
      if (next.wall - 1_000 !== Math.floor((n - 1) / 65_536)) throw new Error(`event ${n}: wall ${next.wall}`);
      previous = next;
    }
    expect(previous).toEqual({ wall: 1_003, counter: 9, replica: A });
    expect(MAX_COUNTER).toBe(65_535);
  });

  it('nowString() is the string form of the next timestamp', () => {
    const clock = new Hlc({ replica: A, now: () => 0x1234 });
    expect(clock.nowString()).toBe('000000001234-0000-alice');
    expect(clock.nowString()).toBe('000000001234-0001-alice');
  });

  it('refuses a physical clock that is not milliseconds since the epoch', () => {
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      const clock = new Hlc({ replica: A, now: () => bad });
      expect(() => clock.now()).toThrow(expect.objectContaining({ code: 'invalid_clock' }));
    }
  });

  it('rejects an invalid replica id', () => {
    expect(() => new Hlc({ replica: 'no spaces' as never, now: () => 0 })).toThrow(TypeError);
  });
});

describe('Hlc.receive()', () => {
  it('returns a timestamp above the remote one and above every earlier local one', () => {
    const phys = manualClock(1_000);
    const clock = new Hlc({ replica: A, now: phys.now });
    const local = clock.now();
    const remote: Timestamp = { wall: 2_000, counter: 7, replica: B };
    const received = clock.receive(remote);
    expect(received).toEqual({ wall: 2_000, counter: 8, replica: A });
    expect(less(local, received) && less(remote, received)).toBe(true);
    // Later local events stay above the remote timestamp although physical time is behind it.
    const next = clock.now();
    expect(less(remote, next)).toBe(true);
    expect(next).toEqual({ wall: 2_000, counter: 9, replica: A });
  });

  it('merges counters when local and remote share the wall time', () => {
    const clock = new Hlc({ replica: A, now: () => 500 });
    clock.now();
    clock.now(); // 500/1
    expect(clock.receive({ wall: 500, counter: 5, replica: B })).toEqual({ wall: 500, counter: 6, replica: A });
    expect(clock.receive({ wall: 500, counter: 2, replica: B })).toEqual({ wall: 500, counter: 7, replica: A });
  });

  it('takes the physical time when it is ahead of both', () => {
    const clock = new Hlc({ replica: A, now: () => 9_000 });
    expect(clock.receive({ wall: 100, counter: 3, replica: B })).toEqual({ wall: 9_000, counter: 0, replica: A });
  });

  it('accepts the string form', () => {
    const clock = new Hlc({ replica: A, now: () => 1 });
    const remote = formatTimestamp({ wall: 300, counter: 2, replica: B });
    expect(clock.receive(remote)).toEqual({ wall: 300, counter: 3, replica: A });
  });

  it('receives a remote however far ahead it is: causality first, drift is judged by the caller', () => {
    const phys = manualClock(100_000);
    const clock = new Hlc({ replica: A, now: phys.now });
    clock.now();
    // Ten days ahead: still received, and every later local timestamp is above it.
    const far = { wall: 100_000 + 10 * 86_400_000, counter: 7, replica: B };
    expect(clock.aheadBy(far)).toBe(10 * 86_400_000);
    expect(clock.receive(far)).toEqual({ wall: far.wall, counter: 8, replica: A });
    expect(less(far, clock.now())).toBe(true);
    // Also as a string.
    const later = formatTimestamp({ wall: far.wall + 5, counter: 0, replica: B });
    expect(clock.aheadBy(later)).toBe(10 * 86_400_000 + 5);
    expect(clock.receive(later)).toEqual({ wall: far.wall + 5, counter: 1, replica: A });
  });

  it('judges how far ahead against the current physical clock, not the wall time it has reached', () => {
    const phys = manualClock(100_000);
    const clock = new Hlc({ replica: A, now: phys.now });
    clock.receive({ wall: 101_000, counter: 0, replica: B });
    phys.set(99_999);
    expect(clock.aheadBy({ wall: 101_000, counter: 5, replica: B })).toBe(1_001);
    expect(clock.aheadBy({ wall: 99_000, counter: 5, replica: B })).toBe(-999);
    expect(clock.last).toEqual({ wall: 101_000, counter: 1, replica: A });
  });

  it('rewind() moves the clock back, and the next timestamps go on from there', () => {
    const phys = manualClock(100_000);
    const clock = new Hlc({ replica: A, now: phys.now });
    clock.receive({ wall: 5_000_000, counter: 3, replica: B });
    clock.rewind({ wall: 200_000, counter: 9, replica: A });
    expect(clock.last).toEqual({ wall: 200_000, counter: 9, replica: A });
    expect(clock.now()).toEqual({ wall: 200_000, counter: 10, replica: A });
    clock.rewind(formatTimestamp({ wall: 50_000, counter: 0, replica: A }));
    // The physical clock is ahead of the rewound wall time again: it takes over.
    expect(clock.now()).toEqual({ wall: 100_000, counter: 0, replica: A });
  });

  it('overflows the counter like now() when the remote counter is at its maximum', () => {
    const clock = new Hlc({ replica: A, now: () => 100_000 });
    const received = clock.receive({ wall: 101_000, counter: MAX_COUNTER, replica: B });
    expect(received).toEqual({ wall: 101_001, counter: 0, replica: A });
    expect(less({ wall: 101_000, counter: MAX_COUNTER, replica: B }, received)).toBe(true);
  });
});

describe('restart from last', () => {
  it('never goes backwards, from a Timestamp or its string form', () => {
    const phys = manualClock(50_000);
    const first = new Hlc({ replica: A, now: phys.now });
    for (let i = 0; i < 5; i++) first.now();
    first.receive({ wall: 60_000, counter: 3, replica: B });
    const last = first.last;
    expect(last).toEqual({ wall: 60_000, counter: 4, replica: A });
    // After a restart the physical clock is behind the persisted timestamp (the device clock was fixed).
    phys.set(1_000);
    for (const persisted of [last, formatTimestamp(last)]) {
      const restarted = new Hlc({ replica: A, now: phys.now, last: persisted });
      expect(restarted.last).toEqual(last);
      const next = restarted.now();
      expect(less(last, next)).toBe(true);
      expect(next).toEqual({ wall: 60_000, counter: 5, replica: A });
    }
  });

  it('follows the physical clock once it is ahead of the persisted timestamp', () => {
    const clock = new Hlc({ replica: A, now: () => 70_000, last: { wall: 60_000, counter: 9, replica: A } });
    expect(clock.now()).toEqual({ wall: 70_000, counter: 0, replica: A });
  });

  it('refuses a malformed persisted timestamp', () => {
    expect(() => new Hlc({ replica: A, now: () => 0, last: 'yesterday' as HlcString })).toThrow(
      expect.objectContaining({ code: 'invalid_timestamp' }),
    );
  });
});

// ---------------------------------------------------------------------------
// Properties from the HLC paper over random interleavings of several clocks.

type Event =
  | { readonly kind: 'tick'; readonly ms: number }
  | { readonly kind: 'jump'; readonly clock: number; readonly delta: number }
  | { readonly kind: 'local'; readonly clock: number; readonly count: number }
  | { readonly kind: 'send'; readonly from: number; readonly to: number }
  | { readonly kind: 'receive'; readonly pick: number }
  | { readonly kind: 'restart'; readonly clock: number };

const CLOCKS_MAX = 5;
const arbEvent: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant('tick' as const), ms: fc.nat({ max: 40 }) }),
  fc.record({ kind: fc.constant('jump' as const), clock: fc.nat({ max: CLOCKS_MAX - 1 }), delta: fc.integer({ min: -5_000, max: 3_000 }) }),
  fc.record({ kind: fc.constant('local' as const), clock: fc.nat({ max: CLOCKS_MAX - 1 }), count: fc.integer({ min: 1, max: 3 }) }),
  // A burst of events within a few milliseconds pushes the counter.
  fc.record({ kind: fc.constant('local' as const), clock: fc.nat({ max: CLOCKS_MAX - 1 }), count: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ kind: fc.constant('send' as const), from: fc.nat({ max: CLOCKS_MAX - 1 }), to: fc.nat({ max: CLOCKS_MAX - 1 }) }),
  fc.record({ kind: fc.constant('send' as const), from: fc.nat({ max: CLOCKS_MAX - 1 }), to: fc.nat({ max: CLOCKS_MAX - 1 }) }),
  fc.record({ kind: fc.constant('receive' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('receive' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('restart' as const), clock: fc.nat({ max: CLOCKS_MAX - 1 }) }),
);

const arbRun = fc.record({
  clocks: fc.integer({ min: 3, max: CLOCKS_MAX }),
  skews: fc.array(fc.integer({ min: -3_000, max: 3_000 }), { minLength: CLOCKS_MAX, maxLength: CLOCKS_MAX }),
  events: fc.array(arbEvent, { maxLength: 150, size: 'max' }),
});

interface Sim {
  clock: Hlc;
  offset: number;
  /** Largest physical time the clock has read. */
  maxPhysical: number;
  /** Last timestamp this clock issued or received (its own). */
  last: Timestamp | undefined;
  /** Largest remote timestamp it received. */
  maxReceived: Timestamp | undefined;
}

describe('HLC properties (random interleavings of local events, sends and receives)', () => {
  it('(a) monotonic per clock, (b) received timestamps stay below later local ones, (c) no wall time runs ahead of every physical clock', () => {
    let received = 0;
    fc.assert(
      fc.property(arbRun, ({ clocks, skews, events }) => {
        let trueTime = 1_700_000_000_000;
        let totalEvents = 0;
        /** The largest physical time any clock has read. */
        let fastest = 0;
        const sims: Sim[] = [];
        const physical = (sim: Sim) => (): number => {
          const value = trueTime + sim.offset;
          sim.maxPhysical = Math.max(sim.maxPhysical, value);
          fastest = Math.max(fastest, value);
          return value;
        };
        for (let i = 0; i < clocks; i++) {
          const sim = { offset: skews[i] ?? 0, maxPhysical: 0, last: undefined, maxReceived: undefined } as unknown as Sim;
          sim.clock = new Hlc({ replica: replicaId(`clock-${i}`), now: physical(sim) });
          sims.push(sim);
        }
        const inFlight: Array<{ to: number; ts: Timestamp }> = [];

        // Plain checks (this runs for every timestamp): a failure names the property and the values.
        const check = (ok: boolean, what: string, ...values: unknown[]): void => {
          if (!ok) throw new Error(`${what}: ${JSON.stringify(values)}`);
        };
        const issued = (sim: Sim, ts: Timestamp): void => {
          totalEvents++;
          // (a) strictly increasing per clock, whatever the physical clock did.
          check(sim.last === undefined || less(sim.last, ts), '(a) not monotonic', sim.last, ts);
          // (b) every local timestamp after a receive is above the received timestamp.
          check(sim.maxReceived === undefined || less(sim.maxReceived, ts), '(b) not above a received timestamp', sim.maxReceived, ts);
          check(compareTimestamps(sim.clock.last, ts) === 0, 'last is not the latest timestamp', sim.clock.last, ts);
          sim.last = ts;
          // (c) a wall time comes from some clock's physical time (received or read), plus
          // counter overflow (none below 65,536 events in all): never ahead of the fastest clock.
          const bound = Math.floor(totalEvents / (MAX_COUNTER + 1));
          check(ts.wall - fastest <= bound, '(c) wall ran ahead of every physical clock', ts, fastest, bound);
        };

        for (const event of events) {
          switch (event.kind) {
            case 'tick':
              trueTime += event.ms;
              break;
            case 'jump': {
              const sim = sims[event.clock % clocks] as Sim;
              sim.offset = Math.max(-600_000, Math.min(600_000, sim.offset + event.delta));
              break;
            }
            case 'local': {
              const sim = sims[event.clock % clocks] as Sim;
              for (let i = 0; i < event.count; i++) issued(sim, sim.clock.now());
              break;
            }
            case 'send': {
              const sim = sims[event.from % clocks] as Sim;
              const ts = sim.clock.now();
              issued(sim, ts);
              // Messages travel in the string form, as changes do.
              inFlight.push({ to: event.to % clocks, ts: parseTimestamp(formatTimestamp(ts)) });
              break;
            }
            case 'receive': {
              if (inFlight.length === 0) break;
              const [message] = inFlight.splice(event.pick % inFlight.length, 1) as [{ to: number; ts: Timestamp }];
              const sim = sims[message.to] as Sim;
              const ahead = message.ts.wall - (trueTime + sim.offset);
              expect(sim.clock.aheadBy(message.ts)).toBe(ahead);
              const merged = sim.clock.receive(message.ts);
              expect(compareTimestamps(message.ts, merged)).toBeLessThan(0);
              received++;
              if (sim.maxReceived === undefined || less(sim.maxReceived, message.ts)) sim.maxReceived = message.ts;
              issued(sim, merged);
              break;
            }
            case 'restart': {
              const sim = sims[event.clock % clocks] as Sim;
              const persisted = formatTimestamp(sim.clock.last);
              sim.clock = new Hlc({ replica: sim.clock.replica, now: physical(sim), last: persisted });
              break;
            }
          }
        }
        // Every clock can still issue a timestamp after all that.
        for (const sim of sims) issued(sim, sim.clock.now());
      }),
      { numRuns: 1000 },
    );
    expect(received).toBeGreaterThan(3000);
  });

  it('aheadBy() is the remote wall minus the physical clock, and receive() always lands above the remote', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: -20_000, max: 20_000_000 }),
        fc.nat({ max: MAX_COUNTER }),
        (physical, ahead, counter) => {
          const clock = new Hlc({ replica: A, now: () => physical });
          const remote = { wall: Math.max(0, physical + ahead), counter, replica: B };
          expect(clock.aheadBy(remote)).toBe(remote.wall - physical);
          expect(compareTimestamps(remote, clock.receive(remote))).toBeLessThan(0);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------
// String form.

const arbReplica = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const arbTimestamp: fc.Arbitrary<Timestamp> = fc.record({
  wall: fc.oneof(fc.integer({ min: 0, max: MAX_WALL }), fc.integer({ min: 1_600_000_000_000, max: 1_600_000_000_003 })),
  counter: fc.oneof(fc.integer({ min: 0, max: MAX_COUNTER }), fc.integer({ min: 0, max: 3 })),
  replica: arbReplica.map(replicaId),
});
/** Pairs that often share the wall time, the counter or the replica, so every tie-break is exercised. */
const arbPair: fc.Arbitrary<[Timestamp, Timestamp]> = fc
  .tuple(arbTimestamp, arbTimestamp, fc.boolean(), fc.boolean(), fc.boolean())
  .map(([a, b, sameWall, sameCounter, sameReplica]) => [
    a,
    { wall: sameWall ? a.wall : b.wall, counter: sameCounter ? a.counter : b.counter, replica: sameReplica ? a.replica : b.replica },
  ]);

describe('HLC string form', () => {
  it('parse(format(x)) === x, and the string is a valid HLC string', () => {
    fc.assert(
      fc.property(arbTimestamp, (ts) => {
        const text = formatTimestamp(ts);
        expect(isHlcString(text)).toBe(true);
        expect(parseTimestamp(text)).toEqual(ts);
        expect(formatTimestamp(parseTimestamp(text))).toBe(text);
        expect(hlcWall(text)).toBe(ts.wall);
      }),
      { numRuns: 2000 },
    );
  });

  it('formatTimestamp sorts the same as compareTimestamps', () => {
    fc.assert(
      fc.property(arbPair, ([a, b]) => {
        const fa = formatTimestamp(a);
        const fb = formatTimestamp(b);
        const expected = sign(compareTimestamps(a, b));
        expect(sign(compareHlc(fa, fb))).toBe(expected);
        // Plain string comparison, as IndexedDB and SQL indexes do it.
        expect(fa < fb ? -1 : fa > fb ? 1 : 0).toBe(expected);
        expect(maxHlc(fa, fb)).toBe(expected >= 0 ? fa : fb);
      }),
      { numRuns: 5000 },
    );
  });

  it('sorting a list by its string form sorts it by timestamp', () => {
    fc.assert(
      fc.property(fc.array(arbTimestamp, { maxLength: 30 }), (list) => {
        const byString = [...list].sort((x, y) => compareHlc(formatTimestamp(x), formatTimestamp(y)));
        const byTimestamp = [...list].sort(compareTimestamps);
        expect(byString.map(formatTimestamp)).toEqual(byTimestamp.map(formatTimestamp));
      }),
      { numRuns: 500 },
    );
  });

  it('orders by wall, then counter, then replica', () => {
    const ts = (wall: number, counter: number, replica: string): Timestamp => ({ wall, counter, replica: replicaId(replica) });
    expect(compareTimestamps(ts(1, 9, 'z'), ts(2, 0, 'a'))).toBe(-1);
    expect(compareTimestamps(ts(2, 1, 'a'), ts(2, 0, 'z'))).toBe(1);
    expect(compareTimestamps(ts(2, 1, 'a'), ts(2, 1, 'b'))).toBe(-1);
    expect(compareTimestamps(ts(2, 1, 'a'), ts(2, 1, 'a-b'))).toBe(-1);
    expect(compareTimestamps(ts(2, 1, 'b'), ts(2, 1, 'b'))).toBe(0);
    // 0x10 > 0x9: fixed-width hex, not decimal text.
    expect(formatTimestamp(ts(9, 0, 'a')) < formatTimestamp(ts(16, 0, 'a'))).toBe(true);
    expect(formatTimestamp(ts(0, 0x9, 'a')) < formatTimestamp(ts(0, 0x10, 'a'))).toBe(true);
    expect(formatTimestamp(ts(MAX_WALL, MAX_COUNTER, 'a'))).toBe('ffffffffffff-ffff-a');
  });

  it('rejects malformed strings with code invalid_timestamp', () => {
    for (const bad of ['', '0000000003e8-0000', '0000000003e8-0000-', '3e8-0-alice', '0000000003E8-0000-alice', '0000000003e8-0000-bad id', `0000000003e8-0000-${'a'.repeat(65)}`]) {
      expect(isHlcString(bad)).toBe(false);
      expect(() => parseTimestamp(bad)).toThrow(expect.objectContaining({ code: 'invalid_timestamp' }));
    }
  });
});

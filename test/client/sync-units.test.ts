/**
 * The sync engine's small units, each against the guarantee its header states:
 *  - Backoff (sync/backoff.ts): attempt n waits within [ceiling / 2, ceiling],
 *    ceiling = min(max, initial * 2^n);
 *  - Pacer (sync/pacer.ts): a token bucket at 80% of the announced rate holding
 *    half a second's worth, so that the server's bucket (full rate, a second's
 *    burst) never runs dry for an honest client however frames bunch up;
 *  - recoveryFor (sync/recovery.ts): the error table, for every code.
 * Time is a fake performance.now (the pacer's monotonic clock); nothing sleeps.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ERROR_CODES, UNANNOUNCED_LIMITS, type ErrorCode } from '@syncline/core/internal';
import { Backoff } from '../../packages/client/src/sync/backoff.js';
import { Pacer } from '../../packages/client/src/sync/pacer.js';
import { recoveryFor, type Recovery } from '../../packages/client/src/sync/recovery.js';

// ---------------------------------------------------------------------------
// Backoff

describe('Backoff', () => {
  const ceilingOf = (initial: number, max: number, n: number): number => Math.min(max, initial * 2 ** n);

  it('defaults: 500 ms first ceiling, 30 s at most (250-500 ms first, 15-30 s at worst)', () => {
    const low = new Backoff({}, () => 0);
    const high = new Backoff({}, () => 1);
    const lows = Array.from({ length: 12 }, () => low.next());
    const highs = Array.from({ length: 12 }, () => high.next());
    expect(lows).toEqual([250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000, 15_000, 15_000, 15_000]);
    expect(highs).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('every delay is within [ceiling / 2, ceiling], ceiling = min(max, initial * 2^n), for random() = 0, 1 and anything between', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.array(fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true })), { minLength: 1, maxLength: 40 }),
        (initial, extra, randoms) => {
          const max = initial + extra;
          let i = 0;
          const backoff = new Backoff({ initialMs: initial, maxMs: max }, () => randoms[i] as number);
          randoms.forEach((r, n) => {
            i = n;
            const ceiling = ceilingOf(initial, max, n);
            const delay = backoff.next();
            expect(Number.isInteger(delay)).toBe(true);
            expect(delay, `attempt ${n}, random ${r}`).toBeGreaterThanOrEqual(ceiling / 2);
            expect(delay, `attempt ${n}, random ${r}`).toBeLessThanOrEqual(ceiling);
            if (r === 0) expect(delay).toBe(Math.round(ceiling / 2));
            if (r === 1) expect(delay).toBe(ceiling);
          });
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('reset() starts over from the first ceiling; backing off resumes from there', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: 0, max: 100_000 }), fc.nat(20), fc.nat(5), (initial, extra, before, after) => {
        const max = initial + extra;
        const backoff = new Backoff({ initialMs: initial, maxMs: max }, () => 1);
        for (let n = 0; n < before; n++) backoff.next();
        backoff.reset();
        for (let n = 0; n <= after; n++) expect(backoff.next()).toBe(ceilingOf(initial, max, n));
      }),
      { numRuns: 300 },
    );
  });

  it('options below the floor: initial at least 1 ms, max at least initial', () => {
    const zero = new Backoff({ initialMs: 0, maxMs: 0 }, () => 1);
    expect([zero.next(), zero.next()]).toEqual([1, 1]);
    const inverted = new Backoff({ initialMs: 1_000, maxMs: 10 }, () => 1);
    expect([inverted.next(), inverted.next()]).toEqual([1_000, 1_000]);
  });
});

// ---------------------------------------------------------------------------
// Pacer

/** The pacer's clock, moved by hand. */
let clock = 0;
beforeEach(() => {
  clock = 1_000_000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
});
afterEach(() => {
  vi.restoreAllMocks();
});

const rateOf = (mps: number): number => Math.max(0.5, mps * 0.8);
const capacityOf = (mps: number): number => Math.max(1, Math.floor(mps / 2));
const EPS = 1e-9;

type Op = { readonly advance: number; readonly op: 'take' | 'spend' };
const opArb = (spends: boolean): fc.Arbitrary<Op> =>
  fc.record({
    advance: fc.oneof(fc.constant(0), fc.nat(5), fc.nat(300), fc.nat(5_000)),
    op: spends ? fc.oneof({ weight: 5, arbitrary: fc.constant('take' as const) }, fc.constant('spend' as const)) : fc.constant('take' as const),
  });
const mpsArb = fc.oneof(fc.integer({ min: 5, max: 400 }), fc.integer({ min: 1, max: 12 }), fc.constantFrom(5, 200, 1_000));

/** Runs the ops; returns the sent messages: [time, kind]. A take that is refused sends nothing. */
function run(pacer: Pacer, ops: readonly Op[]): Array<readonly [number, 'take' | 'spend']> {
  const sent: Array<readonly [number, 'take' | 'spend']> = [];
  for (const { advance, op } of ops) {
    clock += advance;
    if (op === 'spend') {
      pacer.spend();
      sent.push([clock, 'spend']);
    } else if (pacer.take() === 0) sent.push([clock, 'take']);
  }
  return sent;
}

/** Every window [sent[i], sent[j]] ending with a granted take holds at most capacity + rate * W / 1000 messages. */
function expectPaced(sent: ReadonlyArray<readonly [number, 'take' | 'spend']>, capacity: number, rate: number, from = 0): void {
  for (let j = from; j < sent.length; j++) {
    if ((sent[j] as readonly [number, string])[1] !== 'take') continue;
    const end = (sent[j] as readonly [number, string])[0];
    for (let i = from; i <= j; i++) {
      const start = (sent[i] as readonly [number, string])[0];
      const count = j - i + 1;
      expect(count, `${count} messages in [${start}, ${end}]: capacity ${capacity}, rate ${rate}/s`).toBeLessThanOrEqual(capacity + (rate * (end - start)) / 1000 + EPS);
    }
  }
}

describe('Pacer', () => {
  it('a full bucket grants exactly capacity = floor(mps / 2) (at least 1) at once, then one message per 1 / (0.8 mps) s', () => {
    for (const mps of [1, 2, 3, 5, 6, 7, 10, 200, 1_000]) {
      const pacer = new Pacer(mps);
      let granted = 0;
      while (pacer.take() === 0) granted++;
      expect(granted, `mps ${mps}`).toBe(capacityOf(mps));
      // Empty: the next one waits for one token at 0.8 mps.
      expect(pacer.take(), `mps ${mps}`).toBe(Math.ceil(1_000 / rateOf(mps)));
    }
  });

  it('over any sequence of takes, no window of W ms holds more than capacity + 0.8 mps * W / 1000 messages', () => {
    fc.assert(
      fc.property(mpsArb, fc.array(opArb(false), { maxLength: 300 }), (mps, ops) => {
        const pacer = new Pacer(mps);
        expectPaced(run(pacer, ops), capacityOf(mps), rateOf(mps));
      }),
      { numRuns: 300 },
    );
  });

  it('spends (hello, ping, pong) go at once but are paid back: every window ending with a granted take still keeps the bound', () => {
    fc.assert(
      fc.property(mpsArb, fc.array(opArb(true), { maxLength: 300 }), (mps, ops) => {
        const pacer = new Pacer(mps);
        const sent = run(pacer, ops);
        expectPaced(sent, capacityOf(mps), rateOf(mps));
        // A spend on an empty bucket makes the next take wait for two tokens.
        clock += 100_000;
        while (pacer.take() === 0);
        pacer.spend();
        const wait = pacer.take();
        // The bucket held less than one token, minus the spend: more than one token to wait for.
        expect(wait).toBeGreaterThanOrEqual(Math.ceil(1_000 / rateOf(mps)));
      }),
      { numRuns: 300 },
    );
  });

  it('take() returns a positive wait when the bucket is empty, and a take after exactly that wait succeeds', () => {
    fc.assert(
      fc.property(mpsArb, fc.array(opArb(true), { maxLength: 100 }), fc.boolean(), (mps, ops, slow) => {
        const pacer = new Pacer(mps);
        run(pacer, ops);
        if (slow) pacer.slowDown();
        // Drain, then check every wait the pacer gives.
        for (let k = 0; k < 20; k++) {
          const wait = pacer.take();
          if (wait === 0) continue;
          expect(wait).toBeGreaterThan(0);
          expect(Number.isInteger(wait)).toBe(true);
          clock += wait;
          expect(pacer.take(), `after waiting ${wait} ms at mps ${mps}`).toBe(0);
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it('take() after exactly the wait it returned succeeds: an example (5/s, a spend leaving the bucket at -0.128 tokens)', () => {
    const pacer = new Pacer(5);
    expect(pacer.take()).toBe(0);
    clock += 214;
    expect(pacer.take()).toBe(0);
    clock += 4;
    pacer.spend();
    const wait = pacer.take();
    expect(wait).toBe(282);
    clock += wait;
    expect(pacer.take()).toBe(0);
  });

  it('slowDown() empties the bucket and halves the rate and the capacity (at least 0.5/s and 1), at most once a second', () => {
    fc.assert(
      fc.property(mpsArb, fc.array(fc.oneof(fc.nat(300), fc.integer({ min: 900, max: 2_500 })), { minLength: 1, maxLength: 5 }), fc.array(opArb(false), { maxLength: 200 }), (mps, gaps, ops) => {
        const pacer = new Pacer(mps);
        let rate = rateOf(mps);
        let capacity = capacityOf(mps);
        let slowedAt = Number.NEGATIVE_INFINITY;
        for (const gap of gaps) {
          clock += gap;
          pacer.slowDown();
          if (clock - slowedAt >= 1_000) {
            slowedAt = clock;
            rate = Math.max(0.5, rate / 2);
            capacity = Math.max(1, Math.floor(capacity / 2));
          }
        }
        const slowed = clock;
        // Empty: the next take waits for a whole token at the new rate.
        expect(pacer.take()).toBe(Math.ceil(1_000 / rate));
        // From here the bucket, empty, fills at the new rate up to the new capacity.
        const sent = run(pacer, ops);
        expectPaced(sent, capacity, rate);
        for (let j = 0; j < sent.length; j++) {
          const elapsed = (sent[j] as readonly [number, string])[0] - slowed;
          expect(j + 1, `${j + 1} messages ${elapsed} ms after slowing down`).toBeLessThanOrEqual((rate * elapsed) / 1000 + EPS);
        }
        clock += 100_000_000;
        let granted = 0;
        while (pacer.take() === 0) granted++;
        expect(granted).toBe(capacity);
      }),
      { numRuns: 300 },
    );
  });

  it('setRate changes the rate and the capacity; the tokens held are capped at the new capacity', () => {
    fc.assert(
      fc.property(mpsArb, mpsArb, fc.array(opArb(true), { maxLength: 50 }), fc.array(opArb(false), { maxLength: 200 }), (first, second, before, after) => {
        const pacer = new Pacer(first);
        run(pacer, before);
        pacer.setRate(second);
        const start = clock;
        const sent = run(pacer, after);
        expectPaced(sent, capacityOf(second), rateOf(second));
        // A long idle refills to the new capacity exactly.
        clock += 10_000_000;
        let granted = 0;
        while (pacer.take() === 0) granted++;
        expect(granted).toBe(capacityOf(second));
        expect(pacer.take()).toBe(Math.ceil(1_000 / rateOf(second)));
        expect(start).toBeLessThanOrEqual(clock);
      }),
      { numRuns: 300 },
    );
  });

  it('the server bucket (full rate, a burst of the same size, session.ts #takeToken) fed the paced messages never runs dry, even bunched by delays of 0-400 ms', () => {
    /** The server's bucket, as packages/server/src/session.ts keeps it (its own clock: the arrival times). */
    class ServerBucket {
      #tokens: number;
      #last: number;
      constructor(
        readonly rate: number,
        at: number,
      ) {
        this.#tokens = rate;
        this.#last = at;
      }
      take(now: number): boolean {
        this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#last) / 1000) * this.rate);
        this.#last = now;
        if (this.#tokens < 1) return false;
        this.#tokens -= 1;
        return true;
      }
    }
    const scenario = fc.record({
      mps: fc.oneof(fc.integer({ min: 5, max: 12 }), fc.integer({ min: 5, max: 500 })),
      roundTrip: fc.nat(500),
      // The pusher: after an idle time, pushes until it is made to wait, waits exactly that, pushes again.
      bursts: fc.array(fc.record({ idle: fc.oneof(fc.constant(0), fc.nat(50), fc.nat(3_000)), pushes: fc.integer({ min: 1, max: 40 }) }), { maxLength: 30 }),
      // Pings and pongs: spends at least 10 s apart (the engine pings every 20 s, the server every 30 s).
      pings: fc.array(fc.nat(20_000), { maxLength: 6 }),
      delays: fc.array(fc.nat(400), { minLength: 400, maxLength: 400 }),
    });
    fc.assert(
      fc.property(scenario, ({ mps, roundTrip, bursts, pings, delays }) => {
        const t0 = clock;
        // A session's pacer runs at the unannounced rate until welcome.
        const pacer = new Pacer(UNANNOUNCED_LIMITS.messagesPerSecond);
        const sent: number[] = [];
        pacer.spend();
        sent.push(clock); // hello
        clock += roundTrip;
        pacer.setRate(mps); // welcome
        let nextPing = t0 + 10_000 + (pings[0] ?? 0);
        let p = 1;
        const maybePing = () => {
          while (p <= pings.length && clock >= nextPing) {
            pacer.spend();
            sent.push(clock);
            nextPing = clock + 10_000 + (pings[p] ?? 0);
            p++;
          }
        };
        for (const { idle, pushes } of bursts) {
          clock += idle;
          maybePing();
          for (let n = 0; n < pushes; n++) {
            let wait = pacer.take();
            while (wait > 0) {
              clock += wait;
              maybePing();
              wait = pacer.take();
            }
            sent.push(clock);
          }
        }
        // Delivered in order, each delayed by 0-400 ms (a later frame never overtakes an earlier one).
        const server = new ServerBucket(mps, t0);
        let arrival = t0;
        sent.forEach((at, i) => {
          arrival = Math.max(arrival, at + (delays[i % delays.length] as number));
          expect(server.take(arrival), `message ${i} of ${sent.length} sent at ${at - t0} ms, arrived at ${arrival - t0} ms, ${mps}/s`).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------
// recoveryFor

/** The table recovery.ts documents, written out per code. */
function documented(code: ErrorCode, fatal: boolean, space: boolean, freshTokens: boolean): Recovery {
  if (fatal) {
    if (code === 'unsupported_protocol') return 'stop';
    if (code === 'replica_retired') return 'rejoin';
    if (code === 'unauthenticated' || code === 'forbidden') return freshTokens ? 'reconnect' : 'stop';
    if (code === 'frame_too_large') return 'shrink-frame';
    return 'reconnect';
  }
  if (code === 'rate_limited') return 'resend';
  if (code === 'batch_too_large') return 'shrink-batch';
  if (code === 'clock_drift') return 'restamp';
  if (code === 'below_horizon' && space) return 'push-again';
  return space ? 'stop-space' : 'resend';
}

describe('recoveryFor', () => {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[];

  it('covers every error code, fatal or not, with or without a space, with a static token or a token function', () => {
    const seen = new Set<Recovery>();
    for (const code of codes) {
      for (const fatal of [true, false]) {
        for (const space of [true, false]) {
          for (const fresh of [true, false]) {
            const error = { code, fatal, ...(space ? { space: 'space-1' } : {}) };
            const recovery = recoveryFor(error, fresh);
            expect(recovery, `${code} fatal=${fatal} space=${space} tokenFunction=${fresh}`).toBe(documented(code, fatal, space, fresh));
            seen.add(recovery);
            // An explicit undefined space is no space.
            if (!space) expect(recoveryFor({ code, fatal, space: undefined }, fresh)).toBe(recovery);
          }
        }
      }
    }
    expect([...seen].sort()).toEqual(['push-again', 'reconnect', 'rejoin', 'resend', 'restamp', 'shrink-batch', 'shrink-frame', 'stop', 'stop-space']);
  });

  it('from a server with a region, a sequence_gap of a space waits (the missing changes come over a region link); everything else is as without regions', () => {
    for (const code of codes) {
      for (const fatal of [true, false]) {
        for (const space of [true, false]) {
          const error = { code, fatal, ...(space ? { space: 'space-1' } : {}) };
          const want = code === 'sequence_gap' && !fatal && space ? 'wait' : documented(code, fatal, space, false);
          expect(recoveryFor(error, false, true), `${code} fatal=${fatal} space=${space}`).toBe(want);
        }
      }
    }
  });

  it('the cases the client README and the engine rely on', () => {
    const S = { space: 'space-1' };
    expect(recoveryFor({ code: 'unauthenticated', fatal: true }, false)).toBe('stop');
    expect(recoveryFor({ code: 'unauthenticated', fatal: true }, true)).toBe('reconnect');
    expect(recoveryFor({ code: 'forbidden', fatal: true }, false)).toBe('stop');
    expect(recoveryFor({ code: 'forbidden', fatal: true }, true)).toBe('reconnect');
    expect(recoveryFor({ code: 'rate_limited', fatal: false }, false)).toBe('resend');
    expect(recoveryFor({ code: 'rate_limited', fatal: false, ...S }, true)).toBe('resend');
    expect(recoveryFor({ code: 'forbidden', fatal: false, ...S }, false)).toBe('stop-space');
    expect(recoveryFor({ code: 'forbidden', fatal: false, ...S }, true)).toBe('stop-space');
    expect(recoveryFor({ code: 'frame_too_large', fatal: true }, false)).toBe('shrink-frame');
    expect(recoveryFor({ code: 'batch_too_large', fatal: false, ...S }, false)).toBe('shrink-batch');
    expect(recoveryFor({ code: 'clock_drift', fatal: false, ...S }, false)).toBe('restamp');
    for (const fresh of [true, false]) for (const fatal of [true]) expect(recoveryFor({ code: 'unsupported_protocol', fatal }, fresh)).toBe('stop');
    // Refusals of a space's push that the same push would meet again stop that space only.
    for (const code of ['invalid_message', 'sequence_gap', 'clock_overflow'] as const) expect(recoveryFor({ code, fatal: false, ...S }, true)).toBe('stop-space');
    // Transient fatal errors reconnect.
    for (const code of ['shutting_down', 'too_many_connections', 'slow_consumer', 'internal', 'rate_limited', 'clock_drift'] as const) expect(recoveryFor({ code, fatal: true }, false)).toBe('reconnect');
  });
});

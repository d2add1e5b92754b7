/**
 * Paces a connection's messages under the server's announced rate: a token
 * bucket refilled at 80% of `messagesPerSecond`, holding at most half a
 * second's worth, so that the server's own bucket (the full rate, a burst of
 * the same size) never runs dry for an honest client, however frames bunch up
 * on the way. Time is the monotonic clock: a device clock stepping back must
 * not stall pushes.
 */
const monotonic = (): number => globalThis.performance.now();

export class Pacer {
  #rate = 0;
  #capacity = 0;
  #tokens: number;
  #at = monotonic();
  #slowedAt = Number.NEGATIVE_INFINITY;

  constructor(messagesPerSecond: number) {
    this.#configure(messagesPerSecond);
    this.#tokens = this.#capacity;
  }

  /** 80% of the announced rate, and half a second's worth of burst. */
  #configure(messagesPerSecond: number): void {
    this.#rate = Math.max(0.5, messagesPerSecond * 0.8);
    this.#capacity = Math.max(1, Math.floor(messagesPerSecond / 2));
  }

  /** The rate this pacer has slowed down to (messages per second, as announced rates are counted). */
  get messagesPerSecond(): number {
    return this.#rate / 0.8;
  }

  /** The server announced its rate (welcome): pace under it from now on. */
  setRate(messagesPerSecond: number): void {
    this.#refill();
    this.#configure(messagesPerSecond);
    this.#tokens = Math.min(this.#tokens, this.#capacity);
  }

  #refill(): void {
    const now = monotonic();
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
  }

  /** Takes a token for a message that may wait: 0 when it may go now, else the ms to wait. */
  take(): number {
    this.#refill();
    // A hair under 1 after waiting exactly the time returned is floating point, not an empty bucket.
    if (this.#tokens >= 1 - 1e-9) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.#rate) * 1000);
  }

  /** Counts a message that goes now whatever the bucket holds (hello, ping). */
  spend(): void {
    this.#refill();
    this.#tokens -= 1;
  }

  /**
   * The server said `rate_limited` (it enforces less than this pace: a server
   * that announced no limits): empty the bucket and halve the pace, once per
   * second at most, since one burst draws one refusal per dropped frame.
   */
  slowDown(): void {
    this.#refill();
    this.#tokens = Math.min(this.#tokens, 0);
    if (this.#at - this.#slowedAt < 1000) return;
    this.#slowedAt = this.#at;
    this.#rate = Math.max(0.5, this.#rate / 2);
    this.#capacity = Math.max(1, Math.floor(this.#capacity / 2));
  }
}

/**
 * Exponential backoff with jitter from a floor: attempt n waits a random time
 * in [ceiling / 2, ceiling], ceiling = min(max, initial * 2^n). The floor keeps
 * a client that keeps failing from dialing in a tight loop; the jitter keeps
 * clients that failed together (a server restart) from coming back together.
 */
export interface BackoffOptions {
  /** The first ceiling, ms. Default 500 (a first retry after 250-500 ms). */
  readonly initialMs?: number;
  /** The largest ceiling, ms. Default 30,000 (15-30 s between attempts at worst). */
  readonly maxMs?: number;
}

export class Backoff {
  #attempt = 0;
  readonly #initial: number;
  readonly #max: number;

  constructor(
    options: BackoffOptions,
    private readonly random: () => number,
  ) {
    this.#initial = Math.max(1, options.initialMs ?? 500);
    this.#max = Math.max(this.#initial, options.maxMs ?? 30_000);
  }

  /** The wait before the next attempt, ms; each call backs off further. */
  next(): number {
    const ceiling = Math.min(this.#max, this.#initial * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** After progress: the next wait starts from the first ceiling again. */
  reset(): void {
    this.#attempt = 0;
  }
}

/** Exponential backoff with full jitter: delay n is uniform in [0, min(max, initial * 2^n)]. */
export interface BackoffOptions {
  readonly initialMs?: number;
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
    this.#initial = options.initialMs ?? 250;
    this.#max = options.maxMs ?? 30_000;
  }

  next(): number {
    const ceiling = Math.min(this.#max, this.#initial * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.round(this.#initial / 4 + this.random() * ceiling);
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/**
 * Group commit: pushes that arrive while a commit is running wait and are
 * written together in the next one, so durability costs one fsync per group,
 * not per change. One commit runs at a time, so relays go out in log order.
 */
import type { SpaceQuotas } from './storage/quota.js';
import type { AppendRequest, AppendResult, ServerStorage } from './storage/types.js';

interface Pending {
  readonly request: AppendRequest;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: Error) => void;
}

export class Committer {
  #queue: Pending[] = [];
  #running: Promise<void> | undefined;

  constructor(
    private readonly storage: ServerStorage,
    /** Per-space quotas every append is held to. */
    private readonly quotas: SpaceQuotas,
    /** Called after each commit with what it stored, before any push is acknowledged. */
    private readonly onStored: (results: ReadonlyArray<{ request: AppendRequest; result: AppendResult }>) => void,
    private readonly observe: (seconds: number) => void = () => undefined,
  ) {}

  submit(request: AppendRequest): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      if (!this.#running) this.#running = this.#drain();
    });
  }

  /** Resolves when everything submitted so far is committed (or refused). */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    // Let pushes that arrived in the same turn of the event loop join this group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#queue.length > 0) {
      const group = this.#queue;
      this.#queue = [];
      const started = performance.now();
      let results: Array<AppendResult | Error>;
      try {
        results = await this.storage.append(
          group.map((p) => p.request),
          this.quotas,
        );
      } catch (error) {
        for (const p of group) p.reject(error as Error);
        continue;
      }
      this.observe((performance.now() - started) / 1000);
      const stored: Array<{ request: AppendRequest; result: AppendResult }> = [];
      results.forEach((result, i) => {
        if (!(result instanceof Error)) stored.push({ request: (group[i] as Pending).request, result });
      });
      this.onStored(stored);
      results.forEach((result, i) => {
        const p = group[i] as Pending;
        if (result instanceof Error) p.reject(result);
        else p.resolve(result);
      });
    }
    this.#running = undefined;
  }
}

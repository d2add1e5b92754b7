/**
 * Virtual time for the simulation: while installed, setTimeout, setInterval,
 * setImmediate (and their clear functions), Date.now and performance.now belong
 * to one event queue ordered by (time, insertion). `runFor` fires timers in that
 * order and lets every promise chain settle between two timers (one real
 * setImmediate), so the real client, server and fake-indexeddb code runs in one
 * order decided by the seed: nothing else schedules work in the simulation
 * (better-sqlite3 is synchronous; the network is in memory).
 */

type Callback = (...args: unknown[]) => void;

interface Timer {
  readonly id: number;
  at: number;
  order: number;
  readonly fn: Callback;
  readonly args: unknown[];
  readonly every: number | undefined;
  cleared: boolean;
}

/** What `setTimeout` returns under virtual time; Node callers may unref() it. */
class Handle {
  constructor(readonly id: number) {}
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return true;
  }
  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

const real = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
  setImmediate: globalThis.setImmediate,
  clearImmediate: globalThis.clearImmediate,
  dateNow: Date.now,
};

/** Lets every pending promise job run: one real macrotask turn. */
const settle = (): Promise<void> => new Promise((resolve) => real.setImmediate(resolve));

export class VirtualTime {
  #now: number;
  #order = 0;
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();
  /** Min-heap on (at, order). */
  readonly #heap: Timer[] = [];
  #installed = false;
  /** Timers fired so far (a bound against runaway loops). */
  fired = 0;
  /** Exceptions thrown by timer callbacks: the code under test crashed. */
  readonly crashes: unknown[] = [];

  constructor(start: number) {
    this.#now = start;
  }

  get now(): number {
    return this.#now;
  }

  install(): void {
    if (this.#installed) return;
    this.#installed = true;
    const g = globalThis as unknown as Record<string, unknown>;
    g['setTimeout'] = (fn: Callback, ms?: number, ...args: unknown[]) => this.#add(fn, Math.max(1, ms ?? 0), args, undefined);
    g['setInterval'] = (fn: Callback, ms?: number, ...args: unknown[]) => this.#add(fn, Math.max(1, ms ?? 0), args, Math.max(1, ms ?? 0));
    g['setImmediate'] = (fn: Callback, ...args: unknown[]) => this.#add(fn, 0, args, undefined);
    const clear = (handle: unknown) => this.#clear(handle);
    g['clearTimeout'] = clear;
    g['clearInterval'] = clear;
    g['clearImmediate'] = clear;
    Date.now = () => this.#now;
    Object.defineProperty(performance, 'now', { value: () => this.#now, configurable: true, writable: true });
  }

  uninstall(): void {
    if (!this.#installed) return;
    this.#installed = false;
    Object.assign(globalThis, {
      setTimeout: real.setTimeout,
      clearTimeout: real.clearTimeout,
      setInterval: real.setInterval,
      clearInterval: real.clearInterval,
      setImmediate: real.setImmediate,
      clearImmediate: real.clearImmediate,
    });
    Date.now = real.dateNow;
    delete (performance as unknown as Record<string, unknown>)['now'];
    this.#timers.clear();
    this.#heap.length = 0;
  }

  /** Runs every timer due within `ms` of now, in order, then moves the clock to now + ms. */
  async runFor(ms: number, maxTimers = 2_000_000): Promise<void> {
    const until = this.#now + ms;
    await settle();
    for (;;) {
      const timer = this.#heap[0];
      if (!timer || timer.at > until) break;
      this.#pop();
      if (timer.cleared) continue;
      this.#now = Math.max(this.#now, timer.at);
      if (timer.every !== undefined) {
        timer.at = this.#now + timer.every;
        timer.order = this.#order++;
        this.#push(timer);
      } else {
        this.#timers.delete(timer.id);
      }
      if (++this.fired > maxTimers) throw new Error(`more than ${maxTimers} timers fired: a loop that never ends`);
      try {
        timer.fn(...timer.args);
      } catch (error) {
        this.crashes.push(error);
      }
      await settle();
    }
    this.#now = until;
  }

  /** Pending timers (intervals included). */
  get pending(): number {
    return this.#timers.size;
  }

  #add(fn: Callback, delay: number, args: unknown[], every: number | undefined): Handle {
    if (typeof fn !== 'function') throw new TypeError('callback must be a function');
    const timer: Timer = { id: this.#nextId++, at: this.#now + delay, order: this.#order++, fn, args, every, cleared: false };
    this.#timers.set(timer.id, timer);
    this.#push(timer);
    return new Handle(timer.id);
  }

  #clear(handle: unknown): void {
    if (handle === undefined || handle === null) return;
    const id = handle instanceof Handle ? handle.id : Number(handle);
    const timer = this.#timers.get(id);
    if (!timer) return;
    timer.cleared = true;
    this.#timers.delete(id);
  }

  #before(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(heap[i] as Timer, heap[parent] as Timer)) break;
      [heap[i], heap[parent]] = [heap[parent] as Timer, heap[i] as Timer];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop() as Timer;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && this.#before(heap[l] as Timer, heap[m] as Timer)) m = l;
      if (r < heap.length && this.#before(heap[r] as Timer, heap[m] as Timer)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m] as Timer, heap[i] as Timer];
      i = m;
    }
  }
}

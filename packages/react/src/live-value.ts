/**
 * A value that changes over time, in the shape React's useSyncExternalStore reads:
 * `subscribe` and a `getSnapshot` that returns the same object until the value
 * really changes, so a component re-renders only when its result does.
 *
 * The source (a live query, commit events, sync status) is connected when the
 * first listener subscribes and disconnected when the last one leaves, so a
 * LiveValue created during a render that React throws away costs nothing, and
 * Strict Mode's subscribe / unsubscribe / subscribe works.
 */

/** What a source sees of its LiveValue while it is connected. */
export interface Sink<T> {
  /** The value now (the last one published, or the initial one). */
  current(): T;
  /** Publishes `next` unless it equals the current value. Ignored once disconnected. */
  publish(next: T): void;
}

/** Connects a source; returns the function that disconnects it. */
export type Connect<T> = (sink: Sink<T>) => () => void;

export class LiveValue<T> {
  #value: T;
  readonly #connect: Connect<T>;
  readonly #equal: (a: T, b: T) => boolean;
  readonly #listeners = new Set<() => void>();
  #disconnect: (() => void) | undefined;

  constructor(initial: T, connect: Connect<T>, equal: (a: T, b: T) => boolean) {
    this.#value = initial;
    this.#connect = connect;
    this.#equal = equal;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    if (this.#listeners.size === 1) this.#open();
    return () => {
      if (this.#listeners.delete(listener) && this.#listeners.size === 0) this.#close();
    };
  };

  readonly getSnapshot = (): T => this.#value;

  #open(): void {
    let open = true;
    const disconnect = this.#connect({
      current: () => this.#value,
      publish: (next) => {
        if (open) this.#publish(next);
      },
    });
    this.#disconnect = () => {
      open = false;
      disconnect();
    };
  }

  #close(): void {
    const disconnect = this.#disconnect;
    this.#disconnect = undefined;
    disconnect?.();
  }

  #publish(next: T): void {
    if (this.#equal(this.#value, next)) return;
    this.#value = next;
    // A listener may unsubscribe others while we iterate: copy first.
    for (const listener of [...this.#listeners]) listener();
  }
}

/** An Error for anything thrown (a rejection may carry any value). */
export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error), { cause: error });
}

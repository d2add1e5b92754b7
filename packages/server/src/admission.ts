/**
 * Who may open a session. Before its hello is authenticated a connection is
 * *pending*: pending connections have a budget of their own (in all, per
 * address, and new ones per second per address), so sockets that never send a
 * hello cannot crowd out clients with credentials; `maxConnections` counts
 * authenticated sessions only. A refusal is `too_many_connections` with a
 * `retryAfter`.
 */
import type { Limits } from './options.js';

export interface Refusal {
  readonly message: string;
  readonly retryAfter: number;
}

interface AddressState {
  pending: number;
  /** Token bucket of new connections (capacity: one second's worth). */
  tokens: number;
  at: number;
}

export class Admission {
  #pending = 0;
  #authenticated = 0;
  #admitted = 0;
  readonly #addresses = new Map<string, AddressState>();

  constructor(
    private readonly limits: Pick<Limits, 'maxConnections' | 'maxPendingConnections' | 'maxPendingPerAddress' | 'connectionsPerSecondPerAddress'>,
    private readonly now: () => number,
  ) {}

  /** Pending connections now (a metric). */
  get pending(): number {
    return this.#pending;
  }

  /** A new connection from `address` (undefined: not known, counted in all only). Undefined when admitted as pending. */
  admit(address: string | undefined): Refusal | undefined {
    const { maxPendingConnections, maxPendingPerAddress, connectionsPerSecondPerAddress } = this.limits;
    if (this.#pending >= maxPendingConnections) return { message: `${this.#pending} connections are waiting to authenticate; retry later`, retryAfter: 1_000 };
    if (address !== undefined) {
      const now = this.now();
      if (++this.#admitted % 1024 === 0) this.#sweep(now);
      let state = this.#addresses.get(address);
      if (!state) this.#addresses.set(address, (state = { pending: 0, tokens: connectionsPerSecondPerAddress, at: now }));
      state.tokens = Math.min(connectionsPerSecondPerAddress, state.tokens + ((now - state.at) / 1000) * connectionsPerSecondPerAddress);
      state.at = now;
      if (state.pending >= maxPendingPerAddress) return { message: `${state.pending} connections from your address are waiting to authenticate; retry later`, retryAfter: 1_000 };
      if (state.tokens < 1) return { message: `more than ${connectionsPerSecondPerAddress} new connections a second from your address; retry later`, retryAfter: Math.ceil(((1 - state.tokens) / connectionsPerSecondPerAddress) * 1000) };
      state.tokens -= 1;
      state.pending++;
    }
    this.#pending++;
    return undefined;
  }

  /** A pending connection authenticated: it leaves the pending budget; false when the authenticated sessions are at their cap. */
  authenticate(address: string | undefined): boolean {
    this.#release(address);
    if (this.#authenticated >= this.limits.maxConnections) return false;
    this.#authenticated++;
    return true;
  }

  /** A connection closed: `authenticated` says which budget it was in. */
  closed(address: string | undefined, authenticated: boolean): void {
    if (authenticated) this.#authenticated--;
    else this.#release(address);
  }

  /** Forgets addresses with nothing pending whose bucket has refilled: the map holds only recent addresses. */
  #sweep(now: number): void {
    for (const [address, state] of this.#addresses) if (state.pending === 0 && now - state.at > 1_000) this.#addresses.delete(address);
  }

  #release(address: string | undefined): void {
    this.#pending--;
    if (address === undefined) return;
    const state = this.#addresses.get(address);
    if (!state) return;
    state.pending--;
    // An address with nothing pending and a full bucket is forgotten: the map holds only active addresses.
    if (state.pending === 0 && state.tokens >= this.limits.connectionsPerSecondPerAddress - 1) this.#addresses.delete(address);
  }
}

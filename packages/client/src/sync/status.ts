/** The sync status an app sees (`replica.sync.status`), and its listeners. */
import type { ErrorCode, SpaceId } from '@syncline/core/internal';

/**
 * - `offline`: not connected; the engine dials again after a backoff, or as
 *   soon as the browser says it is online (it does not dial while offline).
 *   Also the state of a tab that does not hold the connection.
 * - `connecting`: dialing, or waiting for the server's welcome.
 * - `syncing`: connected; catching up, or local changes are waiting (`pending`).
 * - `synced`: connected, caught up, and every local change is acknowledged.
 * - `paused`: `sync.pause()` was called; nothing happens until `resume()`.
 * - `stopped`: the server refused in a way retrying cannot fix (`error` says
 *   how); nothing happens until `reconnectNow()` or `setToken()`.
 */
export type SyncState = 'offline' | 'connecting' | 'syncing' | 'synced' | 'paused' | 'stopped';

/**
 * A refusal from the server, or a failure the engine reports the same way
 * (`SyncStatus.error`, `SyncStatus.stoppedSpaces`).
 */
export interface SyncErrorInfo {
  /**
   * The server's error code. The engine's own reports use `internal` (a
   * connection dropped or not made, or a failure on this device),
   * `frame_too_large` (a change too large for any frame the server reads), or
   * a protocol code such as `invalid_message` (a message from the server it
   * could not accept).
   */
  readonly code: ErrorCode;
  /** What happened, for people. */
  readonly message: string;
  /** The space refused, when the refusal was about one space. */
  readonly space?: SpaceId;
  /**
   * True when it ended the connection (the engine dials again after a backoff,
   * or stops: state `stopped`); false when only a push or a space was refused.
   */
  readonly fatal: boolean;
}

/** The sync status (`replica.sync.status`, `onStatus`): a new object on each change; optional fields are absent when they do not apply. */
export interface SyncStatus {
  /** What the engine is doing (SyncState). */
  readonly state: SyncState;
  /** Local changes not yet acknowledged by the server. */
  readonly pending: number;
  /** While a snapshot downloads: records received of the total. */
  readonly bootstrap?: {
    /** The space whose snapshot is downloading. */
    readonly space: SpaceId;
    /** Records received so far. */
    readonly received: number;
    /** Records in the whole snapshot. */
    readonly total: number;
  };
  /** Device-clock time of the last moment everything was synced. */
  readonly lastSyncedAt?: number;
  /** The last refusal from the server (auth, a limit, a protocol mismatch…). */
  readonly error?: SyncErrorInfo;
  /** Spaces that stopped pushing because the server refused them for good, each with its refusal. */
  readonly stoppedSpaces?: readonly SyncErrorInfo[];
  /** When the engine dials again (device-clock ms), while `offline` after a failure. */
  readonly retryAt?: number;
  /** server clock - device clock, ms, measured at the last welcome. */
  readonly clockOffset?: number;
  /**
   * Present once the server retired this replica's id and it went on under a
   * new one (README, "Bounded growth"), until the engine closes.
   */
  readonly rejoined?: RejoinInfo;
  /** Present while the device clock is further from the server's than `maxClockDrift`. */
  readonly clockSkew?: {
    /** Always 'clock_skew'. */
    readonly code: 'clock_skew';
    /** server clock - device clock, ms (positive: the device clock is behind), as `clockOffset`. */
    readonly offsetMs: number;
    /** How far off the device clock is and which way, for people. */
    readonly message: string;
  };
}

/** How a replica whose id the server retired went on (SyncStatus.rejoined). */
export interface RejoinInfo {
  /** The retired id. */
  readonly previousId: string;
  /** The id it goes on under (the replica's `id` from then on). */
  readonly id: string;
  /** Device-clock time of the rejoin. */
  readonly at: number;
  /** Unsynced changes it set aside, to be written again as new ones once their space has caught up. */
  readonly aside: number;
  /** Set-aside changes written again so far. */
  readonly reapplied: number;
  /** Changes not written again, as "collection/id": patches and crdt updates of records that no longer exist, and changes the schema refuses now (a validator, a collection left out, a size limit). */
  readonly dropped: readonly string[];
}

export class StatusBoard {
  #status: SyncStatus = { state: 'offline', pending: 0 };
  readonly #listeners = new Set<(status: SyncStatus) => void>();

  get current(): SyncStatus {
    return this.#status;
  }

  set(patch: Partial<SyncStatus>): void {
    const next = { ...this.#status, ...patch } as SyncStatus;
    // Optional fields set to undefined are removed, so the status stays a plain JSON-like object.
    for (const key of Object.keys(next) as Array<keyof SyncStatus>) if (next[key] === undefined) delete (next as Partial<Record<keyof SyncStatus, unknown>>)[key];
    this.#status = next;
    for (const listener of this.#listeners) listener(next);
  }

  onChange(listener: (status: SyncStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves when the status satisfies `predicate` (or rejects after `timeoutMs`). */
  waitFor(predicate: (status: SyncStatus) => boolean, timeoutMs: number): Promise<SyncStatus> {
    if (predicate(this.#status)) return Promise.resolve(this.#status);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`sync status did not reach the expected state within ${timeoutMs} ms (now ${JSON.stringify(this.#status)})`));
      }, timeoutMs);
      const off = this.onChange((status) => {
        if (!predicate(status)) return;
        clearTimeout(timer);
        off();
        resolve(status);
      });
    });
  }
}

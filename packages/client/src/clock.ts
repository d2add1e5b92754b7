/**
 * The replica's clock: a hybrid logical clock whose physical time is the sync
 * server's, not the device's.
 *
 * A device clock can be off by hours or days. Stamping writes with it would
 * make them win every conflict (fast) or lose every one (slow) for that long,
 * and the server refuses pushes stamped too far ahead of its own clock. So the
 * replica measures the offset between the device clock and the server's at
 * every `welcome`, keeps it (also across restarts), and reads physical time as
 * device clock + offset. A device clock that steps later is measured again at
 * the next welcome; until then its writes are off by the step (a step far
 * ahead gets them refused, re-stamped and a fresh welcome: sync-engine.ts).
 *
 * Causality comes before physical time: the HLC always advances past every
 * timestamp the replica applies (Hlc.receive never refuses), so a write is
 * ordered after everything its replica had seen, and read-your-writes holds,
 * whatever any clock says.
 */
import { formatTimestamp, Hlc, maxHlc, type HlcString, type ReplicaId, type Timestamp } from '@syncline/core/internal';

export interface ClockInit {
  readonly replica: ReplicaId;
  /** The device clock (createReplica's `now`). */
  readonly device: () => number;
  readonly last?: HlcString | undefined;
  readonly offset?: number | undefined;
  readonly accepted?: HlcString | undefined;
  readonly unsynced?: boolean | undefined;
}

export class ReplicaClock {
  #hlc: Hlc;
  readonly #device: () => number;
  /** server - device, ms (0 until known). */
  #offset: number;
  #accepted: HlcString | undefined;
  #unsynced: boolean;

  constructor(init: ClockInit) {
    this.#device = init.device;
    this.#offset = init.offset ?? 0;
    this.#accepted = init.accepted;
    this.#unsynced = init.unsynced ?? false;
    this.#hlc = new Hlc({ replica: init.replica, now: () => this.physical(), ...(init.last ? { last: init.last } : {}) });
  }

  /** The hybrid logical clock that stamps this replica's writes. */
  get hlc(): Hlc {
    return this.#hlc;
  }

  /** Stamps as `replica` from now on (a replica that rejoins under a new id), never below what it has issued. */
  rename(replica: ReplicaId): void {
    if (replica === this.#hlc.replica) return;
    this.#hlc = new Hlc({ replica, now: () => this.physical(), last: this.last });
  }

  /** The server's time as this replica estimates it, ms. */
  physical(): number {
    return this.#device() + this.#offset;
  }

  /** The device clock (createReplica's `now`). */
  device(): number {
    return this.#device();
  }

  get offset(): number {
    return this.#offset;
  }

  /** True until the replica's first welcome (its writes were stamped by the device clock alone). */
  get unsynced(): boolean {
    return this.#unsynced;
  }

  get accepted(): HlcString | undefined {
    return this.#accepted;
  }

  get last(): HlcString {
    return formatTimestamp(this.hlc.last);
  }

  /**
   * Records the server's time (a welcome's `time`, read `roundTrip` ms after the
   * hello left). Returns the new offset. The caller persists it (META_CLOCK_OFFSET).
   */
  setServerTime(serverTime: number, roundTrip: number): number {
    // The welcome left the server about half a round trip ago (NTP's estimate).
    this.#offset = Math.round(serverTime + Math.max(0, roundTrip) / 2 - this.#device());
    return this.#offset;
  }

  /** The first welcome's re-stamping is done (and saved): later ones re-stamp only what is far ahead. */
  synced(): void {
    this.#unsynced = false;
  }

  /** Notes timestamps the server accepted; returns true when the latest one moved. */
  accept(hlc: HlcString | undefined): boolean {
    const next = maxHlc(this.#accepted, hlc);
    if (next === this.#accepted) return false;
    this.#accepted = next;
    return true;
  }

  /** Moves the clock to `to` (see Hlc.rewind: every timestamp issued above it has been re-stamped). */
  rewind(to: Timestamp | HlcString): void {
    this.hlc.rewind(to);
  }
}

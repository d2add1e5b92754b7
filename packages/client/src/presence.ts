/**
 * Presence (protocol 8): this replica's ephemeral state per space (the week it
 * looks at, the event it edits, a cursor) and the states of the other replicas
 * connected to the space. Nothing of it is stored, here or on the server: a
 * state lives while its replica's connection does. The sync engine carries it
 * (PresenceLink); without a connection this replica sees no one.
 */
import { MAX_PRESENCE_BYTES, PRESENCE_UPDATES_PER_SECOND, findNonJson, isSpaceId, type Json, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { ReplicaError } from './errors.js';

/** Another replica's presence in a space. */
export interface PresencePeer<T = Json> {
  /** The other replica's id. */
  readonly replica: ReplicaId;
  /** The state it set (presence.set on that replica). */
  readonly state: T;
}

/** Options of presence calls: the space (default: the replica's default space). */
export interface PresenceOptions {
  /** The space (default: the replica's default space). */
  readonly space?: string;
}

/** A replica's presence: its own state per space, and the others'. See the client README, "Presence". */
export interface Presence {
  /**
   * Sets this replica's state in a space (null: none), for the other replicas
   * connected to it to see until this one disconnects. JSON of at most
   * MAX_PRESENCE_BYTES (else ReplicaError `too_large`; not JSON: `invalid_argument`). Sent at most 20 times a
   * second (the latest state wins), and again after each reconnect.
   */
  set(state: Json | null, options?: PresenceOptions): void;
  /** This replica's own state in the space (what set() gave; null: none). */
  mine(options?: PresenceOptions): Json | null;
  /** The states of the other replicas in the space now, by replica id. */
  peers(options?: PresenceOptions): readonly PresencePeer[];
  /** Calls `listener` with the others' states now and whenever they change (join, update, leave); returns unsubscribe. */
  subscribe(listener: (peers: readonly PresencePeer[]) => void, options?: PresenceOptions): () => void;
}

/**
 * Presence between the tabs of one replica (tabs.ts: they share one id and one
 * connection, held by the leader tab): a tab that is not the leader forwards
 * its set() to the leader, and the leader tells every tab the peers it hears.
 */
export type PresenceTabMessage =
  | { readonly type: 'presence'; readonly from: string; readonly op: 'set'; readonly space: SpaceId; readonly state: Json | null }
  | { readonly type: 'presence'; readonly from: string; readonly op: 'peers'; readonly space: SpaceId; readonly peers: readonly PresencePeer[] }
  | { readonly type: 'presence'; readonly from: string; readonly op: 'ask' | 'ask-states' };

export function isPresenceTabMessage(value: unknown): value is PresenceTabMessage {
  const m = value as PresenceTabMessage | null;
  return typeof m === 'object' && m !== null && m.type === 'presence' && typeof m.from === 'string' && ['set', 'peers', 'ask', 'ask-states'].includes(m.op);
}

/** What the store needs of the tabs: posting to the others, and whether this one holds the connection. */
export interface PresenceTabs {
  post(message: PresenceTabMessage): void;
  readonly from: string;
  isLeader(): boolean;
}

/** How the sync engine carries presence (one per connection that a protocol 8 server welcomed). */
export interface PresenceLink {
  send(space: SpaceId, state: Json | null): void;
}

const MIN_INTERVAL_MS = 1000 / PRESENCE_UPDATES_PER_SECOND;
const encoder = new TextEncoder();
const NO_PEERS: readonly PresencePeer[] = Object.freeze([]);

export class PresenceStore implements Presence {
  readonly #mine = new Map<SpaceId, Json | null>();
  readonly #peers = new Map<SpaceId, Map<ReplicaId, Json>>();
  readonly #lists = new Map<SpaceId, readonly PresencePeer[]>();
  readonly #listeners = new Map<SpaceId, Set<(peers: readonly PresencePeer[]) => void>>();
  /** Per space: when its state was last sent, and a send scheduled for the latest state. */
  readonly #sent = new Map<SpaceId, number>();
  readonly #timers = new Map<SpaceId, ReturnType<typeof setTimeout>>();
  #link: PresenceLink | undefined;
  #tabs: PresenceTabs | undefined;
  /** Spaces the link may carry (those the connection was granted). */
  #linked = new Set<SpaceId>();

  constructor(private readonly defaultSpace: SpaceId) {}

  set(state: Json | null, options?: PresenceOptions): void {
    const space = this.#space(options);
    if (state !== null) {
      const bad = findNonJson(state);
      if (bad !== undefined) throw new ReplicaError('invalid_argument', `a presence state must be JSON (${bad} is not)`);
      const bytes = encoder.encode(JSON.stringify(state)).length;
      if (bytes > MAX_PRESENCE_BYTES) throw new ReplicaError('too_large', `a presence state of ${bytes} bytes; at most ${MAX_PRESENCE_BYTES} (MAX_PRESENCE_BYTES)`);
    }
    this.#mine.set(space, state);
    // A tab without the connection: the leader tab sends it (one state per replica: the latest set of any tab).
    if (this.#tabs && !this.#tabs.isLeader()) return this.#tabs.post({ type: 'presence', from: this.#tabs.from, op: 'set', space, state });
    this.#schedule(space);
  }

  mine(options?: PresenceOptions): Json | null {
    return this.#mine.get(this.#space(options)) ?? null;
  }

  peers(options?: PresenceOptions): readonly PresencePeer[] {
    return this.#lists.get(this.#space(options)) ?? NO_PEERS;
  }

  subscribe(listener: (peers: readonly PresencePeer[]) => void, options?: PresenceOptions): () => void {
    const space = this.#space(options);
    let set = this.#listeners.get(space);
    if (!set) this.#listeners.set(space, (set = new Set()));
    set.add(listener);
    listener(this.peers({ space }));
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(space);
    };
  }

  // ---- the other tabs --------------------------------------------------------------------

  /** Shares presence with the replica's other tabs; a tab that is not the leader asks for the peers known. */
  connectTabs(tabs: PresenceTabs): void {
    this.#tabs = tabs;
    if (!tabs.isLeader()) tabs.post({ type: 'presence', from: tabs.from, op: 'ask' });
  }

  /** This tab became the leader: the other tabs send it their states, to go out on its connection. */
  becameLeader(): void {
    this.#tabs?.post({ type: 'presence', from: this.#tabs.from, op: 'ask-states' });
  }

  fromTab(message: PresenceTabMessage): void {
    const tabs = this.#tabs;
    if (!tabs || message.from === tabs.from) return;
    const leader = tabs.isLeader();
    if (message.op === 'set' && leader) {
      this.#mine.set(message.space, message.state);
      this.#schedule(message.space);
    } else if (message.op === 'peers' && !leader) {
      this.#peers.set(message.space, new Map(message.peers.map((p) => [p.replica, p.state])));
      this.#publish(message.space);
    } else if (message.op === 'ask' && leader) {
      for (const [space, peers] of this.#lists) tabs.post({ type: 'presence', from: tabs.from, op: 'peers', space, peers });
    } else if (message.op === 'ask-states' && !leader) {
      for (const [space, state] of this.#mine) if (state !== null) tabs.post({ type: 'presence', from: tabs.from, op: 'set', space, state });
    }
  }

  // ---- the sync engine's side ------------------------------------------------------

  /** A connection can carry presence for these spaces: this replica's states go out at once. */
  attach(link: PresenceLink, spaces: Iterable<SpaceId>): void {
    this.#link = link;
    this.#linked = new Set(spaces);
    this.#sent.clear();
    for (const [space, state] of this.#mine) if (state !== null && this.#linked.has(space)) this.#schedule(space);
  }

  /** The connection ended: nobody is known to be there any more (and they will not see this replica). */
  detach(): void {
    this.#link = undefined;
    this.#linked.clear();
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const space of [...this.#peers.keys()]) {
      this.#peers.delete(space);
      this.#publish(space);
    }
  }

  /** A `presence` message: the full list (replacing what was known) or changes (null: left). */
  received(space: SpaceId, full: boolean, peers: ReadonlyArray<{ replica: ReplicaId; state: Json | null }>, self: ReplicaId): void {
    let known = this.#peers.get(space);
    if (full || !known) this.#peers.set(space, (known = new Map()));
    for (const { replica, state } of peers) {
      if (replica === self) continue;
      if (state === null) known.delete(replica);
      else known.set(replica, state);
    }
    this.#publish(space);
  }

  #schedule(space: SpaceId): void {
    if (!this.#link || !this.#linked.has(space) || this.#timers.has(space)) return;
    const wait = (this.#sent.get(space) ?? -Infinity) + MIN_INTERVAL_MS - performance.now();
    if (wait <= 0) return this.#send(space);
    this.#timers.set(
      space,
      setTimeout(() => {
        this.#timers.delete(space);
        this.#send(space);
      }, wait),
    );
  }

  #send(space: SpaceId): void {
    if (!this.#link) return;
    this.#sent.set(space, performance.now());
    this.#link.send(space, this.#mine.get(space) ?? null);
  }

  #publish(space: SpaceId): void {
    const known = this.#peers.get(space);
    const list: readonly PresencePeer[] = known ? Object.freeze([...known].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([replica, state]) => Object.freeze({ replica, state }))) : NO_PEERS;
    this.#lists.set(space, list);
    for (const listener of this.#listeners.get(space) ?? []) listener(list);
    if (this.#tabs?.isLeader()) this.#tabs.post({ type: 'presence', from: this.#tabs.from, op: 'peers', space, peers: list });
  }

  #space(options: PresenceOptions | undefined): SpaceId {
    const space = options?.space ?? this.defaultSpace;
    if (!isSpaceId(space)) throw new ReplicaError('invalid_argument', `invalid space id ${JSON.stringify(space)}`);
    return space;
  }
}

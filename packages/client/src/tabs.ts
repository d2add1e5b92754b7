/**
 * Tabs of one origin share one replica database. Web Locks elect the tab that
 * holds the sync connection; BroadcastChannel tells the other tabs what changed.
 * Both are injectable: Node has BroadcastChannel but no Web Locks, so tests pass
 * localLocks(), which gives the same semantics inside one process.
 */

/** The part of the Web Locks API a replica uses. */
export interface LocksLike {
  /**
   * Calls `callback` once the exclusive lock `name` is granted and holds the
   * lock until the promise it returns settles; settles as that promise does.
   */
  request(name: string, callback: () => Promise<void>): Promise<void>;
}

/**
 * A message handler checked bivariantly (declared through a method), so the
 * browser's or Node's BroadcastChannel, whose handler takes a MessageEvent, fits.
 */
type MessageHandler = { handle(event: { data: unknown }): void }['handle'];

/** The part of BroadcastChannel a replica uses. */
export interface ChannelLike {
  /** Sends `message` (a structured clone) to the other channels open with the same name. */
  postMessage(message: unknown): void;
  /** Stops the channel; the replica calls it when it closes. */
  close(): void;
  /** Set by the replica: called with each message another channel of the same name posted, as `event.data`. */
  onmessage: MessageHandler | null;
}

/**
 * How a replica coordinates with the other tabs that open its database
 * (createReplica's `tabs`). Without `tabs`, the browser's own are used where
 * they exist (`navigator.locks`, `BroadcastChannel`); a TabsOptions given
 * replaces both, and a part it leaves out is not used.
 */
export interface TabsOptions {
  /**
   * Elects the tab that syncs: a replica holds the lock `syncline:<name>:leader`
   * until it closes. Without locks, every replica is a leader.
   */
  readonly locks?: LocksLike;
  /**
   * Opens the channel (named `syncline:<name>`) that tells the replica's other
   * tabs what it committed and which spaces were added to or removed from sync.
   * Without it, they are not told.
   */
  readonly channel?: (name: string) => ChannelLike;
}

/** Exclusive named locks within one JavaScript realm, granted in request order. */
export function localLocks(): LocksLike {
  const queues = new Map<string, Promise<void>>();
  return {
    request(name, callback) {
      const previous = queues.get(name) ?? Promise.resolve();
      const run = previous.then(() => callback());
      const settled = run.catch(() => undefined);
      queues.set(name, settled);
      void settled.then(() => {
        if (queues.get(name) === settled) queues.delete(name);
      });
      return run;
    },
  };
}

export function defaultTabs(): TabsOptions {
  const nav = (globalThis as { navigator?: { locks?: LocksLike } }).navigator;
  const Channel = (globalThis as { BroadcastChannel?: new (name: string) => ChannelLike }).BroadcastChannel;
  const locks = nav?.locks;
  return {
    ...(locks ? { locks: { request: (name: string, cb: () => Promise<void>) => locks.request(name, cb) } } : {}),
    ...(Channel ? { channel: (name: string) => new Channel(name) } : {}),
  };
}

/** What one tab tells the others after it committed a transaction. */
export interface TabMessage {
  readonly type: 'changed';
  readonly from: string;
  /** [collection, id, space] of every record written. */
  readonly records: ReadonlyArray<readonly [string, string, string]>;
  /** Spaces whose outbox grew (the leader pushes them). */
  readonly outbox: readonly string[];
}

export function isTabMessage(value: unknown): value is TabMessage {
  const m = value as TabMessage | null;
  return typeof m === 'object' && m !== null && m.type === 'changed' && typeof m.from === 'string' && Array.isArray(m.records) && Array.isArray(m.outbox);
}

/** A space added to, or removed from, the spaces the replica syncs (`replica.sync.addSpace` / `removeSpace`). */
export interface SpaceChange {
  readonly add?: string;
  readonly remove?: string;
}

/** What one tab tells the others after the app changed the synced spaces: their engines follow. */
export interface SpacesMessage {
  readonly type: 'spaces';
  readonly from: string;
  readonly change: SpaceChange;
}

export function isSpacesMessage(value: unknown): value is SpacesMessage {
  const m = value as SpacesMessage | null;
  return typeof m === 'object' && m !== null && m.type === 'spaces' && typeof m.from === 'string' && typeof m.change === 'object' && m.change !== null;
}

/**
 * Opens this device's replica and keeps its sync connection pointed at the
 * right spaces: `settings` plus one space per calendar. When the list of
 * calendars changes (one added here or arriving from another device), the
 * replica's sync adds or removes the spaces in place (`addSpace` /
 * `removeSpace`): one reconnect, no reopening.
 */
import { createReplica, type Replica } from '@syncline/client';
import { DEFAULT_CALENDARS, schema, SETTINGS_SPACE, toCalendar } from './model';

export interface Device {
  /** From ?device=NAME; undefined for the browser's default replica. */
  readonly name: string | undefined;
  /** IndexedDB database name: `calendar` or `calendar-NAME`. */
  readonly dbName: string;
}

export function deviceFromLocation(search = location.search): Device {
  const raw = new URLSearchParams(search).get('device');
  const name = raw && /^[A-Za-z0-9_-]{1,40}$/.test(raw) ? raw : undefined;
  return { name, dbName: name ? `calendar-${name}` : 'calendar' };
}

/**
 * A name people can read for this browser, from its user agent: "Chrome on
 * Linux", "Safari on iPhone". What other devices see in conflicts and
 * presence until the person renames the device.
 */
export function describeBrowser(userAgent: string): string {
  const browser = /Edg\//.test(userAgent)
    ? 'Edge'
    : /Firefox\//.test(userAgent)
      ? 'Firefox'
      : /(Chrome|Chromium|CriOS)\//.test(userAgent)
        ? 'Chrome'
        : /Safari\//.test(userAgent)
          ? 'Safari'
          : 'Browser';
  const system = /iPhone/.test(userAgent)
    ? 'iPhone'
    : /iPad/.test(userAgent)
      ? 'iPad'
      : /Android/.test(userAgent)
        ? 'Android'
        : /Windows/.test(userAgent)
          ? 'Windows'
          : /Mac OS X|Macintosh/.test(userAgent)
            ? 'Mac'
            : /CrOS/.test(userAgent)
              ? 'ChromeOS'
              : /Linux/.test(userAgent)
                ? 'Linux'
                : '';
  return system ? `${browser} on ${system}` : browser;
}

/** The name this device shows others: the one set here (localStorage), else ?device=NAME, else the browser's. */
export function deviceLabelOf(device: Device): string {
  return localStorage.getItem(`syncline-calendar:${device.dbName}:device-name`) || device.name || describeBrowser(navigator.userAgent);
}

export function renameDevice(device: Device, name: string): void {
  localStorage.setItem(`syncline-calendar:${device.dbName}:device-name`, name);
}

/** ws(s)://host/sync of the page's origin, or ?server=ws://… to point elsewhere. */
export function syncUrl(loc: Location = location): string {
  const override = new URLSearchParams(loc.search).get('server');
  if (override && /^wss?:\/\//.test(override)) return override;
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/sync`;
}

const storageKey = (device: Device, what: string): string => `syncline-calendar:${device.dbName}:${what}`;

function readList(key: string): string[] | undefined {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(key) ?? 'null');
    return Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

export type HostState =
  | { readonly phase: 'opening' }
  | { readonly phase: 'ready'; readonly replica: Replica; readonly spaces: readonly string[] }
  | { readonly phase: 'failed'; readonly error: Error };

export class ReplicaHost {
  readonly device: Device;
  #state: HostState = { phase: 'opening' };
  readonly #listeners = new Set<() => void>();
  /** Opens and closes run one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();
  #wanted: readonly string[];

  constructor(device: Device) {
    this.device = device;
    this.#wanted = readList(storageKey(device, 'spaces')) ?? DEFAULT_CALENDARS.map((c) => c.id);
  }

  get state(): HostState {
    return this.#state;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly getState = (): HostState => this.#state;

  #set(state: HostState): void {
    this.#state = state;
    for (const listener of this.#listeners) listener();
  }

  /** The access token sent in the handshake (for servers with JWT auth), kept per device. */
  get token(): string | undefined {
    return localStorage.getItem(storageKey(this.device, 'token')) ?? undefined;
  }

  /** Stores a new token and reconnects with it. */
  setToken(token: string | undefined): void {
    if (token) localStorage.setItem(storageKey(this.device, 'token'), token);
    else localStorage.removeItem(storageKey(this.device, 'token'));
    this.#enqueue(() => this.#reopen(this.#wanted));
  }

  start(): void {
    this.#enqueue(async () => {
      await this.#reopen(this.#wanted);
      const state = this.#state;
      if (state.phase === 'ready') await this.#ensureCalendars(state.replica);
    });
  }

  /** The calendar spaces to sync; changes the replica's synced spaces in place. */
  setCalendarSpaces(ids: readonly string[]): void {
    const next = [...new Set(ids)].sort();
    if (next.length === 0 || sameList(next, [...this.#wanted].sort())) return;
    this.#wanted = next;
    localStorage.setItem(storageKey(this.device, 'spaces'), JSON.stringify(next));
    this.#enqueue(async () => {
      const state = this.#state;
      if (state.phase !== 'ready' || !state.replica.sync) return this.#reopen(next);
      const sync = state.replica.sync;
      const wanted = new Set([SETTINGS_SPACE, ...next]);
      for (const space of sync.spaces) if (!wanted.has(space)) sync.removeSpace(space);
      for (const space of wanted) sync.addSpace(space);
      this.#set({ phase: 'ready', replica: state.replica, spaces: [...sync.spaces] });
    });
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((error: unknown) => {
      console.error('[calendar]', error);
      this.#set({ phase: 'failed', error: error instanceof Error ? error : new Error(String(error)) });
    });
  }

  async #reopen(calendars: readonly string[]): Promise<void> {
    const previous = this.#state.phase === 'ready' ? this.#state.replica : undefined;
    const spaces = [SETTINGS_SPACE, ...calendars];
    const replica = await createReplica({
      name: this.device.dbName,
      schema,
      space: SETTINGS_SPACE,
      sync: { url: syncUrl(), spaces, token: () => this.token ?? '' },
      onError: (error) => console.warn('[syncline]', error.message),
    });
    // Open the new replica before closing the old one, so the UI always has one.
    this.#set({ phase: 'ready', replica, spaces });
    await previous?.close();
  }

  /**
   * First run: create the default calendars, unless they come from the server.
   * Waits briefly for the settings space to sync (another device may have
   * renamed them: writing the defaults again would undo that).
   */
  async #ensureCalendars(replica: Replica): Promise<void> {
    const count = async () => (await replica.query({ collection: 'calendars', space: SETTINGS_SPACE })).map(toCalendar).filter(Boolean).length;
    if ((await count()) > 0) return;
    if (navigator.onLine && replica.sync) {
      await replica.sync.waitFor((s) => s.state === 'synced' || s.error !== undefined, 4000).catch(() => undefined);
    }
    if (replica.closed || (await count()) > 0) return;
    await replica.batch((b) => {
      for (const c of DEFAULT_CALENDARS) b.put('calendars', c.id, { name: c.name, color: c.color, order: c.order }, { space: SETTINGS_SPACE });
    });
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Real-browser tests of the calendar (examples/calendar): the built app served
 * by an in-process sync server, driven in headless Chromium by playwright-core.
 *
 * - Each test file gets one server (127.0.0.1, port 0, a temp SQLite file, a
 *   copy of examples/calendar/dist as its static folder, built first if stale)
 *   and one browser (`describeE2E`); each test gets new contexts.
 * - A device is a browser context (its own IndexedDB, service worker, cache)
 *   reaching the server through its own TCP link, so a test can take one device
 *   offline: `device.offline()` calls context.setOffline(true) (the page sees
 *   navigator.onLine false and new connections fail) AND cuts the link.
 *   setOffline alone does not close a WebSocket that is already open in
 *   Chromium (seen with Chromium 156 and playwright-core 1.65): the socket stays
 *   open carrying nothing, and the engine never notices it is offline (it stays
 *   "synced", or "syncing" with changes pending). Cutting the link makes
 *   "offline" what it is on a real device: the socket drops, nothing reaches
 *   the server (not even the service worker's fetches), and coming back is a
 *   reconnect.
 * - Waits end on a selector or a condition with a bounded timeout, never a sleep.
 * - Every test saves screenshots to test-results/e2e/<name>.png (`device.shot`);
 *   a failing test also saves every open page as <test>-failed-<n>.png.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { createSyncServer, sqliteStorage, type SyncServer } from '@syncline/server';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SHOTS = join(ROOT, 'test-results/e2e');

export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM_PATH);
const inCI = Boolean(process.env['CI']);
const NO_CHROMIUM = `Chromium not found at ${CHROMIUM_PATH}: the browser tests (test/e2e) need it. Install it with \`apt-get install -y chromium\` (Debian/Ubuntu), or point CHROMIUM_PATH at a Chromium or Chrome binary.`;

const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** How long a test waits for the app or for sync (a shared 2-CPU machine runs other suites at the same time). */
export const WAIT = 20_000;

/** Fixed locale and time zone: the tests compute dates and read times the same way on every machine. */
export const LOCALE = 'en-GB';
export const TIMEZONE = 'Europe/Berlin';

// ---- the app's build ----------------------------------------------------------

/**
 * Builds the calendar when dist is missing or older than its sources (under a
 * lock shared with every other test file), then copies it to `copyTo`, the
 * folder the test server serves.
 */
export async function ensureAppBuilt(copyTo: string, timeoutMs = 170_000): Promise<void> {
  const script = [join(ROOT, 'test/e2e/build-app.mjs'), '--copy-to', copyTo];
  const hasFlock = ['/usr/bin/flock', '/bin/flock'].some((p) => existsSync(p));
  const [cmd, args] = hasFlock ? ['flock', ['-w', String(Math.round(timeoutMs / 1000) - 10), '/tmp/syncline-build.lock', process.execPath, ...script]] : [process.execPath, script];
  await new Promise<void>((resolve, reject) => {
    execFile(cmd, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`building examples/calendar failed (${error.message}):\n${stderr}`));
      else resolve();
    });
  });
  if (!existsSync(join(copyTo, 'index.html'))) throw new Error('examples/calendar/dist/index.html is missing after the build');
}

// ---- a device's network link ------------------------------------------------------

/** A TCP proxy to the server: one per device, so a test can cut one device off. */
export class Link {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #up = true;
  port = 0;

  private constructor(targetPort: number) {
    this.#server = createServer((client) => {
      if (!this.#up) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, '127.0.0.1');
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(a);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          this.#sockets.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
  }

  static async open(targetPort: number): Promise<Link> {
    const link = new Link(targetPort);
    await new Promise<void>((resolve, reject) => {
      link.#server.once('error', reject);
      link.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = link.#server.address();
    if (!address || typeof address === 'string') throw new Error('the link has no port');
    link.port = address.port;
    return link;
  }

  get isUp(): boolean {
    return this.#up;
  }

  /** Drops every open connection and refuses new ones until up(). */
  down(): void {
    this.#up = false;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  up(): void {
    this.#up = true;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

// ---- devices, pages and the app's state ---------------------------------------------

export interface OpenOptions {
  /** ?date=YYYY-MM-DD: the week the calendar opens on. */
  readonly date?: string;
  readonly view?: 'week' | 'month';
  /** Wait until this page syncs (or, as a second tab, sees that another tab does). Default true. */
  readonly waitSynced?: boolean;
}

export interface DeviceOptions {
  readonly timezoneId?: string;
  readonly locale?: string;
  /** The system's colour scheme the browser reports (prefers-color-scheme); default light. */
  readonly colorScheme?: 'light' | 'dark';
  /** The window size; default 1280 × 860. */
  readonly viewport?: { readonly width: number; readonly height: number };
  /** A phone: touch events, a mobile viewport and user agent details. */
  readonly mobile?: boolean;
}

export const SYNC = '[data-testid="sync-indicator"]';

/** One device: a browser context (own storage) on its own link to the server. */
export class Device {
  readonly pages: Page[] = [];
  /** Uncaught exceptions in the device's pages (a test fails on any). */
  readonly pageErrors: string[] = [];

  constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly link: Link,
  ) {}

  get origin(): string {
    return `http://127.0.0.1:${this.link.port}`;
  }

  url(options: OpenOptions = {}): string {
    const params = new URLSearchParams({ device: this.name, view: options.view ?? 'week' });
    if (options.date) params.set('date', options.date);
    return `${this.origin}/?${params.toString()}`;
  }

  /** Opens the calendar in a new tab of this device and waits for it to be ready. */
  async open(options: OpenOptions = {}): Promise<Page> {
    const page = await this.context.newPage();
    this.pages.push(page);
    page.on('pageerror', (error) => this.pageErrors.push(`${this.name}: ${error.message}`));
    // The server's Content-Security-Policy must let the calendar do all it does: a refusal is a failure.
    page.on('console', (message) => {
      if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) this.pageErrors.push(`${this.name}: ${message.text()}`);
    });
    page.on('close', () => {
      const index = this.pages.indexOf(page);
      if (index >= 0) this.pages.splice(index, 1);
    });
    await page.goto(this.url(options), { timeout: WAIT });
    await page.locator('[data-testid="app"]').waitFor({ timeout: WAIT });
    if (options.waitSynced ?? true) await waitSettled(page);
    return page;
  }

  /** Takes the device offline: the browser's offline mode and a cut link. Waits until its pages notice. */
  async offline(): Promise<void> {
    await this.context.setOffline(true);
    this.link.down();
    for (const page of this.pages) {
      await page.locator(`${SYNC}[data-online="false"]:not([data-sync-state="synced"]):not([data-sync-state="syncing"])`).waitFor({ timeout: WAIT });
    }
  }

  /** Back online; waits until every page is synced with nothing left to upload. */
  async online(): Promise<void> {
    this.link.up();
    await this.context.setOffline(false);
    for (const page of this.pages) await waitSettled(page);
  }

  /** Saves a screenshot of `page` (default: the first tab) to test-results/e2e/<name>.png. */
  async shot(name: string, page: Page | undefined = this.pages[0]): Promise<string> {
    if (!page) throw new Error(`device ${this.name} has no open page`);
    mkdirSync(SHOTS, { recursive: true });
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, timeout: WAIT });
    return path;
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
    await this.link.close();
  }
}

/**
 * Waits until the tab's sync indicator says all is done: "synced" with nothing
 * to upload (the leader tab), or "synced by another tab" with nothing pending.
 */
export async function waitSettled(page: Page, timeout = WAIT): Promise<void> {
  await page.locator(`${SYNC}[data-pending="0"]:is([data-state="synced"], [data-state="other-tab"])`).waitFor({ timeout });
}

/** What the week view shows of one event. */
export interface Shown {
  readonly id: string;
  readonly title: string;
  /** Local YYYY-MM-DD of an all-day event, local YYYY-MM-DDTHH:MM of a timed one. */
  readonly start: string;
  readonly allDay: boolean;
  /** The day column a timed event is drawn in (local YYYY-MM-DD); '' for bars. */
  readonly column: string;
  /** The chip's text: title, times, location. */
  readonly text: string;
  readonly status: string;
  readonly conflict: boolean;
}

/** Every event drawn in the week view, sorted by start then title. */
export async function weekEvents(page: Page): Promise<Shown[]> {
  await page.locator('[data-testid="week-view"]').waitFor({ timeout: WAIT });
  const shown = await page.locator('[data-testid="week-view"] [data-event-id]').evaluateAll((chips) =>
    chips.map((chip) => {
      const el = chip as HTMLElement;
      const pad = (n: number) => String(n).padStart(2, '0');
      const allDay = el.dataset['allDay'] === 'true';
      const raw = el.dataset['start'] ?? '';
      const d = new Date(raw);
      const start = allDay ? raw : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
      return {
        id: el.dataset['eventId'] ?? '',
        title: el.dataset['title'] ?? '',
        start,
        allDay,
        column: (el.closest('[data-testid^="day-col-"]') as HTMLElement | null)?.dataset['date'] ?? '',
        text: (el.textContent ?? '').replace(/\s+/g, ' ').trim(),
        status: el.dataset['status'] ?? '',
        conflict: el.querySelector('.conflict-badge') !== null,
      };
    }),
  );
  return shown.sort((a, b) => a.start.localeCompare(b.start) || a.title.localeCompare(b.title) || a.id.localeCompare(b.id));
}

/** The chip of the event titled `title` in the current view. */
export function chip(page: Page, title: string) {
  return page.locator(`[data-testid="calendar-view"] [data-event-id][data-title="${title.replace(/"/g, '\\"')}"]`);
}

export interface NewEvent {
  readonly title: string;
  /** Local slot to click in the week's time grid, YYYY-MM-DDTHH:MM (on the half hour). */
  readonly slot: string;
  /** HH:MM; default one hour after the slot. */
  readonly end?: string;
  readonly location?: string;
  readonly notes?: string;
}

/** Creates an event the way a person does: click the slot in the week grid, fill the dialog, save. Returns its id. */
export async function createEvent(page: Page, event: NewEvent): Promise<string> {
  await page.locator(`[data-testid="slot-${event.slot}"]`).click({ timeout: WAIT });
  const dialog = page.locator('[data-testid="event-dialog"][data-mode="new"]');
  await dialog.waitFor({ timeout: WAIT });
  const id = await dialog.getAttribute('data-event-id');
  if (!id) throw new Error('the new-event dialog has no data-event-id');
  const startTime = await dialog.locator('[data-testid="event-start-time"]').inputValue();
  if (`${await dialog.locator('[data-testid="event-start-date"]').inputValue()}T${startTime}` !== event.slot) {
    throw new Error(`clicking slot ${event.slot} opened a dialog starting at ${await dialog.locator('[data-testid="event-start-date"]').inputValue()} ${startTime}`);
  }
  await dialog.locator('[data-testid="event-title"]').fill(event.title);
  if (event.end) await dialog.locator('[data-testid="event-end-time"]').fill(event.end);
  if (event.location) await dialog.locator('[data-testid="event-location"]').fill(event.location);
  if (event.notes) await dialog.locator('[data-testid="event-notes"]').fill(event.notes);
  await dialog.locator('[data-testid="event-save"]').click();
  await dialog.waitFor({ state: 'detached', timeout: WAIT });
  await page.locator(`[data-testid="event-${id}"]`).first().waitFor({ timeout: WAIT });
  return id;
}

export interface EventEdit {
  readonly title?: string;
  readonly startTime?: string;
  readonly endTime?: string;
  readonly location?: string;
  readonly status?: 'confirmed' | 'tentative' | 'cancelled';
}

/** Opens an event from its chip, changes the given fields, saves. */
export async function editEvent(page: Page, id: string, edit: EventEdit): Promise<void> {
  await page.locator(`[data-testid="event-${id}"]`).first().click({ timeout: WAIT });
  const dialog = page.locator(`[data-testid="event-dialog"][data-mode="edit"][data-event-id="${id}"]`);
  await dialog.waitFor({ timeout: WAIT });
  // The form fills from the stored event: wait until it has (the title is never empty in these tests).
  await expect.poll(() => dialog.locator('[data-testid="event-title"]').inputValue(), { timeout: WAIT }).not.toBe('');
  if (edit.title !== undefined) await dialog.locator('[data-testid="event-title"]').fill(edit.title);
  if (edit.startTime !== undefined) await dialog.locator('[data-testid="event-start-time"]').fill(edit.startTime);
  if (edit.endTime !== undefined) await dialog.locator('[data-testid="event-end-time"]').fill(edit.endTime);
  if (edit.location !== undefined) await dialog.locator('[data-testid="event-location"]').fill(edit.location);
  if (edit.status !== undefined) {
    // The radio is hidden inside its label (a segmented control): click the label, as a person does.
    const radio = dialog.locator(`[data-testid="status-${edit.status}"]`);
    await radio.locator('xpath=ancestor::label[1]').click();
    await expect.poll(() => radio.isChecked(), { timeout: WAIT }).toBe(true);
  }
  await dialog.locator('[data-testid="event-save"]').click();
  await dialog.waitFor({ state: 'detached', timeout: WAIT });
}

// ---- one server and one browser per test file ------------------------------------------

export interface E2E {
  readonly browser: Browser;
  readonly server: SyncServer;
  readonly serverPort: number;
  /** A new device (browser context + link); closed after the test. */
  device(name: string, options?: DeviceOptions): Promise<Device>;
}

/**
 * For the describe block it is called in: a temp folder, a sync server (SQLite
 * in the folder, default options) serving the static folder `prepare` makes in
 * it and returns, and Chromium; all closed after the block.
 */
export function serverAndBrowser(prefix: string, prepare: (dir: string) => Promise<string>): { readonly server: SyncServer; readonly browser: Browser } {
  let browser: Browser | undefined;
  let server: SyncServer | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    const staticDir = await prepare(dir);
    server = createSyncServer({ port: 0, host: '127.0.0.1', storage: sqliteStorage({ path: join(dir, 'sync.db') }), staticDir, logger: pino({ level: 'silent' }) });
    await server.listen();
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: LAUNCH_ARGS, timeout: 30_000 });
  }, 240_000);
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);
  return {
    get server() {
      if (!server) throw new Error('no server (beforeAll failed?)');
      return server;
    },
    get browser() {
      if (!browser) throw new Error('no browser (beforeAll failed?)');
      return browser;
    },
  };
}

/**
 * A describe block with a built app, a sync server and a browser. Skipped (with
 * a message saying how to get Chromium) when there is none, except in CI
 * (CI set), where a missing Chromium fails the suite.
 */
export function describeE2E(name: string, body: (e2e: E2E) => void): void {
  if (!hasChromium) {
    if (inCI) {
      describe(name, () => {
        it('has Chromium to run the browser tests', () => {
          throw new Error(`${NO_CHROMIUM} CI must run the browser tests: install Chromium in the CI image.`);
        });
      });
      return;
    }
    console.warn(`[e2e] skipping "${name}": ${NO_CHROMIUM}`);
  }
  describe.skipIf(!hasChromium)(name, () => {
    const fixture = serverAndBrowser('syncline-e2e-', async (dir) => {
      const app = join(dir, 'dist');
      await ensureAppBuilt(app);
      return app;
    });
    const devices: Device[] = [];

    afterEach(async (context: TestContext) => {
      const failed = context.task.result?.state === 'fail';
      const errors = devices.flatMap((d) => d.pageErrors);
      if (failed) {
        let n = 0;
        for (const device of devices) for (const page of device.pages) await device.shot(`${slug(context.task.name)}-failed-${++n}`, page).catch(() => undefined);
      }
      await Promise.all(devices.splice(0).map((d) => d.close()));
      if (errors.length > 0 && !failed) throw new Error(`uncaught errors in the app:\n${errors.join('\n')}`);
    }, 60_000);

    const e2e: E2E = {
      get browser() {
        return fixture.browser;
      },
      get server() {
        return fixture.server;
      },
      get serverPort() {
        return fixture.server.port;
      },
      async device(deviceName, options = {}) {
        const context = await e2e.browser.newContext({
          locale: options.locale ?? LOCALE,
          timezoneId: options.timezoneId ?? TIMEZONE,
          viewport: options.viewport ?? { width: 1280, height: 860 },
          colorScheme: options.colorScheme ?? 'light',
          ...(options.mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
        });
        context.setDefaultTimeout(WAIT);
        const link = await Link.open(fixture.server.port);
        const device = new Device(deviceName, context, link);
        devices.push(device);
        return device;
      },
    };
    body(e2e);
  });
}

export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 80);
}

/** Local YYYY-MM-DD plus `days` (date-only arithmetic, no time zone involved). */
export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

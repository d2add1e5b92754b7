/**
 * The service worker keeps the app shell: with no network at all, a reload
 * still opens the calendar, with the events from IndexedDB, and it works.
 */
import { expect, it } from 'vitest';
import { chip, createEvent, describeE2E, SYNC, WAIT, waitSettled, weekEvents } from './harness.js';

const WEEK = '2027-02-22'; // a Monday

describeE2E('calendar: reload while offline', (e2e) => {
  it('opens the calendar from the service worker and shows the events', async () => {
    const device = await e2e.device('R');
    const page = await device.open({ date: WEEK });
    await createEvent(page, { title: 'Before the flight', slot: '2027-02-23T13:00', location: 'Gate 12' });
    await waitSettled(page);

    // The service worker is installed (its install step caches the shell) and controls the page.
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: WAIT });

    // No network: the browser is offline and the link to the server is cut (nothing can be fetched).
    await device.offline();
    const response = await page.reload({ timeout: WAIT });
    expect(response?.fromServiceWorker(), 'the reloaded page comes from the service worker').toBe(true);
    await page.locator('[data-testid="app"]').waitFor({ timeout: WAIT });
    await chip(page, 'Before the flight').waitFor({ timeout: WAIT });
    expect((await weekEvents(page)).map(({ title, start, column }) => ({ title, start, column }))).toEqual([
      { title: 'Before the flight', start: '2027-02-23T13:00', column: '2027-02-23' },
    ]);
    await page.locator(`${SYNC}[data-state="offline"]`).waitFor({ timeout: WAIT });

    // The reloaded app works offline: a new event waits for the network…
    await createEvent(page, { title: 'Written offline', slot: '2027-02-24T08:00' });
    await page.locator(`${SYNC}[data-state="offline"]:not([data-pending="0"])`).waitFor({ timeout: WAIT });
    await device.shot('offline-reload', page);
    // …and is uploaded when it is back.
    await device.online();
    await waitSettled(page);
  });
});

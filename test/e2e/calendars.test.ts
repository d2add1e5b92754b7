/**
 * A calendar added on one device syncs as a new space on both, without either
 * page reopening its replica (`replica.sync.addSpace`): the other device shows
 * the calendar, and an event created in it reaches that device.
 */
import { expect, it } from 'vitest';
import { chip, describeE2E, SYNC, WAIT } from './harness.js';

const WEEK = '2027-03-01'; // a Monday

describeE2E('calendar: a calendar added at run time', (e2e) => {
  it('is synced as a new space by both devices, and its events reach the other one', async () => {
    const a = await (await e2e.device('A')).open({ date: WEEK });
    const b = await (await e2e.device('B')).open({ date: WEEK });

    // A adds a calendar.
    await a.locator('[data-testid="calendar-add"]').click({ timeout: WAIT });
    const dialog = a.locator('[data-testid="calendar-dialog"]');
    await dialog.locator('[data-testid="calendar-name"]').fill('Trips');
    await dialog.locator('[data-testid="calendar-save"]').click();
    await dialog.waitFor({ state: 'detached', timeout: WAIT });

    // B shows it (the calendar list lives in the settings space).
    await b.locator('.calendar-name', { hasText: 'Trips' }).waitFor({ timeout: WAIT });

    // A creates an event in it.
    await a.locator('[data-testid="slot-2027-03-02T09:00"]').click({ timeout: WAIT });
    const event = a.locator('[data-testid="event-dialog"][data-mode="new"]');
    await event.waitFor({ timeout: WAIT });
    await event.locator('[data-testid="event-title"]').fill('Flight to Lisbon');
    await event.locator('[data-testid="event-calendar"]').selectOption({ label: 'Trips' });
    await event.locator('[data-testid="event-save"]').click();
    await event.waitFor({ state: 'detached', timeout: WAIT });

    // The event reaches B through the new space, and both devices end synced with nothing pending.
    await chip(b, 'Flight to Lisbon').waitFor({ timeout: WAIT });
    for (const page of [a, b]) {
      await expect.poll(async () => page.locator(SYNC).getAttribute('data-state'), { timeout: WAIT }).toBe('synced');
      expect(Number(await page.locator(SYNC).getAttribute('data-pending'))).toBe(0);
    }
  });
});

/**
 * The calendar speaks the browser's language (examples/calendar/src/i18n.ts):
 * German for a de-DE browser, English for en-GB. Checks the header, the
 * sidebar and the new-event dialog in both, with a screenshot of the German week.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { describeE2E, WAIT } from './harness.js';

const TUESDAY = '2027-03-02';

/** The words a person reads on the week view and in the dialog a click on a slot opens (the dialog is closed again). */
async function words(page: Page) {
  const text = async (selector: string) => ((await page.locator(selector).textContent({ timeout: WAIT })) ?? '').trim();
  const shown = {
    lang: await page.locator('html').getAttribute('lang'),
    today: await text('[data-testid="nav-today"]'),
    week: await text('[data-testid="view-week"]'),
    month: await text('[data-testid="view-month"]'),
    create: await text('[data-testid="create-event"]'),
  };
  await page.locator(`[data-testid="slot-${TUESDAY}T10:00"]`).click({ timeout: WAIT });
  const dialog = page.locator('[data-testid="event-dialog"][data-mode="new"]');
  await dialog.waitFor({ timeout: WAIT });
  const inDialog = {
    heading: await text('[data-testid="event-dialog"] h2'),
    save: await text('[data-testid="event-save"]'),
    cancel: await text('[data-testid="event-cancel"]'),
  };
  await dialog.locator('[data-testid="event-cancel"]').click();
  await dialog.waitFor({ state: 'detached', timeout: WAIT });
  return { ...shown, ...inDialog };
}

describeE2E('calendar: language', (e2e) => {
  it('is German in a de-DE browser', async () => {
    const device = await e2e.device('German', { locale: 'de-DE' });
    const page = await device.open({ date: TUESDAY });
    expect(await words(page)).toEqual({
      lang: 'de',
      today: 'Heute',
      week: 'Woche',
      month: 'Monat',
      create: 'Erstellen',
      heading: 'Neuer Termin',
      save: 'Speichern',
      cancel: 'Abbrechen',
    });
    // The sync indicator (polled: the app reconnects once when its list of calendars first arrives).
    await expect.poll(() => page.locator('[data-testid="sync-label"]').textContent(), { timeout: WAIT }).toBe('Synchronisiert');
    // The all-day row's label, with a soft hyphen to break it in the narrow gutter.
    expect((await page.locator('.allday-label').textContent())?.replace(/\u00ad/g, '')).toBe('ganztägig');
    await device.shot('german-week', page);
  });

  it('is English in an en-GB browser', async () => {
    const page = await (await e2e.device('English', { locale: 'en-GB' })).open({ date: TUESDAY });
    expect(await words(page)).toEqual({
      lang: 'en',
      today: 'Today',
      week: 'Week',
      month: 'Month',
      create: 'Create',
      heading: 'New event',
      save: 'Save',
      cancel: 'Cancel',
    });
    await expect.poll(() => page.locator('[data-testid="sync-label"]').textContent(), { timeout: WAIT }).toBe('Synced');
    expect(await page.locator('.allday-label').textContent()).toBe('all-day');
  });
});

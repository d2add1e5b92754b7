/**
 * Importing an .ics file through the app's import control: a weekly series is
 * expanded into its occurrences and an all-day event spans its dates, each on
 * the right days of the week view (in a time zone where UTC midnight is the
 * previous evening, so a date read as an instant would land a day early).
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { describeE2E, WAIT, weekEvents } from './harness.js';

const ICS = [
  'BEGIN:VCALENDAR',
  'VERSION:2.0',
  'PRODID:-//Syncline//e2e test//EN',
  'BEGIN:VEVENT',
  'UID:weekly-standup@e2e.syncline.test',
  'DTSTAMP:20261101T120000Z',
  // 15:00 UTC is 10:00 in New York in January.
  'DTSTART:20270105T150000Z',
  'DTEND:20270105T153000Z',
  'RRULE:FREQ=WEEKLY;COUNT=4',
  'SUMMARY:Weekly standup',
  'LOCATION:Room 4',
  'END:VEVENT',
  'BEGIN:VEVENT',
  'UID:offsite@e2e.syncline.test',
  'DTSTAMP:20261101T120000Z',
  'DTSTART;VALUE=DATE:20270114',
  'DTEND;VALUE=DATE:20270116',
  'SUMMARY:Team offsite',
  'END:VEVENT',
  'END:VCALENDAR',
  '',
].join('\r\n');

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

async function box(page: Page, selector: string): Promise<Box> {
  const b = await page.locator(selector).first().boundingBox();
  if (!b) throw new Error(`${selector} is not visible`);
  return b;
}

/** Moves the week view by one week with the toolbar arrow and waits for it to show `monday`. */
async function nextWeek(page: Page, monday: string): Promise<void> {
  await page.locator('[data-testid="nav-next"]').click();
  await page.locator(`[data-testid="week-view"][data-week-start="${monday}"]`).waitFor({ timeout: WAIT });
}

describeE2E('calendar: .ics import', (e2e) => {
  it('shows a weekly series and an all-day event on the right days', async () => {
    const device = await e2e.device('importer', { timezoneId: 'America/New_York' });
    const page = await device.open({ date: '2027-01-04' });

    await page.locator('[data-testid="ics-button"]').click();
    const dialog = page.locator('[data-testid="ics-dialog"]');
    await dialog.waitFor({ timeout: WAIT });
    await dialog.locator('[data-testid="ics-file"]').setInputFiles({ name: 'team.ics', mimeType: 'text/calendar', buffer: Buffer.from(ICS) });
    // 4 occurrences of the series + the all-day event.
    await dialog.locator('[data-testid="ics-summary"][data-count="5"]').waitFor({ timeout: WAIT });
    await dialog.locator('[data-testid="ics-import"]').click();
    await dialog.waitFor({ state: 'detached', timeout: WAIT });
    await expect.poll(() => page.locator('[data-testid="toast"]').textContent(), { timeout: WAIT }).toContain('Imported 5 events');

    const shown = async () => (await weekEvents(page)).map(({ title, start, column, allDay }) => ({ title, start, column, allDay }));
    const standup = (day: string) => ({ title: 'Weekly standup', start: `${day}T10:00`, column: day, allDay: false });

    // Week 1: the first standup, on Tuesday at 10:00 local, drawn at the 10:00 slot.
    await page.locator('[data-testid="week-view"][data-week-start="2027-01-04"]').waitFor({ timeout: WAIT });
    await expect.poll(shown, { timeout: WAIT }).toEqual([standup('2027-01-05')]);
    const chipBox = await box(page, '[data-testid="day-col-2027-01-05"] [data-title="Weekly standup"]');
    const slotBox = await box(page, '[data-testid="slot-2027-01-05T10:00"]');
    expect(Math.abs(chipBox.y - slotBox.y)).toBeLessThan(4);
    expect(chipBox.x).toBeGreaterThanOrEqual(slotBox.x - 2);
    expect(chipBox.x + chipBox.width).toBeLessThanOrEqual(slotBox.x + slotBox.width + 2);
    // A half-hour box still shows its title (not squeezed out by the time and location lines).
    const titleBox = await box(page, '[data-testid="day-col-2027-01-05"] [data-title="Weekly standup"] .event-title');
    expect(titleBox.height).toBeGreaterThanOrEqual(12);
    expect(titleBox.y).toBeGreaterThanOrEqual(chipBox.y);
    expect(titleBox.y + titleBox.height).toBeLessThanOrEqual(chipBox.y + chipBox.height + 1);
    await device.shot('ics-import-week-1', page);

    // Week 2: the standup again, and the offsite as one bar over Thursday and Friday.
    await nextWeek(page, '2027-01-11');
    await expect.poll(shown, { timeout: WAIT }).toEqual([standup('2027-01-12'), { title: 'Team offsite', start: '2027-01-14', column: '', allDay: true }]);
    const bar = await box(page, '[data-testid="allday-row"] [data-title="Team offsite"]');
    const [wed, thu, fri, sat] = await Promise.all(['2027-01-13', '2027-01-14', '2027-01-15', '2027-01-16'].map((d) => box(page, `[data-testid="allday-${d}"]`)));
    const center = (b: Box) => b.x + b.width / 2;
    expect(bar.x).toBeGreaterThan(center(wed as Box));
    expect(bar.x).toBeLessThan(center(thu as Box));
    expect(bar.x + bar.width).toBeGreaterThan(center(fri as Box));
    expect(bar.x + bar.width).toBeLessThan(center(sat as Box));
    await device.shot('ics-import-week-2', page);

    // Weeks 3 and 4: one standup each; week 5: the series (COUNT=4) is over.
    await nextWeek(page, '2027-01-18');
    await expect.poll(shown, { timeout: WAIT }).toEqual([standup('2027-01-19')]);
    await nextWeek(page, '2027-01-25');
    await expect.poll(shown, { timeout: WAIT }).toEqual([standup('2027-01-26')]);
    await nextWeek(page, '2027-02-01');
    await page.locator('[data-testid="calendar-view"][data-loading="false"]').waitFor({ timeout: WAIT });
    expect(await shown()).toEqual([]);

    // The month of January (its grid runs to 7 February) holds exactly the four occurrences, at 15:00 UTC.
    await page.locator('[data-testid="view-month"]').click();
    await page.locator('[data-testid="nav-prev"]').click();
    await page.locator('[data-testid="month-view"][data-month="2027-01"]').waitFor({ timeout: WAIT });
    const standups = () => page.locator('[data-testid="month-view"] [data-title="Weekly standup"]').evaluateAll((els) => els.map((el) => (el as HTMLElement).dataset['start']));
    await expect.poll(async () => (await standups()).length, { timeout: WAIT }).toBeGreaterThanOrEqual(4);
    expect((await standups()).sort()).toEqual(['2027-01-05T15:00:00.000Z', '2027-01-12T15:00:00.000Z', '2027-01-19T15:00:00.000Z', '2027-01-26T15:00:00.000Z']);
    await device.shot('ics-import-month', page);
  });
});

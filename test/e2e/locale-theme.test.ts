/**
 * The calendar follows the system: the week starts on the locale's first day
 * (Sunday in en-US, Monday in en-GB), and a dark system colour scheme gets dark
 * surfaces (prefers-color-scheme), with screenshots of both.
 */
import { expect, it } from 'vitest';
import { describeE2E, WAIT } from './harness.js';

const WEDNESDAY = '2027-03-03';

describeE2E('calendar: locale and theme', (e2e) => {
  it('starts the week on Sunday for en-US and on Monday for en-GB', async () => {
    const us = await (await e2e.device('US', { locale: 'en-US', timezoneId: 'America/New_York' })).open({ date: WEDNESDAY });
    const gb = await (await e2e.device('GB', { locale: 'en-GB' })).open({ date: WEDNESDAY });
    const columns = (page: typeof us) => page.locator('[data-testid^="day-col-"]').evaluateAll((cols) => cols.map((c) => (c as HTMLElement).dataset['date']));
    await expect.poll(() => columns(us), { timeout: WAIT }).toEqual(['2027-02-28', '2027-03-01', '2027-03-02', '2027-03-03', '2027-03-04', '2027-03-05', '2027-03-06']);
    await expect.poll(() => columns(gb), { timeout: WAIT }).toEqual(['2027-03-01', '2027-03-02', '2027-03-03', '2027-03-04', '2027-03-05', '2027-03-06', '2027-03-07']);
    // The mini month follows the same week.
    const firstMini = (page: typeof us) => page.locator('.mini-weekday').first().textContent();
    expect((await firstMini(us))?.toUpperCase()).toMatch(/^S/);
    expect((await firstMini(gb))?.toUpperCase()).toMatch(/^M/);
  });

  it('uses dark surfaces when the system asks for a dark colour scheme, light ones otherwise', async () => {
    const darkDevice = await e2e.device('Dark', { colorScheme: 'dark' });
    const dark = await darkDevice.open({ date: WEDNESDAY });
    const light = await (await e2e.device('Light')).open({ date: WEDNESDAY });
    const background = (page: typeof dark, selector: string) => page.locator(selector).first().evaluate((el) => getComputedStyle(el).backgroundColor);
    const color = (page: typeof dark) => page.locator('body').evaluate((el) => getComputedStyle(el).color);
    expect(await background(dark, 'html')).toBe('rgb(32, 33, 36)');
    expect(await color(dark)).toBe('rgb(232, 234, 237)');
    expect(await background(light, 'html')).toBe('rgb(255, 255, 255)');
    // A dialog too.
    await dark.locator('[data-testid="slot-2027-03-03T10:00"]').click();
    const dialog = dark.locator('[data-testid="event-dialog"]');
    await dialog.waitFor({ timeout: WAIT });
    expect(await background(dark, '[data-testid="event-dialog"]')).toBe('rgb(32, 33, 36)');
    await darkDevice.shot('dark-mode', dark);
  });
});

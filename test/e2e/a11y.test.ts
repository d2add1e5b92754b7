/**
 * Accessibility of the calendar in Chromium: an automated check (axe-core) of
 * the week view, the month view and the event dialog finds no serious or
 * critical violation; an event can be created with the keyboard alone (Tab to
 * the time grid, arrows to a slot, Enter, type, Enter); Tab leaves the mini
 * month after one stop; a dialog keeps the focus inside and gives it back when
 * it closes.
 */
import AxeBuilder from '@axe-core/playwright';
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chip, describeE2E, WAIT } from './harness.js';

const WEEK = '2027-03-01'; // a Monday

async function seriousViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

describeE2E('calendar: accessibility', (e2e) => {
  it('has no serious or critical axe violations in the week view, the month view and the event dialog', async () => {
    const device = await e2e.device('A');
    const page = await device.open({ date: WEEK });
    expect(await seriousViolations(page)).toEqual([]);
    await page.locator('[data-testid="slot-2027-03-02T10:00"]').click();
    await page.locator('[data-testid="event-dialog"]').waitFor({ timeout: WAIT });
    expect(await seriousViolations(page)).toEqual([]);
    await page.keyboard.press('Escape');
    await page.locator('[data-testid="view-month"]').click();
    await page.locator('[data-testid="month-view"]').waitFor({ timeout: WAIT });
    expect(await seriousViolations(page)).toEqual([]);
  });

  it('creates an event with the keyboard alone; Tab passes the mini month in one stop; the dialog keeps the focus and gives it back', async () => {
    const device = await e2e.device('A');
    const page = await device.open({ date: WEEK });
    // Tab from the start of the page until the time grid has the focus, counting the stops on the way.
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    const visited: string[] = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      const where = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        return el?.getAttribute('data-testid') ?? el?.getAttribute('aria-label') ?? el?.tagName ?? '';
      });
      visited.push(where);
      if (where.startsWith('slot-')) break;
    }
    expect(visited.at(-1), `tab stops: ${visited.join(', ')}`).toMatch(/^slot-/);
    // The mini month is one stop, not 42.
    expect(visited.filter((v) => v.startsWith('mini-2')).length).toBe(1);

    // Arrows to Tuesday 14:00 from the grid's first stop (Monday 09:00): one day right, ten half hours down.
    await page.keyboard.press('ArrowRight');
    for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowDown');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-datetime'))).toBe('2027-03-02T14:00');
    await page.keyboard.press('Enter');
    const dialog = page.locator('[data-testid="event-dialog"][data-mode="new"]');
    await dialog.waitFor({ timeout: WAIT });
    expect(await dialog.locator('[data-testid="event-start-time"]').inputValue()).toBe('14:00');
    // The title has the focus; Tab cycles inside the dialog.
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe('event-title');
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => Boolean(document.activeElement?.closest('[data-testid="event-dialog"]')))).toBe(true);
    }
    await page.locator('[data-testid="event-title"]').focus();
    await page.keyboard.type('Written with the keyboard');
    await page.keyboard.press('Enter');
    await dialog.waitFor({ state: 'detached', timeout: WAIT });
    await chip(page, 'Written with the keyboard').waitFor({ timeout: WAIT });
    // The focus is back on the slot it came from.
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-datetime'))).toBe('2027-03-02T14:00');
    expect(await seriousViolations(page)).toEqual([]);
  });
});

/**
 * The calendar on a phone (390 × 844, touch) and a tablet (768 × 1024), in
 * Chromium: the header fits, the week shows as three days (and a day), the
 * sidebar is a drawer behind the menu button; an event is created by a tap,
 * opened by a tap, moved and resized with a finger. Screenshots of both sizes go to
 * test-results/e2e.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chip, describeE2E, WAIT, waitSettled, weekEvents } from './harness.js';

const WEEK = '2027-03-01';

/** A finger drag on `page` from one point to another, as Chromium's touch input (pointer events of type touch). */
async function touchDrag(page: Page, from: { x: number; y: number }, to: { x: number; y: number }, steps = 8): Promise<void> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x: from.x, y: from.y }] });
  for (let i = 1; i <= steps; i++) {
    const x = from.x + ((to.x - from.x) * i) / steps;
    const y = from.y + ((to.y - from.y) * i) / steps;
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x, y }] });
    await new Promise((resolve) => setTimeout(resolve, 16));
  }
  // The finger rests before it lifts, as a person's does: no fling left running (it would swallow the next tap).
  await new Promise((resolve) => setTimeout(resolve, 150));
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await cdp.detach();
}

describeE2E('calendar: on a phone', (e2e) => {
  it('fits a phone: three days, a header that fits, the sidebar as a drawer; create, open, move and resize an event by touch', async () => {
    const device = await e2e.device('phone', { viewport: { width: 390, height: 844 }, mobile: true });
    const page = await device.open({ date: '2027-03-02' });
    const view = page.locator('[data-testid="week-view"]');
    await expect.poll(() => view.getAttribute('data-days'), { timeout: WAIT }).toBe('3');
    // Everything in the header is on the screen.
    for (const id of ['menu', 'nav-today', 'nav-prev', 'nav-next', 'nav-title', 'view-day', 'view-3day', 'view-month', 'sync-indicator']) {
      const box = await page.locator(`[data-testid="${id}"]`).boundingBox();
      expect(box, id).not.toBeNull();
      expect((box as { x: number; width: number }).x + (box as { width: number }).width, id).toBeLessThanOrEqual(390);
    }
    expect(await page.locator('[data-testid="sidebar"]').isVisible()).toBe(false);
    await device.shot('phone-3day', page);

    // Create: a tap on a slot.
    await page.locator('[data-testid="slot-2027-03-03T10:00"]').tap();
    const dialog = page.locator('[data-testid="event-dialog"][data-mode="new"]');
    await dialog.waitFor({ timeout: WAIT });
    await dialog.locator('[data-testid="event-title"]').fill('Coffee');
    await dialog.locator('[data-testid="event-save"]').tap();
    await dialog.waitFor({ state: 'detached', timeout: WAIT });
    const coffee = chip(page, 'Coffee');
    await coffee.waitFor({ timeout: WAIT });
    // Readable: the chip is at least as wide as a few words.
    expect((await coffee.boundingBox())?.width).toBeGreaterThan(80);

    // Open: a tap on it.
    await coffee.tap();
    const edit = page.locator('[data-testid="event-dialog"][data-mode="edit"]');
    await edit.waitFor({ timeout: WAIT });
    await device.shot('phone-dialog', page);
    await edit.locator('[data-testid="event-cancel"]').tap();
    await edit.waitFor({ state: 'detached', timeout: WAIT });

    // Move: a finger drags it two hours down (48 px an hour).
    const box = (await coffee.boundingBox()) as { x: number; y: number; width: number; height: number };
    const start = { x: box.x + box.width / 2, y: box.y + 10 };
    await touchDrag(page, start, { x: start.x, y: start.y + 96 });
    await expect.poll(async () => (await weekEvents(page)).find((e) => e.title === 'Coffee')?.start, { timeout: WAIT }).toBe('2027-03-03T12:00');
    await page.locator('[data-testid="toast-undo"]').waitFor({ timeout: WAIT });
    // Resize: a finger drags its bottom edge an hour down.
    const coffeeId = (await weekEvents(page)).find((e) => e.title === 'Coffee')?.id as string;
    const handle = (await page.locator(`[data-testid="resize-${coffeeId}"]`).boundingBox()) as { x: number; y: number; width: number; height: number };
    const grip = { x: handle.x + handle.width / 2, y: handle.y + handle.height / 2 };
    await touchDrag(page, grip, { x: grip.x, y: grip.y + 48 });
    await expect.poll(async () => (await weekEvents(page)).find((e) => e.title === 'Coffee')?.text, { timeout: WAIT }).toContain('12:00 – 14:00');
    await waitSettled(page);
    await device.shot('phone-moved', page);

    // The day view, and the drawer: menu, a date in the mini month, closed again.
    await page.locator('[data-testid="view-day"]').tap();
    await expect.poll(() => view.getAttribute('data-days'), { timeout: WAIT }).toBe('1');
    await page.locator('[data-testid="menu"]').tap();
    await page.locator('[data-testid="sidebar"]').waitFor({ state: 'visible', timeout: WAIT });
    await device.shot('phone-drawer', page);
    await page.locator('[data-testid="mini-2027-03-05"]').tap();
    await page.locator('[data-testid="sidebar"]').waitFor({ state: 'hidden', timeout: WAIT });
    await expect.poll(() => page.locator('[data-testid="nav-title"]').getAttribute('data-date'), { timeout: WAIT }).toBe('2027-03-05');
    // A button in the corner creates too.
    await page.locator('[data-testid="fab-create"]').tap();
    await page.locator('[data-testid="event-dialog"][data-mode="new"]').waitFor({ timeout: WAIT });
  });

  it('fits a tablet (768 × 1024): the whole week, no sidebar', async () => {
    const device = await e2e.device('tablet', { viewport: { width: 768, height: 1024 }, mobile: true });
    const page = await device.open({ date: WEEK });
    await expect.poll(() => page.locator('[data-testid="week-view"]').getAttribute('data-days'), { timeout: WAIT }).toBe('7');
    for (const id of ['nav-title', 'view-week', 'view-month', 'sync-indicator']) {
      const box = await page.locator(`[data-testid="${id}"]`).boundingBox();
      expect((box as { x: number; width: number }).x + (box as { width: number }).width, id).toBeLessThanOrEqual(768);
    }
    await device.shot('tablet-week', page);
  });
});

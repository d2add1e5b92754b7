/**
 * Presence and undo in the calendar, in Chromium, on two devices:
 * - each device shows who else looks at the same week, and who has the same
 *   event open; a device that moves away or closes disappears; nothing of it is
 *   in the server's database;
 * - Undo after a delete brings the event back with its notes (the toast's
 *   button), on both devices;
 * - Ctrl+Z after a remote edit of another field of the same event reverts only
 *   this device's field, on both devices;
 * - Cancel in the dialog takes back the notes typed in it;
 * - a device is named after its browser until renamed, and others see the new
 *   name; with the network up and the server out of reach, the indicator says
 *   so instead of "Offline".
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { SpaceId } from '@syncline/core/internal';
import type { SyncServer } from '@syncline/server';
import { chip, createEvent, describeE2E, editEvent, WAIT, waitSettled, weekEvents } from './harness.js';

const WEEK = '2027-03-01'; // a Monday

async function openEvent(page: Page, id: string) {
  await page.locator(`[data-testid="event-${id}"]`).first().click();
  const dialog = page.locator(`[data-testid="event-dialog"][data-mode="edit"][data-event-id="${id}"]`);
  await dialog.waitFor({ timeout: WAIT });
  return dialog;
}

/** Every record state and log entry the server holds, as text. */
async function everythingStored(server: SyncServer): Promise<string> {
  const out: string[] = [];
  for (const space of await server.storage.spaces()) {
    let after: readonly [string, string] | undefined;
    for (;;) {
      const page = await server.storage.snapshotPage(space as SpaceId, after, 500);
      for (const r of page) out.push(JSON.stringify([r.collection, r.id, r.state], (_k, v: unknown) => (v instanceof Map ? [...v] : v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v)));
      const last = page[page.length - 1];
      if (!last || page.length < 500) break;
      after = [last.collection, last.id];
    }
    for (const entry of await server.storage.readLog(space as SpaceId, 0, 100_000)) out.push(JSON.stringify(entry.change, (_k, v: unknown) => (v instanceof Map ? [...v] : v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v)));
  }
  return out.join('\n');
}

describeE2E('calendar: presence and undo', (e2e) => {
  it('shows who else looks at the same week and who has the same event open; a device that leaves disappears; nothing is stored', async () => {
    const deviceA = await e2e.device('Ann');
    const deviceB = await e2e.device('Bob');
    const a = await deviceA.open({ date: WEEK });
    const b = await deviceB.open({ date: WEEK });
    await expect.poll(() => a.locator('[data-testid="presence"]').textContent(), { timeout: WAIT }).toContain('Bob');
    await expect.poll(() => b.locator('[data-testid="presence"]').textContent(), { timeout: WAIT }).toContain('Ann');

    const id = await createEvent(a, { title: 'Planning', slot: '2027-03-02T10:00' });
    await chip(b, 'Planning').waitFor({ timeout: WAIT });
    await openEvent(b, id);
    const dialogA = await openEvent(a, id);
    await expect.poll(() => dialogA.locator('[data-testid="event-editors"]').textContent(), { timeout: WAIT }).toContain('Bob');
    await deviceA.shot('presence-A', a);
    await a.locator('[data-testid="event-cancel"]').click();
    await b.locator('[data-testid="event-cancel"]').click();

    // B looks at the next week: it is no longer shown on A; back, it is.
    await b.locator('[data-testid="nav-next"]').click();
    await a.locator('[data-testid="presence"]').waitFor({ state: 'detached', timeout: WAIT });
    await b.locator('[data-testid="nav-prev"]').click();
    await expect.poll(() => a.locator('[data-testid="presence"]').textContent(), { timeout: WAIT }).toContain('Bob');
    // B closes the calendar: it goes with its connection.
    await b.close();
    await a.locator('[data-testid="presence"]').waitFor({ state: 'detached', timeout: WAIT });

    await waitSettled(a);
    const stored = await everythingStored(e2e.server);
    expect(stored).toContain('Planning');
    expect(stored).not.toContain('looking');
    expect(stored).not.toContain(`week:${WEEK}`);
  });

  it('Undo after a delete brings the event back with its notes, on both devices', async () => {
    const deviceA = await e2e.device('A');
    const deviceB = await e2e.device('B');
    const a = await deviceA.open({ date: WEEK });
    const b = await deviceB.open({ date: WEEK });
    const id = await createEvent(a, { title: 'Lunch', slot: '2027-03-03T12:00', notes: 'Table for four' });
    await chip(b, 'Lunch').waitFor({ timeout: WAIT });

    const dialog = await openEvent(a, id);
    await dialog.locator('[data-testid="event-delete"]').click();
    await dialog.waitFor({ state: 'detached', timeout: WAIT });
    await chip(a, 'Lunch').waitFor({ state: 'detached', timeout: WAIT });
    await chip(b, 'Lunch').waitFor({ state: 'detached', timeout: WAIT });
    await deviceA.shot('undo-toast-A', a);
    await a.locator('[data-testid="toast-undo"]').click();
    await chip(a, 'Lunch').waitFor({ timeout: WAIT });
    await chip(b, 'Lunch').waitFor({ timeout: WAIT });
    for (const page of [a, b]) {
      const notes = (await openEvent(page, id)).locator('[data-testid="event-notes"][data-ready="true"]');
      await expect.poll(() => notes.inputValue(), { timeout: WAIT }).toBe('Table for four');
      await page.locator('[data-testid="event-cancel"]').click();
    }
  });

  it('Ctrl+Z after another device edited another field of the same event reverts only this device’s field, on both', async () => {
    const deviceA = await e2e.device('A');
    const deviceB = await e2e.device('B');
    const a = await deviceA.open({ date: WEEK });
    const b = await deviceB.open({ date: WEEK });
    const id = await createEvent(a, { title: 'Standup', slot: '2027-03-04T09:00', end: '09:30' });
    await chip(b, 'Standup').waitFor({ timeout: WAIT });

    await editEvent(a, id, { startTime: '10:00', endTime: '10:30' });
    await waitSettled(a);
    await expect.poll(async () => (await weekEvents(b)).find((e) => e.id === id)?.start, { timeout: WAIT }).toBe('2027-03-04T10:00');
    await editEvent(b, id, { title: 'Standup (all hands)' });
    await chip(a, 'Standup (all hands)').waitFor({ timeout: WAIT });

    await a.locator('[data-testid="nav-title"]').click();
    await a.keyboard.press('Control+z');
    for (const page of [a, b]) {
      await expect.poll(async () => (await weekEvents(page)).find((e) => e.id === id), { timeout: WAIT }).toMatchObject({ title: 'Standup (all hands)', start: '2027-03-04T09:00' });
    }
    await deviceB.shot('undo-remote-B', b);
  });

  it('Cancel takes back the notes typed in the dialog', async () => {
    const device = await e2e.device('A');
    const a = await device.open({ date: WEEK });
    const id = await createEvent(a, { title: 'Review', slot: '2027-03-05T15:00', notes: 'Agenda:' });
    let notes = (await openEvent(a, id)).locator('[data-testid="event-notes"][data-ready="true"]');
    await expect.poll(() => notes.inputValue(), { timeout: WAIT }).toBe('Agenda:');
    await notes.click();
    await a.keyboard.press('Control+End');
    await notes.pressSequentially(' 1. the numbers', { delay: 20 });
    await expect.poll(() => notes.inputValue(), { timeout: WAIT }).toBe('Agenda: 1. the numbers');
    await a.locator('[data-testid="event-cancel"]').click();
    notes = (await openEvent(a, id)).locator('[data-testid="event-notes"][data-ready="true"]');
    await expect.poll(() => notes.inputValue(), { timeout: WAIT }).toBe('Agenda:');
    // Save keeps them.
    await notes.click();
    await a.keyboard.press('Control+End');
    await notes.pressSequentially(' kept', { delay: 20 });
    await a.locator('[data-testid="event-save"]').click();
    notes = (await openEvent(a, id)).locator('[data-testid="event-notes"][data-ready="true"]');
    await expect.poll(() => notes.inputValue(), { timeout: WAIT }).toBe('Agenda: kept');
  });

  it('names a device after its browser until it is renamed; says the server is out of reach, not offline, when the network is up', async () => {
    const deviceA = await e2e.device('A');
    const deviceB = await e2e.device('B');
    const a = await deviceA.context.newPage();
    deviceA.pages.push(a);
    // Without ?device=, as people open it: the browser's name.
    await a.goto(`${deviceA.origin}/?date=${WEEK}`, { timeout: WAIT });
    await waitSettled(a);
    const b = await deviceB.open({ date: WEEK });
    await expect.poll(() => b.locator('[data-testid="presence"]').textContent(), { timeout: WAIT }).toContain('Chrome on Linux');

    await a.locator('[data-testid="sync-indicator"]').click();
    await a.locator('[data-testid="device-name"]').fill('Ann’s laptop');
    await a.locator('[data-testid="device-name-save"]').click();
    await expect.poll(() => b.locator('[data-testid="presence"]').textContent(), { timeout: WAIT }).toContain('Ann’s laptop');
    await a.reload();
    await waitSettled(a);
    await expect.poll(() => b.locator('[data-testid="presence"]').textContent(), { timeout: WAIT }).toContain('Ann’s laptop');

    // The network is up (the browser says online) but the server cannot be reached.
    deviceA.link.down();
    const indicator = a.locator('[data-testid="sync-indicator"][data-state="unreachable"][data-online="true"]');
    await indicator.waitFor({ timeout: WAIT });
    expect(await a.locator('[data-testid="sync-label"]').textContent()).toMatch(/^Can't reach the server/);
    await deviceA.shot('unreachable-A', a);
    deviceA.link.up();
    await waitSettled(a);
  });
});

/**
 * An event's notes are a collaborative text (a Y.Text): two devices typing in
 * them at the same time both keep their text, and both end with the same notes.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chip, createEvent, describeE2E, WAIT, waitSettled } from './harness.js';

const WEEK = '2027-02-15'; // a Monday

async function openNotes(page: Page, id: string) {
  await page.locator(`[data-testid="event-${id}"]`).click();
  const notes = page.locator(`[data-testid="event-dialog"][data-event-id="${id}"] [data-testid="event-notes"][data-ready="true"]`);
  await notes.waitFor({ timeout: WAIT });
  return notes;
}

describeE2E('calendar: notes edited on two devices at once', (e2e) => {
  it('keeps both texts on both devices', async () => {
    const deviceA = await e2e.device('A');
    const deviceB = await e2e.device('B');
    const a = await deviceA.open({ date: WEEK });
    const b = await deviceB.open({ date: WEEK });

    const id = await createEvent(a, { title: 'Retro', slot: '2027-02-16T11:00', notes: 'Agenda:' });
    await chip(b, 'Retro').waitFor({ timeout: WAIT });

    const notesA = await openNotes(a, id);
    const notesB = await openNotes(b, id);
    await expect.poll(() => notesA.inputValue(), { timeout: WAIT }).toBe('Agenda:');
    await expect.poll(() => notesB.inputValue(), { timeout: WAIT }).toBe('Agenda:');

    // A types at the end while B types at the start, keystroke by keystroke, at the same time.
    // B's caret must stay where B types as A's text arrives (and A's move on as B's arrives).
    await notesA.click();
    await a.keyboard.press('Control+End');
    await notesB.click();
    await b.keyboard.press('Control+Home');
    const textA = '\nA: bring the slides';
    const textB = 'B: book the room\n';
    await Promise.all([notesA.pressSequentially(textA, { delay: 35 }), notesB.pressSequentially(textB, { delay: 35 })]);

    const expected = `${textB}Agenda:${textA}`;
    await expect.poll(() => notesA.inputValue(), { timeout: WAIT }).toBe(expected);
    await expect.poll(() => notesB.inputValue(), { timeout: WAIT }).toBe(expected);
    await deviceA.shot('notes-A', a);
    await deviceB.shot('notes-B', b);

    // The merged notes are stored: B, reloaded, opens them again.
    await waitSettled(a);
    await waitSettled(b);
    await a.locator('[data-testid="event-save"]').click();
    await b.reload();
    await waitSettled(b);
    const again = await openNotes(b, id);
    await expect.poll(() => again.inputValue(), { timeout: WAIT }).toBe(expected);
  });
});

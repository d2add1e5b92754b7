/**
 * Two devices edit offline, then come back one after the other: both end with
 * the same calendar. Event fields are last-writer-wins per field (a field only
 * one device changed keeps that change; a field both changed takes the later
 * write); the status is a merge field, so two concurrent statuses are a
 * conflict both devices show, until one device picks a version.
 */
import { expect, it } from 'vitest';
import { chip, createEvent, describeE2E, editEvent, SYNC, WAIT, weekEvents, type Shown } from './harness.js';

const WEEK = '2027-02-01'; // a Monday

describeE2E('calendar: offline edits on two devices', (e2e) => {
  it('converge to the same week, merging the shared event field by field', async () => {
    const deviceA = await e2e.device('A');
    const deviceB = await e2e.device('B');
    const a = await deviceA.open({ date: WEEK });
    const b = await deviceB.open({ date: WEEK });

    // An event both devices have before going offline.
    const shared = await createEvent(a, { title: 'Planning', slot: '2027-02-02T10:00', location: 'Room 1' });
    await chip(b, 'Planning').waitFor({ timeout: WAIT });

    await deviceA.offline();
    await deviceB.offline();

    // A, offline: a new event; the shared one renamed, moved to another room, marked tentative.
    await createEvent(a, { title: 'A: dentist', slot: '2027-02-03T09:00' });
    await editEvent(a, shared, { title: 'Planning (A)', location: 'Room A', status: 'tentative' });
    // B, offline and later: a new event; the shared one moved to 14:00, to another room, cancelled.
    await createEvent(b, { title: 'B: gym', slot: '2027-02-04T18:00', end: '19:30' });
    await editEvent(b, shared, { startTime: '14:00', endTime: '15:00', location: 'Room B', status: 'cancelled' });

    // Each device shows its own offline writes, waiting to be uploaded.
    const brief = (shown: Shown[]) => shown.map(({ title, start, column, status }) => ({ title, start, column, status }));
    expect(brief(await weekEvents(a))).toEqual([
      { title: 'Planning (A)', start: '2027-02-02T10:00', column: '2027-02-02', status: 'tentative' },
      { title: 'A: dentist', start: '2027-02-03T09:00', column: '2027-02-03', status: '' },
    ]);
    expect(brief(await weekEvents(b))).toEqual([
      { title: 'Planning', start: '2027-02-02T14:00', column: '2027-02-02', status: 'cancelled' },
      { title: 'B: gym', start: '2027-02-04T18:00', column: '2027-02-04', status: '' },
    ]);
    for (const page of [a, b]) {
      expect(await page.locator(SYNC).getAttribute('data-state')).toBe('offline');
      expect(Number(await page.locator(SYNC).getAttribute('data-pending'))).toBeGreaterThan(0);
    }
    await deviceA.shot('offline-merge-A-offline', a);

    // A comes back (uploads), then B (uploads and gets A's changes); A gets B's.
    await deviceA.online();
    await deviceB.online();

    const expected = [
      // Title: only A changed it. Time: only B. Location: both, B wrote later. Status: both, a conflict (the later one shows).
      { title: 'Planning (A)', start: '2027-02-02T14:00', column: '2027-02-02', status: 'cancelled', conflict: true, room: 'Room B' },
      { title: 'A: dentist', start: '2027-02-03T09:00', column: '2027-02-03', status: '', conflict: false, room: '' },
      { title: 'B: gym', start: '2027-02-04T18:00', column: '2027-02-04', status: '', conflict: false, room: '' },
    ];
    const summary = (shown: Shown[]) => shown.map(({ title, start, column, status, conflict, text }) => ({ title, start, column, status, conflict, room: /Room \w+/.exec(text)?.[0] ?? '' }));
    await expect.poll(async () => summary(await weekEvents(a)), { timeout: WAIT }).toEqual(expected);
    await expect.poll(async () => summary(await weekEvents(b)), { timeout: WAIT }).toEqual(expected);
    // Identical, chip for chip (ids, times and locations as drawn).
    expect(await weekEvents(a)).toEqual(await weekEvents(b));
    await b.locator(`[data-testid="conflict-badge-${shared}"]`).waitFor({ timeout: WAIT });
    await deviceA.shot('offline-merge-A', a);
    await deviceB.shot('offline-merge-B', b);

    // A opens the event and keeps its own status: the conflict is resolved on both devices.
    await a.locator(`[data-testid="event-${shared}"]`).click();
    const panel = a.locator('[data-testid="event-dialog"] [data-testid="conflict-panel"]');
    await panel.waitFor({ timeout: WAIT });
    await deviceA.shot('offline-merge-A-conflict', a);
    const choices = panel.locator('[data-testid^="conflict-choice-"]');
    expect((await choices.evaluateAll((els) => els.map((el) => (el as HTMLElement).dataset['status']))).sort()).toEqual(['cancelled', 'tentative']);
    await panel.locator('[data-testid^="conflict-choice-"][data-status="tentative"]').click();
    await panel.waitFor({ state: 'detached', timeout: WAIT });
    await a.locator('[data-testid="event-cancel"]').click();
    for (const page of [a, b]) {
      await page.locator(`[data-testid="event-${shared}"][data-status="tentative"]`).waitFor({ timeout: WAIT });
      await page.locator(`[data-testid="conflict-badge-${shared}"]`).waitFor({ state: 'detached', timeout: WAIT });
    }
  });
});

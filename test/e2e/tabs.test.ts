/**
 * Two tabs of one device share one replica (IndexedDB): one tab holds the sync
 * connection (a Web Lock), the other learns of changes over BroadcastChannel.
 * Closing the tab that held the connection hands it to the other one.
 */
import { expect, it } from 'vitest';
import { chip, createEvent, describeE2E, SYNC, WAIT, weekEvents } from './harness.js';

const WEEK = '2027-03-01'; // a Monday

describeE2E('calendar: two tabs of one device', (e2e) => {
  it('a write in one tab shows in the other, and sync goes on after the tab holding the connection closes', async () => {
    const laptop = await e2e.device('laptop');
    const first = await laptop.open({ date: WEEK });
    await first.locator(`${SYNC}[data-state="synced"]`).waitFor({ timeout: WAIT });
    const second = await laptop.open({ date: WEEK });
    // One connection per device: the second tab leaves it to the first.
    await second.locator(`${SYNC}[data-state="other-tab"]`).waitFor({ timeout: WAIT });
    await expect(first.locator(SYNC).getAttribute('data-state')).resolves.toBe('synced');

    const phoneDevice = await e2e.device('phone');
    const phone = await phoneDevice.open({ date: WEEK });

    // Written in the tab with the connection: the other tab shows it.
    await createEvent(first, { title: 'Written in tab 1', slot: '2027-03-01T09:00' });
    await chip(second, 'Written in tab 1').waitFor({ timeout: WAIT });

    // Written in the tab without the connection: the first tab shows it and uploads it (the phone gets it).
    await createEvent(second, { title: 'Written in tab 2', slot: '2027-03-02T10:30' });
    await chip(first, 'Written in tab 2').waitFor({ timeout: WAIT });
    await chip(phone, 'Written in tab 2').waitFor({ timeout: WAIT });
    await chip(phone, 'Written in tab 1').waitFor({ timeout: WAIT });

    // Close the tab holding the connection: the remaining tab takes it over.
    await first.close();
    await second.locator(`${SYNC}[data-state="synced"]`).waitFor({ timeout: WAIT });

    // A change from another device reaches the remaining tab…
    await createEvent(phone, { title: 'From the phone', slot: '2027-03-03T14:00' });
    await chip(second, 'From the phone').waitFor({ timeout: WAIT });
    // …and the remaining tab's own writes reach the other device.
    await createEvent(second, { title: 'After the handover', slot: '2027-03-04T16:00' });
    await chip(phone, 'After the handover').waitFor({ timeout: WAIT });

    const expected = [
      { title: 'Written in tab 1', start: '2027-03-01T09:00', column: '2027-03-01' },
      { title: 'Written in tab 2', start: '2027-03-02T10:30', column: '2027-03-02' },
      { title: 'From the phone', start: '2027-03-03T14:00', column: '2027-03-03' },
      { title: 'After the handover', start: '2027-03-04T16:00', column: '2027-03-04' },
    ];
    const brief = async (page: typeof phone) => (await weekEvents(page)).map(({ title, start, column }) => ({ title, start, column }));
    await expect.poll(() => brief(second), { timeout: WAIT }).toEqual(expected);
    await expect.poll(() => brief(phone), { timeout: WAIT }).toEqual(expected);

    await laptop.shot('tabs-remaining-tab', second);
    await phoneDevice.shot('tabs-other-device', phone);
  });
});

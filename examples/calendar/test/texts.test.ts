/**
 * The calendar's words for what happens to sync, and its default device
 * names: a server restart reads as one (not the server's own message glued
 * to a prefix), and a device is named after its browser and system, not after
 * a fragment of its replica id.
 */
import { describe, expect, it } from 'vitest';
import type { SyncErrorInfo } from '@syncline/client';
import { describeSyncError } from '../src/components/SyncIndicator';
import { describeBrowser } from '../src/data/host';

const name = (space: string) => space;

describe('calendar texts', () => {
  it('says a restarting server is restarting, and a busy one busy, in sentences of its own', () => {
    const restart = describeSyncError({ code: 'shutting_down', message: 'the server is shutting down; reconnect to another instance or later', fatal: true } as SyncErrorInfo, undefined, name);
    expect(restart).toEqual({ title: 'The sync server is restarting.', detail: 'Reconnecting automatically; your changes are kept on this device.' });
    for (const code of ['rate_limited', 'slow_consumer', 'too_many_connections'] as const) {
      const busy = describeSyncError({ code, message: 'some server detail', fatal: true } as SyncErrorInfo, undefined, name);
      expect(busy.title).toBe('The sync server is busy.');
      expect(busy.detail).not.toContain('some server detail');
    }
  });

  it('names a device after its browser and system', () => {
    const cases: Array<[string, string]> = [
      ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36', 'Chrome on Linux'],
      ['Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1', 'Safari on iPhone'],
      ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0', 'Edge on Windows'],
      ['Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0', 'Firefox on Mac'],
      ['Mozilla/5.0 (Linux; Android 15) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36', 'Chrome on Android'],
      ['curl/8.5', 'Browser'],
    ];
    for (const [ua, expected] of cases) expect(describeBrowser(ua)).toBe(expected);
  });
});

describe('weeks', () => {
  it('start on the locale’s first day: Sunday for en-US, Monday for en-GB and de-DE', async () => {
    const { firstDayOfWeek, startOfWeek, isoDate } = await import('../src/dates');
    expect([firstDayOfWeek('en-US'), firstDayOfWeek('en-GB'), firstDayOfWeek('de-DE')]).toEqual([0, 1, 1]);
    const wednesday = new Date(2027, 2, 3);
    expect(isoDate(startOfWeek(wednesday, 0))).toBe('2027-02-28');
    expect(isoDate(startOfWeek(wednesday, 1))).toBe('2027-03-01');
  });
});

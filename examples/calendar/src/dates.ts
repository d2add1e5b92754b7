/**
 * Date helpers. The calendar works in the browser's local time zone; weeks start
 * on the locale's first day (Sunday for en-US, Monday for en-GB and de-DE).
 * Timed events are stored as epoch milliseconds; all-day events as
 * UTC midnights of their dates (a "floating" date that reads the same in every
 * time zone), with an exclusive end date like iCalendar's DTEND.
 */
import { t } from './i18n';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** The views: a day, three days, a week (the days of the time grid), or a month. */
export type View = 'day' | '3day' | 'week' | 'month';

/** How many days the time grid shows in a view (0: the month grid). */
export const daysOf = (view: View): number => (view === 'day' ? 1 : view === '3day' ? 3 : view === 'week' ? 7 : 0);

export function startOfDay(d: Date): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate());
}

export function addDays(d: Date, n: number): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + n, d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds());
}

export function addMonths(d: Date, n: number): Date {
  const target = new Date(d.getFullYear(), d.getMonth() + n, 1);
  const last = new Date(target.getFullYear(), target.getMonth() + 1, 0).getDate();
  return new Date(target.getFullYear(), target.getMonth(), Math.min(d.getDate(), last));
}

/** Regions whose weeks start on Sunday, for engines without Intl.Locale week info. */
const SUNDAY_REGIONS = new Set(['US', 'CA', 'MX', 'BR', 'JP', 'KR', 'TW', 'HK', 'IL', 'PH', 'ZA', 'AU', 'IN', 'SA', 'PE', 'CO', 'VE', 'GT', 'DO', 'PR']);

/** The first day of the week in `locale` (0 Sunday … 6 Saturday), from Intl.Locale's week info where the engine has it. */
export function firstDayOfWeek(locale: string = navigator.language): number {
  try {
    const tag = new Intl.Locale(locale).maximize();
    const info = (tag as Intl.Locale & { getWeekInfo?: () => { firstDay: number }; weekInfo?: { firstDay: number } }).getWeekInfo?.() ?? (tag as Intl.Locale & { weekInfo?: { firstDay: number } }).weekInfo;
    if (info) return info.firstDay % 7; // Intl counts Monday 1 … Sunday 7
    return SUNDAY_REGIONS.has(tag.region ?? '') ? 0 : 1;
  } catch {
    return 1;
  }
}

const FIRST_DAY = typeof navigator === 'undefined' ? 1 : firstDayOfWeek();

/** The first day of the week holding `d` (the locale's: see firstDayOfWeek). */
export function startOfWeek(d: Date, firstDay: number = FIRST_DAY): Date {
  const day = (d.getDay() - firstDay + 7) % 7;
  return addDays(startOfDay(d), -day);
}

export function startOfMonth(d: Date): Date {
  return new Date(d.getFullYear(), d.getMonth(), 1);
}

export function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** Whole days from a to b (local calendar days, DST-safe). */
export function daysBetween(a: Date, b: Date): number {
  return Math.round((Date.UTC(b.getFullYear(), b.getMonth(), b.getDate()) - Date.UTC(a.getFullYear(), a.getMonth(), a.getDate())) / DAY);
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** YYYY-MM-DD in local time. */
export function isoDate(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** HH:MM in local time. */
export function isoTime(d: Date): string {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Parses YYYY-MM-DD (and optionally HH:MM) as local time; undefined if malformed. */
export function parseLocal(date: string, time = '00:00'): Date | undefined {
  const dm = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const tm = /^(\d{2}):(\d{2})$/.exec(time);
  if (!dm || !tm) return undefined;
  const d = new Date(Number(dm[1]), Number(dm[2]) - 1, Number(dm[3]), Number(tm[1]), Number(tm[2]));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** All-day storage: the local date's UTC midnight. */
export function floatingFromLocal(d: Date): number {
  return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
}

/** All-day storage back to the local midnight of the same date. */
export function localFromFloating(ms: number): Date {
  const u = new Date(ms);
  return new Date(u.getUTCFullYear(), u.getUTCMonth(), u.getUTCDate());
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const monthYearFormat = new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric' });
const shortMonthFormat = new Intl.DateTimeFormat(undefined, { month: 'short' });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const hourFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });
const longDateFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

export const formatWeekday = (d: Date): string => dayFormat.format(d);
export const formatMonthYear = (d: Date): string => monthYearFormat.format(d);
export const formatTime = (d: Date): string => timeFormat.format(d);
export const formatHour = (d: Date): string => hourFormat.format(d);
export const formatLongDate = (d: Date): string => longDateFormat.format(d);

/** "12 – 18 May 2025", "28 Apr – 4 May 2025", "29 Dec 2025 – 4 Jan 2026". */
export function formatWeekRange(start: Date, days = 7): string {
  if (days === 1) return longDateFormat.format(start);
  const end = addDays(start, days - 1);
  if (start.getFullYear() !== end.getFullYear()) {
    return `${start.getDate()} ${shortMonthFormat.format(start)} ${start.getFullYear()} – ${end.getDate()} ${shortMonthFormat.format(end)} ${end.getFullYear()}`;
  }
  if (start.getMonth() !== end.getMonth()) {
    return `${start.getDate()} ${shortMonthFormat.format(start)} – ${end.getDate()} ${shortMonthFormat.format(end)} ${end.getFullYear()}`;
  }
  return `${start.getDate()} – ${end.getDate()} ${monthYearFormat.format(end)}`;
}

/** "5 min ago", "just now" (in the catalogue's language), or the date and time. */
export function formatAgo(ms: number, now = Date.now()): string {
  const s = Math.round((now - ms) / 1000);
  if (s < 10) return t.justNow;
  if (s < 60) return t.secondsAgo({ count: s });
  const m = Math.round(s / 60);
  if (m < 60) return t.minutesAgo({ count: m });
  const h = Math.round(m / 60);
  if (h < 24) return t.hoursAgo({ count: h });
  return new Date(ms).toLocaleString();
}

/** Rounds down to a multiple of `step` minutes. */
export function floorMinutes(d: Date, step: number): Date {
  const m = Math.floor(d.getMinutes() / step) * step;
  return new Date(d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), m);
}

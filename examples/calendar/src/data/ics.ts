/**
 * iCalendar (.ics) import and export with ical.js.
 *
 * Import: every VEVENT becomes an event; a repeating one (RRULE / RDATE, minus
 * EXDATE, with RECURRENCE-ID exceptions applied) is expanded into occurrences
 * from its first one up to `windowDays` later, at most `maxOccurrences` each.
 * Record ids come from the UID (and the occurrence), so importing the same file
 * again updates the same events instead of duplicating them; a UID this app
 * exported (`<id>@syncline`) maps back to the same record id.
 *
 * Export: one VEVENT per event, times in UTC, all-day events as DATE values.
 */
import ICAL from 'ical.js';
import type { Replica } from '@syncline/client';
import { localFromFloating } from '../dates';
import { t } from '../i18n';
import { setStatus } from './events';
import { isStatus, type CalEvent, type EventFields, type EventStatus } from './model';
import { writeNotes } from './notes';

type IcalTime = InstanceType<typeof ICAL.Time>;
type IcalEvent = InstanceType<typeof ICAL.Event>;
type IcalComponent = InstanceType<typeof ICAL.Component>;

export interface ImportedEvent {
  readonly id: string;
  readonly fields: EventFields;
  readonly notes: string;
  readonly status: EventStatus | undefined;
}

export interface ParsedIcs {
  readonly events: readonly ImportedEvent[];
  /** Repeating series found (each expanded into its occurrences). */
  readonly series: number;
  /** Series cut at maxOccurrences before the end of the window. */
  readonly truncated: number;
  /** VEVENTs without a usable start. */
  readonly skipped: number;
  readonly calendarName: string | undefined;
}

export interface ParseOptions {
  /** Days after a series' first occurrence to expand. Default 366. */
  readonly windowDays?: number;
  /** Occurrences per series at most. Default 500. */
  readonly maxOccurrences?: number;
}

/** cyrb53: a short stable hash for ids (not for security). */
function hash(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

const EXPORTED_UID = /^(ev-[0-9a-f]+|ics-[0-9a-z-]+)@syncline$/;

function recordId(uid: string, occurrence: string | undefined): string {
  const own = EXPORTED_UID.exec(uid);
  if (own && occurrence === undefined) return own[1] as string;
  return occurrence === undefined ? `ics-${hash(uid)}` : `ics-${hash(uid)}-${hash(occurrence)}`;
}

/** Epoch ms of an ICAL.Time: DATE values as floating UTC midnights, DATE-TIMEs as instants. */
function toMs(t: IcalTime): number {
  if (t.isDate) return Date.UTC(t.year, t.month - 1, t.day);
  return t.toJSDate().getTime();
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function statusOf(item: IcalEvent): EventStatus | undefined {
  const v = item.component.getFirstPropertyValue('status');
  const s = typeof v === 'string' ? v.toLowerCase() : '';
  return isStatus(s) ? s : undefined;
}

function toImported(id: string, item: IcalEvent, start: IcalTime, end: IcalTime | undefined, uid: string): ImportedEvent | undefined {
  const startMs = toMs(start);
  if (!Number.isFinite(startMs)) return undefined;
  const allDay = start.isDate;
  let endMs = end ? toMs(end) : Number.NaN;
  if (!Number.isFinite(endMs) || endMs <= startMs) endMs = startMs + (allDay ? 86_400_000 : 3_600_000);
  return {
    id,
    fields: { title: text(item.summary).trim(), start: startMs, end: endMs, allDay, location: text(item.location).trim(), uid },
    notes: text(item.description),
    status: statusOf(item),
  };
}

/** Parses an .ics file into events (throws with a readable message when it is not one). */
export function parseIcs(source: string, options: ParseOptions = {}): ParsedIcs {
  const windowMs = (options.windowDays ?? 366) * 86_400_000;
  const maxOccurrences = options.maxOccurrences ?? 500;
  let jcal: unknown;
  try {
    jcal = ICAL.parse(source);
  } catch (error) {
    throw new Error(t.icsInvalid({ message: (error as Error).message }), { cause: error });
  }
  const roots: unknown[] = Array.isArray(jcal) && Array.isArray(jcal[0]) ? jcal : [jcal];
  const events: ImportedEvent[] = [];
  let series = 0;
  let truncated = 0;
  let skipped = 0;
  let calendarName: string | undefined;

  for (const root of roots) {
    const calendar: IcalComponent = new ICAL.Component(root as unknown[]);
    if (calendar.name !== 'vcalendar') throw new Error(t.icsNoCalendar);
    const name = calendar.getFirstPropertyValue('x-wr-calname');
    if (typeof name === 'string' && !calendarName) calendarName = name;
    for (const tz of calendar.getAllSubcomponents('vtimezone')) {
      try {
        ICAL.TimezoneService.register(tz);
      } catch {
        // A broken VTIMEZONE: its times are read as floating (local) times.
      }
    }
    const vevents = calendar.getAllSubcomponents('vevent');
    const masters = new Map<string, IcalComponent>();
    const exceptions: IcalComponent[] = [];
    for (const c of vevents) {
      const uid = text(c.getFirstPropertyValue('uid')) || `nouid-${hash(c.toString())}`;
      if (c.hasProperty('recurrence-id')) exceptions.push(c);
      else masters.set(uid, c);
    }
    const related = new Set<IcalComponent>();
    const byMaster = new Map<string, IcalComponent[]>();
    for (const c of exceptions) {
      const uid = text(c.getFirstPropertyValue('uid'));
      if (!masters.has(uid)) continue;
      related.add(c);
      const list = byMaster.get(uid) ?? [];
      list.push(c);
      byMaster.set(uid, list);
    }

    for (const [uid, component] of masters) {
      const event = new ICAL.Event(component, { exceptions: byMaster.get(uid) ?? [] });
      if (!component.hasProperty('dtstart')) {
        skipped++;
        continue;
      }
      if (!event.isRecurring()) {
        const imported = toImported(recordId(uid, undefined), event, event.startDate, event.endDate, uid);
        if (imported) events.push(imported);
        else skipped++;
        continue;
      }
      series++;
      const iterator = event.iterator();
      const first = toMs(event.startDate);
      let count = 0;
      for (let next = iterator.next(); next; next = iterator.next()) {
        if (toMs(next) > first + windowMs) break;
        if (count >= maxOccurrences) {
          truncated++;
          break;
        }
        const details = event.getOccurrenceDetails(next);
        const imported = toImported(recordId(uid, details.recurrenceId.toString()), details.item, details.startDate, details.endDate, uid);
        if (imported) {
          events.push(imported);
          count++;
        }
      }
    }
    // Exceptions whose series is not in the file: single events.
    for (const c of exceptions) {
      if (related.has(c)) continue;
      const event = new ICAL.Event(c);
      const uid = event.uid || `nouid-${hash(c.toString())}`;
      const imported = toImported(recordId(uid, event.recurrenceId.toString()), event, event.startDate, event.endDate, uid);
      if (imported) events.push(imported);
      else skipped++;
    }
  }
  // Later duplicates (the same UID twice) replace earlier ones.
  const unique = new Map(events.map((e) => [e.id, e]));
  return { events: [...unique.values()], series, truncated, skipped, calendarName };
}

/** Writes parsed events into a calendar (space). Notes fill empty notes only; a status is set where the file has one. */
export async function importIntoCalendar(replica: Replica, space: string, events: readonly ImportedEvent[], by: string, onProgress?: (done: number) => void): Promise<void> {
  const CHUNK = 200;
  for (let i = 0; i < events.length; i += CHUNK) {
    const chunk = events.slice(i, i + CHUNK);
    await replica.batch((b) => {
      for (const e of chunk) {
        b.put(
          'events',
          e.id,
          {
            title: e.fields.title,
            start: e.fields.start,
            end: e.fields.end,
            allDay: e.fields.allDay,
            location: e.fields.location,
            ...(e.fields.uid ? { uid: e.fields.uid } : {}),
          },
          { space },
        );
      }
    });
    for (const e of chunk) {
      if (e.notes) await writeNotes(replica, e.id, space, e.notes, { onlyIfEmpty: true });
      if (e.status && e.status !== 'confirmed') {
        const current = await replica.get('status', e.id, { space });
        if (current?.value['status'] !== e.status) await setStatus(replica, e.id, space, e.status, by);
      }
    }
    onProgress?.(Math.min(events.length, i + CHUNK));
  }
}

export interface ExportItem {
  readonly event: CalEvent;
  readonly status: EventStatus | undefined;
}

function icalTime(ms: number, allDay: boolean): IcalTime {
  if (allDay) {
    const d = localFromFloating(ms);
    return ICAL.Time.fromData({ year: d.getFullYear(), month: d.getMonth() + 1, day: d.getDate(), isDate: true });
  }
  return ICAL.Time.fromJSDate(new Date(ms), true);
}

/** An .ics file (VCALENDAR with one VEVENT per event). */
export function exportIcs(items: readonly ExportItem[], calendarName: string): string {
  const calendar = new ICAL.Component(['vcalendar', [], []]);
  calendar.updatePropertyWithValue('prodid', '-//Syncline//Calendar//EN');
  calendar.updatePropertyWithValue('version', '2.0');
  calendar.updatePropertyWithValue('calscale', 'GREGORIAN');
  calendar.updatePropertyWithValue('x-wr-calname', calendarName);
  const stamp = ICAL.Time.fromJSDate(new Date(), true);
  for (const { event, status } of items) {
    const component = new ICAL.Component('vevent');
    const vevent = new ICAL.Event(component);
    vevent.uid = `${event.id}@syncline`;
    component.updatePropertyWithValue('dtstamp', stamp);
    vevent.startDate = icalTime(event.fields.start, event.allDay);
    vevent.endDate = icalTime(event.fields.end, event.allDay);
    vevent.summary = event.title;
    if (event.location) vevent.location = event.location;
    if (event.notes) vevent.description = event.notes;
    if (status) component.updatePropertyWithValue('status', status.toUpperCase());
    calendar.addSubcomponent(component);
  }
  return calendar.toString();
}

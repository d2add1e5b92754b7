/**
 * The calendar's data model on Syncline.
 *
 * - Space `settings`, collection `calendars` (lww): one record per calendar, keyed
 *   by the calendar's space id (`cal-personal`, `cal-work`, …): name, colour, order.
 * - One space per calendar, holding:
 *   - `events` (lww per field): title, start, end, allDay, location (+ uid for
 *     imported events); `notes` is a crdt text field (a Y.Text), so two people
 *     typing in the notes at once keep both their text.
 *   - `status` (merge), keyed by event id: confirmed / tentative / cancelled.
 *     Concurrent changes are kept as siblings; the app shows both and lets the
 *     user pick one (a write after reading them supersedes both).
 */
import { defineSchema, type Row } from '@syncline/client';
import { spaceId, type Fields, type SpaceId, type Version } from '@syncline/core';
import { localFromFloating } from '../dates';
import { t } from '../i18n';

export const SETTINGS_SPACE: SpaceId = spaceId('settings');

/** A space id for queries (which take the branded type; writes take strings). */
export const space = (id: string): SpaceId => spaceId(id);

export type EventStatus = 'confirmed' | 'tentative' | 'cancelled';
export const STATUSES: readonly EventStatus[] = ['confirmed', 'tentative', 'cancelled'];
/** What people read for a status (the stored values stay the English words above). */
export const STATUS_LABELS: Record<EventStatus, string> = { confirmed: t.statusConfirmed, tentative: t.statusTentative, cancelled: t.statusCancelled };

export const isStatus = (v: unknown): v is EventStatus => v === 'confirmed' || v === 'tentative' || v === 'cancelled';

/**
 * merge resolver for `status`: the latest sibling wins (as by default), and the
 * visible value also says how many siblings there are, so a live query over
 * `status` shows conflicts without a conflicts() call per record. Pure and
 * deterministic, as a resolver must be.
 */
function resolveStatus(siblings: readonly Version[]): Fields | null {
  const last = siblings[siblings.length - 1];
  if (!last || last.value === null) return null;
  return siblings.length > 1 ? { ...last.value, conflict: siblings.length } : last.value;
}

export const schema = defineSchema({
  calendars: { indexes: { byOrder: ['order'] } },
  events: { indexes: { byStart: ['start'] }, crdt: { notes: 'text' } },
  status: { policy: 'merge', resolve: resolveStatus },
});

export interface Calendar {
  /** The calendar's space id. */
  readonly id: string;
  readonly name: string;
  readonly color: string;
  readonly order: number;
}

export const DEFAULT_CALENDARS: readonly Calendar[] = [
  { id: 'cal-personal', name: 'Personal', color: '#1a73e8', order: 0 },
  { id: 'cal-work', name: 'Work', color: '#0b8043', order: 1 },
];

export const COLORS = ['#1a73e8', '#0b8043', '#d50000', '#f4511e', '#f6bf26', '#8e24aa', '#039be5', '#616161', '#e67c73', '#33b679'];

export function toCalendar(row: Row): Calendar | undefined {
  const v = row.value;
  if (typeof v['name'] !== 'string') return undefined;
  return {
    id: row.id,
    name: v['name'],
    color: typeof v['color'] === 'string' ? v['color'] : (COLORS[0] as string),
    order: typeof v['order'] === 'number' ? v['order'] : 0,
  };
}

/** The lww fields of an event record. */
export interface EventFields {
  title: string;
  /** Epoch ms; for all-day events the UTC midnight of the first date. */
  start: number;
  /** Epoch ms, exclusive; for all-day events the UTC midnight of the day after the last date. */
  end: number;
  allDay: boolean;
  location: string;
  /** iCalendar UID of an imported event. */
  uid?: string;
}

/** An event as the views show it, in local time. */
export interface CalEvent {
  readonly id: string;
  readonly space: string;
  readonly title: string;
  readonly start: Date;
  /** Exclusive. */
  readonly end: Date;
  readonly allDay: boolean;
  readonly location: string;
  readonly notes: string;
  readonly uid: string | undefined;
  readonly fields: EventFields;
}

export function toCalEvent(row: Row): CalEvent | undefined {
  const v = row.value;
  const start = v['start'];
  const end = v['end'];
  // A record with only notes (crdt) and no lww fields yet is not an event to show.
  if (typeof start !== 'number' || !Number.isFinite(start)) return undefined;
  const allDay = v['allDay'] === true;
  const endMs = typeof end === 'number' && end > start ? end : start + (allDay ? 86_400_000 : 3_600_000);
  const fields: EventFields = {
    title: typeof v['title'] === 'string' ? v['title'] : '',
    start,
    end: endMs,
    allDay,
    location: typeof v['location'] === 'string' ? v['location'] : '',
    ...(typeof v['uid'] === 'string' ? { uid: v['uid'] } : {}),
  };
  return {
    id: row.id,
    space: row.space,
    title: fields.title,
    start: allDay ? localFromFloating(start) : new Date(start),
    end: allDay ? localFromFloating(endMs) : new Date(endMs),
    allDay,
    location: fields.location,
    notes: typeof v['notes'] === 'string' ? v['notes'] : '',
    uid: fields.uid,
    fields,
  };
}

export interface StatusInfo {
  readonly status: EventStatus;
  /** Number of concurrent versions (> 1: a conflict to resolve). */
  readonly conflict: number;
}

export function toStatus(row: Row): StatusInfo | undefined {
  const v = row.value;
  if (!isStatus(v['status'])) return undefined;
  return { status: v['status'], conflict: typeof v['conflict'] === 'number' ? v['conflict'] : 0 };
}

/** Random id for a new event. */
export function newEventId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return `ev-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** An event with what the views draw it with. */
export interface ShownEvent extends CalEvent {
  readonly color: string;
  readonly calendarName: string;
  readonly status: EventStatus | undefined;
  /** > 1: concurrent status versions to choose from. */
  readonly conflict: number;
}

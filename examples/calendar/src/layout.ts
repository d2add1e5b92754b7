/** Placing events on the grids: columns for overlapping timed events, lanes for day bars. */
import { addDays, daysBetween, DAY, MINUTE, startOfDay } from './dates';
import type { CalEvent } from './data/model';

/** The last local day an event covers (its end is exclusive). */
export function lastDay(e: CalEvent): Date {
  if (e.allDay) return addDays(startOfDay(e.end), -1);
  return startOfDay(new Date(Math.max(e.start.getTime(), e.end.getTime() - 1)));
}

/** Shown as a bar in the all-day row (all-day, or timed but 24 h or longer). */
export function isBarEvent(e: CalEvent): boolean {
  return e.allDay || e.end.getTime() - e.start.getTime() >= DAY;
}

export function overlaps(e: CalEvent, from: Date, to: Date): boolean {
  return e.start < to && e.end > from;
}

export interface TimedBox<E extends CalEvent = CalEvent> {
  readonly event: E;
  /** Minutes from midnight of the day. */
  readonly top: number;
  readonly bottom: number;
  /** Column within its cluster of overlapping events, and the cluster's width in columns. */
  readonly column: number;
  readonly columns: number;
  /** The event continues from the previous day / into the next. */
  readonly continuesBefore: boolean;
  readonly continuesAfter: boolean;
}

/** Timed events of one day, laid out side by side where they overlap. */
export function layoutDay<E extends CalEvent>(events: readonly E[], day: Date): TimedBox<E>[] {
  const dayStart = startOfDay(day);
  const dayEnd = addDays(dayStart, 1);
  const segs = events
    .filter((e) => !isBarEvent(e) && overlaps(e, dayStart, dayEnd))
    .map((e) => {
      const top = Math.max(0, (e.start.getTime() - dayStart.getTime()) / MINUTE);
      const rawBottom = Math.min(24 * 60, (e.end.getTime() - dayStart.getTime()) / MINUTE);
      // A very short event still gets a readable box.
      const bottom = Math.max(rawBottom, Math.min(24 * 60, top + 20));
      return { event: e, top, bottom, continuesBefore: e.start < dayStart, continuesAfter: e.end > dayEnd };
    })
    .sort((a, b) => a.top - b.top || b.bottom - a.bottom || a.event.id.localeCompare(b.event.id));
  const out: TimedBox<E>[] = [];
  let cluster: Array<(typeof segs)[number] & { column: number }> = [];
  let clusterEnd = -1;
  let columnEnds: number[] = [];
  const flush = () => {
    const columns = columnEnds.length;
    for (const s of cluster) out.push({ ...s, columns });
    cluster = [];
    columnEnds = [];
  };
  for (const s of segs) {
    if (s.top >= clusterEnd) {
      flush();
      clusterEnd = -1;
    }
    let column = columnEnds.findIndex((end) => end <= s.top);
    if (column < 0) column = columnEnds.push(s.bottom) - 1;
    else columnEnds[column] = s.bottom;
    cluster.push({ ...s, column });
    clusterEnd = Math.max(clusterEnd, s.bottom);
  }
  flush();
  return out;
}

export interface Bar<E extends CalEvent = CalEvent> {
  readonly event: E;
  /** Day indexes within the row, inclusive. */
  readonly from: number;
  readonly to: number;
  readonly lane: number;
  readonly continuesBefore: boolean;
  readonly continuesAfter: boolean;
}

/**
 * Events of a row of `days` days from `rowStart`, stacked in lanes (first free
 * lane from the top; longer events first so they stay on top).
 */
export function layoutBars<E extends CalEvent>(events: readonly E[], rowStart: Date, days: number): Bar<E>[] {
  const rowEnd = addDays(rowStart, days);
  const items = events
    .filter((e) => overlaps(e, rowStart, rowEnd))
    .map((e) => {
      const from = Math.max(0, daysBetween(rowStart, e.start));
      const to = Math.min(days - 1, daysBetween(rowStart, lastDay(e)));
      return { event: e, from, to: Math.max(from, to), continuesBefore: e.start < rowStart, continuesAfter: lastDay(e) >= rowEnd };
    })
    .sort(
      (a, b) =>
        a.from - b.from ||
        b.to - b.from - (a.to - a.from) ||
        Number(b.event.allDay) - Number(a.event.allDay) ||
        a.event.start.getTime() - b.event.start.getTime() ||
        a.event.id.localeCompare(b.event.id),
    );
  const laneEnds: number[] = [];
  return items.map((item) => {
    let lane = laneEnds.findIndex((end) => end < item.from);
    if (lane < 0) lane = laneEnds.push(item.to) - 1;
    else laneEnds[lane] = item.to;
    return { ...item, lane };
  });
}

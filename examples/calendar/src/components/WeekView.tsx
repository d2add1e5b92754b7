import { useEffect, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent as ReactKeyboardEvent, type PointerEvent as ReactPointerEvent, type ReactNode } from 'react';
import { addDays, formatHour, formatLongDate, formatTime, formatWeekday, HOUR, isoDate, isoTime, MINUTE, sameDay, startOfDay } from '../dates';
import type { ShownEvent } from '../data/model';
import { isBarEvent, layoutBars, layoutDay } from '../layout';
import { EventChip } from './EventChip';
import { t } from '../i18n';

export const HOUR_PX = 48;
const SLOT_MIN = 30;
const SNAP_MIN = 30;
const BAR_PX = 22;
/** Width at the right of each day column that events leave free for creating overlapping events. */
const FREE_EDGE_PX = 12;

export interface NewRange {
  readonly start: Date;
  /** Exclusive (the day after the last day for all-day ranges). */
  readonly end: Date;
  readonly allDay: boolean;
}

interface Drag {
  /** timed / allday: selecting a new event's range; move / resize: an existing timed event. */
  readonly kind: 'timed' | 'allday' | 'move' | 'resize';
  readonly anchor: Date;
  readonly current: Date;
  readonly x: number;
  readonly y: number;
  readonly moved: boolean;
  readonly event?: ShownEvent;
}

const MOVE_SNAP_MIN = 15;

/** Where a moved or resized event would go. */
function draggedTimes(drag: Drag): { start: Date; end: Date } | undefined {
  const e = drag.event;
  if (!e) return undefined;
  const delta = drag.current.getTime() - drag.anchor.getTime();
  if (drag.kind === 'move') return { start: new Date(e.start.getTime() + delta), end: new Date(e.end.getTime() + delta) };
  const end = new Date(Math.max(e.start.getTime() + MOVE_SNAP_MIN * MINUTE, e.end.getTime() + delta));
  return { start: e.start, end };
}

export interface WeekViewProps {
  /** The first day shown. */
  readonly weekStart: Date;
  /** How many days it shows (7: a week; 3 or 1 on a phone). */
  readonly dayCount?: number;
  readonly events: readonly ShownEvent[];
  readonly now: Date;
  readonly onCreate: (range: NewRange) => void;
  readonly onOpen: (event: ShownEvent) => void;
  readonly onPickDay: (day: Date) => void;
  /** An event dragged to a new time (move) or a new end (resize). */
  readonly onReschedule: (event: ShownEvent, start: Date, end: Date) => void;
}

/** The range a drag selects (or a click: one hour from the half hour clicked; one day). */
function dragRange(drag: Drag): NewRange {
  if (drag.kind === 'allday') {
    const [a, b] = drag.anchor <= drag.current ? [drag.anchor, drag.current] : [drag.current, drag.anchor];
    return { start: a, end: addDays(b, 1), allDay: true };
  }
  if (!drag.moved) {
    const at = drag.anchor;
    const start = new Date(at.getFullYear(), at.getMonth(), at.getDate(), at.getHours(), Math.floor(at.getMinutes() / SLOT_MIN) * SLOT_MIN);
    return { start, end: new Date(start.getTime() + HOUR), allDay: false };
  }
  // A drag selects the half-hour slots it covers.
  const [a, b] = drag.anchor <= drag.current ? [drag.anchor, drag.current] : [drag.current, drag.anchor];
  return { start: a, end: new Date(b.getTime() + SNAP_MIN * MINUTE), allDay: false };
}

export function WeekView({ weekStart, dayCount = 7, events, now, onCreate, onOpen, onPickDay, onReschedule }: WeekViewProps): ReactNode {
  const days = useMemo(() => Array.from({ length: dayCount }, (_, i) => addDays(weekStart, i)), [weekStart, dayCount]);
  const scrollRef = useRef<HTMLDivElement>(null);
  const colsRef = useRef<HTMLDivElement>(null);
  const allDayRef = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<Drag | undefined>();
  // Keyboard: the time grid is one tab stop; arrows move a cursor over its half-hour slots (↑ ↓ by half an
  // hour, ← → by a day), Enter or Space creates an hour-long event there.
  const [cursor, setCursor] = useState<{ day: number; slot: number }>({ day: 0, slot: (9 * 60) / SLOT_MIN });
  const slotsPerDay = (24 * 60) / SLOT_MIN;
  // The view may show fewer days than when the cursor moved (a week, then a day).
  const cursorDay = Math.min(cursor.day, dayCount - 1);
  const slotStart = (day: number, slot: number): Date => {
    const d = days[day] as Date;
    return new Date(d.getFullYear(), d.getMonth(), d.getDate(), 0, slot * SLOT_MIN);
  };
  const onGridKeyDown = (e: ReactKeyboardEvent<HTMLDivElement>) => {
    const moves: Record<string, [number, number]> = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0], Home: [0, -slotsPerDay], End: [0, slotsPerDay] };
    const move = moves[e.key];
    if (move) {
      e.preventDefault();
      const next = { day: Math.min(dayCount - 1, Math.max(0, cursorDay + move[0])), slot: Math.min(slotsPerDay - 1, Math.max(0, cursor.slot + move[1])) };
      setCursor(next);
      const stamp = `${isoDate(slotStart(next.day, next.slot))}T${isoTime(slotStart(next.day, next.slot))}`;
      (colsRef.current?.querySelector(`[data-datetime="${stamp}"]`) as HTMLElement | null)?.focus();
    } else if (e.key === 'Enter' || e.key === ' ') {
      if (!(e.target as HTMLElement).classList.contains('slot')) return;
      e.preventDefault();
      const start = slotStart(cursorDay, cursor.slot);
      onCreate({ start, end: new Date(start.getTime() + HOUR), allDay: false });
    }
  };

  const bars = useMemo(() => layoutBars(events.filter(isBarEvent), weekStart, dayCount), [events, weekStart, dayCount]);
  const lanes = bars.reduce((n, b) => Math.max(n, b.lane + 1), 0);
  const boxes = useMemo(() => days.map((d) => layoutDay(events, d)), [events, days]);

  // Open the day at 7:00 (or an hour before now when this week holds today).
  // Only when the week changes, not every minute.
  const weekKey = weekStart.getTime();
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const current = new Date();
    const hasToday = current.getTime() >= weekKey && current.getTime() < weekKey + dayCount * 24 * HOUR;
    const hour = hasToday ? Math.min(16, Math.max(0, current.getHours() - 2)) : 7;
    el.scrollTop = hour * HOUR_PX;
  }, [weekKey, dayCount]);

  const pointFromEvent = (kind: Drag['kind'], e: { clientX: number; clientY: number }): Date | undefined => {
    const el = kind === 'allday' ? allDayRef.current : colsRef.current;
    if (!el) return undefined;
    const rect = el.getBoundingClientRect();
    const col = Math.min(dayCount - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * dayCount)));
    const day = days[col] as Date;
    if (kind === 'allday') return day;
    const snap = kind === 'timed' ? SNAP_MIN : MOVE_SNAP_MIN;
    const minutes = Math.min(24 * 60 - snap, Math.max(0, ((e.clientY - rect.top) / HOUR_PX) * 60));
    const snapped = Math.floor(minutes / snap) * snap;
    return new Date(day.getFullYear(), day.getMonth(), day.getDate(), 0, snapped);
  };

  const onPointerDown = (kind: 'timed' | 'allday') => (e: ReactPointerEvent<HTMLDivElement>) => {
    if (e.button !== 0) return;
    const at = pointFromEvent(kind, e);
    if (!at) return;
    e.currentTarget.setPointerCapture(e.pointerId);
    setDrag({ kind, anchor: at, current: at, x: e.clientX, y: e.clientY, moved: false });
  };
  /** Pointer down on a timed event: a click opens it, a drag moves it (or, from its bottom edge, resizes it). */
  const onEventPointerDown = (event: ShownEvent, e: ReactPointerEvent<HTMLElement>) => {
    e.stopPropagation();
    if (e.button !== 0 || !colsRef.current) return;
    const kind = (e.target as HTMLElement).closest('.resize-handle') ? 'resize' : 'move';
    const at = pointFromEvent(kind, e);
    if (!at) return;
    colsRef.current.setPointerCapture(e.pointerId);
    setDrag({ kind, anchor: at, current: at, x: e.clientX, y: e.clientY, moved: false, event });
  };
  const onPointerMove = (e: ReactPointerEvent<HTMLDivElement>) => {
    if (!drag) return;
    const at = pointFromEvent(drag.kind, e);
    if (!at) return;
    const moved = drag.moved || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 6;
    if (moved !== drag.moved || at.getTime() !== drag.current.getTime()) setDrag({ ...drag, current: at, moved });
  };
  const onPointerUp = (e: ReactPointerEvent<HTMLDivElement>) => {
    if (!drag) return;
    const at = pointFromEvent(drag.kind, e) ?? drag.current;
    const final = { ...drag, current: at };
    setDrag(undefined);
    if (final.event) {
      const times = draggedTimes(final);
      if (!final.moved || !times) onOpen(final.event);
      else if (times.start.getTime() !== final.event.start.getTime() || times.end.getTime() !== final.event.end.getTime()) onReschedule(final.event, times.start, times.end);
      return;
    }
    onCreate(dragRange(final));
  };
  const onPointerCancel = () => setDrag(undefined);

  const selection = drag && !drag.event ? dragRange(drag) : undefined;
  const dragged = drag?.event && drag.moved ? draggedTimes(drag) : undefined;
  const draggedKey = dragged && drag?.event ? `${drag.event.space}/${drag.event.id}` : undefined;

  return (
    <div className="week" data-testid="week-view" data-week-start={isoDate(weekStart)} data-days={dayCount} style={{ ['--days' as string]: dayCount }}>
      <div className="week-head">
        <div className="gutter" />
        {days.map((d) => (
          <button
            key={d.getTime()}
            type="button"
            className={`week-day-head${sameDay(d, now) ? ' today' : ''}`}
            data-testid={`day-head-${isoDate(d)}`}
            onClick={() => onPickDay(d)}
            title={t.showMonth}
          >
            <span className="weekday">{formatWeekday(d)}</span>
            <span className="daynum">{d.getDate()}</span>
          </button>
        ))}
      </div>

      <div className="allday-row">
        <div className="gutter allday-label">{t.allDayRow}</div>
        <div
          className="allday-cells"
          ref={allDayRef}
          style={{ height: Math.max(1, lanes) * BAR_PX + 8 }}
          onPointerDown={onPointerDown('allday')}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          onPointerCancel={onPointerCancel}
          data-testid="allday-row"
        >
          {days.map((d) => {
            const selected = selection?.allDay && d >= selection.start && d < selection.end;
            return <div key={d.getTime()} className={`allday-cell${selected ? ' selecting' : ''}`} data-testid={`allday-${isoDate(d)}`} data-date={isoDate(d)} />;
          })}
          {bars.map((bar) => (
            <EventChip
              key={`${bar.event.space}/${bar.event.id}`}
              event={bar.event}
              variant="bar"
              continuesBefore={bar.continuesBefore}
              continuesAfter={bar.continuesAfter}
              onOpen={onOpen}
              style={{
                position: 'absolute',
                top: 4 + bar.lane * BAR_PX,
                height: BAR_PX - 3,
                left: `calc(${(bar.from / dayCount) * 100}% + 2px)`,
                width: `calc(${((bar.to - bar.from + 1) / dayCount) * 100}% - 5px)`,
              }}
            />
          ))}
        </div>
      </div>

      <div className="week-scroll" ref={scrollRef} data-testid="week-scroll">
        <div className="week-body" style={{ height: 24 * HOUR_PX }}>
          <div className="gutter hours">
            {Array.from({ length: 24 }, (_, h) => (
              <div key={h} className="hour-label" style={{ top: h * HOUR_PX }}>
                {h === 0 ? '' : formatHour(new Date(2000, 0, 1, h))}
              </div>
            ))}
          </div>
          <div
            className="week-cols"
            ref={colsRef}
            onPointerDown={onPointerDown('timed')}
            onPointerMove={onPointerMove}
            onPointerUp={onPointerUp}
            onPointerCancel={onPointerCancel}
            onKeyDown={onGridKeyDown}
            data-testid="time-grid"
          >
            {days.map((d, i) => (
              <div key={d.getTime()} className={`day-col${sameDay(d, now) ? ' today' : ''}`} data-testid={`day-col-${isoDate(d)}`} data-date={isoDate(d)}>
                <div className="slots" role="grid" aria-label={t.slots({ date: formatLongDate(d) })}>
                  <div role="row" className="slots-row">
                    {Array.from({ length: slotsPerDay }, (_, s) => {
                      const at = new Date(d.getFullYear(), d.getMonth(), d.getDate(), 0, s * SLOT_MIN);
                      const stamp = `${isoDate(at)}T${isoTime(at)}`;
                      const active = cursorDay === i && cursor.slot === s;
                      return (
                        <div
                          key={s}
                          role="gridcell"
                          aria-label={`${formatLongDate(at)}, ${formatTime(at)}`}
                          tabIndex={active ? 0 : -1}
                          onFocus={() => !active && setCursor({ day: i, slot: s })}
                          className={`slot${s % 2 === 1 ? ' half' : ''}`}
                          data-testid={`slot-${stamp}`}
                          data-datetime={stamp}
                          style={{ height: (HOUR_PX * SLOT_MIN) / 60 }}
                        />
                      );
                    })}
                  </div>
                </div>
                {selection && !selection.allDay && <Ghost day={d} range={selection} />}
                {dragged && drag?.event && <Ghost day={d} range={{ ...dragged, allDay: false }} title={drag.event.title || t.noTitle} color={drag.event.color} />}
                {(boxes[i] ?? []).map((box) => (
                  <EventChip
                    key={`${box.event.space}/${box.event.id}`}
                    event={box.event}
                    variant="box"
                    continuesBefore={box.continuesBefore}
                    continuesAfter={box.continuesAfter}
                    dragging={draggedKey === `${box.event.space}/${box.event.id}`}
                    compact={((box.bottom - box.top) / 60) * HOUR_PX < 34}
                    onOpen={onOpen}
                    onPointerDown={onEventPointerDown}
                    style={{
                      position: 'absolute',
                      top: (box.top / 60) * HOUR_PX,
                      height: Math.max(18, ((box.bottom - box.top) / 60) * HOUR_PX - 2),
                      // The right edge of every column stays free: clicking or dragging there creates an event at that time.
                      left: `calc((100% - ${FREE_EDGE_PX}px) * ${box.column / box.columns} + 1px)`,
                      width: `calc((100% - ${FREE_EDGE_PX}px) / ${box.columns} - 2px)`,
                    }}
                  />
                ))}
                {sameDay(d, now) && <div className="now-line" data-testid="now-line" style={{ top: ((now.getTime() - startOfDay(now).getTime()) / HOUR) * HOUR_PX }} />}
              </div>
            ))}
          </div>
        </div>
      </div>
    </div>
  );
}

/** The range being dragged, drawn on one day's column. */
function Ghost({ day, range, title, color }: { day: Date; range: NewRange; title?: string; color?: string }): ReactNode {
  const dayStart = startOfDay(day).getTime();
  const from = Math.max(range.start.getTime(), dayStart);
  const to = Math.min(range.end.getTime(), dayStart + 24 * HOUR);
  if (to <= from) return null;
  const top = ((from - dayStart) / HOUR) * HOUR_PX;
  const height = ((to - from) / HOUR) * HOUR_PX;
  return (
    <div className="ghost" data-testid="drag-ghost" style={{ top, height, ...(color ? { background: color } : {}) }}>
      {title && <strong>{title} </strong>}
      {formatTime(range.start)} – {formatTime(range.end)}
    </div>
  );
}

/** Keeps `now` current (every 30 s). */
export function useNow(): Date {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const timer = setInterval(() => setNow(new Date()), 30_000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

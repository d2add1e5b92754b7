import { useEffect, useMemo, useRef, useState, type PointerEvent as ReactPointerEvent, type ReactNode } from 'react';
import { addDays, formatWeekday, isoDate, sameDay } from '../dates';
import type { ShownEvent } from '../data/model';
import { isBarEvent, layoutBars } from '../layout';
import { EventChip } from './EventChip';
import type { NewRange } from './WeekView';
import { t } from '../i18n';

const HEAD_PX = 26;
const LANE_PX = 21;

export interface MonthViewProps {
  readonly month: Date;
  /** The first day of the first row (the locale's first day of the week). */
  readonly gridStart: Date;
  readonly events: readonly ShownEvent[];
  readonly now: Date;
  readonly onCreate: (range: NewRange) => void;
  readonly onOpen: (event: ShownEvent) => void;
  /** "+N more" and the date number open that day's week. */
  readonly onPickDay: (day: Date) => void;
}

interface Drag {
  readonly anchor: Date;
  readonly current: Date;
}

export function MonthView({ month, gridStart, events, now, onCreate, onOpen, onPickDay }: MonthViewProps): ReactNode {
  const rowsRef = useRef<HTMLDivElement>(null);
  const [rowHeight, setRowHeight] = useState(110);
  const [drag, setDrag] = useState<Drag | undefined>();
  const weeks = useMemo(() => Array.from({ length: 6 }, (_, i) => addDays(gridStart, i * 7)), [gridStart]);

  useEffect(() => {
    const el = rowsRef.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setRowHeight(el.clientHeight / 6));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  // Lanes that fit under the date number; one is kept for "+N more" when needed.
  const maxLanes = Math.max(1, Math.floor((rowHeight - HEAD_PX - 4) / LANE_PX));

  const dayAt = (e: { clientX: number; clientY: number }): Date | undefined => {
    const el = rowsRef.current;
    if (!el) return undefined;
    const rect = el.getBoundingClientRect();
    const col = Math.min(6, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * 7)));
    const row = Math.min(5, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * 6)));
    return addDays(gridStart, row * 7 + col);
  };
  const onPointerDown = (e: ReactPointerEvent<HTMLDivElement>) => {
    if (e.button !== 0) return;
    const day = dayAt(e);
    if (!day) return;
    e.currentTarget.setPointerCapture(e.pointerId);
    setDrag({ anchor: day, current: day });
  };
  const onPointerMove = (e: ReactPointerEvent<HTMLDivElement>) => {
    if (!drag) return;
    const day = dayAt(e);
    if (day && day.getTime() !== drag.current.getTime()) setDrag({ ...drag, current: day });
  };
  const onPointerUp = (e: ReactPointerEvent<HTMLDivElement>) => {
    if (!drag) return;
    const day = dayAt(e) ?? drag.current;
    setDrag(undefined);
    const [a, b] = drag.anchor <= day ? [drag.anchor, day] : [day, drag.anchor];
    onCreate({ start: a, end: addDays(b, 1), allDay: true });
  };
  const selected = (d: Date): boolean => {
    if (!drag) return false;
    const [a, b] = drag.anchor <= drag.current ? [drag.anchor, drag.current] : [drag.current, drag.anchor];
    return d >= a && d <= b;
  };

  return (
    <div className="month" data-testid="month-view" data-month={isoDate(month).slice(0, 7)}>
      <div className="month-head">
        {weeks[0] && Array.from({ length: 7 }, (_, i) => <div key={i}>{formatWeekday(addDays(weeks[0] as Date, i))}</div>)}
      </div>
      <div className="month-rows" ref={rowsRef} onPointerDown={onPointerDown} onPointerMove={onPointerMove} onPointerUp={onPointerUp} onPointerCancel={() => setDrag(undefined)}>
        {weeks.map((weekStart) => (
          <MonthRow
            key={weekStart.getTime()}
            weekStart={weekStart}
            month={month}
            events={events}
            now={now}
            maxLanes={maxLanes}
            selected={selected}
            onOpen={onOpen}
            onPickDay={onPickDay}
          />
        ))}
      </div>
    </div>
  );
}

interface MonthRowProps {
  readonly weekStart: Date;
  readonly month: Date;
  readonly events: readonly ShownEvent[];
  readonly now: Date;
  readonly maxLanes: number;
  readonly selected: (d: Date) => boolean;
  readonly onOpen: (event: ShownEvent) => void;
  readonly onPickDay: (day: Date) => void;
}

function MonthRow({ weekStart, month, events, now, maxLanes, selected, onOpen, onPickDay }: MonthRowProps): ReactNode {
  const days = Array.from({ length: 7 }, (_, i) => addDays(weekStart, i));
  const bars = useMemo(() => layoutBars(events, weekStart, 7), [events, weekStart]);
  // Per day: how many events it holds, and whether all of them fit.
  const perDay = days.map((_, i) => bars.filter((b) => b.from <= i && b.to >= i));
  const overflow = perDay.map((list) => list.length > maxLanes);
  const shown = bars.filter((b) => {
    for (let i = b.from; i <= b.to; i++) {
      const limit = overflow[i] ? maxLanes - 1 : maxLanes;
      if (b.lane >= limit) return false;
    }
    return true;
  });
  return (
    <div className="month-row">
      {days.map((d, i) => {
        const classes = ['month-cell'];
        if (d.getMonth() !== month.getMonth()) classes.push('outside');
        if (sameDay(d, now)) classes.push('today');
        if (selected(d)) classes.push('selecting');
        const hidden = (perDay[i] ?? []).length - shown.filter((b) => b.from <= i && b.to >= i).length;
        return (
          <div key={d.getTime()} className={classes.join(' ')} data-testid={`day-${isoDate(d)}`} data-date={isoDate(d)}>
            <button
              type="button"
              className="month-daynum"
              data-testid={`goto-${isoDate(d)}`}
              onPointerDown={(e) => e.stopPropagation()}
              onClick={() => onPickDay(d)}
              title={t.openWeek}
            >
              {d.getDate() === 1 ? `${d.getDate()} ${d.toLocaleString(undefined, { month: 'short' })}` : d.getDate()}
            </button>
            {hidden > 0 && (
              <button
                type="button"
                className="month-more"
                data-testid={`more-${isoDate(d)}`}
                style={{ top: HEAD_PX + (maxLanes - 1) * LANE_PX }}
                onPointerDown={(e) => e.stopPropagation()}
                onClick={() => onPickDay(d)}
              >
                {t.more({ count: hidden })}
              </button>
            )}
          </div>
        );
      })}
      {shown.map((bar) => (
        <EventChip
          key={`${bar.event.space}/${bar.event.id}`}
          event={bar.event}
          variant={isBarEvent(bar.event) ? 'bar' : 'dot'}
          continuesBefore={bar.continuesBefore}
          continuesAfter={bar.continuesAfter}
          onOpen={onOpen}
          style={{
            position: 'absolute',
            top: HEAD_PX + bar.lane * LANE_PX,
            height: LANE_PX - 3,
            left: `calc(${(bar.from / 7) * 100}% + 3px)`,
            width: `calc(${((bar.to - bar.from + 1) / 7) * 100}% - 7px)`,
          }}
        />
      ))}
    </div>
  );
}

import type { CSSProperties, PointerEvent as ReactPointerEvent, ReactNode } from 'react';
import { formatTime, isoDate } from '../dates';
import { STATUS_LABELS, type ShownEvent } from '../data/model';
import { t } from '../i18n';

export interface EventChipProps {
  readonly event: ShownEvent;
  readonly variant: 'box' | 'bar' | 'dot';
  readonly style?: CSSProperties;
  readonly continuesBefore?: boolean;
  readonly continuesAfter?: boolean;
  readonly onOpen: (event: ShownEvent) => void;
  /** Takes over pointer handling (the week grid: click to open, drag to move or resize). */
  readonly onPointerDown?: (event: ShownEvent, e: ReactPointerEvent<HTMLElement>) => void;
  /** Being dragged: drawn faded, its new place is drawn by the grid. */
  readonly dragging?: boolean;
  /** A short box: title and time on one line. */
  readonly compact?: boolean;
}

/** One event on a grid (a box in the week's time grid, a bar in a day row, a dot line in the month). */
export function EventChip({ event, variant, style, continuesBefore, continuesAfter, onOpen, onPointerDown, dragging, compact }: EventChipProps): ReactNode {
  const time = event.allDay ? t.allDay : `${formatTime(event.start)} – ${formatTime(event.end)}`;
  const classes = ['event', `event-${variant}`];
  if (event.status === 'cancelled') classes.push('event-cancelled');
  if (event.status === 'tentative') classes.push('event-tentative');
  if (continuesBefore) classes.push('continues-before');
  if (continuesAfter) classes.push('continues-after');
  if (dragging) classes.push('dragging');
  if (compact) classes.push('event-compact');
  const title = event.title || t.noTitle;
  // What the chip shows, in its order: its accessible name starts with exactly that (WCAG "label in name"),
  // then says what it leaves out.
  const shownTime = variant === 'dot' ? (event.allDay ? '' : formatTime(event.start)) : variant === 'box' ? (compact && !event.allDay ? formatTime(event.start) : time) : '';
  const showsLocation = variant === 'box' && !compact && Boolean(event.location);
  const visible = (variant === 'dot' ? [shownTime, title] : [title, shownTime, showsLocation ? event.location : '']).filter(Boolean).join(' ');
  const rest = [shownTime === time ? '' : time, showsLocation ? '' : event.location, event.status ? STATUS_LABELS[event.status] : '', event.calendarName].filter(Boolean);
  const label = [visible, ...rest].join(', ');
  return (
    <div
      className={classes.join(' ')}
      role="button"
      tabIndex={0}
      aria-label={label}
      title={label}
      data-testid={`event-${event.id}`}
      data-event-id={event.id}
      data-space={event.space}
      data-title={event.title}
      data-start={event.allDay ? isoDate(event.start) : event.start.toISOString()}
      data-all-day={event.allDay ? 'true' : 'false'}
      data-status={event.status ?? ''}
      style={{ ...style, ['--ev' as string]: event.color }}
      onPointerDown={(e) => (onPointerDown ? onPointerDown(event, e) : e.stopPropagation())}
      onClick={(e) => {
        e.stopPropagation();
        // With onPointerDown the grid opens the event on pointer up (it captured the pointer).
        if (!onPointerDown) onOpen(event);
      }}
      onKeyDown={(e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          onOpen(event);
        }
      }}
    >
      {variant === 'dot' && <span className="event-dot" aria-hidden="true" />}
      {variant === 'dot' && !event.allDay && <span className="event-time">{formatTime(event.start)} </span>}
      <span className="event-title">{title}</span>
      {variant === 'box' && <span className="event-time"> {shownTime}</span>}
      {showsLocation && <span className="event-location"> {event.location}</span>}
      {variant === 'box' && onPointerDown && !continuesAfter && <span className="resize-handle" data-testid={`resize-${event.id}`} aria-hidden="true" />}
      {event.conflict > 1 && (
        <span className="conflict-badge" data-testid={`conflict-badge-${event.id}`} title={t.conflictBadge({ count: event.conflict })}>
          !
        </span>
      )}
    </div>
  );
}

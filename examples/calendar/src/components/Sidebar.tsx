import { useEffect, useRef, useState, type KeyboardEvent as ReactKeyboardEvent, type ReactNode } from 'react';
import { addDays, addMonths, formatLongDate, formatMonthYear, formatWeekday, isoDate, sameDay, startOfMonth, startOfWeek } from '../dates';
import { COLORS, type Calendar } from '../data/model';
import { t } from '../i18n';

export interface SidebarProps {
  readonly calendars: readonly Calendar[];
  readonly hidden: ReadonlySet<string>;
  readonly date: Date;
  readonly now: Date;
  readonly onToggle: (id: string) => void;
  readonly onEdit: (calendar: Calendar | undefined) => void;
  readonly onPickDate: (d: Date) => void;
  readonly onCreate: () => void;
  /** Opens Import / Export (shown in the sidebar when it is the phone's drawer). */
  readonly onImport?: () => void;
}

export function Sidebar({ calendars, hidden, date, now, onToggle, onEdit, onPickDate, onCreate, onImport }: SidebarProps): ReactNode {
  return (
    <aside className="sidebar" data-testid="sidebar">
      <button type="button" className="create-button" data-testid="create-event" onClick={onCreate}>
        <svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true">
          <path d="M12 4v16M4 12h16" stroke="currentColor" strokeWidth="2.5" strokeLinecap="round" />
        </svg>
        {t.create}
      </button>
      <MiniMonth date={date} now={now} onPickDate={onPickDate} />
      <section className="calendars" aria-label={t.calendars}>
        <h3>{t.myCalendars}</h3>
        <ul>
          {calendars.map((c) => (
            <li key={c.id} data-testid={`calendar-${c.id}`}>
              <label className="calendar-toggle">
                <input
                  type="checkbox"
                  data-testid={`calendar-toggle-${c.id}`}
                  checked={!hidden.has(c.id)}
                  onChange={() => onToggle(c.id)}
                  style={{ ['--cal' as string]: c.color }}
                />
                <span className="calendar-name">{c.name}</span>
              </label>
              <button type="button" className="icon-button" aria-label={t.editCalendarNamed({ name: c.name })} title={t.editCalendarTitle} data-testid={`calendar-edit-${c.id}`} onClick={() => onEdit(c)}>
                ⋯
              </button>
            </li>
          ))}
        </ul>
        <button type="button" className="link-button" data-testid="calendar-add" onClick={() => onEdit(undefined)}>
          {t.addCalendar}
        </button>
      </section>
      {onImport && (
        <button type="button" className="link-button drawer-only" data-testid="drawer-ics" onClick={onImport}>
          {t.drawerIcs}
        </button>
      )}
    </aside>
  );
}

function MiniMonth({ date, now, onPickDate }: { date: Date; now: Date; onPickDate: (d: Date) => void }): ReactNode {
  const [month, setMonth] = useState(() => startOfMonth(date));
  const dateKey = isoDate(date).slice(0, 7);
  useEffect(() => setMonth(startOfMonth(new Date(`${dateKey}-01T00:00`))), [dateKey]);
  const gridStart = startOfWeek(month);
  // One tab stop for the 42 days (roving tabindex): the selected date when it is shown, else the 1st; arrows move.
  const [focusDay, setFocusDay] = useState<Date | undefined>();
  const shown = (d: Date) => d >= gridStart && d < addDays(gridStart, 42);
  const tabDay = focusDay && shown(focusDay) ? focusDay : shown(date) && date.getMonth() === month.getMonth() ? date : month;
  const gridRef = useRef<HTMLDivElement>(null);
  const onKeyDown = (e: ReactKeyboardEvent<HTMLDivElement>) => {
    const step: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 };
    const by = step[e.key];
    if (by === undefined) return;
    e.preventDefault();
    const next = addDays(tabDay, by);
    if (next.getMonth() !== month.getMonth() && !shown(next)) setMonth(startOfMonth(next));
    setFocusDay(next);
    requestAnimationFrame(() => (gridRef.current?.querySelector(`[data-testid="mini-${isoDate(next)}"]`) as HTMLElement | null)?.focus());
  };
  return (
    <div className="mini-month" data-testid="mini-month">
      <div className="mini-head">
        <span>{formatMonthYear(month)}</span>
        <button type="button" className="icon-button" aria-label={t.previous({ view: 'month' })} onClick={() => setMonth(addMonths(month, -1))}>
          ‹
        </button>
        <button type="button" className="icon-button" aria-label={t.next({ view: 'month' })} onClick={() => setMonth(addMonths(month, 1))}>
          ›
        </button>
      </div>
      <div className="mini-grid" ref={gridRef} onKeyDown={onKeyDown}>
        {Array.from({ length: 7 }, (_, i) => (
          <span key={`h${i}`} className="mini-weekday">
            {formatWeekday(addDays(gridStart, i)).slice(0, 1)}
          </span>
        ))}
        {Array.from({ length: 42 }, (_, i) => {
          const d = addDays(gridStart, i);
          const classes = ['mini-day'];
          if (d.getMonth() !== month.getMonth()) classes.push('outside');
          if (sameDay(d, now)) classes.push('today');
          if (sameDay(d, date)) classes.push('selected');
          return (
            <button
              key={i}
              type="button"
              className={classes.join(' ')}
              data-testid={`mini-${isoDate(d)}`}
              tabIndex={sameDay(d, tabDay) ? 0 : -1}
              aria-label={formatLongDate(d)}
              aria-current={sameDay(d, date) ? 'date' : undefined}
              onFocus={() => setFocusDay(d)}
              onClick={() => onPickDate(d)}
            >
              {d.getDate()}
            </button>
          );
        })}
      </div>
    </div>
  );
}

export interface CalendarDialogProps {
  readonly calendar: Calendar | undefined;
  readonly canDelete: boolean;
  readonly onSave: (name: string, color: string) => void;
  readonly onDelete: () => void;
  readonly onClose: () => void;
}

/** Adds a calendar, or renames / recolours / deletes one. */
export function CalendarDialog({ calendar, canDelete, onSave, onDelete, onClose }: CalendarDialogProps): ReactNode {
  const [name, setName] = useState(calendar?.name ?? '');
  const [color, setColor] = useState(calendar?.color ?? (COLORS[2] as string));
  const [confirming, setConfirming] = useState(false);
  const nameRef = useRef<HTMLInputElement>(null);
  useEffect(() => nameRef.current?.focus(), []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div className="backdrop" onPointerDown={(e) => e.target === e.currentTarget && onClose()}>
      <form
        className="dialog calendar-dialog"
        role="dialog"
        aria-modal="true"
        aria-label={calendar ? t.editCalendarNamed({ name: calendar.name }) : t.newCalendar}
        data-testid="calendar-dialog"
        style={{ borderTopColor: color }}
        onSubmit={(e) => {
          e.preventDefault();
          if (name.trim()) onSave(name.trim(), color);
        }}
      >
        <h2>{calendar ? t.editCalendar : t.newCalendar}</h2>
        <label className="field">
          <span>{t.name}</span>
          <input ref={nameRef} data-testid="calendar-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={60} />
        </label>
        <fieldset className="field">
          <legend>{t.colour}</legend>
          <div className="swatches">
            {COLORS.map((c) => (
              <button
                key={c}
                type="button"
                className={`swatch${c === color ? ' on' : ''}`}
                style={{ background: c }}
                aria-label={t.colourNamed({ color: c })}
                aria-pressed={c === color}
                data-testid={`calendar-color-${c.slice(1)}`}
                onClick={() => setColor(c)}
              />
            ))}
          </div>
        </fieldset>
        {calendar && <p className="dialog-note">{t.syncedAsSpace({ space: calendar.id })}</p>}
        <div className="dialog-buttons">
          {calendar && canDelete && (
            <button
              type="button"
              className="danger"
              data-testid="calendar-delete"
              onClick={() => (confirming ? onDelete() : setConfirming(true))}
              title={t.removeCalendarTitle}
            >
              {confirming ? t.removeCalendarConfirm : t.removeCalendar}
            </button>
          )}
          <span className="spacer" />
          <button type="button" onClick={onClose} data-testid="calendar-cancel">
            {t.cancel}
          </button>
          <button type="submit" className="primary" data-testid="calendar-save">
            {t.save}
          </button>
        </div>
      </form>
    </div>
  );
}

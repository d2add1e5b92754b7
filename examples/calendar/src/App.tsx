import { useCallback, useEffect, useMemo, useState, useSyncExternalStore, type ReactNode } from 'react';
import {
  addDays,
  addMonths,
  DAY,
  formatMonthYear,
  formatTime,
  formatWeekRange,
  HOUR,
  isoDate,
  parseLocal,
  startOfDay,
  startOfMonth,
  startOfWeek,
  daysOf,
  type View,
} from './dates';
import { deviceLabelOf, renameDevice, syncUrl, type ReplicaHost } from './data/host';
import { SETTINGS_SPACE, toCalEvent, toCalendar, toStatus, type Calendar, type ShownEvent, type StatusInfo } from './data/model';
import { updateEvent } from './data/events';
import { overlaps } from './layout';
import { SynclineProvider, usePresence, useQuery, useReplica, useUndo, type QueryResult } from './syncline';
import { ErrorBoundary } from './components/ErrorBoundary';
import { EventDialog, type DialogTarget } from './components/EventDialog';
import { MonthView } from './components/MonthView';
import { CalendarDialog, Sidebar } from './components/Sidebar';
import { SyncErrorBanner, SyncIndicator } from './components/SyncIndicator';
import { useNow, WeekView, type NewRange } from './components/WeekView';
import { IcsDialog } from './components/IcsDialog';
import { t } from './i18n';

/** Opens the replica (through the host) and shows the calendar once it is ready. */
export function App({ host }: { readonly host: ReplicaHost }): ReactNode {
  const state = useSyncExternalStore(host.subscribe, host.getState);
  if (state.phase === 'opening') {
    return (
      <div className="splash" data-testid="loading">
        {t.loading}
      </div>
    );
  }
  if (state.phase === 'failed') {
    return (
      <div className="splash splash-error" role="alert" data-testid="open-error">
        <h1>{t.openFailed}</h1>
        <p>{state.error.message}</p>
        <p>{t.openFailedHint}</p>
      </div>
    );
  }
  return (
    <SynclineProvider replica={state.replica}>
      <CalendarApp host={host} />
    </SynclineProvider>
  );
}

// ---- URL state: ?view=day|3day|week|month&date=YYYY-MM-DD (other parameters, like device, are kept) ----

const VIEWS: readonly View[] = ['day', '3day', 'week', 'month'];
/** The view switch's words for each view. */
const VIEW_LABELS: Readonly<Record<View, (messages: typeof t) => string>> = { day: (m) => m.day, '3day': (m) => m.threeDays, week: (m) => m.week, month: (m) => m.month };

function readUrl(): { view: View; date: Date } {
  const params = new URLSearchParams(location.search);
  const asked = params.get('view');
  const view = VIEWS.includes(asked as View) ? (asked as View) : 'week';
  const date = parseLocal(params.get('date') ?? '') ?? startOfDay(new Date());
  return { view, date };
}

function writeUrl(view: View, date: Date): void {
  const params = new URLSearchParams(location.search);
  params.set('view', view);
  params.set('date', isoDate(date));
  const url = `${location.pathname}?${params.toString()}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(null, '', url);
}

/** A live query's rows, keeping the previous result while a new query loads (no blank grid when navigating). */
function useRowsKept(result: QueryResult): QueryResult['rows'] {
  const [kept, setKept] = useState(result.rows);
  if (!result.loading && kept !== result.rows) setKept(result.rows);
  return result.loading ? kept : result.rows;
}

/** True while the window is narrower than a tablet: the phone layout (day and 3-day views, a menu, a drawer). */
const PHONE = '(max-width: 640px)';
function usePhone(): boolean {
  const query = useMemo(() => window.matchMedia(PHONE), []);
  return useSyncExternalStore(
    (onChange) => {
      query.addEventListener('change', onChange);
      return () => query.removeEventListener('change', onChange);
    },
    () => query.matches,
  );
}

function useHidden(key: string): [ReadonlySet<string>, (id: string) => void] {
  const [hidden, setHidden] = useState<ReadonlySet<string>>(() => {
    try {
      const v: unknown = JSON.parse(localStorage.getItem(key) ?? '[]');
      return new Set(Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
    } catch {
      return new Set();
    }
  });
  const toggle = useCallback(
    (id: string) =>
      setHidden((h) => {
        const next = new Set(h);
        if (!next.delete(id)) next.add(id);
        localStorage.setItem(key, JSON.stringify([...next]));
        return next;
      }),
    [key],
  );
  return [hidden, toggle];
}

function CalendarApp({ host }: { readonly host: ReplicaHost }): ReactNode {
  const replica = useReplica();
  const now = useNow();
  const [{ view: chosenView, date }, setNav] = useState(readUrl);
  const phone = usePhone();
  // A week of seven columns does not fit a phone: it shows three days there.
  const view: View = phone && chosenView === 'week' ? '3day' : chosenView;
  const dayCount = daysOf(view);
  const [menuOpen, setMenuOpen] = useState(false);
  const [dialog, setDialog] = useState<DialogTarget | undefined>();
  const [calendarDialog, setCalendarDialog] = useState<{ calendar: Calendar | undefined } | undefined>();
  const [icsOpen, setIcsOpen] = useState(false);
  const [toast, setToastState] = useState<{ readonly text: string; readonly undoable: boolean } | undefined>();
  // A toast; `undoable`: it reports this device's latest write, which Undo (or Ctrl/Cmd+Z) takes back.
  const setToast = useCallback((text: string | undefined, undoable = false) => setToastState(text === undefined ? undefined : { text, undoable }), []);
  const { undo, redo, canUndo } = useUndo();
  const undoNow = useCallback(() => {
    setToastState(undefined);
    undo().then(
      (done) => done && setToast(t.undone),
      (error: unknown) => setToast(t.couldNotUndo({ message: (error as Error).message })),
    );
  }, [undo, setToast]);
  const [hidden, toggleHidden] = useHidden(`syncline-calendar:${host.device.dbName}:hidden`);
  const [deviceLabel, setDeviceLabel] = useState(() => deviceLabelOf(host.device));
  const rename = useCallback(
    (name: string) => {
      renameDevice(host.device, name);
      setDeviceLabel(name);
    },
    [host],
  );

  useEffect(() => writeUrl(view, date), [view, date]);
  useEffect(() => {
    if (!toast) return;
    const timer = setTimeout(() => setToastState(undefined), toast.undoable ? 8000 : 4000);
    return () => clearTimeout(timer);
  }, [toast]);

  // Calendars: the list lives in the `settings` space; each one is a space to sync.
  const calendarsQuery = useQuery({ collection: 'calendars', space: SETTINGS_SPACE });
  const calendars = useMemo(
    () =>
      calendarsQuery.rows
        .map(toCalendar)
        .filter((c): c is Calendar => c !== undefined)
        .sort((a, b) => a.order - b.order || a.name.localeCompare(b.name)),
    [calendarsQuery.rows],
  );
  const calendarIds = calendars.map((c) => c.id).join('\u0000');
  useEffect(() => {
    if (calendarIds) host.setCalendarSpaces(calendarIds.split('\u0000'));
  }, [host, calendarIds]);
  const calendarById = useMemo(() => new Map(calendars.map((c) => [c.id, c])), [calendars]);
  const calendarName = useCallback((space: string) => (space === SETTINGS_SPACE ? t.calendarList : (calendarById.get(space)?.name ?? space)), [calendarById]);

  // The visible range, and the events that overlap it.
  const weekStart = startOfWeek(date);
  const monthStart = startOfMonth(date);
  const gridStart = startOfWeek(monthStart);
  // The first day of the time grid: the week's first day, or the chosen day for the day and 3-day views.
  const gridFrom = view === 'week' ? weekStart : startOfDay(date);
  const from = view === 'month' ? gridStart : gridFrom;
  const to = addDays(from, view === 'month' ? 42 : dayCount);
  // Events starting up to 62 days before the range still show if they last into it;
  // all-day events are stored at UTC midnight, hence the extra day on both sides.
  const eventsQuery = useQuery({ collection: 'events', index: 'byStart', range: { gte: from.getTime() - 62 * DAY, lt: to.getTime() + DAY } });
  const eventRows = useRowsKept(eventsQuery);
  const statusQuery = useQuery({ collection: 'status' });
  const statuses = useMemo(() => {
    const map = new Map<string, StatusInfo>();
    for (const row of statusQuery.rows) {
      const s = toStatus(row);
      if (s) map.set(`${row.space}\u0000${row.id}`, s);
    }
    return map;
  }, [statusQuery.rows]);
  const fromMs = from.getTime();
  const toMs = to.getTime();
  const events = useMemo(() => {
    const out: ShownEvent[] = [];
    for (const row of eventRows) {
      const calendar = calendarById.get(row.space);
      if (!calendar || hidden.has(row.space)) continue;
      const e = toCalEvent(row);
      if (!e || !overlaps(e, new Date(fromMs), new Date(toMs))) continue;
      const status = statuses.get(`${row.space}\u0000${row.id}`);
      out.push({ ...e, color: calendar.color, calendarName: calendar.name, status: status?.status, conflict: status?.conflict ?? 0 });
    }
    return out;
  }, [eventRows, calendarById, hidden, statuses, fromMs, toMs]);

  const defaultCalendar = calendars.find((c) => !hidden.has(c.id))?.id ?? calendars[0]?.id ?? 'cal-personal';

  const go = useCallback((delta: number) => setNav((n) => ({ ...n, date: view === 'month' ? addMonths(n.date, delta) : addDays(n.date, daysOf(view) * delta) })), [view]);
  const today = useCallback(() => setNav((n) => ({ ...n, date: startOfDay(new Date()) })), []);
  const setView = useCallback((v: View) => setNav((n) => ({ ...n, view: v })), []);
  const openWeekOf = useCallback((d: Date) => setNav({ view: 'week', date: d }), []);
  const create = useCallback((range: NewRange) => setDialog({ mode: 'new', range, space: defaultCalendar }), [defaultCalendar]);
  const open = useCallback((e: ShownEvent) => setDialog({ mode: 'edit', id: e.id, space: e.space }), []);
  const reschedule = useCallback(
    (e: ShownEvent, start: Date, end: Date) => {
      updateEvent(replica, e.id, e.space, e.fields, { ...e.fields, start: start.getTime(), end: end.getTime() }).then(
        (moved) => moved && setToast(t.movedTo({ title: e.title || t.noTitle, start: formatTime(start), end: formatTime(end), date: start.toLocaleDateString() }), true),
        (error: unknown) => setToast(t.couldNotMove({ message: (error as Error).message })),
      );
    },
    [replica, setToast],
  );
  const closeDialog = useCallback(() => setDialog(undefined), []);
  const closeCalendarDialog = useCallback(() => setCalendarDialog(undefined), []);

  const createNow = () => {
    const base = view !== 'month' && !(now >= gridFrom && now < addDays(gridFrom, dayCount)) ? gridFrom : now;
    const start = new Date(base.getFullYear(), base.getMonth(), base.getDate(), base === now ? now.getHours() + 1 : 9);
    create({ start, end: new Date(start.getTime() + HOUR), allDay: false });
  };

  // Keyboard: t today, w / m views, ← → previous / next; Ctrl/Cmd+Z undo, Ctrl/Cmd+Shift+Z (or Ctrl+Y) redo.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (dialog || calendarDialog || icsOpen || e.altKey) return;
      const target = e.target as HTMLElement | null;
      if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.tagName === 'SELECT' || target.isContentEditable)) return;
      // The time grid and the mini month move their own focus with the arrows.
      if (target?.closest('[role="grid"], [data-testid="mini-month"]') && e.key.startsWith('Arrow')) return;
      if (e.metaKey || e.ctrlKey) {
        const key = e.key.toLowerCase();
        if (key === 'z' && !e.shiftKey) {
          e.preventDefault();
          undoNow();
        } else if ((key === 'z' && e.shiftKey) || key === 'y') {
          e.preventDefault();
          void redo();
        }
        return;
      }
      if (e.key === 't') today();
      else if (e.key === 'w') setView('week');
      else if (e.key === 'm') setView('month');
      else if (e.key === 'ArrowLeft') go(-1);
      else if (e.key === 'ArrowRight') go(1);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [dialog, calendarDialog, icsOpen, today, setView, go, undoNow, redo]);

  const saveCalendar = async (name: string, color: string) => {
    const existing = calendarDialog?.calendar;
    try {
      if (existing) {
        await replica.patch('calendars', existing.id, { name, color }, { space: SETTINGS_SPACE });
      } else {
        const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 24) || 'calendar';
        const id = `cal-${slug}-${Math.random().toString(36).slice(2, 6)}`;
        const order = calendars.reduce((n, c) => Math.max(n, c.order + 1), 0);
        await replica.put('calendars', id, { name, color, order }, { space: SETTINGS_SPACE });
      }
      setCalendarDialog(undefined);
    } catch (error) {
      setToast(t.couldNotSaveCalendar({ message: (error as Error).message }));
    }
  };
  const deleteCalendar = async () => {
    const existing = calendarDialog?.calendar;
    if (!existing) return;
    await replica.delete('calendars', existing.id, { space: SETTINGS_SPACE });
    setCalendarDialog(undefined);
    setToast(t.calendarRemoved({ name: existing.name }));
  };

  // Presence: who else looks at the same week (or month), and who has which event open; never stored.
  const { peers, set: setPresence } = usePresence(SETTINGS_SPACE);
  const looking = `${view}:${isoDate(view === 'month' ? monthStart : gridFrom)}`;
  const editing = dialog?.mode === 'edit' ? `${dialog.space}/${dialog.id}` : undefined;
  useEffect(() => {
    setPresence({ name: deviceLabel, looking, ...(editing ? { editing } : {}) });
  }, [setPresence, deviceLabel, looking, editing]);
  const presentHere = peers.filter((p) => (p.state as { looking?: unknown } | null)?.looking === looking).map((p) => String((p.state as { name?: unknown }).name ?? p.replica.slice(0, 4)));
  const editorsOf = (key: string): string[] => peers.filter((p) => (p.state as { editing?: unknown } | null)?.editing === key).map((p) => String((p.state as { name?: unknown }).name ?? p.replica.slice(0, 4)));

  const title = view === 'month' ? formatMonthYear(monthStart) : formatWeekRange(gridFrom, dayCount);
  const pickDate = (d: Date) => {
    setNav((n) => ({ ...n, date: d }));
    setMenuOpen(false);
  };

  return (
    <div className="app" data-testid="app" data-device={host.device.name ?? ''} data-replica={replica.id}>
      <header className="toolbar">
        <button type="button" className="icon-button menu-button" aria-label={t.menu} aria-expanded={menuOpen} data-testid="menu" onClick={() => setMenuOpen((o) => !o)}>
          <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <path d="M4 7h16M4 12h16M4 17h16" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
        </button>
        <div className="brand">
          <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true">
            <rect x="2" y="4" width="20" height="18" rx="3" fill="#1a73e8" />
            <rect x="2" y="4" width="20" height="6" rx="3" fill="#1558b0" />
            <text x="12" y="19.5" textAnchor="middle" fontSize="9" fontWeight="700" fill="#fff">
              {now.getDate()}
            </text>
          </svg>
          <span>{t.appName}</span>
        </div>
        <button type="button" className="today-button" data-testid="nav-today" onClick={today}>
          {t.today}
        </button>
        <div className="nav-arrows">
          <button type="button" className="icon-button" aria-label={t.previous({ view })} data-testid="nav-prev" onClick={() => go(-1)}>
            ‹
          </button>
          <button type="button" className="icon-button" aria-label={t.next({ view })} data-testid="nav-next" onClick={() => go(1)}>
            ›
          </button>
        </div>
        <h1 className="nav-title" data-testid="nav-title" data-view={view} data-date={isoDate(date)}>
          {title}
        </h1>
        <span className="spacer" />
        <div className="view-switch" role="group" aria-label={t.viewSwitch}>
          {(phone ? (['day', '3day', 'month'] as const) : (['week', 'month'] as const)).map((v) => (
            <button key={v} type="button" aria-pressed={view === v} data-testid={`view-${v}`} onClick={() => setView(v)}>
              {VIEW_LABELS[v](t)}
            </button>
          ))}
        </div>
        <button type="button" className="ics-button" data-testid="ics-button" onClick={() => setIcsOpen(true)} title={t.icsButtonTitle}>
          {t.icsButton}
        </button>
        {presentHere.length > 0 && (
          <div className="presence" data-testid="presence" aria-label={t.alsoLooking({ view, names: presentHere.join(', ') })}>
            {presentHere.map((name) => (
              <span key={name} className="presence-avatar" title={t.isLooking({ view, name })}>
                {name.slice(0, 1).toUpperCase()}
              </span>
            ))}
            <span className="presence-names">{presentHere.join(', ')}</span>
          </div>
        )}
        <SyncIndicator syncUrl={syncUrl()} deviceLabel={deviceLabel} calendarName={calendarName} onRename={rename} />
      </header>
      <SyncErrorBanner calendarName={calendarName} onToken={(token) => host.setToken(token)} />
      <div className={`main${menuOpen ? ' menu-open' : ''}`}>
        {menuOpen && <div className="drawer-backdrop" data-testid="drawer-backdrop" onClick={() => setMenuOpen(false)} />}
        <Sidebar
          onImport={() => {
            setMenuOpen(false);
            setIcsOpen(true);
          }}
          calendars={calendars}
          hidden={hidden}
          date={date}
          now={now}
          onToggle={toggleHidden}
          onEdit={(calendar) => setCalendarDialog({ calendar })}
          onPickDate={pickDate}
          onCreate={() => {
            setMenuOpen(false);
            createNow();
          }}
        />
        <main className="view" data-testid="calendar-view" data-loading={eventsQuery.loading ? 'true' : 'false'} data-events={events.length}>
          {view !== 'month' ? (
            <WeekView
              weekStart={gridFrom}
              dayCount={dayCount}
              events={events}
              now={now}
              onCreate={create}
              onOpen={open}
              onPickDay={(d) => setNav({ view: phone && view !== 'day' ? 'day' : 'month', date: d })}
              onReschedule={reschedule}
            />
          ) : (
            <MonthView month={monthStart} gridStart={gridStart} events={events} now={now} onCreate={create} onOpen={open} onPickDay={openWeekOf} />
          )}
        </main>
        {phone && (
          <button type="button" className="fab-create" aria-label={t.createEvent} data-testid="fab-create" onClick={createNow}>
            <svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true">
              <path d="M12 4v16M4 12h16" stroke="currentColor" strokeWidth="2.5" strokeLinecap="round" />
            </svg>
          </button>
        )}
      </div>
      {dialog && (
        <ErrorBoundary
          key={dialog.mode === 'edit' ? `${dialog.space}/${dialog.id}` : `new-${dialog.range.start.getTime()}`}
          fallback={(error) => (
            <div className="backdrop">
              <div className="dialog" role="alertdialog" data-testid="dialog-error">
                <h2>{t.eventNotShown}</h2>
                <p className="form-error">{error.message}</p>
                <div className="dialog-buttons">
                  <span className="spacer" />
                  <button type="button" className="primary" onClick={closeDialog}>
                    {t.close}
                  </button>
                </div>
              </div>
            </div>
          )}
        >
          <EventDialog target={dialog} calendars={calendars} deviceLabel={deviceLabel} onClose={closeDialog} onSaved={setToast} editors={dialog.mode === 'edit' ? editorsOf(`${dialog.space}/${dialog.id}`) : []} />
        </ErrorBoundary>
      )}
      {calendarDialog && (
        <CalendarDialog calendar={calendarDialog.calendar} canDelete={calendars.length > 1} onSave={saveCalendar} onDelete={deleteCalendar} onClose={closeCalendarDialog} />
      )}
      {icsOpen && <IcsDialog calendars={calendars} hidden={hidden} defaultCalendar={defaultCalendar} deviceLabel={deviceLabel} onClose={() => setIcsOpen(false)} onDone={setToast} />}
      {toast && (
        <div className="toast" role="status" data-testid="toast">
          <span>{toast.text}</span>
          {toast.undoable && canUndo && (
            <button type="button" className="toast-action" data-testid="toast-undo" onClick={undoNow}>
              {t.undo}
            </button>
          )}
        </div>
      )}
    </div>
  );
}

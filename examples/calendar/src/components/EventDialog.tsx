import { useCallback, useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { addDays, floatingFromLocal, formatLongDate, HOUR, isoDate, isoTime, parseLocal } from '../dates';
import { createEvent, deleteEvent, moveEvent, setStatus, updateEvent } from '../data/events';
import { isStatus, newEventId, STATUS_LABELS, STATUSES, toCalEvent, toStatus, type CalEvent, type Calendar, type EventFields, type EventStatus } from '../data/model';
import { useConflicts, useRecord, useReplica } from '../syncline';
import { NotesEditor, type NotesSession } from './NotesEditor';
import { useDialogFocus } from './dialog-focus';
import type { NewRange } from './WeekView';
import { t } from '../i18n';

export type DialogTarget = { readonly mode: 'new'; readonly range: NewRange; readonly space: string } | { readonly mode: 'edit'; readonly id: string; readonly space: string };

interface Form {
  title: string;
  allDay: boolean;
  startDate: string;
  startTime: string;
  endDate: string;
  endTime: string;
  location: string;
  calendar: string;
  status: EventStatus;
  /** New events only; existing events edit their notes live. */
  notes: string;
}

type FormField = keyof Form;

function formFromRange(range: NewRange, calendar: string): Form {
  const timedStart = range.allDay ? new Date(range.start.getFullYear(), range.start.getMonth(), range.start.getDate(), 9) : range.start;
  const timedEnd = range.allDay ? new Date(timedStart.getTime() + HOUR) : range.end;
  return {
    title: '',
    allDay: range.allDay,
    startDate: isoDate(range.start),
    startTime: isoTime(timedStart),
    endDate: isoDate(range.allDay ? addDays(range.end, -1) : range.end),
    endTime: isoTime(timedEnd),
    location: '',
    calendar,
    status: 'confirmed',
    notes: '',
  };
}

function formFromEvent(e: CalEvent, status: EventStatus): Omit<Form, 'notes'> {
  const timedStart = e.allDay ? new Date(e.start.getFullYear(), e.start.getMonth(), e.start.getDate(), 9) : e.start;
  const timedEnd = e.allDay ? new Date(timedStart.getTime() + HOUR) : e.end;
  return {
    title: e.title,
    allDay: e.allDay,
    startDate: isoDate(e.start),
    startTime: isoTime(timedStart),
    endDate: isoDate(e.allDay ? addDays(e.end, -1) : e.end),
    endTime: isoTime(timedEnd),
    location: e.location,
    calendar: e.space,
    status,
  };
}

/** The lww fields a form describes, or why it describes none. */
function fieldsFromForm(form: Form, uid: string | undefined): EventFields | string {
  if (form.allDay) {
    const first = parseLocal(form.startDate);
    const last = parseLocal(form.endDate);
    if (!first || !last) return t.needDates;
    if (last < first) return t.endsBeforeStart;
    return { title: form.title.trim(), start: floatingFromLocal(first), end: floatingFromLocal(addDays(last, 1)), allDay: true, location: form.location.trim(), ...(uid ? { uid } : {}) };
  }
  const start = parseLocal(form.startDate, form.startTime);
  const end = parseLocal(form.endDate, form.endTime);
  if (!start || !end) return t.needDatesAndTimes;
  if (end <= start) return t.endsBeforeStart;
  return { title: form.title.trim(), start: start.getTime(), end: end.getTime(), allDay: false, location: form.location.trim(), ...(uid ? { uid } : {}) };
}

export interface EventDialogProps {
  readonly target: DialogTarget;
  readonly calendars: readonly Calendar[];
  /** Who writes a status (shown to the other device in a conflict). */
  readonly deviceLabel: string;
  readonly onClose: () => void;
  /** What was written, for a toast; `undoable`: the write is this device's latest step (Undo offered). */
  readonly onSaved: (message: string, undoable?: boolean) => void;
  /** The other devices that have this event open now (presence). */
  readonly editors?: readonly string[];
}

export function EventDialog({ target, calendars, deviceLabel, onClose, onSaved, editors = [] }: EventDialogProps): ReactNode {
  const replica = useReplica();
  // Cancel (or Escape, or a click outside) takes back the notes typed in this dialog too.
  const notesSession = useRef<NotesSession | undefined>(undefined);
  const formRef = useRef<HTMLFormElement>(null);
  useDialogFocus(formRef);
  const cancel = useCallback(() => {
    notesSession.current?.revert();
    onClose();
  }, [onClose]);
  const ids = useId();
  const editing = target.mode === 'edit';
  const eventId = useRef(target.mode === 'edit' ? target.id : newEventId()).current;
  const space = target.space;
  const { row, loading } = useRecord('events', eventId, { space });
  const { row: statusRow } = useRecord('status', eventId, { space });
  const conflicts = useConflicts('status', eventId, { space });
  const current = row ? toCalEvent(row) : undefined;
  const currentStatus = (statusRow && toStatus(statusRow)?.status) ?? 'confirmed';

  const [form, setForm] = useState<Form>(() => (target.mode === 'new' ? formFromRange(target.range, target.space) : formFromRange({ start: new Date(), end: new Date(), allDay: false }, target.space)));
  const [touched, setTouched] = useState<ReadonlySet<FormField>>(new Set());
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const titleRef = useRef<HTMLInputElement>(null);

  // Editing: the form follows the stored event (and changes from other devices)
  // in every field the user has not touched yet.
  useEffect(() => {
    if (!editing || !current) return;
    const stored = formFromEvent(current, currentStatus);
    setForm((f) => {
      const next = { ...f };
      let changed = false;
      for (const key of Object.keys(stored) as Array<keyof typeof stored>) {
        if (touched.has(key) || next[key] === stored[key]) continue;
        (next as Record<string, unknown>)[key] = stored[key];
        changed = true;
      }
      return changed ? next : f;
    });
    // `current` is rebuilt from `row` on every render: `row` and the status are what change.
  }, [editing, row, currentStatus, touched]);

  useEffect(() => {
    titleRef.current?.focus();
  }, []);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') cancel();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [cancel]);

  const set = <K extends FormField>(key: K, value: Form[K]) => {
    setForm((f) => ({ ...f, [key]: value }));
    setTouched((t) => (t.has(key) ? t : new Set(t).add(key)));
    setError(undefined);
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const fields = fieldsFromForm(form, current?.uid);
    if (typeof fields === 'string') {
      setError(fields);
      return;
    }
    setBusy(true);
    try {
      if (!editing) {
        await createEvent(replica, eventId, form.calendar, fields, form.notes, form.status, deviceLabel);
        onSaved(t.created({ title: fields.title || t.noTitle }));
      } else if (!current) {
        setError(t.eventDeletedElsewhere);
        return;
      } else if (form.calendar !== space) {
        const status = statusRow ? currentStatus : form.status;
        await moveEvent(replica, eventId, space, form.calendar, fields, current.notes, touched.has('status') ? form.status : status, deviceLabel);
        onSaved(t.movedToCalendar({ title: fields.title || t.noTitle, calendar: calendars.find((c) => c.id === form.calendar)?.name ?? form.calendar }));
      } else {
        const changed = await updateEvent(replica, eventId, space, current.fields, fields);
        const statusSet = touched.has('status') && (form.status !== currentStatus || conflicts.length > 1);
        if (statusSet) await setStatus(replica, eventId, space, form.status, deviceLabel);
        // One write: Undo takes it back (a status set as well is a second one).
        onSaved(t.saved({ title: fields.title || t.noTitle }), changed || statusSet);
      }
      onClose();
    } catch (err) {
      setError(t.couldNotSave({ message: (err as Error).message }));
    } finally {
      setBusy(false);
    }
  };

  const onDelete = async () => {
    setBusy(true);
    try {
      await deleteEvent(replica, eventId, space);
      onSaved(t.deleted({ title: current?.title || t.noTitle }), true);
      onClose();
    } catch (err) {
      setError(t.couldNotDelete({ message: (err as Error).message }));
    } finally {
      setBusy(false);
    }
  };

  const chooseVersion = async (status: EventStatus) => {
    await setStatus(replica, eventId, space, status, deviceLabel);
    setForm((f) => ({ ...f, status }));
    setTouched((t) => {
      const next = new Set(t);
      next.delete('status');
      return next;
    });
  };

  const gone = editing && !loading && !current;
  const calendar = calendars.find((c) => c.id === form.calendar);
  const id = (name: string) => `${ids}-${name}`;

  return (
    <div className="backdrop" onPointerDown={(e) => e.target === e.currentTarget && cancel()}>
      <form
        ref={formRef}
        className="dialog event-dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={id('heading')}
        data-testid="event-dialog"
        data-event-id={eventId}
        data-mode={target.mode}
        onSubmit={onSubmit}
        style={{ borderTopColor: calendar?.color }}
      >
        <h2 id={id('heading')}>{editing ? t.editEvent : t.newEvent}</h2>
        {editors.length > 0 && (
          <p className="dialog-note presence-note" data-testid="event-editors">
            {t.alsoEditing({ names: editors })}
          </p>
        )}
        {gone ? (
          <p className="dialog-note" data-testid="event-gone">
            {t.eventGone}
          </p>
        ) : (
          <>
            <input
              ref={titleRef}
              className="title-input"
              aria-label={t.title}
              placeholder={t.titlePlaceholder}
              data-testid="event-title"
              value={form.title}
              onChange={(e) => set('title', e.target.value)}
            />
            <div className="when">
              <label className="check">
                <input type="checkbox" data-testid="event-allday" checked={form.allDay} onChange={(e) => set('allDay', e.target.checked)} />
                {t.allDay}
              </label>
              <div className="when-row">
                <label htmlFor={id('start-date')}>{t.starts}</label>
                <input id={id('start-date')} type="date" data-testid="event-start-date" value={form.startDate} onChange={(e) => set('startDate', e.target.value)} required />
                {!form.allDay && <input type="time" aria-label={t.startTime} data-testid="event-start-time" value={form.startTime} onChange={(e) => set('startTime', e.target.value)} required />}
              </div>
              <div className="when-row">
                <label htmlFor={id('end-date')}>{t.ends}</label>
                <input id={id('end-date')} type="date" data-testid="event-end-date" value={form.endDate} onChange={(e) => set('endDate', e.target.value)} required />
                {!form.allDay && <input type="time" aria-label={t.endTime} data-testid="event-end-time" value={form.endTime} onChange={(e) => set('endTime', e.target.value)} required />}
              </div>
              {form.startDate && parseLocal(form.startDate) && <div className="when-summary">{formatLongDate(parseLocal(form.startDate) as Date)}</div>}
            </div>
            <label className="field">
              <span>{t.location}</span>
              <input data-testid="event-location" value={form.location} placeholder={t.locationPlaceholder} onChange={(e) => set('location', e.target.value)} />
            </label>
            <label className="field">
              <span>{t.calendar}</span>
              <select data-testid="event-calendar" value={form.calendar} onChange={(e) => set('calendar', e.target.value)}>
                {calendars.map((c) => (
                  <option key={c.id} value={c.id}>
                    {c.name}
                  </option>
                ))}
                {!calendars.some((c) => c.id === form.calendar) && <option value={form.calendar}>{form.calendar}</option>}
              </select>
            </label>
            <fieldset className="field status-field" data-testid="event-status" data-status={form.status}>
              <legend>{t.status}</legend>
              <div className="segmented">
                {STATUSES.map((s) => (
                  <label key={s} className={form.status === s ? 'on' : ''}>
                    <input type="radio" name={id('status')} value={s} data-testid={`status-${s}`} checked={form.status === s} onChange={() => set('status', s)} />
                    {STATUS_LABELS[s]}
                  </label>
                ))}
              </div>
              {conflicts.length > 1 && (
                <div className="conflict-panel" data-testid="conflict-panel" role="group" aria-label={t.conflictingStatus}>
                  <p>
                    <span className="conflict-badge inline">!</span> {t.conflictQuestion({ count: conflicts.length })}
                  </p>
                  <ul>
                    {conflicts.map((v, i) => {
                      const s = v.value?.['status'];
                      const by = typeof v.value?.['by'] === 'string' ? v.value['by'] : v.replica.slice(0, 6);
                      const at = typeof v.value?.['at'] === 'number' ? new Date(v.value['at']).toLocaleString() : '';
                      return (
                        <li key={`${v.replica}:${v.seq}`}>
                          <button
                            type="button"
                            className="choice"
                            data-testid={`conflict-choice-${i}`}
                            data-status={isStatus(s) ? s : ''}
                            onClick={() => isStatus(s) && void chooseVersion(s)}
                            disabled={!isStatus(s)}
                          >
                            <strong>{isStatus(s) ? STATUS_LABELS[s] : t.deletedVersion}</strong>
                            <span>
                              {by}
                              {at && ` · ${at}`}
                            </span>
                          </button>
                        </li>
                      );
                    })}
                  </ul>
                </div>
              )}
            </fieldset>
            <div className="field">
              <label htmlFor={editing ? 'event-notes' : id('notes')}>{t.notes}</label>
              {editing ? (
                <NotesEditor id={eventId} space={space} session={notesSession} />
              ) : (
                <div className="notes">
                  <textarea id={id('notes')} data-testid="event-notes" data-ready="true" rows={5} placeholder={t.notesPlaceholder} value={form.notes} onChange={(e) => set('notes', e.target.value)} />
                </div>
              )}
            </div>
          </>
        )}
        {error && (
          <p className="form-error" role="alert" data-testid="event-error">
            {error}
          </p>
        )}
        <div className="dialog-buttons">
          {editing && !gone && (
            <button type="button" className="danger" data-testid="event-delete" onClick={onDelete} disabled={busy}>
              {t.delete}
            </button>
          )}
          <span className="spacer" />
          <button type="button" data-testid="event-cancel" onClick={cancel}>
            {gone ? t.close : t.cancel}
          </button>
          {!gone && (
            <button type="submit" className="primary" data-testid="event-save" disabled={busy || (editing && loading)}>
              {t.save}
            </button>
          )}
        </div>
      </form>
    </div>
  );
}

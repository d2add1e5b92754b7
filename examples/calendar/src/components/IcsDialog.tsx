import { useEffect, useState, type ReactNode } from 'react';
import { exportIcs, importIntoCalendar, parseIcs, type ExportItem, type ParsedIcs } from '../data/ics';
import { space as toSpace, toCalEvent, toStatus, type Calendar } from '../data/model';
import { useReplica } from '../syncline';
import { t } from '../i18n';

export interface IcsDialogProps {
  readonly calendars: readonly Calendar[];
  readonly hidden: ReadonlySet<string>;
  readonly defaultCalendar: string;
  readonly deviceLabel: string;
  readonly onClose: () => void;
  readonly onDone: (message: string) => void;
}

const ALL_VISIBLE = '*';

/** Import an .ics file into a calendar; export calendars as .ics. */
export function IcsDialog({ calendars, hidden, defaultCalendar, deviceLabel, onClose, onDone }: IcsDialogProps): ReactNode {
  const replica = useReplica();
  const [target, setTarget] = useState(defaultCalendar);
  const [fileName, setFileName] = useState<string | undefined>();
  const [parsed, setParsed] = useState<ParsedIcs | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [progress, setProgress] = useState<number | undefined>();
  const [exportFrom, setExportFrom] = useState(ALL_VISIBLE);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && progress === undefined && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose, progress]);

  const onFile = async (file: File | undefined) => {
    setParsed(undefined);
    setError(undefined);
    setFileName(file?.name);
    if (!file) return;
    try {
      const result = parseIcs(await file.text());
      if (result.events.length === 0) setError(t.icsNoEvents);
      setParsed(result);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const onImport = async () => {
    if (!parsed) return;
    setProgress(0);
    try {
      await importIntoCalendar(replica, target, parsed.events, deviceLabel, setProgress);
      const name = calendars.find((c) => c.id === target)?.name ?? target;
      onDone(t.imported({ count: parsed.events.length, calendar: name }));
      onClose();
    } catch (err) {
      setError(t.importFailed({ message: (err as Error).message }));
    } finally {
      setProgress(undefined);
    }
  };

  const onExport = async () => {
    const spaces = exportFrom === ALL_VISIBLE ? calendars.filter((c) => !hidden.has(c.id)).map((c) => c.id) : [exportFrom];
    const items: ExportItem[] = [];
    for (const space of spaces) {
      const [rows, statuses] = await Promise.all([replica.query({ collection: 'events', space: toSpace(space) }), replica.query({ collection: 'status', space: toSpace(space) })]);
      const byId = new Map(statuses.map((r) => [r.id, toStatus(r)?.status]));
      for (const row of rows) {
        const event = toCalEvent(row);
        if (event) items.push({ event, status: byId.get(row.id) });
      }
    }
    items.sort((a, b) => a.event.fields.start - b.event.fields.start);
    const name = exportFrom === ALL_VISIBLE ? t.appName : (calendars.find((c) => c.id === exportFrom)?.name ?? exportFrom);
    const blob = new Blob([exportIcs(items, name)], { type: 'text/calendar;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = `${name.replace(/[^\w.-]+/g, '-').toLowerCase() || 'calendar'}.ics`;
    a.dataset['testid'] = 'ics-download';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    onDone(t.exported({ count: items.length }));
  };

  return (
    <div className="backdrop" onPointerDown={(e) => e.target === e.currentTarget && progress === undefined && onClose()}>
      <div className="dialog ics-dialog" role="dialog" aria-modal="true" aria-label={t.icsDialog} data-testid="ics-dialog">
        <h2>{t.importHeading}</h2>
        <p className="dialog-note">{t.importNote}</p>
        <label className="field">
          <span>{t.file}</span>
          <input type="file" accept=".ics,text/calendar" data-testid="ics-file" onChange={(e) => void onFile(e.target.files?.[0])} />
        </label>
        <label className="field">
          <span>{t.intoCalendar}</span>
          <select data-testid="ics-import-calendar" value={target} onChange={(e) => setTarget(e.target.value)}>
            {calendars.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        {parsed && parsed.events.length > 0 && (
          <p className="ics-summary" data-testid="ics-summary" data-count={parsed.events.length}>
            {t.icsSummary({ file: fileName ?? '', count: parsed.events.length, series: parsed.series, truncated: parsed.truncated, skipped: parsed.skipped })}
          </p>
        )}
        {progress !== undefined && parsed && (
          <progress max={parsed.events.length} value={progress} data-testid="ics-progress">
            {progress}
          </progress>
        )}
        {error && (
          <p className="form-error" role="alert" data-testid="ics-error">
            {error}
          </p>
        )}
        <div className="dialog-buttons">
          <span className="spacer" />
          <button type="button" className="primary" data-testid="ics-import" disabled={!parsed || parsed.events.length === 0 || progress !== undefined} onClick={onImport}>
            {t.import}
          </button>
        </div>

        <h2>{t.exportHeading}</h2>
        <label className="field">
          <span>{t.calendar}</span>
          <select data-testid="ics-export-calendar" value={exportFrom} onChange={(e) => setExportFrom(e.target.value)}>
            <option value={ALL_VISIBLE}>{t.allShownCalendars}</option>
            {calendars.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <div className="dialog-buttons">
          <span className="spacer" />
          <button type="button" data-testid="ics-close" onClick={onClose} disabled={progress !== undefined}>
            {t.close}
          </button>
          <button type="button" className="primary" data-testid="ics-export" onClick={() => void onExport()}>
            {t.exportIcs}
          </button>
        </div>
      </div>
    </div>
  );
}

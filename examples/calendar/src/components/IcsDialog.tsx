import { useEffect, useState, type ReactNode } from 'react';
import { exportIcs, importIntoCalendar, parseIcs, type ExportItem, type ParsedIcs } from '../data/ics';
import { space as toSpace, toCalEvent, toStatus, type Calendar } from '../data/model';
import { useReplica } from '../syncline';

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
      if (result.events.length === 0) setError('The file holds no events.');
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
      onDone(`Imported ${parsed.events.length} event${parsed.events.length === 1 ? '' : 's'} into ${name}`);
      onClose();
    } catch (err) {
      setError(`Import failed: ${(err as Error).message}`);
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
    const name = exportFrom === ALL_VISIBLE ? 'Calendar' : (calendars.find((c) => c.id === exportFrom)?.name ?? exportFrom);
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
    onDone(`Exported ${items.length} event${items.length === 1 ? '' : 's'}`);
  };

  const recurring = parsed && parsed.series > 0 ? ` (${parsed.series} repeating series expanded for one year${parsed.truncated ? `, ${parsed.truncated} cut at 500 occurrences` : ''})` : '';

  return (
    <div className="backdrop" onPointerDown={(e) => e.target === e.currentTarget && progress === undefined && onClose()}>
      <div className="dialog ics-dialog" role="dialog" aria-modal="true" aria-label="Import and export" data-testid="ics-dialog">
        <h2>Import</h2>
        <p className="dialog-note">Add the events of an .ics file (from another calendar app) to one of your calendars. Importing the same file again updates those events.</p>
        <label className="field">
          <span>File</span>
          <input type="file" accept=".ics,text/calendar" data-testid="ics-file" onChange={(e) => void onFile(e.target.files?.[0])} />
        </label>
        <label className="field">
          <span>Into calendar</span>
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
            {fileName}: {parsed.events.length} event{parsed.events.length === 1 ? '' : 's'}
            {recurring}
            {parsed.skipped ? `; ${parsed.skipped} without a start skipped` : ''}.
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
            Import
          </button>
        </div>

        <h2>Export</h2>
        <label className="field">
          <span>Calendar</span>
          <select data-testid="ics-export-calendar" value={exportFrom} onChange={(e) => setExportFrom(e.target.value)}>
            <option value={ALL_VISIBLE}>All shown calendars</option>
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
            Close
          </button>
          <button type="button" className="primary" data-testid="ics-export" onClick={() => void onExport()}>
            Export .ics
          </button>
        </div>
      </div>
    </div>
  );
}

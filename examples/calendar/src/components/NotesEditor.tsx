import { useEffect, useRef, useState, type ReactNode } from 'react';
import * as Y from 'yjs';
import { useReplica } from '../syncline';
import { acquireNotes, applyDiff, TEXTAREA, transformPosition } from '../data/notes';
import { t } from '../i18n';

/** What the dialog can do with the notes typed while it was open. */
export interface NotesSession {
  /** Takes back what was typed here since the dialog opened (Cancel); others' edits stay. */
  revert(): void;
}

/**
 * A textarea bound to an event's collaborative notes (a Y.Text). `session`
 * receives a handle that reverts this textarea's own edits (Yjs's UndoManager
 * of the textarea's origin: text other devices typed meanwhile stays).
 */
export function NotesEditor({ id, space, session }: { readonly id: string; readonly space: string; readonly session?: { current: NotesSession | undefined } }): ReactNode {
  const replica = useReplica();
  const ref = useRef<HTMLTextAreaElement>(null);
  const [ready, setReady] = useState(false);
  const [remoteEdit, setRemoteEdit] = useState(false);

  useEffect(() => {
    const area = ref.current;
    if (!area) return;
    const handle = acquireNotes(replica, id, space);
    let text: Y.Text | undefined;
    let last = '';
    let stopped = false;
    let flash: ReturnType<typeof setTimeout> | undefined;
    let undo: Y.UndoManager | undefined;

    const onInput = () => {
      if (!text) return;
      const next = area.value;
      applyDiff(text, last, next);
      last = next;
    };
    const onChange = (event: Y.YTextEvent, transaction: Y.Transaction) => {
      if (transaction.origin === TEXTAREA || !text) return;
      const value = text.toString();
      if (value === area.value) {
        last = value;
        return;
      }
      const focused = document.activeElement === area;
      const [from, to, dir] = [area.selectionStart, area.selectionEnd, area.selectionDirection];
      const delta = event.delta as Parameters<typeof transformPosition>[1];
      area.value = value;
      last = value;
      if (focused) area.setSelectionRange(transformPosition(from, delta), transformPosition(to, delta), dir ?? undefined);
      setRemoteEdit(true);
      clearTimeout(flash);
      flash = setTimeout(() => setRemoteEdit(false), 1200);
    };

    area.addEventListener('input', onInput);
    handle.text.then(
      (t) => {
        if (stopped) return;
        text = t;
        last = t.toString();
        area.value = last;
        t.observe(onChange);
        // Everything typed in this dialog is one step: Cancel takes it back.
        const typed = new Y.UndoManager(t, { trackedOrigins: new Set([TEXTAREA]), captureTimeout: Number.POSITIVE_INFINITY });
        undo = typed;
        if (session) session.current = { revert: () => void typed.undo() };
        setReady(true);
      },
      (error: unknown) => console.error('[calendar] notes', error),
    );
    return () => {
      stopped = true;
      clearTimeout(flash);
      area.removeEventListener('input', onInput);
      text?.unobserve(onChange);
      undo?.destroy();
      if (session) session.current = undefined;
      handle.release();
      setReady(false);
    };
  }, [replica, id, space]);

  return (
    <div className={`notes${remoteEdit ? ' remote-edit' : ''}`}>
      <textarea
        ref={ref}
        id="event-notes"
        data-testid="event-notes"
        data-ready={ready ? 'true' : 'false'}
        placeholder={ready ? t.notesSharedPlaceholder : t.notesLoading}
        readOnly={!ready}
        rows={5}
      />
      {remoteEdit && <span className="notes-live">{t.notesEditedElsewhere}</span>}
    </div>
  );
}

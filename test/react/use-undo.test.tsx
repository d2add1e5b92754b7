// @vitest-environment happy-dom
/**
 * useUndo: canUndo and canRedo follow the replica's history live, the buttons
 * undo and redo real writes, and a component re-renders only when a flag
 * changes (not on every write that leaves both as they were).
 */
import { act, cleanup, fireEvent, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Replica } from '@syncline/client';
import { useRecord, useUndo } from '@syncline/react';
import { memoryReplica, Renders, renderWith } from './helpers.js';

const WAIT = { timeout: 5_000 };
const open: Replica[] = [];
afterEach(async () => {
  cleanup();
  await Promise.all(open.splice(0).map((r) => r.close()));
});

function Editor({ renders }: { renders: Renders }) {
  renders.tick();
  const { undo, redo, canUndo, canRedo } = useUndo();
  const note = useRecord('notes', 'n');
  return (
    <div>
      <p data-testid="title">{String(note.row?.value['title'] ?? '(none)')}</p>
      <button disabled={!canUndo} onClick={() => void undo()}>
        Undo
      </button>
      <button disabled={!canRedo} onClick={() => void redo()}>
        Redo
      </button>
    </div>
  );
}

describe('useUndo', () => {
  it('undoes and redoes writes, with canUndo and canRedo live', async () => {
    const replica = await memoryReplica('undo');
    open.push(replica);
    const renders = new Renders();
    const view = renderWith(replica, <Editor renders={renders} />);
    const button = (name: string) => view.getByText(name) as HTMLButtonElement;
    const title = () => view.getByTestId('title').textContent;
    expect([button('Undo').disabled, button('Redo').disabled]).toEqual([true, true]);

    await act(() => replica.put('notes', 'n', { title: 'first' }));
    await act(() => replica.patch('notes', 'n', { title: 'second' }));
    await waitFor(() => expect(title()).toBe('second'), WAIT);
    expect(button('Undo').disabled).toBe(false);

    fireEvent.click(button('Undo'));
    await waitFor(() => expect(title()).toBe('first'), WAIT);
    await waitFor(() => expect(button('Redo').disabled).toBe(false), WAIT);
    fireEvent.click(button('Undo'));
    await waitFor(() => expect(title()).toBe('(none)'), WAIT);
    await waitFor(() => expect(button('Undo').disabled).toBe(true), WAIT);
    fireEvent.click(button('Redo'));
    await waitFor(() => expect(title()).toBe('first'), WAIT);

    // A new write clears the redo steps.
    await act(() => replica.patch('notes', 'n', { title: 'third' }));
    await waitFor(() => expect(button('Redo').disabled).toBe(true), WAIT);
  });

  it('does not re-render for writes that leave canUndo and canRedo as they were', async () => {
    const replica = await memoryReplica('undo-renders');
    open.push(replica);
    function Flags({ renders }: { renders: Renders }) {
      renders.tick();
      const { canUndo, canRedo } = useUndo();
      return <p data-testid="flags">{`${canUndo} ${canRedo}`}</p>;
    }
    const renders = new Renders();
    const view = renderWith(replica, <Flags renders={renders} />);
    await act(() => replica.put('tags', 't0', { n: 0 }));
    await waitFor(() => expect(view.getByTestId('flags').textContent).toBe('true false'), WAIT);
    const before = renders.count;
    for (let n = 1; n <= 5; n++) await act(() => replica.put('tags', `t${n}`, { n }));
    expect(renders.count).toBe(before);
  });
});

// @vitest-environment happy-dom
/**
 * useRecord against a real replica: loading, then the row (or none), following
 * local puts, patches and deletes and remote changes; no re-render for commits
 * that touch other records or leave the value as it is.
 */
import { cleanup, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Replica, ReplicaError } from '@syncline/client';
import { useRecord } from '@syncline/react';
import { memoryReplica, outboxOf, Renders, renderWith } from './helpers.js';
import { portOf } from '../internals.js';

const WAIT = { timeout: 5_000 };
const open: Replica[] = [];

afterEach(async () => {
  cleanup();
  await Promise.all(open.splice(0).map((r) => r.close()));
});

async function replica(byte?: number): Promise<Replica> {
  const r = await memoryReplica('record', byte);
  open.push(r);
  return r;
}

function Note({ id, space, renders }: { id: string; space?: string; renders?: Renders }) {
  renders?.tick();
  const { row, loading, error } = useRecord('notes', id, space === undefined ? undefined : { space });
  const text = loading ? 'loading' : error ? `error:${(error as ReplicaError).code}` : row ? `${row.id}:${String(row.value['title'])}` : 'none';
  return <p data-testid={`note-${id}`}>{text}</p>;
}

describe('useRecord', () => {
  it('shows the record and follows local writes', async () => {
    const r = await replica();
    const view = renderWith(r, <Note id="n1" />);
    const note = () => view.getByTestId('note-n1').textContent;
    expect(note()).toBe('loading');
    await waitFor(() => expect(note()).toBe('none'), WAIT);

    await r.put('notes', 'n1', { title: 'first', rank: 1 });
    await waitFor(() => expect(note()).toBe('n1:first'), WAIT);
    await r.patch('notes', 'n1', { title: 'second' });
    await waitFor(() => expect(note()).toBe('n1:second'), WAIT);
    await r.delete('notes', 'n1');
    await waitFor(() => expect(note()).toBe('none'), WAIT);
    await r.put('notes', 'n1', { title: 'again', rank: 1 });
    await waitFor(() => expect(note()).toBe('n1:again'), WAIT);
  });

  it('follows remote changes', async () => {
    const r = await replica(1);
    const other = await replica(2);
    const view = renderWith(r, <Note id="n1" />);
    const note = () => view.getByTestId('note-n1').textContent;
    await waitFor(() => expect(note()).toBe('none'), WAIT);

    await other.put('notes', 'n1', { title: 'from elsewhere', rank: 1 });
    await portOf(r).applyRemote(await outboxOf(other));
    await waitFor(() => expect(note()).toBe('n1:from elsewhere'), WAIT);
  });

  it('reads the space it is given', async () => {
    const r = await replica();
    await r.put('notes', 'n1', { title: 'default space', rank: 1 });
    await r.put('notes', 'n1', { title: 'team space', rank: 1 }, { space: 'team' });
    const view = renderWith(
      r,
      <>
        <Note id="n1" />
        <div data-testid="team">
          <Note id="n1" space="team" />
        </div>
      </>,
    );
    await waitFor(() => expect(view.getAllByTestId('note-n1').map((e) => e.textContent)).toEqual(['n1:default space', 'n1:team space']), WAIT);
  });

  it('does not re-render for commits that leave the record as it is', async () => {
    const r = await replica();
    await r.put('notes', 'n1', { title: 'one', rank: 1 });
    const renders = new Renders();
    const view = renderWith(r, <Note id="n1" renders={renders} />);
    const note = () => view.getByTestId('note-n1').textContent;
    await waitFor(() => expect(note()).toBe('n1:one'), WAIT);
    const settled = renders.count;

    await r.put('notes', 'n2', { title: 'another record', rank: 2 });
    await r.put('tags', 'n1', { title: 'same id, another collection' });
    await r.put('notes', 'n1', { title: 'another space', rank: 1 }, { space: 'team' });
    await r.patch('notes', 'n1', { title: 'one' }); // touches n1, same value
    await r.patch('notes', 'n1', { title: 'two' });
    await waitFor(() => expect(note()).toBe('n1:two'), WAIT);
    expect(renders.count).toBe(settled + 1);
  });

  it('reports a read the replica refuses as an error', async () => {
    const r = await replica();
    const view = renderWith(r, <Note id="" />);
    await waitFor(() => expect(view.getByTestId('note-').textContent).toBe('error:invalid_argument'), WAIT);
  });
});

// @vitest-environment happy-dom
/**
 * useQuery against a real replica: the rows now and after every put, patch and
 * delete; no re-render for writes that leave the result as it is (another
 * collection, a record outside the range, a patch to the same value); one
 * subscription per query content, not per object identity.
 */
import { useState } from 'react';
import { act, cleanup, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Query, Replica, ReplicaError } from '@syncline/client';
import { useQuery } from '@syncline/react';
import { holdings, memoryReplica, Renders, renderWith } from './helpers.js';

const WAIT = { timeout: 5_000 };
let replica: Replica | undefined;

afterEach(async () => {
  cleanup();
  await replica?.close();
  replica = undefined;
});

function Titles({ query, renders }: { query: Query; renders?: Renders }) {
  renders?.tick();
  const { rows, loading, error } = useQuery(query);
  const text = loading ? 'loading' : error ? `error:${(error as ReplicaError).code}` : rows.map((r) => String(r.value['title'])).join(',');
  return <p data-testid="titles">{text}</p>;
}

describe('useQuery', () => {
  it('shows the rows, then follows put, patch and delete', async () => {
    replica = await memoryReplica();
    await replica.put('notes', 'a', { title: 'A', rank: 1 });
    await replica.put('notes', 'b', { title: 'B', rank: 2 });
    const view = renderWith(replica, <Titles query={{ collection: 'notes', index: 'byRank' }} />);
    const titles = () => view.getByTestId('titles').textContent;
    expect(titles()).toBe('loading');
    await waitFor(() => expect(titles()).toBe('A,B'), WAIT);

    await replica.put('notes', 'c', { title: 'C', rank: 3 });
    await waitFor(() => expect(titles()).toBe('A,B,C'), WAIT);
    await replica.patch('notes', 'b', { title: 'B2' });
    await waitFor(() => expect(titles()).toBe('A,B2,C'), WAIT);
    await replica.patch('notes', 'c', { rank: 0 });
    await waitFor(() => expect(titles()).toBe('C,A,B2'), WAIT);
    await replica.delete('notes', 'a');
    await waitFor(() => expect(titles()).toBe('C,B2'), WAIT);
  });

  it('shows an error, not endless loading, for a query the replica refuses while running it', async () => {
    replica = await memoryReplica();
    const view = renderWith(replica, <Titles query={{ collection: 'notes', index: 'byRank', eq: [1, 2] }} />);
    await waitFor(() => expect(view.getByTestId('titles').textContent).toBe('error:invalid_argument'), WAIT);
  });

  it('does not re-render for writes that leave its result unchanged', async () => {
    const r = (replica = await memoryReplica());
    await r.put('notes', 'a', { title: 'A', rank: 1 });
    const renders = new Renders();
    const view = renderWith(r, <Titles renders={renders} query={{ collection: 'notes', index: 'byRank', range: { lt: 10 } }} />);
    const titles = () => view.getByTestId('titles').textContent;
    await waitFor(() => expect(titles()).toBe('A'), WAIT);
    const settled = renders.count;

    await r.put('tags', 't', { title: 'another collection' });
    await r.put('notes', 'far', { title: 'outside the range', rank: 50 });
    await r.patch('notes', 'a', { title: 'A' }); // the same value again
    await r.batch((b) => {
      b.put('notes', 'tmp', { title: 'gone before anyone looks', rank: 2 });
      b.delete('notes', 'tmp');
    });
    // A write that does change the result: the only re-render must be for it.
    await r.put('notes', 'b', { title: 'B', rank: 2 });
    await waitFor(() => expect(titles()).toBe('A,B'), WAIT);
    expect(renders.count).toBe(settled + 1);
  });

  it('keeps one subscription while the query content stays the same', async () => {
    const r = (replica = await memoryReplica());
    const held = holdings(r);
    await r.put('notes', 'a', { title: 'A', rank: 1 });
    await r.put('notes', 'b', { title: 'B', rank: 5 });
    let setLimit: (n: number | undefined) => void = () => undefined;
    let setTick: (n: number) => void = () => undefined;
    function Parent() {
      const [limit, setL] = useState<number | undefined>(undefined);
      const [tick, setT] = useState(0);
      setLimit = setL;
      setTick = setT;
      // A new object literal on every render, with keys in another order each time.
      const query: Query = tick % 2 === 0 ? { collection: 'notes', index: 'byRank', limit } : { limit, index: 'byRank', collection: 'notes' };
      return (
        <>
          <span data-testid="tick">{tick}</span>
          <Titles query={query} />
        </>
      );
    }
    const view = renderWith(r, <Parent />);
    const titles = () => view.getByTestId('titles').textContent;
    await waitFor(() => expect(titles()).toBe('A,B'), WAIT);
    expect(r.subscribe).toHaveBeenCalledTimes(1);

    for (const tick of [1, 2, 3]) act(() => setTick(tick));
    expect(view.getByTestId('tick').textContent).toBe('3');
    expect(titles()).toBe('A,B');
    expect(r.subscribe).toHaveBeenCalledTimes(1);

    act(() => setLimit(1));
    await waitFor(() => expect(titles()).toBe('A'), WAIT);
    expect(r.subscribe).toHaveBeenCalledTimes(2);
    expect(held.queries).toBe(1); // the old query's subscription was released
  });

  it('reports a query the replica refuses as an error', async () => {
    replica = await memoryReplica();
    const view = renderWith(replica, <Titles query={{ collection: 'nope' }} />);
    await waitFor(() => expect(view.getByTestId('titles').textContent).toBe('error:unknown_collection'), WAIT);
  });
});

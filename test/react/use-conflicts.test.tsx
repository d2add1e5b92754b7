// @vitest-environment happy-dom
/**
 * useConflicts on a merge collection: two replicas write one record concurrently,
 * their changes reach a third through applyRemote, and the hook shows both
 * versions; a write that saw both resolves them and the list empties again.
 */
import { Component, type ReactNode } from 'react';
import { cleanup, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Replica, ReplicaError } from '@syncline/client';
import { useConflicts } from '@syncline/react';
import { memoryReplica, outboxOf, Renders, renderWith } from './helpers.js';
import { portOf } from '../internals.js';

const WAIT = { timeout: 5_000 };
const open: Replica[] = [];

afterEach(async () => {
  cleanup();
  vi.restoreAllMocks();
  await Promise.all(open.splice(0).map((r) => r.close()));
});

async function replica(byte: number): Promise<Replica> {
  const r = await memoryReplica('conflicts', byte);
  open.push(r);
  return r;
}

function Siblings({ collection = 'docs', id, renders }: { collection?: string; id: string; renders?: Renders }) {
  renders?.tick();
  const versions = useConflicts(collection, id);
  const titles = versions.map((v) => String(v.value?.['title'] ?? '(deleted)')).sort();
  return <p data-testid="siblings">{titles.length === 0 ? 'none' : titles.join('|')}</p>;
}

class Boundary extends Component<{ children: ReactNode }, { error: Error | undefined }> {
  override state = { error: undefined as Error | undefined };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  override render() {
    return this.state.error ? <p data-testid="caught">{(this.state.error as ReplicaError).code}</p> : this.props.children;
  }
}

describe('useConflicts', () => {
  it('shows concurrent versions as they arrive and clears when a write resolves them', async () => {
    const main = await replica(3);
    const a = await replica(1);
    const b = await replica(2);
    await a.put('docs', 'd1', { title: 'from a' });
    await b.put('docs', 'd1', { title: 'from b' });

    const renders = new Renders();
    const view = renderWith(main, <Siblings id="d1" renders={renders} />);
    const siblings = () => view.getByTestId('siblings').textContent;
    expect(siblings()).toBe('none');

    await portOf(main).applyRemote(await outboxOf(a));
    await waitFor(async () => expect(await main.get('docs', 'd1')).toBeDefined(), WAIT);
    expect(siblings()).toBe('none'); // one version is no conflict
    await portOf(main).applyRemote(await outboxOf(b));
    await waitFor(() => expect(siblings()).toBe('from a|from b'), WAIT);
    const settled = renders.count;

    // Commits that leave the siblings as they are: another record, the same changes again.
    await main.put('docs', 'd2', { title: 'unrelated' });
    await main.put('notes', 'd1', { title: 'same id, another collection', rank: 1 });
    await portOf(main).applyRemote(await outboxOf(a));
    await portOf(main).applyRemote(await outboxOf(b));
    // A local write has seen both siblings: it supersedes them.
    await main.put('docs', 'd1', { title: 'merged' });
    await waitFor(() => expect(siblings()).toBe('none'), WAIT);
    expect(renders.count).toBe(settled + 1);
    expect(await main.get('docs', 'd1')).toMatchObject({ value: { title: 'merged' } });
  });

  it('throws a refusal to the nearest error boundary', async () => {
    const r = await replica(4);
    // React reports errors caught by a boundary on console.error.
    const reported = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const view = renderWith(
      r,
      <Boundary>
        <Siblings collection="notes" id="n1" />
      </Boundary>,
    );
    await waitFor(() => expect(view.getByTestId('caught').textContent).toBe('wrong_policy'), WAIT);
    expect(reported).toHaveBeenCalled();
  });
});

// @vitest-environment happy-dom
// Runs the `tsx example` block of packages/react/README.md, so the docs cannot rot.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReactNode } from 'react';
import { cleanup, render, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Replica } from '@syncline/client';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function example(): string {
  const text = readFileSync(join(root, 'packages', 'react', 'README.md'), 'utf8');
  const match = /```tsx example\n([\s\S]*?)```/.exec(text);
  if (!match) throw new Error('packages/react/README.md has no ```tsx example block');
  return match[1] as string;
}

afterEach(() => cleanup());

describe('README example of @syncline/react', () => {
  it('renders and stays live', async () => {
    const dir = join(root, 'test', '.examples');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'react.example.tsx');
    writeFileSync(file, example());
    const { App, replica } = (await import(/* @vite-ignore */ `${file}?t=${Date.now()}`)) as { App: () => ReactNode; replica: Replica };
    try {
      const view = render(<App />);
      expect(view.getByText('this device only')).toBeTruthy();
      await waitFor(() => expect(view.getByRole('heading').textContent).toBe('No such event'), { timeout: 5_000 });
      expect(view.queryAllByRole('listitem')).toEqual([]);

      await replica.put('events', 'standup', { title: 'Standup', start: 900 });
      await replica.put('events', 'review', { title: 'Review', start: 1400 });
      await waitFor(() => expect(view.getByRole('heading').textContent).toBe('Standup'), { timeout: 5_000 });
      await waitFor(() => expect(view.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['Standup']), { timeout: 5_000 });
    } finally {
      await replica.close();
    }
  });
});

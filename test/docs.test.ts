// Runs the `ts example` block of each package README, so the docs cannot rot.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function example(pkg: string): string {
  const text = readFileSync(join(root, 'packages', pkg, 'README.md'), 'utf8');
  const match = /```ts example\n([\s\S]*?)```/.exec(text);
  if (!match) throw new Error(`packages/${pkg}/README.md has no \`\`\`ts example block`);
  return match[1] as string;
}

describe.each(['core', 'client', 'server'])('README example of @syncline/%s', (pkg) => {
  it('runs and its assertions hold', async () => {
    const dir = join(root, 'test', '.examples');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${pkg}.example.ts`);
    writeFileSync(file, `${example(pkg)}\nexport {};\n`);
    const failed = vi.spyOn(console, 'assert').mockImplementation((condition?: boolean, ...data: unknown[]) => {
      if (!condition) throw new Error(`README assertion failed: ${data.join(' ')}`);
    });
    try {
      await import(/* @vite-ignore */ `${file}?t=${Date.now()}`);
      expect(failed).toHaveBeenCalled();
    } finally {
      failed.mockRestore();
    }
  });
});

// Runs every `ts example` block of each package README, so the docs cannot rot.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function examples(pkg: string): string[] {
  const text = readFileSync(join(root, 'packages', pkg, 'README.md'), 'utf8');
  const blocks = [...text.matchAll(/```ts example\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  if (blocks.length === 0) throw new Error(`packages/${pkg}/README.md has no \`\`\`ts example block`);
  return blocks;
}

const cases = ['core', 'client', 'server'].flatMap((pkg) => examples(pkg).map((code, i) => ({ pkg, i, code })));

describe.each(cases)('README example $i of @syncline/$pkg', ({ pkg, i, code }) => {
  it('runs and its assertions hold', async () => {
    const dir = join(root, 'test', '.examples');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${pkg}-${i}.example.ts`);
    writeFileSync(file, `${code}\nexport {};\n`);
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

describe('the server README', () => {
  it("lists every command-line option with its environment variable, as the CLI reads them", async () => {
    const { SERVER_OPTIONS } = await import('../packages/server/src/cli.js');
    const { envName } = await import('../packages/server/src/config.js');
    const text = readFileSync(join(root, 'packages', 'server', 'README.md'), 'utf8');
    const rows = new Map([...text.matchAll(/^\| `--([a-z-]+)[^`]*` \| `(SYNCLINE_[A-Z_]+)` \|/gm)].map((m) => [m[1] as string, m[2] as string]));
    expect([...rows.keys()]).toEqual(SERVER_OPTIONS.map((o) => o.name));
    for (const option of SERVER_OPTIONS) expect(rows.get(option.name)).toBe(envName(option.name));
  });
});

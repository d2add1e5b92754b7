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

/** The words of a shell command line: single and double quotes, and backslash-newline continuations. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else word = (word ?? '') + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

describe("the server README's backend API example", () => {
  it('does what it says against a running server: the long-poll returns the put', async () => {
    const { startServer } = await import('./sync/harness.js');
    const { SECRET, token } = await import('./server/fixtures/api.js');
    const text = readFileSync(join(root, 'packages', 'server', 'README.md'), 'utf8');
    const section = text.slice(text.indexOf('## Backend API'), text.indexOf('\n## ', text.indexOf('## Backend API') + 1));
    const block = /```\n(curl[\s\S]*?)```/.exec(section)?.[1] as string;
    const commands = block.replace(/\\\n\s*/g, ' ').split('\n').filter((l) => l.startsWith('curl '));
    expect(commands.length).toBeGreaterThanOrEqual(2);
    const server = await startServer({ jwt: { secret: SECRET } });
    try {
      const bearer = await token({ role: 'service', spaces: { team: 'write' } });
      const replies = await Promise.all(
        commands.map(async (command) => {
          const words = shellWords(command.replaceAll('$TOKEN', bearer)).slice(1);
          let method = 'GET';
          let body: string | undefined;
          const headers: Record<string, string> = {};
          let url = '';
          for (let i = 0; i < words.length; i++) {
            const w = words[i] as string;
            if (w === '-X') method = words[++i] as string;
            else if (w === '-H') {
              const [name, ...value] = (words[++i] as string).split(':');
              headers[(name as string).toLowerCase()] = value.join(':').trim();
            } else if (w === '-d') {
              body = words[++i];
              if (method === 'GET') method = 'POST';
            } else url = w.replace('http://127.0.0.1:8787', `http://127.0.0.1:${server.port}`);
          }
          const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
          return { method, status: res.status, body: (await res.json()) as Record<string, unknown> };
        }),
      );
      expect(replies.map((r) => r.status)).toEqual(replies.map(() => 200));
      const put = replies.find((r) => r.method === 'PUT');
      const feed = replies.find((r) => r.method === 'GET');
      expect((feed?.body['changes'] as Array<{ id: string; fields: unknown }>)[0]).toMatchObject({ id: 'booking-7f3a', fields: { title: 'Dentist' } });
      expect((put?.body['changes'] as unknown[]).length).toBe(1);
    } finally {
      await server.close();
    }
  });
});

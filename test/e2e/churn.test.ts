/**
 * Churn in Chromium (issue 19): the create/delete workload of
 * test/sync/churn.test.ts on the browser's own IndexedDB, once. What the
 * replica stores stays within a constant factor of the working set at every
 * checkpoint (just before a collection pass), and after each pass the replica
 * forgets what the server forgot. The page is a small bundle of the client
 * (pages/churn.ts, esbuild) served by the sync server itself.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { ReplicaStats } from '@syncline/client';
import { hasChromium, ROOT, serverAndBrowser } from './harness.js';

const CYCLES = 3_000;
const WORKING_SET = 500;
const PASS_EVERY = 500;
const FACTOR = 3;

interface ChurnPage {
  open(): Promise<void>;
  run(from: number, to: number, workingSet: number): Promise<ReplicaStats>;
  stats(): Promise<ReplicaStats>;
}

describe.runIf(hasChromium || process.env['CI'])('churn in Chromium: the replica’s IndexedDB follows the working set', () => {
  // Default options, the gc timer too: the test runs its passes itself, as the timer would.
  const fixture = serverAndBrowser('syncline-churn-browser-', async (dir) => {
    const src = (path: string) => join(ROOT, 'packages', path);
    await build({
      entryPoints: [join(ROOT, 'test/e2e/pages/churn.ts')],
      bundle: true,
      format: 'esm',
      target: 'es2022',
      outfile: join(dir, 'churn.js'),
      alias: { '@syncline/client': src('client/src/index.ts'), '@syncline/core/internal': src('core/src/internal.ts'), '@syncline/core': src('core/src/index.ts') },
      logLevel: 'silent',
    });
    await writeFile(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>churn</title><script type="module" src="/churn.js"></script>');
    return dir;
  });

  it(`${CYCLES} create/delete cycles over ${WORKING_SET} records: stored bytes stay within ${FACTOR}x the working set's`, async () => {
    const s = fixture.server;
    const page: Page = await fixture.browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${s.port}/`);
    await page.waitForFunction(() => 'churn' in globalThis, undefined, { timeout: 20_000 });
    const churn = <K extends keyof ChurnPage>(method: K, ...args: Parameters<ChurnPage[K]>) =>
      page.evaluate(({ method, args }) => ((globalThis as unknown as { churn: Record<string, (...a: unknown[]) => unknown> }).churn[method] as (...a: unknown[]) => Promise<unknown>)(...args), { method, args: args as unknown[] }) as ReturnType<ChurnPage[K]>;
    await churn('open');

    const reference = await churn('run', 0, WORKING_SET, WORKING_SET);
    expect(reference.records).toBe(WORKING_SET);
    let worst = 0;
    let worstTombstones = 0;
    for (let from = WORKING_SET; from < CYCLES; from += PASS_EVERY) {
      const before = await churn('run', from, from + PASS_EVERY, WORKING_SET);
      worst = Math.max(worst, before.stateBytes / reference.stateBytes);
      worstTombstones = Math.max(worstTombstones, before.tombstones);
      expect(before.tombstones).toBeGreaterThan(0);
      const pass = await s.collect();
      expect(pass.collected).toBeGreaterThan(0);
      const left = (await s.storage.stats()).tombstones;
      // The replica forgets what the server forgot once the horizon reaches it.
      await expect.poll(async () => (await churn('stats')).tombstones, { timeout: 20_000 }).toBe(left);
      expect((await churn('stats')).records).toBe(WORKING_SET);
    }
    console.log(`churn in Chromium: ${CYCLES} cycles over ${WORKING_SET} records; before a pass the replica held at most ${worst.toFixed(2)}x the working set's bytes (${worstTombstones} tombstones)`);
    expect(worst).toBeLessThanOrEqual(FACTOR);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources, so `npm test` needs no build first.
    alias: ['core', 'client', 'server', 'react'].map((pkg) => ({ find: new RegExp(`^@syncline/${pkg}$`), replacement: src(pkg) })),
  },
  test: {
    // In CI, also write a JSON report so .ci/run can print a one-line summary.
    reporters: process.env['CI'] ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // Generous: property tests run 1,000 cases each and CI machines are shared. Every wait inside tests is bounded on its own.
    testTimeout: 120_000,
    hookTimeout: 30_000,
  },
});

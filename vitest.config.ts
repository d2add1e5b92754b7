import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

/**
 * React 18 for the tests in test/react18 (@syncline/react supports 18 and 19). That
 * folder is a private workspace depending on react@18.3.1 and react-dom@18.3.1, so
 * npm nests them in test/react18/node_modules; its project points every import of
 * react and react-dom (the tests' and packages/react/src's) at those copies. If they
 * are missing (no `npm install` since the workspace was added), the aliases are left
 * out and the tests there fail on React's version, saying so.
 */
function react18Aliases(): Array<{ find: RegExp; replacement: string }> {
  const require18 = createRequire(fileURLToPath(new URL('./test/react18/package.json', import.meta.url)));
  const ids = ['react', 'react/jsx-runtime', 'react/jsx-dev-runtime', 'react-dom', 'react-dom/client', 'react-dom/server', 'react-dom/test-utils'];
  try {
    return ids.map((id) => ({ find: new RegExp(`^${id}$`), replacement: require18.resolve(id) }));
  } catch {
    return [];
  }
}

export default defineConfig({
  resolve: {
    // Tests run against the sources, so `npm test` needs no build first.
    alias: [
      ...['core', 'client', 'server', 'react'].map((pkg) => ({ find: new RegExp(`^@syncline/${pkg}$`), replacement: src(pkg) })),
      // The subpaths of package.json `exports`.
      { find: /^@syncline\/core\/internal$/, replacement: fileURLToPath(new URL('./packages/core/src/internal.ts', import.meta.url)) },
      { find: /^@syncline\/client\/storage$/, replacement: fileURLToPath(new URL('./packages/client/src/storage/index.ts', import.meta.url)) },
    ],
  },
  test: {
    // In CI, also write a JSON report so .ci/run can print a one-line summary.
    reporters: process.env['CI'] ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
    // Generous: property tests run 1,000 cases each and CI machines are shared. Every wait inside tests is bounded on its own.
    testTimeout: 120_000,
    hookTimeout: 30_000,
    // Two test files at a time (vitest's default is one fewer than the processors: one on the 2-core CI machine, where
    // the two simulation files alone then took 7 minutes one after the other). Every wait inside a test is bounded
    // by time it measures itself, not by how fast the machine is.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'syncline', include: ['test/**/*.test.ts', 'test/**/*.test.tsx', 'examples/calendar/test/**/*.test.ts'], exclude: [...configDefaults.exclude, 'test/react18/**'] } },
      { extends: true, resolve: { alias: react18Aliases() }, test: { name: 'react18', include: ['test/react18/**/*.test.tsx'] } },
    ],
  },
});

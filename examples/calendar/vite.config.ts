import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig, type UserConfig } from 'vite';

const src = (file: string): string => fileURLToPath(new URL(`../../packages/${file}`, import.meta.url));

// The sync server the dev server forwards /sync to (run `npm start` at the root, or the server alone).
const server = process.env['SYNCLINE_SERVER'] ?? 'http://127.0.0.1:8787';

const config = {
  plugins: [react()],
  resolve: {
    // Build straight from the packages' sources: no `tsc -b` needed before `vite build`.
    // Exact matches: each entry point of the packages' `exports` (a key would also match its subpaths).
    alias: [
      { find: /^@syncline\/client$/, replacement: src('client/src/index.ts') },
      { find: /^@syncline\/client\/storage$/, replacement: src('client/src/storage/index.ts') },
      { find: /^@syncline\/core$/, replacement: src('core/src/index.ts') },
      { find: /^@syncline\/core\/internal$/, replacement: src('core/src/internal.ts') },
      { find: /^@syncline\/react$/, replacement: src('react/src/index.ts') },
    ],
  },
  server: {
    proxy: {
      '/sync': { target: server.replace(/^http/, 'ws'), ws: true },
      '/healthz': server,
    },
  },
  build: {
    target: 'es2022',
    sourcemap: true,
  },
} satisfies UserConfig;

export default defineConfig(({ command, mode }) => {
  // A production build is a production build even when a test runner that set
  // NODE_ENV=test starts it (Vite would bundle React's development build, the
  // development JSX runtime, and leave out the service worker).
  if (command === 'build' && mode === 'production') process.env['NODE_ENV'] = 'production';
  return config;
});

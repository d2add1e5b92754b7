import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin, type UserConfig } from 'vite';

const src = (file: string): string => fileURLToPath(new URL(`../../packages/${file}`, import.meta.url));

// The sync server the dev server forwards /sync to (run `npm start` at the root, or the server alone).
const server = process.env['SYNCLINE_SERVER'] ?? 'http://127.0.0.1:8787';

/**
 * Writes a `.br` and a `.gz` beside each text file of the build of 1 KiB or
 * more (not source maps): the sync server sends them to browsers that accept
 * them (server README, "Endpoints"), compressed once at build time at the
 * highest levels rather than at each request.
 */
function precompress(): Plugin {
  let outDir = 'dist';
  return {
    name: 'syncline-precompress',
    apply: 'build',
    configResolved(resolved) {
      outDir = resolved.build.outDir.startsWith('/') ? resolved.build.outDir : join(resolved.root, resolved.build.outDir);
    },
    closeBundle() {
      const walk = (dir: string): string[] => readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? walk(join(dir, name)) : [join(dir, name)]));
      for (const file of walk(outDir)) {
        if (!/\.(js|mjs|css|html|svg|json|webmanifest|txt|ics)$/.test(file)) continue;
        const body = readFileSync(file);
        if (body.length < 1024) continue;
        writeFileSync(`${file}.br`, brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } }));
        writeFileSync(`${file}.gz`, gzipSync(body, { level: 9 }));
      }
    },
  };
}

const config = {
  plugins: [react(), precompress()],
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

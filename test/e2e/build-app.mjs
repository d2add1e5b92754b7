/**
 * Builds the calendar (examples/calendar/dist) when it is missing or older than
 * anything it is built from. The e2e harness runs this under
 * `flock /tmp/syncline-build.lock`, so test files starting at the same time build
 * once: whoever gets the lock second finds dist fresh and does nothing (and no
 * build empties dist under a server that is already serving it).
 *
 * With `--copy-to DIR` it then copies dist to DIR (still under the lock) and
 * checks the copy is whole (every asset index.html names is there): the tests
 * serve that copy, so a build started elsewhere while they run (someone working
 * on the app) cannot pull the files out from under a page that is loading.
 *
 * Exit code 0: dist is fresh (and copied). Anything else: the build failed (its output is on stderr).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const app = join(root, 'examples/calendar');
const built = join(app, 'dist/index.html');

/** What `vite build` reads: the app, its config, and the packages it aliases to their sources. */
const inputs = [
  join(app, 'src'),
  join(app, 'public'),
  join(app, 'index.html'),
  join(app, 'vite.config.ts'),
  join(app, 'package.json'),
  join(root, 'packages/core/src'),
  join(root, 'packages/client/src'),
];

function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = stat.mtimeMs;
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)));
  return max;
}

function stale() {
  if (!existsSync(built)) return 'examples/calendar/dist is missing';
  const source = Math.max(...inputs.map(newest));
  const output = statSync(built).mtimeMs;
  return source > output ? `the sources changed ${Math.round((source - output) / 1000)} s after the last build` : undefined;
}

const reason = stale();
if (reason) {
  process.stderr.write(`[e2e] building the calendar: ${reason}\n`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['run', 'build', '-w', '@syncline/calendar'], { cwd: root, encoding: 'utf8', timeout: 150_000 });
  if (result.status !== 0) {
    process.stderr.write(`${result.stdout ?? ''}\n${result.stderr ?? ''}\n${result.error ? String(result.error) : ''}\n`);
    process.exit(result.status ?? 1);
  }
  const after = stale();
  if (after) {
    process.stderr.write(`[e2e] still stale after the build (${after}); the sources are being edited right now\n`);
  }
}

const copyTo = process.argv.indexOf('--copy-to');
if (copyTo >= 0) {
  const target = process.argv[copyTo + 1];
  if (!target) throw new Error('--copy-to needs a folder');
  // A build that does not take this lock (`npm run build` by hand) may be rewriting dist: retry until a copy is whole.
  for (let attempt = 1; ; attempt++) {
    rmSync(target, { recursive: true, force: true });
    cpSync(join(app, 'dist'), target, { recursive: true });
    const html = existsSync(join(target, 'index.html')) ? readFileSync(join(target, 'index.html'), 'utf8') : '';
    const missing = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]).filter((path) => !existsSync(join(target, path)));
    if (html.includes('<div id="root">') && missing.length === 0) break;
    if (attempt === 20) {
      process.stderr.write(`[e2e] examples/calendar/dist stays incomplete (missing: ${missing.join(', ') || 'index.html'})\n`);
      process.exit(1);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
  }
}

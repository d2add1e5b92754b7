/**
 * The packages as a user gets them: `npm pack` of core, client, server and react
 * (their prepack builds dist/), installed from the tarballs into a scratch npm
 * project in os.tmpdir() (no workspace links, nothing copied from the workspace),
 * a strict TypeScript program compiled with that project's own `tsc`, and the
 * `syncline-server` its node_modules/.bin holds: two replicas sync through it.
 *
 * Slow by nature: the install builds better-sqlite3 from source (about a minute on
 * a 2-core machine; the npm cache serves every download). The steps' times are
 * printed. Every wait is bounded; child processes and the temp dir go in afterAll.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixture/', import.meta.url));
const PACKAGES = ['core', 'client', 'server', 'react'] as const;
type Pkg = (typeof PACKAGES)[number];

interface PackResult {
  name: string;
  version: string;
  filename: string;
  size: number;
  unpackedSize: number;
  files: Array<{ path: string; size: number }>;
}

const children = new Set<ChildProcess>();
const times: Record<string, number> = {};
let temp: string;
let packs: Map<Pkg, PackResult>;
let app: string;

/** The environment without the npm_* variables of an enclosing `npm test` (its prefix, its config). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, killing it after `timeoutMs`; rejects on a non-zero exit. */
function run(command: string, args: readonly string[], options: { cwd: string; timeoutMs: number; what: string }): Promise<Run> {
  const started = Date.now();
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      times[options.what] = (Date.now() - started) / 1000;
      const result = { code, signal, stdout, stderr };
      if (code === 0) resolve(result);
      else reject(new Error(`${options.what} failed (${code ?? signal}${signal === 'SIGKILL' ? `, killed after ${options.timeoutMs} ms` : ''}):\n${stdout.slice(-4000)}\n${stderr.slice(-4000)}`));
    });
  });
}

/**
 * `npm pack` of the four packages into `dest`, from the repository, under the lock
 * other suites take for `tsc -b` (test/server/fixtures/build.ts): the packages'
 * prepack runs `tsc -b`, which must not write dist/ while another worker does.
 */
async function pack(dest: string): Promise<Map<Pkg, PackResult>> {
  const npmArgs = ['pack', '--json', '--pack-destination', dest, ...PACKAGES.flatMap((p) => ['--workspace', `packages/${p}`])];
  const hasFlock = spawnSync('flock', ['--version']).status === 0;
  const lock = join(tmpdir(), 'syncline-tsc-build.lock');
  const { stdout } = await (hasFlock
    ? run('flock', [lock, 'npm', ...npmArgs], { cwd: ROOT, timeoutMs: 240_000, what: 'pack' })
    : run('npm', npmArgs, { cwd: ROOT, timeoutMs: 240_000, what: 'pack' }));
  // Lifecycle output (tsc's, if any) may come before the JSON on stdout.
  const results = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as PackResult[];
  return new Map(PACKAGES.map((p) => [p, results.find((r) => r.name === `@syncline/${p}`) as PackResult]));
}

/** Every file an `exports` entry of a package.json names (conditions and subpaths, any depth). */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports.replace(/^\.\//, '')];
  if (exports === null || typeof exports !== 'object') return [];
  return Object.values(exports).flatMap(exportTargets);
}

/** Starts the scratch project's syncline-server on a port the system picks; resolves with that port. */
function startServer(cwd: string, db: string): Promise<{ port: number; output: () => string }> {
  const bin = join(cwd, 'node_modules', '.bin', 'syncline-server');
  const child = spawn(bin, ['--port', '0', '--host', '127.0.0.1', '--db', db], { cwd, env: { ...cleanEnv(), NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`syncline-server did not say its port within 20 s:\n${output}`)), 20_000);
    const onData = (chunk: string) => {
      output += chunk;
      for (const line of output.split('\n')) {
        try {
          const parsed = JSON.parse(line) as { port?: unknown };
          if (typeof parsed.port === 'number' && parsed.port > 0) {
            clearTimeout(timer);
            resolve({ port: parsed.port, output: () => output });
          }
        } catch {
          // not a JSON line (yet)
        }
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`syncline-server exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
}

beforeAll(async () => {
  temp = mkdtempSync(join(tmpdir(), 'syncline-packed-'));
  const tarballs = join(temp, 'tarballs');
  mkdirSync(tarballs);
  packs = await pack(tarballs);

  // The scratch project: the four tarballs, ws, React 18 (so npm checks @syncline/react's peer
  // range against it) and the tools, at the versions the workspace uses.
  app = join(temp, 'app');
  mkdirSync(app);
  const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const serverPkg = JSON.parse(readFileSync(join(ROOT, 'packages/server/package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const dependencies: Record<string, string> = { ws: serverPkg.dependencies['ws'] as string, react: '18.3.1', 'react-dom': '18.3.1' };
  for (const [p, result] of packs) dependencies[`@syncline/${p}`] = `file:${join(tarballs, result.filename)}`;
  const devDependencies = Object.fromEntries(['typescript', '@types/node', '@types/ws'].map((name) => [name, rootPkg.devDependencies[name] as string]));
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'syncline-packed-install', private: true, type: 'module', dependencies, devDependencies, allowScripts: { 'better-sqlite3': true } }, null, 2)}\n`,
  );
  for (const file of ['app.ts', 'check-react.mjs', 'tsconfig.json']) copyFileSync(join(FIXTURE, file), join(app, file));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeoutMs: 240_000, what: 'install' });
}, 300_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (temp) rmSync(temp, { recursive: true, force: true });
  console.log(`packed-install: ${Object.entries(times).map(([step, s]) => `${step} ${s.toFixed(1)} s`).join(', ')}`);
  console.log(`packed-install: ${[...(packs ?? new Map<Pkg, PackResult>()).values()].map((r) => `${r.name} ${r.size} B packed, ${r.unpackedSize} B unpacked`).join('; ')}`);
});

describe('packed tarballs', () => {
  it.each(PACKAGES)('@syncline/%s ships dist, types, README and LICENSE, and no build info or tests', (p) => {
    const result = packs.get(p) as PackResult;
    const files = result.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']));
    if (p === 'core') expect(files).toContain('PROTOCOL.md');
    if (p === 'server') expect(files).toContain('bin/syncline-server.js');
    expect(files.filter((f) => /tsbuildinfo|\.test\.|(^|\/)test\//.test(f))).toEqual([]);
    // Whatever `exports` says at the time (subpaths come and go), each file it names is in the tarball.
    const pkg = JSON.parse(readFileSync(join(ROOT, 'packages', p, 'package.json'), 'utf8')) as { exports?: unknown };
    const missing = exportTargets(pkg.exports).filter((target) => !files.includes(target));
    expect(missing).toEqual([]);
  });

  it('install as @syncline packages with one copy of core, from the tarballs', () => {
    for (const p of PACKAGES) {
      const installed = JSON.parse(readFileSync(join(app, 'node_modules/@syncline', p, 'package.json'), 'utf8')) as { version: string };
      expect(installed.version).toBe(packs.get(p)?.version);
      expect(existsSync(join(app, 'node_modules/@syncline', p, 'node_modules/@syncline'))).toBe(false);
      expect(existsSync(join(app, 'node_modules/@syncline', p, 'LICENSE'))).toBe(true);
    }
  });
});

describe('a program using the installed packages', () => {
  it('compiles under strict TypeScript; two replicas sync through the installed syncline-server', async () => {
    await run(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: app, timeoutMs: 60_000, what: 'tsc' });
    expect(existsSync(join(app, 'dist/app.js'))).toBe(true);

    const started = Date.now();
    const server = await startServer(app, join(temp, 'syncline.db'));
    times['server start'] = (Date.now() - started) / 1000;
    const { stdout } = await run(process.execPath, ['dist/app.js', `ws://127.0.0.1:${server.port}/sync`], { cwd: app, timeoutMs: 30_000, what: 'sync run' }).catch((error: unknown) => {
      throw new Error(`${String(error)}\nserver output:\n${server.output()}`);
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { received: unknown; title: unknown; aState: unknown; maxChangeBytes: unknown };
    expect(result).toEqual({ received: { title: 'x', start: 900 }, title: 'x', aState: 'synced', maxChangeBytes: 256 * 1024 });
  });

  it('@syncline/react renders its provider and a hook under React 18', async () => {
    const { stdout } = await run(process.execPath, ['check-react.mjs'], { cwd: app, timeoutMs: 30_000, what: 'react 18 check' });
    const result = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { react: string; html: string };
    expect(result.react).toBe('18.3.1');
    expect(result.html).toBe('<p>packed-react:loading</p>');
  });
});

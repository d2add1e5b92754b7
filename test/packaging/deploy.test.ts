/**
 * The container recipe (deploy/Dockerfile) without Docker, which these machines
 * do not run: its install step (deploy/install.sh) into a clean folder from the
 * packed tarballs, then the server started the way the image starts it: its ENV
 * (ports, host and database moved to what a test may use), its CMD with no
 * arguments, its HEALTHCHECK command, one client syncing a change, and SIGTERM
 * ending it with status 0 and the change on disk. So the recipe cannot rot
 * unnoticed. Slow like packed-install: the install builds better-sqlite3.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ReplicaId, SpaceId } from '@syncline/core/internal';
import { sqliteStorage } from '@syncline/server';
import { freePort, putChange, RawClient, waitUntil, within } from '../sync/harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const children = new Set<ChildProcess>();
let temp: string | undefined;

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  if (temp) rmSync(temp, { recursive: true, force: true });
});

/** The environment without an enclosing `npm test`'s npm_* variables. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && !key.startsWith('SYNCLINE_')));
}

/** The last stage of the Dockerfile: its ENV pairs, CMD and HEALTHCHECK command (exec form). */
function recipe(): { env: Record<string, string>; cmd: string[]; health: string[] } {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const last = stages[stages.length - 1] as string;
  const env: Record<string, string> = {};
  for (const line of last.split('\n').filter((l) => l.startsWith('ENV '))) for (const [, key, value] of line.slice(4).matchAll(/(\w+)=(\S+)/g)) env[key as string] = value as string;
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(last)?.[1] ?? 'null') as string[];
  const health = JSON.parse(/^HEALTHCHECK .*?CMD (\[.*\])$/m.exec(last)?.[1] ?? 'null') as string[];
  return { env, cmd, health };
}

describe('deploy/Dockerfile, run without Docker', () => {
  it('installs the packed server, starts from the environment alone, is healthy, syncs, and stops on SIGTERM with status 0', async () => {
    temp = mkdtempSync(join(tmpdir(), 'syncline-deploy-'));
    const context = join(temp, 'context');
    // The build context: install.sh and the tarballs `npm pack` puts beside it (under the lock other suites take for tsc -b).
    const pack = spawnSync('flock', [join(tmpdir(), 'syncline-tsc-build.lock'), 'npm', 'pack', '--pack-destination', temp, '--workspace', 'packages/core', '--workspace', 'packages/server'], {
      cwd: ROOT,
      env: cleanEnv(),
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(pack.status, pack.stderr).toBe(0);
    rmSync(context, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', context]);
    copyFileSync(join(DEPLOY, 'install.sh'), join(context, 'install.sh'));
    for (const file of readdirSync(temp).filter((f) => f.endsWith('.tgz'))) copyFileSync(join(temp, file), join(context, file));
    const app = join(temp, 'app');
    const install = spawnSync('sh', [join(context, 'install.sh'), app], { env: cleanEnv(), encoding: 'utf8', timeout: 300_000 });
    expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);

    const { env, cmd, health } = recipe();
    expect(env['SYNCLINE_DB']).toBe('/data/syncline.db');
    expect(cmd[0]).toBe('node');
    // What a test may use instead of the image's ports, 0.0.0.0 and /data.
    const [port, adminPort] = [await freePort(), await freePort()];
    const db = join(temp, 'data', 'syncline.db');
    const serverEnv = { ...cleanEnv(), ...env, SYNCLINE_HOST: '127.0.0.1', SYNCLINE_ADMIN_HOST: '127.0.0.1', SYNCLINE_PORT: String(port), SYNCLINE_ADMIN_PORT: String(adminPort), SYNCLINE_DB: db };
    const child = spawn(process.execPath, cmd.slice(1), { cwd: app, env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitUntil(() => output.includes('syncline server listening'), 20_000, `the server to listen; output:\n${output}`);

    // The HEALTHCHECK, against the port the test gave it.
    const check = spawnSync(health[0] as string, health.slice(1).map((arg) => arg.replace(':8787', `:${port}`)), { encoding: 'utf8', timeout: 15_000 });
    expect(check.status, check.stderr).toBe(0);
    expect((await fetch(`http://127.0.0.1:${adminPort}/metrics`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);

    const raw = await RawClient.open(`ws://127.0.0.1:${port}/sync`);
    const replica = 'deployclient' as ReplicaId;
    const space = 'default' as SpaceId;
    await raw.hello(replica, [{ space }]);
    raw.send({ type: 'push', space, changes: [putChange(replica, space, 1, { title: 'kept' })] });
    await raw.next('ack', (m) => m.upTo === 1);
    child.kill('SIGTERM');
    expect(await within(exited, 15_000, 'the server to exit after SIGTERM')).toBe(0);
    raw.close();
    const storage = sqliteStorage({ path: db });
    try {
      expect((await storage.readLog(space, 0, 10)).map((e) => [e.change.replica, e.change.seq])).toEqual([[replica, 1]]);
    } finally {
      await storage.close();
    }
  }, 600_000);
});

#!/usr/bin/env node
// npm run sim -- [--regions] --seed N | --seeds N [--from S] [--plan] [--bug NAME] [--steps N]
// Runs test/sim/cli.sim.ts under vitest (the simulation is TypeScript run against the sources).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
if (args.includes('--help') || args.length === 0) {
  console.log('usage: npm run sim -- --seed N [--plan] [--bug ack-without-store|skip-log-entry|skip-remote-change] [--no-shrink]\n       npm run sim -- --seeds N [--from S]\n       npm run sim -- --regions --seed N [--plan] [--bug link-skips-entry|quorum-drop|no-repair]\n       npm run sim -- --regions --seeds N [--from S]');
  process.exit(args.length === 0 ? 1 : 0);
}
const run = (simArgs) =>
  spawnSync(process.execPath, [`${root}node_modules/vitest/vitest.mjs`, 'run', '--config', 'test/sim/vitest.config.ts'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, SIM_ARGS: simArgs.join(' ') },
  }).status ?? 1;

// A long search runs in chunks of 1,000 seeds, each in a fresh process, and stops at the first failure.
const at = (name) => args.indexOf(`--${name}`);
if (at('seeds') >= 0) {
  const total = Number(args[at('seeds') + 1]);
  const from = at('from') >= 0 ? Number(args[at('from') + 1]) : 1;
  const CHUNK = 1000;
  for (let start = from; start < from + total; start += CHUNK) {
    const count = Math.min(CHUNK, from + total - start);
    const status = run([...(args.includes('--regions') ? ['--regions'] : []), '--seeds', String(count), '--from', String(start)]);
    if (status !== 0) process.exit(status);
  }
  console.log(`all ${total} seeds from ${from} passed`);
  process.exit(0);
}
process.exit(run(args));

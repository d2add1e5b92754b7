#!/usr/bin/env node
// npm run sim -- --seed N | --seeds N [--from S] [--plan] [--bug NAME] [--steps N]
// Runs test/sim/cli.sim.ts under vitest (the simulation is TypeScript run against the sources).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
if (args.includes('--help') || args.length === 0) {
  console.log('usage: npm run sim -- --seed N [--plan] [--bug ack-without-store|skip-log-entry|skip-remote-change] [--no-shrink]\n       npm run sim -- --seeds N [--from S]');
  process.exit(args.length === 0 ? 1 : 0);
}
const result = spawnSync(process.execPath, [`${root}node_modules/vitest/vitest.mjs`, 'run', '--config', 'test/sim/vitest.config.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SIM_ARGS: args.join(' ') },
});
process.exit(result.status ?? 1);

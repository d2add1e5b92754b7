#!/usr/bin/env node
/**
 * Long runs of the live protocol fuzz (test/server/fuzz-live.test.ts):
 *
 *   npm run fuzz -- --frames 100000 [--seed N] [--workers 4] [--steer-around-fixed-bugs]
 *
 * Runs vitest on that one file with FUZZ_FRAMES, FUZZ_SEED and FUZZ_WORKERS set.
 * The seed is chosen here when not given and printed first, so any run can be
 * replayed; the test prints its summary line (frames, errors by code, closes,
 * stored changes, heap) and, on failure, the frames that got a wrong answer.
 * --steer-around-fixed-bugs keeps out the frames that hit the two bugs this
 * fuzz found (KNOWN_BUGS in test/server/fuzz-frames.ts, fixed), as it did
 * before the fixes; by default they are sent and must get the right answer.
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const usage = 'usage: npm run fuzz -- --frames N [--seed N] [--workers N] [--steer-around-fixed-bugs]';
let values;
try {
  ({ values } = parseArgs({
    options: {
      frames: { type: 'string', default: '100000' },
      seed: { type: 'string' },
      workers: { type: 'string', default: '4' },
      'steer-around-fixed-bugs': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (error) {
  process.stderr.write(`${error.message}\n${usage}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const integer = (name, text, min) => {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}\n${usage}\n`);
    process.exit(2);
  }
  return n;
};
const frames = integer('frames', values.frames, 1);
const workers = integer('workers', values.workers, 1);
// fast-check seeds are 32-bit integers.
const seed = values.seed === undefined ? randomInt(-(2 ** 31), 2 ** 31) : integer('seed', values.seed, -(2 ** 31)) | 0;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const vitestPackage = createRequire(join(root, 'package.json')).resolve('vitest/package.json');
const vitest = join(dirname(vitestPackage), 'vitest.mjs');
process.stdout.write(`fuzz: seed=${seed} frames=${frames} workers=${workers}${values['steer-around-fixed-bugs'] ? ' steering around fixed bugs' : ''}\n`);
const replay = `npm run fuzz -- --frames ${frames} --seed ${seed} --workers ${workers}${values['steer-around-fixed-bugs'] ? ' --steer-around-fixed-bugs' : ''}`;
process.stdout.write(`fuzz: replay with: ${replay}\n`);

const started = Date.now();
const child = spawn(process.execPath, [vitest, 'run', 'test/server/fuzz-live.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    FUZZ_FRAMES: String(frames),
    FUZZ_SEED: String(seed),
    FUZZ_WORKERS: String(workers),
    ...(values['steer-around-fixed-bugs'] ? { FUZZ_KNOWN_BUGS: '0' } : {}),
  },
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`fuzz: ${code === 0 ? 'passed' : 'FAILED'} after ${seconds}s (replay: ${replay})\n`);
  process.exit(code ?? (signal ? 1 : 0));
});

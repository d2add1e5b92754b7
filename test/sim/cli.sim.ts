/**
 * `npm run sim -- --seed N` replays one seed exactly (add --plan to print its
 * plan, --bug NAME to plant a bug); `npm run sim -- --seeds N [--from S]` runs a
 * long search. With `--regions`, the same for the simulation with regions
 * (test/sim/regions.ts). Arguments arrive in SIM_ARGS (scripts/sim.mjs).
 */
import { expect, it } from 'vitest';
import { describeSummary, runSeeds } from './seeds.js';
import { formatFailure, runSimulation, shrink, type PlantedBug } from './simulation.js';
import { describe as describeAction } from './workload.js';
import { describeRegionsAction, formatRegionsFailure, runRegionsSimulation, type RegionsBug, type RegionsStats } from './regions.js';

const args = (process.env['SIM_ARGS'] ?? '').split(' ').filter(Boolean);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? undefined : (args[i + 1] ?? '');
};
const seed = flag('seed');
const seeds = flag('seeds');

async function regions(): Promise<void> {
  const bug = flag('bug') as RegionsBug | undefined;
  const steps = flag('steps');
  const run = (n: number) => runRegionsSimulation({ seed: n, ...(bug ? { bug } : {}), ...(steps ? { steps: Number(steps) } : {}) });
  if (seed !== undefined) {
    const result = await run(Number(seed));
    console.log(`regions seed ${seed}: ${result.ok ? 'passed' : 'FAILED'}; digest ${result.digest.slice(0, 16)}; ${JSON.stringify(result.stats)}`);
    console.log(`config: ${JSON.stringify(result.config)}`);
    if (args.includes('--plan')) console.log(result.plan.map((a, i) => `  ${i + 1}. ${describeRegionsAction(a)}`).join('\n'));
    if (!result.ok) console.log(formatRegionsFailure(result));
    expect(result.ok).toBe(true);
    return;
  }
  const from = Number(flag('from') ?? 1);
  const count = Number(seeds ?? 100);
  const totals: Partial<Record<keyof RegionsStats, number>> = {};
  const started = performance.now();
  for (let n = from; n < from + count; n++) {
    const result = await run(n);
    for (const [key, value] of Object.entries(result.stats) as Array<[keyof RegionsStats, number]>) totals[key] = (totals[key] ?? 0) + value;
    if (!result.ok) {
      console.log(formatRegionsFailure(result));
      expect(result.ok).toBe(true);
    }
    if ((n - from + 1) % 100 === 0) console.log(`${n - from + 1} regions seeds ok (${Math.round(performance.now() - started)} ms)`);
  }
  console.log(`regions seeds ${from}..${from + count - 1}: all passed in ${((performance.now() - started) / 1000).toFixed(1)} s; ${JSON.stringify(totals)}`);
}

it('simulation', async () => {
  if (args.includes('--regions')) return regions();
  if (seed !== undefined) {
    const bug = flag('bug') as PlantedBug | undefined;
    const steps = flag('steps');
    const result = await runSimulation({ seed: Number(seed), ...(bug ? { bug } : {}), ...(steps ? { steps: Number(steps) } : {}) });
    console.log(`seed ${seed}: ${result.ok ? 'passed' : 'FAILED'}; digest ${result.digest.slice(0, 16)}; ${JSON.stringify(result.stats)}`);
    console.log(`config: ${JSON.stringify(result.config)}`);
    if (args.includes('--plan')) console.log(result.plan.map((a, i) => `  ${i + 1}. ${describeAction(a)}`).join('\n'));
    if (!result.ok) {
      const shrunk = args.includes('--no-shrink') ? undefined : await shrink(result.seed, result.plan, { ...(bug ? { bug } : {}), maxRuns: 200 });
      console.log(formatFailure(result, shrunk));
    }
    expect(result.ok).toBe(true);
    return;
  }
  const from = Number(flag('from') ?? 1);
  const count = Number(seeds ?? 500);
  const summary = await runSeeds(from, count, { shrinkRuns: 200, log: (line) => console.log(line) });
  console.log(describeSummary(from, summary));
  if (summary.failure) console.log(summary.failure);
  expect(summary.failure).toBeUndefined();
});

/** CI: seeds of the simulation with regions (test/sim/regions.ts), and its planted bugs, each found within a few seeds. */
import { describe, expect, it } from 'vitest';
import { expectPlantedBugFound } from './common.js';
import { formatRegionsFailure, runRegionsSimulation, type RegionsBug, type RegionsStats } from './regions.js';

const SEEDS = Number(process.env['REGIONS_SEEDS'] ?? 100);
const FIRST = Number(process.env['REGIONS_FIRST'] ?? 1);

describe('simulation with regions', () => {
  it(`seeds ${FIRST}..${FIRST + SEEDS - 1}: every replica and region converge, each change once per region, nothing acknowledged lost`, async () => {
    const totals: Partial<RegionsStats> = {};
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const result = await runRegionsSimulation({ seed });
      for (const [key, value] of Object.entries(result.stats) as Array<[keyof RegionsStats, number]>) totals[key] = (totals[key] ?? 0) + value;
      if (!result.ok) throw new Error(formatRegionsFailure(result));
    }
    console.log(`regions simulation, ${SEEDS} seeds: ${JSON.stringify(totals)}`);
    expect(totals.failovers).toBeGreaterThan(0);
    expect(totals.destroyed).toBeGreaterThan(0);
    expect(totals.compacted).toBeGreaterThan(0);
    expect(totals.merges).toBeGreaterThan(0);
    expect(totals.collected).toBeGreaterThan(0);
  }, 900_000);
});

const BUGS: ReadonlyArray<{ bug: RegionsBug; finds: RegExp }> = [
  { bug: 'link-skips-entry', finds: /lacks|holds \d+ changes|no region holds|differ|not quiescent/ },
  { bug: 'quorum-drop', finds: /no region holds/ },
  // Without anti-entropy, a destroyed region's changes that reached one other region never reach the third.
  { bug: 'no-repair', finds: /sequence_gap|lacks|holds \d+ changes/ },
  // A level by time passes writers that hold it: one of them, back with older changes, is refused and retired.
  { bug: 'gc-by-ttl', finds: /was retired there for a push below its level/ },
  // A writer that moved to another region holds the level of the one it left: deleted records stay.
  { bug: 'no-floors', finds: /still holds \d+ deleted records/ },
];

describe('simulation with regions: planted bugs are found', () => {
  for (const { bug, finds } of BUGS) {
    it(bug, () => expectPlantedBugFound((seed, planted) => runRegionsSimulation({ seed, ...(planted ? { bug: planted } : {}) }), bug, finds), 600_000);
  }

  it('replays: the same seed gives the same run, frame for frame', async () => {
    const a = await runRegionsSimulation({ seed: 5 });
    const b = await runRegionsSimulation({ seed: 5 });
    expect(a.stats.frames).toBeGreaterThan(0);
    expect(b.digest).toBe(a.digest);
    expect(b.stats).toEqual(a.stats);
    expect((await runRegionsSimulation({ seed: 6 })).digest).not.toBe(a.digest);
  }, 120_000);
});

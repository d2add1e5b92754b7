/**
 * Runs a range of seeds; the first failure is shrunk (bounded) and reported with
 * its seed, config and shortest plan. Shared by the CI test files and the CLI.
 */
import { emptyStats, formatFailure, runSimulation, shrink, type SimStats } from './simulation.js';

export interface SeedsSummary {
  readonly seeds: number;
  readonly totals: SimStats;
  readonly failure: string | undefined;
  readonly ms: number;
}

export async function runSeeds(first: number, count: number, options: { shrinkRuns?: number; log?: (line: string) => void } = {}): Promise<SeedsSummary> {
  const started = performance.now();
  const totals: SimStats = emptyStats();
  for (let seed = first; seed < first + count; seed++) {
    const result = await runSimulation({ seed });
    for (const key of Object.keys(totals) as Array<keyof SimStats>) totals[key] += result.stats[key];
    if (!result.ok) {
      const shrunk = (options.shrinkRuns ?? 40) > 0 ? await shrink(seed, result.plan, { maxRuns: options.shrinkRuns ?? 40 }) : undefined;
      return { seeds: seed - first + 1, totals, failure: formatFailure(result, shrunk), ms: performance.now() - started };
    }
    if (options.log && (seed - first + 1) % 100 === 0) options.log(`${seed - first + 1} seeds ok (${Math.round(performance.now() - started)} ms)`);
  }
  return { seeds: count, totals, failure: undefined, ms: performance.now() - started };
}

export function describeSummary(first: number, summary: SeedsSummary): string {
  const t = summary.totals;
  return (
    `seeds ${first}..${first + summary.seeds - 1}: ${summary.failure ? 'FAILED' : 'all passed'} in ${(summary.ms / 1000).toFixed(1)} s; ` +
    `${t.ops} operations, ${t.faults} faults (${t.serverCrashes} server crashes, ${t.serverRestarts} server restarts, ${t.replicaRestarts} replica restarts, ${t.retired} ids retired (${t.setAside} unsynced changes set aside, ${t.rewritten} written again, ${t.trimmed} merge records trimmed of their entries), ${t.cuts} connections cut), ` +
    `${t.frames} frames (${t.duplicated} duplicated), ${t.changes} changes checked, ${t.readYourWrites} reads of own writes, ` +
    `${t.tooLarge} writes refused as too large, ${t.limitRefusals} limit refusals recovered from, ${(t.virtualMs / 3_600_000).toFixed(1)} h of virtual time`
  );
}

/** A CI test over seeds first..first+count-1 (the files sim-1, sim-2 split 500 seeds across vitest's workers). */
export async function expectSeedsPass(first: number, count: number): Promise<void> {
  const summary = await runSeeds(first, count);
  console.log(describeSummary(first, summary));
  if (summary.failure) throw new Error(summary.failure);
}

/** CI: seeds 1..250 of the deterministic simulation (sim-2 runs 251..500 in parallel). */
import { expect, it } from 'vitest';
import { describeSummary, runSeeds } from './seeds.js';

const FIRST = 1;
const COUNT = 250;

it(`simulation seeds ${FIRST}..${FIRST + COUNT - 1} converge and lose nothing`, async () => {
  const summary = await runSeeds(FIRST, COUNT);
  console.log(describeSummary(FIRST, summary));
  expect(summary.failure, summary.failure).toBeUndefined();
}, 900_000);

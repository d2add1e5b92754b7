/** CI: seeds 251..500 of the deterministic simulation (sim-1 runs 1..250). */
import { expect, it } from 'vitest';
import { describeSummary, runSeeds } from './seeds.js';

const FIRST = 251;
const COUNT = 250;

it(`simulation seeds ${FIRST}..${FIRST + COUNT - 1} converge and lose nothing`, async () => {
  const summary = await runSeeds(FIRST, COUNT);
  console.log(describeSummary(FIRST, summary));
  expect(summary.failure, summary.failure).toBeUndefined();
}, 900_000);

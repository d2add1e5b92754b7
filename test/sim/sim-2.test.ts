/** CI: seeds 251..500 of the deterministic simulation (sim-1 runs 1..250 in parallel). */
import { it } from 'vitest';
import { expectSeedsPass } from './seeds.js';

it('simulation seeds 251..500 converge and lose nothing', () => expectSeedsPass(251, 250), 900_000);

/** CI: seeds 1..250 of the deterministic simulation (sim-2 runs 251..500 in parallel). */
import { it } from 'vitest';
import { expectSeedsPass } from './seeds.js';

it('simulation seeds 1..250 converge and lose nothing', () => expectSeedsPass(1, 250), 900_000);

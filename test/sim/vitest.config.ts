/** `npm run sim`: the simulation's command-line runs (test/sim/cli.sim.ts), outside `npm test`. */
import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

export default defineConfig({
  resolve: base.resolve,
  test: { include: ['test/sim/cli.sim.ts'], testTimeout: 0, reporters: ['default'] },
});

import fc from 'fast-check';
import { it } from 'vitest';
import { arbScript, simulate, applyAll, canonicalStates, viewStrings } from './helpers/changes.js';
it('prof', () => {
  const scripts = fc.sample(arbScript('crdt'), { numRuns: 300, seed: 1 });
  let t = performance.now();
  const hs = scripts.map(simulate);
  console.log('simulate', (performance.now() - t) / 300);
  t = performance.now();
  const sts = hs.map(h => applyAll(h.changes));
  console.log('apply', (performance.now() - t) / 300);
  t = performance.now();
  sts.forEach(s => canonicalStates(s));
  console.log('canonical', (performance.now() - t) / 300);
  t = performance.now();
  sts.forEach(s => viewStrings(s));
  console.log('views', (performance.now() - t) / 300);
});

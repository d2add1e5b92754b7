import fc from 'fast-check';
import { it } from 'vitest';
import { validateChange, materialize } from '@syncline/core';
import { arbHistory, POLICIES, applyAll, viewStrings } from './helpers/changes.js';
it('sample', () => {
  for (const p of POLICIES) {
    const t0 = performance.now();
    const hs = fc.sample(arbHistory(p), 200);
    const t1 = performance.now();
    let n = 0, ops: Record<string, number> = {}, sib = 0;
    for (const h of hs) { n += h.changes.length; for (const c of h.changes) { validateChange(c); ops[c.op] = (ops[c.op] ?? 0) + 1; }
      const st = applyAll(h.changes); for (const s of st.values()) if (materialize(s).siblings.length > 1) sib++; }
    console.log(p, 'avg changes', n / hs.length, ops, 'conflicted records', sib, 'gen ms', (t1 - t0).toFixed(0));
    console.log(viewStrings(applyAll(hs[5]!.changes)));
  }
});
